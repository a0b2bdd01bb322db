import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';
import { crdFiles } from './crds.js';
import { openApiOf } from './crd-schema.js';
import { kinds } from '../resources/index.js';

test("the chart's CRDs are the ones the schemas give (node scripts/gen-crds.mjs writes them)", () => {
  for (const { file, text } of crdFiles()) {
    const committed = readFileSync(join(PACKAGE_ROOT, 'deploy/helm/ebmesh/crds', file), 'utf8');
    assert.equal(committed, text, `${file} is stale: run npm run build:ts && node scripts/gen-crds.mjs`);
  }
});

test("a CRD schema keeps the zod schema's constraints: ranges, patterns, enums, required fields, defaults", () => {
  const s = openApiOf(kinds.TrafficPolicy.shape.spec, {}, 'spec') as { required: string[]; properties: Record<string, any> };
  assert.deepEqual(s.required, ['targetRef']);
  const bucket = s.properties.rateLimit.properties.total;
  assert.equal(bucket.properties.requests.type, 'integer');
  assert.equal(bucket.properties.requests.minimum, 1);
  assert.equal(bucket.properties.per.pattern, '^([0-9]{1,5}(h|m|s|ms)){1,4}$');
  assert.deepEqual(s.properties.targetRef.properties.kind.enum, ['Service', 'HTTPRoute', 'GRPCRoute']);
  assert.equal(s.properties.targetRef.properties.group.default, '');
  assert.equal(s.properties.outlierDetection.properties.baseEjectionTime.default, '30s');
});
