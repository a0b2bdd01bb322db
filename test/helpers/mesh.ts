/**
 * Integration tests drive the real CLI (bin/ebmesh) against their own
 * instance: its own name, address plan, bridge, cgroup and pins, so a demo
 * running on the same host is not disturbed. `down` runs in after(), so it
 * runs when a test fails too.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export class TestMesh {
  readonly instance: string;
  readonly dir: string;
  /** A distinct /24 per test file: the service and pod ranges of this instance. */
  readonly serviceCIDR: string;
  readonly podCIDR: string;
  /** Its IPv6 ranges, for a dual-stack mesh (ULA, apart from anything a host uses). */
  readonly serviceCIDRv6: string;
  readonly podCIDRv6: string;

  constructor(tag: string) {
    const n = 100 + (process.pid % 100);
    this.instance = `ebt-${tag}-${process.pid}`.slice(0, 30);
    this.serviceCIDR = `10.97.${n}.0/24`;
    this.podCIDR = `10.245.${n}.0/24`;
    this.serviceCIDRv6 = `fd00:ebe:${n.toString(16)}:96::/112`;
    this.podCIDRv6 = `fd00:ebe:${n.toString(16)}:244::/64`;
    this.dir = mkdtempSync(join(tmpdir(), 'ebmesh-it-'));
  }

  cli(...args: string[]): Run {
    const r = spawnSync(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', this.instance, ...args], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Runs the CLI and fails with its output when it exits non-zero. */
  ok(...args: string[]): string {
    const r = this.cli(...args);
    if (r.code !== 0) throw new Error(`ebmesh ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  file(name: string, text: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, text);
    return p;
  }

  meshConfigFile(): string {
    return this.file('mesh.yaml', `apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  serviceCIDR: ${this.serviceCIDR}\n  podCIDR: ${this.podCIDR}\n`);
  }

  /** `ebmesh exec WORKLOAD -- sh -c SCRIPT` */
  sh(workload: string, script: string): Run {
    return this.cli('exec', workload, '--', 'sh', '-c', script);
  }

  /** Runs `ebmesh exec WORKLOAD -- sh -c SCRIPT` without blocking; resolves with its output. */
  shAsync(workload: string, script: string, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.shRunning(workload, script, timeoutMs).done;
  }

  /**
   * Like shAsync, and `running` settles once the script has started inside the workload (exec has found it: on a
   * multi-node lab that asks the control plane, which a test may be about to stop).
   */
  shRunning(workload: string, script: string, timeoutMs = 120_000): { running: Promise<void>; printed: (text: string) => Promise<void>; done: Promise<{ code: number; stdout: string; stderr: string }> } {
    const MARK = 'ebmesh-test-running\n';
    const child = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', this.instance, 'exec', workload, '--', 'sh', '-c', `printf '${MARK.trim()}\\n' >&2; ${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let markSeen: () => void = () => undefined;
    const running = new Promise<void>((resolve, reject) => {
      markSeen = resolve;
      child.on('close', (code) => reject(new Error(`exec ${workload} ended (${code}) before its script ran: ${stderr}`)));
    });
    running.catch(() => undefined); // a caller that never waits for it must not see an unhandled rejection
    const waiters: Array<{ text: string; resolve: () => void }> = [];
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      for (const w of waiters.filter((x) => stdout.includes(x.text))) waiters.splice(waiters.indexOf(w), 1), w.resolve();
    });
    /** Settles once the script has printed TEXT on its stdout (rejects if it ends first). */
    const printed = (text: string) => new Promise<void>((resolve, reject) => {
      if (stdout.includes(text)) return resolve();
      waiters.push({ text, resolve });
      child.on('close', () => reject(new Error(`exec ${workload} ended before printing ${JSON.stringify(text)}: ${stdout}${stderr}`)));
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      if (stderr.includes(MARK)) {
        stderr = stderr.replace(MARK, '');
        markSeen();
      }
    });
    const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? -1, stdout, stderr }); });
    });
    return { running, printed, done };
  }

  down(): void {
    this.cli('down');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function hostRuleset(): string {
  const ipt = spawnSync('iptables-save', [], { encoding: 'utf8' });
  // -s: the rules without their counters, which any traffic on the host moves.
  const nft = spawnSync('nft', ['-s', 'list', 'ruleset'], { encoding: 'utf8' });
  // iptables-save stamps the time in comments and counts packets per chain; only the rules matter.
  return `${(ipt.stdout ?? '').replace(/^#.*$/gm, '').replace(/ \[\d+:\d+\]$/gm, '')}\n${nft.stdout ?? ''}`;
}

/**
 * Service `empty` in NAMESPACE selecting Workload `lazy`, which never gets
 * ready (it listens on nothing): a Service without endpoints. Apply it after
 * `up`, which waits for readiness.
 */
export function serviceWithoutEndpoints(namespace: string): string {
  return `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: lazy, namespace: ${namespace}, labels: {app: lazy}}
spec:
  ports: [{name: http, containerPort: 8080}]
  command: [sleep, infinity]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: ${namespace}}
spec: {selector: {app: lazy}, ports: [{port: 80, targetPort: 8080}]}
`;
}
