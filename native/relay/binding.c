/*
 * The relay as a Node-API addon: functions that JS threads call (each
 * posts a command to the engine thread, or does something synchronous and
 * small: dup a descriptor, make a TLS context), and one event sink per JS
 * thread (a thread-safe function) through which the engine reports.
 * The typed side is src/relay/.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <node_api.h>

#include "relay.h"

/* ---- sinks --------------------------------------------------------------- */

#define MAX_SINKS 256
typedef struct {
  napi_threadsafe_function tsfn;
  event_t *head, *tail;
  bool used, dead, scheduled;
} sink_t;

static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static sink_t sinks[MAX_SINKS];

void sink_emit(uint32_t id, event_t *e) {
  pthread_mutex_lock(&sink_mu);
  sink_t *s = id && id <= MAX_SINKS ? &sinks[id - 1] : NULL;
  if (!s || !s->used || s->dead) {
    pthread_mutex_unlock(&sink_mu);
    ev_free(e);
    return;
  }
  e->next = NULL;
  if (s->tail) s->tail->next = e;
  else s->head = e;
  s->tail = e;
  if (!s->scheduled) {
    s->scheduled = true;
    /* Under the lock: the thread's teardown (sink_cleanup) cannot release it meanwhile. */
    napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
  }
  pthread_mutex_unlock(&sink_mu);
}

static void set_u32(napi_env env, napi_value o, const char *k, uint32_t v) {
  napi_value x;
  napi_create_uint32(env, v, &x);
  napi_set_named_property(env, o, k, x);
}

static void set_f64(napi_env env, napi_value o, const char *k, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, o, k, x);
}

static void set_str(napi_env env, napi_value o, const char *k, const char *v) {
  napi_value x;
  if (v) napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &x);
  else napi_get_null(env, &x);
  napi_set_named_property(env, o, k, x);
}

/* On the JS thread: every queued event, in order, in one call. */
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)data;
  sink_t *s = context;
  pthread_mutex_lock(&sink_mu);
  event_t *e = s->head;
  s->head = s->tail = NULL;
  s->scheduled = false;
  pthread_mutex_unlock(&sink_mu);
  if (!env) {
    while (e) { event_t *n = e->next; ev_free(e); e = n; }
    return;
  }
  napi_value arr;
  napi_create_array(env, &arr);
  uint32_t i = 0;
  while (e) {
    napi_value o;
    napi_create_object(env, &o);
    set_u32(env, o, "type", (uint32_t)e->type);
    set_u32(env, o, "id", e->id);
    set_u32(env, o, "aux", e->aux);
    set_f64(env, o, "status", e->status);
    set_f64(env, o, "n1", (double)e->n1);
    set_f64(env, o, "n2", (double)e->n2);
    set_f64(env, o, "ms", e->ms);
    set_str(env, o, "s0", e->s[0]);
    set_str(env, o, "s1", e->s[1]);
    set_str(env, o, "s2", e->s[2]);
    set_str(env, o, "s3", e->s[3]);
    if (e->nlist) {
      napi_value l;
      napi_create_array_with_length(env, (size_t)e->nlist, &l);
      for (int j = 0; j < e->nlist; j++) {
        napi_value x;
        napi_create_string_utf8(env, e->list[j], NAPI_AUTO_LENGTH, &x);
        napi_set_element(env, l, (uint32_t)j, x);
      }
      napi_set_named_property(env, o, "list", l);
    }
    napi_set_element(env, arr, i++, o);
    event_t *n = e->next;
    ev_free(e);
    e = n;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  napi_call_function(env, undef, cb, 1, &arr, NULL);
}

typedef struct {
  cmd_t c;
  uint32_t sink;
} gone_cmd_t;

static void run_sink_gone(cmd_t *c) {
  uint32_t sink = ((gone_cmd_t *)c)->sink;
  tunnel_sink_gone(sink);
  pipe_sink_gone(sink);
  /* Only now may the slot be used again: no object of the old thread is left to report to it. */
  pthread_mutex_lock(&sink_mu);
  sinks[sink - 1].used = false;
  pthread_mutex_unlock(&sink_mu);
}

static void sink_cleanup(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg;
  pthread_mutex_lock(&sink_mu);
  sink_t *s = &sinks[id - 1];
  s->dead = true;
  event_t *e = s->head;
  s->head = s->tail = NULL;
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  pthread_mutex_unlock(&sink_mu);
  while (e) { event_t *n = e->next; ev_free(e); e = n; }
  gone_cmd_t *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->c.run = run_sink_gone;
  c->sink = id;
  relay_post(&c->c);
}

