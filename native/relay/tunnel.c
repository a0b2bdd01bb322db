/*
 * The mTLS tunnel's byte path: HTTP/2 sessions over TLS 1.3 between node
 * proxies, one CONNECT stream per carried connection, each stream bridged
 * to a socket (the caller's connection on the sending node, the connection
 * to the destination on the receiving one).
 *
 * Sending side: a client (one per TunnelClient in JS) pools one session per
 * peer address; a stream waits until its session is verified (JS checks the
 * peer's SPIFFE ID) and is then opened; bytes the caller sends before the
 * peer answers go out right behind the request, and a copy is kept until
 * the answer so that a stream the peer refused unprocessed (REFUSED_STREAM,
 * or above the last stream id of its GOAWAY) is opened again elsewhere with
 * the same bytes. Receiving side: a listener accepts, handshakes, asks JS
 * about the peer and then about each stream, dials the destination and
 * answers 200, or answers what JS said.
 *
 * Flow control is HTTP/2's: received DATA is acknowledged (WINDOW_UPDATE)
 * only once written to the socket, and a socket's bytes are read only when
 * the stream may send them, so a slow reader at either end pushes back to
 * the writer at the other. Half-close crosses both ways (FIN <->
 * END_STREAM); a reset crosses as a reset (RST <-> RST_STREAM).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>

#include "relay.h"

/* The wire contract (src/tunnel/protocol.ts holds the same numbers for the JS side). */
#define STREAM_WINDOW (4 << 20)
#define SESSION_WINDOW (64 << 20)
#define MAX_STREAMS 10000
/* Ciphertext waiting for a session's socket past which no more frames are made. */
#define OUT_HIGH (1 << 20)
/* Bytes kept per stream until the peer answers, to open it again if it was refused unprocessed. */
#define REPLAY_MAX (256 << 10)
#define RETRIES 2
#define READ_CHUNK 65536
/* Caller bytes read ahead of what HTTP/2 may send yet; past this the socket is not read (back-pressure). */
#define UP_MAX (256 << 10)

enum { S_CONNECTING = 1, S_HANDSHAKE, S_VERIFY, S_READY, S_DEAD };

typedef struct tstream tstream_t;
typedef struct client client_t;
typedef struct listener listener_t;

struct session {
  obj_t o;
  io_t io;
  bool server;
  client_t *client;
  listener_t *listener;
  SSL *ssl;
  BIO *rbio, *wbio;
  nghttp2_session *h2;
  int state;
  char *key;     /* host:port, client side */
  char *peer_id; /* the peer's SPIFFE ID, once JS accepted it */
  bool pooled, retiring, goaway_recv, closing, dirty, freed;
  session_t *dirty_next, *dead_next;
  session_t *all_next, *all_prev; /* every session, for deadlines */
  session_t *own_next, *own_prev; /* its client's or listener's */
  buf_t out;   /* ciphertext for the socket */
  buf_t early; /* plaintext received before the peer was verified */
  int64_t deadline;
  int64_t goaway_at;
  tstream_t *streams; /* attached streams, pending ones included */
  int nstreams;
  bool counted; /* in its listener's session count */
};

struct tstream {
  obj_t o;
  session_t *s;
  tstream_t *dead_next;
  tstream_t *snext, *sprev;
  int32_t sid;
  io_t io;
  bool server, reset_on_fail;
  buf_t up;   /* caller bytes not yet handed to HTTP/2 (the head, a replay) */
  buf_t down; /* bytes from the peer not yet written to the socket */
  bool fd_eof, end_sent, peer_end, fd_shut, h2_closed, deferred, answered, done, connected, verdict, requested;
  bool refusal; /* server side: answered with a refusal (no body); closed after the answer went out */
  int status;
  char *reason;
  /* sending side: where it goes, kept to open it again */
  char *host;
  int port;
  char *authority, *source_id, *source_ip;
  buf_t replay;
  bool replay_off;
  int retries;
  /* receiving side: the request */
  char *method, *src_id, *src_ip;
  uint64_t n_up, n_down;
  double t0;
  char *err;
};

struct client {
  obj_t o;
  tls_ctx_t *ctx;
  int connect_timeout_ms;
  session_t *sessions;
};

struct listener {
  obj_t o;
  io_t io;
  tls_ctx_t *ctx;
  listener_counts_t *counts;
  session_t *sessions;
  bool closed;
};

static session_t *all_sessions;
static session_t *dirty_list;
static session_t *dead_list;
/* Streams ended this loop turn: freed at its end, so that code still holding one sees `done`, not freed memory. */
static tstream_t *dead_streams;
static uint8_t rdbuf[READ_CHUNK];

static void stream_fail(tstream_t *st, const char *why, bool reset_fd);
static void stream_maybe_done(tstream_t *st);
static void session_fail(session_t *s, const char *why);
static void session_submit(session_t *s, tstream_t *st);
static session_t *client_session(client_t *c, const char *host, int port);

void session_mark_dirty(session_t *s) {
  if (s->dirty || s->state == S_DEAD) return;
  s->dirty = true;
  s->dirty_next = dirty_list;
  dirty_list = s;
}

/* ---- streams: attach, detach, end ---------------------------------------- */

static void attach(session_t *s, tstream_t *st) {
  st->s = s;
  st->sprev = NULL;
  st->snext = s->streams;
  if (s->streams) s->streams->sprev = st;
  s->streams = st;
  s->nstreams++;
}

static void detach(tstream_t *st) {
  session_t *s = st->s;
  if (!s) return;
  if (st->sprev) st->sprev->snext = st->snext;
  else s->streams = st->snext;
  if (st->snext) st->snext->sprev = st->sprev;
  st->snext = st->sprev = NULL;
  st->s = NULL;
  s->nstreams--;
  if (s->h2 && st->sid > 0 && !st->h2_closed) nghttp2_session_set_stream_user_data(s->h2, st->sid, NULL);
  st->sid = -1;
  /* A retiring client session closes once its last stream is gone. */
  if (!s->server && s->retiring && s->nstreams == 0 && s->state != S_DEAD) {
    if (s->h2) {
      nghttp2_session_terminate_session(s->h2, NGHTTP2_NO_ERROR);
      session_mark_dirty(s);
    } else {
      session_fail(s, "retired");
    }
  }
}

