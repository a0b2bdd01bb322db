/**
 * The files of an instance's state and run directories
 * (/var/lib/ebmesh/INSTANCE, /run/ebmesh/INSTANCE) are root's alone:
 * directories 0700, files 0600, whatever the umask and whatever an older
 * version of ebmesh left there. They hold the store (workloads' commands and
 * env), keys, tokens and logs. Every part that writes there goes through
 * these three functions.
 */
import { chmodSync, closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Makes DIR (and missing parents) 0700; an existing DIR is narrowed to 0700. */
export function privateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
  return dir;
}

/**
 * Replaces FILE with DATA, 0600, by rename: a reader sees the old file or
 * the new one, never half of one. fsync: the data is on disk before the
 * rename (the store's commits).
 */
export function writePrivateFile(file: string, data: string | Uint8Array, opts: { fsync?: boolean } = {}): void {
  privateDir(dirname(file));
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', PRIVATE_FILE_MODE);
  try {
    try {
      // A leftover temporary file keeps its old mode through open(O_TRUNC).
      fchmodSync(fd, PRIVATE_FILE_MODE);
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      if (opts.fsync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    // A half-written copy (a full disk: ENOSPC) would hold the space the next write needs.
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Opens a log file for appending, 0600 (also one an older version made 0644); the caller closes the descriptor. */
export function openPrivateLog(file: string): number {
  privateDir(dirname(file));
  const fd = openSync(file, 'a', PRIVATE_FILE_MODE);
  fchmodSync(fd, PRIVATE_FILE_MODE);
  return fd;
}
