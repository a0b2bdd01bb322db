/** The node proxy's public surface; everything else in src/proxy stays inside. */
export { startNodeProxy } from './node-proxy.js';
export { compileConfig } from './config.js';
export { DEFAULT_LIMITS } from './limits.js';
export { channels as proxyChannels, type RequestDoneEvent } from './events.js';
export { plainDial, plainDialFrom, type Caller, type Dial, type ReadInto, type UpstreamStream } from './dial.js';
export type {
  Endpoint, NodeProxy, OriginalDestination, ProxyConfig, ProxyLimits, ProxyRoutingConfig, ProxyStats, ResolveOriginal, ServiceEntry, ServiceProtocol, TracingConfig,
} from './types.js';
