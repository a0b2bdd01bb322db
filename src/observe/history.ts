/**
 * The flow history as the kernel's records: a fixed slab of ebm_flow_event
 * slots, flow `seq` at slot (seq - 1) % size, each with the name table it
 * was read under. A Flow is built only when someone asks for it (a query or
 * a follower), so keeping an event costs one copy, whatever its type. The
 * few flows seen in user space instead (the mTLS tunnel's streams) take
 * their slot as built objects.
 */
import { FlowEvent, type ValueOf } from '../abi/structs.js';
import { matches, mayMatchRaw, toFlow, type Flow, type FlowFilter, type NameTable } from './flow.js';

export const EVENT_SIZE = FlowEvent.size;
const WORDS = EVENT_SIZE >> 2;
/** Where each field sits in a record, for code that reads one or two fields in place. */
export const EVENT_OFFSET = Object.fromEntries(FlowEvent.layout.map((f) => [f.name, f.offset])) as
  Record<keyof ValueOf<typeof FlowEvent>, number>;

export class FlowHistory {
  private readonly slab: Buffer;
  private readonly slab32: Int32Array;
  private readonly names: NameTable[];
  /** Flows seen in user space (the mTLS tunnel), which have no kernel record: kept as built. */
  private readonly built: Array<Flow | undefined>;
  /** A word view of the last buffer records came from (the ring's: always the same one). */
  private src: Buffer | undefined;
  private src32: Int32Array | undefined;
  /** The newest flow's seq (0: none yet). Sequence numbers never skip. */
  seq = 0;

  /** bootOffsetNs: epoch ns minus the kernel's monotonic ns at one instant (see toFlow). */
  constructor(readonly size: number, private readonly bootOffsetNs: bigint) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`flow history size must be a positive integer, not ${size}`);
    this.slab = Buffer.alloc(size * EVENT_SIZE);
    this.slab32 = new Int32Array(this.slab.buffer, this.slab.byteOffset, this.slab.length >> 2);
    this.names = new Array<NameTable>(size);
    this.built = new Array<Flow | undefined>(size);
  }

  get length(): number {
    return Math.min(this.seq, this.size);
  }

  /** Keeps the record at mem[off, off + EVENT_SIZE) (the oldest goes when full); returns its seq. */
  add(mem: Buffer, off: number, names: NameTable): number {
    const seq = ++this.seq;
    const slot = (seq - 1) % this.size;
    if (mem !== this.src) {
      this.src = mem;
      this.src32 = (mem.byteOffset & 3) === 0 ? new Int32Array(mem.buffer, mem.byteOffset, mem.length >> 2) : undefined;
    }
    // A word loop: Buffer.copy's native call cost more than the 44 words it moves.
    const src32 = this.src32;
    if (src32 && (off & 3) === 0) {
      for (let i = 0, from = off >> 2, to = slot * WORDS; i < WORDS; i++) this.slab32[to + i] = src32[from + i]!;
    } else {
      mem.copy(this.slab, slot * EVENT_SIZE, off, off + EVENT_SIZE);
    }
    this.names[slot] = names;
    this.built[slot] = undefined;
    return seq;
  }

  /** Keeps a flow built in user space, `make` given its seq; returns it. */
  addFlow(make: (seq: number) => Flow): Flow {
    const seq = ++this.seq;
    const flow = make(seq);
    this.built[(seq - 1) % this.size] = flow;
    return flow;
  }

  /** The Flow of `seq`, which must still be held (seq > this.seq - size). */
  flow(seq: number): Flow {
    const slot = (seq - 1) % this.size;
    const built = this.built[slot];
    if (built) return built;
    return toFlow(FlowEvent.decode(this.slab, slot * EVENT_SIZE), seq, this.names[slot]!, this.bootOffsetNs);
  }

  /** The last `limit` flows that match, oldest first. */
  last(filter: FlowFilter, limit: number): Flow[] {
    const since = filter.since !== undefined && Number.isFinite(filter.since) ? Math.floor(filter.since) : 0;
    const oldest = Math.max(1, this.seq - this.size + 1, since + 1);
    const out: Flow[] = [];
    for (let seq = this.seq; seq >= oldest && out.length < limit; seq--) {
      const slot = (seq - 1) % this.size;
      const o = slot * EVENT_SIZE;
      if (!this.built[slot] && !mayMatchRaw(this.slab[o + EVENT_OFFSET.type]!, this.slab[o + EVENT_OFFSET.verdict]!, filter)) continue;
      const f = this.flow(seq);
      if (matches(f, filter)) out.push(f);
    }
    return out.reverse();
  }
}
