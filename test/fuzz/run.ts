/**
 * Runs fuzz targets for a while and prints one JSON report per target.
 *
 *   node dist/test/fuzz/run.js TARGET|all [--minutes N] [--seed N]
 *
 * Exits 1 when a target failed; the report has the counterexample and the
 * seed that finds it again (docs/fuzzing.md).
 */
import { parseArgs } from 'node:util';
import { targets } from './targets/index.js';

// `node --test dist/test` runs every module under a test/ folder, this one included: under the test runner
// it does nothing (fuzz.test.ts is the suite's short run); long runs are started by hand.
if (process.env.NODE_TEST_CONTEXT) process.exit(0);

const { values, positionals } = parseArgs({ allowPositionals: true, options: { minutes: { type: 'string', default: '10' }, seed: { type: 'string' } } });
const names = positionals[0] === 'all' || !positionals.length ? Object.keys(targets) : positionals;
let failed = false;
for (const name of names) {
  const t = targets[name];
  if (!t) {
    process.stderr.write(`unknown target "${name}" (known: ${Object.keys(targets).join(', ')})\n`);
    process.exit(2);
  }
  const r = await t.run({ timeMs: Number(values.minutes) * 60_000, ...(values.seed ? { seed: Number(values.seed) } : {}) });
  process.stdout.write(`${JSON.stringify(r)}\n`);
  failed ||= r.failed;
}
process.exit(failed ? 1 : 0);
