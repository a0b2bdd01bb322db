/**
 * Where the kubelet puts a pod's cgroup, from its UID and QoS class, under
 * the cgroup v2 hierarchy: programs attached there apply to every container
 * of the pod, before its first socket when the pod is found early, and to
 * a pod that started before the agent alike.
 *
 * cgroupfs driver:  kubepods[/burstable|/besteffort]/pod<UID>
 * systemd driver:   kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<UID with _ for ->.slice
 * Guaranteed pods sit directly under kubepods (no QoS level).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

/** The candidate paths (relative to the cgroup v2 root) for both drivers, most likely first. */
export function podCgroupCandidates(uid: string, qos: QosClass | undefined, kubeletRoot = ''): string[] {
  const level = qos === 'Burstable' ? 'burstable' : qos === 'BestEffort' ? 'besteffort' : undefined;
  const u = uid.replace(/-/g, '_');
  const fs = join(kubeletRoot, 'kubepods', ...(level ? [level] : []), `pod${uid}`);
  const sd = level
    ? join(kubeletRoot, 'kubepods.slice', `kubepods-${level}.slice`, `kubepods-${level}-pod${u}.slice`)
    : join(kubeletRoot, 'kubepods.slice', `kubepods-pod${u}.slice`);
  return [fs, sd];
}

/** The pod's cgroup directory (absolute), if it exists now. */
export function findPodCgroup(cgroupRoot: string, uid: string, qos: QosClass | undefined, kubeletRoot = ''): string | undefined {
  for (const rel of podCgroupCandidates(uid, qos, kubeletRoot)) {
    const p = join(cgroupRoot, rel);
    if (existsSync(p)) return p;
  }
  return undefined;
}