/* ---- argument helpers ---------------------------------------------------- */

#define CHECK(call)                                                         \
  do {                                                                      \
    if ((call) != napi_ok) {                                                \
      napi_throw_error(env, "EBMESH_RELAY", "relay: bad arguments to " #call); \
      return NULL;                                                          \
    }                                                                       \
  } while (0)

static napi_value args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_value self;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok || argc < want) {
    napi_throw_error(env, "EBMESH_RELAY", "relay: too few arguments");
    return NULL;
  }
  return self;
}

static bool get_u32(napi_env env, napi_value v, uint32_t *out) { return napi_get_value_uint32(env, v, out) == napi_ok; }
static bool get_i32(napi_env env, napi_value v, int32_t *out) { return napi_get_value_int32(env, v, out) == napi_ok; }

/* A string argument, or NULL for null/undefined. */
static char *get_str(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_string) return NULL;
  size_t len;
  napi_get_value_string_utf8(env, v, NULL, 0, &len);
  char *s = malloc(len + 1);
  if (!s) abort();
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

/* A Buffer argument copied, or NULL. */
static uint8_t *get_bytes(napi_env env, napi_value v, size_t *len) {
  bool is;
  *len = 0;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return NULL;
  void *d;
  napi_get_buffer_info(env, v, &d, len);
  if (!*len) return NULL;
  uint8_t *p = malloc(*len);
  if (!p) abort();
  memcpy(p, d, *len);
  return p;
}

static napi_value u32(napi_env env, uint32_t v) {
  napi_value x;
  napi_create_uint32(env, v, &x);
  return x;
}

static napi_value undefined(napi_env env) {
  napi_value x;
  napi_get_undefined(env, &x);
  return x;
}

static void throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, errno_name(e));
  napi_value code, m, err;
  napi_create_string_utf8(env, errno_name(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, code, m, &err);
  napi_throw(env, err);
}

/* ---- functions ----------------------------------------------------------- */

/* attach(handler): this thread's sink (events arrive as arrays, in order). */
static napi_value js_attach(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv)) return NULL;
  int err = relay_start();
  if (err) { throw_errno(env, "relay: cannot start its thread", err); return NULL; }
  pthread_mutex_lock(&sink_mu);
  int slot = -1;
  for (int i = 0; i < MAX_SINKS; i++) if (!sinks[i].used) { slot = i; break; }
  if (slot < 0) {
    pthread_mutex_unlock(&sink_mu);
    napi_throw_error(env, "EBMESH_RELAY", "relay: too many threads attached");
    return NULL;
  }
  sink_t *s = &sinks[slot];
  memset(s, 0, sizeof *s);
  s->used = true;
  pthread_mutex_unlock(&sink_mu);
  napi_value name;
  napi_create_string_utf8(env, "ebmesh-relay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    s->used = false;
    napi_throw_error(env, "EBMESH_RELAY", "relay: cannot create its event channel");
    return NULL;
  }
  /* Events never keep a thread alive by themselves: its sockets and timers do. */
  napi_unref_threadsafe_function(env, s->tsfn);
  uint32_t id = (uint32_t)slot + 1;
  napi_add_env_cleanup_hook(env, sink_cleanup, (void *)(uintptr_t)id);
  return u32(env, id);
}

static void ctx_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  tls_ctx_unref(data);
}

/* context(certPem, keyPem, bundlePem): a TLS context, or a thrown error saying what is wrong. */
static napi_value js_context(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!args(env, info, 3, argv)) return NULL;
  char *cert = get_str(env, argv[0]), *key = get_str(env, argv[1]), *bundle = get_str(env, argv[2]);
  char err[300] = "";
  tls_ctx_t *c = cert && key && bundle ? tls_ctx_new(cert, key, bundle, err, sizeof err) : NULL;
  free(cert);
  free(key);
  free(bundle);
  if (!c) {
    napi_throw_error(env, "EBMESH_RELAY_TLS", err[0] ? err : "relay: certificate, key and bundle must be PEM strings");
    return NULL;
  }
  napi_value ext;
  CHECK(napi_create_external(env, c, ctx_finalize, NULL, &ext));
  return ext;
}

