/**
 * A small world for driving the cgroup_skb programs with BPF_PROG_TEST_RUN:
 * the real objects loaded with their maps pinned in a directory of this
 * process's own, the flow event ring read the way the agent reads it, and a
 * cgroup v2 tree this process moves into, so that the socket the kernel
 * makes for each test run belongs to a cgroup whose id the test knows (and
 * can list as a workload's, or not).
 *
 * Everything is named after this process and removed by cleanup(), which
 * tests call from after() so that it runs when a test fails too.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObjectSpec, cgroup2Root, ensureBpffs, testRunPacket, type LoadedObject, type RawMap } from '../../src/kernel/index.js';
import { BPF_BUILD } from '../../src/paths.js';
import { FlowEvent, U32Key, U64Value, type ValueOf } from '../../src/abi/structs.js';
import { RingReader } from '../../src/observe/ringbuf.js';
import { cgroupId, cgroupOfProcess, removeCgroupTree } from '../../src/host/cgroup.js';
import { frame, type PacketSpec } from './packet.js';

export type FlowEventRecord = ValueOf<typeof FlowEvent>;

export class SkbWorld {
  readonly pinDir: string;
  /** The top of this world's cgroup tree (below the cgroup v2 root). */
  readonly cgroupRoot: string;
  readonly objects: LoadedObject[] = [];
  private readonly home: string;
  private ring: RingReader | undefined;
  private pending: FlowEventRecord[] = [];

  /** Loads `files` (bpf/build/*.bpf.o) into one pin directory: they share the maps, as on a node. */
  constructor(tag: string, files: readonly string[]) {
    const id = `${tag}-${process.pid}`;
    ensureBpffs();
    this.pinDir = `/sys/fs/bpf/ebtest-${id}`;
    this.cgroupRoot = join(cgroup2Root(), `ebtest-${id}`);
    this.home = join(cgroup2Root(), cgroupOfProcess('self') ?? '/');
    mkdirSync(this.pinDir, { recursive: true });
    mkdirSync(this.cgroupRoot, { recursive: true });
    try {
      for (const file of files) {
        const spec = BpfObjectSpec.open(join(BPF_BUILD, file));
        try {
          this.objects.push(spec.load({ pinDir: this.pinDir }));
        } finally {
          spec.close();
        }
      }
      const events = this.rawMap('ebm_events');
      this.ring = new RingReader(events.fd, events.info.maxEntries, (mem, off) => {
        this.pending.push(FlowEvent.decode(mem, off));
      });
    } catch (e) {
      this.cleanup(); // the caller never gets the world to clean up
      throw e;
    }
  }

  /** Makes `rel` (below this world's cgroup root) and moves this process into it; returns its cgroup id. */
  enterCgroup(rel: string): bigint {
    const path = join(this.cgroupRoot, rel);
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'cgroup.procs'), String(process.pid));
    return this.cgroupIdOf(rel);
  }

  cgroupIdOf(rel: string): bigint {
    const id = cgroupId(join(this.cgroupRoot, rel));
    if (id === undefined) throw new Error(`no cgroup ${rel} in ${this.cgroupRoot}`);
    return id;
  }

  private find<T>(what: string, get: (o: LoadedObject) => T): T {
    for (const o of this.objects) {
      try {
        return get(o);
      } catch { /* not in this object */ }
    }
    throw new Error(`no loaded object has ${what}`);
  }

  rawMap(name: string): RawMap {
    return this.find(`map ${name}`, (o) => o.rawMap(name));
  }

  /** The object that holds a program: the agent's map writers take one. */
  objectOf(program: string): LoadedObject {
    return this.find(`program ${program}`, (o) => (o.program(program), o));
  }

  /** Runs a program once on the packet; returns its verdict (1 pass, 0 drop). */
  run(program: string, packet: PacketSpec): number {
    const fd = this.find(`program ${program}`, (o) => o.program(program).fd);
    return testRunPacket(fd, frame(packet)).retval;
  }

  /** The flow events written since the last call, oldest first. */
  events(): FlowEventRecord[] {
    this.ring?.drain();
    const out = this.pending;
    this.pending = [];
    return out;
  }

  /** A counter of ebm_counters (enum ebm_counter), summed over CPUs. */
  counter(index: number): bigint {
    const raw = this.rawMap('ebm_counters');
    let sum = 0n;
    const buf = raw.lookup(U32Key.encode(index));
    if (buf) for (let off = 0; off + U64Value.size <= buf.length; off += U64Value.size) sum += U64Value.decode(buf, off);
    return sum;
  }

  cleanup(): void {
    this.ring?.close();
    this.ring = undefined;
    for (const o of this.objects) o.close();
    this.objects.length = 0;
    // Back where the process came from before its cgroups go.
    try { writeFileSync(join(this.home, 'cgroup.procs'), String(process.pid)); } catch { /* already gone home */ }
    removeCgroupTree(this.cgroupRoot);
    rmSync(this.pinDir, { recursive: true, force: true });
  }
}
