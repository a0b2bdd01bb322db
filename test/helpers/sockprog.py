"""Socket test program for the same-node shortcut: the cases that break
naive sockmap redirection, each as a server mode and a client mode. Every
server prints "ready" once listening; every run is bounded in time. The
sockets are non-blocking and poll()-driven, as in the event loops the
shortcut carries (it leaves blocking sockets on plain TCP); nothing is
retried. The behaviour of blocking sockets is checked by
test/shortcut-compat.

  serve-echo PORT [HOST]   asyncio echo server (many connections, churn); HOST "" for both families
  serve-halfclose PORT     reads to EOF, then answers sha256 + 3 MiB, closes
  serve-slow PORT          a fixed 2 MiB SO_RCVBUF; sleeps, then reads slowly; prints bytes and sha256
  serve-rst PORT           reads until reset; prints what recv raised
  serve-sendfile PORT FILE sends FILE with os.sendfile, closes
  serve-exact PORT         reads to EOF, answers 5000 bytes (observe's exact case)
  halfclose HOST PORT / slow HOST PORT MIB / rst HOST PORT / sendfile HOST PORT
  echo HOST PORT CONNS BYTES    CONNS connections at once, BYTES each way, checked
  churn HOST PORT N             N short connections one after another
  exact HOST PORT
"""
import asyncio, ctypes, errno, hashlib, os, select, socket, struct, sys, time

WAIT_MS = 60_000


def ready(s, ev):
    p = select.poll()
    p.register(s, ev)
    if not p.poll(WAIT_MS):
        raise TimeoutError("socket not ready")


def recv(s, n):
    """One read, the way an event loop does it: wait until readable, then
    read. Nothing is retried: EAGAIN after poll() said readable is a
    failure."""
    ready(s, select.POLLIN)
    return s.recv(n)


def sendall(s, data):
    view = memoryview(data)
    while view:
        try:
            view = view[s.send(view):]
        except BlockingIOError:
            ready(s, select.POLLOUT)  # a full send buffer: wait for room, as any writer does


def nonblocking(s):
    s.setblocking(False)
    return s


def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.setblocking(False)  # before listen(), as event loops do
    s.listen(1024)
    print("ready", flush=True)
    return s


_libc = ctypes.CDLL(None, use_errno=True)


def accept(listener):
    """accept4(SOCK_NONBLOCK), as nginx, libuv and Go accept: the socket is
    non-blocking from its first instant (Python's accept() gives a blocking
    one, and a write that lands before setblocking(False) keeps that
    connection off the shortcut)."""
    ready(listener, select.POLLIN)
    fd = _libc.accept4(listener.fileno(), None, None, socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return nonblocking(socket.socket(fileno=fd))  # Python's own view of the descriptor


def connect(host, port):
    s = nonblocking(socket.socket())
    err = s.connect_ex((host, port))
    if err not in (0, errno.EINPROGRESS):
        raise OSError(err, os.strerror(err))
    ready(s, select.POLLOUT)
    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))
    return s


def read_all(c, chunk=1 << 20):
    h, n = hashlib.sha256(), 0
    while True:
        b = recv(c, chunk)
        if not b:
            return n, h.hexdigest()
        n += len(b)
        h.update(b)


def pattern(n, seed=0):
    # Deterministic and not trivially compressible: a hash chain.
    out, block, i = bytearray(), hashlib.sha256(str(seed).encode()).digest(), 0
    while len(out) < n:
        block = hashlib.sha256(block + struct.pack("I", i)).digest()
        out += block * 128
        i += 1
    return bytes(out[:n])


def serve_echo(port, host="0.0.0.0"):
    async def handle(r, w):
        try:
            while True:
                b = await r.read(65536)
                if not b:
                    break
                w.write(b)
                await w.drain()
        except ConnectionError:
            pass
        w.close()

    async def main():
        srv = await asyncio.start_server(handle, host, port, backlog=1024)
        print("ready", flush=True)
        await srv.serve_forever()

    asyncio.run(main())


def serve_halfclose(port):
    c = accept(listen(port))
    n, digest = read_all(c)
    sendall(c, digest.encode() + b"\n" + pattern(3 << 20, 1))
    c.close()
    print(n, flush=True)


