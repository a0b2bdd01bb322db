/**
 * The sidecar model the mesh is compared with: one HAProxy (Debian's) per
 * workload, in the workload's network namespace, with iptables REDIRECT
 * there capturing the workload's traffic, as sidecar meshes do. Outbound:
 * connections to a chosen destination are redirected to the workload's own
 * proxy (the proxy's own connections are exempt by uid); inbound: connections
 * to the application port are redirected to the proxy, which hands them to
 * the application on 127.0.0.1. Only the benchmark's namespaces are touched.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Ports the sidecar listens on (those of Istio's sidecar). */
export const SIDECAR_OUT_PORT = 15001;
export const SIDECAR_IN_PORT = 15006;

export interface SidecarSpec {
  /** Unique among the model's sidecars; names its files. */
  name: string;
  /** The workload's network namespace. */
  netns: string;
  /** Proxy threads (default 2, Istio's default sidecar concurrency). */
  threads?: number;
  /** Capture connections to APP_PORT arriving in the namespace; hand them to 127.0.0.1:APP_PORT. */
  inbound?: { appPort: number };
  /** Capture the workload's connections to dst:port; balance them (round robin) over upstreams (IP:PORT). */
  outbound?: {
    dst: string; port: number; upstreams: string[];
    /**
     * dst is a Service VIP, which ebmesh's namespaces route nowhere (a safety
     * net: untranslated VIP traffic dies). While the capture is on, route it
     * on eth0 so connect() gets as far as the REDIRECT, as a cluster with
     * kube-proxy routes Service addresses.
     */
    routeVip?: boolean;
  };
}

export interface SidecarModel {
  /** One PID per sidecar. */
  readonly pids: number[];
  /** Adds the capture rules (the sidecars only see traffic while they are on). */
  rulesOn(): void;
  rulesOff(): void;
  /** Rules off, every sidecar stopped. Never throws. */
  stop(): void;
}

/** HAProxy in HTTP mode, dropping to the haproxy user so the outbound capture can exempt its own connections. */
function haproxyConfig(s: SidecarSpec, pidFile: string): string {
  const lines = [
    'global', `  nbthread ${s.threads ?? 2}`, '  maxconn 8000', '  user haproxy', '  group haproxy', `  pidfile ${pidFile}`,
    'defaults', '  mode http', '  timeout connect 5s', '  timeout client 60s', '  timeout server 60s', '  http-reuse always',
  ];
  if (s.inbound) {
    lines.push('frontend inbound', `  bind 0.0.0.0:${SIDECAR_IN_PORT}`, '  default_backend app',
      'backend app', `  server app 127.0.0.1:${s.inbound.appPort} maxconn 8000`);
  }
  if (s.outbound) {
    lines.push('frontend outbound', `  bind 127.0.0.1:${SIDECAR_OUT_PORT}`, '  default_backend upstreams',
      'backend upstreams', '  balance roundrobin', ...s.outbound.upstreams.map((u, i) => `  server u${i} ${u} maxconn 8000`));
  }
  return `${lines.join('\n')}\n`;
}

function haproxyUid(): string {
  const r = spawnSync('id', ['-u', 'haproxy'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('the sidecar model needs the haproxy user and binary: apt-get install -y haproxy');
  return r.stdout.trim();
}

/** Starts one HAProxy per spec (config and pid files in dir); capture rules stay off until rulesOn(). */
export function startSidecarModel(dir: string, specs: readonly SidecarSpec[]): SidecarModel {
  const uid = haproxyUid();
  const pids: number[] = [];
  const rules: Array<{ netns: string; rule: string[] }> = [];
  const routes: Array<{ netns: string; dst: string }> = [];
  let on = false;
  const ipt = (netns: string, op: '-A' | '-D', rule: string[]): void => {
    const r = spawnSync('ip', ['netns', 'exec', netns, 'iptables', '-t', 'nat', op, ...rule], { encoding: 'utf8' });
    if (r.status !== 0 && op === '-A') throw new Error(`iptables -t nat -A ${rule.join(' ')} in ${netns}: ${r.stderr.trim()}`);
  };
  const route = (netns: string, op: 'replace' | 'del', dst: string): void => {
    const r = spawnSync('ip', ['-n', netns, 'route', op, `${dst}/32`, 'dev', 'eth0'], { encoding: 'utf8' });
    if (r.status !== 0 && op === 'replace') throw new Error(`ip route replace ${dst}/32 dev eth0 in ${netns}: ${r.stderr.trim()}`);
  };
  const model: SidecarModel = {
    pids,
    rulesOn() {
      if (on) return;
      on = true;
      for (const r of rules) ipt(r.netns, '-A', r.rule);
      for (const r of routes) route(r.netns, 'replace', r.dst);
    },
    rulesOff() {
      if (!on) return;
      on = false;
      for (const r of routes) route(r.netns, 'del', r.dst);
      for (const r of rules) ipt(r.netns, '-D', r.rule);
    },
    stop() {
      try { model.rulesOff(); } catch { /* the namespace is already gone */ }
      for (const pid of pids) {
        try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
      }
    },
  };
  try {
    for (const s of specs) {
      const file = join(dir, `sidecar-${s.name}.cfg`);
      const pidFile = join(dir, `sidecar-${s.name}.pid`);
      writeFileSync(file, haproxyConfig(s, pidFile));
      const r = spawnSync('ip', ['netns', 'exec', s.netns, 'haproxy', '-D', '-f', file], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`haproxy sidecar ${s.name} in ${s.netns} did not start: ${r.stderr.trim()}`);
      pids.push(Number(readFileSync(pidFile, 'utf8').trim().split('\n')[0]));
      if (s.inbound) {
        rules.push({ netns: s.netns, rule: ['PREROUTING', '-p', 'tcp', '--dport', String(s.inbound.appPort), '-j', 'REDIRECT', '--to-ports', String(SIDECAR_IN_PORT)] });
      }
      if (s.outbound) {
        rules.push({ netns: s.netns, rule: ['OUTPUT', '-p', 'tcp', '-d', `${s.outbound.dst}/32`, '--dport', String(s.outbound.port),
          '-m', 'owner', '!', '--uid-owner', uid, '-j', 'REDIRECT', '--to-ports', String(SIDECAR_OUT_PORT)] });
        if (s.outbound.routeVip) routes.push({ netns: s.netns, dst: s.outbound.dst });
      }
    }
  } catch (e) {
    model.stop();
    throw e;
  }
  return model;
}

/** How the model is set up, for a report's setup lines. */
export const SIDECAR_MODEL_SETUP = '# sidecars: one haproxy -D per workload in its netns (ip netns exec), nbthread 2, mode http, http-reuse always; ' +
  `iptables -t nat OUTPUT -d DST --dport PORT -m owner ! --uid-owner haproxy REDIRECT --to-ports ${SIDECAR_OUT_PORT} (client side) and ` +
  `PREROUTING --dport 8080 REDIRECT --to-ports ${SIDECAR_IN_PORT} (server side), added only for the sidecar runs`;
