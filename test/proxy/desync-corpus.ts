/** The HTTP desync corpus (shared/corpora/http-desync-guardian): its cases as the parser and proxy tests read them. */
import { readdirSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';

const CORPUS = '/work/shared/corpora/http-desync-guardian';

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
  for (const f of readdirSync(CORPUS).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const c of (parse(readFileSync(`${CORPUS}/${f}`, 'utf8')) as Omit<DesyncCase, 'file'>[]) ?? []) out.push({ ...c, file: f });
  }
  return out;
}