static void stream_free(tstream_t *st) {
  buf_free(&st->up);
  buf_free(&st->down);
  buf_free(&st->replay);
  free(st->reason);
  free(st->host);
  free(st->authority);
  free(st->source_id);
  free(st->source_ip);
  free(st->method);
  free(st->src_id);
  free(st->src_ip);
  free(st->err);
  free(st);
}

/* The stream is over: tell JS (once), release the socket and the object. */
static void stream_finish(tstream_t *st, bool reset_fd) {
  if (st->done) return;
  st->done = true;
  if (st->server && st->connected && st->s && st->s->listener) __atomic_sub_fetch(&st->s->listener->counts->streams, 1, __ATOMIC_RELAXED);
  /* A socket pair JS reads (not a caller's TCP connection): JS ends it once it read why. */
  if (!st->server && !st->reset_on_fail && st->err) io_park(&st->io);
  else io_close(&st->io, reset_fd);
  event_t *e = ev_new(EV_STREAM_END, st->o.id);
  e->n1 = st->n_up;
  e->n2 = st->n_down;
  e->ms = now_ms_f() - st->t0;
  e->status = st->answered;
  e->s[0] = xstrdup(st->err);
  sink_emit(st->o.sink, e);
  session_t *s = st->s;
  if (s && s->h2 && st->sid > 0 && !st->h2_closed) {
    nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, st->sid, NGHTTP2_CANCEL);
    session_mark_dirty(s);
  }
  detach(st);
  obj_del(&st->o);
  st->dead_next = dead_streams;
  dead_streams = st;
}

static void stream_fail(tstream_t *st, const char *why, bool reset_fd) {
  if (!st->err) st->err = xstrdup(why);
  stream_finish(st, reset_fd);
}

/* Graceful end: both directions ended and every byte delivered. */
static void stream_maybe_done(tstream_t *st) {
  if (st->done) return;
  if (st->peer_end && !buf_len(&st->down) && !st->fd_shut && st->io.fd >= 0 && (!st->server || st->connected)) {
    shutdown(st->io.fd, SHUT_WR);
    st->fd_shut = true;
  }
  if (st->end_sent && st->fd_shut && (st->h2_closed || !st->s)) stream_finish(st, false);
  /* Answered without a socket (refused, or the destination did not answer): over once HTTP/2 is. */
  else if (st->server && st->io.fd < 0 && st->h2_closed) stream_finish(st, false);
}

static void stream_update_io(tstream_t *st) {
  if (st->io.fd < 0 || st->done) return;
  uint32_t want = 0;
  if (st->server && !st->connected) {
    want = st->verdict ? EPOLLOUT : 0; /* dialling: writable once connected */
  } else {
    /*
     * Level-triggered and left registered while there is room: one readiness,
     * one read, and no epoll_ctl per chunk. A stream not open yet reads too
     * (its bytes wait for it, bounded like the rest).
     */
    if (!st->fd_eof && buf_len(&st->up) < UP_MAX) want |= EPOLLIN;
    if (buf_len(&st->down)) want |= EPOLLOUT;
  }
  io_want(&st->io, want);
}

/* One read of the socket into `up`, then HTTP/2 is told there is something to send. */
static void stream_read(tstream_t *st) {
  if (!buf_reserve(&st->up, 16384)) {
    stream_fail(st, "ENOMEM", true);
    return;
  }
  ssize_t n;
  do n = read(st->io.fd, st->up.p + st->up.w, st->up.cap - st->up.w); while (n < 0 && errno == EINTR);
  if (n > 0) st->up.w += (size_t)n;
  else if (n == 0) st->fd_eof = true;
  else if (errno != EAGAIN) {
    stream_fail(st, errno_name(errno), true);
    return;
  }
  session_t *s = st->s;
  if (st->deferred && s && s->h2 && st->sid > 0 && !st->h2_closed) {
    st->deferred = false;
    nghttp2_session_resume_data(s->h2, st->sid);
    session_mark_dirty(s);
  }
  stream_update_io(st);
}

/* Acknowledge n delivered bytes to the peer (flow control). */
static void consumed(tstream_t *st, size_t n) {
  session_t *s = st->s;
  if (!n || !s || !s->h2) return;
  if (st->sid > 0 && !st->h2_closed) nghttp2_session_consume(s->h2, st->sid, n);
  else nghttp2_session_consume_connection(s->h2, n);
  session_mark_dirty(s);
}

