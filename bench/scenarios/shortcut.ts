/**
 * `ebmesh bench shortcut`: two workloads on one node, the same-node
 * shortcut off vs on, in one run: request/response round trips (the load
 * generator in closed loop over one keep-alive connection to nginx) and
 * bulk throughput (curl downloading a file from nginx). Both are event-loop
 * programs (non-blocking sockets): the only ones the shortcut carries,
 * since a blocking socket would read through the kernel's sockmap path and
 * see what plain TCP never shows (docs/shortcut.md); sockperf and iperf3,
 * blocking, stay on plain TCP. Loopback inside the server workload is
 * measured too, for reference. The setting only applies to new
 * connections, and every run opens its own, so toggling
 * MeshConfig.sameNodeShortcut between runs is enough.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoadgen } from '../loadgen.js';
import { applyShortcut, benchLab, idleWorkload, meshConfigYaml, nginxWorkload } from './mesh-lab.js';
import { ConfigRuns, emptyRun, runFromLoad, type RunResult, type Scenario, type ScenarioContext } from '../scenario.js';

const CIDRS = { serviceCIDR: '10.98.4.0/24', podCIDR: '10.246.4.0/24' };

/** curl's per-transfer figures, one line per URL: bytes and seconds. */
export function parseCurlTransfers(out: string, command: string[]): RunResult {
  let bytes = 0;
  let seconds = 0;
  for (const line of out.trim().split('\n')) {
    const m = /^(\d+) ([\d.]+) (\d{3})$/.exec(line.trim());
    if (!m) throw new Error(`curl gave an unexpected line: ${line}`);
    if (m[3] !== '200') throw new Error(`curl got HTTP ${m[3]}`);
    bytes += Number(m[1]);
    seconds += Number(m[2]);
  }
  if (!bytes || !seconds) throw new Error(`curl moved nothing:\n${out}`);
  const r = emptyRun('curl', command);
  r.rate = bytes / seconds / (1 << 20); // MiB/s
  return r;
}

export const shortcut: Scenario = {
  name: 'shortcut',
  describe: 'same-node shortcut off vs on: request/response round trips (loadgen → nginx, one connection) and bulk throughput (curl ← nginx) between two workloads; loopback for reference',
  async run(ctx: ScenarioContext) {
    const lab = benchLab('sc');
    const cli = lab.cli;
    const durationS = ctx.quick ? 1 : 5;
    const fileMiB = ctx.quick ? 16 : 64;
    const downloads = ctx.quick ? 8 : 16;
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-bench-sc-'));
    const www = join(dir, 'www');
    const configs = new ConfigRuns();
    const add = configs.add.bind(configs);
    const notes: string[] = [];
    try {
      ctx.progress('starting a mesh instance for the benchmark');
      mkdirSync(www);
      writeFileSync(join(www, 'big'), randomBytes(fileMiB << 20));
      chmodSync(dir, 0o755); // nginx's workers read it as nobody
      const server = nginxWorkload('server', 'server', {
        http: 'sendfile on; keepalive_requests 100000000; keepalive_timeout 120s;',
        locations: `location /ok { return 200 "ok\\n"; } location / { root ${www}; }`,
      });
      writeFileSync(join(dir, 'mesh.yaml'), `${meshConfigYaml({ ...CIDRS, shortcut: true })}---\n${server}---\n${idleWorkload('client')}`);
      cli('up', '-f', join(dir, 'mesh.yaml'));
      const ip = (JSON.parse(cli('get', 'wl', 'server', '-n', 'bench', '-o', 'json')) as { spec: { ip: string } }).spec.ip;
      const roundTrips = (workload: string, host: string) => runLoadgen({
        url: `http://${host}:8080/ok`, rate: 0, durationS, connections: 1, warmupS: ctx.quick ? 0.2 : 1, timeoutMs: 2000,
        prefix: lab.exec(workload),
      });
      const curl = ['curl', '-s', '-w', '%{size_download} %{time_total} %{http_code}\\n',
        ...Array.from({ length: downloads }, () => ['-o', '/dev/null', `http://${ip}:8080/big`]).flat()];
      const bulk = (): RunResult => {
        const argv = [...lab.exec('client'), ...curl];
        const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 300_000, maxBuffer: 16 << 20 });
        if (r.status !== 0) throw new Error(`curl failed: ${r.stderr || r.stdout}`);
        return parseCurlTransfers(r.stdout, curl);
      };
      const redirected = () => (JSON.parse(cli('status', '-o', 'json')) as { datapath: { counters: Record<string, number> } }).datapath.counters.sc_redirected_bytes ?? 0;
      let movedOn = 0;
      let movedOff = 0;
      for (let rep = 0; rep < ctx.repeats; rep++) {
        for (const on of [false, true]) {
          ctx.progress(`repeat ${rep + 1}/${ctx.repeats}: shortcut ${on ? 'on' : 'off'}`);
          await applyShortcut(cli, dir, CIDRS, on);
          const before = redirected();
          const tag = on ? 'on' : 'off';
          add(`request/response, shortcut ${tag}`, `loadgen --rate 0 (closed loop), one keep-alive connection, ${durationS} s, client → nginx /ok in the server workload; rate = round trips/s`,
            runFromLoad(await roundTrips('client', ip)), on ? 'request/response, shortcut off' : undefined);
          add(`bulk download, shortcut ${tag}`, `curl, ${downloads} × ${fileMiB} MiB over one connection from nginx (sendfile) in the server workload; rate = MiB/s`,
            bulk(), 'bulk download, shortcut off');
          const moved = redirected() - before;
          if (on) movedOn += moved; else movedOff += moved;
        }
        ctx.progress(`repeat ${rep + 1}/${ctx.repeats}: loopback`);
        add('request/response, loopback', 'the same load generator to nginx on 127.0.0.1 inside the server workload (no mesh path at all)',
          runFromLoad(await roundTrips('server', '127.0.0.1')), 'request/response, shortcut off');
      }
      notes.push(`bytes redirected socket to socket: ${movedOn} with the shortcut on, ${movedOff} with it off (the counter sc_redirected_bytes).`);
      notes.push('bulk download rows carry MiB/s in the rate column; their latency columns are empty.');
      return {
        baseline: 'request/response, shortcut off',
        configs: configs.results(),
        setup: [
          `# mesh: ebmesh --instance ${lab.instance} up (two workloads on one node: server running nginx, client); MeshConfig.sameNodeShortcut toggled with ebmesh apply between runs`,
          `# bulk: ${curl.join(' ')}`,
        ],
        notes,
      };
    } finally {
      lab.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
