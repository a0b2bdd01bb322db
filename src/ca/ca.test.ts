import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { CertificateAuthority, createRoot, newKeyAndCsr, renewAt, spiffeId, svidId } from './index.js';

test('a root signs an SVID whose fields and chain are what SPIFFE asks', async () => {
  const root = await createRoot('example.org');
  const ca = await CertificateAuthority.load(root);
  const id = spiffeId('example.org', 'demo', 'web');
  assert.equal(id, 'spiffe://example.org/ns/demo/sa/web');
  const { keyPem, csrPem } = await newKeyAndCsr(id);
  const svid = await ca.issue(csrPem, id, 60);
  const cert = new X509Certificate(svid.certPem);
  const rootCert = new X509Certificate(root.certPem);
  assert.equal(svidId(svid.certPem), id);
  assert.match(cert.subjectAltName ?? '', /^URI:spiffe:\/\/example.org\/ns\/demo\/sa\/web$/);
  assert.equal(cert.ca, false);
  assert.ok(cert.checkIssued(rootCert));
  assert.ok(cert.verify(rootCert.publicKey));
  assert.ok(rootCert.verify(rootCert.publicKey));
  // Short-lived: 60 s (plus a little back-dating for clock skew).
  const life = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 1000;
  assert.ok(life >= 60 && life <= 67, `lifetime ${life}s`);
  // The key the agent kept is the certificate's.
  const sig = sign('sha256', Buffer.from('x'), createPrivateKey(keyPem));
  assert.ok(verify('sha256', Buffer.from('x'), cert.publicKey, sig));
  assert.equal(createPublicKey(keyPem).export({ format: 'pem', type: 'spki' }), cert.publicKey.export({ format: 'pem', type: 'spki' }));
});

test("a user's own root works; one from another root does not verify", async () => {
  const mine = await createRoot('corp.example');
  const other = await createRoot('corp.example');
  const ca = await CertificateAuthority.load(mine);
  const { csrPem } = await newKeyAndCsr('spiffe://corp.example/ns/a/sa/b');
  const svid = await ca.issue(csrPem, 'spiffe://corp.example/ns/a/sa/b', 30);
  assert.ok(new X509Certificate(svid.certPem).verify(new X509Certificate(mine.certPem).publicKey));
  assert.ok(!new X509Certificate(svid.certPem).verify(new X509Certificate(other.certPem).publicKey));
  assert.equal(ca.bundlePem, mine.certPem);
});

test('a CA with a key that is not its own, or a leaf as CA, is refused', async () => {
  const a = await createRoot('x.test');
  const b = await createRoot('x.test');
  await assert.rejects(CertificateAuthority.load({ certPem: a.certPem, keyPem: b.keyPem }), (e: Error & { code?: string }) => e.code === 'EBMESH_CA_INVALID' && /does not belong/.test(e.message));
  const ca = await CertificateAuthority.load(a);
  const leafKey = await newKeyAndCsr('spiffe://x.test/ns/a/sa/b');
  const leaf = await ca.issue(leafKey.csrPem, 'spiffe://x.test/ns/a/sa/b', 30);
  await assert.rejects(CertificateAuthority.load({ certPem: leaf.certPem, keyPem: leafKey.keyPem }), /not a CA/);
});

test('a tampered CSR is refused', async () => {
  const ca = await CertificateAuthority.load(await createRoot('x.test'));
  await assert.rejects(ca.issue('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', 'spiffe://x.test/ns/a/sa/b', 30), (e: Error & { code?: string }) => e.code === 'EBMESH_CSR_INVALID');
});

test('renewal is due at half the lifetime', () => {
  assert.equal(renewAt('2024-01-01T00:00:00Z', '2024-01-01T01:00:00Z'), Date.parse('2024-01-01T00:30:00Z'));
});
