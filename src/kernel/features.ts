/**
 * What the node needs from the kernel, probed up front so that a missing
 * piece is one clear error naming it, not a cryptic load failure later.
 */
import { existsSync } from 'node:fs';
import { bpf } from './libbpf.js';
import { MissingFeatureError } from './errors.js';

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

export function requireFeatures(): void {
  if (process.getuid?.() !== 0) {
    throw new MissingFeatureError('running as non-root', 'ebmesh loads BPF programs and makes network namespaces: run it as root');
  }
  const missing = probeFeatures().filter((c) => !c.ok);
  if (missing.length) {
    throw new MissingFeatureError(missing.map((m) => m.feature).join('; '), missing.find((m) => m.hint)?.hint ?? 'ebmesh needs Linux 5.18 or later with BPF and BTF enabled');
  }
}
