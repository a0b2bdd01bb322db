/**
 * A response body from the HTTP/1.1 pool to its one reader. It offers the
 * part of a Readable the router uses (data, end and error events, pause,
 * resume; resume() with no reader discards) without a Readable's state
 * machine, which costs a few ticks and listener calls per chunk — more than
 * forwarding a small body.
 */
export interface ResponseBody {
  on(ev: 'data', fn: (chunk: Buffer) => void): unknown;
  on(ev: 'error', fn: (e: Error) => void): unknown;
  once(ev: 'end', fn: () => void): unknown;
  off(ev: 'data', fn: (chunk: Buffer) => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** Bytes held for a reader that is not reading before the producer is asked to stop (as a Readable's highWaterMark). */
const HIGH_WATER = 64 * 1024;
const RESOLVED = Promise.resolve();

export class BodyFeed implements ResponseBody {
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private ended = false;
  private done = false;
  private paused = false;
  private discard = false;
  private scheduled = false;
  private reader: ((chunk: Buffer) => void) | undefined;
  private onEnd: (() => void) | undefined;
  private onError: ((e: Error) => void) | undefined;

  /** `more` is called when the reader wants data again after push() said stop. */
  constructor(private readonly more: () => void) {}

  /** Producer: false means stop until `more` is called. */
  push(chunk: Buffer): boolean {
    if (this.done) return false;
    if (this.discard) return true;
    if (this.reader && !this.paused && !this.queued.length) {
      this.reader(chunk);
      return !this.paused;
    }
    this.queued.push(chunk);
    this.queuedBytes += chunk.length;
    return this.queuedBytes < HIGH_WATER;
  }

  end(): void {
    if (this.done) return;
    this.ended = true;
    if (!this.queued.length && (this.reader || this.discard)) this.finish();
  }

  /** The body cannot complete: error listeners hear why, nothing else is delivered. */
  destroy(e?: Error): void {
    if (this.done) return;
    this.done = true;
    this.queued = [];
    this.queuedBytes = 0;
    if (e) this.onError?.(e);
  }

  on(ev: 'data', fn: (chunk: Buffer) => void): this;
  on(ev: 'error', fn: (e: Error) => void): this;
  on(ev: 'data' | 'error', fn: ((chunk: Buffer) => void) | ((e: Error) => void)): this {
    if (ev === 'error') this.onError = fn as (e: Error) => void;
    else {
      this.reader = fn as (chunk: Buffer) => void;
      this.schedule(); // after the caller has attached its other listeners
    }
    return this;
  }

  once(_ev: 'end', fn: () => void): this {
    this.onEnd = fn;
    return this;
  }

  off(_ev: 'data', fn: (chunk: Buffer) => void): this {
    if (this.reader === fn) this.reader = undefined;
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    if (!this.reader) {
      this.discard = true;
      this.queued = [];
      this.queuedBytes = 0;
    }
    this.schedule();
    return this;
  }

  private schedule(): void {
    if (this.scheduled || this.done) return;
    this.scheduled = true;
    // Not queueMicrotask(): Node wraps each call in an AsyncResource, which
    // profiled at several percent of the proxy's CPU; a resolved promise does not.
    RESOLVED.then(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.done) return;
    while (this.queued.length && this.reader && !this.paused) {
      const c = this.queued.shift()!;
      this.queuedBytes -= c.length;
      this.reader(c);
    }
    if (this.paused || this.done) return;
    if (this.ended) {
      if (!this.queued.length) this.finish();
    } else this.more();
  };

  private finish(): void {
    this.done = true;
    this.onEnd?.();
  }
}
