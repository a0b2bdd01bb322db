/**
 * A multi-node lab for integration tests: a TestMesh whose address plan has
 * room for several nodes' /24s, brought up with `ebmesh up --nodes N`.
 */
import { TestMesh } from './mesh.js';

export class TestCluster extends TestMesh {
  override readonly podCIDR: string;

  constructor(tag: string) {
    super(tag);
    this.podCIDR = `10.246.${(process.pid % 60) * 4}.0/22`;
  }
}

/** An HTTP/1.1 server (keep-alive) that answers with its workload's name. */
export const NAME_SERVER = `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        b = (os.environ['EBMESH_WORKLOAD'] + '\\n').encode()
        self.send_response(200); self.send_header('content-length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('0.0.0.0', 8080), H).serve_forever()
`;

/**
 * A bounded client loop: one keep-alive connection sending a request every
 * 20 ms, and a new connection every 50 ms, for SECONDS; prints a JSON tally.
 */
export const CLIENT_LOOP = `import http.client, json, sys, time, threading
host, secs = sys.argv[1], float(sys.argv[2])
tally = {'keepalive_ok': 0, 'keepalive_fail': 0, 'new_ok': 0, 'new_fail': 0, 'errors': []}
end = time.time() + secs
def keepalive():
    c = http.client.HTTPConnection(host, 80, timeout=3)
    while time.time() < end:
        try:
            c.request('GET', '/'); r = c.getresponse(); r.read()
            tally['keepalive_ok' if r.status == 200 else 'keepalive_fail'] += 1
        except Exception as e:
            tally['keepalive_fail'] += 1; tally['errors'].append('ka: ' + repr(e)); c = http.client.HTTPConnection(host, 80, timeout=3)
        time.sleep(0.02)
def fresh():
    while time.time() < end:
        try:
            c = http.client.HTTPConnection(host, 80, timeout=3); c.request('GET', '/', headers={'connection': 'close'}); r = c.getresponse(); r.read(); c.close()
            tally['new_ok' if r.status == 200 else 'new_fail'] += 1
        except Exception as e:
            tally['new_fail'] += 1; tally['errors'].append('new: ' + repr(e))
        time.sleep(0.05)
ts = [threading.Thread(target=keepalive), threading.Thread(target=fresh)]
[t.start() for t in ts]; [t.join() for t in ts]
tally['errors'] = tally['errors'][:5]
print(json.dumps(tally))
`;

export interface LoopTally { keepalive_ok: number; keepalive_fail: number; new_ok: number; new_fail: number; errors: string[] }

/** CLIENT_LOOP's last line, from a run that must have exited 0. */
export function loopTally(out: { code: number; stdout: string; stderr: string }): LoopTally {
  if (out.code !== 0) throw new Error(`client loop exited ${out.code}: ${out.stderr}`);
  return JSON.parse(out.stdout.trim().split('\n').pop()!) as LoopTally;
}
