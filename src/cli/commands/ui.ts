import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EbmeshError } from '../../errors.js';
import { PACKAGE_ROOT } from '../../paths.js';
import { isRunning } from '../client.js';
import type { Command } from '../command.js';

export const ui: Command = {
  name: 'ui',
  summary: 'serve the web UI (service map, flows, policy) on the loopback, to whoever has the token in the address it prints',
  usage: 'ui [--port PORT]   (default 9900; 0 picks a free port)',
  async run(ctx) {
    const { values } = parseArgs({ args: ctx.args, options: { port: { type: 'string', short: 'p', default: '9900' } } });
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new EbmeshError('EBMESH_USAGE', `--port must be 0..65535, not "${values.port}"`);
    const staticDir = join(PACKAGE_ROOT, 'dist', 'ui');
    if (!existsSync(join(staticDir, 'index.html'))) {
      throw new EbmeshError('EBMESH_UI_NOT_BUILT', `the UI bundle is missing (${staticDir})`, { hint: 'build it with: npm run build' });
    }
    if (!(await isRunning(ctx.paths))) {
      throw new EbmeshError('EBMESH_NOT_RUNNING', `the mesh node "${ctx.paths.instance}" is not running`, { hint: 'start it with: ebmesh up' });
    }
    const { startUiServer } = await import('../../ui/server.js');
    let started;
    try {
      // Whoever holds it reads the node's API through the UI: it goes to the terminal of who started the UI, nowhere else.
      started = await startUiServer({ socketPath: ctx.paths.apiSocket, staticDir, port, token: randomBytes(24).toString('base64url') });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new EbmeshError('EBMESH_PORT_IN_USE', `port ${port} on 127.0.0.1 is taken`, { hint: 'choose another with --port' });
      }
      throw e;
    }
    ctx.out(`ebmesh UI for node "${ctx.paths.instance}": ${started.loginUrl}`);
    ctx.err('The address holds the UI\'s token: whoever has it reads what root reads through the UI. Ctrl-C stops it.');
    await new Promise<void>((resolve) => {
      const stop = () => {
        started.server.close(() => resolve());
        // open flow streams would otherwise keep it waiting
        started.server.closeAllConnections();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};
