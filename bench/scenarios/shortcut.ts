/**
 * `ebmesh bench shortcut`: two workloads on one node, the same-node
 * shortcut off vs on, in one run: request/response round trips (sockperf
 * ping-pong over one TCP connection, both ends pinned to one core) and bulk
 * throughput (iperf3). Loopback TCP inside one workload is measured too, as
 * the figure the published numbers compare with. The setting only
 * applies to new connections, and every run opens its own, so toggling
 * MeshConfig.sameNodeShortcut between runs is enough.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchLab, idleWorkload, meshConfigYaml } from './mesh-lab.js';
import { ConfigRuns, emptyRun, type RunResult, type Scenario, type ScenarioContext } from '../scenario.js';

const SERVICE_CIDR = '10.98.4.0/24';
const POD_CIDR = '10.246.4.0/24';
const SOCKPERF_PORT = 11111;
const IPERF_PORT = 5201;

const meshConfig = (on: boolean) => meshConfigYaml({ serviceCIDR: SERVICE_CIDR, podCIDR: POD_CIDR, shortcut: on });

const workloads = `${idleWorkload('server')}---\n${idleWorkload('client')}`;

/** sockperf ping-pong: round trips per second and round-trip times (sockperf reports half of each). */
export function parseSockperf(out: string, command: string[]): RunResult {
  const r = emptyRun('sockperf', command);
  const valid = /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(out);
  if (!valid) throw new Error(`sockperf gave no result:\n${out.slice(-2000)}`);
  r.rate = Number(valid[3]) / Number(valid[1]);
  const pct = (p: string) => {
    const m = new RegExp(`percentile ${p.replace('.', '\\.')} =\\s+([\\d.]+)`).exec(out);
    return m ? 2 * Number(m[1]) : null;
  };
  const avg = /avg-latency=([\d.]+)/.exec(out);
  const max = /<MAX> observation =\s+([\d.]+)/.exec(out);
  r.latencyUs = {
    mean: avg ? 2 * Number(avg[1]) : null, p50: pct('50.000'), p90: pct('90.000'), p99: pct('99.000'), p999: pct('99.900'),
    max: max ? 2 * Number(max[1]) : null,
  };
  const dist: Array<[number, number]> = [];
  for (const m of out.matchAll(/percentile ([\d.]+) =\s+([\d.]+)/g)) dist.push([Number(m[1]), 2 * Number(m[2])]);
  r.distribution = dist.sort((a, b) => a[0] - b[0]);
  return r;
}

