import { execFileSync } from 'node:child_process';
import { EbmeshError } from '../errors.js';

/** Runs a host tool (ip, …) synchronously; failures carry its stderr. */
export function run(cmd: string, args: string[], opts: { allowFail?: RegExp } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const stderr = (err.stderr ?? '').trim();
    if (opts.allowFail?.test(stderr)) return '';
    throw new EbmeshError('EBMESH_HOST_COMMAND', `${cmd} ${args.join(' ')} failed: ${stderr || err.message}`);
  }
}

export const ip = (...args: string[]) => run('ip', args);
