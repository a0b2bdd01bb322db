import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BtfFile } from '../../src/kernel/index.js';
import { abiStructs, Counter, DropReason } from '../../src/abi/structs.js';
import { readFileSync } from 'node:fs';
import { BPF_BUILD, PACKAGE_ROOT } from '../../src/paths.js';

// Reads BTF from the object file: needs no root, but does need the BPF build.
test('every TS mirror matches the BTF layout clang produced', () => {
  const btf = BtfFile.parse(join(BPF_BUILD, 'sock_lb.bpf.o'));
  try {
    for (const codec of abiStructs) {
      const s = btf.struct(codec.cname);
      assert.ok(s, `struct ${codec.cname} is not in the object's BTF`);
      assert.equal(codec.size, s.size, `sizeof(struct ${codec.cname})`);
      assert.deepEqual(
        codec.layout.map((f) => [f.name, f.offset]),
        s.members.map((m) => [m.name, m.offset]),
        `fields of struct ${codec.cname}`,
      );
    }
  } finally {
    btf.close();
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

test('the drop reasons match enum ebm_drop_reason in the ABI header', () => {
  const header = readFileSync(join(PACKAGE_ROOT, 'bpf/include/ebmesh_abi.h'), 'utf8');
  const inC = new Map([...header.matchAll(/EBM_DROP_([A-Z0-9_]+)\s*=\s*(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  inC.delete('REASON_MAX');
  assert.deepEqual(new Map(Object.entries(DropReason)), inC);
});
