/**
 * Who may read a node's Prometheus metrics: whoever holds its metrics
 * token. The listener is where Prometheus expects it (127.0.0.1:9464 unless
 * EBMESH_METRICS_ADDR says otherwise, `off` for none), and every scrape must
 * carry `Authorization: Bearer TOKEN`. Loopback alone protects nothing on a
 * shared host: every local user, and every workload adopted in the host's
 * network namespace, can connect to it.
 *
 * Why a bearer token and not mutual TLS: Prometheus sends one from a file
 * (`authorization: {credentials_file: …}`) with no PKI of its own to run,
 * and a one-host node has no CA to give Prometheus a certificate from. The
 * token travels in clear, so keep the listener on loopback or on a network
 * only the scrapers reach (docs/security.md).
 *
 * The token file: EBMESH_METRICS_TOKEN_FILE (the user's, e.g. shared with
 * Prometheus's configuration; it must exist), or STATE/metrics.token, made
 * (0600, random) on first start.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EbmeshError } from '../errors.js';
import { writePrivateFile } from '../host/private-files.js';
import type { InstancePaths } from '../paths.js';

export const DEFAULT_METRICS_ADDR = '127.0.0.1:9464';

export interface MetricsListen {
  host: string;
  port: number;
  token: string;
  tokenFile: string;
}

/** Where the metrics listener goes and its token, from the environment; undefined: no listener. */
export function metricsListen(paths: Pick<InstancePaths, 'stateDir'>, env: NodeJS.ProcessEnv = process.env): MetricsListen | undefined {
  const addr = env.EBMESH_METRICS_ADDR ?? DEFAULT_METRICS_ADDR;
  if (addr === 'off') return undefined;
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new EbmeshError('EBMESH_USAGE', `EBMESH_METRICS_ADDR="${addr}" is neither HOST:PORT nor "off"`);
  }
  const own = env.EBMESH_METRICS_TOKEN_FILE;
  const tokenFile = own ?? join(paths.stateDir, 'metrics.token');
  if (!existsSync(tokenFile)) {
    if (own) throw new EbmeshError('EBMESH_FILE', `EBMESH_METRICS_TOKEN_FILE ${own} does not exist`, { hint: 'the metrics listener needs a token to ask scrapers for' });
    writePrivateFile(tokenFile, randomBytes(32).toString('base64url'));
  }
  const token = readFileSync(tokenFile, 'utf8').trim();
  if (token.length < 16) throw new EbmeshError('EBMESH_USAGE', `the metrics token in ${tokenFile} is shorter than 16 characters`);
  return { host, port, token, tokenFile };
}

/** The request carries TOKEN as its bearer credential (compared in constant time). */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const got = Buffer.from(/^Bearer (.+)$/i.exec(authorization ?? '')?.[1]?.trim() ?? '');
  const want = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}
