/**
 * The Kubernetes tier's workloads: YAML builders for a namespace of the
 * test's own, nginx replicas that answer with their pod name, a client pod,
 * a UDP echo server, and small programs the client runs (Python from the
 * toolbox image).
 */

/** nginx answering "<pod name>\n" on 8080 (both families), with a readiness probe; preStop keeps a terminating pod serving a while. */
export function webDeployment(ns: string, name: string, replicas: number, image: string, labels: Record<string, string> = {}): string {
  const lbl = { app: name, ...labels };
  return `apiVersion: v1
kind: ConfigMap
metadata: {name: ${name}-conf, namespace: ${ns}}
data:
  nginx.conf: |
    daemon off;
    pid /tmp/nginx.pid;
    error_log stderr;
    events {}
    http {
      access_log off;
      server {
        listen 8080;
        listen [::]:8080;
        location / { return 200 "$hostname\\n"; }
      }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${ns}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: ${JSON.stringify(lbl)}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: nginx
        image: ${image}
        command: [nginx, -c, /etc/web/nginx.conf]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1, failureThreshold: 1}
        lifecycle: {preStop: {exec: {command: [sleep, "20"]}}}
        volumeMounts: [{name: conf, mountPath: /etc/web}]
      volumes: [{name: conf, configMap: {name: ${name}-conf}}]
---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 80, targetPort: http}]
`;
}

/** A UDP echo server on 5353 behind Service NAME. */
export function udpEcho(ns: string, name: string, image: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: {app: ${name}}}
spec:
  containers:
  - name: echo
    image: ${image}
    command: [python3, -c, "import socket\\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\\ns.bind(('0.0.0.0',5353))\\nwhile True:\\n  d,a=s.recvfrom(2048)\\n  s.sendto(d,a)"]
    ports: [{name: dns, containerPort: 5353, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  selector: {app: ${name}}
  ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
`;
}

export function clientPod(ns: string, name: string, image: string, labels: Record<string, string> = {}): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: ${JSON.stringify({ role: name, ...labels })}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: ${image}
    command: [sleep, infinity]
`;
}

/**
 * Python for the client: requests over one keep-alive connection (and a new
 * connection every N-th request) for SECONDS, bounded by COUNT; prints
 * {"ok", "fail", "errors", "new"} as JSON. Nothing is retried.
 */
export const KEEPALIVE_CLIENT = `
import http.client, json, sys, time
host, seconds, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
ok = fail = new = 0
errors = []
conn = None
until = time.time() + seconds
i = 0
while time.time() < until and i < count:
    i += 1
    try:
        if conn is None or i % 20 == 0:
            if conn is not None: conn.close()
            conn = http.client.HTTPConnection(host, 80, timeout=3)
            new += 1
        conn.request("GET", "/")
        r = conn.getresponse()
        r.read()
        if r.status == 200: ok += 1
        else:
            fail += 1; errors.append("status %d" % r.status)
    except Exception as e:
        fail += 1; errors.append(repr(e)); conn = None
    time.sleep(0.02)
print(json.dumps({"ok": ok, "fail": fail, "errors": errors[:10], "new": new}))
`;

/**
 * For each HOST argument: an AF_INET6 socket connected to HOST:80 (an IPv6
 * address, or an IPv4 one v4-mapped as the JVM and gRPC dial it), one
 * HTTP/1.0 request; prints the peer name the application sees and the
 * answer's body, or the error.
 */
export const INET6_GET = `
import socket, sys
for host in sys.argv[1:]:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect((host, 80))
        peer = s.getpeername()[0]
        s.sendall(b"GET / HTTP/1.0\\r\\nHost: web\\r\\n\\r\\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d: break
            data += d
        print(peer, data.split(b"\\r\\n\\r\\n", 1)[1].decode().strip())
    except OSError as e:
        print(host, "ERROR", e)
`;

/**
 * One UDP datagram to HOST:PORT and its echo: prints "echo", or "denied"
 * when the sender's own egress policy refused it (sendto fails with EPERM)
 * or no answer came (the receiver's ingress policy dropped it).
 */
export const UDP_PROBE = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.5)
try:
    s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
    d, a = s.recvfrom(2048)
    print("echo" if d == b"ping" else "wrong")
except PermissionError:
    print("denied")
except socket.timeout:
    print("denied")
`;
