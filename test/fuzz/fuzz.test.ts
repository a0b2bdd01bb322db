/**
 * A short run of every fuzz target (a few seconds each, after replaying its
 * committed corpus): the long runs are `node dist/test/fuzz/run.js`
 * (docs/fuzzing.md). A failure prints the counterexample and the seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { targets } from './targets/index.js';

const SECONDS = Number(process.env.EBMESH_FUZZ_SECONDS ?? 4);

for (const [name, t] of Object.entries(targets)) {
  test(`fuzz ${name}: ${t.what}`, { timeout: 120_000 }, async (ctx) => {
    const r = await t.run({ timeMs: SECONDS * 1000 });
    ctx.diagnostic(`${r.runs} inputs in ${r.ms} ms, seed ${r.seed}`);
    assert.equal(r.failed, false, `${r.error}\ncounterexample: ${r.counterexample}\nseed: ${r.seed}`);
    assert.ok(r.runs > 0, 'no input was tried');
  });
}