static void write_down(tstream_t *st) {
  while (buf_len(&st->down)) {
    ssize_t n = write(st->io.fd, st->down.p + st->down.r, buf_len(&st->down));
    if (n > 0) {
      buf_consume(&st->down, (size_t)n);
      st->n_down += (uint64_t)n;
      consumed(st, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    stream_fail(st, errno_name(errno), true);
    return;
  }
  stream_update_io(st);
  stream_maybe_done(st);
}

/* ---- HTTP/2 data source: the socket's bytes (after what is buffered) ------ */

static ssize_t read_source(nghttp2_session *h2, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags, nghttp2_data_source *src, void *user) {
  (void)src;
  (void)user;
  /* By id, not src->ptr: a stream we already finished is no longer the stream's user data. */
  tstream_t *st = nghttp2_session_get_stream_user_data(h2, sid);
  if (!st) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  size_t n = 0;
  if (buf_len(&st->up)) {
    bool was_full = buf_len(&st->up) >= UP_MAX;
    n = buf_len(&st->up) < len ? buf_len(&st->up) : len;
    memcpy(buf, st->up.p + st->up.r, n);
    buf_consume(&st->up, n);
    if (was_full) stream_update_io(st); /* room again: read the socket */
  } else if (!st->fd_eof) {
    st->deferred = true; /* resumed when the socket has more (stream_read) */
    return NGHTTP2_ERR_DEFERRED;
  }
  if (n && !st->answered && !st->server && !st->replay_off) {
    if (buf_len(&st->replay) + n > REPLAY_MAX) {
      st->replay_off = true;
      buf_free(&st->replay);
    } else {
      buf_append(&st->replay, buf, n);
    }
  }
  st->n_up += n;
  if (!n && st->fd_eof && !buf_len(&st->up)) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    st->end_sent = true;
  }
  return (ssize_t)n;
}

/* ---- HTTP/2 callbacks ------------------------------------------------------ */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user) {
  session_t *s = user;
  if (!s->server || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  tstream_t *st = calloc(1, sizeof *st);
  if (!st) return NGHTTP2_ERR_CALLBACK_FAILURE;
  st->o = (obj_t){.id = obj_next_id(), .type = OBJ_STREAM, .sink = s->listener->o.sink};
  st->io = (io_t){.fd = -1, .kind = IO_STREAM_FD, .owner = st};
  st->server = true;
  st->sid = f->hd.stream_id;
  st->t0 = now_ms_f();
  obj_put(&st->o);
  attach(s, st);
  nghttp2_session_set_stream_user_data(h2, st->sid, st);
  return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user) {
  (void)flags;
  (void)user;
  tstream_t *st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
  if (!st || f->hd.type != NGHTTP2_HEADERS) return 0;
  char v[512];
  size_t n = vlen < sizeof v - 1 ? vlen : sizeof v - 1;
  memcpy(v, value, n);
  v[n] = 0;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
  if (st->server) {
    /* The first value of each counts, as in the JS endpoint. */
    if (IS(":method") && !st->method) st->method = xstrdup(v);
    else if (IS(":authority") && !st->authority) st->authority = xstrdup(v);
    else if (IS("ebmesh-source-id") && !st->src_id) st->src_id = xstrdup(v);
    else if (IS("ebmesh-source-ip") && !st->src_ip) st->src_ip = xstrdup(v);
  } else {
    if (IS(":status")) st->status = atoi(v);
    else if (IS("ebmesh-reason") && !st->reason) st->reason = xstrdup(v);
  }
#undef IS
  return 0;
}

static void answer(tstream_t *st) {
  st->answered = true;
  buf_free(&st->replay);
  event_t *e = ev_new(EV_ANSWER, st->o.id);
  e->status = st->status;
  e->s[0] = xstrdup(st->reason);
  e->s[1] = xstrdup(st->s ? st->s->peer_id : NULL);
  sink_emit(st->o.sink, e);
  if (st->status != 200) {
    char why[64];
    snprintf(why, sizeof why, "refused with %d", st->status);
    stream_fail(st, why, st->reset_on_fail);
  }
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user) {
  session_t *s = user;
  if (f->hd.type == NGHTTP2_GOAWAY) {
    /* No new streams here; those above its last stream id are refused (and opened again elsewhere). */
    s->goaway_recv = true;
    s->pooled = false;
    return 0;
  }
  tstream_t *st = f->hd.stream_id ? nghttp2_session_get_stream_user_data(h2, f->hd.stream_id) : NULL;
  if (!st) return 0;
  if (f->hd.type == NGHTTP2_HEADERS) {
    if (st->server && f->headers.cat == NGHTTP2_HCAT_REQUEST && !st->requested) {
      st->requested = true;
      event_t *e = ev_new(EV_STREAM_REQUEST, st->o.id);
      e->aux = s->listener->o.id;
      e->n1 = s->o.id;
      e->s[0] = xstrdup(st->method);
      e->s[1] = xstrdup(st->authority);
      e->s[2] = xstrdup(st->src_id);
      e->s[3] = xstrdup(st->src_ip);
      sink_emit(st->o.sink, e);
    } else if (!st->server && f->headers.cat == NGHTTP2_HCAT_RESPONSE && !st->answered) {
      if (st->status >= 100 && st->status < 200) return 0; /* interim */
      answer(st);
      if (st->done) return 0;
    }
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    st->peer_end = true;
    stream_maybe_done(st);
  }
  return 0;
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *user) {
  (void)flags;
  (void)user;
  tstream_t *st = nghttp2_session_get_stream_user_data(h2, sid);
  if (!st) {
    nghttp2_session_consume_connection(h2, len);
    return 0;
  }
  bool can_write = st->io.fd >= 0 && (!st->server || st->connected);
  size_t off = 0;
  if (can_write && !buf_len(&st->down)) {
    ssize_t n;
    do n = write(st->io.fd, data, len); while (n < 0 && errno == EINTR);
    if (n > 0) {
      off = (size_t)n;
      st->n_down += off;
      nghttp2_session_consume(h2, sid, off);
    } else if (n < 0 && errno != EAGAIN) {
      nghttp2_session_consume_connection(h2, len);
      stream_fail(st, errno_name(errno), true);
      return 0;
    }
  }
  if (off < len && !buf_append(&st->down, data + off, len - off)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  stream_update_io(st);
  return 0;
}

/* A refusal went out whole: a peer still sending is told to stop, without error (RFC 9113, 8.1). */
static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *user) {
  (void)user;
  if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  tstream_t *st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
  if (st && st->server && st->refusal && !st->peer_end) nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t sid, uint32_t code, void *user) {
  session_t *s = user;
  tstream_t *st = nghttp2_session_get_stream_user_data(h2, sid);
  if (!st) return 0;
  st->h2_closed = true;
  if (st->done) return 0;
  if (code == NGHTTP2_NO_ERROR) {
    stream_maybe_done(st);
    return 0;
  }
  /* Refused unprocessed: open it again on a session that takes streams, with the same bytes. */
  if (!st->server && !st->answered && code == NGHTTP2_REFUSED_STREAM && !st->replay_off && st->retries < RETRIES && s->client) {
    st->retries++;
    client_t *c = s->client;
    detach(st);
    buf_t again = {0};
    buf_append(&again, st->replay.p + st->replay.r, buf_len(&st->replay));
    buf_append(&again, st->up.p + st->up.r, buf_len(&st->up));
    buf_free(&st->up);
    buf_free(&st->replay);
    st->up = again;
    st->n_up = 0;
    st->end_sent = false;
    st->h2_closed = false;
    st->deferred = false;
    session_t *ns = client_session(c, st->host, st->port);
    attach(ns, st);
    stream_update_io(st);
    if (ns->state == S_READY) session_submit(ns, st);
    return 0;
  }
  char why[64];
  snprintf(why, sizeof why, "stream reset (code %u)", code);
  stream_fail(st, why, true);
  return 0;
}

static nghttp2_session_callbacks *callbacks(void) {
  static nghttp2_session_callbacks *cb;
  if (!cb) {
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  }
  return cb;
}

static nghttp2_option *options(void) {
  static nghttp2_option *opt;
  if (!opt) {
    nghttp2_option_new(&opt);
    /* Window updates only for bytes the socket took: back-pressure end to end. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, MAX_STREAMS);
  }
  return opt;
}

/* ---- sessions ------------------------------------------------------------ */

static session_t *session_new(bool server) {
  session_t *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->o = (obj_t){.id = obj_next_id(), .type = OBJ_SESSION};
  s->io = (io_t){.fd = -1, .kind = IO_SESSION, .owner = s};
  s->server = server;
  s->all_next = all_sessions;
  if (all_sessions) all_sessions->all_prev = s;
  all_sessions = s;
  obj_put(&s->o);
  return s;
}

static void own_unlink(session_t *s) {
  session_t **head = s->client ? &s->client->sessions : s->listener ? &s->listener->sessions : NULL;
  if (!head) return;
  if (s->own_prev) s->own_prev->own_next = s->own_next;
  else if (*head == s) *head = s->own_next;
  if (s->own_next) s->own_next->own_prev = s->own_prev;
  s->own_next = s->own_prev = NULL;
}

static void own_link(session_t **head, session_t *s) {
  s->own_prev = NULL;
  s->own_next = *head;
  if (*head) (*head)->own_prev = s;
  *head = s;
}

/* Ends the session and every stream on it; freed at the end of the loop turn (never inside nghttp2). */
static void session_fail(session_t *s, const char *why) {
  if (s->state == S_DEAD) return;
  bool was_ready = s->state == S_READY;
  s->state = S_DEAD;
  s->pooled = false;
  char msg[300];
  while (s->streams) {
    tstream_t *st = s->streams;
    if (!s->server && !st->answered) {
      snprintf(msg, sizeof msg, "tunnel to %s: %s", s->key ? s->key : "?", why);
      stream_fail(st, msg, st->reset_on_fail);
    } else {
      snprintf(msg, sizeof msg, "tunnel session closed: %s", why);
      stream_fail(st, msg, true);
    }
  }
  event_t *e = ev_new(s->server && was_ready ? EV_SESSION_CLOSED : EV_SESSION_FAILED, s->o.id);
  e->aux = s->client ? s->client->o.id : s->listener ? s->listener->o.id : 0;
  e->s[0] = xstrdup(why);
  e->n1 = !was_ready;
  uint32_t sink = s->client ? s->client->o.sink : s->listener ? s->listener->o.sink : 0;
  if (sink) sink_emit(sink, e);
  else ev_free(e);
  if (s->counted) __atomic_sub_fetch(&s->listener->counts->sessions, 1, __ATOMIC_RELAXED);
  s->counted = false;
  own_unlink(s);
  io_close(&s->io, false);
  s->dead_next = dead_list;
  dead_list = s;
}

static void session_free(session_t *s) {
  if (s->all_prev) s->all_prev->all_next = s->all_next;
  else all_sessions = s->all_next;
  if (s->all_next) s->all_next->all_prev = s->all_prev;
  obj_del(&s->o);
  if (s->h2) nghttp2_session_del(s->h2);
  if (s->ssl) SSL_free(s->ssl); /* frees both BIOs */
  buf_free(&s->out);
  buf_free(&s->early);
  free(s->key);
  free(s->peer_id);
  free(s);
}

/* Moves what TLS wrote into its memory BIO to the socket's queue. */
static bool tls_take(session_t *s) {
  for (;;) {
    size_t pending = BIO_ctrl_pending(s->wbio);
    if (!pending) return true;
    if (!buf_reserve(&s->out, pending)) return false;
    int n = BIO_read(s->wbio, s->out.p + s->out.w, (int)pending);
    if (n <= 0) return true;
    s->out.w += (size_t)n;
  }
}

static void session_write(session_t *s) {
  while (buf_len(&s->out)) {
    ssize_t n = write(s->io.fd, s->out.p + s->out.r, buf_len(&s->out));
    if (n > 0) {
      buf_consume(&s->out, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    session_fail(s, errno_name(errno));
    return;
  }
  if (s->state == S_DEAD) return;
  uint32_t want = s->state == S_CONNECTING ? EPOLLOUT : EPOLLIN;
  if (buf_len(&s->out)) want |= EPOLLOUT;
  io_want(&s->io, want);
}

/* Frames out of nghttp2, through TLS (records of up to 16 KiB), onto the socket. */
static void session_flush(session_t *s) {
  if (s->state == S_DEAD) return;
  if (s->h2 && s->state == S_READY) {
    static buf_t pt;
    while (buf_len(&s->out) < OUT_HIGH) {
      const uint8_t *d;
      ssize_t n = nghttp2_session_mem_send(s->h2, &d);
      if (n < 0) { session_fail(s, nghttp2_strerror((int)n)); return; }
      if (n == 0) break;
      buf_append(&pt, d, (size_t)n);
      if (buf_len(&pt) >= 16384) {
        if (SSL_write(s->ssl, pt.p + pt.r, (int)buf_len(&pt)) <= 0 || !tls_take(s)) { session_fail(s, "TLS write failed"); return; }
        buf_consume(&pt, buf_len(&pt));
      }
    }
    if (buf_len(&pt)) {
      if (SSL_write(s->ssl, pt.p + pt.r, (int)buf_len(&pt)) <= 0 || !tls_take(s)) { session_fail(s, "TLS write failed"); return; }
      buf_consume(&pt, buf_len(&pt));
    }
  }
  session_write(s);
  if (s->state == S_DEAD) return;
  /* Both ends are done with it (GOAWAY exchanged, no stream left): close. */
  if (s->h2 && !buf_len(&s->out) && !nghttp2_session_want_read(s->h2) && !nghttp2_session_want_write(s->h2)) session_fail(s, "closed");
}

void tunnel_flush_dirty(void) {
  while (dirty_list) {
    session_t *s = dirty_list;
    dirty_list = s->dirty_next;
    s->dirty = false;
    session_flush(s);
  }
  while (dead_list) {
    session_t *s = dead_list;
    dead_list = s->dead_next;
    session_free(s);
  }
  while (dead_streams) {
    tstream_t *st = dead_streams;
    dead_streams = st->dead_next;
    stream_free(st);
  }
}

static void session_submit(session_t *s, tstream_t *st) {
  nghttp2_nv nv[4];
  int n = 0;
#define NV(k, v) nv[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), sizeof(k) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
  NV(":method", "CONNECT");
  NV(":authority", st->authority);
  if (st->source_id) NV("ebmesh-source-id", st->source_id);
  if (st->source_ip) NV("ebmesh-source-ip", st->source_ip);
#undef NV
  nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_source};
  int32_t sid = nghttp2_submit_request(s->h2, NULL, nv, (size_t)n, &dp, st);
  if (sid < 0) {
    stream_fail(st, nghttp2_strerror(sid), st->reset_on_fail);
    return;
  }
  st->sid = sid;
  session_mark_dirty(s);
}

/* The peer is who JS wanted: HTTP/2 starts, and the streams that waited go out. */
static void session_ready(session_t *s) {
  int rv = s->server ? nghttp2_session_server_new2(&s->h2, callbacks(), s, options()) : nghttp2_session_client_new2(&s->h2, callbacks(), s, options());
  if (rv) { session_fail(s, nghttp2_strerror(rv)); return; }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, iv, 3);
  nghttp2_session_set_local_window_size(s->h2, NGHTTP2_FLAG_NONE, 0, SESSION_WINDOW);
  s->state = S_READY;
  s->deadline = 0;
  if (s->server) {
    s->counted = true;
    __atomic_add_fetch(&s->listener->counts->sessions, 1, __ATOMIC_RELAXED);
  } else {
    event_t *e = ev_new(EV_SESSION_READY, s->o.id);
    e->aux = s->client->o.id;
    e->s[0] = xstrdup(s->key);
    sink_emit(s->client->o.sink, e);
  }
  if (buf_len(&s->early)) {
    ssize_t n = nghttp2_session_mem_recv(s->h2, s->early.p + s->early.r, buf_len(&s->early));
    buf_free(&s->early);
    if (n < 0) { session_fail(s, nghttp2_strerror((int)n)); return; }
  }
  for (tstream_t *st = s->streams, *next; st; st = next) {
    next = st->snext;
    if (st->sid <= 0 && !st->server) session_submit(s, st);
  }
  session_mark_dirty(s);
}

static void handshake_done(session_t *s) {
  const unsigned char *alpn;
  unsigned int alen;
  SSL_get0_alpn_selected(s->ssl, &alpn, &alen);
  if (alen != 2 || memcmp(alpn, "h2", 2)) {
    session_fail(s, "the peer did not negotiate h2");
    return;
  }
  s->state = S_VERIFY;
  event_t *e = ev_new(EV_SESSION_VERIFY, s->o.id);
  e->aux = s->client ? s->client->o.id : s->listener->o.id;
  e->nlist = tls_peer_uris(s->ssl, &e->list, &e->s[0]);
  e->s[1] = xstrdup(s->key);
  sink_emit(s->client ? s->client->o.sink : s->listener->o.sink, e);
}

/* TLS in, HTTP/2 frames (or the handshake) out of it. */
static void session_drive(session_t *s) {
  if (s->state == S_HANDSHAKE) {
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (!tls_take(s)) { session_fail(s, "out of memory"); return; }
    if (r != 1) {
      int e = SSL_get_error(s->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        session_mark_dirty(s); /* what the handshake wrote goes out at the end of this turn */
        return;
      }
      char why[300];
      tls_error_text(why, sizeof why, "TLS handshake");
      if (s->server) {
        event_t *ev = ev_new(EV_TLS_ERROR, s->o.id);
        ev->aux = s->listener->o.id;
        ev->s[0] = xstrdup(why);
        sink_emit(s->listener->o.sink, ev);
      }
      session_write(s); /* the alert */
      session_fail(s, why);
      return;
    }
    handshake_done(s);
    if (s->state == S_DEAD) return;
  }
  if (s->state != S_VERIFY && s->state != S_READY) return;
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(s->ssl, rdbuf, sizeof rdbuf);
    if (n > 0) {
      if (s->state == S_VERIFY) {
        if (!buf_append(&s->early, rdbuf, (size_t)n)) { session_fail(s, "out of memory"); return; }
        continue;
      }
      ssize_t rv = nghttp2_session_mem_recv(s->h2, rdbuf, (size_t)n);
      if (rv < 0) { session_fail(s, nghttp2_strerror((int)rv)); return; }
      if (s->state == S_DEAD) return;
      continue;
    }
    int e = SSL_get_error(s->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) { session_fail(s, "the peer closed the session"); return; }
    char why[300];
    tls_error_text(why, sizeof why, "TLS");
    session_fail(s, why);
    return;
  }
  if (!tls_take(s)) { session_fail(s, "out of memory"); return; }
  session_mark_dirty(s);
}

static void session_connected(session_t *s) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    session_fail(s, errno_name(err));
    return;
  }
  s->state = S_HANDSHAKE;
  session_drive(s); /* the ClientHello */
  session_write(s);
}

