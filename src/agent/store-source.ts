/**
 * The desired-state source of a node that reads a store: the embedded store
 * of one host, or the mirror of this node's view that the control plane
 * keeps up to date (remote-store.ts).
 */
import { readSnapshot, statusKey, type NodeRecord, type Snapshot, type WorkloadStatus } from '../controlplane/index.js';
import type { Store } from '../store/index.js';
import type { DesiredStateSource } from './source.js';

export class StoreSource implements DesiredStateSource {
  constructor(
    readonly store: Store,
    readonly description: string,
    private readonly nodeName: string,
    private readonly nodeList: () => readonly NodeRecord[] = () => [{ name: nodeName, index: 0 }],
    /** A node's view of a mesh of several nodes: the workloads this node runs (the others arrive stripped, controlplane/nodes.ts). */
    private readonly localWorkloads?: () => readonly string[],
  ) {}

  snapshot(): Promise<Snapshot> {
    return readSnapshot(this.store, this.localWorkloads ? { localWorkloads: new Set(this.localWorkloads()) } : {});
  }

  watch(onChange: () => void): () => void {
    return this.store.watch(() => onChange());
  }

  async reportStatus(namespace: string, name: string, st: WorkloadStatus | undefined): Promise<void> {
    const key = statusKey('Workload', namespace, name);
    await this.store.commit([st ? { type: 'put', key, value: { ...st, node: this.nodeName } } : { type: 'delete', key }]);
  }

  nodes(): readonly NodeRecord[] {
    return this.nodeList();
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
