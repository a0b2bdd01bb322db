import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalIp, cidrContains, cidrContainsIp, formatCidr, formatIPv6, isV4Mapped, parseCidr, parseIp, parseIPv6 } from './ip.js';

test('IPv6 text: every way of writing it parses, and prints canonically (RFC 5952)', () => {
  const cases: Array<[string, string]> = [
    ['::', '::'], ['::1', '::1'], ['1::', '1::'], ['FD00:0:0:0:0:0:0:A', 'fd00::a'],
    ['fd00:0000:0010:0096:0000:0000:0000:0001', 'fd00:0:10:96::1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longer zero run is compressed
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'], // of equal runs, the first
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'], // one zero group is not compressed
    ['::ffff:10.96.0.1', '::ffff:10.96.0.1'], ['::FFFF:a60:1', '::ffff:10.96.0.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ];
  for (const [text, canonical] of cases) assert.equal(canonicalIp(text), canonical, text);
  assert.equal(parseIPv6('::1'), 1n);
  assert.equal(formatIPv6((1n << 128n) - 1n), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
});

test('malformed addresses are refused, not guessed', () => {
  for (const bad of ['', ':', ':::', '1:::2', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::1', '::1%eth0',
    '::ffff:1.2.3', '::ffff:1.2.3.4.5', '1:2:3:4:5:6:7:1.2.3.4', ':1', '1:', '10.0.0.256', '10.0.0', '010.0.0.1']) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

test('v4-mapped addresses are told apart from native IPv6', () => {
  assert.equal(isV4Mapped(parseIp('::ffff:10.0.0.1')!), true);
  assert.equal(isV4Mapped(parseIp('fd00::ffff:a00:1')!), false);
  assert.equal(isV4Mapped(parseIp('10.0.0.1')!), false);
});

test('CIDRs of both families: host bits cleared, containment never across families', () => {
  assert.equal(formatCidr(parseCidr('fd00:1:2:3::5/64')!), 'fd00:1:2:3::/64');
  assert.equal(formatCidr(parseCidr('10.1.2.3/8')!), '10.0.0.0/8');
  assert.equal(parseCidr('fd00::/129'), undefined);
  assert.equal(parseCidr('10.0.0.0/33'), undefined);
  assert.equal(parseCidr('fd00::/064'), undefined);
  const v6 = parseCidr('fd00:eb::/48')!;
  assert.ok(cidrContainsIp(v6, parseIp('fd00:eb:0:1::2')!));
  assert.ok(!cidrContainsIp(v6, parseIp('fd00:ec::1')!));
  assert.ok(cidrContains(v6, parseCidr('fd00:eb:0:1::/64')!));
  assert.ok(!cidrContains(parseCidr('::/0')!, parseCidr('10.0.0.0/8')!), 'the IPv6 default route does not contain IPv4');
  assert.ok(!cidrContainsIp(parseCidr('0.0.0.0/0')!, parseIp('::1')!));
});