static tls_ctx_t *get_ctx(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

/* takeFd(fd): a descriptor of the same socket the relay owns from now on (the caller then closes its own). */
static napi_value js_take_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!args(env, info, 1, argv) || !get_i32(env, argv[0], &fd)) return NULL;
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) { throw_errno(env, "relay: dup", errno); return NULL; }
  int fl = fcntl(d, F_GETFL);
  fcntl(d, F_SETFL, fl | O_NONBLOCK);
  napi_value x;
  napi_create_int32(env, d, &x);
  return x;
}

/* socketPair(): [fd for JS, fd for the relay]. */
static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) { throw_errno(env, "relay: socketpair", errno); return NULL; }
  napi_value arr, a, b;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_int32(env, sv[0], &a);
  napi_create_int32(env, sv[1], &b);
  napi_set_element(env, arr, 0, a);
  napi_set_element(env, arr, 1, b);
  return arr;
}

/* closeFd(fd): for a descriptor handed back unused. */
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!args(env, info, 1, argv) || !get_i32(env, argv[0], &fd)) return NULL;
  close(fd);
  return undefined(env);
}

/* clientNew(sink, ctx, connectTimeoutMs) -> id */
static napi_value js_client_new(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  client_args_t a = {0};
  int32_t t;
  if (!args(env, info, 3, argv) || !get_u32(env, argv[0], &a.sink) || !(a.ctx = get_ctx(env, argv[1])) || !get_i32(env, argv[2], &t)) {
    napi_throw_error(env, "EBMESH_RELAY", "relay: clientNew(sink, ctx, timeout)");
    return NULL;
  }
  tls_ctx_ref(a.ctx);
  a.connect_timeout_ms = t;
  a.id = obj_next_id();
  cmd_client_new(&a);
  return u32(env, a.id);
}

static napi_value js_client_set_ctx(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t id;
  tls_ctx_t *c;
  if (!args(env, info, 2, argv) || !get_u32(env, argv[0], &id) || !(c = get_ctx(env, argv[1]))) return NULL;
  cmd_client_set_ctx(id, tls_ctx_ref(c));
  return undefined(env);
}

static napi_value js_client_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t id;
  if (!args(env, info, 1, argv) || !get_u32(env, argv[0], &id)) return NULL;
  cmd_client_close(id);
  return undefined(env);
}

/* streamOpen(sink, client, fd, resetOnFail, host, port, authority, sourceId, sourceIp, head) -> id; the fd is the relay's from now on. */
static napi_value js_stream_open(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  open_args_t a = {0};
  int32_t fd, port;
  bool reset;
  if (!args(env, info, 10, argv) || !get_u32(env, argv[0], &a.sink) || !get_u32(env, argv[1], &a.client) || !get_i32(env, argv[2], &fd) ||
      napi_get_value_bool(env, argv[3], &reset) != napi_ok || !get_i32(env, argv[5], &port)) {
    napi_throw_error(env, "EBMESH_RELAY", "relay: streamOpen(sink, client, fd, resetOnFail, host, port, authority, sourceId, sourceIp, head)");
    return NULL;
  }
  a.fd = fd;
  a.reset_on_fail = reset;
  a.port = port;
  a.host = get_str(env, argv[4]);
  a.authority = get_str(env, argv[6]);
  a.source_id = get_str(env, argv[7]);
  a.source_ip = get_str(env, argv[8]);
  a.head = get_bytes(env, argv[9], &a.head_len);
  if (!a.host || !a.authority) {
    free(a.host);
    free(a.authority);
    free(a.source_id);
    free(a.source_ip);
    free(a.head);
    napi_throw_error(env, "EBMESH_RELAY", "relay: streamOpen needs a host and an authority");
    return NULL;
  }
  a.id = obj_next_id();
  cmd_stream_open(&a);
  return u32(env, a.id);
}

/* sessionVerdict(session, ok, peerId, reason) */
static napi_value js_session_verdict(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint32_t id;
  bool ok;
  if (!args(env, info, 4, argv) || !get_u32(env, argv[0], &id) || napi_get_value_bool(env, argv[1], &ok) != napi_ok) return NULL;
  char *peer = get_str(env, argv[2]), *reason = get_str(env, argv[3]);
  cmd_session_verdict(id, ok, peer, reason);
  free(peer);
  free(reason);
  return undefined(env);
}

