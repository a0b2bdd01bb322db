export { CertificateAuthority, createCa, createRoot, newKeyAndCsr, spiffeId, svidId, renewAt, type RootMaterial, type IssuedCert, type IssuedSvid, type SubjectNames } from './ca.js';