static void listener_accept(listener_t *l);
void tunnel_on_listen_io(void *l) { listener_accept(l); }

void tunnel_on_session_io(session_t *s, uint32_t events) {
  if (s->state == S_DEAD) return;
  if (s->state == S_CONNECTING) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) session_connected(s);
    return;
  }
  if (events & EPOLLOUT) session_write(s);
  if (s->state == S_DEAD) return;
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    bool eof = false;
    for (;;) {
      ssize_t n = read(s->io.fd, rdbuf, sizeof rdbuf);
      if (n > 0) {
        BIO_write(s->rbio, rdbuf, (int)n);
        if ((size_t)n < sizeof rdbuf) break;
        continue;
      }
      if (n == 0) { eof = true; break; }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      session_fail(s, errno_name(errno));
      return;
    }
    session_drive(s);
    if (eof && s->state != S_DEAD) session_fail(s, "the peer closed the connection");
  }
}

void tunnel_timers(int64_t now) {
  for (session_t *s = all_sessions, *next; s; s = next) {
    next = s->all_next;
    if (s->state == S_DEAD) continue;
    if (s->deadline && now >= s->deadline) {
      char why[96];
      snprintf(why, sizeof why, "no TLS session within %d ms", s->client ? s->client->connect_timeout_ms : 0);
      session_fail(s, why);
      continue;
    }
    if (s->goaway_at && now >= s->goaway_at && s->h2) {
      s->goaway_at = 0;
      nghttp2_submit_goaway(s->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->h2), NGHTTP2_NO_ERROR, NULL, 0);
      session_mark_dirty(s);
    }
    if (s->deadline) engine_want_deadline(s->deadline);
    if (s->goaway_at) engine_want_deadline(s->goaway_at);
  }
}

