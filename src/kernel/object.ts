/**
 * BPF objects in two stages, after cilium/ebpf: a spec (the parsed ELF,
 * inert, readable without privileges) and a loaded object (programs in the
 * kernel, maps reused from or pinned to bpffs).
 */
import { basename } from 'node:path';
import { bpf, koffi, lastErrno } from './libbpf.js';
import { KernelError, VerifierError, MissingFeatureError } from './errors.js';
import { RawMap, TypedMap, pinnedMapInfo, type MapInfo } from './map.js';
import type { StructCodec } from '../abi/struct.js';

export interface ProgramInfo {
  name: string;
  section: string;
  type: number;
  attachType: number;
}

const LOG_SIZE = 4 << 20;

function cstr(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

export class BpfObjectSpec {
  private constructor(readonly path: string, protected handle: unknown) {}

  static open(path: string): BpfObjectSpec {
    const h = bpf.bpf_object__open_file(path, null);
    if (!h) throw new KernelError(`opening BPF object ${path}`, lastErrno(), { where: path, hint: 'run the BPF build: make -C bpf' });
    return new BpfObjectSpec(path, h);
  }

  get name(): string {
    return basename(this.path);
  }

  programs(): ProgramInfo[] {
    const out: ProgramInfo[] = [];
    for (let p = bpf.bpf_object__next_program(this.handle, null); p; p = bpf.bpf_object__next_program(this.handle, p)) {
      out.push({
        name: cstr(bpf.bpf_program__name(p)),
        section: cstr(bpf.bpf_program__section_name(p)),
        type: bpf.bpf_program__type(p) as number,
        attachType: bpf.bpf_program__expected_attach_type(p) as number,
      });
    }
    return out;
  }

  maps(): MapInfo[] {
    const out: MapInfo[] = [];
    for (let m = bpf.bpf_object__next_map(this.handle, null); m; m = bpf.bpf_object__next_map(this.handle, m)) {
      out.push(mapInfo(m));
    }
    return out;
  }

  /** Sets a `const volatile` global in .rodata before load. */
  setRodata(apply: (data: Buffer) => void): void {
    for (let m = bpf.bpf_object__next_map(this.handle, null); m; m = bpf.bpf_object__next_map(this.handle, m)) {
      if (!cstr(bpf.bpf_map__name(m)).endsWith('.rodata')) continue;
      const size = [0];
      const ptr = bpf.bpf_map__initial_value(m, size);
      const n = size[0] ?? 0;
      const data = Buffer.from(koffiView(ptr, n));
      apply(data);
      const rc = bpf.bpf_map__set_initial_value(m, data, data.length) as number;
      if (rc < 0) throw new KernelError('setting .rodata', -rc, { where: this.path });
      return;
    }
    throw new KernelError('setting .rodata (object has none)', 22, { where: this.path });
  }

  /**
   * Loads every program. Maps are pinned under `pinDir` by name: an existing
   * pin is reused (so state survives agent restarts), a missing one is made.
   */
  load(opts: { pinDir?: string; maxEntries?: Record<string, number> } = {}): LoadedObject {
    const logs = new Map<string, Buffer>();
    for (let p = bpf.bpf_object__next_program(this.handle, null); p; p = bpf.bpf_object__next_program(this.handle, p)) {
      const buf = Buffer.alloc(LOG_SIZE);
      logs.set(cstr(bpf.bpf_program__name(p)), buf);
      bpf.bpf_program__set_log_buf(p, buf, buf.length);
    }
    const kept: KeptPinnedMap[] = [];
    for (let m = bpf.bpf_object__next_map(this.handle, null); m; m = bpf.bpf_object__next_map(this.handle, m)) {
      const name = cstr(bpf.bpf_map__name(m));
      const max = opts.maxEntries?.[name];
      if (max !== undefined) bpf.bpf_map__set_max_entries(m, max);
      if (opts.pinDir && !name.startsWith('.')) {
        const path = `${opts.pinDir}/${name}`;
        bpf.bpf_map__set_pin_path(m, path);
        // A pinned map is reused as it is (its entries are the data path's
        // state); libbpf refuses one whose size or flags differ, so take
        // them from the pin and report what waits for the map to be made again.
        const pinned = pinnedMapInfo(path);
        const want = { maxEntries: bpf.bpf_map__max_entries(m) as number, flags: bpf.bpf_map__map_flags(m) as number };
        if (pinned && (pinned.maxEntries !== want.maxEntries || pinned.flags !== want.flags)) {
          bpf.bpf_map__set_max_entries(m, pinned.maxEntries);
          bpf.bpf_map__set_map_flags(m, pinned.flags);
          kept.push({ name, pinned: { maxEntries: pinned.maxEntries, flags: pinned.flags }, wanted: want });
        }
      }
    }
    const rc = bpf.bpf_object__load(this.handle) as number;
    if (rc < 0) {
      const errno = -rc;
      for (const [prog, buf] of logs) {
        const log = buf.toString('utf8', 0, Math.max(0, buf.indexOf(0)));
        if (log.trim()) throw new VerifierError(prog, this.path, errno, log);
      }
      if (errno === 1) {
        throw new MissingFeatureError('loading BPF programs (EPERM)', 'run as root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)');
      }
      throw new KernelError(`loading BPF object ${this.name}`, errno, {
        where: this.path,
        hint: errno === 22 ? 'a pinned map may have an older layout: ebmesh down, then up' : undefined,
      });
    }
    logs.clear();
    const loaded = new LoadedObject(this.path, this.handle, kept);
    this.handle = null; // ownership moves to the loaded object
    return loaded;
  }

  close(): void {
    if (this.handle) bpf.bpf_object__close(this.handle);
    this.handle = null;
  }
}

/** A map reused from its pin with another size or flags than this load asked for. */
export interface KeptPinnedMap {
  name: string;
  pinned: { maxEntries: number; flags: number };
  wanted: { maxEntries: number; flags: number };
}

export class LoadedObject {
  constructor(readonly path: string, private handle: unknown, readonly keptPinned: readonly KeptPinnedMap[] = []) {}

  program(name: string): { fd: number } & ProgramInfo {
    for (let p = bpf.bpf_object__next_program(this.handle, null); p; p = bpf.bpf_object__next_program(this.handle, p)) {
      if (cstr(bpf.bpf_program__name(p)) === name) {
        return {
          name,
          fd: bpf.bpf_program__fd(p) as number,
          section: cstr(bpf.bpf_program__section_name(p)),
          type: bpf.bpf_program__type(p) as number,
          attachType: bpf.bpf_program__expected_attach_type(p) as number,
        };
      }
    }
    throw new KernelError(`finding program ${name}`, 2, { where: this.path });
  }

  programs(): Array<{ fd: number } & ProgramInfo> {
    const out: Array<{ fd: number } & ProgramInfo> = [];
    for (let p = bpf.bpf_object__next_program(this.handle, null); p; p = bpf.bpf_object__next_program(this.handle, p)) {
      out.push(this.program(cstr(bpf.bpf_program__name(p))));
    }
    return out;
  }

  rawMap(name: string): RawMap {
    for (let m = bpf.bpf_object__next_map(this.handle, null); m; m = bpf.bpf_object__next_map(this.handle, m)) {
      if (cstr(bpf.bpf_map__name(m)) === name) return new RawMap(bpf.bpf_map__fd(m) as number, mapInfo(m));
    }
    throw new KernelError(`finding map ${name}`, 2, { where: this.path });
  }

  map<K, V>(name: string, key: StructCodec<K>, value: StructCodec<V>): TypedMap<K, V> {
    return new TypedMap(this.rawMap(name), key, value);
  }

  close(): void {
    if (this.handle) bpf.bpf_object__close(this.handle);
    this.handle = null;
  }
}

function mapInfo(m: unknown): MapInfo {
  return {
    name: cstr(bpf.bpf_map__name(m)),
    type: bpf.bpf_map__type(m) as number,
    keySize: bpf.bpf_map__key_size(m) as number,
    valueSize: bpf.bpf_map__value_size(m) as number,
    maxEntries: bpf.bpf_map__max_entries(m) as number,
  };
}

function koffiView(ptr: unknown, n: number): Uint8Array {
  return new Uint8Array(koffi.view(ptr, n));
}
