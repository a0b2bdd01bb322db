/**
 * Describes the machine a benchmark ran on, so that a reader can tell two
 * reports apart before comparing their numbers.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { findNginx } from './nginx.js';
import { defaultLoadgenPath } from './loadgen.js';

export interface MachineInfo {
  hostname: string;
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  kernelVersion: string;
  os: string;
  node: string;
  /** 1, 5 and 15 minute load averages when the run started: a busy box is a noisy box. */
  loadAverage: number[];
  cpuGovernor: string | null;
  tools: Record<string, string | null>;
}

export interface ToolProbe {
  name: string;
  /** argv that prints a version; stdout and stderr are both searched. */
  argv: string[];
}

export const DEFAULT_TOOL_PROBES: ToolProbe[] = [
  { name: 'gcc', argv: ['gcc', '--version'] },
  { name: 'ebmesh-loadgen', argv: [defaultLoadgenPath(), '--version'] },
  // /usr/sbin is often not on a non-root PATH.
  { name: 'nginx', argv: [findNginx() ?? 'nginx', '-v'] },
  { name: 'wrk', argv: ['wrk', '--version'] },
  { name: 'clang', argv: ['clang', '--version'] },
  // The sidecar model's proxy, and what reads BPF kernel memory.
  { name: 'haproxy', argv: ['haproxy', '-v'] },
  { name: 'bpftool', argv: ['bpftool', 'version'] },
];

/** First line of a tool's version output, or null when it is not installed. */
export function toolVersion(argv: readonly string[]): string | null {
  const [file, ...args] = argv;
  if (!file) return null;
  // Some tools (nginx -v, wrk) print their version on stderr, or exit non-zero.
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  if (r.error) return null;
  return firstLine(`${r.stdout ?? ''}\n${r.stderr ?? ''}`);
}

function firstLine(s: string): string | null {
  const l = s.split('\n').map((x) => x.trim()).find((x) => x.length > 0);
  return l ?? null;
}

function readOr(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function osName(): string {
  const rel = readOr('/etc/os-release');
  const m = rel ? /^PRETTY_NAME="?([^"\n]*)"?/m.exec(rel) : null;
  return m?.[1] ?? `${os.type()} ${os.release()}`;
}

export function describeMachine(probes: readonly ToolProbe[] = DEFAULT_TOOL_PROBES): MachineInfo {
  const cpus = os.cpus();
  const tools: Record<string, string | null> = {};
  for (const p of probes) tools[p.name] = toolVersion(p.argv);
  return {
    hostname: os.hostname(),
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    kernelVersion: os.version(),
    os: osName(),
    node: process.version,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    cpuGovernor: readOr('/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor'),
    tools,
  };
}
