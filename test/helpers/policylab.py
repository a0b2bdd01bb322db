#!/usr/bin/env python3
"""Lab helper for the policy tests (runs inside a workload).

serve PORTS          TCP and UDP servers on each port (comma list); every
                     TCP connection and UDP datagram is answered with "ok".
probe TIMEOUT SPECS  probes every SPEC (ip:port/proto) at once, each bounded by
                     TIMEOUT seconds; prints one JSON object spec -> result
                     ("ok", or the error: "EPERM", "timeout", ...).
hammer IP PORT N DEADLINE STOPFILE  up to N TCP connects to IP:PORT (each
                     bounded), stopping at DEADLINE seconds or once STOPFILE
                     exists; prints "connected=C failed=F".
"""
import errno, json, os, selectors, socket, sys, threading, time


def serve(ports):
    sel = selectors.DefaultSelector()
    for p in ports:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(("0.0.0.0", p)); t.listen(128); t.setblocking(False)
        sel.register(t, selectors.EVENT_READ, "tcp")
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", p)); u.setblocking(False)
        sel.register(u, selectors.EVENT_READ, "udp")
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            try:
                if key.data == "tcp":
                    c, _ = s.accept()
                    try:
                        c.sendall(b"ok")
                    finally:
                        c.close()
                else:
                    _, addr = s.recvfrom(2048)
                    s.sendto(b"ok", addr)
            except OSError:
                pass


def probe_one(spec, timeout, out):
    hostport, proto = spec.split("/")
    host, port = hostport.rsplit(":", 1)
    kind = socket.SOCK_STREAM if proto.upper() == "TCP" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(timeout)
    try:
        if kind == socket.SOCK_STREAM:
            s.connect((host, int(port)))
            data = s.recv(16)
        else:
            s.sendto(b"hi", (host, int(port)))
            data, _ = s.recvfrom(16)
        out[spec] = "ok" if data == b"ok" else "bad-reply"
    except socket.timeout:
        out[spec] = "timeout"
    except OSError as e:
        out[spec] = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


def probe(timeout, specs):
    out = {}
    threads = [threading.Thread(target=probe_one, args=(s, timeout, out)) for s in specs]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(out))


def hammer(host, port, n, deadline, stopfile):
    end = time.monotonic() + deadline
    ok = failed = 0
    for _ in range(n):
        if time.monotonic() > end or os.path.exists(stopfile):
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.2)
        try:
            s.connect((host, port))
            ok += 1
        except OSError:
            failed += 1
        finally:
            s.close()
        time.sleep(0.002)
    print(f"connected={ok} failed={failed}", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "serve":
        serve([int(p) for p in sys.argv[2].split(",")])
    elif mode == "probe":
        probe(float(sys.argv[2]), sys.argv[3:])
    elif mode == "hammer":
        hammer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
