/*
 * ebmesh-loadgen: open-loop HTTP/1.1 load generator.
 *
 * Request i has a scheduled send time t0 + i/R, and request i belongs to
 * connection i mod N, so each connection carries an even share of the rate.
 * Latency runs from the scheduled time, not from the moment the bytes left:
 * when a connection is still busy with an earlier request, the next one
 * waits, and that wait is part of its latency. A server that stalls thus
 * shows up in the percentiles of every request scheduled behind the stall
 * (the "coordinated omission" a closed-loop client hides).
 *
 * One thread, one epoll set, edge-triggered sockets, and one timerfd armed
 * at the next scheduled send with timer slack lowered to a microsecond, so
 * sends leave on time without spinning a core.
 *
 * --rate 0 switches to closed loop: each connection sends as soon as its
 * previous response is in, for saturation throughput.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "resp.h"

#define LOADGEN_VERSION "1"
#define MAX_CONNECTIONS 10000
#define MAX_HEADERS 32
#define TIMER_TAG UINT32_MAX
#define HOUSEKEEP_MS 5

enum conn_state { C_IDLE, C_PRECONNECT, C_CONNECTING, C_WRITING, C_READING, C_DONE };
enum err_kind { E_CONNECT, E_WRITE, E_READ, E_PARSE, E_CLOSED, E_KINDS };
static const char *const err_names[E_KINDS] = { "connect", "write", "read", "parse", "closed" };

struct conn {
	int fd;
	uint32_t gen; /* tells a stale epoll event for a closed fd from a live one */
	enum conn_state state;
	uint64_t next_seq; /* open loop: the connection's next request, in its own numbering */
	int64_t sched;     /* scheduled send time of the request in flight */
	int measured;
	size_t woff;
	int kicked;
	struct resp resp;
};

struct options {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} addr;
	socklen_t addrlen;
	char url[2048];
	char host[300];
	char path[2048];
	char method[16];
	const char *headers[MAX_HEADERS];
	int nheaders;
	double rate;
	double duration_s;
	double warmup_s;
	double timeout_ms;
	int connections;
	int connect_each;
	uint64_t max_requests;
};

struct stats {
	uint64_t scheduled, sent, completed, errors, timeouts;
	uint64_t err[E_KINDS];
	uint64_t status[600];
	uint64_t status_other;
	uint64_t bytes_read;
	uint64_t reconnects;
};

static struct options opt;
static struct stats st;
static struct hist lat_hist, timer_lag_hist;
static struct conn *conns;
static int epfd = -1, tfd = -1;
static char *req_buf;
static size_t req_len;
static int64_t t0, t_meas, t_end;
static double period_ns; /* 0 in closed loop */
static uint64_t dispatch_i;
static uint64_t issued;
static int *kick_list;
static int nkick;
static int active; /* connections that still have requests to send */
static int schedule_over;
static char rbuf[65536];

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__attribute__((noreturn)) static void die_usage(const char *msg)
{
	fprintf(stderr, "ebmesh-loadgen: %s\n", msg);
	fprintf(stderr,
		"usage: ebmesh-loadgen --url http://IPv4:PORT/path|http://[IPv6]:PORT/path\n"
		"         [--rate R] [--duration S]\n"
		"         [--connections N] [--warmup S] [--timeout MS] [--connect-each]\n"
		"         [--max-requests N] [--method M] [--header 'K: V']...\n"
		"  --rate 0 runs closed loop (as fast as the connections allow)\n");
	exit(2);
}

static double parse_num(const char *name, const char *s, double lo, double hi)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi) {
		char msg[256];
		snprintf(msg, sizeof(msg), "--%s must be a number in [%g, %g], got '%s'", name, lo, hi, s);
		die_usage(msg);
	}
	return v;
}

/* Only numeric hosts, IPv4 or IPv6 in brackets (http://[fd00::1]:80/): the
 * tool never resolves names, so where the load goes is exactly what the
 * caller wrote. */
