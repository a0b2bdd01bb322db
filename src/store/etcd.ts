/**
 * The Store over etcd v3, through etcd's JSON gateway (/v3/kv/*, /v3/watch)
 * with node:http. Why the gateway and not a gRPC client (etcd3 on npm): the
 * gateway ships in every etcd 3.4+, needs no dependency (the gRPC stack and
 * protobuf would be most of our node_modules), and is the same HTTP+JSON we
 * already speak; the price is base64 keys and values, which is ours to pay.
 *
 * Always over TLS with a client certificate: etcd holds the desired state,
 * and a Workload's command runs as root on its node, so nobody may write it
 * (or read its env) without the certificate, nor pose as etcd to us.
 *
 * Keys live under a prefix (one per mesh instance), values are JSON.
 * A commit is one txn; a watch resumes from the revision after the last one
 * it delivered, so a reconnect misses nothing (or, when etcd compacted past
 * it, says so with an empty event that makes the reader re-list).
 */
import type { IncomingMessage } from 'node:http';
import { Agent, request, type RequestOptions } from 'node:https';
import { readFileSync } from 'node:fs';
import { EbmeshError } from '../errors.js';
import type { EtcdTlsFiles } from './etcd-pki.js';
import type { Entry, Op, Store, StoreMember, WatchEvent } from './store.js';

interface Kv { key: string; value?: string; mod_revision?: string }
interface Header { revision?: string }

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The end of the key range "every key starting with p". */
export function prefixEnd(p: string): string {
  const buf = Buffer.from(p, 'utf8');
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      const out = buf.subarray(0, i + 1);
      out[i]!++;
      return out.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64'); // every key
}

/** The client's side of TLS with etcd, as PEM text: the CA that signed etcd's certificate, our certificate and key. */
export interface EtcdTls {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

export interface EtcdStoreOptions {
  /** https://HOST:PORT of one etcd member (or give endpoints). */
  endpoint?: string;
  /**
   * https://HOST:PORT of each member of the cluster: requests go to one, and
   * to the next when it does not answer (a member down is not the store down).
   */
  endpoints?: string[];
  tls: EtcdTls;
  /** Every key of this store is below it, e.g. /ebmesh/NAME. */
  prefix?: string;
  /** Reconnect delay of a broken watch (doubles up to 2 s). */
  retryMs?: number;
}

export class EtcdStore implements Store {
  private readonly urls: URL[];
  /** The member requests go to now; moves on when one fails to answer. */
  private current = 0;
  private readonly prefix: string;
  private readonly tls: EtcdTls;
  private readonly agent: Agent;
  private readonly watches = new Set<{ stop(): void }>();
  private readonly retryMs: number;

  constructor(opts: EtcdStoreOptions) {
    const endpoints = [...(opts.endpoints ?? []), ...(opts.endpoint ? [opts.endpoint] : [])];
    if (endpoints.length === 0) throw new EbmeshError('EBMESH_USAGE', 'etcd: no endpoint given');
    this.urls = endpoints.map((e) => {
      const url = new URL(e);
      if (url.protocol !== 'https:') {
        throw new EbmeshError('EBMESH_USAGE', `etcd at ${e}: ebmesh speaks to etcd over TLS only (https://)`, { hint: 'whoever can write etcd can run commands on every node: give etcd a certificate and ask clients for theirs' });
      }
      return url;
    });
    this.tls = opts.tls;
    this.agent = new Agent({ keepAlive: true, maxSockets: 8, ...this.tls });
    this.prefix = opts.prefix ?? '';
    this.retryMs = opts.retryMs ?? 100;
  }

  /** The member requests go to now. */
  get endpoint(): string {
    return this.url.origin;
  }

  private get url(): URL {
    return this.urls[this.current % this.urls.length]!;
  }

  /** The next member, after URL failed to answer (unless another request moved on already). */
  private failOver(url: URL): void {
    if (this.url === url) this.current = (this.current + 1) % this.urls.length;
  }

