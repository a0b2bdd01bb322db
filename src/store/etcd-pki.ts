/**
 * The certificates of an etcd that ebmesh starts itself (the lab's, the
 * tests'): a CA of its own made on first use, a certificate for the member
 * (127.0.0.1 and localhost; it serves clients and peers, and etcd's gateway
 * dials the member with it, so it is both server and client), and one for
 * the clients (the control plane). Nobody without a certificate of this CA
 * talks to that etcd.
 *
 * Why not the mesh CA: the control plane makes the mesh CA at its first
 * start, from the trust domain it reads in etcd, so etcd must be up first.
 *
 *   DIR/ca.crt ca.key server.crt server.key client.crt client.key
 * (directory 0700, files 0600). Certificates are issued again when less
 * than RENEW_BEFORE_DAYS are left, at the next start of that etcd.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority, createCa, newKeyAndCsr, type SubjectNames } from '../ca/index.js';
import { privateDir, writePrivateFile } from '../host/private-files.js';

/** Where a TLS client of etcd finds its trust anchors and its own certificate (PEM files). */
export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdPki {
  /** The member's own: serving clients and peers. */
  server: EtcdTlsFiles;
  /** The clients'. */
  client: EtcdTlsFiles;
}

const CERT_DAYS = 365;
const RENEW_BEFORE_DAYS = 30;

function due(certFile: string): boolean {
  if (!existsSync(certFile)) return true;
  try {
    return Date.parse(new X509Certificate(readFileSync(certFile)).validTo) - Date.now() < RENEW_BEFORE_DAYS * 86_400_000;
  } catch {
    return true;
  }
}

// Calls for one directory made while one is under way share it: two making a CA each at once would leave
// members of one cluster with certificates of different CAs (they then never agree on a peer).
const underWay = new Map<string, Promise<EtcdPki>>();

export function ensureEtcdPki(dir: string): Promise<EtcdPki> {
  const running = underWay.get(dir);
  if (running) return running;
  const p = makeEtcdPki(dir).finally(() => underWay.delete(dir));
  underWay.set(dir, p);
  return p;
}

async function makeEtcdPki(dir: string): Promise<EtcdPki> {
  privateDir(dir);
  const f = (n: string) => join(dir, n);
  const newCa = due(f('ca.crt')) || !existsSync(f('ca.key'));
  if (newCa) {
    const root = await createCa('ebmesh etcd CA');
    writePrivateFile(f('ca.key'), root.keyPem);
    writePrivateFile(f('ca.crt'), root.certPem);
  }
  const ca = await CertificateAuthority.load({ certPem: readFileSync(f('ca.crt'), 'utf8'), keyPem: readFileSync(f('ca.key'), 'utf8') });
  const issue = async (name: string, names: SubjectNames) => {
    if (!newCa && !due(f(`${name}.crt`)) && existsSync(f(`${name}.key`))) return;
    const { keyPem, csrPem } = await newKeyAndCsr(`etcd-${name}`);
    const cert = await ca.issueFor(csrPem, names, CERT_DAYS * 86_400);
    writePrivateFile(f(`${name}.key`), keyPem);
    writePrivateFile(f(`${name}.crt`), cert.certPem);
  };
  await issue('server', { commonName: 'ebmesh-etcd', ips: ['127.0.0.1'], dns: ['localhost'] });
  await issue('client', { commonName: 'ebmesh-controlplane' });
  return {
    server: { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') },
    client: { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key') },
  };
}