static void parse_url(const char *url)
{
	const char *p = url;
	if (strncmp(p, "http://", 7) != 0)
		die_usage("--url must start with http://");
	p += 7;
	const char *slash = strchr(p, '/');
	size_t hostport_len = slash ? (size_t)(slash - p) : strlen(p);
	if (hostport_len == 0 || hostport_len >= sizeof(opt.host))
		die_usage("--url has an empty or too long host");
	memcpy(opt.host, p, hostport_len);
	opt.host[hostport_len] = '\0';
	snprintf(opt.path, sizeof(opt.path), "%s", slash ? slash : "/");

	char ip[64];
	unsigned port = 80;
	const char *start = opt.host;
	const char *colon;
	size_t iplen;
	if (*start == '[') {
		const char *close = strchr(start, ']');
		if (!close || (close[1] != '\0' && close[1] != ':'))
			die_usage("--url IPv6 host must be [address] or [address]:port");
		start++;
		iplen = (size_t)(close - start);
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strchr(opt.host, ':');
		iplen = colon ? (size_t)(colon - opt.host) : strlen(opt.host);
	}
	if (iplen >= sizeof(ip))
		die_usage("--url host is too long");
	memcpy(ip, start, iplen);
	ip[iplen] = '\0';
	if (colon) {
		char *end;
		unsigned long v = strtoul(colon + 1, &end, 10);
		if (*end != '\0' || v == 0 || v > 65535)
			die_usage("--url port must be 1..65535");
		port = (unsigned)v;
	}
	memset(&opt.addr, 0, sizeof(opt.addr));
	if (*opt.host == '[') {
		opt.addr.in6.sin6_family = AF_INET6;
		opt.addr.in6.sin6_port = htons((uint16_t)port);
		opt.addrlen = sizeof(opt.addr.in6);
		if (inet_pton(AF_INET6, ip, &opt.addr.in6.sin6_addr) != 1)
			die_usage("--url host must be a numeric IPv6 address in brackets");
	} else {
		opt.addr.in4.sin_family = AF_INET;
		opt.addr.in4.sin_port = htons((uint16_t)port);
		opt.addrlen = sizeof(opt.addr.in4);
		if (inet_pton(AF_INET, ip, &opt.addr.in4.sin_addr) != 1)
			die_usage("--url host must be a numeric IPv4 address (or IPv6 in brackets)");
	}
	snprintf(opt.url, sizeof(opt.url), "%s", url);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, 0, 'u' },
		{ "rate", required_argument, 0, 'r' },
		{ "duration", required_argument, 0, 'd' },
		{ "connections", required_argument, 0, 'c' },
		{ "warmup", required_argument, 0, 'w' },
		{ "timeout", required_argument, 0, 't' },
		{ "connect-each", no_argument, 0, 'e' },
		{ "max-requests", required_argument, 0, 'm' },
		{ "method", required_argument, 0, 'M' },
		{ "header", required_argument, 0, 'H' },
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	opt.rate = 1000;
	opt.duration_s = 10;
	opt.warmup_s = 1;
	opt.timeout_ms = 2000;
	opt.connections = 10;
	snprintf(opt.method, sizeof(opt.method), "GET");
	int have_url = 0, c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': parse_url(optarg); have_url = 1; break;
		case 'r': opt.rate = parse_num("rate", optarg, 0, 10e6); break;
		case 'd': opt.duration_s = parse_num("duration", optarg, 0.001, 86400); break;
		case 'c': opt.connections = (int)parse_num("connections", optarg, 1, MAX_CONNECTIONS); break;
		case 'w': opt.warmup_s = parse_num("warmup", optarg, 0, 3600); break;
		case 't': opt.timeout_ms = parse_num("timeout", optarg, 1, 3600e3); break;
		case 'e': opt.connect_each = 1; break;
		case 'm': opt.max_requests = (uint64_t)parse_num("max-requests", optarg, 0, 1e12); break;
		case 'M':
			if (strlen(optarg) == 0 || strlen(optarg) >= sizeof(opt.method) || strpbrk(optarg, " \r\n"))
				die_usage("--method must be one token");
			snprintf(opt.method, sizeof(opt.method), "%s", optarg);
			break;
		case 'H':
			if (opt.nheaders >= MAX_HEADERS)
				die_usage("too many --header");
			if (!strchr(optarg, ':') || strpbrk(optarg, "\r\n"))
				die_usage("--header must look like 'Name: value'");
			opt.headers[opt.nheaders++] = optarg;
			break;
		case 'V':
			printf("ebmesh-loadgen %s (histogram: %d sub-buckets per octave)\n", LOADGEN_VERSION,
			       (int)HIST_HALF);
			exit(0);
		case 'h': die_usage("help");
		default: die_usage("unknown option");
		}
	}
	if (optind < argc)
		die_usage("unexpected argument");
	if (!have_url)
		die_usage("--url is required");
}