/* listen(host, port, reusePort, backlog) -> fd: done here, so that EADDRINUSE is thrown to the caller. */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t port, backlog;
  bool reuse;
  if (!args(env, info, 4, argv) || !get_i32(env, argv[1], &port) || napi_get_value_bool(env, argv[2], &reuse) != napi_ok || !get_i32(env, argv[3], &backlog)) return NULL;
  char *host = get_str(env, argv[0]);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (!host || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    free(host);
    napi_throw_error(env, "EBMESH_BAD_ADDRESS", "relay: listen needs an IPv4 address");
    return NULL;
  }
  free(host);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { throw_errno(env, "socket", errno); return NULL; }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, "listen", e);
    return NULL;
  }
  napi_value x;
  napi_create_int32(env, fd, &x);
  return x;
}

/* localPort(fd): the port a listening socket got (for port 0). */
static napi_value js_local_port(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!args(env, info, 1, argv) || !get_i32(env, argv[0], &fd)) return NULL;
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) { throw_errno(env, "getsockname", errno); return NULL; }
  return u32(env, ntohs(sa.sin_port));
}

static void counts_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
  /* Sessions of a closed listener may still count down: the counters are never freed (a few bytes per endpoint). */
}

/* listenerNew(sink, fd, ctx) -> [id, counts] */
static napi_value js_listener_new(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  listen_args_t a = {0};
  int32_t fd;
  if (!args(env, info, 3, argv) || !get_u32(env, argv[0], &a.sink) || !get_i32(env, argv[1], &fd) || !(a.ctx = get_ctx(env, argv[2]))) return NULL;
  a.fd = fd;
  tls_ctx_ref(a.ctx);
  a.id = obj_next_id();
  a.counts = listener_counts(a.id);
  napi_value arr, ext;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, u32(env, a.id));
  CHECK(napi_create_external(env, a.counts, counts_finalize, NULL, &ext));
  napi_set_element(env, arr, 1, ext);
  cmd_listener_new(&a);
  return arr;
}

/* listenerCounts(counts) -> [sessions, streams] */
static napi_value js_listener_counts(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *p;
  if (!args(env, info, 1, argv) || napi_get_value_external(env, argv[0], &p) != napi_ok) return NULL;
  listener_counts_t *c = p;
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, u32(env, (uint32_t)__atomic_load_n(&c->sessions, __ATOMIC_RELAXED)));
  napi_set_element(env, arr, 1, u32(env, (uint32_t)__atomic_load_n(&c->streams, __ATOMIC_RELAXED)));
  return arr;
}

static napi_value js_listener_set_ctx(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t id;
  tls_ctx_t *c;
  if (!args(env, info, 2, argv) || !get_u32(env, argv[0], &id) || !(c = get_ctx(env, argv[1]))) return NULL;
  cmd_listener_set_ctx(id, tls_ctx_ref(c));
  return undefined(env);
}

static napi_value js_listener_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t id;
  if (!args(env, info, 1, argv) || !get_u32(env, argv[0], &id)) return NULL;
  cmd_listener_stop(id);
  return undefined(env);
}

static napi_value js_listener_goaway(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t id;
  int32_t grace;
  if (!args(env, info, 2, argv) || !get_u32(env, argv[0], &id) || !get_i32(env, argv[1], &grace)) return NULL;
  cmd_listener_goaway(id, grace);
  return undefined(env);
}

static napi_value js_listener_close(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t id;
  bool force;
  if (!args(env, info, 2, argv) || !get_u32(env, argv[0], &id) || napi_get_value_bool(env, argv[1], &force) != napi_ok) return NULL;
  cmd_listener_close(id, force);
  return undefined(env);
}

/* streamVerdict(stream, status, reason, ip, port): 200 dials ip:port; anything else is the answer. */
static napi_value js_stream_verdict(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint32_t id;
  int32_t status, port;
  if (!args(env, info, 5, argv) || !get_u32(env, argv[0], &id) || !get_i32(env, argv[1], &status) || !get_i32(env, argv[4], &port)) return NULL;
  char *reason = get_str(env, argv[2]), *ip = get_str(env, argv[3]);
  cmd_stream_verdict(id, status, reason, ip, port);
  free(reason);
  free(ip);
  return undefined(env);
}

/* pipeNew(sink, fd, ip, port, localIp, head) -> id; the fd is the relay's from now on. */
static napi_value js_pipe_new(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  pipe_args_t a = {0};
  int32_t fd, port;
  if (!args(env, info, 6, argv) || !get_u32(env, argv[0], &a.sink) || !get_i32(env, argv[1], &fd) || !get_i32(env, argv[3], &port)) return NULL;
  a.fd_a = fd;
  a.port = port;
  a.ip = get_str(env, argv[2]);
  a.local_ip = get_str(env, argv[4]);
  a.head = get_bytes(env, argv[5], &a.head_len);
  a.id = obj_next_id();
  cmd_pipe_new(&a);
  return u32(env, a.id);
}

