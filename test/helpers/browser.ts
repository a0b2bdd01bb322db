/**
 * Headless Chromium for the UI tests: Debian's own browser driven by
 * playwright-core (which downloads nothing), a fresh profile per run, and no
 * background traffic of its own, so a test run reaches only the loopback.
 * Also starts `ebmesh ui` for an instance and tells its address.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { PACKAGE_ROOT } from '../../src/paths.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface Browser { context: BrowserContext; close(): Promise<void> }

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium`);
  const profile = mkdtempSync(join(tmpdir(), `ebmesh-chromium-${process.pid}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface UiProcess {
  /** The UI's base address (http://127.0.0.1:PORT/), which answers nothing without the token. */
  url: string;
  /** The address it printed, with its token: what a user opens. */
  loginUrl: string;
  token: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `ebmesh --instance I ui --port 0`, resolved once it prints its address (with its token). */
export function startUi(instance: string): Promise<UiProcess> {
  const child = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', instance, 'ui', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { void stop(); reject(new Error(`ebmesh ui printed no address in 15 s\n${out}\n${err}`)); }, 15_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /(http:\/\/127\.0\.0\.1:\d+\/)\?token=([A-Za-z0-9_-]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1]!, loginUrl: `${m[1]!}?token=${m[2]!}`, token: m[2]!, child, stop });
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`ebmesh ui exited ${code}\n${out}\n${err}`)); });
  });
}
