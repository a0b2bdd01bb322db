/**
 * The CRDs the Helm chart installs (deploy/helm/ebmesh/crds/), generated
 * from the kinds' zod schemas: `node scripts/gen-crds.mjs` writes them, and
 * crds.test.ts fails when the committed files and the schemas disagree.
 */
import { stringify } from 'yaml';
import { kinds } from '../resources/index.js';
import { crdOf, type CrdSpec } from './crd-schema.js';

const TARGET_GROUP = "self.kind == 'Service' ? (self.group == '' || self.group == 'core') : self.group == 'gateway.networking.k8s.io'";
const targetRule = [{ rule: TARGET_GROUP, message: 'kind Service is in the core group (""); HTTPRoute and GRPCRoute in gateway.networking.k8s.io' }];

export const CRDS: CrdSpec[] = [
  {
    kind: 'TrafficPolicy', plural: 'trafficpolicies', singular: 'trafficpolicy', shortNames: ['tp'], scope: 'Namespaced',
    schema: kinds.TrafficPolicy,
    cel: { 'spec.targetRef': targetRule },
    printerColumns: [{ name: 'Target', type: 'string', jsonPath: '.spec.targetRef.name' }],
  },
  {
    kind: 'AuthorizationPolicy', plural: 'authorizationpolicies', singular: 'authorizationpolicy', shortNames: ['ap'], scope: 'Namespaced',
    schema: kinds.AuthorizationPolicy,
    cel: {
      'spec.targetRef': targetRule,
      'spec.rules': [{ rule: 'self.all(r, self.exists_one(q, q.name == r.name))', message: 'rule names must be unique' }],
    },
    printerColumns: [
      { name: 'Target', type: 'string', jsonPath: '.spec.targetRef.name' },
      { name: 'Action', type: 'string', jsonPath: '.spec.action' },
    ],
  },
  {
    kind: 'MeshConfig', plural: 'meshconfigs', singular: 'meshconfig', scope: 'Cluster',
    schema: kinds.MeshConfig,
    cel: { '': [{ rule: "self.metadata.name == 'mesh'", message: 'the MeshConfig is named "mesh"' }] },
  },
];

/** File name and YAML text of each CRD. */
export function crdFiles(): Array<{ file: string; text: string }> {
  return CRDS.map((c) => ({
    file: `${c.plural}.yaml`,
    text: `# Generated from src/resources by scripts/gen-crds.mjs: do not edit.\n${stringify(crdOf(c), { lineWidth: 0 })}`,
  }));
}
