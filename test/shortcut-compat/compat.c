/*
 * Socket compatibility suite for the same-node shortcut, in C (twin of
 * compat.py: the same cases, protocol and outcome lines; see there for
 * the description). Built by the test that runs it:
 *
 *   cc -O2 -Wall -o compat compat.c
 *   compat serve PORT
 *   compat run HOST PORT N|FROM:TO [CASE | CASE:b | CASE:n ...]
 *
 * Nothing is retried: a blocking call that fails fails the case, and a
 * non-blocking call that returns EAGAIN after poll() said the socket was
 * ready fails it too.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000
#define SPLICE_N (256 << 10)
#define SLOW_N (8 << 20)
#define SMALL_N 20000

/* ---- failing a case ------------------------------------------------------ */

static jmp_buf fail_jmp;
static char fail_msg[256];

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
	va_end(ap);
	longjmp(fail_jmp, 1);
}

static void fail_errno(const char *what)
{
	fail("%s: %s", what, strerror(errno));
}

/* ---- data ------------------------------------------------------------------ */

struct rng { uint64_t s; };

static uint64_t rng_next(struct rng *r)
{
	uint64_t x = r->s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return r->s = x;
}

static struct rng rng_of(uint64_t seed)
{
	struct rng r = { seed * 0x9e3779b97f4a7c15ull + 0x1234567ull };

	rng_next(&r);
	return r;
}

static unsigned rng_int(struct rng *r, unsigned lo, unsigned hi)
{
	return lo + (unsigned)(rng_next(r) % (hi - lo + 1));
}

static unsigned char *pattern(size_t n, uint64_t seed)
{
	unsigned char *p = malloc(n ? n : 1);
	struct rng r = rng_of(seed);

	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(rng_next(&r) >> 56);
	return p;
}

/* A running check of a byte stream against pattern(., seed). */
struct check { struct rng r; size_t n; int bad; };

static struct check check_of(uint64_t seed)
{
	struct check c = { rng_of(seed), 0, 0 };

	return c;
}

static void check_feed(struct check *c, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != (unsigned char)(rng_next(&c->r) >> 56))
			c->bad = 1;
	c->n += n;
}

static const char *intact(const struct check *c, size_t want)
{
	return !c->bad && c->n == want ? "intact" : "CORRUPT";
}

/* ---- sockets ----------------------------------------------------------------- */

static int ready(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n = poll(&p, 1, ms);

	if (n < 0)
		fail_errno("poll");
	return n > 0;
}

static void wait_readable(int fd)
{
	if (!ready(fd, POLLIN, WAIT_MS))
		fail("not readable");
}

static void set_nonblocking(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* One read as the application would do it; never retried. -1: reset. */
static ssize_t rd(int fd, char mode, void *buf, size_t n, int flags)
{
	ssize_t k;

	if (mode == 'n')
		wait_readable(fd);
	k = recv(fd, buf, n, flags);
	if (k < 0) {
		if (errno == ECONNRESET)
			return -1;
		if (errno == EAGAIN && mode == 'n')
			fail("EAGAIN after POLLIN");
		fail_errno("recv");
	}
	return k;
}

static void rd_exact(int fd, char mode, unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = rd(fd, mode, buf + got, n - got, 0);

		if (k <= 0)
			fail(k ? "reset after %zu of %zu" : "EOF after %zu of %zu", got, n);
		got += (size_t)k;
	}
}

static struct check read_to_eof(int fd, char mode, uint64_t seed, size_t chunk, unsigned pause_us)
{
	unsigned char *buf = malloc(chunk);
	struct check c = check_of(seed);
	ssize_t k;

	while ((k = rd(fd, mode, buf, chunk, 0)) != 0) {
		if (k < 0)
			fail("reset after %zu", c.n);
		check_feed(&c, buf, (size_t)k);
		if (pause_us)
			usleep(pause_us);
	}
	free(buf);
	return c;
}

static void send_all(int fd, char mode, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EAGAIN && mode == 'n') {
				if (!ready(fd, POLLOUT, WAIT_MS))
					fail("not writable");
				continue;
			}
			fail_errno("send");
		}
		p += k;
		n -= (size_t)k;
	}
}

