/*
 * ebmesh relay: the node proxy's byte path in C (docs/native-relay.md says why).
 * One engine thread per process owns every socket handed to it and moves
 * bytes with epoll: fd <-> fd (TCP pass-through) and fd <-> HTTP/2 CONNECT
 * stream on a TLS 1.3 session (the mTLS tunnel, both ends). JavaScript keeps
 * every decision: which peer, which identity, whether a peer's certificate
 * names a node, whether policy admits a stream. It sends commands
 * (relay_post) and receives events (sink_emit), never bytes.
 */
#ifndef EBMESH_RELAY_H
#define EBMESH_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

/* ---- byte buffers -------------------------------------------------------- */

typedef struct {
  uint8_t *p;
  size_t cap, r, w; /* bytes in p[r..w) */
} buf_t;

static inline size_t buf_len(const buf_t *b) { return b->w - b->r; }
/* Room for at least `need` bytes at the end; false when out of memory. */
bool buf_reserve(buf_t *b, size_t need);
bool buf_append(buf_t *b, const void *p, size_t n);
void buf_consume(buf_t *b, size_t n);
void buf_free(buf_t *b);

/* ---- time ---------------------------------------------------------------- */

int64_t now_ms(void);
double now_ms_f(void);

/* ---- events to JavaScript ------------------------------------------------ */

enum ev_type {
  EV_SESSION_VERIFY = 1, /* id=session, aux=client or listener; list: the peer certificate's URIs; s0: its serial; s1: host:port (client side) */
  EV_SESSION_READY,      /* id=session, aux=client; s0: host:port */
  EV_SESSION_FAILED,     /* id=session, aux=client or listener; s0: reason; n1: 1 when it never became ready */
  EV_SESSION_CLOSED,     /* id=session, aux=listener */
  EV_ANSWER,             /* id=stream; status; s0: reason (ebmesh-reason); s1: the peer's SPIFFE ID */
  EV_STREAM_END,         /* id=stream; n1: bytes fd->peer; n2: bytes peer->fd; ms; s0: error or NULL; status: 1 if answered */
  EV_STREAM_REQUEST,     /* id=stream, aux=listener, n1=session; s0 method, s1 authority, s2 source id, s3 source ip */
  EV_STREAM_CONNECTED,   /* id=stream (receiving side: the destination accepted) */
  EV_DIAL_ERROR,         /* id=stream; s0: errno name */
  EV_PIPE_END,           /* id=pipe; n1: bytes a->b; n2: bytes b->a; ms; s0: error or NULL; status: 1 if b connected */
  EV_PIPE_CONNECTED,     /* id=pipe */
  EV_TLS_ERROR,          /* id=session, aux=listener; s0: reason */
  EV_SESSION_NEW,        /* id=session, aux=client; s0: host:port (a session is being made) */
};

typedef struct event {
  struct event *next;
  int type;
  uint32_t id, aux;
  int status;
  uint64_t n1, n2;
  double ms;
  char *s[4];
  char **list;
  int nlist;
} event_t;

/* Queue an event for the JS thread that owns `sink`; dropped when that thread is gone. Takes ownership of its strings. */
void sink_emit(uint32_t sink, event_t *e);
event_t *ev_new(int type, uint32_t id);
void ev_free(event_t *e);
char *xstrdup(const char *s);

/* ---- the engine ---------------------------------------------------------- */

/* What an epoll registration points at. */
enum io_kind { IO_WAKE = 1, IO_LISTEN, IO_SESSION, IO_STREAM_FD, IO_PIPE_A, IO_PIPE_B, IO_PARKED };
typedef struct {
  int fd;
  int kind;
  void *owner;
  uint32_t want; /* the epoll interest registered now (0: not registered) */
} io_t;

/* (Re)registers io with interest `want` (EPOLLIN/EPOLLOUT); 0 removes it. */
void io_want(io_t *io, uint32_t want);
/* Closes io's fd (deregistering it); with reset, an RST instead of a FIN for TCP. */
void io_close(io_t *io, bool reset);
/*
 * Keeps io's fd open, reading and dropping what comes, until its peer closes
 * it: for a socket pair whose other end JS holds, so that JS learns why a
 * stream failed (an event) before it sees the end of its socket.
 */
void io_park(io_t *io);

