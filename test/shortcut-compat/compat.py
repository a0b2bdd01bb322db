"""Socket compatibility suite for the same-node shortcut (Python twin of
compat.c: same cases, same protocol, same transcript).

Every case runs one TCP connection between a server and a client the way a
plain TCP application would, blocking (b) or non-blocking (n), and checks
what plain TCP guarantees. Nothing is retried: a blocking call that fails
fails the case, and a non-blocking call that returns EAGAIN after poll()
said the socket was ready fails it too.

  compat.py serve PORT                 control on PORT, blocking listener on
                                       PORT+1, non-blocking one on PORT+2;
                                       prints "ready"
  compat.py run HOST PORT N [CASE ...] runs every case (or CASE, CASE:b,
                                       CASE:n) N times (N may be FROM:TO,
                                       iterations FROM to TO exclusive: the
                                       seeds follow the iteration, so shards
                                       cover different ones); one line per
                                       case and mode: "CASE MODE count
                                       server=... client=..." per distinct
                                       outcome, then "total T failed F"

A listener's mode is the mode of what it accepts (a blocking listener
accept()s blocking sockets, the other accept4(SOCK_NONBLOCK)s), like the
servers real applications write. The control connection is blocking.
Outcomes carry no timing and no seed, so a run with the shortcut and one
without it must print the same lines.
"""
import ctypes, errno, fcntl, hashlib, os, random, select, signal, socket, struct, sys, termios, time

SIOCOUTQ = termios.TIOCOUTQ
FIONREAD = termios.FIONREAD
WAIT_S = 10  # the longest a case waits for its peer


class Fail(Exception):
    pass


def pattern(n, seed):
    return random.Random(seed).randbytes(n)


def inq(s):
    return struct.unpack("i", fcntl.ioctl(s.fileno(), FIONREAD, b"\0" * 4))[0]


def acked(s):
    """Waits until the peer's TCP has everything we sent (SIOCOUTQ 0): then
    it is in the peer's receive queue and the peer's observations are
    deterministic. A condition, not a retry."""
    deadline = time.monotonic() + WAIT_S
    while struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCOUTQ, b"\0" * 4))[0]:
        if time.monotonic() > deadline:
            raise Fail("data not acknowledged")
        time.sleep(0.001)


def ready(s, ev, ms=WAIT_S * 1000):
    p = select.poll()
    p.register(s, ev)
    return bool(p.poll(ms))


def wait_readable(s):
    if not ready(s, select.POLLIN):
        raise Fail("not readable")


def recv(s, mode, n, flags=0):
    """One read as the application would do it; never retried."""
    if mode == "n":
        wait_readable(s)
        try:
            return s.recv(n, flags)
        except BlockingIOError:
            raise Fail("EAGAIN after POLLIN")
    return s.recv(n, flags)


def recv_exact(s, mode, n):
    buf = b""
    while len(buf) < n:
        b = recv(s, mode, n - len(buf))
        if not b:
            raise Fail(f"EOF after {len(buf)} of {n}")
        buf += b
    return buf


def read_to_eof(s, mode, chunk=65536, pause=0.0):
    h, n = hashlib.sha256(), 0
    while True:
        b = recv(s, mode, chunk)
        if not b:
            return n, h.hexdigest()
        n += len(b)
        h.update(b)
        if pause:
            time.sleep(pause)


def send_all(s, mode, data):
    if mode == "b":
        s.sendall(data)
        return
    view = memoryview(data)
    while view:
        try:
            view = view[s.send(view):]
        except BlockingIOError:
            if not ready(s, select.POLLOUT):
                raise Fail("not writable")


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Ctl:
    """Line messages between the two sides, next to the connection under
    test. When one side fails a case, the other must not wait for a message
    that will never come: the client says "abort", the server's "result"
    ends the case whatever the client was waiting for."""

    def __init__(self, s):
        self.s, self.buf, self.result = s, b"", None

    def send(self, *words):
        self.s.sendall((" ".join(str(w) for w in words) + "\n").encode())

    def line(self):
        while b"\n" not in self.buf:
            b = self.s.recv(4096)
            if not b:
                raise EOFError
            self.buf += b
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def expect(self, word):
        got = self.line()
        if got.startswith("result "):
            self.result = got
            raise Fail("the server ended the case")
        if got != word:
            raise Fail(f"control: expected {word}, got {got}")

    def case_result(self, client_failed):
        if client_failed and not self.result:
            self.send("abort")
        got, self.result = self.result, None
        while not got:
            line = self.line()
            got = line if line.startswith("result ") else None
        return got[7:]