static void send_pattern(int fd, char mode, size_t n, uint64_t seed)
{
	unsigned char *p = pattern(n, seed);

	send_all(fd, mode, p, n);
	free(p);
}

static int inq(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n) < 0)
		fail_errno("FIONREAD");
	return n;
}

/* Waits until the peer's TCP has everything we sent (SIOCOUTQ 0): a
 * condition, not a retry. */
static void acked(int fd)
{
	for (int i = 0;; i++) {
		int n = -1;

		if (ioctl(fd, SIOCOUTQ, &n) < 0)
			fail_errno("SIOCOUTQ");
		if (!n)
			return;
		if (i > WAIT_MS)
			fail("data not acknowledged");
		usleep(1000);
	}
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* ---- control messages --------------------------------------------------------- */

struct ctl { int fd; char buf[512]; size_t len; char result[512]; };

static void ctl_send(struct ctl *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL) != n)
		fail_errno("control send");
}

/* One line into out; 0 at EOF. */
static int ctl_line(struct ctl *c, char *out, size_t cap)
{
	char *nl;

	while (!(nl = memchr(c->buf, '\n', c->len))) {
		ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

		if (k <= 0)
			return 0;
		c->len += (size_t)k;
	}
	size_t l = (size_t)(nl - c->buf);

	snprintf(out, cap, "%.*s", (int)l, c->buf);
	memmove(c->buf, nl + 1, c->len - l - 1);
	c->len -= l + 1;
	return 1;
}

static void ctl_expect(struct ctl *c, const char *word)
{
	char got[512];

	if (!ctl_line(c, got, sizeof(got)))
		fail("control: EOF");
	if (!strncmp(got, "result ", 7)) {
		snprintf(c->result, sizeof(c->result), "%s", got + 7);
		fail("the server ended the case");
	}
	if (strcmp(got, word))
		fail("control: expected %s, got %s", word, got);
}

/* ---- the cases --------------------------------------------------------------- */

typedef void (*side_fn)(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap);

static void stream_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_send(ctl, "ready");
	struct check c = read_to_eof(fd, mode, seed, 65536, 0);

	send_pattern(fd, mode, 1 << 20, seed + 1);
	snprintf(out, cap, "read %zu %s", c.n, intact(&c, 1 << 20));
}

static void stream_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char *p = pattern(1 << 20, seed);
	struct rng r = rng_of(seed);
	size_t off = 0;

	ctl_expect(ctl, "ready");
	while (off < (1 << 20)) {
		size_t k = rng_int(&r, 1, 65536);

		if (k > (1 << 20) - off)
			k = (1 << 20) - off;
		send_all(fd, mode, p + off, k);
		off += k;
	}
	free(p);
	shutdown(fd, SHUT_WR);
	struct check c = read_to_eof(fd, mode, seed + 1, 65536, 0);

	snprintf(out, cap, "read %zu %s", c.n, intact(&c, 1 << 20));
}

static void halfclose_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_send(ctl, "ready");
	struct check c = read_to_eof(fd, mode, seed, 65536, 0);

	usleep(50000); /* let the client sit in recv() while its FIN is acknowledged */
	send_pattern(fd, mode, 3000, seed + 1);
	snprintf(out, cap, "read %zu %s", c.n, intact(&c, 1000));
}

static void halfclose_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_expect(ctl, "ready");
	send_pattern(fd, mode, 1000, seed);
	shutdown(fd, SHUT_WR);
	struct check c = read_to_eof(fd, mode, seed + 1, 65536, 0);

	snprintf(out, cap, "read %zu then EOF %s", c.n, intact(&c, 3000));
}

static void pingpong_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char m[64];

	ctl_send(ctl, "ready");
	for (int i = 0; i < 200; i++) {
		rd_exact(fd, mode, m, 64);
		send_all(fd, mode, m, 64);
	}
	snprintf(out, cap, "echoed 200");
}

