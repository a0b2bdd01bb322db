/**
 * The node proxy's HTTP/1 server (src/proxy/h1-server.ts) on a real socket,
 * in front of a real backend. Inputs: the h1-parser target's requests and
 * garbage, several pipelined on one connection, written in random pieces
 * with short pauses, then a FIN.
 *
 * What must hold: the proxy answers with HTTP/1.x status lines (or nothing)
 * and closes the connection within 5 s of the client's FIN; nothing throws
 * inside the process; and a plain request still gets 200 afterwards.
 */
import fc from 'fast-check';
import { setTimeout as sleep } from 'node:timers/promises';
import { dial, request, startBackend, startProxy, svc, to, type Backend, type Started } from '../../proxy/harness.js';
import { h1ParserTarget } from './h1-parser.js';
import { within, type FuzzTarget } from '../fuzz.js';

interface Ctx { backend: Backend; p: Started; thrown: unknown[]; onThrow: (e: unknown) => void; n: number }
interface Input { requests: Buffer[]; cuts: number[]; pauseMs: number }

const VIP = '10.96.0.10';

function exchange(ctx: Ctx, bytes: Buffer, cuts: number[], pauseMs: number): Promise<{ text: string }> {
  return new Promise((resolve, reject) => {
    const s = dial(ctx.p, to(VIP, 80));
    let text = '';
    let ended = false;
    const t = setTimeout(() => { s.destroy(); reject(new Error(`hang: the proxy kept the connection open 5 s after the client's FIN (${ended ? 'FIN sent' : 'still writing'}); answered ${JSON.stringify(text.slice(0, 200))}`)); }, 5000 + cuts.length * pauseMs);
    s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    s.on('error', () => undefined);
    s.on('close', () => { clearTimeout(t); resolve({ text }); });
    s.on('connect', async () => {
      let pos = 0;
      for (const c of [...cuts.map((x) => x % (bytes.length + 1)).sort((a, b) => a - b), bytes.length]) {
        if (c <= pos || s.destroyed) continue;
        s.write(bytes.subarray(pos, c));
        pos = c;
        if (pauseMs) await sleep(pauseMs);
      }
      ended = true;
      if (!s.destroyed) s.end();
    });
  });
}

export const h1ServerTarget: FuzzTarget<Input, Ctx> = {
  name: 'h1-server',
  what: 'the node proxy\'s HTTP/1 server on a socket: HTTP answers or nothing, the connection closed after the client\'s FIN, nothing thrown, still serving',
  async setup() {
    const backend = await startBackend('web');
    const p = await startProxy({ services: [svc('web', VIP, 80, [backend])] });
    p.steer.fallback = to(VIP, 80);
    const ctx: Ctx = { backend, p, thrown: [], n: 0, onThrow: (e) => ctx.thrown.push(e) };
    process.on('uncaughtException', ctx.onThrow);
    process.on('unhandledRejection', ctx.onThrow);
    return ctx;
  },
  async teardown(ctx) {
    process.off('uncaughtException', ctx.onThrow);
    process.off('unhandledRejection', ctx.onThrow);
    await ctx.p.proxy.close();
    await ctx.backend.close();
  },
  seed: (text) => ({ requests: [Buffer.from(text, 'latin1')], cuts: [], pauseMs: 0 }),
  inputs(seeds) {
    const one = h1ParserTarget.inputs(seeds.flatMap((s) => s.requests).map((bytes) => ({ bytes, cuts: [] }))).map((i) => i.bytes);
    return fc.record({ requests: fc.array(one, { minLength: 1, maxLength: 3 }), cuts: fc.array(fc.nat(), { maxLength: 4 }), pauseMs: fc.constantFrom(0, 0, 1, 20) });
  },
  async check(ctx, { requests, cuts, pauseMs }) {
    const { text } = await exchange(ctx, Buffer.concat(requests), cuts, pauseMs);
    if (text && !/^HTTP\/1\.[01] \d{3} /.test(text)) throw new Error(`not an HTTP answer: ${JSON.stringify(text.slice(0, 120))}`);
    if (ctx.thrown.length) throw new Error(`thrown inside the proxy: ${String((ctx.thrown[0] as Error)?.stack ?? ctx.thrown[0])}`);
    if (++ctx.n % 25 === 0) {
      const r = await within(request(ctx.p, to(VIP, 80), { path: '/alive' }), 5000, 'a plain request after the fuzzed ones');
      if (r.status !== 200) throw new Error(`a plain request got ${r.status} after the fuzzed ones`);
    }
  },
};
