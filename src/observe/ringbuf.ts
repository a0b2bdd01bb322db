/**
 * Reads a BPF ring buffer on Node's event loop: libbpf's epoll fd is polled
 * by koffi, and each readiness drains the ring through ring_buffer__consume,
 * which calls back once per record, synchronously, on the main thread.
 */
import { bpf, koffi, ringBufferSample } from '../kernel/libbpf.js';
import { KernelError } from '../kernel/errors.js';

export class RingReader {
  private rb: unknown;
  private cbPtr: unknown;
  private poller: ReturnType<typeof koffi.node.poll> | undefined;
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

  start(): void {
    const fd = bpf.ring_buffer__epoll_fd(this.rb) as number;
    this.poller = koffi.node.poll(fd, { readable: true }, () => this.drain());
    this.poller.unref();
    this.drain();
  }

  /** Reads every record waiting now; returns how many. */
  drain(): number {
    if (!this.rb) return 0;
    const n = bpf.ring_buffer__consume(this.rb) as number;
    return n < 0 ? 0 : n;
  }

  close(): void {
    this.poller?.close();
    this.poller = undefined;
    if (this.rb) bpf.ring_buffer__free(this.rb);
    this.rb = undefined;
    if (this.cbPtr) koffi.unregister(this.cbPtr as never);
    this.cbPtr = undefined;
  }
}
