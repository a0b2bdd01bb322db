/*
 * The engine thread: one epoll loop for every socket the relay owns, a
 * command queue JS threads post to (woken through an eventfd), objects by
 * number, and deadlines. Everything below runs on the engine thread except
 * relay_post, relay_start and obj_next_id.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

/* ---- buffers ------------------------------------------------------------- */

bool buf_reserve(buf_t *b, size_t need) {
  if (b->cap - b->w >= need) return true;
  size_t len = buf_len(b);
  if (b->r && b->cap - len >= need) {
    memmove(b->p, b->p + b->r, len);
    b->r = 0;
    b->w = len;
    return true;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - len < need) cap *= 2;
  uint8_t *p = malloc(cap);
  if (!p) return false;
  if (len) memcpy(p, b->p + b->r, len);
  free(b->p);
  b->p = p;
  b->cap = cap;
  b->r = 0;
  b->w = len;
  return true;
}

bool buf_append(buf_t *b, const void *p, size_t n) {
  if (!n) return true;
  if (!buf_reserve(b, n)) return false;
  memcpy(b->p + b->w, p, n);
  b->w += n;
  return true;
}

void buf_consume(buf_t *b, size_t n) {
  b->r += n;
  if (b->r == b->w) b->r = b->w = 0;
}

void buf_free(buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- time ---------------------------------------------------------------- */

int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

double now_ms_f(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

event_t *ev_new(int type, uint32_t id) {
  event_t *e = calloc(1, sizeof *e);
  if (!e) abort();
  e->type = type;
  e->id = id;
  return e;
}

void ev_free(event_t *e) {
  for (int i = 0; i < 4; i++) free(e->s[i]);
  for (int i = 0; i < e->nlist; i++) free(e->list[i]);
  free(e->list);
  free(e);
}

/* ---- objects by number (engine thread only) ------------------------------ */

static uint32_t next_id = 1;

uint32_t obj_next_id(void) {
  uint32_t id;
  do id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED); while (id == 0);
  return id;
}

/* Open addressing, linear probing; TOMB marks a deleted slot. */
#define TOMB ((obj_t *)1)
static obj_t **slots;
static size_t nslots, nused, nlive;

static void map_grow(void) {
  size_t n = nslots ? nslots * 2 : 1024;
  if (nslots && nlive * 4 < nslots) n = nslots; /* mostly tombstones: rehash in place */
  obj_t **s = calloc(n, sizeof *s);
  if (!s) abort();
  for (size_t i = 0; i < nslots; i++) {
    obj_t *o = slots[i];
    if (!o || o == TOMB) continue;
    size_t j = o->id & (n - 1);
    while (s[j]) j = (j + 1) & (n - 1);
    s[j] = o;
  }
  free(slots);
  slots = s;
  nslots = n;
  nused = nlive;
}

void obj_put(obj_t *o) {
  if ((nused + 1) * 2 > nslots) map_grow();
  size_t j = o->id & (nslots - 1);
  while (slots[j] && slots[j] != TOMB) j = (j + 1) & (nslots - 1);
  if (!slots[j]) nused++;
  slots[j] = o;
  nlive++;
}

static size_t map_find(uint32_t id) {
  if (!nslots) return (size_t)-1;
  size_t j = id & (nslots - 1);
  for (;;) {
    obj_t *o = slots[j];
    if (!o) return (size_t)-1;
    if (o != TOMB && o->id == id) return j;
    j = (j + 1) & (nslots - 1);
  }
}

void *obj_get(uint32_t id, int type) {
  size_t j = map_find(id);
  if (j == (size_t)-1) return NULL;
  return slots[j]->type == type ? slots[j] : NULL;
}

void obj_del(obj_t *o) {
  size_t j = map_find(o->id);
  if (j == (size_t)-1 || slots[j] != o) return;
  slots[j] = TOMB;
  nlive--;
}

/* Every live object of one type owned by `sink` (for a JS thread that went away). */
size_t obj_collect(int type, uint32_t sink, obj_t ***out) {
  size_t n = 0;
  obj_t **v = NULL;
  for (size_t i = 0; i < nslots; i++) {
    obj_t *o = slots[i];
    if (!o || o == TOMB || o->type != type || o->sink != sink) continue;
    obj_t **nv = realloc(v, (n + 1) * sizeof *v);
    if (!nv) abort();
    v = nv;
    v[n++] = o;
  }
  *out = v;
  return n;
}

/* ---- epoll --------------------------------------------------------------- */

static int epfd = -1;
static int wakefd = -1;
static io_t wake_io;

void io_want(io_t *io, uint32_t want) {
  if (io->fd < 0 || io->want == want) return;
  struct epoll_event ev = {.events = want, .data.ptr = io};
  int op = !io->want ? EPOLL_CTL_ADD : want ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
  if (epoll_ctl(epfd, op, io->fd, &ev) == 0 || op == EPOLL_CTL_DEL) io->want = want;
}

void io_close(io_t *io, bool reset) {
  if (io->fd < 0) return;
  if (io->want) epoll_ctl(epfd, EPOLL_CTL_DEL, io->fd, NULL);
  io->want = 0;
  if (reset) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(io->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(io->fd);
  io->fd = -1;
}

void io_park(io_t *io) {
  if (io->fd < 0) return;
  io_t *p = malloc(sizeof *p);
  if (!p) {
    io_close(io, false);
    return;
  }
  if (io->want) epoll_ctl(epfd, EPOLL_CTL_DEL, io->fd, NULL);
  *p = (io_t){.fd = io->fd, .kind = IO_PARKED, .owner = p};
  io->fd = -1;
  io->want = 0;
  io_want(p, EPOLLIN);
  if (!p->want) { /* could not watch it: close now */
    close(p->fd);
    free(p);
  }
}

static void parked_io(io_t *io) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(io->fd, buf, sizeof buf);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    io_close(io, false);
    free(io);
    return;
  }
}

