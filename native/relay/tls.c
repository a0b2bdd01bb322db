/*
 * TLS contexts for the tunnel: TLS 1.3 only, the node SVID (key and
 * certificate chain) and the mesh's trust bundle; peers must present a
 * certificate that chains to the bundle, both ways. What a peer's SPIFFE ID
 * must be is decided in JavaScript (src/tunnel/ids.ts) from the URIs this
 * file reads out of the certificate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "relay.h"

void tls_error_text(char *out, size_t len, const char *what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  snprintf(out, len, "%s: %s", what, buf);
  ERR_clear_error();
}

static const unsigned char ALPN_H2[] = {2, 'h', '2'};

static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, ALPN_H2, sizeof ALPN_H2, in, inlen) != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *make_ctx(bool server, X509 *leaf, STACK_OF(X509) *chain, EVP_PKEY *key, STACK_OF(X509) *bundle, char *err, size_t errlen) {
  SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!c) { tls_error_text(err, errlen, "SSL_CTX_new"); return NULL; }
  SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate(c, leaf) != 1) { tls_error_text(err, errlen, "certificate"); goto fail; }
  for (int i = 0; i < sk_X509_num(chain); i++) {
    if (SSL_CTX_add1_chain_cert(c, sk_X509_value(chain, i)) != 1) { tls_error_text(err, errlen, "certificate chain"); goto fail; }
  }
  if (SSL_CTX_use_PrivateKey(c, key) != 1 || SSL_CTX_check_private_key(c) != 1) { tls_error_text(err, errlen, "private key"); goto fail; }
  X509_STORE *store = SSL_CTX_get_cert_store(c);
  for (int i = 0; i < sk_X509_num(bundle); i++) X509_STORE_add_cert(store, sk_X509_value(bundle, i));
  if (server) {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_alpn_select_cb(c, select_h2, NULL);
    /* A fresh handshake per session: sessions are long-lived and few. */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(c, 0);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(c, ALPN_H2, sizeof ALPN_H2);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  }
  return c;
fail:
  SSL_CTX_free(c);
  return NULL;
}

static STACK_OF(X509) *read_certs(const char *pem) {
  STACK_OF(X509) *sk = sk_X509_new_null();
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x;
  while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) sk_X509_push(sk, x);
  ERR_clear_error(); /* the read that ends the loop leaves "no start line" */
  BIO_free(b);
  return sk;
}

tls_ctx_t *tls_ctx_new(const char *cert_pem, const char *key_pem, const char *bundle_pem, char *err, size_t errlen) {
  tls_ctx_t *t = NULL;
  STACK_OF(X509) *certs = read_certs(cert_pem), *bundle = read_certs(bundle_pem);
  BIO *kb = BIO_new_mem_buf(key_pem, -1);
  EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
  BIO_free(kb);
  if (!sk_X509_num(certs)) { snprintf(err, errlen, "the certificate PEM holds no certificate"); goto out; }
  if (!sk_X509_num(bundle)) { snprintf(err, errlen, "the trust bundle PEM holds no certificate"); goto out; }
  if (!key) { tls_error_text(err, errlen, "private key"); goto out; }
  X509 *leaf = sk_X509_shift(certs);
  SSL_CTX *client = make_ctx(false, leaf, certs, key, bundle, err, errlen);
  SSL_CTX *server = client ? make_ctx(true, leaf, certs, key, bundle, err, errlen) : NULL;
  X509_free(leaf);
  if (!client || !server) { SSL_CTX_free(client); goto out; }
  t = calloc(1, sizeof *t);
  if (!t) abort();
  t->client = client;
  t->server = server;
  t->refs = 1;
out:
  EVP_PKEY_free(key);
  sk_X509_pop_free(certs, X509_free);
  sk_X509_pop_free(bundle, X509_free);
  return t;
}

tls_ctx_t *tls_ctx_ref(tls_ctx_t *c) {
  __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
  return c;
}

void tls_ctx_unref(tls_ctx_t *c) {
  if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL)) return;
  SSL_CTX_free(c->client);
  SSL_CTX_free(c->server);
  free(c);
}

int tls_peer_uris(SSL *ssl, char ***uris, char **serial) {
  *uris = NULL;
  *serial = NULL;
  X509 *cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return 0;
  int n = 0;
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
    GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_URI) continue;
    const unsigned char *d = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
    int len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
    char *s = malloc((size_t)len + 1);
    char **v = realloc(*uris, (size_t)(n + 1) * sizeof *v);
    if (!s || !v) abort();
    memcpy(s, d, (size_t)len);
    s[len] = 0;
    *uris = v;
    v[n++] = s;
  }
  GENERAL_NAMES_free(names);
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  if (bn) {
    char *hex = BN_bn2hex(bn);
    *serial = xstrdup(hex);
    OPENSSL_free(hex);
    BN_free(bn);
  }
  X509_free(cert);
  return n;
}
