import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventNamePrefix } from './status-writer.js';

// The API server's rule for a generated name: a DNS subdomain (labels of
// lower-case letters, digits and "-", starting and ending with one of the
// first two, joined by "."), at most 63 characters once the suffix is added.
const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

test('an Event about an object gets a generateName the API server accepts', () => {
  // "NAME." was refused with 422 (the NetworkPolicy e2e suite's Services showed it).
  for (const name of ['s-netpol-x-3757-a', 'web', 'a.b.c', 'x'.repeat(253), `${'y'.repeat(56)}.z`, `${'z'.repeat(56)}-q`]) {
    const prefix = eventNamePrefix(name);
    assert.ok(prefix.endsWith('-'), prefix);
    assert.ok(prefix.length <= 58, `${prefix.length} characters`);
    assert.match(`${prefix}abcde`, subdomain, `${name} -> ${prefix}`);
    assert.ok(name.startsWith(prefix.slice(0, -1)), 'the object\'s name, cut');
  }
  assert.equal(eventNamePrefix('s-netpol-x-3757-a'), 's-netpol-x-3757-a-');
});
