import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pickWeighted, rewritePath } from './plan.js';
import { prefixMatches } from './route-match.js';
import { sniff } from './sniff.js';
import { parseHead } from './h1-request.js';
import { parseTraceparent } from './tracing.js';

describe('proxy pure parts', () => {
  it('rewrites prefixes the Gateway API way', () => {
    assert.equal(rewritePath('/foo/bar', '/foo', { type: 'ReplacePrefixMatch', replacePrefixMatch: '/baz' }), '/baz/bar');
    assert.equal(rewritePath('/foo', '/foo', { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' }), '/');
    assert.equal(rewritePath('/foo/bar', '/foo/', { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' }), '/bar');
    assert.equal(rewritePath('/x', undefined, { type: 'ReplaceFullPath', replaceFullPath: '/y' }), '/y');
  });
  it('prefix matches on element boundaries', () => {
    assert.ok(prefixMatches('/foo', '/foo/x'));
    assert.ok(!prefixMatches('/foo', '/foobar'));
    assert.ok(prefixMatches('/', '/anything'));
  });
  it('weighted pick respects zero weights', () => {
    const bs = [{ ref: 'a', service: undefined, weight: 0 }, { ref: 'b', service: undefined, weight: 1 }];
    for (const r of [0, 0.5, 0.999]) assert.equal(pickWeighted(bs, () => r)?.ref, 'b');
    assert.equal(pickWeighted([{ ref: 'z', service: undefined, weight: 0 }], () => 0.3), undefined);
  });
  it('sniffs h2, http1 and tcp', () => {
    assert.equal(sniff(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'h2');
    assert.equal(sniff(Buffer.from('PRI * HT')), 'more');
    assert.equal(sniff(Buffer.from('GET / HTTP/1.1\r\n')), 'http1');
    assert.equal(sniff(Buffer.from('bad\x01 / HTTP/1.1\r\n')), 'http1', 'odd request lines go to the HTTP parser for a 400');
    assert.equal(sniff(Buffer.from([0x16, 0x03, 0x01])), 'tcp');
  });
  it('framing guard', () => {
    const reason = (headers: string): string | undefined => {
      const r = parseHead(Buffer.from(`POST / HTTP/1.1\r\nHost: a\r\n${headers}\r\n`, 'latin1'), 0);
      return r && 'problem' in r ? r.problem.reason : undefined;
    };
    assert.equal(reason('Transfer-Encoding: chunked\r\n'), undefined);
    assert.equal(reason('Transfer-Encoding: \xa0chunked\r\n'), 'BadTransferEncoding');
    assert.equal(reason('Content-Length: 1\r\nContent-Length: 1\r\n'), 'MultipleContentLength');
  });
  it('parses traceparent strictly', () => {
    assert.equal(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')?.flags, 1);
    assert.equal(parseTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01'), undefined);
    assert.equal(parseTraceparent('garbage'), undefined);
  });
});
