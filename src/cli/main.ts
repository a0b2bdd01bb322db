/**
 * The ebmesh command line. Each command is a small module; this file only
 * dispatches and turns errors into one readable message and an exit code.
 */
import { instancePaths, validInstance } from '../paths.js';
import { describeError, EbmeshError } from '../errors.js';
import type { Command } from './command.js';
import { apply, del, get } from './commands/resources.js';
import { up, down, status, exec } from './commands/node.js';
import { bench } from './commands/bench.js';
import { observe, top } from './commands/observe.js';
import { ui } from './commands/ui.js';
import { controlplane, agent, labCmd } from './commands/cluster.js';
import { policy } from './commands/policy.js';
import { proxy } from './commands/proxy.js';

export const commands: Command[] = [up, down, apply, del, get, status, exec, bench, observe, top, ui, policy, controlplane, agent, labCmd, proxy];

function help(): string {
  const w = Math.max(...commands.map((c) => c.name.length));
  return [
    'ebmesh — a sidecarless eBPF service mesh',
    '',
    'usage: ebmesh [--instance NAME] COMMAND [ARGS]',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '',
    'ebmesh COMMAND --help shows how to use a command.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  let instance = process.env.EBMESH_INSTANCE ?? 'ebmesh';
  const args = [...argv];
  while (args[0]?.startsWith('--instance')) {
    const a = args.shift()!;
    instance = a.includes('=') ? a.split('=')[1]! : args.shift() ?? '';
  }
  const name = args.shift();
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(help() + '\n');
    return name ? 0 : 2;
  }
  if (name === 'daemon') {
    process.argv.splice(2, process.argv.length, '--instance', instance);
    await import('../node/main.js');
    return -1; // the daemon keeps the process alive
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`unknown command "${name}"\n\n${help()}\n`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: ebmesh ${cmd.usage}\n\n${cmd.summary}\n`);
    return 0;
  }
  if (!validInstance(instance)) {
    process.stderr.write(`error: invalid instance name "${instance}" (lower-case letters, digits and "-")\n`);
    return 2;
  }
  const ctx = {
    args,
    paths: instancePaths(instance),
    out: (s: string) => void process.stdout.write(s + '\n'),
    err: (s: string) => void process.stderr.write(s + '\n'),
  };
  try {
    return await cmd.run(ctx);
  } catch (e) {
    process.stderr.write(`error: ${describeError(e)}\n`);
    return e instanceof EbmeshError ? 1 : 70;
  }
}

const code = await main(process.argv.slice(2));
if (code >= 0) {
  process.exitCode = code;
}
