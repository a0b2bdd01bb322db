export { BpfObjectSpec, LoadedObject, type KeptPinnedMap, type ProgramInfo } from './object.js';
export { RawMap, TypedMap, openPinnedMap, pinnedMapInfo, BPF_ANY, BPF_NOEXIST, BPF_EXIST, possibleCpus, type MapInfo, type PinnedMapInfo } from './map.js';
export { attachCgroupPinned, attachMapPinned, detachPinned } from './link.js';
export { BtfFile } from './btf.js';
export { ensureBpffs, cgroup2Root, BPFFS } from './fs.js';
export { KernelError, VerifierError, MissingFeatureError, MissingCapabilityError, errnoName } from './errors.js';
export { openDirFd, closeFd, withFd } from './fd.js';
export { probeFeatures, requireFeatures, type FeatureCheck } from './features.js';
export { testRunPacket, type TestRunResult } from './test-run.js';