def halfclose(host, port):
    s = connect(host, port)
    data = pattern(1 << 20, 2)
    sendall(s, data)
    s.shutdown(socket.SHUT_WR)  # our direction ends; theirs goes on
    n, _ = 0, None
    buf = bytearray()
    while True:
        b = recv(s, 1 << 20)
        if not b:
            break
        buf += b
    line, rest = bytes(buf).split(b"\n", 1)
    assert line.decode() == hashlib.sha256(data).hexdigest(), "server's digest of what we sent"
    assert rest == pattern(3 << 20, 1), f"reply after our FIN: {len(rest)} bytes"
    print("ok", len(rest), flush=True)


SLOW_RCVBUF = 2 << 20


def serve_slow(port, delay):
    # A fixed receive buffer (the kernel doubles it, and stops autotuning it)
    # makes the bound the test checks the same on every host: with
    # autotuning it grows up to tcp_rmem's maximum, 32 MiB on newer kernels.
    ls = listen(port)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    c = accept(ls)
    time.sleep(delay)
    h, n = hashlib.sha256(), 0
    while True:
        b = recv(c, 256 << 10)
        if not b:
            break
        n += len(b)
        h.update(b)
        time.sleep(0.004)  # ~64 MiB/s at most: slower than any writer here
    print(n, h.hexdigest(), flush=True)


def slow(host, port, mib):
    data = pattern(mib << 20, 3)
    s = connect(host, port)
    sendall(s, data)
    s.close()
    print(len(data), hashlib.sha256(data).hexdigest(), flush=True)


def serve_rst(port):
    c = accept(listen(port))
    n = 0
    try:
        while True:
            b = recv(c, 65536)
            if not b:
                print("eof", n, flush=True)
                return
            n += len(b)
    except ConnectionResetError:
        print("reset", n, flush=True)


def rst(host, port):
    s = connect(host, port)
    sendall(s, b"r" * 100000)
    time.sleep(0.5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # linger 0: a reset, not a FIN
    print("ok", flush=True)


def serve_sendfile(port, path):
    c = accept(listen(port))
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        off = 0
        while off < size:
            try:
                off += os.sendfile(c.fileno(), f.fileno(), off, size - off)
            except BlockingIOError:
                ready(c, select.POLLOUT)
    c.close()
    print(size, flush=True)


def sendfile_client(host, port):
    s = connect(host, port)
    n, digest = read_all(s)
    print(n, digest, flush=True)


def echo(host, port, conns, size):
    async def one(i):
        r, w = await asyncio.open_connection(host, port)
        data = pattern(size, 100 + i % 7)
        w.write(data)
        await w.drain()
        got = await r.readexactly(size)
        w.close()
        return got == data

    async def main():
        res = await asyncio.gather(*(one(i) for i in range(conns)))
        print(sum(res), conns, flush=True)

    asyncio.run(main())


def churn(host, port, n):
    ok = 0
    for i in range(n):
        s = connect(host, port)
        msg = b"%d" % i
        sendall(s, msg)
        if recv(s, 64) == msg:
            ok += 1
        s.close()
    print(ok, n, flush=True)


def serve_exact(port):
    c = accept(listen(port))
    n, _ = read_all(c)
    sendall(c, b"y" * 5000)
    c.close()
    print(n, flush=True)


def exact(host, port):
    s = connect(host, port)
    sendall(s, b"x" * 100000)
    s.shutdown(socket.SHUT_WR)
    n, _ = read_all(s)
    print(s.getsockname()[1], n, flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    mode = a[0]
    if mode.startswith("serve-"):
        port = int(a[1])
        {
            "serve-echo": lambda: serve_echo(port, *a[2:3]),
            "serve-halfclose": lambda: serve_halfclose(port),
            "serve-slow": lambda: serve_slow(port, float(a[2]) if len(a) > 2 else 1.0),
            "serve-rst": lambda: serve_rst(port),
            "serve-sendfile": lambda: serve_sendfile(port, a[2]),
            "serve-exact": lambda: serve_exact(port),
        }[mode]()
    else:
        host, port = a[1], int(a[2])
        {
            "halfclose": lambda: halfclose(host, port),
            "slow": lambda: slow(host, port, int(a[3])),
            "rst": lambda: rst(host, port),
            "sendfile": lambda: sendfile_client(host, port),
            "echo": lambda: echo(host, port, int(a[3]), int(a[4])),
            "churn": lambda: churn(host, port, int(a[3])),
            "exact": lambda: exact(host, port),
        }[mode]()
