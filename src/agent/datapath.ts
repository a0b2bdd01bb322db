/**
 * The node's kernel state: the BPF objects, loaded with their maps pinned
 * by name and their programs attached through pinned links, so all of it
 * outlives the agent. A restarted agent reuses the pinned maps (state is
 * kept) and swaps its programs into the existing links (no gap).
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfObjectSpec, attachCgroupPinned, detachPinned, ensureBpffs, type LoadedObject, TypedMap, KernelError, type RawMap,
} from '../kernel/index.js';
import { COUNTER_MAX, Counter, U32Key, U64Value } from '../abi/structs.js';
import { BPF_BUILD, type InstancePaths } from '../paths.js';
import { LbMaps } from './lb-maps.js';
import { PolicyMaps } from './policy-maps.js';

/** Objects whose programs attach to the mesh's cgroups. */
const CGROUP_OBJECTS = ['sock_lb.bpf.o', 'observe.bpf.o', 'policy.bpf.o'];

export class Datapath {
  private objects: LoadedObject[] = [];
  lb!: LbMaps;
  policy!: PolicyMaps;
  private counters!: TypedMap<number, bigint>;

  constructor(private readonly paths: InstancePaths) {}

  load(): void {
    ensureBpffs();
    mkdirSync(this.paths.mapPins, { recursive: true });
    for (const file of CGROUP_OBJECTS) {
      const spec = BpfObjectSpec.open(join(BPF_BUILD, file));
      try {
        this.objects.push(spec.load({ pinDir: this.paths.mapPins }));
      } finally {
        spec.close();
      }
    }
    const lbObj = this.objects[0]!;
    this.lb = new LbMaps(lbObj);
    this.counters = lbObj.map('ebm_counters', U32Key, U64Value);
    this.policy = new PolicyMaps(lbObj);
  }

  /** Attaches every cgroup program to `cgroupPath`; `tag` names the link pins. */
  attach(cgroupPath: string, tag: string): void {
    for (const obj of this.objects) {
      for (const p of obj.programs()) {
        attachCgroupPinned(p.fd, cgroupPath, p.attachType, join(this.paths.linkPins, tag, p.name));
      }
    }
  }

  detach(tag: string): void {
    const dir = join(this.paths.linkPins, tag);
    if (!existsSync(dir)) return;
    for (const f of readdirSync(dir)) detachPinned(join(dir, f));
    rmSync(dir, { recursive: true, force: true });
  }

  attachedTags(): string[] {
    return existsSync(this.paths.linkPins) ? readdirSync(this.paths.linkPins) : [];
  }

  counter(c: number): bigint {
    return this.counters.sumPerCpu(c);
  }

  countersSnapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, idx] of Object.entries(Counter)) {
      if (idx < COUNTER_MAX) out[name.toLowerCase()] = Number(this.counter(idx));
    }
    return out;
  }

  mapFill(): Array<{ map: string; entries: number; max: number }> {
    return [
      { map: 'ebm_lb4_frontends', t: this.lb.frontends },
      { map: 'ebm_lb4_slots', t: this.lb.slots },
      { map: 'ebm_lb4_backends', t: this.lb.backends },
    ].map(({ map, t }) => ({ map, raw: t.raw })).concat(this.optionalMaps(['ebm_http_pending'])).map(({ map, raw }) => {
      let n = 0;
      for (const _ of raw.keys()) n++;
      return { map, entries: n, max: raw.info.maxEntries };
    }).concat(this.policy.fill());
  }

  private optionalMaps(names: string[]): Array<{ map: string; raw: RawMap }> {
    const out: Array<{ map: string; raw: RawMap }> = [];
    for (const n of names) {
      try { out.push({ map: n, raw: this.rawMap(n) }); } catch { /* that object is not loaded */ }
    }
    return out;
  }

  /** A map of any loaded object, by name (maps are shared by pin, so any object's handle will do). */
  rawMap(name: string): RawMap {
    for (const o of this.objects) {
      try { return o.rawMap(name); } catch { /* not in this object */ }
    }
    throw new KernelError(`finding map ${name}`, 2, { where: name });
  }

  programCount(): number {
    return this.objects.reduce((n, o) => n + o.programs().length, 0);
  }

  /** Closes our handles; pinned state stays in the kernel. */
  close(): void {
    for (const o of this.objects) o.close();
    this.objects = [];
  }
}

/** Removes every link and map pin of an instance: the data path goes away. */
export function removeDatapath(paths: InstancePaths): void {
  if (existsSync(paths.linkPins)) {
    for (const tag of readdirSync(paths.linkPins)) {
      const dir = join(paths.linkPins, tag);
      for (const f of readdirSync(dir)) detachPinned(join(dir, f));
    }
  }
  rmSync(paths.bpfRoot, { recursive: true, force: true });
  const parent = join(paths.bpfRoot, '..');
  if (existsSync(parent) && readdirSync(parent).length === 0) rmSync(parent, { recursive: true, force: true });
}
