/**
 * Reads a BPF ring buffer from Node with no native call per batch or per
 * record: the ring is mapped into the process once (the layout libbpf's
 * ring_buffer uses: a writable consumer page, then the producer page and the
 * data area mapped twice, so a record that wraps is still contiguous), and
 * records are read in place.
 *
 * The programs submit without waking a reader (BPF_RB_NO_WAKEUP), so the
 * ring is drained on a short timer and before any answer that must include
 * the latest events. ring_buffer__consume did the same work through a koffi
 * callback and a koffi.view per record, which cost more than everything the
 * agent then did with the record.
 */
import { bpf, koffi, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, SC_PAGESIZE, lastErrno } from '../kernel/libbpf.js';
import { KernelError } from '../kernel/errors.js';

/** struct bpf_ringbuf_hdr: u32 len (with these two flags), u32 pg_off. */
const BUSY_BIT = 0x80000000;
const DISCARD_BIT = 0x40000000;
const HDR_SIZE = 8;

/**
 * Called once per record, synchronously: the record is `len` bytes of `mem`
 * from `off`, valid only during the call (the kernel reuses the space once
 * the batch is consumed); copy what must outlive it.
 */
export type RecordHandler = (mem: Buffer, off: number, len: number) => void;

function mapOrThrow(len: number, prot: number, fd: number, offset: number, what: string): unknown {
  const p = bpf.mmap(null, len, prot, MAP_SHARED, fd, offset);
  if (p === null || koffi.address(p) === MAP_FAILED) throw new KernelError(`mapping the flow event ring buffer (${what})`, lastErrno());
  return p;
}

export class RingReader {
  private readonly pageSize: number;
  private readonly mask: number;
  private consumerPage: unknown;
  private producerArea: unknown;
  /** consumer_pos, the one word this side writes. */
  private readonly consumerPos: BigUint64Array;
  /** producer_pos, then the data area from byte pageSize on (twice). */
  private readonly producerPos: BigUint64Array;
  private readonly words: Uint32Array;
  private readonly mem: Buffer;
  private timer: NodeJS.Timeout | undefined;
  records = 0;

  /** ringBytes: the map's max_entries (a power of two, a multiple of the page size). */
  constructor(mapFd: number, private readonly ringBytes: number, private readonly onRecord: RecordHandler) {
    if (!Number.isInteger(ringBytes) || ringBytes <= 0 || (ringBytes & (ringBytes - 1)) !== 0) {
      throw new RangeError(`ring buffer size must be a power of two, not ${ringBytes}`);
    }
    this.pageSize = Number(bpf.sysconf(SC_PAGESIZE));
    this.mask = ringBytes - 1;
    this.consumerPage = mapOrThrow(this.pageSize, PROT_READ | PROT_WRITE, mapFd, 0, 'consumer page');
    try {
      this.producerArea = mapOrThrow(this.pageSize + 2 * ringBytes, PROT_READ, mapFd, this.pageSize, 'producer page and data');
    } catch (e) {
      bpf.munmap(this.consumerPage, this.pageSize);
      throw e;
    }
    this.consumerPos = new BigUint64Array(koffi.view(this.consumerPage, 8));
    const area = koffi.view(this.producerArea, this.pageSize + 2 * ringBytes);
    this.producerPos = new BigUint64Array(area, 0, 1);
    this.words = new Uint32Array(area);
    this.mem = Buffer.from(area);
  }

  /** 8 MiB of ring hold ~47k events: at 20 ms that is ample for millions of events/s. */
  start(intervalMs = 20): void {
    this.timer = setInterval(() => this.drain(), intervalMs);
    this.timer.unref();
    this.drain();
  }

  /** Reads every record committed now; returns how many. */
  drain(): number {
    if (!this.producerArea) return 0;
    // Atomics give the acquire/release order the kernel's side expects.
    const start = Number(Atomics.load(this.consumerPos, 0));
    const prod = Number(Atomics.load(this.producerPos, 0));
    let cons = start;
    let n = 0;
    try {
      while (cons < prod) {
        const hdr = this.pageSize + (cons & this.mask);
        const len = Atomics.load(this.words, hdr >>> 2);
        if (len & BUSY_BIT) break; // reserved, not yet submitted: the next drain gets it
        const size = len & ~(BUSY_BIT | DISCARD_BIT);
        // Past it before the handler runs: a handler that throws never sees a record twice.
        cons += (size + HDR_SIZE + 7) & ~7;
        if (!(len & DISCARD_BIT)) {
          n++;
          this.onRecord(this.mem, hdr + HDR_SIZE, size);
        }
      }
    } finally {
      if (cons !== start) Atomics.store(this.consumerPos, 0, BigInt(cons));
      this.records += n;
    }
    return n;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.producerArea) bpf.munmap(this.producerArea, this.pageSize + 2 * this.ringBytes);
    if (this.consumerPage) bpf.munmap(this.consumerPage, this.pageSize);
    this.producerArea = undefined;
    this.consumerPage = undefined;
  }
}