  private requestOptions(path: string, url = this.url): RequestOptions {
    return { host: url.hostname, port: url.port, path, method: 'POST' };
  }

  /**
   * One call, tried on each member in turn until one answers. Trying a txn
   * again is safe: its puts and deletes name whole values, so landing twice
   * leaves what landing once does. A TLS failure is not retried: another
   * member would refuse us the same way, and the error says what to fix.
   */
  private async post<T>(path: string, body: unknown, timeoutMs = 15_000): Promise<T> {
    let last: unknown;
    for (let i = 0; i < this.urls.length; i++) {
      const url = this.url;
      try {
        return await this.postTo<T>(url, path, body, timeoutMs);
      } catch (e) {
        if (!(e instanceof EbmeshError) || e.code !== 'EBMESH_STORE_UNAVAILABLE') throw e;
        last = e;
        this.failOver(url);
      }
    }
    throw last;
  }

  private postTo<T>(url: URL, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const text = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        { ...this.requestOptions(path, url), agent: this.agent, timeout: timeoutMs,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            let json: any;
            try { json = JSON.parse(raw); } catch { return reject(this.err(`bad answer to ${path}: ${raw.slice(0, 200)}`, url)); }
            if (res.statusCode !== 200 || json.error || json.code) {
              return reject(this.err(`${path}: ${json.error ?? json.message ?? `HTTP ${res.statusCode}`}`, url));
            }
            resolve(json as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(this.err(`${path}: no answer in ${timeoutMs / 1000}s`, url)));
      req.on('error', (e: NodeJS.ErrnoException) => reject(e instanceof EbmeshError ? e : this.failed(path, e, url)));
      req.end(text);
    });
  }

  private err(message: string, url: URL): EbmeshError {
    const others = this.urls.length > 1 ? ` (and no other of its ${this.urls.length} members answered)` : '';
    return new EbmeshError('EBMESH_STORE_UNAVAILABLE', `etcd at ${url.origin}: ${message}${others}`, { hint: 'is etcd running? (ebmesh status shows the store)' });
  }

