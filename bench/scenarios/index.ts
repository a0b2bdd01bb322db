/** Every scenario `ebmesh bench` knows, by name, in the order a full run takes them. */
import type { Scenario } from '../scenario.js';
import { loopback } from './loopback.js';
import { lb } from './lb.js';
import { observe } from './observe.js';
import { proxy } from './proxy.js';
import { shortcut } from './shortcut.js';
import { policyBench } from './policy.js';
import { mtls } from './mtls.js';
import { footprint } from './footprint.js';
import { sidecars } from './sidecars.js';
import { convergence } from './convergence.js';
import { k8sLb } from './k8s-lb.js';

export const scenarios: Scenario[] = [loopback, lb, observe, policyBench, proxy, shortcut, mtls, footprint, sidecars, convergence, k8sLb];
