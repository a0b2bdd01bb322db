/**
 * The listener agents reach, in mutual TLS, shared by both control planes
 * (the store's, server.ts, and the cluster's, cluster-identity.ts): the
 * control plane presents spiffe://TD/ns/ebmesh-system/sa/controlplane from
 * the mesh CA, renewed at half its life while it runs, and asks each agent
 * for its node certificate. An agent without one still gets through the
 * handshake (enrolment needs none); every other route refuses it
 * (requireNodePeer).
 */
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { EbmeshError, describeError } from '../errors.js';
import { newKeyAndCsr, renewAt, type CertificateAuthority } from '../ca/index.js';
import { controlPlaneSpiffeId, nodeOf } from '../tunnel/ids.js';
import { startServer, stopServer, type CallContext, type Served } from '../api/server.js';
import { parseAddress } from '../api/node-transport.js';

/** The control plane's own certificate (renewed at half its life while it runs). */
const CONTROL_PLANE_CERT_TTL_SECONDS = 7 * 86_400;

export class AgentListener {
  private timer: NodeJS.Timeout | undefined;
  private cert: { notBefore: string; notAfter: string } | undefined;
  private server: Server | undefined;

  private constructor(private readonly ca: CertificateAuthority, private readonly trustDomain: () => Promise<string>) {}

  /** Listens on LISTEN (a unix socket path or HOST:PORT) with the routes given. */
  static async start(ca: CertificateAuthority, trustDomain: () => Promise<string>, listen: string, parts: Served[]): Promise<AgentListener> {
    const l = new AgentListener(ca, trustDomain);
    l.server = await startServer({ ...parseAddress(listen), tls: await l.tls() }, parts);
    l.renewLater();
    return l;
  }

  private async tls() {
    const { keyPem, csrPem } = await newKeyAndCsr('controlplane');
    const cert = await this.ca.issueFor(csrPem, { uris: [controlPlaneSpiffeId(await this.trustDomain())] }, CONTROL_PLANE_CERT_TTL_SECONDS);
    this.cert = cert;
    return { key: keyPem, cert: cert.certPem, ca: this.ca.bundlePem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' as const };
  }

  private renewLater(): void {
    if (!this.cert) return;
    // setTimeout takes at most 2^31-1 ms: a long life is renewed in steps.
    const wait = Math.min(Math.max(renewAt(this.cert.notBefore, this.cert.notAfter) - Date.now(), 1000), 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      void (async () => {
        if (this.cert && Date.now() >= renewAt(this.cert.notBefore, this.cert.notAfter)) {
          try {
            (this.server as HttpsServer | undefined)?.setSecureContext(await this.tls());
          } catch (e) {
            process.stderr.write(`renewing the control plane's certificate: ${describeError(e)}\n`);
          }
        }
        this.renewLater();
      })();
    }, wait);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    stopServer(this.server);
  }
}

/**
 * The caller is NODE's agent: its verified client certificate names that
 * node. No certificate of our CA: 401; another node's (or a workload's): 403.
 */
export function requireNodePeer(call: CallContext, node: string, trustDomain: string): void {
  if (!call.peer) {
    throw new EbmeshError('EBMESH_UNAUTHENTICATED', `no client certificate of this mesh's CA: not an agent of node ${node}`, {
      hint: 'an agent presents its node certificate (it gets the first one when it enrols: see docs/security.md)',
    });
  }
  if (nodeOf(call.peer, trustDomain) !== node) {
    throw new EbmeshError('EBMESH_FORBIDDEN', `${call.peer} may not act for node ${node}`, { hint: 'an agent may only act for the node its certificate names' });
  }
}
