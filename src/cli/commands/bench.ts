import { parseArgs } from 'node:util';
import { EbmeshError } from '../../errors.js';
import type { Command } from '../command.js';

export const bench: Command = {
  name: 'bench',
  summary: 'run benchmarks (all, or the named scenarios) and write a report',
  usage: 'bench [SCENARIO…] [--quick] [--repeats N] [--out DIR] [-o json]   (bench convergence alone: its own text and convergence.json)',
  async run(ctx) {
    const { values, positionals } = parseArgs({
      args: ctx.args, allowPositionals: true,
      options: {
        quick: { type: 'boolean', default: false },
        repeats: { type: 'string' },
        out: { type: 'string', default: 'bench-results' },
        output: { type: 'string', short: 'o' },
      },
    });
    if (positionals.length === 1 && positionals[0] === 'convergence') {
      // Not a load scenario (no requests to count): its own runner and report.
      const { runConvergence, CONVERGENCE_FULL, CONVERGENCE_QUICK } = await import('../../../bench/convergence.js');
      const quick = values.quick ?? false;
      await runConvergence({ quick, ...(quick ? CONVERGENCE_QUICK : CONVERGENCE_FULL), outDir: values.out ?? 'bench-results', json: values.output === 'json' },
        (m) => ctx.err(`• ${m}`), ctx.out);
      return 0;
    }
    const { scenarios } = await import('../../../bench/scenarios/index.js');
    const { runBench } = await import('../../../bench/runner.js');
    const unknown = positionals.filter((p) => !scenarios.some((s) => s.name === p));
    if (unknown.length) {
      throw new EbmeshError('EBMESH_USAGE', `unknown scenario ${unknown.join(', ')}`, { hint: `known: ${scenarios.map((s) => s.name).join(', ')}` });
    }
    const repeats = values.repeats === undefined ? undefined : Number(values.repeats);
    if (repeats !== undefined && (!Number.isInteger(repeats) || repeats < 1 || repeats > 100)) {
      throw new EbmeshError('EBMESH_USAGE', '--repeats must be a whole number from 1 to 100');
    }
    const chosen = positionals.length ? scenarios.filter((s) => positionals.includes(s.name)) : scenarios.filter((s) => !s.onlyByName);
    const res = await runBench(chosen, {
      quick: values.quick ?? false,
      outDir: values.out ?? 'bench-results',
      json: values.output === 'json',
      ...(repeats !== undefined ? { repeats } : {}),
    });
    return res.ok ? 0 : 1;
  },
};
