/**
 * The node proxy's native relay (native/relay, C), typed. One engine thread
 * per process owns the sockets handed to it and moves their bytes: the mTLS
 * tunnel's HTTP/2 sessions over TLS 1.3, both ends, and TCP pass-through.
 * JavaScript keeps every decision (who the peer must be, what policy says)
 * and hears about each object through one event channel per thread.
 * Why C: docs/native-relay.md.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { join } from 'node:path';
import { EbmeshError } from '../errors.js';
import { PACKAGE_ROOT } from '../paths.js';

/** The addon; EBMESH_RELAY_ADDON names another build of it (the AddressSanitizer one, docs/native-relay.md). */
export const RELAY_ADDON = process.env.EBMESH_RELAY_ADDON || join(PACKAGE_ROOT, 'native/relay/build/relay.node');

/** Event types: `enum ev_type` in native/relay/relay.h. */
export const Ev = {
  SessionVerify: 1,
  SessionReady: 2,
  SessionFailed: 3,
  SessionClosed: 4,
  Answer: 5,
  StreamEnd: 6,
  StreamRequest: 7,
  StreamConnected: 8,
  DialError: 9,
  PipeEnd: 10,
  PipeConnected: 11,
  TlsError: 12,
  SessionNew: 13,
} as const;

/** One event, as the addon builds it: the meaning of each field depends on `type` (relay.h). */
export interface RelayEvent {
  type: number;
  id: number;
  aux: number;
  status: number;
  n1: number;
  n2: number;
  ms: number;
  s0: string | null;
  s1: string | null;
  s2: string | null;
  s3: string | null;
  list?: string[];
}

declare const contextBrand: unique symbol;
/** A TLS context (key, certificate chain, trust bundle) held by the addon. */
export type RelayContext = { readonly [contextBrand]: true };
declare const countsBrand: unique symbol;
export type ListenerCounts = { readonly [countsBrand]: true };

/** The addon's functions (native/relay/binding.c). */
export interface RelayBinding {
  attach(handler: (events: RelayEvent[]) => void): number;
  context(certPem: string, keyPem: string, bundlePem: string): RelayContext;
  takeFd(fd: number): number;
  socketPair(): [number, number];
  closeFd(fd: number): void;
  clientNew(sink: number, ctx: RelayContext, connectTimeoutMs: number): number;
  clientSetContext(id: number, ctx: RelayContext): void;
  clientClose(id: number): void;
  streamOpen(sink: number, client: number, fd: number, resetOnFail: boolean, host: string, port: number, authority: string, sourceId: string | null, sourceIp: string | null, head: Buffer | null): number;
  sessionVerdict(session: number, ok: boolean, peerId: string | null, reason: string | null): void;
  listen(host: string, port: number, reusePort: boolean, backlog: number): number;
  localPort(fd: number): number;
  listenerNew(sink: number, fd: number, ctx: RelayContext): [number, ListenerCounts];
  listenerCounts(counts: ListenerCounts): [number, number];
  listenerSetContext(id: number, ctx: RelayContext): void;
  listenerStop(id: number): void;
  listenerGoaway(id: number, graceMs: number): void;
  listenerClose(id: number, force: boolean): void;
  streamVerdict(stream: number, status: number, reason: string | null, ip: string | null, port: number): void;
  pipeNew(sink: number, fd: number, ip: string, port: number, localIp: string | null, head: Buffer | null): number;
  bpfPinned(path: string): [number, number, number];
  bpfTake(fd: number, key: Buffer, value: Buffer): number;
  bpfLookup(fd: number, key: Buffer, value: Buffer): number;
}

let binding: RelayBinding | undefined;

export function relayBinding(): RelayBinding {
  if (binding) return binding;
  if (!existsSync(RELAY_ADDON)) {
    throw new EbmeshError('EBMESH_RELAY_NOT_BUILT', `the native relay is not built: ${RELAY_ADDON} is missing`, { hint: 'run npm run build (make -C native/relay)' });
  }
  binding = createRequire(import.meta.url)(RELAY_ADDON) as RelayBinding;
  return binding;
}

/** Events of session objects go to their owner (a client or a listener, `aux`); the rest to the object itself. */
const BY_OWNER = new Set<number>([Ev.SessionVerify, Ev.SessionReady, Ev.SessionFailed, Ev.SessionClosed, Ev.TlsError, Ev.SessionNew, Ev.StreamRequest]);

/** This thread's channel: handlers by object id. */
export class Relay {
  readonly sink: number;
  private readonly handlers = new Map<number, (e: RelayEvent) => void>();

  constructor(readonly b: RelayBinding) {
    this.sink = b.attach((events) => this.dispatch(events));
  }