static void pingpong_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char *p = pattern(64 * 200, seed), m[64];

	ctl_expect(ctl, "ready");
	for (int i = 0; i < 200; i++) {
		send_all(fd, mode, p + 64 * i, 64);
		rd_exact(fd, mode, m, 64);
		if (memcmp(m, p + 64 * i, 64))
			fail("round %d: wrong echo", i);
	}
	free(p);
	snprintf(out, cap, "200 round trips");
}

static const char *tf(int b) { return b ? "True" : "False"; }

static void peek_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char *p = pattern(64, seed), a[64], b[64], d[64];

	ctl_send(ctl, "ready");
	ctl_expect(ctl, "sent");
	ssize_t ka = recv(fd, a, 4, MSG_PEEK), kb = recv(fd, b, 64, MSG_PEEK), kd = recv(fd, d, 64, 0);

	if (ka < 0 || kb < 0 || kd < 0)
		fail_errno("recv");
	snprintf(out, cap, "peek4 %s peek64 %zd %s read %zd %s", tf(ka == 4 && !memcmp(a, p, 4)), kb,
		 tf(kb == 64 && !memcmp(b, p, 64)), kd, tf(kd == 64 && !memcmp(d, p, 64)));
	free(p);
}

static void peek_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_expect(ctl, "ready");
	send_pattern(fd, mode, 64, seed);
	acked(fd);
	ctl_send(ctl, "sent");
	snprintf(out, cap, "sent 64");
}

static void rcvlowat_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	int lowat = 1000;
	char buf[4096];

	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
	ctl_send(ctl, "ready");
	ctl_expect(ctl, "sent");
	int first = ready(fd, POLLIN, 200);

	ctl_send(ctl, "more");
	ctl_expect(ctl, "sent");
	int second = ready(fd, POLLIN, WAIT_MS);
	ssize_t k = recv(fd, buf, sizeof(buf), 0);

	if (k < 0)
		fail_errno("recv");
	snprintf(out, cap, "readable at 500: %s, at 1100: %s, read %zd", tf(first), tf(second), k);
}

static void rcvlowat_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_expect(ctl, "ready");
	send_pattern(fd, mode, 500, seed);
	acked(fd);
	ctl_send(ctl, "sent");
	ctl_expect(ctl, "more");
	send_pattern(fd, mode, 600, seed + 1);
	acked(fd);
	ctl_send(ctl, "sent");
	snprintf(out, cap, "sent 500+600");
}

static void fionread_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	char buf[1000];

	ctl_send(ctl, "ready");
	ctl_expect(ctl, "sent");
	int a = inq(fd);
	ssize_t k = recv(fd, buf, sizeof(buf), 0);

	if (k < 0)
		fail_errno("recv");
	snprintf(out, cap, "fionread %d, read %zd, fionread %d", a, k, inq(fd));
}

static void fionread_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_expect(ctl, "ready");
	send_pattern(fd, mode, 3000, seed);
	acked(fd);
	ctl_send(ctl, "sent");
	snprintf(out, cap, "sent 3000");
}

static void waitall_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char *p = pattern(1000, seed), buf[1000];

	ctl_send(ctl, "ready");
	if (mode == 'n')
		ctl_expect(ctl, "sent");
	ssize_t k = recv(fd, buf, sizeof(buf), MSG_WAITALL);

	if (k < 0)
		fail_errno("recv");
	snprintf(out, cap, "read %zd %s", k, tf(!memcmp(buf, p, (size_t)k)));
	free(p);
}

static void waitall_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char *p = pattern(1000, seed);

	ctl_expect(ctl, "ready");
	if (mode == 'n') {
		/* Non-blocking, MSG_WAITALL gives what is there. */
		send_all(fd, mode, p, 100);
		acked(fd);
		ctl_send(ctl, "sent");
		snprintf(out, cap, "sent 100");
	} else {
		for (int i = 0; i < 10; i++) {
			send_all(fd, mode, p + 100 * i, 100);
			usleep(10000);
		}
		snprintf(out, cap, "sent 10x100");
	}
	free(p);
}