# ---- the cases: (server side, client side); each returns its outcome ----

CASES = {}


def case(name, modes="bn"):
    def reg(fns):
        CASES[name] = (fns, modes)
        return fns
    return reg


def stream_server(c, mode, seed, ctl):
    ctl.send("ready")
    n, digest = read_to_eof(c, mode)
    ok = digest == sha(pattern(1 << 20, seed))
    send_all(c, mode, pattern(1 << 20, seed + 1))
    c.close()
    return f"read {n} {'intact' if ok else 'CORRUPT'}"


def stream_client(s, mode, seed, ctl):
    ctl.expect("ready")
    data, rnd, off = pattern(1 << 20, seed), random.Random(seed), 0
    while off < len(data):
        k = rnd.randint(1, 65536)
        send_all(s, mode, data[off:off + k])
        off += k
    s.shutdown(socket.SHUT_WR)
    n, digest = read_to_eof(s, mode)
    return f"read {n} {'intact' if digest == sha(pattern(1 << 20, seed + 1)) else 'CORRUPT'}"


case("stream")((stream_server, stream_client))


def halfclose_server(c, mode, seed, ctl):
    ctl.send("ready")
    n, digest = read_to_eof(c, mode)
    # Let the client sit in recv() while its FIN is acknowledged.
    time.sleep(0.05)
    send_all(c, mode, pattern(3000, seed + 1))
    c.close()
    return f"read {n} {'intact' if digest == sha(pattern(1000, seed)) else 'CORRUPT'}"


def halfclose_client(s, mode, seed, ctl):
    ctl.expect("ready")
    send_all(s, mode, pattern(1000, seed))
    s.shutdown(socket.SHUT_WR)
    n, digest = read_to_eof(s, mode)
    return f"read {n} then EOF {'intact' if digest == sha(pattern(3000, seed + 1)) else 'CORRUPT'}"


case("halfclose")((halfclose_server, halfclose_client))


def pingpong_server(c, mode, seed, ctl):
    ctl.send("ready")
    for _ in range(200):
        send_all(c, mode, recv_exact(c, mode, 64))
    return "echoed 200"


def pingpong_client(s, mode, seed, ctl):
    ctl.expect("ready")
    data = pattern(64 * 200, seed)
    for i in range(200):
        m = data[64 * i:64 * (i + 1)]
        send_all(s, mode, m)
        if recv_exact(s, mode, 64) != m:
            raise Fail(f"round {i}: wrong echo")
    return "200 round trips"


case("pingpong")((pingpong_server, pingpong_client))


def peek_server(c, mode, seed, ctl):
    ctl.send("ready")
    ctl.expect("sent")
    data = pattern(64, seed)
    a = c.recv(4, socket.MSG_PEEK)
    b = c.recv(64, socket.MSG_PEEK)
    d = c.recv(64)
    return f"peek4 {a == data[:4]} peek64 {len(b)} {b == data} read {len(d)} {d == data}"


def peek_client(s, mode, seed, ctl):
    ctl.expect("ready")
    send_all(s, mode, pattern(64, seed))
    acked(s)
    ctl.send("sent")
    return "sent 64"


case("peek")((peek_server, peek_client))