/* Objects JS refers to by number. */
enum obj_type { OBJ_CLIENT = 1, OBJ_SESSION, OBJ_STREAM, OBJ_LISTENER, OBJ_PIPE, OBJ_CTX };
typedef struct {
  uint32_t id;
  int type;
  uint32_t sink;
} obj_t;

void *obj_get(uint32_t id, int type);
void obj_put(obj_t *o);
void obj_del(obj_t *o);
uint32_t obj_next_id(void);

/* Marks something to do at the end of the current loop turn (flush a session's frames). */
typedef struct session session_t;
void session_mark_dirty(session_t *s);

/* A deadline check: the engine calls timers_run() when the nearest one may have passed. */
void engine_want_deadline(int64_t at_ms);

/* Commands from JS threads, run on the engine thread in order. */
typedef struct cmd {
  struct cmd *next;
  void (*run)(struct cmd *);
  void (*free_fn)(struct cmd *);
} cmd_t;
void relay_post(cmd_t *c);
int relay_start(void);

/* ---- TLS ----------------------------------------------------------------- */

/* A TLS 1.3 context (key, certificate chain, trust bundle), shared by reference. */
typedef struct tls_ctx {
  SSL_CTX *client;
  SSL_CTX *server;
  int refs; /* atomic */
} tls_ctx_t;
tls_ctx_t *tls_ctx_new(const char *cert_pem, const char *key_pem, const char *bundle_pem, char *err, size_t errlen);
tls_ctx_t *tls_ctx_ref(tls_ctx_t *c);
void tls_ctx_unref(tls_ctx_t *c);
/* The URIs in the peer certificate's subjectAltName and its serial number (hex, as node:crypto shows it). */
int tls_peer_uris(SSL *ssl, char ***uris, char **serial);
/* The first TLS error on this thread's queue, as text. */
void tls_error_text(char *out, size_t len, const char *what);

/* ---- the tunnel and the pipe (tunnel.c, pipe.c) -------------------------- */

void tunnel_on_session_io(session_t *s, uint32_t events);
void tunnel_on_listen_io(void *listener);
void tunnel_on_stream_io(void *stream, uint32_t events);
void tunnel_flush_dirty(void);
void tunnel_timers(int64_t now);
void pipe_on_io(void *pipe, int kind, uint32_t events);
/* Drops every object a dead sink owned. */
void tunnel_sink_gone(uint32_t sink);
void pipe_sink_gone(uint32_t sink);
size_t obj_collect(int type, uint32_t sink, obj_t ***out);

/* Listener bookkeeping JS reads without a round trip. */
typedef struct listener_counts {
  int sessions; /* atomic */
  int streams;  /* atomic: streams delivered and not ended */
} listener_counts_t;
listener_counts_t *listener_counts(uint32_t id);

/* Command constructors (binding.c builds their arguments). */
typedef struct {
  uint32_t id, sink;
  tls_ctx_t *ctx;
  int connect_timeout_ms;
} client_args_t;
void cmd_client_new(client_args_t *a);
void cmd_client_set_ctx(uint32_t id, tls_ctx_t *ctx);
void cmd_client_close(uint32_t id);

typedef struct {
  uint32_t id, client, sink;
  int fd;
  bool reset_on_fail; /* a TCP client connection: RST it when the stream fails */
  char *host; int port; char *authority, *source_id, *source_ip;
  uint8_t *head; size_t head_len;
} open_args_t;
void cmd_stream_open(open_args_t *a);
void cmd_session_verdict(uint32_t session, bool ok, const char *peer_id, const char *reason);

typedef struct {
  uint32_t id, sink;
  int fd;
  tls_ctx_t *ctx;
  listener_counts_t *counts;
} listen_args_t;
void cmd_listener_new(listen_args_t *a);
void cmd_listener_set_ctx(uint32_t id, tls_ctx_t *ctx);
void cmd_listener_stop(uint32_t id);
void cmd_listener_goaway(uint32_t id, int grace_ms);
void cmd_listener_close(uint32_t id, bool force);
void cmd_stream_verdict(uint32_t stream, int status, const char *reason, const char *ip, int port);

typedef struct {
  uint32_t id, sink;
  int fd_a;
  char *ip; int port; char *local_ip;
  uint8_t *head; size_t head_len;
} pipe_args_t;
void cmd_pipe_new(pipe_args_t *a);

/* errno as its name (ECONNREFUSED), as Node names it. */
const char *errno_name(int e);

#endif
