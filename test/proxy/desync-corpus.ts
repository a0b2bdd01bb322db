/**
 * The HTTP desync corpus, vendored in test/fixtures/http-desync-guardian
 * (SOURCE.md there says where from): its cases as the parser and proxy tests
 * read them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { PACKAGE_ROOT } from '../../src/paths.js';

export const DESYNC_CORPUS = join(PACKAGE_ROOT, 'test/fixtures/http-desync-guardian');

export interface DesyncCase {
  name: string;
  uri: string;
  method: string;
  version: string;
  headers: { name: string; value: string | number }[] | null;
  expected: { tier: string; reason: string };
  /** The corpus file it came from. */
  file: string;
}

export function loadDesyncCases(): DesyncCase[] {
  const out: DesyncCase[] = [];
  for (const f of readdirSync(DESYNC_CORPUS).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const c of (parse(readFileSync(join(DESYNC_CORPUS, f), 'utf8')) as Omit<DesyncCase, 'file'>[]) ?? []) out.push({ ...c, file: f });
  }
  return out;
}

/** A case as bytes on the wire, with `Host: web` first (latin1: the YAML's \xNN escapes are single bytes). */
export function desyncRequest(c: DesyncCase): Buffer {
  const line = `${c.method} ${c.uri} ${c.version}`.trimEnd();
  const headers = (c.headers ?? []).map((h) => `${h.name}:${h.value}\r\n`).join('');
  return Buffer.from(`${line}\r\nHost: web\r\n${headers}\r\n`, 'latin1');
}