  /** A failed request: a TLS handshake that failed says so, with what to check. */
  private failed(path: string, e: NodeJS.ErrnoException, url: URL): EbmeshError {
    const code = e.code ?? '';
    if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|ISSUER/i.test(code)) {
      return new EbmeshError('EBMESH_TLS', `etcd at ${url.origin}: ${path}: TLS failed: ${e.message}`, { hint: 'etcd\'s certificate must be signed by the CA given (--etcd-ca) and name the host dialled; etcd must trust the CA of ours (--etcd-cert)' });
    }
    return this.err(`${path}: ${code || e.message}`, url);
  }

  async revision(): Promise<number> {
    const r = await this.post<{ header: Header }>('/v3/kv/range', { key: b64(this.prefix + '/'), count_only: true });
    return Number(r.header.revision ?? 0);
  }

  async get<T>(key: string): Promise<Entry<T> | undefined> {
    const r = await this.post<{ kvs?: Kv[] }>('/v3/kv/range', { key: b64(this.prefix + key) });
    const kv = r.kvs?.[0];
    return kv && this.entry<T>(kv);
  }

  async list<T>(prefix: string): Promise<Entry<T>[]> {
    const p = this.prefix + prefix;
    const r = await this.post<{ kvs?: Kv[] }>('/v3/kv/range', { key: b64(p), range_end: prefixEnd(p) }, 60_000);
    return (r.kvs ?? []).map((kv) => this.entry<T>(kv));
  }

  /** Like list, with the revision the listing is at (to watch from the next one). */
  async listAt<T>(prefix: string): Promise<{ revision: number; entries: Entry<T>[] }> {
    const p = this.prefix + prefix;
    const r = await this.post<{ header: Header; kvs?: Kv[] }>('/v3/kv/range', { key: b64(p), range_end: prefixEnd(p) }, 60_000);
    return { revision: Number(r.header.revision ?? 0), entries: (r.kvs ?? []).map((kv) => this.entry<T>(kv)) };
  }

  private entry<T>(kv: Kv): Entry<T> {
    return { key: unb64(kv.key).slice(this.prefix.length), value: JSON.parse(unb64(kv.value)) as T, modRevision: Number(kv.mod_revision ?? 0) };
  }

  async commit(ops: Op[]): Promise<number> {
    if (ops.length === 0) return this.revision();
    const success = ops.map((op) =>
      op.type === 'put'
        ? { request_put: { key: b64(this.prefix + op.key), value: b64(JSON.stringify(op.value)) } }
        : { request_delete_range: { key: b64(this.prefix + op.key) } });
    // etcd refuses a txn that names one key twice: the last op on a key wins, as in the embedded store.
    const last = new Map<string, number>();
    ops.forEach((op, i) => last.set(op.key, i));
    const unique = success.filter((_, i) => last.get(ops[i]!.key) === i);
    const r = await this.post<{ header: Header; succeeded?: boolean }>('/v3/kv/txn', { success: unique }, 120_000);
    return Number(r.header.revision ?? 0);
  }

  /**
   * Calls fn once per revision that touched the store's keys, in order.
   * Without fromRevision it starts after the current one.
   */
  watch(fn: (ev: WatchEvent) => void, fromRevision?: number): () => void {
    let next = fromRevision;
    let stopped = false;
    let res: IncomingMessage | undefined;
    let timer: NodeJS.Timeout | undefined;
    let delay = this.retryMs;
    let url = this.url;
    const p = this.prefix + '/';
    const connect = () => {
      if (stopped) return;
      const body = JSON.stringify({ create_request: { key: b64(p), range_end: prefixEnd(p), ...(next ? { start_revision: String(next) } : {}) } });
      url = this.url;
      // Its own connection (agent: false): a watch holds it for as long as it runs.
      const req = request(
        { ...this.requestOptions('/v3/watch', url), agent: false, ...this.tls, headers: { 'content-type': 'application/json' } },
        (r) => {
          res = r;
          // One message may be megabytes (a bulk txn): keep its chunks and look for the newline only in the new one.
          let parts: string[] = [];
          r.setEncoding('utf8');
          r.on('data', (chunk: string) => {
            let nl: number;
            while ((nl = chunk.indexOf('\n')) >= 0) {
              parts.push(chunk.slice(0, nl));
              const line = parts.join('');
              parts = [];
              chunk = chunk.slice(nl + 1);
              if (line.trim()) onMessage(JSON.parse(line));
            }
            if (chunk) parts.push(chunk);
          });
          r.on('error', () => undefined);
          r.on('close', retry);
        },
      );
      req.on('error', retry);
      req.end(body);
    };
    const onMessage = (m: { result?: { header?: Header; created?: boolean; compact_revision?: string; canceled?: boolean; events?: Array<{ type?: string; kv: Kv }> }; error?: unknown }) => {
      const result = m.result;
      if (!result) return;
      delay = this.retryMs;
      const headerRev = Number(result.header?.revision ?? 0);
      if (result.compact_revision && Number(result.compact_revision) > 0) {
        // The revisions we wanted are gone: tell the reader to re-list, go on from now.
        next = headerRev + 1;
        fn({ revision: headerRev, ops: [] });
        res?.destroy();
        return;
      }
      if (result.created && next === undefined) next = headerRev + 1;
      let cur: WatchEvent | undefined;
      for (const e of result.events ?? []) {
        const rev = Number(e.kv.mod_revision ?? 0);
        if (!cur || cur.revision !== rev) {
          if (cur) deliver(cur);
          cur = { revision: rev, ops: [] };
        }
        const key = unb64(e.kv.key).slice(this.prefix.length);
        cur.ops.push(e.type === 'DELETE' ? { type: 'delete', key } : { type: 'put', key, value: JSON.parse(unb64(e.kv.value)) });
      }
      if (cur) deliver(cur);
    };
    const deliver = (ev: WatchEvent) => {
      next = ev.revision + 1;
      if (!stopped) fn(ev);
    };
    const retry = () => {
      res = undefined;
      if (stopped || timer) return;
      // Resumed on the next member (from the revision after the last delivered, so nothing is missed).
      this.failOver(url);
      timer = setTimeout(() => { timer = undefined; connect(); }, delay);
      timer.unref();
      delay = Math.min(delay * 2, 2000);
    };
    const handle = {
      stop: () => {
        stopped = true;
        clearTimeout(timer);
        res?.destroy();
        this.watches.delete(handle);
      },
    };
    this.watches.add(handle);
    connect();
    return handle.stop;
  }

  /** Each member's /health (it answers true once it has a leader), asked in TLS; a second at most each. */
  members(): Promise<StoreMember[]> {
    return Promise.all(this.urls.map((url) => new Promise<StoreMember>((resolve) => {
      const endpoint = url.origin;
      const req = request({ host: url.hostname, port: url.port, path: '/health', method: 'GET', timeout: 1000, agent: false, ...this.tls }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('error', (e) => resolve({ endpoint, healthy: false, error: e.message }));
        res.on('end', () => {
          let health: string | undefined;
          try { health = (JSON.parse(text) as { health?: string }).health; } catch { /* said below */ }
          resolve(res.statusCode === 200 && health === 'true' ? { endpoint, healthy: true } : { endpoint, healthy: false, error: `health: ${text.trim().slice(0, 200) || `HTTP ${res.statusCode}`}` });
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer in 1 s')));
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ endpoint, healthy: false, error: e.code ?? e.message }));
      req.end();
    })));
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) w.stop();
    this.agent.destroy();
  }
}

