/**
 * The lab's network on one node: a bridge in the host namespace, and per
 * workload a network namespace joined to it by a veth. A workload namespace
 * has routes only to the node's pod subnet(s); the service and pod ranges of
 * both families are unreachable in it (and on the host), so traffic to a VIP
 * that the mesh did not translate fails at once and can never leave the
 * machine. IPv6 addresses are added without duplicate address detection
 * (nodad): the mesh allocated them, and a tentative address would refuse to
 * be bound for a second or more.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { ip, run } from '../lab/run.js';
import { EbmeshError } from '../errors.js';
import { hostAddress, type Cidr } from '../net/ipam.js';

const EXISTS = /File exists|already exists|already assigned/;
const MISSING = /Cannot find device|does not exist|No such file|Cannot remove|not found/i;

export function linkExists(name: string, netns?: string): boolean {
  const args = netns ? ['-n', netns, 'link', 'show', name] : ['link', 'show', name];
  try {
    run('ip', args);
    return true;
  } catch {
    return false;
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(`/var/run/netns/${name}`);
}

export function gatewayOf(subnet: Cidr): string {
  return hostAddress(subnet, 1);
}

/** `ip addr add` arguments for an address of either family on a device. */
function addrArgs(address: string, len: number, dev: string): string[] {
  return ['addr', 'add', `${address}/${len}`, 'dev', dev, ...(address.includes(':') ? ['nodad'] : [])];
}

/** The node bridge with the first address of the pod subnet (and of the IPv6 one, on a dual-stack mesh). */
export function ensureBridge(bridge: string, subnet: Cidr, subnet6?: Cidr): void {
  if (!linkExists(bridge)) {
    ip('link', 'add', bridge, 'type', 'bridge');
  }
  for (const net of [subnet, subnet6]) {
    if (net) run('ip', addrArgs(gatewayOf(net), net.len, bridge), { allowFail: EXISTS });
  }
  ip('link', 'set', bridge, 'up');
}

export function removeBridge(bridge: string): void {
  run('ip', ['link', 'del', bridge], { allowFail: MISSING });
}

/**
 * An unreachable route for a CIDR in a namespace (the host when netns is
 * undefined). Its high metric keeps it a safety net: a connected route of
 * the same prefix (the node's pod subnet on the bridge) still wins.
 */
const SAFETY_METRIC = '4242';
export function ensureUnreachable(cidr: string, netns?: string): void {
  const pre = netns ? ['-n', netns] : [];
  run('ip', [...pre, family(cidr), 'route', 'replace', 'unreachable', cidr, 'metric', SAFETY_METRIC]);
}

export function removeUnreachable(cidr: string): void {
  run('ip', [family(cidr), 'route', 'del', 'unreachable', cidr, 'metric', SAFETY_METRIC], { allowFail: /No such process|not found|Cannot find/i });
}

/** `ip`'s family flag for an address or CIDR. */
const family = (text: string): string => (text.includes(':') ? '-6' : '-4');

export interface WorkloadNet {
  netns: string;
  veth: string;
  ip: string;
  subnet: Cidr;
  /** Its IPv6 address in the node's IPv6 pod subnet (a dual-stack mesh). */
  ip6?: { ip: string; subnet: Cidr };
  bridge: string;
  /** The mesh's ranges, unreachable in the namespace (its own subnets' routes are more specific). */
  unreachable: string[];
  /** Multi-node: the whole pod CIDR through the node's bridge address. */
  podCIDR?: string;
}

/** Runs many ip commands in one process (one fork instead of one each). */
function ipBatch(lines: string[], netns?: string): void {
  const r = spawnSync('ip', [...(netns ? ['-n', netns] : []), '-batch', '-'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
  if (r.status !== 0) throw new EbmeshError('EBMESH_HOST_COMMAND', `ip -batch${netns ? ` in ${netns}` : ''} failed: ${(r.stderr ?? '').trim()}`);
}

export function createWorkloadNet(n: WorkloadNet): void {
  if (!netnsExists(n.netns)) ip('netns', 'add', n.netns);
  const peer = `${n.veth}p`;
  if (!linkExists('eth0', n.netns)) {
    if (linkExists(n.veth)) ip('link', 'del', n.veth);
    ipBatch([
      `link add ${n.veth} type veth peer name ${peer}`,
      `link set ${peer} netns ${n.netns}`,
      `link set ${n.veth} master ${n.bridge}`,
      `link set ${n.veth} up`,
    ]);
    ipBatch([
      `link set ${peer} name eth0`,
      addrArgs(n.ip, n.subnet.len, 'eth0').join(' '),
      ...(n.ip6 ? [addrArgs(n.ip6.ip, n.ip6.subnet.len, 'eth0').join(' ')] : []),
      'link set lo up',
      'link set eth0 up',
      ...n.unreachable.map((c) => `route replace unreachable ${c} metric ${SAFETY_METRIC}`), // the family is the prefix's
      ...(n.podCIDR ? [`route replace ${n.podCIDR} via ${gatewayOf(n.subnet)}`] : []),
    ], n.netns);
    return;
  }
  // The namespace survived (an agent restart): make sure of each piece.
  run('ip', ['-n', n.netns, ...addrArgs(n.ip, n.subnet.len, 'eth0')], { allowFail: EXISTS });
  if (n.ip6) run('ip', ['-n', n.netns, ...addrArgs(n.ip6.ip, n.ip6.subnet.len, 'eth0')], { allowFail: EXISTS });
  ip('-n', n.netns, 'link', 'set', 'lo', 'up');
  ip('-n', n.netns, 'link', 'set', 'eth0', 'up');
  for (const c of n.unreachable) ensureUnreachable(c, n.netns);
  if (n.podCIDR) run('ip', ['-n', n.netns, 'route', 'replace', n.podCIDR, 'via', gatewayOf(n.subnet)]);
}

export function deleteWorkloadNet(netns: string, veth: string): void {
  run('ip', ['link', 'del', veth], { allowFail: MISSING });
  run('ip', ['netns', 'del', netns], { allowFail: MISSING });
  rmSync(`/etc/netns/${netns}`, { recursive: true, force: true });
}

export function listNetns(prefix: string): string[] {
  if (!existsSync('/var/run/netns')) return [];
  return readdirSync('/var/run/netns').filter((n) => n.startsWith(prefix));
}

/** The hosts file `ip netns exec` binds over /etc/hosts in that namespace. */
export function writeHostsFile(netns: string, lines: string[]): void {
  const dir = `/etc/netns/${netns}`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/hosts`;
  const text = lines.join('\n') + '\n';
  // Rewritten in place (same inode): running processes have it bind-mounted, so it cannot be swapped by rename.
  // The truncate-then-write leaves a moment where a lookup finds it empty: write only when the text changed.
  try {
    if (readFileSync(file, 'utf8') === text) return;
  } catch { /* not written yet */ }
  writeFileSync(file, text, { flag: 'w' });
}
