/**
 * A small world per kernel test, in the spirit of namespaced tests: a
 * network namespace, a cgroup and a bpffs pin directory, all named after
 * this process so parallel runs cannot collide, and all removed by
 * cleanup(), which tests call from after() so it runs on failure too.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, rmdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Root, ensureBpffs } from '../../src/kernel/index.js';

export class Sandbox {
  readonly netns: string;
  readonly cgroup: string;
  readonly pinDir: string;
  private children: ChildProcess[] = [];

  constructor(tag: string) {
    const id = `${tag}-${process.pid}`;
    this.netns = `ebtest-${id}`;
    ensureBpffs();
    this.cgroup = join(cgroup2Root(), `ebtest-${id}`);
    this.pinDir = `/sys/fs/bpf/ebtest-${id}`;
    this.cleanup();
    execFileSync('ip', ['netns', 'add', this.netns]);
    this.ip('link', 'set', 'lo', 'up');
    mkdirSync(this.cgroup, { recursive: true });
    mkdirSync(this.pinDir, { recursive: true });
  }

  ip(...args: string[]): void {
    execFileSync('ip', ['-n', this.netns, ...args], { stdio: 'pipe' });
  }

  /** A long-running process in the namespace (not in the cgroup). */
  background(argv: string[]): ChildProcess {
    const c = spawn('ip', ['netns', 'exec', this.netns, ...argv], { stdio: ['ignore', 'ignore', 'inherit'] });
    this.children.push(c);
    return c;
  }

  /** Runs python code in the namespace; inside the cgroup (the mesh) when `inMesh`. */
  python(code: string, inMesh = true): string {
    const script = inMesh
      ? 'echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" python3 -c "$0"'
      : 'exec ip netns exec "$2" python3 -c "$0"';
    const r = spawnSync('sh', ['-c', script, code, this.cgroup, this.netns], { encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
    return r.stdout.trim();
  }

  cleanup(): void {
    for (const c of this.children) if (c.pid && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
    this.children = [];
    spawnSync('ip', ['netns', 'del', this.netns], { stdio: 'ignore' });
    rmSync(this.pinDir, { recursive: true, force: true });
    if (existsSync(this.cgroup)) {
      try { rmdirSync(this.cgroup); } catch { /* a process still leaving */ }
    }
  }
}

/** Python: a TCP server answering its own address, and a UDP echo, on each given ip:port (IPv4 or IPv6). */
export function backendServerCode(addrs: Array<[string, number]>): string {
  return `
import socket, threading
fam = lambda ip: socket.AF_INET6 if ":" in ip else socket.AF_INET
def tcp(ip, port):
    s = socket.socket(fam(ip)); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((ip, port)); s.listen(128)
    while True:
        c, _ = s.accept(); c.sendall(f"{ip}:{port}".encode()); c.close()
def udp(ip, port):
    s = socket.socket(fam(ip), socket.SOCK_DGRAM); s.bind((ip, port))
    while True:
        d, a = s.recvfrom(2048); s.sendto(f"{ip}:{port}".encode(), a)
for ip, port in ${JSON.stringify(addrs)}:
    threading.Thread(target=tcp, args=(ip, port), daemon=True).start()
    threading.Thread(target=udp, args=(ip, port), daemon=True).start()
threading.Event().wait(120)
`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
