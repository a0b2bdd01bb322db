/**
 * The TLS credentials a node proxy uses in the tunnel: its node SVID (key +
 * certificate) and the mesh's trust bundle, as files the agent writes by
 * rename (see src/agent/identity.ts), reloaded when they change. Every
 * reload makes a new TLS context in the relay; a TLS session keeps the
 * context it was made with, so rotation never touches an established
 * session, and the next handshake uses the new certificate.
 */
import { EventEmitter } from 'node:events';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EbmeshError } from '../errors.js';
import { relayBinding, type RelayContext } from '../relay/index.js';
import { spiffeIdFromSan } from './ids.js';

export interface CredentialMaterial {
  keyPem: string;
  certPem: string;
  bundlePem: string;
}

export interface Credentials extends CredentialMaterial {
  spiffeId: string;
  notAfter: Date;
  /** TLS 1.3 with this key, certificate and trust bundle, for both ends of the tunnel. */
  context: RelayContext;
}

export function makeCredentials(m: CredentialMaterial): Credentials {
  const cert = new X509Certificate(m.certPem);
  const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: 'spki', format: 'der' }).toString('base64');
  if (spki(createPublicKey(createPrivateKey(m.keyPem))) !== spki(cert.publicKey)) {
    throw new EbmeshError('EBMESH_SVID_MISMATCH', 'the key does not belong to the certificate (caught mid-rotation?)');
  }
  const id = spiffeIdFromSan(cert.subjectAltName);
  if (!id) throw new EbmeshError('EBMESH_SVID_INVALID', 'the certificate has no single SPIFFE ID in its URI SAN');
  let context: RelayContext;
  try {
    context = relayBinding().context(m.certPem, m.keyPem, m.bundlePem);
  } catch (e) {
    if ((e as { code?: string }).code === 'EBMESH_RELAY_NOT_BUILT') throw e;
    throw new EbmeshError('EBMESH_SVID_INVALID', `the SVID cannot be used for TLS: ${(e as Error).message}`, { cause: e });
  }
  return { ...m, spiffeId: id, notAfter: new Date(cert.validTo), context };
}

export class CredentialStore extends EventEmitter {
  private cur: Credentials;
  private timer: NodeJS.Timeout | undefined;
  private stamp = '';

  constructor(initial: CredentialMaterial, private readonly dir?: string) {
    super();
    this.cur = makeCredentials(initial);
    if (dir) this.stamp = stampOf(dir);
  }

  /** From an SVID directory (key.pem, cert.pem, bundle.pem), polled every pollMs for a rotation. */
  static fromDir(dir: string, pollMs = 500): CredentialStore {
    const s = new CredentialStore(readDir(dir), dir);
    s.timer = setInterval(() => s.poll(), pollMs);
    s.timer.unref();
    return s;
  }

  get current(): Credentials {
    return this.cur;
  }

  /** New material: later sessions use it; 'rotate' tells the pool and the server. */
  update(m: CredentialMaterial): void {
    this.cur = makeCredentials(m);
    this.emit('rotate', this.cur);
  }

  private poll(): void {
    if (!this.dir) return;
    const st = stampOf(this.dir);
    if (st === this.stamp) return;
    try {
      this.update(readDir(this.dir));
      this.stamp = st;
    } catch {
      // Key and certificate from different generations (read between two renames): the next poll reads them again.
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

function readDir(dir: string): CredentialMaterial {
  const r = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { keyPem: r('key.pem'), certPem: r('cert.pem'), bundlePem: r('bundle.pem') };
}

function stampOf(dir: string): string {
  try {
    return ['key.pem', 'cert.pem', 'bundle.pem'].map((f) => { const s = statSync(join(dir, f)); return `${s.ino}:${s.mtimeMs}`; }).join('|');
  } catch {
    return '';
  }
}
