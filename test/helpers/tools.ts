/**
 * The programs the tests run. scripts/setup.sh installs every one of them,
 * so a test that finds one missing fails and says which and how to get it:
 * a suite that skips what it cannot run passes on a machine that tests
 * nothing.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/** The program's path on PATH, or undefined. */
export function findTool(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Throws, naming the tool, unless every one of TOOLS is on PATH. */
export function requireTools(...tools: string[]): void {
  const missing = tools.filter((t) => !findTool(t));
  if (missing.length) throw new Error(`${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not installed: run sudo bash scripts/setup.sh, which installs every tool the tests use`);
}
