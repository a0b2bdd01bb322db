/**
 * The node's kernel state: the BPF objects, loaded with their maps pinned
 * by name and their programs attached through pinned links, so all of it
 * outlives the agent. A restarted agent reuses the pinned maps (state is
 * kept) and swaps its programs into the existing links (no gap).
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfObjectSpec, attachCgroupPinned, attachMapPinned, detachPinned, ensureBpffs, type KeptPinnedMap, type LoadedObject, TypedMap, KernelError, type RawMap,
} from '../kernel/index.js';
import { COUNTER_MAX, Counter, L7Proxy, U32Key, U64Value, ScConfig } from '../abi/structs.js';
import { BPF_BUILD, type InstancePaths } from '../paths.js';
import { LbMaps } from './lb-maps.js';
import { PolicyMaps } from '../policy/policy-maps.js';
import { formatIp, parseCidr, prefixMask } from '../resources/ip.js';

/** Objects whose programs attach to the mesh's cgroups. */
const CGROUP_OBJECTS = ['sock_lb.bpf.o', 'observe.bpf.o', 'policy.bpf.o', 'l7_sockops.bpf.o', 'mtls.bpf.o', 'shortcut.bpf.o'];

/**
 * The only programs on the node proxy's own cgroup: its connections to and
 * from this node's workloads join the same-node shortcut (sockmap), so a
 * proxied request crosses no TCP/IP stack, veth or bridge. Nothing else
 * applies to the proxy: it is not a workload to balance, judge or observe at
 * the socket (its peers' programs already did at connect, and it reports its
 * own requests).
 */
const PROXY_CGROUP_PROGRAMS = ['ebm_shortcut_sockops'];
/** Link pins of the proxy cgroup's attachments. */
export const PROXY_LINK_TAG = 'proxy';

/** Program types that attach to a map, not to a cgroup. */
const BPF_PROG_TYPE_SK_MSG = 16;
/** Link pins of map attachments (per node, not per cgroup). */
const MAP_LINK_TAG = 'sockmap';
/** The sockhashes the sk_msg program redirects through, one per family. */
const SOCKHASHES = ['ebm_sc_sockets', 'ebm_sc_sockets6'];

export interface ShortcutSettings {
  enabled: boolean;
  /** this node's pod subnet, a.b.c.d/n */
  subnet: string;
  /** its IPv6 pod subnet, when the mesh is dual-stack */
  subnet6?: string;
  /** bytes a peer may hold unread before writes take the normal path (at least its SO_RCVBUF) */
  minQueue: number;
}

export class Datapath {
  private objects: LoadedObject[] = [];
  lb!: LbMaps;
  policy!: PolicyMaps;
  private counters!: TypedMap<number, bigint>;

  constructor(private readonly paths: InstancePaths) {}

  /**
   * `maxEntries` sizes maps when they are first made; a pinned map keeps its
   * size and flags, and is returned (once) when they differ from what this
   * load asked for.
   */
  load(opts: { maxEntries?: Record<string, number> } = {}): KeptPinnedMap[] {
    ensureBpffs();
    mkdirSync(this.paths.mapPins, { recursive: true });
    const kept = new Map<string, KeptPinnedMap>();
    const unsized = new Set(Object.keys(opts.maxEntries ?? {}));
    for (const file of CGROUP_OBJECTS) {
      const spec = BpfObjectSpec.open(join(BPF_BUILD, file));
      try {
        for (const m of spec.maps()) unsized.delete(m.name);
        const obj = spec.load({ pinDir: this.paths.mapPins, maxEntries: opts.maxEntries });
        this.objects.push(obj);
        for (const k of obj.keptPinned) kept.set(k.name, k);
      } finally {
        spec.close();
      }
    }
    // A size for a map no object has would be silently ignored: a renamed map must fail here.
    if (unsized.size) throw new Error(`datapath: sizes given for maps no BPF object defines: ${[...unsized].join(', ')}`);
    this.attachToMaps();
    const lbObj = this.objects[0]!;
    this.lb = new LbMaps(lbObj);
    this.counters = lbObj.map('ebm_counters', U32Key, U64Value);
    this.policy = new PolicyMaps(lbObj);
    return [...kept.values()];
  }

