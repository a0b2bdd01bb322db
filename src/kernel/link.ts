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

/** Attaches `progFd` to a cgroup, or swaps it into the link pinned at `pin`. */
export function attachCgroupPinned(progFd: number, cgroupPath: string, attachType: number, pin: string): AttachResult {
  if (existsSync(pin)) {
    const linkFd = bpf.bpf_obj_get(pin) as number;
    if (linkFd >= 0) {
      return withFd(linkFd, (fd) => {
        const rc = bpf.bpf_link_update(fd, progFd, null) as number;
        if (rc < 0) throw new KernelError(`updating link ${pin}`, -rc, { where: pin });
        return { pin, updated: true };
      });
    }
    rmSync(pin, { force: true }); // a stale pin of something else: replace it
  }
  const cg = openDirFd(cgroupPath);
  try {
    const linkFd = bpf.bpf_link_create(progFd, cg, attachType, null) as number;
    if (linkFd < 0) {
      throw new KernelError(`attaching program to cgroup ${cgroupPath} (attach type ${attachType})`, -linkFd, { where: cgroupPath });
    }
    try {
      mkdirSync(dirname(pin), { recursive: true });
      const rc = bpf.bpf_obj_pin(linkFd, pin) as number;
      if (rc < 0) throw new KernelError(`pinning link at ${pin}`, -rc || lastErrno(), { where: pin });
    } finally {
      closeFd(linkFd);
    }
  } finally {
    closeFd(cg);
  }
  return { pin, updated: false };
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
  if (existsSync(pin)) {
    const linkFd = bpf.bpf_obj_get(pin) as number;
    if (linkFd >= 0) {
      return withFd(linkFd, (fd) => {
        const rc = bpf.bpf_link_update(fd, progFd, null) as number;
        if (rc < 0) throw new KernelError(`updating link ${pin}`, -rc, { where: pin });
        return { pin, updated: true };
      });
    }
    rmSync(pin, { force: true });
  }
  const linkFd = bpf.bpf_link_create(progFd, mapFd, attachType, null) as number;
  if (linkFd < 0) {
    throw new KernelError(`attaching program to map fd ${mapFd} (attach type ${attachType})`, -linkFd, {
      where: pin, hint: 'sockmap links need Linux 6.10 or later',
    });
  }
  try {
    mkdirSync(dirname(pin), { recursive: true });
    const rc = bpf.bpf_obj_pin(linkFd, pin) as number;
    if (rc < 0) throw new KernelError(`pinning link at ${pin}`, -rc || lastErrno(), { where: pin });
  } finally {
    closeFd(linkFd);
  }
  return { pin, updated: false };
}