/*
 * The one BPF map the proxy's workers read (the kernel's record of where a
 * steered connection was going), without loading libbpf into them: open
 * the pin, check its layout, take an entry (look up and delete in one call).
 */
static long bpf_call(int cmd, union bpf_attr *a) { return syscall(SYS_bpf, cmd, a, sizeof *a); }

/* bpfPinned(path) -> [fd, keySize, valueSize] */
static napi_value js_bpf_pinned(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv)) return NULL;
  char *path = get_str(env, argv[0]);
  if (!path) return NULL;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.pathname = (uint64_t)(uintptr_t)path;
  a.file_flags = 0;
  int fd = (int)bpf_call(BPF_OBJ_GET, &a);
  int e = errno;
  free(path);
  if (fd < 0) { throw_errno(env, "bpf(BPF_OBJ_GET)", e); return NULL; }
  struct bpf_map_info mi;
  memset(&mi, 0, sizeof mi);
  memset(&a, 0, sizeof a);
  a.info.bpf_fd = (uint32_t)fd;
  a.info.info_len = sizeof mi;
  a.info.info = (uint64_t)(uintptr_t)&mi;
  if (bpf_call(BPF_OBJ_GET_INFO_BY_FD, &a) < 0) {
    e = errno;
    close(fd);
    throw_errno(env, "bpf(BPF_OBJ_GET_INFO_BY_FD)", e);
    return NULL;
  }
  napi_value arr;
  napi_create_array_with_length(env, 3, &arr);
  napi_value x;
  napi_create_int32(env, fd, &x);
  napi_set_element(env, arr, 0, x);
  napi_set_element(env, arr, 1, u32(env, mi.key_size));
  napi_set_element(env, arr, 2, u32(env, mi.value_size));
  return arr;
}

/* One element call on a map fd: key and value buffers, -errno on failure. */
static napi_value map_elem_call(napi_env env, napi_callback_info info, int cmd) {
  napi_value argv[3];
  int32_t fd;
  void *k, *v;
  size_t kl, vl;
  if (!args(env, info, 3, argv) || !get_i32(env, argv[0], &fd) || napi_get_buffer_info(env, argv[1], &k, &kl) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &v, &vl) != napi_ok)
    return NULL;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = (uint32_t)fd;
  a.key = (uint64_t)(uintptr_t)k;
  a.value = (uint64_t)(uintptr_t)v;
  long r = bpf_call(cmd, &a);
  napi_value x;
  napi_create_int32(env, r < 0 ? -errno : 0, &x);
  return x;
}

/* bpfTake(fd, key, value) -> 0 (value filled, entry deleted) or -errno (-ENOENT: no entry) */
static napi_value js_bpf_take(napi_env env, napi_callback_info info) { return map_elem_call(env, info, BPF_MAP_LOOKUP_AND_DELETE_ELEM); }

/* bpfLookup(fd, key, value) -> 0 (value filled) or -errno (-ENOENT: no entry) */
static napi_value js_bpf_lookup(napi_env env, napi_callback_info info) { return map_elem_call(env, info, BPF_MAP_LOOKUP_ELEM); }

#define FN(name, f) {name, NULL, f, NULL, NULL, NULL, napi_enumerable, NULL}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      FN("attach", js_attach),
      FN("context", js_context),
      FN("takeFd", js_take_fd),
      FN("socketPair", js_socketpair),
      FN("closeFd", js_close_fd),
      FN("clientNew", js_client_new),
      FN("clientSetContext", js_client_set_ctx),
      FN("clientClose", js_client_close),
      FN("streamOpen", js_stream_open),
      FN("sessionVerdict", js_session_verdict),
      FN("listen", js_listen),
      FN("localPort", js_local_port),
      FN("listenerNew", js_listener_new),
      FN("listenerCounts", js_listener_counts),
      FN("listenerSetContext", js_listener_set_ctx),
      FN("listenerStop", js_listener_stop),
      FN("listenerGoaway", js_listener_goaway),
      FN("listenerClose", js_listener_close),
      FN("streamVerdict", js_stream_verdict),
      FN("pipeNew", js_pipe_new),
      FN("bpfPinned", js_bpf_pinned),
      FN("bpfLookup", js_bpf_lookup),
      FN("bpfTake", js_bpf_take),
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
