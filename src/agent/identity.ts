/**
 * The agent's half of workload identity: for each workload of its node, a
 * key made here, a certificate the control plane's CA signed for it, and
 * the trust bundle, written where the node proxy reads them:
 *   STATE/svid/NAMESPACE.NAME/{key.pem,cert.pem,bundle.pem,svid.json}
 * (directory 0700, files 0600, each replaced by rename so a reader never
 * sees half a file). A certificate is renewed at half its lifetime; the old
 * one stays valid until it expires, so connections that used it are not cut.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { newKeyAndCsr, renewAt } from '../ca/index.js';
import type { ApiClient } from '../api/client.js';
import { agentApi } from '../api/controlplane.js';
import { describeError } from '../errors.js';
import { SYSTEM_NAMESPACE } from '../tunnel/ids.js';
import { privateDir, writePrivateFile } from '../host/private-files.js';

export interface SvidInfo {
  workload: string; // namespace/name
  spiffeId: string;
  notBefore: string;
  notAfter: string;
  renewals: number;
}

export class IdentityManager {
  private timer: NodeJS.Timeout | undefined;
  /** The pass running now, if any. */
  private pass: Promise<void> | undefined;
  lastError: string | undefined;

  constructor(
    private readonly dir: string,
    private readonly nodeName: string,
    private readonly cp: ApiClient,
    private readonly local: () => string[],
    /** mTLS tunnel: where the node's own SVID goes (spiffe://TD/ns/ebmesh-system/sa/node-NAME), if anywhere. */
    private readonly nodeDir?: string,
  ) {}

  /** The node SVID's entry in list(): under the system namespace, like its SPIFFE ID. */
  get nodeEntry(): string {
    return `${SYSTEM_NAMESPACE}/node-${this.nodeName}`;
  }

  /** Checks every checkMs from now on; the promise settles with the first pass (it never rejects: errors go to lastError). */
  start(checkMs = 500): Promise<void> {
    privateDir(this.dir);
    this.timer = setInterval(() => void this.sync(), checkMs);
    this.timer.unref();
    return this.sync();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private pathOf(workload: string): string {
    if (this.nodeDir && workload === this.nodeEntry) return this.nodeDir;
    return join(this.dir, workload.replace('/', '.'));
  }

  info(workload: string): SvidInfo | undefined {
    const f = join(this.pathOf(workload), 'svid.json');
    if (!existsSync(f)) return undefined;
    try { return JSON.parse(readFileSync(f, 'utf8')) as SvidInfo; } catch { return undefined; }
  }

  list(): SvidInfo[] {
    return this.wanted().map((w) => this.info(w)).filter((x): x is SvidInfo => !!x);
  }

  private wanted(): string[] {
    return this.nodeDir ? [this.nodeEntry, ...this.local()] : this.local();
  }

  /** Issues what is missing or due, removes what no longer runs here; a call during a pass joins it. */
  sync(): Promise<void> {
    this.pass ??= this.syncPass().finally(() => { this.pass = undefined; });
    return this.pass;
  }

  /**
   * A planned stop: no more checks, and the node SVID is renewed now,
   * whatever its age. It is what the node proxy serves in the tunnel while
   * no agent runs, and the next agent may take seconds to start on a busy
   * node: it gets a whole lifetime to do it in, not what is left of half of
   * one. Never rejects (an error goes to lastError).
   */
  async handOver(): Promise<void> {
    this.stop();
    await this.pass;
    if (!this.nodeDir) return;
    const cur = this.info(this.nodeEntry);
    try {
      await this.issue(this.nodeEntry, cur?.renewals === undefined ? 0 : cur.renewals + 1);
    } catch (e) {
      this.lastError = describeError(e);
    }
  }

  private async syncPass(): Promise<void> {
    try {
      const want = new Set(this.wanted());
      for (const w of want) {
        const cur = this.info(w);
        if (cur && Date.now() < renewAt(cur.notBefore, cur.notAfter)) continue;
        await this.issue(w, cur?.renewals === undefined ? 0 : cur.renewals + 1);
      }
      if (existsSync(this.dir)) {
        for (const d of readdirSync(this.dir)) {
          if (!want.has(d.replace('.', '/'))) rmSync(join(this.dir, d), { recursive: true, force: true });
        }
      }
      this.lastError = undefined;
    } catch (e) {
      // The control plane may be down: the current certificates stay valid until they expire, try again soon.
      this.lastError = describeError(e);
    }
  }

  private async issue(workload: string, renewals: number): Promise<void> {
    const { keyPem, csrPem } = await newKeyAndCsr(`workload:${workload}`);
    const isNode = !!this.nodeDir && workload === this.nodeEntry;
    const r = await this.cp.call(agentApi.svid, isNode ? { node: this.nodeName, forNode: true, csrPem } : { node: this.nodeName, workload, csrPem });
    const dir = this.pathOf(workload);
    privateDir(dir);
    const put = (name: string, text: string) => writePrivateFile(join(dir, name), text);
    // Key before certificate: a reader that sees the new certificate finds its key.
    put('key.pem', keyPem);
    put('cert.pem', r.certPem);
    put('bundle.pem', r.bundlePem);
    put('svid.json', JSON.stringify({ workload, spiffeId: r.spiffeId, notBefore: r.notBefore, notAfter: r.notAfter, renewals } satisfies SvidInfo));
  }
}
