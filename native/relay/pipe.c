/*
 * TCP pass-through: the caller's connection (a) and a connection the relay
 * dials to the backend (b), bytes both ways. A side's bytes are read only
 * while the other side takes them (a slow reader pushes back on the
 * writer), a FIN crosses as a FIN once everything before it was written,
 * and a reset or an error on either side resets both.
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

#include "relay.h"

#define CHUNK 65536

typedef struct {
  io_t io;
  buf_t out; /* bytes for this side not yet written */
  bool eof;  /* read its FIN */
  bool shut; /* sent it our FIN */
} side_t;

typedef struct pipe {
  obj_t o;
  side_t a, b;
  bool connected, done;
  uint64_t ab, ba;
  double t0;
  char *err;
} pipe_t;

static void pipe_update(pipe_t *p);

static void pipe_end(pipe_t *p, const char *err) {
  if (p->done) return;
  p->done = true;
  bool reset = err != NULL;
  io_close(&p->a.io, reset);
  io_close(&p->b.io, reset);
  event_t *e = ev_new(EV_PIPE_END, p->o.id);
  e->n1 = p->ab;
  e->n2 = p->ba;
  e->ms = now_ms_f() - p->t0;
  e->status = p->connected;
  e->s[0] = xstrdup(err);
  sink_emit(p->o.sink, e);
  obj_del(&p->o);
  buf_free(&p->a.out);
  buf_free(&p->b.out);
  free(p->err);
  free(p);
}

/* Writes what is queued for `to`; false when the pipe ended. */
static bool flush_to(pipe_t *p, side_t *to, uint64_t *count) {
  while (buf_len(&to->out)) {
    ssize_t n = write(to->io.fd, to->out.p + to->out.r, buf_len(&to->out));
    if (n > 0) {
      buf_consume(&to->out, (size_t)n);
      *count += (uint64_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    pipe_end(p, errno_name(errno));
    return false;
  }
  return true;
}

/* Moves what `from` has to `to`: straight through while `to` keeps up. */
static bool move(pipe_t *p, side_t *from, side_t *to, uint64_t *count) {
  if (from->eof || buf_len(&to->out)) return true;
  if (!buf_reserve(&to->out, CHUNK)) { pipe_end(p, "ENOMEM"); return false; }
  for (;;) {
    size_t room = to->out.cap - to->out.w;
    ssize_t n = read(from->io.fd, to->out.p + to->out.w, room);
    if (n > 0) {
      to->out.w += (size_t)n;
      if (!flush_to(p, to, count)) return false;
      if (buf_len(&to->out)) return true; /* `to` is full: read `from` again once it drained */
      /* A short read emptied the socket: the next readiness says when there is more (no read just to hear EAGAIN). */
      if ((size_t)n < room) return true;
      if (!buf_reserve(&to->out, CHUNK)) { pipe_end(p, "ENOMEM"); return false; }
      continue;
    }
    if (n == 0) { from->eof = true; return true; }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return true;
    pipe_end(p, errno_name(errno));
    return false;
  }
}

static void pipe_update(pipe_t *p) {
  /* A FIN crosses once everything before it was written. */
  if (p->a.eof && !buf_len(&p->b.out) && !p->b.shut) { shutdown(p->b.io.fd, SHUT_WR); p->b.shut = true; }
  if (p->b.eof && !buf_len(&p->a.out) && !p->a.shut) { shutdown(p->a.io.fd, SHUT_WR); p->a.shut = true; }
  if (p->a.eof && p->b.eof && p->a.shut && p->b.shut) { pipe_end(p, NULL); return; }
  io_want(&p->a.io, (!p->a.eof && !buf_len(&p->b.out) ? EPOLLIN : 0) | (buf_len(&p->a.out) ? EPOLLOUT : 0));
  io_want(&p->b.io, (!p->b.eof && !buf_len(&p->a.out) ? EPOLLIN : 0) | (buf_len(&p->b.out) ? EPOLLOUT : 0));
}

static void connected(pipe_t *p) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(p->b.io.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) { pipe_end(p, errno_name(err)); return; }
  p->connected = true;
  sink_emit(p->o.sink, ev_new(EV_PIPE_CONNECTED, p->o.id));
  if (!flush_to(p, &p->b, &p->ab)) return;
  pipe_update(p);
}

void pipe_on_io(void *ptr, int kind, uint32_t events) {
  pipe_t *p = ptr;
  if (p->done) return;
  if (!p->connected) {
    if (kind == IO_PIPE_B && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) connected(p);
    return;
  }
  side_t *me = kind == IO_PIPE_A ? &p->a : &p->b;
  side_t *other = kind == IO_PIPE_A ? &p->b : &p->a;
  uint64_t *to_me = kind == IO_PIPE_A ? &p->ba : &p->ab;
  uint64_t *to_other = kind == IO_PIPE_A ? &p->ab : &p->ba;
  if (events & EPOLLOUT) {
    if (!flush_to(p, me, to_me)) return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    if (!move(p, me, other, to_other)) return;
    if ((events & EPOLLERR) && !me->eof) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(me->io.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) { pipe_end(p, errno_name(err)); return; }
    }
  }
  /* The other side may have room again for what this side could not write. */
  if (!buf_len(&me->out) && !other->eof && (events & EPOLLOUT)) {
    if (!move(p, other, me, to_me)) return;
  }
  pipe_update(p);
}

