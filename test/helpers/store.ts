/**
 * A real EmbeddedStore in a fresh temporary directory, for tests of what
 * runs against a store (apply, the L7 config): each test its own file,
 * removed afterwards whether the test passed or not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/store/index.js';

/** Wraps a test body: FN gets the store; the directory goes when it settles. */
export function withStore(fn: (s: EmbeddedStore) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-store-'));
    try {
      await fn(new EmbeddedStore(join(dir, 'store.json')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
