/**
 * What the state and run directories hold that someone other than root
 * could read or enter: every directory must be 0700, every file and socket
 * 0600 or less (src/host/private-files.ts).
 */
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Entry { path: string; mode: number; kind: 'dir' | 'file' | 'socket' | 'link' | 'other' }

/** DIR and everything under it, with its permission bits. */
export function walk(dir: string, out: Entry[] = []): Entry[] {
  const st = lstatSync(dir);
  if (!out.length) out.push({ path: dir, mode: st.mode & 0o777, kind: 'dir' });
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = lstatSync(p);
    const kind = s.isDirectory() ? 'dir' : s.isSocket() ? 'socket' : s.isFile() ? 'file' : s.isSymbolicLink() ? 'link' : 'other';
    out.push({ path: p, mode: s.mode & 0o777, kind });
    if (s.isDirectory()) walk(p, out);
  }
  return out;
}

/** The entries of DIRS that are not root's alone, as "PATH KIND MODE" lines. */
export function looseEntries(entries: Entry[]): string[] {
  return entries
    .filter((e) => (e.kind === 'dir' ? e.mode !== 0o700 : (e.mode & 0o077) !== 0))
    .map((e) => `${e.path} ${e.kind} ${e.mode.toString(8)}`);
}