/**
 * `etcd+tls://HOST:PORT[,HOST:PORT…][/PREFIX]` (one or every member of a
 * cluster) and the files of the client's side of TLS
 * → options. Plain `etcd://` is refused: see the header.
 */
export function parseEtcdUrl(url: string, defaultPrefix: string, files: Partial<EtcdTlsFiles>): EtcdStoreOptions {
  if (!url.startsWith('etcd+tls://')) {
    throw new EbmeshError('EBMESH_USAGE', `--store ${url}: etcd is spoken to over TLS with a client certificate only: etcd+tls://HOST:PORT[/PREFIX]`, {
      hint: 'with --etcd-ca FILE (the CA that signed etcd\'s certificate), --etcd-cert FILE and --etcd-key FILE (ours, which etcd must trust)',
    });
  }
  const missing = (['ca', 'cert', 'key'] as const).filter((k) => !files[k]);
  if (missing.length) throw new EbmeshError('EBMESH_USAGE', `--store ${url} needs ${missing.map((k) => `--etcd-${k}`).join(', ')}`);
  const read = (what: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new EbmeshError('EBMESH_FILE', `--etcd-${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  // HOST:PORT,HOST:PORT,…: the members of one cluster.
  const rest = url.slice('etcd+tls://'.length);
  const slash = rest.indexOf('/');
  const hosts = (slash < 0 ? rest : rest.slice(0, slash)).split(',');
  const path = slash < 0 ? '' : rest.slice(slash);
  const endpoints = hosts.map((h) => {
    let u: URL;
    try {
      u = new URL(`https://${h}`);
    } catch {
      throw new EbmeshError('EBMESH_USAGE', `--store ${url}: "${h}" is not HOST:PORT`);
    }
    if (!h || u.pathname !== '/' || u.search || u.username || u.hash) throw new EbmeshError('EBMESH_USAGE', `--store ${url}: "${h}" is not HOST:PORT`);
    return `https://${u.host}`;
  });
  return {
    endpoints,
    prefix: path && path !== '/' ? path.replace(/\/$/, '') : defaultPrefix,
    tls: { ca: read('ca', files.ca!), cert: read('cert', files.cert!), key: read('key', files.key!) },
  };
}