/* ---- the sending side ------------------------------------------------------ */

static session_t *client_session(client_t *c, const char *host, int port) {
  char key[80];
  snprintf(key, sizeof key, "%s:%d", host, port);
  for (session_t *s = c->sessions; s; s = s->own_next)
    if (s->pooled && s->state != S_DEAD && !strcmp(s->key, key)) return s;
  session_t *s = session_new(false);
  s->o.sink = c->o.sink;
  s->client = c;
  s->key = xstrdup(key);
  s->pooled = true;
  s->state = S_CONNECTING;
  own_link(&c->sessions, s);
  s->deadline = now_ms() + c->connect_timeout_ms;
  engine_want_deadline(s->deadline);
  event_t *ev = ev_new(EV_SESSION_NEW, s->o.id);
  ev->aux = c->o.id;
  ev->s[0] = xstrdup(key);
  sink_emit(c->o.sink, ev);
  union {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  } sa = {0};
  socklen_t salen;
  int af = strchr(host, ':') ? AF_INET6 : AF_INET;
  if (af == AF_INET) {
    sa.v4.sin_family = AF_INET;
    sa.v4.sin_port = htons((uint16_t)port);
    salen = sizeof sa.v4;
    if (inet_pton(AF_INET, host, &sa.v4.sin_addr) != 1) { session_fail(s, "not an IP address"); return s; }
  } else {
    sa.v6.sin6_family = AF_INET6;
    sa.v6.sin6_port = htons((uint16_t)port);
    salen = sizeof sa.v6;
    if (inet_pton(AF_INET6, host, &sa.v6.sin6_addr) != 1) { session_fail(s, "not an IP address"); return s; }
  }
  int fd = socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { session_fail(s, errno_name(errno)); return s; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s->io.fd = fd;
  s->ssl = SSL_new(c->ctx->client);
  s->rbio = BIO_new(BIO_s_mem());
  s->wbio = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(s->rbio, -1);
  BIO_set_mem_eof_return(s->wbio, -1);
  SSL_set_bio(s->ssl, s->rbio, s->wbio);
  SSL_set_connect_state(s->ssl);
  if (connect(fd, (struct sockaddr *)&sa, salen) < 0 && errno != EINPROGRESS) {
    session_fail(s, errno_name(errno));
    return s;
  }
  io_want(&s->io, EPOLLOUT);
  return s;
}

typedef struct {
  cmd_t c;
  client_args_t a;
} client_cmd_t;

static void run_client_new(cmd_t *cmd) {
  client_cmd_t *k = (client_cmd_t *)cmd;
  client_t *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->o = (obj_t){.id = k->a.id, .type = OBJ_CLIENT, .sink = k->a.sink};
  c->ctx = k->a.ctx;
  k->a.ctx = NULL;
  c->connect_timeout_ms = k->a.connect_timeout_ms;
  obj_put(&c->o);
}

static void free_client_cmd(cmd_t *cmd) {
  client_cmd_t *k = (client_cmd_t *)cmd;
  tls_ctx_unref(k->a.ctx);
  free(k);
}

void cmd_client_new(client_args_t *a) {
  client_cmd_t *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->c.run = run_client_new;
  k->c.free_fn = free_client_cmd;
  k->a = *a;
  relay_post(&k->c);
}

/* New credentials: pooled sessions take no new streams and close when their last one ends. */
static void client_retire_all(client_t *c) {
  for (session_t *s = c->sessions, *next; s; s = next) {
    next = s->own_next;
    if (!s->pooled) continue;
    s->pooled = false;
    s->retiring = true;
    if (s->nstreams == 0) {
      if (s->h2) {
        nghttp2_session_terminate_session(s->h2, NGHTTP2_NO_ERROR);
        session_mark_dirty(s);
      } else {
        session_fail(s, "retired");
      }
    }
  }
}

typedef struct {
  cmd_t c;
  uint32_t id;
  tls_ctx_t *ctx;
  int n;
  bool flag;
} id_cmd_t;

static void free_id_cmd(cmd_t *cmd) {
  id_cmd_t *k = (id_cmd_t *)cmd;
  tls_ctx_unref(k->ctx);
  free(k);
}

static void post_id(void (*run)(cmd_t *), uint32_t id, tls_ctx_t *ctx, int n, bool flag) {
  id_cmd_t *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->c.run = run;
  k->c.free_fn = free_id_cmd;
  k->id = id;
  k->ctx = ctx;
  k->n = n;
  k->flag = flag;
  relay_post(&k->c);
}

static void run_client_set_ctx(cmd_t *cmd) {
  id_cmd_t *k = (id_cmd_t *)cmd;
  client_t *c = obj_get(k->id, OBJ_CLIENT);
  if (!c) return;
  tls_ctx_unref(c->ctx);
  c->ctx = k->ctx;
  k->ctx = NULL;
  client_retire_all(c);
}

void cmd_client_set_ctx(uint32_t id, tls_ctx_t *ctx) { post_id(run_client_set_ctx, id, ctx, 0, false); }

static void client_destroy(client_t *c) {
  while (c->sessions) session_fail(c->sessions, "the tunnel client closed");
  obj_del(&c->o);
  tls_ctx_unref(c->ctx);
  free(c);
}

static void run_client_close(cmd_t *cmd) {
  id_cmd_t *k = (id_cmd_t *)cmd;
  client_t *c = obj_get(k->id, OBJ_CLIENT);
  if (c) client_destroy(c);
}

void cmd_client_close(uint32_t id) { post_id(run_client_close, id, NULL, 0, false); }

typedef struct {
  cmd_t c;
  open_args_t a;
} open_cmd_t;

static void free_open_cmd(cmd_t *cmd) {
  open_cmd_t *k = (open_cmd_t *)cmd;
  if (k->a.fd >= 0) close(k->a.fd);
  free(k->a.host);
  free(k->a.authority);
  free(k->a.source_id);
  free(k->a.source_ip);
  free(k->a.head);
  free(k);
}

static void run_stream_open(cmd_t *cmd) {
  open_cmd_t *k = (open_cmd_t *)cmd;
  open_args_t *a = &k->a;
  tstream_t *st = calloc(1, sizeof *st);
  if (!st) abort();
  st->o = (obj_t){.id = a->id, .type = OBJ_STREAM, .sink = a->sink};
  st->io = (io_t){.fd = a->fd, .kind = IO_STREAM_FD, .owner = st};
  a->fd = -1;
  st->sid = -1;
  st->reset_on_fail = a->reset_on_fail;
  st->t0 = now_ms_f();
  st->host = a->host;
  st->port = a->port;
  st->authority = a->authority;
  st->source_id = a->source_id;
  st->source_ip = a->source_ip;
  a->host = a->authority = a->source_id = a->source_ip = NULL;
  if (a->head_len) buf_append(&st->up, a->head, a->head_len);
  obj_put(&st->o);
  client_t *c = obj_get(a->client, OBJ_CLIENT);
  if (!c) {
    stream_fail(st, "the tunnel client is closed", st->reset_on_fail);
    return;
  }
  session_t *s = client_session(c, st->host, st->port);
  if (s->state == S_DEAD) {
    /* Failed at once (no socket, bad address): the stream fails with it. */
    stream_fail(st, "tunnel: could not open a session", st->reset_on_fail);
    return;
  }
  attach(s, st);
  stream_update_io(st);
  if (s->state == S_READY) session_submit(s, st);
}

void cmd_stream_open(open_args_t *a) {
  open_cmd_t *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->c.run = run_stream_open;
  k->c.free_fn = free_open_cmd;
  k->a = *a;
  relay_post(&k->c);
}

typedef struct {
  cmd_t c;
  uint32_t id;
  bool ok;
  char *peer_id, *reason;
  int status, port;
  char *ip;
} verdict_cmd_t;

static void free_verdict_cmd(cmd_t *cmd) {
  verdict_cmd_t *k = (verdict_cmd_t *)cmd;
  free(k->peer_id);
  free(k->reason);
  free(k->ip);
  free(k);
}

static void run_session_verdict(cmd_t *cmd) {
  verdict_cmd_t *k = (verdict_cmd_t *)cmd;
  session_t *s = obj_get(k->id, OBJ_SESSION);
  if (!s || s->state != S_VERIFY) return;
  if (!k->ok) {
    session_fail(s, k->reason ? k->reason : "peer refused");
    return;
  }
  s->peer_id = k->peer_id;
  k->peer_id = NULL;
  session_ready(s);
}

void cmd_session_verdict(uint32_t session, bool ok, const char *peer_id, const char *reason) {
  verdict_cmd_t *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->c.run = run_session_verdict;
  k->c.free_fn = free_verdict_cmd;
  k->id = session;
  k->ok = ok;
  k->peer_id = xstrdup(peer_id);
  k->reason = xstrdup(reason);
  relay_post(&k->c);
}

/* ---- the receiving side ---------------------------------------------------- */

static void listener_accept(listener_t *l) {
  for (;;) {
    int fd = accept4(l->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return; /* EAGAIN, or out of descriptors: try again on the next readiness */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    session_t *s = session_new(true);
    s->o.sink = l->o.sink;
    s->listener = l;
    own_link(&l->sessions, s);
    s->io.fd = fd;
    s->ssl = SSL_new(l->ctx->server);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(s->rbio, -1);
    BIO_set_mem_eof_return(s->wbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
    s->state = S_HANDSHAKE;
    io_want(&s->io, EPOLLIN);
  }
}

typedef struct {
  cmd_t c;
  listen_args_t a;
} listen_cmd_t;

static void free_listen_cmd(cmd_t *cmd) {
  listen_cmd_t *k = (listen_cmd_t *)cmd;
  if (k->a.fd >= 0) close(k->a.fd);
  tls_ctx_unref(k->a.ctx);
  free(k);
}

static void run_listener_new(cmd_t *cmd) {
  listen_cmd_t *k = (listen_cmd_t *)cmd;
  listener_t *l = calloc(1, sizeof *l);
  if (!l) abort();
  l->o = (obj_t){.id = k->a.id, .type = OBJ_LISTENER, .sink = k->a.sink};
  l->io = (io_t){.fd = k->a.fd, .kind = IO_LISTEN, .owner = l};
  k->a.fd = -1;
  l->ctx = k->a.ctx;
  k->a.ctx = NULL;
  l->counts = k->a.counts;
  obj_put(&l->o);
  io_want(&l->io, EPOLLIN);
}

void cmd_listener_new(listen_args_t *a) {
  listen_cmd_t *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->c.run = run_listener_new;
  k->c.free_fn = free_listen_cmd;
  k->a = *a;
  relay_post(&k->c);
}

static void run_listener_set_ctx(cmd_t *cmd) {
  id_cmd_t *k = (id_cmd_t *)cmd;
  listener_t *l = obj_get(k->id, OBJ_LISTENER);
  if (!l) return;
  tls_ctx_unref(l->ctx);
  l->ctx = k->ctx;
  k->ctx = NULL;
}

void cmd_listener_set_ctx(uint32_t id, tls_ctx_t *ctx) { post_id(run_listener_set_ctx, id, ctx, 0, false); }

static void run_listener_stop(cmd_t *cmd) {
  id_cmd_t *k = (id_cmd_t *)cmd;
  listener_t *l = obj_get(k->id, OBJ_LISTENER);
  if (l) io_close(&l->io, false);
}

void cmd_listener_stop(uint32_t id) { post_id(run_listener_stop, id, NULL, 0, false); }

/*
 * Two-step GOAWAY: a shutdown notice (last stream id 2^31-1: "open no new
 * streams here", while every stream already on the wire is still served),
 * then, a round trip later, the real one naming the last stream processed.
 */
static void run_listener_goaway(cmd_t *cmd) {
  id_cmd_t *k = (id_cmd_t *)cmd;
  listener_t *l = obj_get(k->id, OBJ_LISTENER);
  if (!l) return;
  for (session_t *s = l->sessions; s; s = s->own_next) {
    if (s->state == S_READY && s->h2) {
      nghttp2_submit_shutdown_notice(s->h2);
      s->goaway_at = now_ms() + k->n;
      engine_want_deadline(s->goaway_at);
      session_mark_dirty(s);
    } else if (s->state != S_DEAD) {
      session_fail(s, "draining");
    }
  }
}

void cmd_listener_goaway(uint32_t id, int grace_ms) { post_id(run_listener_goaway, id, NULL, grace_ms, false); }

static void run_listener_close(cmd_t *cmd) {
  id_cmd_t *k = (id_cmd_t *)cmd;
  listener_t *l = obj_get(k->id, OBJ_LISTENER);
  if (!l) return;
  io_close(&l->io, false);
  for (session_t *s = l->sessions, *next; s; s = next) {
    next = s->own_next;
    if (k->flag || !s->h2) session_fail(s, "the endpoint closed");
    else {
      nghttp2_session_terminate_session(s->h2, NGHTTP2_NO_ERROR);
      session_mark_dirty(s);
    }
  }
  if (k->flag) {
    obj_del(&l->o);
    tls_ctx_unref(l->ctx);
    free(l);
  } else {
    l->closed = true;
  }
}

void cmd_listener_close(uint32_t id, bool force) { post_id(run_listener_close, id, NULL, 0, force); }

static void respond(tstream_t *st, int status, const char *reason, bool body) {
  session_t *s = st->s;
  if (!s || !s->h2 || st->h2_closed) return;
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  nghttp2_nv nv[2];
  int n = 0;
  nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, strlen(code), NGHTTP2_NV_FLAG_NONE};
  char r[201];
  if (reason) {
    snprintf(r, sizeof r, "%s", reason); /* 200 characters at most, as the JS endpoint sent */
    nv[n++] = (nghttp2_nv){(uint8_t *)"ebmesh-reason", (uint8_t *)r, 13, strlen(r), NGHTTP2_NV_FLAG_NONE};
  }
  if (body) {
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_source};
    nghttp2_submit_response(s->h2, st->sid, nv, (size_t)n, &dp);
  } else {
    /*
     * A refusal is the whole answer (HEADERS with END_STREAM). A peer may
     * keep its side open after it (Node's http2 client does until told), so
     * the stream is then closed without error (RFC 9113, 8.1), not left
     * half-open for the session's lifetime: on_frame_send resets it once
     * the answer is on its way.
     */
    st->refusal = true;
    nghttp2_submit_response(s->h2, st->sid, nv, (size_t)n, NULL);
  }
  session_mark_dirty(s);
}

static void dial_done(tstream_t *st) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(st->io.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    event_t *e = ev_new(EV_DIAL_ERROR, st->o.id);
    e->s[0] = xstrdup(errno_name(err));
    sink_emit(st->o.sink, e);
    io_close(&st->io, false);
    respond(st, 502, errno_name(err), false);
    st->err = xstrdup(errno_name(err));
    return;
  }
  st->connected = true;
  __atomic_add_fetch(&st->s->listener->counts->streams, 1, __ATOMIC_RELAXED);
  sink_emit(st->o.sink, ev_new(EV_STREAM_CONNECTED, st->o.id));
  respond(st, 200, NULL, true);
  /* DATA that came while dialling goes out now. */
  if (buf_len(&st->down)) write_down(st);
  else {
    stream_update_io(st);
    stream_maybe_done(st);
  }
}