static void rcvtimeo_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	struct timeval tv = { 0, 300000 };
	char buf[100], first[64];

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ctl_send(ctl, "ready");
	double t0 = now();
	ssize_t k = recv(fd, buf, sizeof(buf), 0);

	if (k >= 0) {
		snprintf(first, sizeof(first), "read %zd", k);
	} else if (errno == EAGAIN) {
		int waited = now() - t0 >= 0.29;

		/* Blocking: EAGAIN only once the timeout ran out; non-blocking: at once. */
		snprintf(first, sizeof(first), "EAGAIN %s", mode == 'b' ? (waited ? "after the timeout" : "before the timeout")
							      : (waited ? "after a wait" : "at once"));
	} else {
		fail_errno("recv");
	}
	ctl_send(ctl, "timedout");
	ctl_expect(ctl, "sent");
	k = recv(fd, buf, sizeof(buf), 0);
	if (k < 0)
		fail_errno("recv");
	snprintf(out, cap, "%s, then read %zd", first, k);
}

static void rcvtimeo_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_expect(ctl, "ready");
	ctl_expect(ctl, "timedout");
	send_pattern(fd, mode, 10, seed);
	acked(fd);
	ctl_send(ctl, "sent");
	snprintf(out, cap, "sent 10");
}

static void splice_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	int pp[2];
	unsigned char buf[65536];
	struct check c = check_of(seed);

	if (pipe(pp))
		fail_errno("pipe");
	ctl_send(ctl, "ready");
	while (c.n < SPLICE_N) {
		ssize_t k;

		if (mode == 'n')
			wait_readable(fd);
		k = splice(fd, NULL, pp[1], NULL, sizeof(buf), mode == 'n' ? SPLICE_F_NONBLOCK : 0);
		if (k < 0 && errno == EAGAIN && mode == 'n')
			fail("splice EAGAIN after POLLIN, %zu of %d read", c.n, SPLICE_N);
		if (k < 0)
			fail_errno("splice");
		if (!k)
			fail("splice EOF after %zu of %d", c.n, SPLICE_N);
		while (k > 0) {
			ssize_t r = read(pp[0], buf, (size_t)k);

			if (r <= 0)
				fail_errno("read pipe");
			check_feed(&c, buf, (size_t)r);
			k -= r;
		}
	}
	close(pp[0]);
	close(pp[1]);
	snprintf(out, cap, "spliced %zu %s", c.n, intact(&c, SPLICE_N));
}

static void splice_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	int pp[2];
	unsigned char *p = pattern(SPLICE_N, seed);

	if (pipe(pp))
		fail_errno("pipe");
	ctl_expect(ctl, "ready");
	for (size_t off = 0; off < SPLICE_N; off += 32768) {
		ssize_t left = write(pp[1], p + off, 32768); /* the pipe holds 64 KiB: written whole */

		if (left != 32768)
			fail_errno("write pipe");
		while (left) {
			ssize_t k = splice(pp[0], NULL, fd, NULL, (size_t)left, 0);

			if (k < 0 && errno == EAGAIN && mode == 'n') {
				if (!ready(fd, POLLOUT, WAIT_MS))
					fail("not writable");
				continue;
			}
			if (k < 0)
				fail_errno("splice");
			left -= k;
		}
	}
	free(p);
	close(pp[0]);
	close(pp[1]);
	snprintf(out, cap, "spliced %d", SPLICE_N);
}

static void closeunread_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_send(ctl, "ready");
	ctl_expect(ctl, "sent");
	close(fd); /* 1000 bytes unread: TCP answers with a reset (the caller's close then finds it closed) */
	ctl_send(ctl, "closed");
	snprintf(out, cap, "closed with 1000 unread");
}

static void closeunread_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	char buf[100];

	ctl_expect(ctl, "ready");
	send_pattern(fd, mode, 1000, seed);
	acked(fd);
	ctl_send(ctl, "sent");
	ctl_expect(ctl, "closed");
	ssize_t k = rd(fd, mode, buf, sizeof(buf), 0);

	if (k < 0)
		snprintf(out, cap, "ECONNRESET");
	else if (!k)
		snprintf(out, cap, "EOF");
	else
		snprintf(out, cap, "read %zd", k);
}

