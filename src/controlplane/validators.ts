/**
 * Cross-resource checks that later kinds register (NetworkPolicy needs the
 * workloads to check named ports, a route needs its parent Service…).
 * Each returns problems; apply reports them all and changes nothing.
 */
import type { AnyResource } from '../resources/index.js';

export interface FieldProblem {
  field?: string;
  message: string;
}

export type CrossCheck = (r: AnyResource, all: AnyResource[]) => FieldProblem[];

export const validators = new Map<string, CrossCheck>();
