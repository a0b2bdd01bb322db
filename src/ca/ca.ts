/**
 * The mesh's certificate authority: a root (made here, or the user's own),
 * and X.509 SVIDs for workloads (spiffe://TRUST_DOMAIN/ns/NS/sa/SA in the URI
 * SAN, short-lived, ECDSA P-256).
 *
 * X.509 building uses @peculiar/x509 over Node's WebCrypto: node:crypto can
 * parse and verify certificates (X509Certificate) but not write them, and
 * node-forge signs only with RSA, while SPIFFE implementations use ECDSA.
 * Private keys of workloads are made by the agent of their node; the CA only
 * ever sees certificate signing requests (CSRs), so no workload key crosses
 * the network or sits in the store.
 */
// @peculiar/x509 resolves its ASN.1 services through tsyringe, which needs this polyfill loaded first.
import 'reflect-metadata';
import { webcrypto, createPrivateKey, createPublicKey, X509Certificate, randomBytes, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { EbmeshError } from '../errors.js';

// Node's webcrypto implements the Web Crypto API; its typings are Node's own
// types, not the DOM's Crypto and SubtleCrypto the library is typed with.
x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const subtle = webcrypto.subtle as unknown as SubtleCrypto;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface RootMaterial {
  certPem: string;
  keyPem: string;
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // a positive INTEGER
  return b.toString('hex');
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
}

async function importKey(pem: string, cert: x509.X509Certificate): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  const alg = cert.publicKey.algorithm as EcKeyAlgorithm | RsaHashedKeyAlgorithm;
  const params = alg.name === 'ECDSA' ? { name: 'ECDSA', namedCurve: (alg as EcKeyAlgorithm).namedCurve } : { name: alg.name, hash: 'SHA-256' };
  return subtle.importKey('pkcs8', der, params, false, ['sign']);
}

function signingAlg(cert: x509.X509Certificate): Algorithm {
  const alg = cert.publicKey.algorithm;
  return alg.name === 'ECDSA' ? SIGN : { name: alg.name, hash: 'SHA-256' } as Algorithm;
}

/** A new self-signed root for a trust domain. */
export function createRoot(trustDomain: string, validDays = 3650): Promise<RootMaterial> {
  return selfSigned(`ebmesh root ${trustDomain}`, [{ type: 'url', value: `spiffe://${trustDomain}` }], validDays);
}

/** A CA of its own, outside any trust domain: the one that signs only the lab's etcd and its clients. */
export function createCa(commonName: string, validDays = 3650): Promise<RootMaterial> {
  return selfSigned(commonName, [], validDays);
}

async function selfSigned(commonName: string, names: x509.JsonGeneralNames, validDays: number): Promise<RootMaterial> {
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=ebmesh, CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + validDays * 86_400_000),
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

export interface IssuedCert {
  certPem: string;
  notBefore: string;
  notAfter: string;
}

export interface IssuedSvid extends IssuedCert {
  spiffeId: string;
}

/** Whom a certificate names: a SPIFFE ID (URI), host names, addresses. */
export interface SubjectNames {
  uris?: string[];
  dns?: string[];
  ips?: string[];
  /** The subject's CN, for peers that read it (etcd's user names). */
  commonName?: string;
}

export class CertificateAuthority {
  private constructor(
    private readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
    readonly bundlePem: string,
  ) {}

  /** A root (or an intermediate the user's own root signed: then bundlePem is that root). */
  static async load(root: RootMaterial, bundlePem?: string): Promise<CertificateAuthority> {
    let cert: x509.X509Certificate;
    try {
      cert = new x509.X509Certificate(root.certPem);
    } catch (e) {
      throw new EbmeshError('EBMESH_CA_INVALID', `the CA certificate does not parse: ${(e as Error).message}`);
    }
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw new EbmeshError('EBMESH_CA_INVALID', `the CA certificate (${cert.subject}) is not a CA (basicConstraints CA:TRUE missing)`);
    let key: CryptoKey;
    try {
      key = await importKey(root.keyPem, cert);
    } catch (e) {
      throw new EbmeshError('EBMESH_CA_INVALID', `the CA key does not load: ${(e as Error).message}`);
    }
    // The key must be the certificate's: same public key.
    const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' }).toString('base64');
    if (spki(createPublicKey(root.keyPem)) !== spki(new X509Certificate(root.certPem).publicKey)) {
      throw new EbmeshError('EBMESH_CA_INVALID', 'the CA key does not belong to the CA certificate');
    }
    return new CertificateAuthority(cert, key, bundlePem ?? root.certPem);
  }

  get notAfter(): Date {
    return this.cert.notAfter;
  }

  /** Signs a CSR for spiffeId, valid ttlSeconds (never past the CA's own expiry). */
  async issue(csrPem: string, id: string, ttlSeconds: number): Promise<IssuedSvid> {
    return { ...(await this.issueFor(csrPem, { uris: [id] }, ttlSeconds)), spiffeId: id };
  }

  /**
   * Signs a CSR for NAMES, valid ttlSeconds (never past the CA's own expiry),
   * for both ends of TLS (serverAuth and clientAuth: etcd's members are both).
   * The names come from the caller, never from the request.
   */
  async issueFor(csrPem: string, names: SubjectNames, ttlSeconds: number): Promise<IssuedCert> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (e) {
      throw new EbmeshError('EBMESH_CSR_INVALID', `the certificate request does not parse: ${(e as Error).message}`);
    }
    if (!(await csr.verify())) throw new EbmeshError('EBMESH_CSR_INVALID', 'the certificate request is not signed by its key');
    const now = Date.now();
    // A little back-dating absorbs clock skew between nodes, not more than a tenth of the lifetime.
    const notBefore = new Date(now - Math.min(30_000, ttlSeconds * 100));
    const notAfter = new Date(Math.min(now + ttlSeconds * 1000, this.cert.notAfter.getTime()));
    const sans: x509.JsonGeneralNames = [
      ...(names.uris ?? []).map((value) => ({ type: 'url' as const, value })),
      ...(names.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(names.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: names.commonName ? `O=ebmesh, CN=${names.commonName}` : 'O=ebmesh',
      issuer: this.cert.subject,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: this.key,
      signingAlgorithm: signingAlg(this.cert),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        // Critical (the subject says little), so never empty: Go's TLS refuses an empty critical one.
        ...(sans.length ? [new x509.SubjectAlternativeNameExtension(sans, true)] : []),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert),
      ],
    });
    return { certPem: cert.toString('pem'), notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() };
  }
}

/** On the agent: a fresh key pair and a CSR for it (the key never leaves the node). */
export async function newKeyAndCsr(id: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'O=ebmesh',
    keys,
    signingAlgorithm: SIGN,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }])],
  });
  return { keyPem: await keyToPem(keys.privateKey), csrPem: csr.toString('pem') };
}

/** The SPIFFE ID in a certificate's URI SAN, or undefined. */
export function svidId(certPem: string): string | undefined {
  const san = new X509Certificate(certPem).subjectAltName ?? '';
  return san.split(', ').find((s) => s.startsWith('URI:spiffe://'))?.slice(4);
}

/** Time to renew: past `fraction` of the certificate's lifetime. */
export function renewAt(notBefore: string | Date, notAfter: string | Date, fraction = 0.5): number {
  const a = new Date(notBefore).getTime();
  const b = new Date(notAfter).getTime();
  return a + (b - a) * fraction;
}
