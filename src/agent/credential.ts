/**
 * An agent's node certificate: how it proves to the control plane which
 * node it is, in mutual TLS, and how it knows the control plane from anyone
 * else. It names spiffe://TD/ns/ebmesh-system/sa/node-NODE and lives longer
 * than the node's tunnel SVID (by default 30 days, ControlPlane's
 * NODE_CERT_TTL_SECONDS), so an agent that was down for hours comes back
 * without a new join token; it is renewed at half its life.
 *
 * The first one comes for the node's join token (one use): the agent sends a
 * CSR with the token over TLS to the control plane, trusting only the CA
 * bundle it was given with the token. The token is spent then, and its file
 * removed. In a Kubernetes cluster the agent enrols instead with its pod's
 * projected service-account token, which is never spent
 * (kubernetes-identity.ts). The key is made here and never leaves the node.
 *
 *   STATE/credential/{key.pem,cert.pem,bundle.pem,credential.json}
 * (directory 0700, files 0600).
 *
 * The control plane must present a certificate of that CA naming
 * spiffe://TD/ns/ebmesh-system/sa/controlplane: an agent takes desired state
 * (commands it runs as root) from nobody else.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { newKeyAndCsr, renewAt, svidId } from '../ca/index.js';
import { ApiClient } from '../api/client.js';
import { agentApi } from '../api/controlplane.js';
import { nodeTransport, type Address, type ClientTls } from '../api/node-transport.js';
import { EbmeshError, describeError, isEbmeshError } from '../errors.js';
import { isControlPlaneId, nodeOf, parseSpiffeId, spiffeIdFromSan } from '../tunnel/ids.js';
import { privateDir, writePrivateFile } from '../host/private-files.js';

/**
 * What an agent enrols with: a token and the CA bundle to trust while
 * enrolling. Outside a cluster, a one-use join token and a bundle from
 * whoever registered the node (files); in a cluster, the pod's projected
 * service-account token and the bundle the control plane publishes.
 */
export interface JoinMaterial {
  /** The token and the bundle; rejects with a clear error when there are none. */
  read(): Promise<{ token: string; caPem: string }>;
  /** After an enrolment: a one-use token is gone. */
  spent(): void;
  /** What to do when there is no token (for the error). */
  hint: string;
}

/** A join token and CA bundle in files (the token file is removed once spent). */
export function joinFiles(tokenFile: string, caFile: string): JoinMaterial {
  return {
    async read() {
      try {
        return { token: readFileSync(tokenFile, 'utf8').trim(), caPem: readFileSync(caFile, 'utf8') };
      } catch (e) {
        throw new EbmeshError('EBMESH_UNAUTHENTICATED', `the join material is missing (${(e as NodeJS.ErrnoException).path ?? (e as Error).message})`);
      }
    },
    spent: () => rmSync(tokenFile, { force: true }),
    hint: 'register the node again (POST /v1/nodes on the control plane\'s admin socket) and give the agent the new token and CA bundle (--token-file, --ca-file)',
  };
}

interface Held {
  keyPem: string;
  certPem: string;
  bundlePem: string;
  spiffeId: string;
  notBefore: string;
  notAfter: string;
}

