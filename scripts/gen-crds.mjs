// Writes the Helm chart's CRDs from the kinds' zod schemas (src/k8s/crds.ts).
// Run after `npm run build:ts`; src/k8s/crds.test.ts checks they are current.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crdFiles } from '../dist/src/k8s/crds.js';

const dir = fileURLToPath(new URL('../deploy/helm/ebmesh/crds/', import.meta.url));
for (const { file, text } of crdFiles()) {
  writeFileSync(join(dir, file), text);
  console.log(join(dir, file));
}
