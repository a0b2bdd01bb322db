export { TunnelClient, TunnelError, type Peer, type OpenOptions } from './client.js';
export { TunnelServer, type TunnelRequest, type TunnelFlow, type Verdict } from './server.js';
export { CredentialStore, makeCredentials, type Credentials, type CredentialMaterial } from './credentials.js';
export { nodeSpiffeId, nodeOf, parseSpiffeId, spiffeIdFromSan, spiffeIdFromUris, SYSTEM_NAMESPACE } from './ids.js';
export { TUNNEL_PORT, type Destination } from './protocol.js';
