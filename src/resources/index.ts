export * from './schemas.js';
export { parseResources, resourceKey, describeResource, ResourceError, formatProblem, type Problem } from './parse.js';
export { matchesSelector, matchesLabels } from './selector.js';
export type { LabelSelector } from './schema-common.js';