static void run_stream_verdict(cmd_t *cmd) {
  verdict_cmd_t *k = (verdict_cmd_t *)cmd;
  tstream_t *st = obj_get(k->id, OBJ_STREAM);
  if (!st || !st->server || st->verdict || st->done) return;
  st->verdict = true;
  if (k->status != 200) {
    respond(st, k->status, k->reason, false);
    return;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)k->port)};
  if (!k->ip || inet_pton(AF_INET, k->ip, &sa.sin_addr) != 1) {
    respond(st, 400, "bad destination", false);
    return;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    respond(st, 502, errno_name(errno), false);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  st->io.fd = fd;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    st->io.fd = -1;
    event_t *ev = ev_new(EV_DIAL_ERROR, st->o.id);
    ev->s[0] = xstrdup(errno_name(e));
    sink_emit(st->o.sink, ev);
    respond(st, 502, errno_name(e), false);
    return;
  }
  stream_update_io(st);
}

void cmd_stream_verdict(uint32_t stream, int status, const char *reason, const char *ip, int port) {
  verdict_cmd_t *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->c.run = run_stream_verdict;
  k->c.free_fn = free_verdict_cmd;
  k->id = stream;
  k->status = status;
  k->reason = xstrdup(reason);
  k->ip = xstrdup(ip);
  k->port = port;
  relay_post(&k->c);
}

