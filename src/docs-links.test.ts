/**
 * The README and docs link files of this repository (reports behind
 * figures, conformance runs, other docs): every such link must name a file
 * that is there, and every benchmark report quoted must have the
 * report.json its figures come from beside it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from './paths.js';

/** Markdown files that speak of this release (docs/history keeps old text as it was). */
function markdownFiles(): string[] {
  const docs = readdirSync(join(PACKAGE_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f));
  return ['README.md', ...docs];
}

/** Relative link targets of `[text](target)`, without their #anchor. */
function relativeLinks(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!.split('#')[0]!;
    if (!target || /^[a-z]+:/i.test(target)) continue;
    out.push(target);
  }
  return out;
}

test('every relative link in the README and docs names a file that exists', () => {
  const missing: string[] = [];
  for (const file of markdownFiles()) {
    for (const target of relativeLinks(readFileSync(join(PACKAGE_ROOT, file), 'utf8'))) {
      if (!existsSync(join(PACKAGE_ROOT, dirname(file), target))) missing.push(`${file}: ${target}`);
    }
  }
  assert.deepEqual(missing, []);
});

test('every benchmark report the docs quote has its report.json beside it', () => {
  const reports = markdownFiles().flatMap((file) =>
    relativeLinks(readFileSync(join(PACKAGE_ROOT, file), 'utf8'))
      .filter((t) => t.includes('benchmarks/') && t.endsWith('/report.md'))
      .map((t) => join(PACKAGE_ROOT, dirname(file), t)));
  assert.ok(reports.length > 0, 'docs/benchmarks.md quotes reports');
  for (const md of reports) {
    const json = join(dirname(md), 'report.json');
    assert.ok(existsSync(json), `${json} is missing`);
    const report = JSON.parse(readFileSync(json, 'utf8')) as { scenarios: Array<{ status: string }> };
    assert.ok(report.scenarios.every((s) => s.status === 'ok'), `${json}: a scenario did not finish`);
  }
});