static void slowreader_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_send(ctl, "ready");
	usleep(200000);
	struct check c = read_to_eof(fd, mode, seed, 65536, 2000);

	snprintf(out, cap, "read %zu %s", c.n, intact(&c, SLOW_N));
}

static void slowreader_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char *p = pattern(SLOW_N, seed);

	ctl_expect(ctl, "ready");
	for (size_t off = 0; off < SLOW_N; off += 256 << 10)
		send_all(fd, mode, p + off, 256 << 10);
	free(p);
	shutdown(fd, SHUT_WR);
	snprintf(out, cap, "sent %d", SLOW_N);
}

static size_t small_total(uint64_t seed)
{
	struct rng r = rng_of(seed);
	size_t t = 0;

	for (int i = 0; i < SMALL_N; i++)
		t += rng_int(&r, 1, 50);
	return t;
}

static void smallwrites_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_send(ctl, "ready");
	struct check c = read_to_eof(fd, mode, seed, 4096, 0);

	snprintf(out, cap, "read all %s", intact(&c, small_total(seed)));
}

static void smallwrites_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	size_t total = small_total(seed), off = 0;
	unsigned char *p = pattern(total, seed);
	struct rng r = rng_of(seed);

	ctl_expect(ctl, "ready");
	for (int i = 0; i < SMALL_N; i++) {
		size_t k = rng_int(&r, 1, 50);

		send_all(fd, mode, p + off, k);
		off += k;
	}
	free(p);
	shutdown(fd, SHUT_WR);
	snprintf(out, cap, "%d writes", SMALL_N);
}

static void rst_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char buf[100];

	ctl_send(ctl, "ready");
	rd_exact(fd, mode, buf, 100);
	ctl_send(ctl, "read");
	/* Now block (or poll) while the peer resets. */
	ssize_t k = rd(fd, mode, buf, sizeof(buf), 0);

	snprintf(out, cap, k < 0 ? "read 100, then ECONNRESET" : k ? "read 100, then data" : "read 100, then EOF");
}

static void rst_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	struct linger l = { 1, 0 };

	ctl_expect(ctl, "ready");
	send_pattern(fd, mode, 100, seed);
	ctl_expect(ctl, "read");
	usleep(50000);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd); /* linger 0: a reset (the caller's close then finds it closed) */
	snprintf(out, cap, "reset");
}

static void on_alarm(int sig) { (void)sig; }

static void signal_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	/* SA_RESTART: over plain TCP an interrupted recv() resumes unseen. */
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	struct itimerval on = { { 0, 20000 }, { 0, 20000 } }, off = { 0 };
	unsigned char buf[100];

	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &on, NULL);
	ctl_send(ctl, "ready");
	rd_exact(fd, mode, buf, 100);
	setitimer(ITIMER_REAL, &off, NULL);
	snprintf(out, cap, "read 100 across signals");
}

static void signal_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	ctl_expect(ctl, "ready");
	usleep(200000);
	send_pattern(fd, mode, 100, seed);
	snprintf(out, cap, "sent 100");
}

static void early_server(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	unsigned char *p = pattern(1000, seed), buf[1000];
	int a = inq(fd);

	/* Accepted after the data came: the client wrote right after connect(). */
	rd_exact(fd, mode, buf, 1000);
	snprintf(out, cap, "fionread %d, read 1000 %s", a, tf(!memcmp(buf, p, 1000)));
	free(p);
}

static void early_client(int fd, char mode, uint64_t seed, struct ctl *ctl, char *out, size_t cap)
{
	send_pattern(fd, mode, 1000, seed);
	acked(fd);
	ctl_send(ctl, "sent");
	snprintf(out, cap, "sent 1000 before accept");
}