/** A certificate closer than this to its end is not used to start with: the agent enrols again. */
const MIN_LEFT_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NodeCredential {
  private held: Held | undefined;
  /** The bundle to pin while enrolling (JoinMaterial), until we hold a certificate. */
  private joinCaPem: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  lastError: string | undefined;

  constructor(
    private readonly dir: string,
    private readonly node: string,
    private readonly join: JoinMaterial,
  ) {
    this.held = this.load();
  }

  get notAfter(): string | undefined {
    return this.held?.notAfter;
  }

  private file(name: string): string {
    return join(this.dir, name);
  }

  private load(): Held | undefined {
    try {
      const meta = JSON.parse(readFileSync(this.file('credential.json'), 'utf8')) as Pick<Held, 'spiffeId' | 'notBefore' | 'notAfter'>;
      return { ...meta, keyPem: readFileSync(this.file('key.pem'), 'utf8'), certPem: readFileSync(this.file('cert.pem'), 'utf8'), bundlePem: readFileSync(this.file('bundle.pem'), 'utf8') };
    } catch {
      return undefined;
    }
  }

  private usable(): boolean {
    return !!this.held && Date.parse(this.held.notAfter) - Date.now() > MIN_LEFT_MS;
  }

  /** The trust domain the control plane must be of: our certificate's, else the join bundle's root's (its URI SAN), else any. */
  private trustDomain(bundlePem: string): string | undefined {
    if (this.held) return parseSpiffeId(this.held.spiffeId)?.trustDomain;
    try {
      const root = svidId(bundlePem);
      return root ? /^spiffe:\/\/([^/]+)$/.exec(root)?.[1] : undefined;
    } catch {
      return undefined;
    }
  }

  /** TLS with the control plane: our certificate (once we have one), the CA to trust, the control plane's identity checked. */
  tls(): ClientTls {
    const bundlePem = this.held?.bundlePem ?? this.joinCaPem;
    if (bundlePem === undefined) throw new EbmeshError('EBMESH_UNAUTHENTICATED', `node ${this.node} has neither a node certificate nor a CA bundle to enrol with`);
    const td = this.trustDomain(bundlePem);
    return {
      ca: bundlePem,
      ...(this.held ? { cert: this.held.certPem, key: this.held.keyPem } : {}),
      // The lab dials a unix socket: there is no host name to check, the SPIFFE ID is what names the control plane.
      servername: 'controlplane',
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = spiffeIdFromSan(cert.subjectaltname);
        return isControlPlaneId(id, td) ? undefined : new Error(`the peer's certificate names ${id ?? 'no SPIFFE ID'}, not the control plane of ${td ?? 'this mesh'}`);
      },
    };
  }

  /**
   * A usable certificate: the one kept here, or a new one for the join
   * token. While the control plane cannot be reached, tries again until
   * timeoutMs; a refused token or TLS fails at once.
   */
  async ensure(address: Address | (() => Promise<Address>), peer: string, timeoutMs = 60_000): Promise<void> {
    if (this.usable()) return;
    const why = this.held ? `its certificate expires at ${this.held.notAfter}` : 'it has no node certificate yet';
    let token: string;
    try {
      ({ token, caPem: this.joinCaPem } = await this.join.read());
    } catch (e) {
      throw new EbmeshError('EBMESH_UNAUTHENTICATED', `node ${this.node} cannot reach its control plane: ${why}, and it has nothing to enrol with: ${describeError(e)}`, { hint: this.join.hint });
    }
    const client = async () => new ApiClient(nodeTransport({ ...(typeof address === 'function' ? await address() : address), tls: () => this.tls() }, {
      peer,
      unreachable: (code) => new EbmeshError('EBMESH_CP_UNAVAILABLE', `the control plane is unreachable: ${code ?? 'no answer'}`),
      headers: { authorization: `Bearer ${token}` },
    }), 30_000);
    const until = Date.now() + timeoutMs;
    let delay = 200;
    for (;;) {
      try {
        const cp = await client();
        await this.obtain((csrPem) => cp.call(agentApi.enroll, { node: this.node, csrPem }));
        this.join.spent();
        return;
      } catch (e) {
        const retry = isEbmeshError(e, 'EBMESH_CP_UNAVAILABLE') || isEbmeshError(e, 'EBMESH_API_TIMEOUT');
        if (!retry || Date.now() > until) throw e;
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  /** A new key, a certificate for it from ASK, checked and kept. */
  private async obtain(ask: (csrPem: string) => Promise<{ certPem: string; bundlePem: string; spiffeId: string; notBefore: string; notAfter: string }>): Promise<void> {
    const { keyPem, csrPem } = await newKeyAndCsr(`node:${this.node}`);
    const r = await ask(csrPem);
    const id = svidId(r.certPem);
    const td = id ? parseSpiffeId(id)?.trustDomain : undefined;
    if (!id || !td || nodeOf(id, td) !== this.node || id !== r.spiffeId) {
      throw new EbmeshError('EBMESH_SVID_MISMATCH', `the control plane gave node ${this.node} a certificate for ${id ?? 'no SPIFFE ID'}`);
    }
    if (!new X509Certificate(r.certPem).checkPrivateKey(createPrivateKey(keyPem))) {
      throw new EbmeshError('EBMESH_SVID_INVALID', 'the control plane gave a certificate for another key than ours');
    }
    privateDir(this.dir);
    // Key before certificate: whoever reads the new certificate finds its key.
    writePrivateFile(this.file('key.pem'), keyPem);
    writePrivateFile(this.file('cert.pem'), r.certPem);
    writePrivateFile(this.file('bundle.pem'), r.bundlePem);
    writePrivateFile(this.file('credential.json'), JSON.stringify({ spiffeId: id, notBefore: r.notBefore, notAfter: r.notAfter }));
    this.held = { keyPem, certPem: r.certPem, bundlePem: r.bundlePem, spiffeId: id, notBefore: r.notBefore, notAfter: r.notAfter };
  }

  /** Renews the certificate at half its life (over the mutual TLS it proves), from now on. */
  startRenewal(cp: ApiClient): void {
    const next = () => {
      const h = this.held;
      if (!h) return;
      const due = renewAt(h.notBefore, h.notAfter) - Date.now();
      // setTimeout holds at most 2^31-1 ms: a long life is waited out in steps.
      this.timer = setTimeout(() => void tick(), Math.min(Math.max(due, 0), 2 ** 31 - 1));
      this.timer.unref();
    };
    const tick = async () => {
      const h = this.held;
      if (h && Date.now() >= renewAt(h.notBefore, h.notAfter)) {
        try {
          await this.obtain((csrPem) => cp.call(agentApi.credential, { node: this.node, csrPem }));
          this.lastError = undefined;
        } catch (e) {
          // Still valid until it expires: try again soon.
          this.lastError = describeError(e);
          this.timer = setTimeout(() => void tick(), 10_000);
          this.timer.unref();
          return;
        }
      }
      next();
    };
    next();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
