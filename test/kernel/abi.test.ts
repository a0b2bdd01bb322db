import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BtfFile } from '../../src/kernel/index.js';
import { abiStructs, Counter, EventFlag, EventType, Reason, Verdict, HttpMethods } from '../../src/abi/structs.js';
import { readdirSync, readFileSync } from 'node:fs';
import { BPF_BUILD, PACKAGE_ROOT } from '../../src/paths.js';

// Reads BTF from the object file: needs no root, but does need the BPF build.
// A struct may live in one object only (observe's private maps): look in all.
test('every TS mirror matches the BTF layout clang produced', () => {
  const btfs = readdirSync(BPF_BUILD).filter((f) => f.endsWith('.bpf.o')).map((f) => BtfFile.parse(join(BPF_BUILD, f)));
  try {
    for (const codec of abiStructs) {
      const s = btfs.map((b) => b.struct(codec.cname)).find((x) => x);
      assert.ok(s, `struct ${codec.cname} is not in any object's BTF`);
      assert.equal(codec.size, s.size, `sizeof(struct ${codec.cname})`);
      assert.deepEqual(
        codec.layout.map((f) => [f.name, f.offset]),
        s.members.map((m) => [m.name, m.offset]),
        `fields of struct ${codec.cname}`,
      );
    }
  } finally {
    for (const b of btfs) b.close();
  }
});

// enum ebm_counter only indexes a map, so clang keeps no BTF for it: the
// header itself is the reference.
test('the counter indexes match enum ebm_counter in the ABI header', () => {
  const header = readFileSync(join(PACKAGE_ROOT, 'bpf/include/ebmesh_abi.h'), 'utf8');
  const inC = new Map([...header.matchAll(/EBM_CNT_([A-Z0-9_]+)\s*=\s*(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  inC.delete('MAX');
  assert.deepEqual(new Map(Object.entries(Counter)), inC);
});

test('event type, verdict, reason and method codes match the ABI header', () => {
  const header = readFileSync(join(PACKAGE_ROOT, 'bpf/include/ebmesh_abi.h'), 'utf8');
  const codes = (prefix: string) =>
    new Map([...header.matchAll(new RegExp(`${prefix}([A-Z0-9_]+)\\s*=\\s*(\\d+)`, 'g'))].map((m) => [m[1]!, Number(m[2])]));
  assert.deepEqual(new Map(Object.entries(EventType)), codes('EBM_EV_'));
  assert.deepEqual(new Map(Object.entries(Verdict)), codes('EBM_VERDICT_'));
  assert.deepEqual(new Map(Object.entries(Reason)), codes('EBM_REASON_'));
  assert.deepEqual(new Map(HttpMethods.map((m, i) => [m, i])), codes('EBM_HTTP_'));
});

test('event flag bits match the EBM_EV_F_ defines in the ABI header', () => {
  const header = readFileSync(join(PACKAGE_ROOT, 'bpf/include/ebmesh_abi.h'), 'utf8');
  const inC = new Map([...header.matchAll(/#define EBM_EV_F_([A-Z0-9_]+)\s+\(1u << (\d+)\)/g)].map((m) => [m[1]!, 1 << Number(m[2])]));
  assert.deepEqual(new Map(Object.entries(EventFlag)), inC);
});
