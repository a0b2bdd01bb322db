/**
 * Replays every case of the http-desync-guardian corpus over a raw TCP
 * socket. Every "Severe" case must be answered 400 with the connection
 * closed, and must never reach the backend. Compliant GETs must pass.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { dial, startBackend, startProxy, svc, to, type Backend, type Started } from './harness.js';

const CORPUS = '/work/shared/corpora/http-desync-guardian';

interface Case {
  name: string;
  uri: string;
  method: string;
  version: string;
  headers: { name: string; value: string | number }[] | null;
  expected: { tier: string; reason: string };
}

function loadCases(): (Case & { file: string })[] {
  const out: (Case & { file: string })[] = [];
  for (const f of readdirSync(CORPUS).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const c of (parse(readFileSync(`${CORPUS}/${f}`, 'utf8')) as Case[]) ?? []) out.push({ ...c, file: f });
  }
  return out;
}

function rawRequest(c: Case): Buffer {
  const line = `${c.method} ${c.uri} ${c.version}`.trimEnd();
  const headers = (c.headers ?? []).map((h) => `${h.name}:${h.value}\r\n`).join('');
  // latin1: the YAML's \xNN escapes are single bytes on the wire.
  return Buffer.from(`${line}\r\nHost: web\r\n${headers}\r\n`, 'latin1');
}

function exchange(p: Started, bytes: Buffer): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = dial(p, to('10.96.0.10', 80));
    let text = '';
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve({ text, closed });
    };
    s.on('connect', () => s.write(bytes));
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    const t = setTimeout(() => finish(false), 1500);
  });
}

describe('HTTP/1 desync corpus (http-desync-guardian)', () => {
  let backend: Backend, p: Started;
  const cases = loadCases();
  before(async () => {
    backend = await startBackend('web');
    p = await startProxy({ services: [svc('web', '10.96.0.10', 80, [backend])] });
  });
  after(async () => {
    await p.proxy.close();
    await backend.close();
  });

  const severe = cases.filter((c) => c.expected.tier === 'Severe');
  it('has Severe cases to replay', () => assert.ok(severe.length >= 50, `found ${severe.length}`));

  for (const c of severe) {
    it(`Severe ${c.file}: ${c.name} (${c.expected.reason}) -> 400 and close`, async () => {
      const before = backend.hits + backend.partial;
      const r = await exchange(p, rawRequest(c));
      assert.match(r.text, /^HTTP\/1\.1 400 /, `answer was ${JSON.stringify(r.text.slice(0, 80))}`);
      assert.ok(r.closed, 'connection closed after the 400');
      await new Promise((res) => setTimeout(res, 30)); // a late forward would show up here
      assert.equal(backend.hits + backend.partial, before, 'never forwarded, not even in part');
    });
  }

  it('still forwards plain compliant requests', async () => {
    const r = await exchange(p, Buffer.from('GET /ok HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n'));
    assert.match(r.text, /^HTTP\/1\.1 200 /);
  });
});
