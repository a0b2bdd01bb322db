import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Shed } from './fair-queue.js';
import { UpstreamError } from './upstream.js';
import { BreakerOpen } from './circuit-breaker.js';

test('the errors a request ordinarily ends with carry no stack trace, and leave the limit as it was', () => {
  const before = Error.stackTraceLimit;
  for (const e of [new Shed('queue_full'), new UpstreamError('reset', 'socket hang up', false), new BreakerOpen('shop/web')]) {
    assert.ok(e instanceof Error);
    assert.doesNotMatch(e.stack ?? '', /\n\s+at /, `${e.constructor.name} captured a stack`);
    assert.match(e.stack ?? '', new RegExp(e.message));
  }
  assert.equal(Error.stackTraceLimit, before);
  assert.match(new Error('x').stack ?? '', /\n\s+at /, 'other errors still have theirs');
});