export const shortcut: Scenario = {
  name: 'shortcut',
  describe: 'same-node shortcut off vs on: ping-pong round trips (sockperf, one core) and bulk throughput (iperf3) between two workloads; loopback TCP for reference',
  async run(ctx: ScenarioContext) {
    const lab = benchLab('sc');
    const cli = lab.cli;
    const durationS = ctx.quick ? 1 : 5;
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-bench-sc-'));
    const configs = new ConfigRuns();
    const add = configs.add.bind(configs);
    const notes: string[] = [];
    const servers: ChildProcess[] = [];
    const exec = (wl: string, args: string[]) => [...lab.exec(wl), ...args];
    const run = (argv: string[]) => {
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: (durationS + 60) * 1000, maxBuffer: 16 << 20 });
      if (r.status !== 0) throw new Error(`${argv.slice(6).join(' ')} failed: ${r.stderr || r.stdout}`);
      return r.stdout;
    };
    const serve = (wl: string, args: string[]) => {
      const argv = exec(wl, args);
      const p = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
      servers.push(p);
      return p;
    };
    const setShortcut = async (on: boolean) => {
      writeFileSync(join(dir, 'mesh.yaml'), meshConfig(on));
      cli('apply', '-f', join(dir, 'mesh.yaml'));
      for (let i = 0; i < 100; i++) {
        const st = JSON.parse(cli('status', '-o', 'json')) as { lastReconcile?: { revision: number }; revision: number };
        if (st.lastReconcile?.revision === st.revision) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('the node did not reconcile the MeshConfig change');
    };
    const redirected = () => (JSON.parse(cli('status', '-o', 'json')) as { datapath: { counters: Record<string, number> } }).datapath.counters;
    try {
      ctx.progress('starting a mesh instance for the benchmark');
      writeFileSync(join(dir, 'mesh.yaml'), meshConfig(true));
      writeFileSync(join(dir, 'wl.yaml'), workloads);
      cli('up', '-f', join(dir, 'mesh.yaml'), '-f', join(dir, 'wl.yaml'));
      const server = (JSON.parse(cli('get', 'wl', 'server', '-n', 'bench', '-o', 'json')) as { spec: { ip: string } }).spec.ip;
      // Both ends on one core: the published figures are per core, and a
      // pinned pair is steadier on a shared machine.
      serve('server', ['taskset', '-c', '0', 'sockperf', 'sr', '--tcp', '-i', '0.0.0.0', '-p', String(SOCKPERF_PORT)]);
      serve('client', ['taskset', '-c', '0', 'sockperf', 'sr', '--tcp', '-i', '127.0.0.1', '-p', String(SOCKPERF_PORT)]);
      serve('server', ['iperf3', '-s', '-p', String(IPERF_PORT)]);
      await new Promise((r) => setTimeout(r, 1000));
      const pp = (ip: string) => ['taskset', '-c', '0', 'sockperf', 'pp', '--tcp', '-i', ip, '-p', String(SOCKPERF_PORT), '-t', String(durationS), '-m', '64'];
      const iperf = ['iperf3', '-c', server, '-p', String(IPERF_PORT), '-t', String(durationS), '-J'];
      const throughput = (argv: string[]): RunResult => {
        const j = JSON.parse(run(argv)) as { end: { sum_received: { bits_per_second: number } } };
        const r = emptyRun('iperf3', argv.slice(6));
        r.rate = j.end.sum_received.bits_per_second / 8 / (1 << 20); // MiB/s
        return r;
      };
      let movedOn = 0;
      let movedOff = 0;
      for (let rep = 0; rep < ctx.repeats; rep++) {
        for (const on of [false, true]) {
          ctx.progress(`repeat ${rep + 1}/${ctx.repeats}: shortcut ${on ? 'on' : 'off'}`);
          await setShortcut(on);
          const before = redirected().sc_redirected_bytes ?? 0;
          const tag = on ? 'on' : 'off';
          add(`ping-pong, shortcut ${tag}`, `sockperf pp --tcp -m 64, ${durationS} s, client → server workload (one connection), both pinned to CPU 0; rate = round trips/s, latency = round-trip time`,
            parseSockperf(run(exec('client', pp(server))), pp(server)), on ? 'ping-pong, shortcut off' : undefined);
          add(`iperf3, shortcut ${tag}`, `iperf3 -c, ${durationS} s, one stream, client → server workload; rate = MiB/s received`,
            throughput(exec('client', iperf)), 'iperf3, shortcut off');
          const moved = (redirected().sc_redirected_bytes ?? 0) - before;
          if (on) movedOn += moved; else movedOff += moved;
        }
        ctx.progress(`repeat ${rep + 1}/${ctx.repeats}: loopback TCP`);
        add('ping-pong, loopback TCP', 'sockperf pp --tcp -m 64 to 127.0.0.1 inside the client workload, both pinned to CPU 0 (no mesh path at all)',
          parseSockperf(run(exec('client', pp('127.0.0.1'))), pp('127.0.0.1')), 'ping-pong, shortcut off');
      }
      notes.push(`bytes redirected socket to socket: ${movedOn} with the shortcut on, ${movedOff} with it off (the counter sc_redirected_bytes).`);
      notes.push('sockperf reports one-way latency (half the round trip); the figures here are doubled to round-trip times.');
      notes.push('iperf3 rows carry MiB/s in the rate column; their latency columns are empty.');
      return {
        baseline: 'ping-pong, shortcut off',
        configs: configs.results(),
        setup: [
          `# mesh: ebmesh --instance ${lab.instance} up (two workloads on one node: server, client); MeshConfig.sameNodeShortcut toggled with ebmesh apply between runs`,
          `# servers: sockperf sr --tcp (server workload, and 127.0.0.1 in the client workload), iperf3 -s (server workload)`,
        ],
        notes,
      };
    } finally {
      for (const p of servers) if (p.exitCode === null) p.kill();
      lab.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