  on(id: number, handler: (e: RelayEvent) => void): void {
    this.handlers.set(id, handler);
  }

  off(id: number): void {
    this.handlers.delete(id);
  }

  private dispatch(events: RelayEvent[]): void {
    for (const e of events) {
      const h = this.handlers.get(BY_OWNER.has(e.type) ? e.aux : e.id);
      if (!h) continue;
      try {
        h(e);
      } catch (err) {
        // One handler's bug must not lose the other events of the batch.
        queueMicrotask(() => { throw err; });
      }
    }
  }
}

let mine: Relay | undefined;

/** The relay as this thread sees it (the engine is shared by the whole process). */
export function relay(): Relay {
  return (mine ??= new Relay(relayBinding()));
}

/**
 * Hands a connected net.Socket's connection to the relay: the relay gets
 * its own descriptor of the same socket, and Node's is closed, which sends
 * nothing to the peer (the connection stays open on the relay's
 * descriptor). Bytes Node had already read but not delivered are returned
 * with it.
 */
export function takeSocket(socket: net.Socket): { fd: number; pending: Buffer } {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new EbmeshError('EBMESH_SOCKET', 'the connection has no descriptor to hand to the relay (closed already?)');
  const own = relayBinding().takeFd(fd);
  socket.pause();
  const parts: Buffer[] = [];
  for (let c: Buffer | null; (c = socket.read() as Buffer | null) !== null;) parts.push(c);
  socket.destroy();
  return { fd: own, pending: parts.length ? Buffer.concat(parts) : Buffer.alloc(0) };
}

/**
 * A pinned BPF map read one entry at a time, for processes that do not load
 * libbpf: the node proxy's workers take the kernel's record of each steered
 * connection (looked up and deleted in one call) and read where the kernel
 * steers. The layout is checked against the codecs' sizes at open.
 */
export class PinnedMap<K, V> {
  private readonly fd: number;
  private readonly valueBuf: Buffer;

  constructor(path: string, private readonly key: { size: number; encode(k: K): Buffer }, private readonly value: { size: number; decode(b: Buffer): V }) {
    const b = relayBinding();
    const [fd, keySize, valueSize] = b.bpfPinned(path);
    if (keySize !== key.size || valueSize !== value.size) {
      b.closeFd(fd);
      throw new EbmeshError('EBMESH_KERNEL', `map ${path} layout check (key ${keySize}/${key.size}, value ${valueSize}/${value.size} bytes kernel/ts)`, { hint: 'the TS mirror in src/abi/structs.ts no longer matches ebmesh_abi.h' });
    }
    this.fd = fd;
    this.valueBuf = Buffer.alloc(value.size);
  }

  /** The entry for `k`, removed from the map; undefined when there is none. */
  take(k: K): V | undefined {
    return this.read(k, relayBinding().bpfTake, 'BPF_MAP_LOOKUP_AND_DELETE_ELEM');
  }

  /** The entry for `k`, left in place; undefined when there is none. */
  get(k: K): V | undefined {
    return this.read(k, relayBinding().bpfLookup, 'BPF_MAP_LOOKUP_ELEM');
  }

  private read(k: K, call: (fd: number, key: Buffer, value: Buffer) => number, what: string): V | undefined {
    const r = call(this.fd, this.key.encode(k), this.valueBuf);
    if (r === -2 /* ENOENT */) return undefined;
    if (r < 0) throw new EbmeshError('EBMESH_KERNEL', `bpf(${what}): errno ${-r}`);
    return this.value.decode(this.valueBuf);
  }

  close(): void {
    relayBinding().closeFd(this.fd);
  }
}

/** How a carried connection ended: bytes from the caller and to it, and why it ended if not by FINs both ways. */
export interface Carried {
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** Whether the backend accepted the connection. */
  connected: boolean;
  error?: string;
}

/**
 * TCP pass-through in the relay: the caller's connection (`fd`, the relay's
 * from now on) to ip:port (from localIp when given), `head` first. Resolves
 * when both directions ended, or either failed (then both were reset).
 */
export function relayPipe(fd: number, ip: string, port: number, localIp: string | undefined, head: Buffer): Promise<Carried> {
  const r = relay();
  return new Promise((resolve) => {
    const id = r.b.pipeNew(r.sink, fd, ip, port, localIp ?? null, head.length ? head : null);
    r.on(id, (e) => {
      if (e.type !== Ev.PipeEnd) return;
      r.off(id);
      resolve({ bytesIn: e.n1, bytesOut: e.n2, durationMs: e.ms, connected: !!e.status, ...(e.s0 ? { error: e.s0 } : {}) });
    });
  });
}
