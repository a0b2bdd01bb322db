/**
 * The fuzz targets' runner: property-based with fast-check, for as long as
 * asked. A target is a property over generated inputs plus what it needs
 * running (a proxy, a tunnel endpoint, a node daemon); its seeds (the
 * committed corpus in test/fuzz/corpus/TARGET) are mixed into what it
 * generates and are also replayed one by one.
 *
 * Why fast-check and not a coverage-guided fuzzer: every target's input has
 * a grammar (YAML resources, HTTP/1 heads, HTTP/2 header lists, API calls
 * from the route tables), and generating from it reaches the checks that a
 * byte mutator reaches only by chance; the properties (never a crash or a
 * hang, a refusal names what and where, a head parses the same however it
 * is cut) are checked on every input. Jazzer.js, the coverage-guided option,
 * does not run here: its 4.0 addon needs glibc 2.38 (Debian 12 has 2.36),
 * and its older releases download their addon at install.
 */
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';

export interface FuzzTarget<Input = unknown, Ctx = unknown> {
  name: string;
  /** One line: what is fuzzed and what must hold. */
  what: string;
  setup(): Promise<Ctx>;
  teardown(ctx: Ctx): Promise<void>;
  /** Inputs, mixing in the seeds. */
  inputs(seeds: Input[]): fc.Arbitrary<Input>;
  /** Throws (or rejects) when the input breaks the target's promise. */
  check(ctx: Ctx, input: Input): Promise<void> | void;
  /** A corpus file's content as an input. */
  seed(text: string, file: string): Input;
}

export const CORPUS_ROOT = join(PACKAGE_ROOT, 'test/fuzz/corpus');

/** The committed corpus of a target, as inputs. */
export function loadSeeds<I>(t: FuzzTarget<I>): Array<{ file: string; input: I }> {
  const dir = join(CORPUS_ROOT, t.name);
  let files: string[] = [];
  try {
    files = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return files.map((f) => ({ file: f, input: t.seed(readFileSync(join(dir, f), 'latin1'), f) }));
}

export interface FuzzReport {
  target: string;
  runs: number;
  ms: number;
  seed: number;
  failed: boolean;
  /** The smallest failing input fast-check found, and its error. */
  counterexample?: string;
  error?: string;
}

/** Runs TARGET for TIMEMS (at most NUMRUNS inputs), after replaying its corpus. */
export async function fuzz<I, C>(t: FuzzTarget<I, C>, opts: { timeMs: number; numRuns?: number; seed?: number }): Promise<FuzzReport> {
  const seeds = loadSeeds(t);
  const ctx = await t.setup();
  const seed = opts.seed ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const started = Date.now();
  try {
    for (const s of seeds) {
      try {
        await t.check(ctx, s.input);
      } catch (e) {
        return { target: t.name, runs: 0, ms: Date.now() - started, seed, failed: true, counterexample: `corpus ${s.file}`, error: (e as Error).stack ?? String(e) };
      }
    }
    let runs = 0;
    const prop = fc.asyncProperty(t.inputs(seeds.map((s) => s.input)), async (input) => {
      runs++;
      await t.check(ctx, input);
    });
    const r = await fc.check(prop, {
      seed,
      numRuns: opts.numRuns ?? Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: opts.timeMs,
      markInterruptAsFailure: false,
      endOnFailure: true,
    });
    const report: FuzzReport = { target: t.name, runs, ms: Date.now() - started, seed, failed: r.failed };
    if (r.failed) {
      report.counterexample = fc.stringify(r.counterexample);
      report.error = r.errorInstance instanceof Error ? r.errorInstance.stack ?? r.errorInstance.message : String(r.errorInstance);
    }
    return report;
  } finally {
    await t.teardown(ctx);
  }
}

/** A promise that fails after MS, naming what hung. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`hang: ${what} took over ${ms} ms`)), ms); }),
  ]);
}
