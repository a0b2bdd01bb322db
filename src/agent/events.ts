/**
 * Reads the data path's event stream (the ebm_events ring buffer of struct
 * ebm_flow_event) and keeps the most recent drops for the API. The kernel
 * never waits on this reader: when the buffer is full it counts the event as
 * lost (EBM_CNT_POL_EVENT_LOST) and moves on.
 *
 * One reader per ring buffer: the observability work is meant to take this
 * over and fan the events out; until then, drops are all it sees.
 */
import { bpf, koffi, ringBufferSample } from '../kernel/libbpf.js';
import { KernelError } from '../kernel/errors.js';
import type { RawMap } from '../kernel/index.js';
import { FlowEvent, type ValueOf } from '../abi/structs.js';

export type FlowEventRecord = ValueOf<typeof FlowEvent>;

export class EventReader {
  private rb: unknown;
  private cb: unknown;
  private timer: NodeJS.Timeout | undefined;
  private readonly recent: FlowEventRecord[] = [];
  total = 0;

  constructor(map: RawMap, private readonly keep = 1000, intervalMs = 100) {
    this.cb = koffi.register((_ctx: unknown, data: unknown, size: number) => {
      if (size >= FlowEvent.size) this.push(FlowEvent.decode(Buffer.from(koffi.view(data, FlowEvent.size) as ArrayBuffer)));
      return 0;
    }, koffi.pointer(ringBufferSample));
    this.rb = bpf.ring_buffer__new(map.fd, this.cb, null, null);
    if (!this.rb) throw new KernelError('opening the ebm_events ring buffer', 22, { where: 'ebm_events' });
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  private push(e: FlowEventRecord): void {
    this.total++;
    this.recent.push(e);
    if (this.recent.length > this.keep) this.recent.splice(0, this.recent.length - this.keep);
  }

  poll(): void {
    if (this.rb) bpf.ring_buffer__consume(this.rb);
  }

  /** The most recent events, oldest first. */
  events(): readonly FlowEventRecord[] {
    this.poll();
    return this.recent;
  }

  close(): void {
    clearInterval(this.timer);
    if (this.rb) bpf.ring_buffer__free(this.rb);
    this.rb = undefined;
    if (this.cb) koffi.unregister(this.cb as never);
    this.cb = undefined;
  }
}
