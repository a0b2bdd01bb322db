export { CertificateAuthority, createRoot, newKeyAndCsr, spiffeId, svidId, renewAt, type RootMaterial, type IssuedSvid } from './ca.js';
