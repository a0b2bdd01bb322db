/**
 * mTLS strict mode (bpf/mtls.bpf.c) in the real kernel, packet by packet
 * through BPF_PROG_TEST_RUN, with the tables the agent computes from a
 * snapshot (src/tunnel/mode.ts) written by its writer (src/agent/mtls-maps.ts).
 * The program reads nothing of the socket, so a test run drives all of it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Counter } from '../../src/abi/structs.js';
import { applyMtlsTables } from '../../src/agent/mtls-maps.js';
import { defaultMesh, type Snapshot } from '../../src/controlplane/state.js';
import { mustParseCidr } from '../../src/net/ipam.js';
import { Namespace, Workload } from '../../src/resources/schemas.js';
import { mtlsTables } from '../../src/controlplane/mtls-mode.js';
import { IPPROTO_TCP, IPPROTO_UDP, TCP, type PacketSpec } from '../helpers/packet.js';
import { SkbWorld } from '../helpers/skb-world.js';

const SUBNET = '10.77.5.0/24'; // this node's pods
const GATEWAY = '10.77.5.1'; // the node on the pod bridge: where its tunnel endpoint connects from
const DB = '10.77.5.10'; // in a strict namespace
const WEB = '10.77.5.11'; // in a permissive one
const REMOTE = '10.77.6.20'; // a pod of another node
const WORLD = '198.51.100.7';

let world: SkbWorld;

const workload = (ns: string, name: string, ip: string) => Workload.parse({
  apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name, namespace: ns, labels: { app: name } }, spec: { ip, command: ['true'] },
});

/** The tables for `vault` in `mode`, written the way the agent writes them. */
function program(vaultMode: 'strict' | 'permissive'): void {
  const snap: Snapshot = {
    revision: 1, mesh: defaultMesh, services: [], workloadStatus: new Map(), others: new Map(),
    namespaces: [
      Namespace.parse({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'vault', annotations: { 'ebmesh.io/mtls': vaultMode } } }),
      Namespace.parse({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }),
    ],
    workloads: [workload('vault', 'db', DB), workload('shop', 'web', WEB), workload('shop', 'remote', REMOTE)],
  };
  applyMtlsTables(world.objectOf('ebm_mtls_ingress'), mtlsTables(snap, mustParseCidr(SUBNET)));
}

before(() => {
  world = new SkbWorld('mtlsskb', ['mtls.bpf.o']);
  program('strict');
});

after(() => world?.cleanup());

const segment = (src: string, dst: string, tcpFlags: number): PacketSpec => ({ src, dst, proto: IPPROTO_TCP, sport: 46000, dport: 5432, tcpFlags });

/** The verdict of the ingress program, and how many strict-mode drops it counted. */
function arrive(packet: PacketSpec): { verdict: number; counted: bigint } {
  const before = world.counter(Counter.MTLS_STRICT_DROP);
  const verdict = world.run('ebm_mtls_ingress', packet);
  return { verdict, counted: world.counter(Counter.MTLS_STRICT_DROP) - before };
}

test('strict: a plaintext connection from another node\'s pod or from outside the mesh is refused and counted', () => {
  assert.deepEqual(arrive(segment(REMOTE, DB, TCP.SYN)), { verdict: 0, counted: 1n });
  assert.deepEqual(arrive(segment(WORLD, DB, TCP.SYN)), { verdict: 0, counted: 1n });
});

test('strict: connections from this node (its tunnel endpoint, its workloads, loopback) are accepted', () => {
  for (const src of [GATEWAY, WEB, '10.77.5.200', '127.0.0.1']) {
    assert.deepEqual(arrive(segment(src, DB, TCP.SYN)), { verdict: 1, counted: 0n }, src);
  }
});

test('strict: only opening SYNs are checked: replies and segments of connections pass, and so does UDP', () => {
  for (const flags of [TCP.SYN | TCP.ACK, TCP.ACK, TCP.ACK | TCP.PSH, TCP.RST, TCP.FIN | TCP.ACK]) {
    assert.deepEqual(arrive(segment(REMOTE, DB, flags)), { verdict: 1, counted: 0n }, `flags ${flags}`);
  }
  assert.deepEqual(arrive({ src: REMOTE, dst: DB, proto: IPPROTO_UDP, sport: 46000, dport: 53, payload: 'q' }), { verdict: 1, counted: 0n });
});

test('a permissive workload accepts plaintext from anywhere', () => {
  assert.deepEqual(arrive(segment(REMOTE, WEB, TCP.SYN)), { verdict: 1, counted: 0n });
  assert.deepEqual(arrive(segment(WORLD, WEB, TCP.SYN)), { verdict: 1, counted: 0n });
});

test('switching the namespace to permissive opens it; back to strict closes it again', () => {
  try {
    program('permissive');
    assert.deepEqual(arrive(segment(REMOTE, DB, TCP.SYN)), { verdict: 1, counted: 0n });
  } finally {
    program('strict');
  }
  assert.deepEqual(arrive(segment(REMOTE, DB, TCP.SYN)), { verdict: 0, counted: 1n });
});