static const struct {
	const char *name, *modes;
	side_fn server, client;
	int early;
} CASES[] = {
	{ "stream", "bn", stream_server, stream_client, 0 },
	{ "halfclose", "bn", halfclose_server, halfclose_client, 0 },
	{ "pingpong", "bn", pingpong_server, pingpong_client, 0 },
	{ "peek", "bn", peek_server, peek_client, 0 },
	{ "rcvlowat", "bn", rcvlowat_server, rcvlowat_client, 0 },
	{ "fionread", "bn", fionread_server, fionread_client, 0 },
	{ "waitall", "bn", waitall_server, waitall_client, 0 },
	{ "rcvtimeo", "bn", rcvtimeo_server, rcvtimeo_client, 0 },
	{ "splice", "bn", splice_server, splice_client, 0 },
	{ "closeunread", "bn", closeunread_server, closeunread_client, 0 },
	{ "slowreader", "bn", slowreader_server, slowreader_client, 0 },
	{ "smallwrites", "bn", smallwrites_server, smallwrites_client, 0 },
	{ "rst", "bn", rst_server, rst_client, 0 },
	{ "signal", "b", signal_server, signal_client, 0 },
	{ "early", "bn", early_server, early_client, 1 },
};
#define NCASES (int)(sizeof(CASES) / sizeof(CASES[0]))

/* ---- running --------------------------------------------------------------------- */

static int listen_on(int port, int nonblocking)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("bind");
		exit(2);
	}
	if (nonblocking)
		set_nonblocking(fd); /* before listen(), as event loops do */
	listen(fd, 64);
	return fd;
}

static int accept_case(int listener, char mode)
{
	int fd;

	if (mode == 'n') {
		if (!ready(listener, POLLIN, WAIT_MS))
			fail("no connection");
		fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
	} else {
		fd = accept(listener, NULL, NULL);
	}
	if (fd < 0)
		fail_errno("accept");
	return fd;
}

/* One side of one case; a failure longjmps back to guarded(), which is its
 * own function so that nothing it keeps in registers lives across setjmp. */
struct job {
	int i, server, listener, port;
	char mode;
	uint64_t seed;
	struct ctl *ctl;
	const char *host;
	char out[400];
};
static int case_fd = -1;

static int accept_case(int listener, char mode);
static int connect_case(const char *host, int port, char mode);

static void job_run(struct job *j);

static int guarded(struct job *j)
{
	case_fd = -1;
	if (setjmp(fail_jmp)) {
		snprintf(j->out, sizeof(j->out), "FAIL %s", fail_msg);
		return 1;
	}
	job_run(j);
	return 0;
}

static int find_case(const char *name)
{
	for (int i = 0; i < NCASES; i++)
		if (!strcmp(CASES[i].name, name))
			return i;
	return -1;
}

static void serve(int port)
{
	int ctl_l = listen_on(port, 0), lb = listen_on(port + 1, 0), ln = listen_on(port + 2, 1);

	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct ctl ctl = { .fd = accept(ctl_l, NULL, NULL) };
		char line[512], name[64];
		char mode;
		unsigned long long seed;

		while (ctl_line(&ctl, line, sizeof(line))) {
			if (!strcmp(line, "abort"))
				continue; /* the case had ended already */
			if (sscanf(line, "case %63s %c %llu", name, &mode, &seed) != 3)
				break;
			struct job j = { .i = find_case(name), .server = 1, .listener = mode == 'b' ? lb : ln,
					 .mode = mode, .seed = seed, .ctl = &ctl };

			ctl_send(&ctl, "accepting");
			if (j.i < 0) {
				ctl_send(&ctl, "result FAIL unknown case");
				continue;
			}
			guarded(&j);
			if (case_fd >= 0)
				close(case_fd);
			ctl_send(&ctl, "result %s", j.out);
		}
		close(ctl.fd);
	}
}

static int connect_case(const char *host, int port, char mode)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), err = 0;
	socklen_t len = sizeof(err);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	inet_pton(AF_INET, host, &a.sin_addr);
	if (mode == 'n') {
		set_nonblocking(fd);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
			fail_errno("connect");
		if (!ready(fd, POLLOUT, WAIT_MS))
			fail("connect: timed out");
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			fail("connect: %s", strerror(err));
	} else if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fail_errno("connect");
	}
	return fd;
}

struct outcome { int c; char m; char line[1000]; long n; };

