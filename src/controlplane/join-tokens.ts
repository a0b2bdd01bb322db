/**
 * Join tokens: how a node's agent gets its first certificate. Registering a
 * node (POST /v1/nodes on the admin socket) makes a random token for it; the
 * agent presents it once, with a CSR, over TLS to the agents' listener
 * (pinning the CA bundle it was given with the token), and gets its node
 * certificate. The token is spent then: from there on the agent proves who
 * it is with that certificate. Registering the node again makes a new token
 * (and spends the old one), for a node whose certificate was lost or expired.
 *
 * Only a hash of each pending token is kept (a file of the control plane's
 * state, 0600): the file alone enrols nobody.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writePrivateFile } from '../host/private-files.js';

const digest = (token: string) => createHash('sha256').update(token).digest();

export class JoinTokens {
  private pending: Record<string, { sha256: string; issuedAt: string }> = {};

  constructor(private readonly file: string) {
    if (existsSync(file)) {
      try { this.pending = JSON.parse(readFileSync(file, 'utf8')) as typeof this.pending; } catch { /* unreadable: no pending token */ }
    }
  }

  /** A new token for NODE; any token it had before is spent. */
  issue(node: string): string {
    const token = randomBytes(32).toString('base64url');
    this.pending[node] = { sha256: digest(token).toString('hex'), issuedAt: new Date().toISOString() };
    this.save();
    return token;
  }

  /** True, and the token is spent, when TOKEN is NODE's pending one. */
  redeem(node: string, token: string): boolean {
    const want = this.pending[node];
    if (!want) return false;
    const ok = timingSafeEqual(digest(token), Buffer.from(want.sha256, 'hex'));
    if (ok) {
      delete this.pending[node];
      this.save();
    }
    return ok;
  }

  private save(): void {
    writePrivateFile(this.file, JSON.stringify(this.pending));
  }
}