static void build_request(void)
{
	int has_host = 0;
	for (int i = 0; i < opt.nheaders; i++)
		if (strncasecmp(opt.headers[i], "host:", 5) == 0)
			has_host = 1;
	size_t cap = 4096 + strlen(opt.path) + strlen(opt.host);
	for (int i = 0; i < opt.nheaders; i++)
		cap += strlen(opt.headers[i]) + 2;
	req_buf = malloc(cap);
	if (!req_buf) {
		perror("malloc");
		exit(1);
	}
	int n = snprintf(req_buf, cap, "%s %s HTTP/1.1\r\n", opt.method, opt.path);
	if (!has_host)
		n += snprintf(req_buf + n, cap - (size_t)n, "Host: %s\r\n", opt.host);
	n += snprintf(req_buf + n, cap - (size_t)n, "User-Agent: ebmesh-loadgen/%s\r\n", LOADGEN_VERSION);
	for (int i = 0; i < opt.nheaders; i++)
		n += snprintf(req_buf + n, cap - (size_t)n, "%s\r\n", opt.headers[i]);
	if (opt.connect_each)
		n += snprintf(req_buf + n, cap - (size_t)n, "Connection: close\r\n");
	n += snprintf(req_buf + n, cap - (size_t)n, "\r\n");
	req_len = (size_t)n;
}

static void kick(int c)
{
	if (!conns[c].kicked) {
		conns[c].kicked = 1;
		kick_list[nkick++] = c;
	}
}

/* The request of connection c is over, whatever its outcome: the
 * connection is free for the next request of its schedule. */
static void next_request(int c)
{
	conns[c].state = C_IDLE;
	conns[c].next_seq++;
	kick(c);
}

