/**
 * The benchmarks' mesh instances: one per scenario run, named
 * `ebbench-TAG-PID`. Two runs at once (CI's bench-report test and a bench
 * started by hand) each get their own lab, so neither's setup or cleanup
 * takes down the other's. The PID in the name also tells whether a lab still
 * has an owner: a run that crashed leaves one without, which the next run of
 * the same scenario finds (by name, wherever `ebmesh down` looks) and takes
 * down before it starts.
 *
 * Not swept: names without a PID (`ebbench-TAG`, from builds before this
 * one: such a run may still be going), and a lab of which only the bridge is
 * left (its name is a hash of the instance: nothing leads back to it).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { EbmeshError } from '../src/errors.js';
import { instancePaths, validInstance } from '../src/paths.js';
import { cgroup2Root } from '../src/kernel/fs.js';
import { pidAlive, procStat } from '../src/host/pids.js';

export const BENCH_INSTANCE_PREFIX = 'ebbench-';

/** Linux's PID_MAX_LIMIT: the longest PID a name may have to hold. */
const PID_MAX = 4_194_304;

/** `ebbench-TAG-PID`; TAG must leave room for any PID in the 31 characters of an instance name. */
export function benchInstanceName(tag: string, pid = process.pid): string {
  const name = `${BENCH_INSTANCE_PREFIX}${tag}-${pid}`;
  if (!/^[a-z][a-z0-9]*$/.test(tag) || !validInstance(`${BENCH_INSTANCE_PREFIX}${tag}-${PID_MAX}`)) {
    throw new EbmeshError('EBMESH_BENCH_INSTANCE', `bench lab tag "${tag}" makes no valid instance name (${name})`, {
      hint: 'a tag is lower-case letters and digits, short enough for a 31-character instance name',
    });
  }
  return name;
}

export interface BenchInstance {
  instance: string;
  pid: number;
}

/** A directory whose entries start with PREFIX + an instance name. */
export interface Place {
  dir: string;
  prefix: string;
}

/** Where an instance leaves entries named after it on this host: where `ebmesh down` looks. */
export function hostPlaces(): Place[] {
  const p = instancePaths('x');
  const parent = (path: string) => path.slice(0, path.lastIndexOf('/'));
  let cgroups: string | undefined;
  try { cgroups = cgroup2Root(); } catch { /* no cgroup v2: no cgroups to find */ }
  return [
    { dir: parent(p.stateDir), prefix: '' },
    { dir: parent(p.runDir), prefix: '' },
    { dir: parent(p.bpfRoot), prefix: '' },
    // Workload namespaces (ebm-INSTANCE-…) and multi-node node namespaces (ebn-INSTANCE-…).
    { dir: '/var/run/netns', prefix: 'ebm-' },
    { dir: '/var/run/netns', prefix: 'ebn-' },
    ...(cgroups ? [{ dir: cgroups, prefix: 'ebmesh.' }] : []),
  ];
}

/** Every instance of scenario TAG that left something on this host, whether its run is alive or not. */
export function findBenchInstances(tag: string, places: Place[] = hostPlaces()): BenchInstance[] {
  const found = new Map<string, number>();
  for (const { dir, prefix } of places) {
    if (!existsSync(dir)) continue;
    const re = new RegExp(`^${prefix.replace('.', '\\.')}(${BENCH_INSTANCE_PREFIX}${tag}-(\\d+))(?:$|[-.])`);
    for (const entry of readdirSync(dir)) {
      const m = re.exec(entry);
      if (m) found.set(m[1]!, Number(m[2]));
    }
  }
  return [...found].map(([instance, pid]) => ({ instance, pid })).sort((a, b) => a.instance.localeCompare(b.instance));
}

/** USER_HZ: the unit of /proc/PID/stat's start time on every Linux architecture ebmesh runs on. */
const USER_HZ = 100;

/** When PID started (ms since the epoch, to about a second), or undefined when /proc does not say. */
function processStartMs(pid: number): number | undefined {
  try {
    const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    const start = Number(procStat(pid)?.(22));
    if (!btime || !Number.isFinite(start)) return undefined;
    return Number(btime[1]) * 1000 + (start / USER_HZ) * 1000;
  } catch {
    return undefined;
  }
}

/**
 * Whether the run that made INSTANCE is still going: its PID is alive, is
 * not this process (which runs one scenario at a time: a lab of its own
 * name is a leftover), and did not start after the lab's state was written
 * (then the PID was reused by another process).
 */
export function benchInstanceOwned(b: BenchInstance): boolean {
  if (b.pid === process.pid || !pidAlive(b.pid)) return false;
  const started = processStartMs(b.pid);
  let made: number | undefined;
  try { made = statSync(instancePaths(b.instance).stateDir).ctimeMs; } catch { /* no state dir left */ }
  // btime has whole seconds: allow for that before calling the PID reused.
  return !(started !== undefined && made !== undefined && started > made + 2000);
}

/**
 * This run's instance for scenario TAG. Labs of TAG that crashed runs left
 * are taken down first (with DOWN, `ebmesh down` on an instance). A run of
 * TAG still going keeps its lab, and this one refuses to start: both would
 * use the scenario's address plan.
 */
export function claimBenchInstance(tag: string, down: (instance: string) => void, places: Place[] = hostPlaces()): string {
  const instance = benchInstanceName(tag);
  const found = findBenchInstances(tag, places);
  for (const b of found) {
    if (benchInstanceOwned(b)) {
      throw new EbmeshError('EBMESH_BENCH_BUSY', `bench scenario "${tag}" is already running in process ${b.pid} (lab ${b.instance})`, {
        hint: 'the two runs would share its address plan: wait for that run to finish (runs of different scenarios may overlap)',
      });
    }
  }
  for (const b of found) down(b.instance);
  return instance;
}
