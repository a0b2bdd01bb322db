/**
 * Reads a BPF ring buffer on Node's event loop. The programs submit without
 * waking a reader (BPF_RB_NO_WAKEUP), so the ring is drained on a short
 * timer, and before any answer that must include the latest events: one
 * batch per tick instead of one wakeup per event. ring_buffer__consume calls
 * back once per record, synchronously, on the main thread.
 */
import { bpf, koffi, ringBufferSample } from '../kernel/libbpf.js';
import { KernelError } from '../kernel/errors.js';

export class RingReader {
  private rb: unknown;
  private cbPtr: unknown;
  private timer: NodeJS.Timeout | undefined;
  records = 0;

  constructor(mapFd: number, onRecord: (data: Buffer) => void) {
    this.cbPtr = koffi.register((_ctx: unknown, data: unknown, size: number | bigint) => {
      this.records++;
      // The record lives in the ring only during this call: copy it out.
      onRecord(Buffer.from(new Uint8Array(koffi.view(data, Number(size)))));
      return 0;
    }, koffi.pointer(ringBufferSample));
    this.rb = bpf.ring_buffer__new(mapFd, this.cbPtr, null, null);
    if (!this.rb) {
      koffi.unregister(this.cbPtr as never);
      throw new KernelError('opening the flow event ring buffer', koffi.errno());
    }
  }

  /** 8 MiB of ring hold ~47k events: at 20 ms that is ample for millions of events/s. */
  start(intervalMs = 20): void {
    this.timer = setInterval(() => this.drain(), intervalMs);
    this.timer.unref();
    this.drain();
  }

  /** Reads every record waiting now; returns how many. */
  drain(): number {
    if (!this.rb) return 0;
    const n = bpf.ring_buffer__consume(this.rb) as number;
    return n < 0 ? 0 : n;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.rb) bpf.ring_buffer__free(this.rb);
    this.rb = undefined;
    if (this.cbPtr) koffi.unregister(this.cbPtr as never);
    this.cbPtr = undefined;
  }
}
