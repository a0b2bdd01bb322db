/**
 * Stand-in entry point until `ebmesh bench` is wired into the CLI:
 *   node dist/src/bench/main.js [--quick] [--out DIR] [--repeats N] [-o json]
 */
import { parseArgs } from 'node:util';
import { describeError } from '../errors.js';
import { runBench } from './runner.js';
import { loopback } from './scenarios/loopback.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string', default: 'bench-results' },
      repeats: { type: 'string' },
      output: { type: 'string', short: 'o', default: 'table' },
    },
  });
  const repeats = values.repeats === undefined ? undefined : Number(values.repeats);
  if (repeats !== undefined && (!Number.isInteger(repeats) || repeats < 1 || repeats > 100)) {
    process.stderr.write('--repeats must be an integer in 1..100\n');
    return 2;
  }
  const res = await runBench([loopback], {
    quick: values.quick ?? false,
    outDir: values.out ?? 'bench-results',
    json: values.output === 'json',
    ...(repeats !== undefined ? { repeats } : {}),
  });
  return res.ok ? 0 : 1;
}

main().then(
  (code) => { process.exitCode = code; },
  (e: unknown) => { process.stderr.write(`${describeError(e)}\n`); process.exitCode = 1; },
);