def rcvlowat_server(c, mode, seed, ctl):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1000)
    ctl.send("ready")
    ctl.expect("sent")
    first = ready(c, select.POLLIN, 200)
    ctl.send("more")
    ctl.expect("sent")
    second = ready(c, select.POLLIN)
    d = c.recv(4096)
    return f"readable at 500: {first}, at 1100: {second}, read {len(d)}"


def rcvlowat_client(s, mode, seed, ctl):
    ctl.expect("ready")
    send_all(s, mode, pattern(500, seed))
    acked(s)
    ctl.send("sent")
    ctl.expect("more")
    send_all(s, mode, pattern(600, seed + 1))
    acked(s)
    ctl.send("sent")
    return "sent 500+600"


case("rcvlowat")((rcvlowat_server, rcvlowat_client))


def fionread_server(c, mode, seed, ctl):
    ctl.send("ready")
    ctl.expect("sent")
    a = inq(c)
    d = c.recv(1000)
    b = inq(c)
    return f"fionread {a}, read {len(d)}, fionread {b}"


def fionread_client(s, mode, seed, ctl):
    ctl.expect("ready")
    send_all(s, mode, pattern(3000, seed))
    acked(s)
    ctl.send("sent")
    return "sent 3000"


case("fionread")((fionread_server, fionread_client))


def waitall_server(c, mode, seed, ctl):
    ctl.send("ready")
    if mode == "n":
        ctl.expect("sent")
    d = c.recv(1000, socket.MSG_WAITALL)
    return f"read {len(d)} {d == pattern(1000, seed)[:len(d)]}"


def waitall_client(s, mode, seed, ctl):
    ctl.expect("ready")
    data = pattern(1000, seed)
    if mode == "n":
        # Non-blocking, MSG_WAITALL gives what is there.
        send_all(s, mode, data[:100])
        acked(s)
        ctl.send("sent")
        return "sent 100"
    for i in range(10):
        send_all(s, mode, data[100 * i:100 * (i + 1)])
        time.sleep(0.01)
    return "sent 10x100"


case("waitall")((waitall_server, waitall_client))


def rcvtimeo_server(c, mode, seed, ctl):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 300000))
    ctl.send("ready")
    t0 = time.monotonic()
    try:
        first = f"read {len(c.recv(100))}"
    except BlockingIOError:
        waited = time.monotonic() - t0 >= 0.29
        # Blocking: EAGAIN only once the timeout ran out; non-blocking: at once.
        first = "EAGAIN " + ("after the timeout" if waited else "before the timeout") if mode == "b" else \
            "EAGAIN " + ("after a wait" if waited else "at once")
    ctl.send("timedout")
    ctl.expect("sent")
    d = c.recv(100)
    return f"{first}, then read {len(d)}"


def rcvtimeo_client(s, mode, seed, ctl):
    ctl.expect("ready")
    ctl.expect("timedout")
    send_all(s, mode, pattern(10, seed))
    acked(s)
    ctl.send("sent")
    return "sent 10"


case("rcvtimeo")((rcvtimeo_server, rcvtimeo_client))


SPLICE_N = 256 << 10


def splice_server(c, mode, seed, ctl):
    r, w = os.pipe()
    h, n = hashlib.sha256(), 0
    ctl.send("ready")
    try:
        while n < SPLICE_N:
            if mode == "n":
                wait_readable(c)
                try:
                    k = os.splice(c.fileno(), w, 65536, flags=os.SPLICE_F_NONBLOCK)
                except BlockingIOError:
                    raise Fail(f"splice EAGAIN after POLLIN, {n} of {SPLICE_N} read")
            else:
                k = os.splice(c.fileno(), w, 65536)
            if k == 0:
                raise Fail(f"splice EOF after {n} of {SPLICE_N}")
            while k:
                b = os.read(r, k)
                h.update(b)
                n += len(b)
                k -= len(b)
    finally:
        os.close(r)
        os.close(w)
    return f"spliced {n} {'intact' if h.hexdigest() == sha(pattern(SPLICE_N, seed)) else 'CORRUPT'}"


