/**
 * What the node needs from the kernel, probed up front so that a missing
 * piece is one clear error naming it, not a cryptic load failure later.
 */
import { existsSync, readFileSync } from 'node:fs';
import { bpf } from './libbpf.js';
import { MissingCapabilityError, MissingFeatureError } from './errors.js';

const PROG_TYPE = { CGROUP_SKB: 8, SOCK_OPS: 13, SK_MSG: 16, CGROUP_SOCK_ADDR: 18 } as const;
const HELPER = { get_socket_cookie: 46, get_netns_cookie: 122, set_retval: 187 } as const;

export interface FeatureCheck {
  feature: string;
  ok: boolean;
  hint?: string;
}

export function probeFeatures(): FeatureCheck[] {
  const checks: FeatureCheck[] = [];
  const prog = (name: keyof typeof PROG_TYPE) => {
    const rc = bpf.libbpf_probe_bpf_prog_type(PROG_TYPE[name], null) as number;
    checks.push({ feature: `BPF program type ${name.toLowerCase()}`, ok: rc === 1, hint: rc < 0 ? 'probing needs root (CAP_BPF, CAP_SYS_ADMIN)' : undefined });
  };
  const helper = (name: keyof typeof HELPER) => {
    const rc = bpf.libbpf_probe_bpf_helper(PROG_TYPE.CGROUP_SOCK_ADDR, HELPER[name], null) as number;
    checks.push({ feature: `BPF helper bpf_${name} in cgroup/connect programs`, ok: rc === 1 });
  };
  checks.push({ feature: 'kernel BTF (/sys/kernel/btf/vmlinux)', ok: existsSync('/sys/kernel/btf/vmlinux') });
  prog('CGROUP_SOCK_ADDR');
  helper('get_socket_cookie');
  helper('get_netns_cookie');
  helper('set_retval');
  return checks;
}

const CAPS = { CAP_NET_ADMIN: 12n, CAP_SYS_ADMIN: 21n, CAP_BPF: 39n } as const;

export function missingCapabilities(): string[] {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
  const eff = BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`);
  return Object.entries(CAPS).filter(([, bit]) => ((eff >> bit) & 1n) === 0n).map(([name]) => name);
}

export function requireFeatures(): void {
  if (process.getuid?.() !== 0) {
    throw new MissingFeatureError('running as non-root', 'ebmesh loads BPF programs and makes network namespaces: run it as root');
  }
  // Root without the capabilities (a container, setpriv) looks to libbpf's
  // probes like an old kernel: check the capabilities first, and name them.
  const lacking = missingCapabilities();
  if (lacking.length) {
    throw new MissingCapabilityError(lacking, 'run ebmesh as root with CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_BPF (e.g. not inside a restricted container)');
  }
  const missing = probeFeatures().filter((c) => !c.ok);
  if (missing.length) {
    throw new MissingFeatureError(missing.map((m) => m.feature).join('; '), missing.find((m) => m.hint)?.hint ?? 'ebmesh needs Linux 5.18 or later with BPF and BTF enabled');
  }
}
