/**
 * Attachments as pinned BPF links. A pinned link keeps its program attached
 * after the agent exits; a restarted agent swaps the program inside the
 * existing link (bpf_link_update), which is atomic: there is no instant at
 * which the hook runs no program, or runs none of ours.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { bpf, lastErrno } from './libbpf.js';
import { KernelError } from './errors.js';
import { closeFd, openDirFd, withFd } from './fd.js';

export interface AttachResult {
  pin: string;
  /** true when an existing link was updated in place */
  updated: boolean;
}

/**
 * Swaps `progFd` into the link pinned at `pin`, if there is one: the
 * hitless path of every attach. Undefined when a new link is needed (a
 * stale pin of something else is removed first).
 */
function updatePinned(progFd: number, pin: string): AttachResult | undefined {
  if (!existsSync(pin)) return undefined;
  const linkFd = bpf.bpf_obj_get(pin) as number;
  if (linkFd >= 0) {
    return withFd(linkFd, (fd) => {
      const rc = bpf.bpf_link_update(fd, progFd, null) as number;
      if (rc < 0) throw new KernelError(`updating link ${pin}`, -rc, { where: pin });
      return { pin, updated: true };
    });
  }
  rmSync(pin, { force: true });
  return undefined;
}

/** Pins a new link at `pin` and closes our fd of it: from then on the pin alone holds it. */
function pinNewLink(linkFd: number, pin: string): AttachResult {
  try {
    mkdirSync(dirname(pin), { recursive: true });
    const rc = bpf.bpf_obj_pin(linkFd, pin) as number;
    if (rc < 0) throw new KernelError(`pinning link at ${pin}`, -rc || lastErrno(), { where: pin });
  } finally {
    closeFd(linkFd);
  }
  return { pin, updated: false };
}

/** Attaches `progFd` to a cgroup, or swaps it into the link pinned at `pin`. */
export function attachCgroupPinned(progFd: number, cgroupPath: string, attachType: number, pin: string): AttachResult {
  const updated = updatePinned(progFd, pin);
  if (updated) return updated;
  const cg = openDirFd(cgroupPath);
  try {
    const linkFd = bpf.bpf_link_create(progFd, cg, attachType, null) as number;
    if (linkFd < 0) {
      throw new KernelError(`attaching program to cgroup ${cgroupPath} (attach type ${attachType})`, -linkFd, { where: cgroupPath });
    }
    return pinNewLink(linkFd, pin);
  } finally {
    closeFd(cg);
  }
}

/** Detaches a pinned link (the program leaves the hook now). */
export function detachPinned(pin: string): void {
  if (!existsSync(pin)) return;
  const fd = bpf.bpf_obj_get(pin) as number;
  if (fd >= 0) {
    bpf.bpf_link_detach(fd);
    closeFd(fd);
  }
  rmSync(pin, { force: true });
}

/**
 * Attaches `progFd` to a map (sk_msg/sk_skb programs of a sockmap or
 * sockhash: such attachments are per map, not per cgroup), or swaps it into
 * the link pinned at `pin`: the same hitless update as for cgroups.
 */
export function attachMapPinned(progFd: number, mapFd: number, attachType: number, pin: string): AttachResult {
  const updated = updatePinned(progFd, pin);
  if (updated) return updated;
  const linkFd = bpf.bpf_link_create(progFd, mapFd, attachType, null) as number;
  if (linkFd < 0) {
    throw new KernelError(`attaching program to map fd ${mapFd} (attach type ${attachType})`, -linkFd, {
      where: pin, hint: 'sockmap links need Linux 6.10 or later',
    });
  }
  return pinNewLink(linkFd, pin);
}
