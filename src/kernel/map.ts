import { bpf, lastErrno } from './libbpf.js';
import { KernelError } from './errors.js';
import { closeFd } from './fd.js';
import type { StructCodec } from '../abi/struct.js';

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

const ENOENT = 2;

/** Map types whose values are one slot per possible CPU. */
const PERCPU_TYPES = new Set([5 /* PERCPU_HASH */, 6 /* PERCPU_ARRAY */, 10 /* LRU_PERCPU_HASH */]);

export interface MapInfo {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/**
 * A map by fd, with raw Buffer keys and values. Owns its fd only when
 * constructed with `owned` (a map opened from a pin); maps of a loaded
 * object are closed with the object.
 */
export class RawMap {
  constructor(readonly fd: number, readonly info: MapInfo, private readonly owned = false) {}

  get percpu(): boolean {
    return PERCPU_TYPES.has(this.info.type);
  }

  /** Bytes of one value as bpf(2) moves it (per-CPU values are stacked). */
  get valueBytes(): number {
    if (!this.percpu) return this.info.valueSize;
    return Math.ceil(this.info.valueSize / 8) * 8 * possibleCpus();
  }

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    const rc = bpf.bpf_map_update_elem(this.fd, key, value, flags) as number;
    if (rc < 0) throw new KernelError(`update of map ${this.info.name}`, -rc, { where: this.info.name });
  }

  lookup(key: Buffer): Buffer | undefined {
    const out = Buffer.alloc(this.valueBytes);
    const rc = bpf.bpf_map_lookup_elem(this.fd, key, out) as number;
    if (rc === -ENOENT) return undefined;
    if (rc < 0) throw new KernelError(`lookup in map ${this.info.name}`, -rc, { where: this.info.name });
    return out;
  }

  /** Returns false when the key was not there. */
  delete(key: Buffer): boolean {
    const rc = bpf.bpf_map_delete_elem(this.fd, key) as number;
    if (rc === -ENOENT) return false;
    if (rc < 0) throw new KernelError(`delete in map ${this.info.name}`, -rc, { where: this.info.name });
    return true;
  }

  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.info.keySize);
      const rc = bpf.bpf_map_get_next_key(this.fd, prev, next) as number;
      if (rc === -ENOENT) return;
      if (rc < 0) throw new KernelError(`iteration of map ${this.info.name}`, -rc, { where: this.info.name });
      yield next;
      prev = next;
    }
  }

  close(): void {
    if (this.owned) closeFd(this.fd);
  }
}

/** A map with codecs for its keys and values. */
export class TypedMap<K, V> {
  constructor(
    readonly raw: RawMap,
    private readonly keyCodec: StructCodec<K>,
    private readonly valueCodec: StructCodec<V>,
  ) {
    if (raw.info.keySize !== keyCodec.size || raw.info.valueSize !== valueCodec.size) {
      throw new KernelError(
        `map ${raw.info.name} layout check (key ${raw.info.keySize}/${keyCodec.size}, value ${raw.info.valueSize}/${valueCodec.size} bytes kernel/ts)`,
        22,
        { where: raw.info.name, hint: 'the TS mirror in src/abi/structs.ts no longer matches ebmesh_abi.h' },
      );
    }
  }

  set(key: K, value: V, flags = BPF_ANY): void {
    this.raw.update(this.keyCodec.encode(key), this.valueCodec.encode(value), flags);
  }

  get(key: K): V | undefined {
    const buf = this.raw.lookup(this.keyCodec.encode(key));
    return buf && this.valueCodec.decode(buf);
  }

  delete(key: K): boolean {
    return this.raw.delete(this.keyCodec.encode(key));
  }

  *keys(): Generator<K> {
    for (const k of this.raw.keys()) yield this.keyCodec.decode(k);
  }

  *entries(): Generator<[K, V]> {
    for (const k of this.raw.keys()) {
      const v = this.raw.lookup(k);
      if (v) yield [this.keyCodec.decode(k), this.valueCodec.decode(v)];
    }
  }

  /** Per-CPU values, summed (for counters). */
  sumPerCpu(key: K): bigint {
    const buf = this.raw.lookup(this.keyCodec.encode(key));
    if (!buf) return 0n;
    const stride = Math.ceil(this.raw.info.valueSize / 8) * 8;
    let sum = 0n;
    for (let off = 0; off + 8 <= buf.length; off += stride) sum += buf.readBigUInt64LE(off);
    return sum;
  }
}

let cpus: number | undefined;
export function possibleCpus(): number {
  if (cpus === undefined) {
    const n = bpf.libbpf_num_possible_cpus() as number;
    if (n <= 0) throw new KernelError('libbpf_num_possible_cpus', -n || lastErrno());
    cpus = n;
  }
  return cpus;
}

/** What the kernel says of a map: its layout, and the flags it was made with. */
export interface PinnedMapInfo extends MapInfo {
  flags: number;
}

/** Opens the map pinned at `path` and reads its info; the caller owns the fd. */
function openPinned(path: string): { fd: number; info: PinnedMapInfo } {
  const fd = bpf.bpf_obj_get(path) as number;
  if (fd < 0) throw new KernelError(`opening pinned map ${path}`, -fd || lastErrno(), { where: path });
  // struct bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, name[16]…
  const info = Buffer.alloc(128);
  const len = [info.length];
  const rc = bpf.bpf_obj_get_info_by_fd(fd, info, len) as number;
  if (rc < 0) {
    closeFd(fd);
    throw new KernelError(`reading info of pinned map ${path}`, -rc, { where: path });
  }
  return {
    fd,
    info: {
      name: info.toString('utf8', 24, 40).replace(/\0.*$/s, ''), type: info.readUInt32LE(0), keySize: info.readUInt32LE(8),
      valueSize: info.readUInt32LE(12), maxEntries: info.readUInt32LE(16), flags: info.readUInt32LE(20),
    },
  };
}

/** The info of the map pinned at `path`, or undefined when nothing is pinned there. */
export function pinnedMapInfo(path: string): PinnedMapInfo | undefined {
  let opened;
  try {
    opened = openPinned(path);
  } catch (e) {
    if (e instanceof KernelError && e.errno === ENOENT) return undefined;
    throw e;
  }
  closeFd(opened.fd);
  return opened.info;
}

/**
 * Opens a map pinned at `path` (bpf_obj_get) without loading any object:
 * how a process other than the agent (the node proxy) reads the data path.
 */
export function openPinnedMap<K, V>(path: string, key: StructCodec<K>, value: StructCodec<V>): TypedMap<K, V> {
  const { fd, info } = openPinned(path);
  const raw = new RawMap(fd, info, true);
  try {
    return new TypedMap(raw, key, value);
  } catch (e) {
    raw.close();
    throw e;
  }
}
