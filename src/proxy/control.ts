/**
 * The node proxy's control socket and PID file: where an agent finds the
 * proxy a previous agent started (the proxy outlives agents, so restarting
 * one never touches the connections it carries), and how teardown finds a
 * proxy to stop, by its PID, even after the agent crashed.
 *
 * The channel is one JSON message per line over a unix socket in the
 * instance's run directory; messages are in ./messages.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import type { InstancePaths } from '../paths.js';
import { stopPid } from '../host/pids.js';
import { RELAY_ADDON } from '../relay/index.js';

export interface ProxyFiles {
  socket: string;
  pidFile: string;
  log: string;
}

/**
 * Each proxy generation slot (./messages.ts ProxySlot) has its own control
 * socket and PID file; slot 0 keeps the names of proxies from before
 * handovers existed, so an agent finds (and hands over from) one of those.
 * Both generations write the one log.
 */
export function proxyFiles(paths: Pick<InstancePaths, 'runDir' | 'stateDir'>, slot: 0 | 1 = 0): ProxyFiles {
  const sfx = slot ? `-${slot}` : '';
  return { socket: join(paths.runDir, `proxy${sfx}.sock`), pidFile: join(paths.runDir, `proxy${sfx}.pid`), log: join(paths.stateDir, 'proxy.log') };
}

/** The node proxy process's entry point, the compiled sibling of this module. */
export const PROXY_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

let build: string | undefined;
/**
 * Which code a proxy runs: a digest of the compiled tree it loads from
 * (dist/src) and the relay addon. The proxy takes it at its start, the agent at its own: an
 * agent built from other code hands over to a proxy of its own build.
 */
export function proxyBuild(): string {
  if (build) return build;
  const root = fileURLToPath(new URL('../', import.meta.url));
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js') && !e.name.endsWith('.test.js')) h.update(p.slice(root.length)).update(readFileSync(p));
    }
  };
  walk(root);
  // The relay's machine code is part of the proxy too: a rebuilt addon is another build.
  if (existsSync(RELAY_ADDON)) h.update('relay.node').update(readFileSync(RELAY_ADDON));
  return (build = h.digest('hex').slice(0, 16));
}

/** Lines are bounded: a peer that sends no newline cannot make us buffer forever. */
const MAX_LINE = 64 << 20;

/** Reads newline-delimited JSON from a socket; a line that does not parse closes it (the peer is not ours). */
export function readMessages<T>(socket: Socket, onMessage: (m: T) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line) continue;
      let m: T;
      try {
        m = JSON.parse(line) as T;
      } catch {
        socket.destroy(new Error('control socket: a line that is not JSON'));
        return;
      }
      onMessage(m);
    }
    if (buf.length > MAX_LINE) socket.destroy(new Error(`control socket: a message over ${MAX_LINE} bytes`));
  });
}

export function writeMessage(socket: Socket | undefined, m: unknown): void {
  if (socket && !socket.destroyed && socket.writable) socket.write(`${JSON.stringify(m)}\n`);
}

/**
 * The PID in the proxy's PID file, if that process is still this
 * instance's proxy: a PID reused by anything else (its command line does
 * not name our control socket) is never signalled.
 */
export function ownedProxyPid(files: ProxyFiles): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(files.pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    // '/proxy/main.js' also matches proxies started by builds that kept the process under agent/proxy/.
    return argv.some((a) => a.endsWith('/proxy/main.js')) && argv.includes(files.socket) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops a proxy by its PID: SIGTERM, then SIGKILL after graceMs. Resolves once it is gone. */
export function stopProxyPid(pid: number, graceMs = 3000): Promise<void> {
  return stopPid(pid, graceMs);
}

/** Teardown: the instance's proxies (both slots: one may be draining), found by their PID files, are stopped (works with no agent at all). */
export async function stopOwnedProxy(paths: Pick<InstancePaths, 'runDir' | 'stateDir'>): Promise<void> {
  await Promise.all(([0, 1] as const).map(async (slot) => {
    const pid = ownedProxyPid(proxyFiles(paths, slot));
    if (pid) await stopProxyPid(pid);
  }));
}
