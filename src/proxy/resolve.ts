/**
 * resolveOriginal for the node proxy: the kernel recorded, for each steered
 * connection, the VIP:port it dialled and the cgroup that dialled it, under
 * the client's (ip, port) — which is the accepted socket's peer. Take it
 * from the pinned map of the peer's family (ebm_l7_conns, ebm_l7_conns6),
 * through the relay (a worker loads no libbpf); the caller's name comes
 * from the daemon's table.
 */
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { PinnedMap } from '../relay/index.js';
import { L7Conn6Key, L7ConnKey, L7Orig, L7_ORIG_F_TUNNEL, type ValueOf } from '../abi/structs.js';
import type { OriginalDestination } from './index.js';
import type { CallerEntry, ProxyPush } from './messages.js';

export const UNKNOWN_CALLER: CallerEntry = { identity: 'unknown', namespace: '', workload: '' };

export class OriginalResolver {
  private readonly conns: PinnedMap<ValueOf<typeof L7ConnKey>, ValueOf<typeof L7Orig>>;
  private readonly conns6: PinnedMap<ValueOf<typeof L7Conn6Key>, ValueOf<typeof L7Orig>>;
  private byCgroup = new Map<string, CallerEntry>();
  private byIp = new Map<string, CallerEntry>();
  unresolved = 0;
  /** How callers were named: by the kernel-recorded cgroup, by source IP, or not at all. */
  readonly attributed = { cgroup: 0, ip: 0, unknown: 0 };

  constructor(mapPins: string) {
    this.conns = new PinnedMap(join(mapPins, 'ebm_l7_conns'), L7ConnKey, L7Orig);
    this.conns6 = new PinnedMap(join(mapPins, 'ebm_l7_conns6'), L7Conn6Key, L7Orig);
  }

  setCallers(push: Pick<ProxyPush, 'byCgroup' | 'byIp'>): void {
    this.byCgroup = new Map(push.byCgroup);
    this.byIp = new Map(push.byIp);
  }

  resolve(socket: Socket): OriginalDestination | undefined {
    const ip = socket.remoteAddress?.replace(/^::ffff:/, '');
    const port = socket.remotePort;
    if (!ip || !port) return undefined;
    // One read per connection, which removes it: the entry is ours now, and (ip, port) may be reused.
    const key = { ip, port, pad: 0 };
    const orig = ip.includes(':') ? this.conns6.take(key) : this.conns.take(key);
    if (!orig) {
      this.unresolved++;
      return undefined;
    }
    let caller = this.byCgroup.get(orig.cgroup_id.toString());
    if (caller) this.attributed.cgroup++;
    else if ((caller = this.byIp.get(ip))) this.attributed.ip++;
    else {
      caller = UNKNOWN_CALLER;
      this.attributed.unknown++;
    }
    return {
      dst: { ip: orig.vip, port: orig.port }, client: { identity: caller.identity, namespace: caller.namespace, ip },
      ...(orig.flags & L7_ORIG_F_TUNNEL ? { tunnel: true } : {}),
    };
  }

  close(): void {
    this.conns.close();
    this.conns6.close();
  }
}