def splice_client(s, mode, seed, ctl):
    ctl.expect("ready")
    r, w = os.pipe()
    data = pattern(SPLICE_N, seed)
    try:
        for off in range(0, SPLICE_N, 32768):
            left = os.write(w, data[off:off + 32768])  # the pipe holds 64 KiB: written whole
            while left:
                try:
                    left -= os.splice(r, s.fileno(), left)
                except BlockingIOError:
                    if mode == "b" or not ready(s, select.POLLOUT):
                        raise
    finally:
        os.close(r)
        os.close(w)
    return f"spliced {SPLICE_N}"


case("splice")((splice_server, splice_client))


def closeunread_server(c, mode, seed, ctl):
    ctl.send("ready")
    ctl.expect("sent")
    c.close()  # 1000 bytes unread: TCP answers with a reset
    ctl.send("closed")
    return "closed with 1000 unread"


def closeunread_client(s, mode, seed, ctl):
    ctl.expect("ready")
    send_all(s, mode, pattern(1000, seed))
    acked(s)
    ctl.send("sent")
    ctl.expect("closed")
    try:
        d = recv(s, mode, 100)
        return f"read {len(d)}" if d else "EOF"
    except ConnectionResetError:
        return "ECONNRESET"


case("closeunread")((closeunread_server, closeunread_client))


SLOW_N = 8 << 20


def slowreader_server(c, mode, seed, ctl):
    ctl.send("ready")
    time.sleep(0.2)
    n, digest = read_to_eof(c, mode, chunk=65536, pause=0.002)
    return f"read {n} {'intact' if digest == sha(pattern(SLOW_N, seed)) else 'CORRUPT'}"


def slowreader_client(s, mode, seed, ctl):
    ctl.expect("ready")
    data = pattern(SLOW_N, seed)
    for off in range(0, SLOW_N, 256 << 10):
        send_all(s, mode, data[off:off + (256 << 10)])
    s.shutdown(socket.SHUT_WR)
    return f"sent {SLOW_N}"


case("slowreader")((slowreader_server, slowreader_client))


SMALL_N = 20000


def smallwrites_server(c, mode, seed, ctl):
    ctl.send("ready")
    rnd = random.Random(seed)
    total = sum(rnd.randint(1, 50) for _ in range(SMALL_N))
    n, digest = read_to_eof(c, mode, chunk=4096)
    return f"read all {'intact' if n == total and digest == sha(pattern(total, seed)) else 'CORRUPT'}"


def smallwrites_client(s, mode, seed, ctl):
    ctl.expect("ready")
    rnd = random.Random(seed)
    sizes = [rnd.randint(1, 50) for _ in range(SMALL_N)]
    data, off = pattern(sum(sizes), seed), 0
    for k in sizes:
        send_all(s, mode, data[off:off + k])
        off += k
    s.shutdown(socket.SHUT_WR)
    return f"{SMALL_N} writes"


case("smallwrites")((smallwrites_server, smallwrites_client))


def rst_server(c, mode, seed, ctl):
    ctl.send("ready")
    d = recv_exact(c, mode, 100)
    ctl.send("read")
    # Now block (or poll) while the peer resets.
    try:
        b = recv(c, mode, 100)
        return f"read 100, then {'EOF' if not b else 'data'}"
    except ConnectionResetError:
        return f"read {len(d)}, then ECONNRESET"


def rst_client(s, mode, seed, ctl):
    ctl.expect("ready")
    send_all(s, mode, pattern(100, seed))
    ctl.expect("read")
    time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return "reset"


case("rst")((rst_server, rst_client))


def signal_server(c, mode, seed, ctl):
    signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
    try:
        ctl.send("ready")
        d = recv_exact(c, mode, 100)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
    return f"read {len(d)} across signals"


def signal_client(s, mode, seed, ctl):
    ctl.expect("ready")
    time.sleep(0.2)
    send_all(s, mode, pattern(100, seed))
    return "sent 100"


case("signal", "b")((signal_server, signal_client))


