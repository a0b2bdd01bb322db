/**
 * The node proxy's default limits, in a module of their own: the proxy's
 * primary process (and the agent) need them without loading the proxy core
 * and its schemas.
 */
import type { ProxyLimits } from './types.js';

export const DEFAULT_LIMITS: ProxyLimits = Object.freeze({
  maxConcurrentRequests: 1024,
  maxConcurrentPerNamespace: 256,
  maxQueuedPerNamespace: 1024,
  queueTimeoutMs: 1000,
  maxBufferedBodyBytes: 1 << 20,
  connectTimeoutMs: 5000,
  sniffTimeoutMs: 300,
});
