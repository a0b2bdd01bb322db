/**
 * loopback: the load generator against a private nginx on 127.0.0.1, no mesh.
 * It proves the machinery and calibrates it on this machine: the spread of
 * one configuration across repeats is the noise floor any mesh figure must
 * beat, the closed-loop rate is the headroom over the test rate, and wrk's
 * closed-loop rate tells whether our client or the server is the bottleneck.
 */
import { existsSync } from 'node:fs';
import { sampleFootprint, type Footprint } from '../footprint.js';
import { runLoadgen, type LoadgenOptions } from '../loadgen.js';
import { startNginx } from '../nginx.js';
import { runFromLoad, type ConfigResult, type RunResult, type Scenario, type ScenarioContext } from '../scenario.js';
import { runWrk } from '../wrk.js';

export interface LoopbackSettings {
  rate: number;
  connections: number;
  durationS: number;
  warmupS: number;
  bodyBytes: number;
  withWrk: boolean;
}

export const LOOPBACK_FULL: LoopbackSettings = { rate: 5000, connections: 16, durationS: 10, warmupS: 2, bodyBytes: 128, withWrk: true };
export const LOOPBACK_QUICK: LoopbackSettings = { rate: 500, connections: 4, durationS: 1, warmupS: 0.2, bodyBytes: 128, withWrk: true };

function hasWrk(): boolean {
  return ['/usr/bin/wrk', '/usr/local/bin/wrk'].some((p) => existsSync(p));
}

interface Plan {
  name: string;
  description: string;
  baseline?: string;
  run(url: string): Promise<RunResult>;
}

export function loopbackScenario(overrides: Partial<LoopbackSettings> = {}, quickOverrides: Partial<LoopbackSettings> = {}): Scenario {
  return {
    name: 'loopback',
    describe: 'loadgen → nginx on 127.0.0.1, no mesh: noise floor, headroom and client check',
    async run(ctx: ScenarioContext) {
      const s: LoopbackSettings = ctx.quick ? { ...LOOPBACK_QUICK, ...quickOverrides } : { ...LOOPBACK_FULL, ...overrides };
      const nginx = await startNginx({ bodyBytes: s.bodyBytes, workers: 1 });
      ctx.progress(`nginx pid ${nginx.pid} on ${nginx.url}`);
      try {
        const withServer = async (fn: () => Promise<RunResult>): Promise<RunResult> => {
          const sampler = sampleFootprint([nginx.pid], 250);
          let fp: Footprint;
          let r: RunResult;
          try {
            r = await fn();
          } finally {
            fp = sampler.stop();
          }
          return { ...r, footprints: { ...r.footprints, 'nginx (master + worker)': fp } };
        };
        const lg = (extra: Partial<LoadgenOptions>) => async (url: string): Promise<RunResult> =>
          runFromLoad(await runLoadgen({ url, rate: s.rate, connections: s.connections, durationS: s.durationS, warmupS: s.warmupS, timeoutMs: 2000, ...(ctx.signal ? { signal: ctx.signal } : {}), ...extra }));

        const base = `open loop ${s.rate}/s`;
        const plans: Plan[] = [
          { name: base, description: `loadgen, ${s.rate} req/s over ${s.connections} keep-alive connections`, run: lg({}) },
          { name: `open loop ${2 * s.rate}/s`, description: 'twice the rate: how latency and server CPU scale', run: lg({ rate: 2 * s.rate }) },
          { name: 'closed loop (loadgen)', description: 'loadgen --rate 0: saturation throughput; its ratio is the headroom over the test rate', run: lg({ rate: 0 }) },
        ];
        const notes: string[] = [
          'Repeats are interleaved (A B C A B C …) so that slow drift of the machine spreads over all configurations.',
          'nginx runs one worker so that, on a small machine, client and server each have a core.',
        ];
        if (s.withWrk && hasWrk()) {
          plans.push({
            name: 'closed loop (wrk)',
            description: 'wrk, same connections, one thread: reference client for saturation throughput',
            baseline: 'closed loop (loadgen)',
            run: (url) => runWrk({ url, durationS: Math.max(1, Math.round(s.durationS)), connections: s.connections, threads: 1 }),
          });
          notes.push('wrk measures latency from the actual send (closed loop), so only its throughput is comparable; it has no warmup.');
        } else if (s.withWrk) {
          notes.push('wrk is not installed (apt-get install -y wrk): the reference-client comparison was skipped.');
        }

        const configs: ConfigResult[] = plans.map((p) => ({
          name: p.name,
          description: p.description,
          ...(p.baseline ? { baseline: p.baseline } : {}),
          runs: [],
        }));
        for (let rep = 0; rep < ctx.repeats; rep++) {
          for (const [i, p] of plans.entries()) {
            if (ctx.signal?.aborted) throw new Error('aborted');
            ctx.progress(`repeat ${rep + 1}/${ctx.repeats}: ${p.name}`);
            const r = await withServer(() => p.run(nginx.url));
            configs[i]!.runs.push(r);
            if (r.errors + r.timeouts + r.badStatus > 0) ctx.progress(`  warning: ${r.errors} errors, ${r.timeouts} timeouts, ${r.badStatus} bad statuses`);
            ctx.progress(`  ${Math.round(r.rate)} req/s, p50 ${r.latencyUs.p50?.toFixed(0) ?? '–'} µs, p99 ${r.latencyUs.p99?.toFixed(0) ?? '–'} µs`);
          }
        }
        return {
          baseline: base,
          configs,
          setup: [
            `# server: ${nginx.command.join(' ')}`,
            ...nginx.config.split('\n').filter((l) => l.trim()).map((l) => `#   ${l}`),
            `# body: ${s.bodyBytes} bytes at /`,
            `# loadgen settings: rate ${s.rate}/s, ${s.connections} connections, ${s.durationS} s measured after ${s.warmupS} s warmup, timeout 2000 ms`,
          ],
          notes,
        };
      } finally {
        await nginx.stop();
      }
    },
  };
}

export const loopback: Scenario = loopbackScenario();
