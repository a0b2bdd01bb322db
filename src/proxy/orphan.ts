/**
 * What a node proxy worker does when its primary is gone (killed with -9,
 * or crashed): it keeps serving. The listener it shares with its siblings
 * and its tunnel endpoint are its own file descriptors, so the kernel's
 * steered connections and the peers' sessions are still accepted, and the
 * connections it carries go on. The agent sees the primary's control socket
 * close and starts the next generation in the other slot (the orphans still
 * hold this one's port); once that listens it points ebm_l7_proxy there.
 * The orphan reads that map: when it no longer names the orphan's port, or
 * the map is gone (the mesh was torn down), the orphan drains as a replaced
 * generation does and exits.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { L7Proxy, U32Key } from '../abi/structs.js';
import { PinnedMap } from '../relay/index.js';

const WATCH_MS = 250;

/** The port the kernel steers to now; undefined when the map is gone or unreadable (torn down). */
export function steeredPortReader(mapPins: string): () => number | undefined {
  const path = join(mapPins, 'ebm_l7_proxy');
  let map: PinnedMap<number, { port: number }> | undefined;
  return () => {
    // The pin, not only our fd: an fd keeps a map alive after teardown removed it.
    if (!existsSync(path)) return undefined;
    try {
      map ??= new PinnedMap(path, U32Key, L7Proxy);
      return map.get(0)?.port;
    } catch {
      return undefined;
    }
  };
}

/** Calls `moved` once the kernel steers elsewhere than `port`. */
export function whenSteeredAway(mapPins: string, port: number, moved: (now: number | undefined) => void): () => void {
  const read = steeredPortReader(mapPins);
  const t = setInterval(() => {
    const now = read();
    if (now === port) return;
    clearInterval(t);
    moved(now);
  }, WATCH_MS);
  return () => clearInterval(t);
}