typedef struct {
  cmd_t c;
  pipe_args_t a;
} pipe_cmd_t;

static void free_pipe_cmd(cmd_t *cmd) {
  pipe_cmd_t *k = (pipe_cmd_t *)cmd;
  if (k->a.fd_a >= 0) close(k->a.fd_a);
  free(k->a.ip);
  free(k->a.local_ip);
  free(k->a.head);
  free(k);
}

static void run_pipe_new(cmd_t *cmd) {
  pipe_cmd_t *k = (pipe_cmd_t *)cmd;
  pipe_t *p = calloc(1, sizeof *p);
  if (!p) abort();
  p->o = (obj_t){.id = k->a.id, .type = OBJ_PIPE, .sink = k->a.sink};
  p->a.io = (io_t){.fd = k->a.fd_a, .kind = IO_PIPE_A, .owner = p};
  p->b.io = (io_t){.fd = -1, .kind = IO_PIPE_B, .owner = p};
  k->a.fd_a = -1;
  p->t0 = now_ms_f();
  obj_put(&p->o);
  if (k->a.head_len) buf_append(&p->b.out, k->a.head, k->a.head_len);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)k->a.port)};
  if (!k->a.ip || inet_pton(AF_INET, k->a.ip, &sa.sin_addr) != 1) { pipe_end(p, "EINVAL"); return; }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { pipe_end(p, errno_name(errno)); return; }
  p->b.io.fd = fd;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (k->a.local_ip) {
    struct sockaddr_in la = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, k->a.local_ip, &la.sin_addr) != 1 || bind(fd, (struct sockaddr *)&la, sizeof la) < 0) { pipe_end(p, errno_name(errno ? errno : EINVAL)); return; }
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) { pipe_end(p, errno_name(errno)); return; }
  io_want(&p->b.io, EPOLLOUT);
}

void cmd_pipe_new(pipe_args_t *a) {
  pipe_cmd_t *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->c.run = run_pipe_new;
  k->c.free_fn = free_pipe_cmd;
  k->a = *a;
  relay_post(&k->c);
}

void pipe_sink_gone(uint32_t sink) {
  obj_t **v;
  size_t n = obj_collect(OBJ_PIPE, sink, &v);
  for (size_t i = 0; i < n; i++) pipe_end((pipe_t *)v[i], "owner gone");
  free(v);
}