static int run(const char *host, int port, int first, int end, int nonly, char **only)
{
	struct ctl ctl = { .fd = socket(AF_INET, SOCK_STREAM, 0) };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	static struct outcome seen[4096];
	int nseen = 0;
	long total = 0, failed = 0;

	signal(SIGPIPE, SIG_IGN);
	inet_pton(AF_INET, host, &a.sin_addr);
	if (connect(ctl.fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("control connect");
		return 2;
	}
	for (int it = first; it < end; it++) {
		int k = 0;

		for (int i = 0; i < NCASES; i++) {
			for (const char *m = CASES[i].modes; *m; m++, k++) {
				char want[80], res[512], line[1000];
				int pick = !nonly;

				snprintf(want, sizeof(want), "%s:%c", CASES[i].name, *m);
				for (int j = 0; j < nonly; j++)
					pick |= !strcmp(only[j], CASES[i].name) || !strcmp(only[j], want);
				if (!pick)
					continue;
				uint64_t seed = (uint64_t)it * 1000 + (uint64_t)k * 7;

				ctl.result[0] = 0;
				ctl_send(&ctl, "case %s %c %llu", CASES[i].name, *m, (unsigned long long)seed);
				if (!ctl_line(&ctl, res, sizeof(res)) || strcmp(res, "accepting")) {
					fprintf(stderr, "control out of step\n");
					return 2;
				}
				struct job j = { .i = i, .port = port + (*m == 'b' ? 1 : 2), .mode = *m, .seed = seed,
						 .ctl = &ctl, .host = host };
				int client_failed = guarded(&j);

				if (case_fd >= 0)
					close(case_fd);
				if (!ctl.result[0]) {
					if (client_failed)
						ctl_send(&ctl, "abort");
					do {
						if (!ctl_line(&ctl, res, sizeof(res))) {
							fprintf(stderr, "control: EOF\n");
							return 2;
						}
					} while (strncmp(res, "result ", 7));
					snprintf(ctl.result, sizeof(ctl.result), "%s", res + 7);
				}
				snprintf(line, sizeof(line), "server=%s client=%s", ctl.result, j.out);
				int s;

				for (s = 0; s < nseen; s++)
					if (seen[s].c == i && seen[s].m == *m && !strcmp(seen[s].line, line))
						break;
				if (s == nseen && nseen < 4096) {
					seen[nseen] = (struct outcome){ .c = i, .m = *m };
					snprintf(seen[nseen++].line, sizeof(seen[0].line), "%s", line);
				}
				if (s < 4096)
					seen[s].n++;
				total++;
				failed += strstr(line, "FAIL") != NULL;
			}
		}
	}
	for (int s = 0; s < nseen; s++)
		printf("%s %c %ld %s\n", CASES[seen[s].c].name, seen[s].m, seen[s].n, seen[s].line);
	printf("total %ld failed %ld\n", total, failed);
	fflush(stdout);
	return failed ? 1 : 0;
}

static void job_run(struct job *j)
{
	if (j->server) {
		if (CASES[j->i].early)
			ctl_expect(j->ctl, "sent");
		case_fd = accept_case(j->listener, j->mode);
		CASES[j->i].server(case_fd, j->mode, j->seed, j->ctl, j->out, sizeof(j->out));
	} else {
		case_fd = connect_case(j->host, j->port, j->mode);
		CASES[j->i].client(case_fd, j->mode, j->seed, j->ctl, j->out, sizeof(j->out));
	}
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "serve")) {
		signal(SIGPIPE, SIG_IGN);
		serve(atoi(argv[2]));
		return 0;
	}
	if (argc >= 5 && !strcmp(argv[1], "run")) {
		/* N iterations, or iterations FROM to TO (exclusive): the seeds
		 * follow the iteration, so shards run in parallel cover
		 * different ones. */
		int first = 0, end = 0;

		if (sscanf(argv[4], "%d:%d", &first, &end) != 2) {
			first = 0;
			end = atoi(argv[4]);
		}
		return run(argv[2], atoi(argv[3]), first, end, argc - 5, argv + 5);
	}
	fprintf(stderr, "usage: compat serve PORT | compat run HOST PORT N|FROM:TO [CASE ...]\n");
	return 2;
}
