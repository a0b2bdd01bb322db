/**
 * The kernel filesystems the agent needs: bpffs for pins and cgroup v2 for
 * the hooks. A fresh machine may have neither mounted where we expect, and
 * cgroup v2 may sit at /sys/fs/cgroup/unified beside a v1 hierarchy.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { MissingFeatureError } from './errors.js';

interface Mount {
  source: string;
  target: string;
  type: string;
}

function mounts(): Mount[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [source = '', target = '', type = ''] = line.split(' ');
      return { source, target: target.replace(/\\040/g, ' '), type };
    });
}

export const BPFFS = '/sys/fs/bpf';

/**
 * Ensures bpffs is mounted at /sys/fs/bpf; returns the path. `mayMount`
 * false (an agent in a container): a bpffs mounted here would be the
 * container's own and go with it, taking the pins that keep the data path up
 * across agent restarts; the node must provide it.
 */
export function ensureBpffs(mayMount = true): string {
  if (mounts().some((m) => m.type === 'bpf' && m.target === BPFFS)) return BPFFS;
  if (!mayMount) throw new MissingFeatureError(`bpffs at ${BPFFS} from the node (none is mounted there)`, `mount it on the node before the agent starts: mount -t bpf bpf ${BPFFS}`);
  mkdirSync(BPFFS, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS], { stdio: 'pipe' });
  } catch (e) {
    throw new MissingFeatureError(`bpffs (mount -t bpf at ${BPFFS} failed: ${(e as Error).message.trim()})`, 'run as root');
  }
  return BPFFS;
}

/** Finds (or mounts) the cgroup v2 hierarchy; returns its path. */
export function cgroup2Root(): string {
  const v2 = mounts().filter((m) => m.type === 'cgroup2');
  const preferred = v2.find((m) => m.target === '/sys/fs/cgroup') ?? v2.find((m) => m.target === '/sys/fs/cgroup/unified') ?? v2[0];
  if (preferred) return preferred.target;
  const target = existsSync('/sys/fs/cgroup/unified') ? '/sys/fs/cgroup/unified' : '/run/ebmesh/cgroup2';
  mkdirSync(target, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'cgroup2', 'none', target], { stdio: 'pipe' });
  } catch (e) {
    throw new MissingFeatureError(`cgroup v2 (mount at ${target} failed: ${(e as Error).message.trim()})`, 'run as root on a kernel with cgroup v2');
  }
  return target;
}
