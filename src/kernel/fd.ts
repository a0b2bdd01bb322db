import { bpf, O_CLOEXEC, O_DIRECTORY, O_RDONLY, lastErrno } from './libbpf.js';
import { KernelError } from './errors.js';

/** Opens a directory (a cgroup, a netns file…) as an fd for bpf(2) calls. */
export function openDirFd(path: string): number {
  const fd = bpf.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) as number;
  if (fd < 0) throw new KernelError(`open ${path}`, lastErrno(), { where: path });
  return fd;
}

export function openPathFd(path: string): number {
  const fd = bpf.open(path, O_RDONLY | O_CLOEXEC) as number;
  if (fd < 0) throw new KernelError(`open ${path}`, lastErrno(), { where: path });
  return fd;
}

export function closeFd(fd: number): void {
  if (fd >= 0) bpf.close(fd);
}

/** Runs `fn` with an fd that is closed afterwards, whatever happens. */
export function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}