/* ---- commands ------------------------------------------------------------ */

static pthread_mutex_t cmd_mu = PTHREAD_MUTEX_INITIALIZER;
static cmd_t *cmd_head, *cmd_tail;

void relay_post(cmd_t *c) {
  c->next = NULL;
  pthread_mutex_lock(&cmd_mu);
  bool was_empty = !cmd_head;
  if (cmd_tail) cmd_tail->next = c;
  else cmd_head = c;
  cmd_tail = c;
  pthread_mutex_unlock(&cmd_mu);
  if (was_empty) {
    uint64_t one = 1;
    ssize_t w = write(wakefd, &one, sizeof one);
    (void)w;
  }
}

static void run_commands(void) {
  uint64_t v;
  ssize_t r = read(wakefd, &v, sizeof v);
  (void)r;
  pthread_mutex_lock(&cmd_mu);
  cmd_t *c = cmd_head;
  cmd_head = cmd_tail = NULL;
  pthread_mutex_unlock(&cmd_mu);
  while (c) {
    cmd_t *next = c->next;
    c->run(c);
    if (c->free_fn) c->free_fn(c);
    else free(c);
    c = next;
  }
}

/* ---- deadlines ----------------------------------------------------------- */

static int64_t next_deadline = INT64_MAX;

void engine_want_deadline(int64_t at) {
  if (at < next_deadline) next_deadline = at;
}

/* ---- the loop ------------------------------------------------------------ */

static void *engine_main(void *arg) {
  (void)arg;
  struct epoll_event evs[256];
  for (;;) {
    int timeout = -1;
    if (next_deadline != INT64_MAX) {
      int64_t d = next_deadline - now_ms();
      timeout = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
    }
    int n = epoll_wait(epfd, evs, 256, timeout);
    if (n < 0 && errno != EINTR) abort();
    for (int i = 0; i < n; i++) {
      io_t *io = evs[i].data.ptr;
      uint32_t e = evs[i].events;
      switch (io->kind) {
        case IO_WAKE: run_commands(); break;
        case IO_SESSION: tunnel_on_session_io(io->owner, e); break;
        case IO_STREAM_FD: tunnel_on_stream_io(io->owner, e); break;
        case IO_PIPE_A:
        case IO_PIPE_B: pipe_on_io(io->owner, io->kind, e); break;
        case IO_LISTEN: tunnel_on_listen_io(io->owner); break;
        case IO_PARKED: parked_io(io); break;
      }
    }
    tunnel_flush_dirty();
    int64_t now = now_ms();
    if (now >= next_deadline) {
      next_deadline = INT64_MAX;
      tunnel_timers(now);
      tunnel_flush_dirty();
    }
  }
  return NULL;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int start_err;

static void start_once(void) {
  signal(SIGPIPE, SIG_IGN);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd < 0 || wakefd < 0) { start_err = errno; return; }
  wake_io = (io_t){.fd = wakefd, .kind = IO_WAKE};
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_io};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) < 0) { start_err = errno; return; }
  wake_io.want = EPOLLIN;
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  /* Deep recursion never happens here: a small stack is plenty (memory). */
  pthread_attr_setstacksize(&at, 256 << 10);
  start_err = pthread_create(&t, &at, engine_main, NULL);
  pthread_attr_destroy(&at);
  if (!start_err) pthread_setname_np(t, "ebmesh-relay");
}

int relay_start(void) {
  pthread_once(&once, start_once);
  return start_err;
}

/* ---- errno names --------------------------------------------------------- */

const char *errno_name(int e) {
  switch (e) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case EPIPE: return "EPIPE";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ECONNABORTED: return "ECONNABORTED";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EINVAL: return "EINVAL";
    default: return "EIO";
  }
}