static void close_conn(struct conn *k)
{
	if (k->fd < 0)
		return;
	if (opt.connect_each) {
		/* An abortive close keeps TIME_WAIT off the client side; at
		 * thousands of new connections a second, TIME_WAIT would use up
		 * the ephemeral ports within a minute. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(k->fd);
	k->fd = -1;
	k->gen++;
}

/* Starts a non-blocking connect; returns 0 when under way or done. */
static int open_conn(int c)
{
	struct conn *k = &conns[c];
	int fd = socket(opt.addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	k->fd = fd;
	k->gen++;
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = ((uint64_t)k->gen << 32) | (uint32_t)c,
	};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close_conn(k);
		return -1;
	}
	if (connect(fd, &opt.addr.sa, opt.addrlen) < 0 && errno != EINPROGRESS) {
		close_conn(k);
		return -1;
	}
	st.reconnects++;
	return 0;
}

static void count_error(struct conn *k, enum err_kind kind)
{
	if (k->measured) {
		st.errors++;
		st.err[kind]++;
	}
}

/* The request in flight is over (error or timeout): drop the connection
 * because its byte stream can no longer be trusted, and move on. */
static void abandon(int c)
{
	struct conn *k = &conns[c];
	close_conn(k);
	next_request(c);
}

static void do_write(int c)
{
	struct conn *k = &conns[c];
	while (k->woff < req_len) {
		ssize_t n = send(k->fd, req_buf + k->woff, req_len - k->woff, MSG_NOSIGNAL);
		if (n > 0) {
			k->woff += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return; /* EPOLLOUT will bring us back */
		count_error(k, E_WRITE);
		abandon(c);
		return;
	}
	k->state = C_READING;
	resp_reset(&k->resp, strcmp(opt.method, "HEAD") == 0);
}

static void begin_request(int c, int64_t sched)
{
	struct conn *k = &conns[c];
	k->sched = sched;
	k->measured = sched >= t_meas && sched < t_end;
	k->woff = 0;
	issued++;
	if (k->measured)
		st.sent++;
	if (k->fd < 0) {
		if (open_conn(c) < 0) {
			count_error(k, E_CONNECT);
			abandon(c);
			return;
		}
		k->state = C_CONNECTING;
		return; /* EPOLLOUT says when the handshake is over */
	}
	k->state = C_WRITING;
	do_write(c);
}

static int64_t sched_of(int c, uint64_t seq)
{
	uint64_t i = (uint64_t)c + seq * (uint64_t)opt.connections;
	return t0 + (int64_t)((double)i * period_ns);
}

static void finish(int c)
{
	conns[c].state = C_DONE;
	active--;
}

/* An idle connection takes its next request if that one is due. Requests
 * already older than the timeout are counted as timeouts without being
 * sent: the client they stand for has given up on them. */
static void try_start(int c, int64_t now)
{
	struct conn *k = &conns[c];
	if (k->state != C_IDLE)
		return;
	int64_t limit_ns = (int64_t)(opt.timeout_ms * 1e6);
	for (;;) {
		if (opt.max_requests && issued >= opt.max_requests) {
			finish(c);
			return;
		}
		if (period_ns == 0) {
			if (now >= t_end) {
				finish(c);
				return;
			}
			begin_request(c, now);
			return;
		}
		int64_t s = sched_of(c, k->next_seq);
		if (s >= t_end) {
			finish(c);
			return;
		}
		if (s > now)
			return;
		int measured = s >= t_meas;
		if (measured)
			st.scheduled++;
		if (now - s > limit_ns) {
			if (measured)
				st.timeouts++;
			issued++;
			k->next_seq++;
			continue;
		}
		begin_request(c, s);
		return;
	}
}

static void complete(int c, int64_t now)
{
	struct conn *k = &conns[c];
	if (k->measured) {
		st.completed++;
		int s = k->resp.status;
		if (s >= 0 && s < 600)
			st.status[s]++;
		else
			st.status_other++;
		hist_record(&lat_hist, (uint64_t)(now - k->sched));
	}
	if (opt.connect_each || k->resp.server_closes)
		close_conn(k);
	next_request(c);
}

static void do_read(int c)
{
	struct conn *k = &conns[c];
	for (;;) {
		ssize_t n = recv(k->fd, rbuf, sizeof(rbuf), 0);
		if (n > 0) {
			st.bytes_read += (uint64_t)n;
			if (k->state != C_READING)
				continue; /* bytes nobody asked for: ignore */
			size_t used = 0;
			enum resp_result r = resp_feed(&k->resp, rbuf, (size_t)n, &used);
			if (r == RESP_DONE) {
				complete(c, now_ns());
				if (k->fd < 0)
					return;
			} else if (r == RESP_ERROR) {
				count_error(k, E_PARSE);
				abandon(c);
				return;
			}
			/* A short read drained the socket; bytes that come later raise
			 * a new edge, so the extra recv() that would say EAGAIN is
			 * saved (one syscall per response). */
			if ((size_t)n < sizeof(rbuf))
				return;
			continue;
		}
		if (n == 0) {
			if (k->state == C_READING) {
				if (resp_eof(&k->resp) == RESP_DONE) {
					k->resp.server_closes = 1;
					complete(c, now_ns());
				} else {
					count_error(k, E_CLOSED);
					abandon(c);
				}
				return;
			}
			/* The server closed an idle keep-alive connection: reconnect
			 * lazily at the next request. */
			close_conn(k);
			return;
		}
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (k->state == C_READING) {
			count_error(k, E_READ);
			abandon(c);
		} else {
			close_conn(k);
		}
		return;
	}
}

static int socket_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static void on_event(int c, uint32_t gen, uint32_t ev)
{
	struct conn *k = &conns[c];
	if (k->fd < 0 || gen != k->gen)
		return;
	if (k->state == C_PRECONNECT) {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
			if (socket_error(k->fd) != 0)
				close_conn(k);
			k->state = C_IDLE;
		}
		return;
	}
	if (k->state == C_CONNECTING) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (socket_error(k->fd) != 0) {
			count_error(k, E_CONNECT);
			abandon(c);
			return;
		}
		k->state = C_WRITING;
		do_write(c);
		if (k->state != C_READING)
			return;
	} else if (k->state == C_WRITING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		do_write(c);
		if (k->state != C_READING)
			return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		do_read(c);
}

static void arm_timer(int64_t at)
{
	struct itimerspec its = { 0 };
	if (at <= 0) {
		its.it_value.tv_sec = 0;
		its.it_value.tv_nsec = 0; /* disarm */
	} else {
		its.it_value.tv_sec = at / 1000000000LL;
		its.it_value.tv_nsec = at % 1000000000LL;
	}
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Walks the global schedule up to now, offering each due request to its
 * connection; a busy connection keeps it queued and picks it up when its
 * current response is in. */
static void dispatch(int64_t now)
{
	for (;;) {
		int64_t s = t0 + (int64_t)((double)dispatch_i * period_ns);
		if (s >= t_end) {
			arm_timer(0);
			if (!schedule_over) {
				/* Connections with nothing left to send are done now;
				 * busy ones finish when their queue drains. */
				schedule_over = 1;
				for (int c = 0; c < opt.connections; c++)
					try_start(c, now);
			}
			return;
		}
		if (s > now) {
			arm_timer(s);
			return;
		}
		hist_record(&timer_lag_hist, (uint64_t)(now - s));
		try_start((int)(dispatch_i % (uint64_t)opt.connections), now);
		dispatch_i++;
	}
}

static void run_kicks(int64_t now)
{
	while (nkick > 0) {
		int c = kick_list[--nkick];
		conns[c].kicked = 0;
		try_start(c, now);
	}
}

static void housekeep(int64_t now)
{
	int64_t limit_ns = (int64_t)(opt.timeout_ms * 1e6);
	for (int c = 0; c < opt.connections; c++) {
		struct conn *k = &conns[c];
		if (k->state != C_CONNECTING && k->state != C_WRITING && k->state != C_READING)
			continue;
		if (now - k->sched > limit_ns) {
			if (k->measured)
				st.timeouts++;
			abandon(c);
		}
	}
}

/* Keep-alive connections are opened before the clock starts, so the first
 * requests measure the server, not the handshakes. */
static void preconnect(void)
{
	if (opt.connect_each)
		return;
	int64_t deadline = now_ns() + (int64_t)(opt.timeout_ms * 1e6);
	int pending = 0;
	for (int c = 0; c < opt.connections; c++) {
		if (open_conn(c) == 0) {
			conns[c].state = C_PRECONNECT;
			pending++;
		}
	}
	struct epoll_event evs[256];
	while (pending > 0 && now_ns() < deadline) {
		int n = epoll_wait(epfd, evs, 256, 10);
		for (int i = 0; i < n; i++) {
			uint32_t c = (uint32_t)evs[i].data.u64;
			if (c == TIMER_TAG)
				continue;
			if (conns[c].state == C_PRECONNECT) {
				on_event((int)c, (uint32_t)(evs[i].data.u64 >> 32), evs[i].events);
				if (conns[c].state != C_PRECONNECT)
					pending--;
			}
		}
	}
	for (int c = 0; c < opt.connections; c++) {
		if (conns[c].state == C_PRECONNECT) {
			close_conn(&conns[c]);
			conns[c].state = C_IDLE;
		}
	}
	st.reconnects = 0;
}

static void print_json(double elapsed_s, struct rusage *ru)
{
	double achieved = st.completed / opt.duration_s;
	int open_loop = period_ns > 0;
	int below = open_loop && achieved < 0.95 * opt.rate;
	printf("{\"tool\":\"ebmesh-loadgen\",\"version\":%s,", LOADGEN_VERSION);
	printf("\"settings\":{\"url\":\"");
	for (const char *p = opt.url; *p; p++) {
		if (*p == '"' || *p == '\\')
			putchar('\\');
		putchar(*p);
	}
	printf("\",\"mode\":\"%s\",\"rate\":%.3f,\"duration_s\":%.3f,\"warmup_s\":%.3f,"
	       "\"connections\":%d,\"timeout_ms\":%.3f,\"connect_each\":%s,\"max_requests\":%llu},",
	       open_loop ? "open" : "closed", opt.rate, opt.duration_s, opt.warmup_s, opt.connections,
	       opt.timeout_ms, opt.connect_each ? "true" : "false", (unsigned long long)opt.max_requests);
	printf("\"elapsed_s\":%.6f,\"achieved_rate\":%.3f,\"below_target\":%s,", elapsed_s, achieved,
	       below ? "true" : "false");
	printf("\"requests\":{\"scheduled\":%llu,\"sent\":%llu,\"completed\":%llu,\"errors\":%llu,"
	       "\"timeouts\":%llu},",
	       (unsigned long long)(open_loop ? st.scheduled : st.sent), (unsigned long long)st.sent,
	       (unsigned long long)st.completed, (unsigned long long)st.errors,
	       (unsigned long long)st.timeouts);
	printf("\"errors\":{");
	for (int i = 0; i < E_KINDS; i++)
		printf("%s\"%s\":%llu", i ? "," : "", err_names[i], (unsigned long long)st.err[i]);
	printf("},\"status\":{");
	int first = 1;
	for (int s = 0; s < 600; s++) {
		if (!st.status[s])
			continue;
		printf("%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)st.status[s]);
		first = 0;
	}
	if (st.status_other)
		printf("%s\"other\":%llu", first ? "" : ",", (unsigned long long)st.status_other);
	printf("},");
	const struct hist *h = &lat_hist;
	printf("\"latency_us\":{\"count\":%llu,\"min\":%.3f,\"mean\":%.3f,\"stdev\":%.3f,\"p50\":%.3f,"
	       "\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
	       (unsigned long long)h->total, h->total ? h->min_ns / 1e3 : 0, hist_mean(h) / 1e3,
	       hist_stdev(h) / 1e3, hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3,
	       hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3, h->max_ns / 1e3);
	static const double dist[] = { 0,    10,   20,    30,    40,    50,     60,    70,
				       75,   80,   85,    90,    95,    97.5,   99,    99.5,
				       99.9, 99.95, 99.99, 99.995, 99.999, 100 };
	printf("\"distribution\":[");
	for (size_t i = 0; i < sizeof(dist) / sizeof(dist[0]); i++)
		printf("%s[%g,%.3f]", i ? "," : "", dist[i], hist_percentile(h, dist[i]) / 1e3);
	printf("],");
	const struct hist *g = &timer_lag_hist;
	printf("\"timer_lag_us\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},", hist_percentile(g, 50) / 1e3,
	       hist_percentile(g, 99) / 1e3, g->max_ns / 1e3);
	printf("\"bytes_read\":%llu,\"connects\":%llu,", (unsigned long long)st.bytes_read,
	       (unsigned long long)st.reconnects);
	printf("\"cpu\":{\"user_s\":%.6f,\"sys_s\":%.6f}}\n",
	       ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6,
	       ru->ru_stime.tv_sec + ru->ru_stime.tv_usec / 1e6);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	build_request();
	signal(SIGPIPE, SIG_IGN);
	/* Default slack (50 µs) would be added to every scheduled send. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	hist_init(&lat_hist);
	hist_init(&timer_lag_hist);
	conns = calloc((size_t)opt.connections, sizeof(*conns));
	kick_list = calloc((size_t)opt.connections, sizeof(int));
	if (!conns || !kick_list) {
		perror("calloc");
		return 1;
	}
	for (int c = 0; c < opt.connections; c++)
		conns[c].fd = -1;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (epfd < 0 || tfd < 0) {
		perror("epoll/timerfd");
		return 1;
	}
	struct epoll_event tev = { .events = EPOLLIN, .data.u64 = TIMER_TAG };
	epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

	preconnect();

	period_ns = opt.rate > 0 ? 1e9 / opt.rate : 0;
	t0 = now_ns();
	t_meas = t0 + (int64_t)(opt.warmup_s * 1e9);
	t_end = t_meas + (int64_t)(opt.duration_s * 1e9);
	/* Everything scheduled before t_end has answered or timed out by then;
	 * the extra second only covers housekeeping granularity. */
	int64_t t_hard = t_end + (int64_t)(opt.timeout_ms * 1e6) + 1000000000LL;
	active = opt.connections;

	if (period_ns > 0) {
		dispatch(t0);
	} else {
		for (int c = 0; c < opt.connections; c++)
			kick(c);
	}

	struct epoll_event evs[512];
	int64_t last_housekeep = t0;
	for (;;) {
		int64_t now = now_ns();
		run_kicks(now);
		if (active == 0 || now >= t_hard)
			break;
		int n = epoll_wait(epfd, evs, 512, HOUSEKEEP_MS);
		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			uint32_t c = (uint32_t)evs[i].data.u64;
			if (c == TIMER_TAG) {
				uint64_t exp;
				ssize_t r = read(tfd, &exp, sizeof(exp));
				(void)r;
				continue;
			}
			on_event((int)c, (uint32_t)(evs[i].data.u64 >> 32), evs[i].events);
		}
		now = now_ns();
		if (period_ns > 0)
			dispatch(now);
		if (now - last_housekeep >= HOUSEKEEP_MS * 1000000LL) {
			housekeep(now);
			last_housekeep = now;
		}
	}

	/* What is still queued or in flight at the hard stop waited longer
	 * than the timeout since t_end, so it counts as timed out. */
	for (int c = 0; c < opt.connections; c++) {
		struct conn *k = &conns[c];
		if (k->state == C_DONE)
			continue;
		if (k->state != C_IDLE && k->measured)
			st.timeouts++;
		if (period_ns > 0) {
			uint64_t seq = k->next_seq + (k->state != C_IDLE);
			for (int64_t s; (s = sched_of(c, seq)) < t_end; seq++)
				if (s >= t_meas) {
					st.scheduled++;
					st.timeouts++;
				}
		}
		close_conn(k);
	}
	double elapsed_s = (double)(now_ns() - t_meas) / 1e9;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	print_json(elapsed_s, &ru);
	return 0;
}