/* ---- a stream's socket ----------------------------------------------------- */

void tunnel_on_stream_io(void *p, uint32_t events) {
  tstream_t *st = p;
  if (st->done) return;
  if (st->server && !st->connected) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) dial_done(st);
    return;
  }
  if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
    if (buf_len(&st->down)) {
      write_down(st);
      if (st->done) return;
    }
  }
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && (st->io.want & EPOLLIN)) {
    stream_read(st);
    return;
  }
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(st->io.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) stream_fail(st, errno_name(err), true);
  }
}

listener_counts_t *listener_counts(uint32_t id) {
  (void)id;
  listener_counts_t *c = calloc(1, sizeof *c);
  if (!c) abort();
  return c;
}

/* A JS thread went away: what it owned goes with it. */
void tunnel_sink_gone(uint32_t sink) {
  obj_t **v;
  size_t n = obj_collect(OBJ_STREAM, sink, &v);
  for (size_t i = 0; i < n; i++) stream_fail((tstream_t *)v[i], "owner gone", true);
  free(v);
  n = obj_collect(OBJ_CLIENT, sink, &v);
  for (size_t i = 0; i < n; i++) client_destroy((client_t *)v[i]);
  free(v);
  n = obj_collect(OBJ_LISTENER, sink, &v);
  for (size_t i = 0; i < n; i++) {
    listener_t *l = (listener_t *)v[i];
    io_close(&l->io, false);
    while (l->sessions) session_fail(l->sessions, "owner gone");
    obj_del(&l->o);
    tls_ctx_unref(l->ctx);
    free(l);
  }
  free(v);
}
