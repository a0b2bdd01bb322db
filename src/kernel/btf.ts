/**
 * Reads struct layouts from the BTF of a built object, so the TS mirrors in
 * src/abi/ can be checked against what clang actually laid out.
 */
import { bpf, btfEnum, btfMember, btfTypeHeader, koffi, lastErrno } from './libbpf.js';
import { KernelError } from './errors.js';

const BTF_KIND_STRUCT = 4;
const BTF_KIND_ENUM = 6;

export interface BtfMemberLayout {
  name: string;
  offset: number; // bytes
}

export interface BtfStructLayout {
  name: string;
  size: number;
  members: BtfMemberLayout[];
}

export class BtfFile {
  private constructor(private handle: unknown) {}

  static parse(path: string): BtfFile {
    const h = bpf.btf__parse(path, null);
    if (!h) throw new KernelError(`reading BTF of ${path}`, lastErrno(), { where: path });
    return new BtfFile(h);
  }

  struct(name: string): BtfStructLayout | undefined {
    const id = bpf.btf__find_by_name_kind(this.handle, name, BTF_KIND_STRUCT) as number;
    if (id < 0) return undefined;
    const ptr = bpf.btf__type_by_id(this.handle, id);
    const t = koffi.decode(ptr, btfTypeHeader) as { info: number; size: number };
    const vlen = t.info & 0xffff;
    const kflag = (t.info >>> 31) & 1;
    const raw = vlen ? (koffi.decode(ptr, koffi.sizeof(btfTypeHeader), btfMember, vlen) as Array<{ name_off: number; offset: number }>) : [];
    return {
      name,
      size: t.size,
      members: raw.map((m) => ({
        name: bpf.btf__name_by_offset(this.handle, m.name_off) as string,
        // with kflag the low 24 bits are the bit offset (bitfields)
        offset: (kflag ? m.offset & 0xffffff : m.offset) / 8,
      })),
    };
  }

  enumValues(name: string): Map<string, number> | undefined {
    const id = bpf.btf__find_by_name_kind(this.handle, name, BTF_KIND_ENUM) as number;
    if (id < 0) return undefined;
    const ptr = bpf.btf__type_by_id(this.handle, id);
    const t = koffi.decode(ptr, btfTypeHeader) as { info: number };
    const vlen = t.info & 0xffff;
    const raw = koffi.decode(ptr, koffi.sizeof(btfTypeHeader), btfEnum, vlen) as Array<{ name_off: number; val: number }>;
    return new Map(raw.map((e) => [bpf.btf__name_by_offset(this.handle, e.name_off) as string, e.val]));
  }

  close(): void {
    if (this.handle) bpf.btf__free(this.handle);
    this.handle = null;
  }
}
