/**
 * `ebmesh controlplane`: the control plane process of a multi-node mesh.
 *   --store etcd+tls://HOST:PORT[,HOST:PORT…][/PREFIX] | file   (file: the embedded store, one host)
 *   --etcd-ca F --etcd-cert F --etcd-key F   TLS with etcd: the CA that signed etcd's certificate, ours
 *   --listen ADDR        where agents reach it (unix socket path or HOST:PORT; default RUN/agents.sock)
 *   --ca-cert F --ca-key F   the user's own root (or intermediate); default: one made and kept here
 *   --svid-ttl SECONDS   lifetime of workload certificates (default 3600)
 *   --node-cert-ttl SECONDS   lifetime of the agents' node certificates (default 30 days)
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { instancePaths, validInstance } from '../paths.js';
import { EmbeddedStore, EtcdStore, MirrorStore, parseEtcdUrl, type EtcdStoreOptions, type Store } from '../store/index.js';
import { ControlPlane, NODE_CERT_TTL_SECONDS } from './server.js';
import { describeError } from '../errors.js';
import { privateDir, writePrivateFile } from '../host/private-files.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    instance: { type: 'string', default: process.env.EBMESH_INSTANCE ?? 'ebmesh' },
    store: { type: 'string', default: 'file' },
    'etcd-ca': { type: 'string' },
    'etcd-cert': { type: 'string' },
    'etcd-key': { type: 'string' },
    listen: { type: 'string' },
    'ca-cert': { type: 'string' },
    'ca-key': { type: 'string' },
    'svid-ttl': { type: 'string', default: '3600' },
    'node-cert-ttl': { type: 'string', default: String(NODE_CERT_TTL_SECONDS) },
  },
});
const instance = values.instance!;
if (!validInstance(instance)) {
  process.stderr.write(`invalid instance name "${instance}"\n`);
  process.exit(2);
}
const paths = instancePaths(instance);
let store: Store;
let storeDescription: string;
if (values.store === 'file') {
  store = new EmbeddedStore(paths.storeFile);
  storeDescription = `file ${paths.storeFile}`;
} else if (/^etcd(\+tls)?:\/\//.test(values.store!)) {
  let o: EtcdStoreOptions;
  try {
    o = parseEtcdUrl(values.store!, `/ebmesh/${instance}`, { ca: values['etcd-ca'], cert: values['etcd-cert'], key: values['etcd-key'] });
  } catch (e) {
    process.stderr.write(`${describeError(e)}\n`);
    process.exit(2);
  }
  // Reads from memory, kept by etcd's watch: see store/mirror.ts.
  store = new MirrorStore(new EtcdStore(o));
  storeDescription = `etcd ${(o.endpoints ?? [o.endpoint]).join(',')} (TLS) prefix ${o.prefix}`;
} else {
  process.stderr.write(`--store: "${values.store}" is neither "file" nor etcd+tls://HOST:PORT\n`);
  process.exit(2);
}
const ttl = Number(values['svid-ttl']);
if (!Number.isInteger(ttl) || ttl < 2) {
  process.stderr.write('--svid-ttl: a whole number of seconds, at least 2\n');
  process.exit(2);
}
const nodeCertTtl = Number(values['node-cert-ttl']);
if (!Number.isInteger(nodeCertTtl) || nodeCertTtl < 60) {
  process.stderr.write('--node-cert-ttl: a whole number of seconds, at least 60\n');
  process.exit(2);
}
const cpPid = join(paths.runDir, 'controlplane.pid');
let stopping = false;
const cp = new ControlPlane({
  paths, store, storeDescription, svidTtlSeconds: ttl, nodeCertTtlSeconds: nodeCertTtl,
  caCertFile: values['ca-cert'], caKeyFile: values['ca-key'],
  agentListen: values.listen ?? join(paths.runDir, 'agents.sock'),
  shutdown: () => void shutdown(),
});
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await cp.stop().catch(() => undefined);
  rmSync(cpPid, { force: true });
  process.exit(0);
}
try {
  privateDir(paths.runDir);
  if (store instanceof MirrorStore) await store.start();
  await cp.start();
  writePrivateFile(cpPid, String(process.pid));
  process.stderr.write(`ebmesh control plane ${instance} ready (pid ${process.pid}, store ${storeDescription})\n`);
} catch (e) {
  process.stderr.write(`ebmesh control plane ${instance} failed to start: ${describeError(e)}\n`);
  process.exit(1);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
