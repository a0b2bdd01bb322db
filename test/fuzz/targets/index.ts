/** Every fuzz target, by name. */
import type { FuzzTarget } from '../fuzz.js';
import { resourcesTarget } from './resources.js';
import { h1ParserTarget } from './h1-parser.js';
import { h1ServerTarget } from './h1-server.js';
import { tunnelConnectTarget } from './tunnel-connect.js';
import { nodeApiTarget } from './node-api.js';

export const targets: Record<string, FuzzTarget<never, never>> = {
  resources: resourcesTarget as unknown as FuzzTarget<never, never>,
  'h1-parser': h1ParserTarget as unknown as FuzzTarget<never, never>,
  'h1-server': h1ServerTarget as unknown as FuzzTarget<never, never>,
  'tunnel-connect': tunnelConnectTarget as unknown as FuzzTarget<never, never>,
  'node-api': nodeApiTarget as unknown as FuzzTarget<never, never>,
};