  /** sk_msg programs attach to the sockhashes they redirect through (one per family), once per node. */
  private attachToMaps(): void {
    for (const obj of this.objects) {
      for (const p of obj.programs()) {
        if (p.type !== BPF_PROG_TYPE_SK_MSG) continue;
        for (const map of SOCKHASHES) {
          // The first map's link keeps the name it always had: an older node's pin is found again.
          const pin = map === SOCKHASHES[0] ? p.name : `${p.name}_${map}`;
          attachMapPinned(p.fd, obj.rawMap(map).fd, p.attachType, join(this.paths.linkPins, MAP_LINK_TAG, pin));
        }
      }
    }
  }

  /** The same-node shortcut's settings (all zero, as made, means off; no IPv6 subnet: no IPv6 shortcut). */
  configureShortcut(s: ShortcutSettings): void {
    const net = (text: string | undefined) => {
      const c = text === undefined ? undefined : parseCidr(text);
      return c ? { subnet: formatIp({ family: c.family, value: c.addr }), mask: formatIp({ family: c.family, value: prefixMask(c.family, c.len) }) } : undefined;
    };
    const v4 = net(s.subnet) ?? { subnet: '0.0.0.0', mask: '0.0.0.0' };
    const v6 = net(s.subnet6) ?? { subnet: '::', mask: '::' };
    const cfg = new TypedMap(this.rawMap('ebm_sc_config'), U32Key, ScConfig);
    cfg.set(0, {
      enabled: s.enabled ? 1 : 0,
      subnet: v4.subnet,
      mask: v4.mask,
      min_queue: s.minQueue,
      subnet6: v6.subnet,
      mask6: v6.mask,
    });
  }

  /** Attaches every cgroup program to `cgroupPath`; `tag` names the link pins. */
  attach(cgroupPath: string, tag: string, only?: readonly string[]): void {
    const missing = new Set(only);
    for (const obj of this.objects) {
      for (const p of obj.programs()) {
        if (p.type === BPF_PROG_TYPE_SK_MSG || (only && !only.includes(p.name))) continue;
        attachCgroupPinned(p.fd, cgroupPath, p.attachType, join(this.paths.linkPins, tag, p.name));
        missing.delete(p.name);
      }
    }
    if (missing.size) throw new Error(`datapath: no loaded object has the program(s) ${[...missing].join(', ')} to attach to ${cgroupPath}`);
  }

  /** The node proxy's cgroup gets the shortcut's sockops only (see PROXY_CGROUP_PROGRAMS). */
  attachProxy(cgroupPath: string): void {
    this.attach(cgroupPath, PROXY_LINK_TAG, PROXY_CGROUP_PROGRAMS);
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
      { map: 'ebm_lb6_frontends', t: this.lb.frontends6 },
      { map: 'ebm_lb4_slots', t: this.lb.slots },
      { map: 'ebm_lb4_backends', t: this.lb.backends },
      { map: 'ebm_lb6_backends', t: this.lb.backends6 },
    ].map(({ map, t }) => ({ map, raw: t.raw as RawMap })).concat(this.optionalMaps(['ebm_http_pending', 'ebm_http_pending6', 'ebm_sc_peers', 'ebm_sc_peers6'])).map(({ map, raw }) => {
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
  /** The loaded object that holds a map (for modules that own their maps, like mTLS strict mode). */
  objectWith(map: string): LoadedObject | undefined {
    return this.objects.find((o) => { try { o.rawMap(map); return true; } catch { return false; } });
  }

  rawMap(name: string): RawMap {
    for (const o of this.objects) {
      try { return o.rawMap(name); } catch { /* not in this object */ }
    }
    throw new KernelError(`finding map ${name}`, 2, { where: name });
  }

  programCount(): number {
    return this.objects.reduce((n, o) => n + o.programs().length, 0);
  }

  /**
   * Where the kernel steers L7 connections (issue 6): the proxy's address
   * of each family (ip6 absent: IPv6 connections are balanced as plain L4).
   * port 0 switches the steering off: flagged frontends are then balanced
   * as plain L4.
   */
  setL7Proxy(ip: string, port: number, ip6?: string): void {
    this.objects[0]!.map('ebm_l7_proxy', U32Key, L7Proxy).set(0, { ip, port, pad: 0, ip6: ip6 ?? '::' });
  }

  /** Where the kernel steers L7 connections now (pinned: it outlives agents); undefined before any proxy was set. */
  l7Proxy(): { ip: string; port: number; ip6?: string } | undefined {
    const v = this.objects[0]!.map('ebm_l7_proxy', U32Key, L7Proxy).get(0);
    return v && v.port ? { ip: v.ip, port: v.port, ...(v.ip6 !== '::' ? { ip6: v.ip6 } : {}) } : undefined;
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