def early_server(c, mode, seed, ctl):
    # Accepted after the data came: the client wrote right after connect().
    a = inq(c)
    d = recv_exact(c, mode, 1000)
    return f"fionread {a}, read {len(d)} {d == pattern(1000, seed)}"


def early_client(s, mode, seed, ctl):
    send_all(s, mode, pattern(1000, seed))
    acked(s)
    ctl.send("sent")
    return "sent 1000 before accept"


case("early")((early_server, early_client))
EARLY = {"early"}


# ---- running ---------------------------------------------------------------

def listen(port, nonblocking):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.setblocking(not nonblocking)  # before listen(), as event loops do
    s.listen(64)
    return s


_libc = ctypes.CDLL(None, use_errno=True)


def accept(listener, mode):
    if mode == "n":
        # accept4(SOCK_NONBLOCK), as compat.c and event loops do.
        if not ready(listener, select.POLLIN):
            raise Fail("no connection")
        fd = _libc.accept4(listener.fileno(), None, None, socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        if fd < 0:
            raise Fail(f"accept: {os.strerror(ctypes.get_errno())}")
        c = socket.socket(fileno=fd)
        c.setblocking(False)  # Python's own view of the descriptor
        return c
    fd, _ = listener._accept()
    return socket.socket(fileno=fd)


def serve(port):
    ctl_l = listen(port, False)
    listeners = {"b": listen(port + 1, False), "n": listen(port + 2, True)}
    print("ready", flush=True)
    while True:
        cs, _ = ctl_l.accept()
        ctl = Ctl(cs)
        try:
            while True:
                line = ctl.line()
                if line == "abort":
                    continue  # the case had ended already
                _, name, mode, seed = line.split()
                fns, _ = CASES[name]
                ctl.send("accepting")
                c = None
                try:
                    if name in EARLY:
                        ctl.expect("sent")
                    c = accept(listeners[mode], mode)
                    out = fns[0](c, mode, int(seed), ctl)
                except Fail as e:
                    out = f"FAIL {e}"
                except OSError as e:
                    out = f"FAIL {errno.errorcode.get(e.errno, e.errno)}: {e}"
                finally:
                    if c:
                        c.close()
                ctl.send("result", out)
        except EOFError:
            cs.close()


def connect(host, port, mode):
    s = socket.socket()
    if mode == "n":
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS) or not ready(s, select.POLLOUT):
            raise Fail(f"connect: {err}")
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise Fail(f"connect: {os.strerror(err)}")
    else:
        s.connect((host, port))
    return s


def run(host, port, iterations, only):
    first, _, end = iterations.rpartition(":")
    iterations = range(int(first or 0), int(end))
    cs = socket.create_connection((host, port))
    ctl = Ctl(cs)
    todo = []
    for name, (_, modes) in CASES.items():
        for mode in modes:
            if not only or name in only or f"{name}:{mode}" in only:
                todo.append((name, mode))
    seen, total, failed = {}, 0, 0
    for it in iterations:
        for i, (name, mode) in enumerate(todo):
            seed = it * 1000 + i * 7
            ctl.send("case", name, mode, seed)
            ctl.expect("accepting")
            s = None
            try:
                s = connect(host, port + (1 if mode == "b" else 2), mode)
                out = CASES[name][0][1](s, mode, seed, ctl)
            except Fail as e:
                out = f"FAIL {e}"
            except OSError as e:
                out = f"FAIL {errno.errorcode.get(e.errno, e.errno)}: {e}"
            finally:
                if s:
                    s.close()
            line = f"server={ctl.case_result(out.startswith('FAIL'))} client={out}"
            key = (name, mode, line)
            seen[key] = seen.get(key, 0) + 1
            total += 1
            failed += "FAIL" in line
    for (name, mode, line), n in seen.items():
        print(name, mode, n, line)
    print("total", total, "failed", failed, flush=True)
    return failed


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "serve":
        serve(int(a[1]))
    else:
        sys.exit(1 if run(a[1], int(a[2]), a[3], set(a[4:])) else 0)
