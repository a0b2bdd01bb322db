/** The upstream response body handed to the router: order, end after data, back-pressure, discard, errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BodyFeed } from '../../src/proxy/body-feed.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('BodyFeed', () => {
  it('keeps what arrived before the reader, then delivers in order and ends after the last chunk', async () => {
    const f = new BodyFeed(() => {});
    assert.equal(f.push(Buffer.from('a')), true);
    f.push(Buffer.from('b'));
    f.end();
    const got: string[] = [];
    let ended = false;
    f.on('data', (c) => got.push(c.toString()));
    f.once('end', () => (ended = got.join('') === 'ab'));
    assert.deepEqual(got, [], 'nothing before the listeners are all attached');
    await tick();
    assert.ok(ended);
  });

  it('asks the producer to stop past 64 KiB held, and for more once the reader resumes', async () => {
    let more = 0;
    const f = new BodyFeed(() => more++);
    const big = Buffer.alloc(40 * 1024);
    assert.equal(f.push(big), true);
    assert.equal(f.push(big), false);
    const got: number[] = [];
    f.on('data', (c) => {
      got.push(c.length);
      f.pause();
    });
    await tick();
    assert.deepEqual(got, [big.length]);
    f.resume();
    await tick();
    assert.deepEqual(got, [big.length, big.length]);
    assert.equal(more, 0, 'paused again by the reader: no more yet');
    f.resume();
    await tick();
    assert.equal(more, 1);
  });

  it('discards everything when resumed without a reader, and still ends', async () => {
    const f = new BodyFeed(() => {});
    f.push(Buffer.from('x'));
    let ended = false;
    f.once('end', () => (ended = true));
    f.resume();
    assert.equal(f.push(Buffer.from('y')), true);
    f.end();
    await tick();
    assert.ok(ended);
  });

  it('reports a failure to the error listener and delivers nothing after it', async () => {
    const f = new BodyFeed(() => {});
    const got: string[] = [];
    let error = '';
    f.on('error', (e) => (error = e.message));
    f.on('data', (c) => got.push(c.toString()));
    f.push(Buffer.from('a'));
    f.destroy(new Error('reset'));
    assert.equal(f.push(Buffer.from('b')), false);
    await tick();
    assert.deepEqual(got, ['a']);
    assert.equal(error, 'reset');
  });
});
