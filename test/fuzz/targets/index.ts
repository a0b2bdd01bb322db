/** Every fuzz target, by name, each bound to its own input and context types. */
import { fuzz, type FuzzReport, type FuzzTarget } from '../fuzz.js';
import { resourcesTarget } from './resources.js';
import { h1ParserTarget } from './h1-parser.js';
import { h1ResponseTarget } from './h1-response.js';
import { h1ServerTarget } from './h1-server.js';
import { tunnelConnectTarget } from './tunnel-connect.js';
import { nodeApiTarget } from './node-api.js';

export interface Runnable {
  what: string;
  run(opts: { timeMs: number; seed?: number }): Promise<FuzzReport>;
}

// Binding each target to fuzz() here keeps its Input/Ctx types together, so the table needs no cast.
const runnable = <I, C>(t: FuzzTarget<I, C>): Runnable => ({ what: t.what, run: (opts) => fuzz(t, opts) });

export const targets: Record<string, Runnable> = {
  resources: runnable(resourcesTarget),
  'h1-parser': runnable(h1ParserTarget),
  'h1-response': runnable(h1ResponseTarget),
  'h1-server': runnable(h1ServerTarget),
  'tunnel-connect': runnable(tunnelConnectTarget),
  'node-api': runnable(nodeApiTarget),
};
