/**
 * `ebmesh bench policy`: new-connection latency (connect + one request, a
 * fresh TCP connection each) from a mesh client to a server whose ingress
 * is selected by 0, 1,000 and 10,000 policy rules, enforced by ebmesh's
 * maps, against the same rules as classic iptables rules in the server's
 * namespace (conntrack ESTABLISHED first, then one ACCEPT per rule in order,
 * the client's rule last, then DROP); and the time from `ebmesh apply` of a
 * rule change to the first connection it refuses. The instance and its
 * address plan belong to the benchmark and are removed afterwards.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instancePaths, netnsName } from '../../src/paths.js';
import { runLoadgen } from '../loadgen.js';
import { sampleFootprint } from '../footprint.js';
import { benchLab, benchMesh, fillerAddress, serverPolicy, type BenchLab } from './mesh-lab.js';
import { ConfigRuns, runFromLoad, type Scenario, type ScenarioContext } from '../scenario.js';

const SERVICE_CIDR = '10.98.200.0/24';
const POD_CIDR = '10.246.7.0/24';

const base = benchMesh({ serviceCIDR: SERVICE_CIDR, podCIDR: POD_CIDR });

function iptablesRules(n: number, client: string): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  if (n > 0) {
    lines.push('-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT', '-A INPUT -i lo -j ACCEPT');
    for (let i = 0; i < n - 1; i++) lines.push(`-A INPUT -s ${fillerAddress(i)}/32 -p tcp -m tcp --dport 8080 -j ACCEPT`);
    lines.push(`-A INPUT -s ${client}/32 -p tcp -m tcp --dport 8080 -j ACCEPT`, '-A INPUT -j DROP');
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Milliseconds from the start of `change()` to the first connect the client gets refused (or timed out). */
async function applyToEnforcement(lab: BenchLab, server: string, change: () => void): Promise<number | null> {
  const [cmd, ...args] = lab.exec('client');
  const probe = spawn(cmd!, [...args, 'python3', '-c', `
import socket, time
end = time.time() + 20
while time.time() < end:
    s = socket.socket(); s.settimeout(0.05)
    try:
        s.connect(("${server}", 8080)); s.close()
    except OSError:
        print(time.time() * 1000, flush=True); break
    time.sleep(0.002)
`], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  probe.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<void>((r) => probe.on('exit', () => r()));
  await new Promise((r) => setTimeout(r, 1500)); // the probe loop is running
  const t0 = Date.now();
  change();
  await done;
  const t = Number.parseFloat(out.trim());
  return Number.isFinite(t) ? t - t0 : null;
}

export const policyBench: Scenario = {
  name: 'policy',
  describe: 'new-connection latency with 0, 1,000 and 10,000 policy rules selecting the target (ebmesh maps vs iptables), and apply-to-enforcement time',
  async run(ctx: ScenarioContext) {
    const lab = benchLab('pol');
    const cli = lab.cli;
    const counts = ctx.quick ? [0, 100] : [0, 1000, 10000];
    const rate = ctx.quick ? 200 : 1000;
    const durationS = ctx.quick ? 1 : 5;
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-bench-pol-'));
    const configs = new ConfigRuns();
    const add = configs.add.bind(configs);
    const notes: string[] = [];
    const serverNs = netnsName(instancePaths(lab.instance), 'bench', 'server');
    const ipt = (rules: string) => spawnSync('ip', ['netns', 'exec', serverNs, 'iptables-restore'], { input: rules, encoding: 'utf8' });
    try {
      ctx.progress('starting a mesh instance for the benchmark');
      writeFileSync(join(dir, 'base.yaml'), base);
      cli('up', '-f', join(dir, 'base.yaml'));
      const status = JSON.parse(cli('status', '-o', 'json')) as { pid: number };
      const ipOf = (n: string) => (JSON.parse(cli('get', 'wl', n, '-n', 'bench', '-o', 'json')) as { spec: { ip: string } }).spec.ip;
      const server = ipOf('server');
      const client = ipOf('client');
      const load = () => runLoadgen({
        url: `http://${server}:8080/`, rate, durationS, connections: 16, warmupS: ctx.quick ? 0.2 : 1, timeoutMs: 2000, connectEach: true,
        prefix: lab.exec('client'),
      });
      for (const n of counts) {
        const file = join(dir, `policy-${n}.yaml`);
        if (n > 0) {
          writeFileSync(file, serverPolicy(n));
          ctx.progress(`applying a policy with ${n} rules`);
          const t = Date.now();
          cli('apply', '-f', file);
          notes.push(`apply of a policy with ${n} rules took ${((Date.now() - t) / 1000).toFixed(2)} s (parse, validate, store, compile, program maps).`);
        }
        for (let rep = 0; rep < ctx.repeats; rep++) {
          ctx.progress(`${n} rules, repeat ${rep + 1}/${ctx.repeats}`);
          if (n === 0) {
            add('no policy', 'mesh client → server IP:8080, nothing selects the server', runFromLoad(await load()));
            continue;
          }
          const agent = sampleFootprint([status.pid], 250, { descendants: false });
          add(`ebmesh, ${n} rules`, `${n} ingress rules selecting the server, judged at connect() and SYN by map lookups`, runFromLoad(await load(), { agent: agent.stop() }), 'no policy');
        }
        if (n > 0) {
          ctx.progress(`apply-to-enforcement with ${n} rules`);
          const changed = join(dir, `policy-${n}-deny.yaml`);
          writeFileSync(changed, serverPolicy(n, false));
          const ms = await applyToEnforcement(lab, server, () => cli('apply', '-f', changed));
          notes.push(`apply-to-enforcement with ${n} rules: ${ms === null ? 'not observed within 20 s' : `${ms.toFixed(0)} ms`} from the start of \`ebmesh apply\` (CLI start included) to the first refused connect.`);
          cli('delete', 'networkpolicy', 'server-in', '-n', 'bench');
          const r = ipt(iptablesRules(n, client));
          if (r.status !== 0) { notes.push(`iptables was not measured: ${(r.stderr ?? '').trim()}`); continue; }
          for (let rep = 0; rep < ctx.repeats; rep++) {
            ctx.progress(`iptables, ${n} rules, repeat ${rep + 1}/${ctx.repeats}`);
            add(`iptables, ${n} rules`, `the same ${n} rules as iptables INPUT rules in the server's namespace (client's rule last)`, runFromLoad(await load()), 'no policy');
          }
          ipt(iptablesRules(0, client));
        }
      }
      return {
        baseline: 'no policy',
        configs: configs.results(),
        setup: [
          `# mesh: ebmesh --instance ${lab.instance} up -f base.yaml (one nginx server, one worker; a client workload)`,
          `# load: loadgen --connect-each, ${rate} req/s open loop, ${durationS} s per run, 16 concurrent, inside the client (ebmesh exec)`,
          '# policy: one NetworkPolicy selecting the server; n - 1 ipBlock /32 rules that never match, then the client\'s rule',
          '# iptables: the same rules in the server namespace\'s INPUT chain, after a conntrack ESTABLISHED accept, then DROP',
        ],
        notes: [
          ...notes,
          'Every request opens a new connection, so each one pays the connect-time check (ebmesh) or the INPUT walk for its SYN (iptables).',
        ],
      };
    } finally {
      lab.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
