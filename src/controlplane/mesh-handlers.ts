/**
 * The mesh API (src/api/mesh.ts) over a store: apply, delete and read the
 * desired state. The embedded node daemon and the control plane both serve
 * it; each says what follows a write (the embedded node reconciles at once,
 * so `apply` returns once the kernel holds the change; the control plane's
 * agents converge on their own) and what its status is.
 */
import { EbmeshError } from '../errors.js';
import { parseResources, kindOfWord, kinds, namespaced, type AnyResource } from '../resources/index.js';
import type { Handlers } from '../api/server.js';
import type { meshApi } from '../api/mesh.js';
import type { Status } from '../api/status.js';
import type { Store } from '../store/index.js';
import { applyResources, deleteResources } from './apply.js';
import { readSnapshot, RESOURCES, wlKey } from './state.js';
import { checkStoredResource } from './stored.js';

export interface MeshHooks {
  /** After a write: what must hold before the caller gets its answer. */
  afterWrite(): Promise<void>;
  status(): Promise<Status>;
  shutdown(teardown: boolean): void;
}

function notFound(what: string): EbmeshError {
  return new EbmeshError('EBMESH_NOT_FOUND', `${what} not found`);
}

export function resolveKind(text: string): string {
  const k = kindOfWord(text);
  if (!k) throw new EbmeshError('EBMESH_UNKNOWN_KIND', `unknown kind "${text}"`, { hint: `known: ${Object.keys(kinds).join(', ')}` });
  return k;
}

export function meshHandlers(store: Store, hooks: MeshHooks): Handlers<typeof meshApi> {
  return {
    status: () => hooks.status(),
    apply: async ({ text, file }) => {
      const results = await applyResources(store, parseResources(text, file), file);
      await hooks.afterWrite();
      return { results };
    },
    delete: async (input) => {
      const resources: AnyResource[] = 'text' in input
        ? parseResources(input.text, input.file)
        : input.refs.map((r) => ({ kind: resolveKind(r.kind), metadata: { name: r.name, namespace: r.namespace ?? 'default' } }) as AnyResource);
      const results = await deleteResources(store, resources);
      await hooks.afterWrite();
      return { results };
    },
    resources: async ({ kind, namespace, name }) => {
      const k = kind ? resolveKind(kind) : undefined;
      const snap = await readSnapshot(store);
      const entries = await store.list<unknown>(RESOURCES + (k ? `${k}/` : ''));
      // Only what passes its check (stored.ts); status lists the rest.
      const items = entries
        .flatMap((e) => { const c = checkStoredResource(e.key, e.value, RESOURCES); return 'ok' in c ? [c.ok] : []; })
        .filter((r) => (!namespace || !namespaced.has(r.kind) || (r.metadata as { namespace?: string }).namespace === namespace) && (!name || r.metadata.name === name))
        .map((r) => {
          const status = r.kind === 'Workload' ? snap.workloadStatus.get(wlKey(r)) : undefined;
          return status ? { ...r, status } : r;
        });
      if (name && items.length === 0) throw notFound(`${k ?? 'resource'} ${namespace ? `${namespace}/` : ''}${name}`);
      return { items };
    },
    workload: async ({ ref }) => {
      const snap = await readSnapshot(store);
      const [a, b] = ref.split('/');
      const matches = snap.workloads.filter((w) => (b === undefined ? w.metadata.name === a : w.metadata.namespace === a && w.metadata.name === b));
      if (matches.length === 0) throw notFound(`workload ${ref}`);
      if (matches.length > 1) {
        throw new EbmeshError('EBMESH_AMBIGUOUS', `workload name ${ref} is in several namespaces`, { hint: `say NAMESPACE/NAME: ${matches.map(wlKey).join(', ')}` });
      }
      const w = matches[0]!;
      const status = snap.workloadStatus.get(wlKey(w));
      return { workload: w, ...(status ? { status } : {}) };
    },
    shutdown: async ({ teardown }) => {
      setImmediate(() => hooks.shutdown(teardown === true));
      return { stopping: true, ...(teardown !== undefined ? { teardown } : {}) };
    },
  };
}
