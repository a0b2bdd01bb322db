export type { Store, Entry, Op, WatchEvent } from './store.js';
export { deepFreeze } from './store.js';
export { EmbeddedStore } from './embedded.js';
export { EtcdStore, parseEtcdUrl, type EtcdStoreOptions } from './etcd.js';
export { MirrorStore, type ListableStore } from './mirror.js';
