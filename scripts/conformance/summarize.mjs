#!/usr/bin/env node
// Summarises one conformance run for people: counts of passed, failed and
// skipped tests, each failure with the first lines of its message, each
// test the skip list skipped with the entry's reason. Reads what the suite
// wrote: a JUnit XML file (Kubernetes' e2e, via ginkgo) or `go test -json`
// lines (Gateway API's suite). Writes Markdown to stdout and a one-line
// tally ("N passed, N failed, N skipped") to stderr.
//
//
// A ginkgo report lists every spec of the binary, those outside the run's
// focus as skipped: --focus REGEX leaves them out of the counts, and
// --junit-out FILE writes the report with only the specs the run selected
// (the whole one is megabytes, nearly all of it specs of other suites).
//
// usage: summarize.mjs --junit FILE [--focus REGEX] [--junit-out FILE] | --gotest FILE
//                      [--skips FILE] [--title T] [--facts FILE]
import { readFileSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const v = args[++i];
  if (v === undefined) throw new Error(`summarize: ${a} needs a value`);
  opt[a.replace(/^--/, '')] = v;
}

const unescape = (s) => s.replace(/&#xA;/g, '\n').replace(/&#x9;/g, '\t').replace(/&#34;|&quot;/g, '"').replace(/&#39;|&apos;/g, "'")
  .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const attr = (tag, name) => {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  return m ? unescape(m[1]) : undefined;
};

/** The skip list: "REGEX -- REASON" per line, # comments. */
function readSkips(file) {
  if (!file) return [];
  const out = [];
  readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const at = t.indexOf(' -- ');
    if (at < 0) throw new Error(`${file}:${i + 1}: an entry is "REGEX -- REASON"`);
    out.push({ re: new RegExp(t.slice(0, at).trim()), pattern: t.slice(0, at).trim(), reason: t.slice(at + 4).trim() });
  });
  return out;
}

/** Tests from a ginkgo JUnit report: {name, status, message, seconds}. */
function fromJUnit(file, focus) {
  const xml = readFileSync(file, 'utf8');
  const tests = [];
  const kept = [];
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (let m; (m = re.exec(xml));) {
    const head = m[1];
    const body = m[3] ?? '';
    let name = attr(head, 'name') ?? '?';
    const status = attr(head, 'status') ?? (/<failure\b/.test(body) ? 'failed' : /<skipped\b/.test(body) ? 'skipped' : 'passed');
    if (/^\[(SynchronizedBeforeSuite|SynchronizedAfterSuite|BeforeSuite|AfterSuite|ReportAfterSuite|ReportBeforeSuite|DeferCleanup)/.test(name) && status === 'passed') continue;
    name = name.replace(/^\[It\] /, '');
    const fail = /<(failure|error)\b[^>]*>([\s\S]*?)<\/\1>/.exec(body);
    const skip = /<skipped\b[^>]*message="([^"]*)"/.exec(body);
    if (focus && status === 'skipped' && !focus.test(name)) continue;
    kept.push(m[0]);
    tests.push({ name, status: status === 'timedout' || status === 'panicked' || status === 'interrupted' || status === 'aborted' ? 'failed' : status,
      message: fail ? unescape(fail[2]) : skip ? unescape(skip[1]) : '', seconds: Number(attr(head, 'time') ?? 0) });
  }
  if (opt['junit-out']) {
    const head = /^[\s\S]*?<testsuite\b[^>]*>/.exec(xml)?.[0] ?? '<testsuites><testsuite>';
    const counts = { tests: tests.length, skipped: tests.filter((t) => t.status === 'skipped').length, failures: tests.filter((t) => t.status === 'failed').length };
    // ginkgo counts the specs it filtered out as "disabled"; those left are the skip list's.
    const trimmed = head.replace(/\s(tests|skipped|disabled|failures)="\d+"/g, (_, k) => ` ${k}="${counts[k === 'disabled' ? 'skipped' : k]}"`);
    writeFileSync(opt['junit-out'], `${trimmed}\n${kept.join('\n')}\n</testsuite>\n</testsuites>\n`);
  }
  return tests;
}

/** Tests from `go test -json`: the leaf tests' last action. */
function fromGoTest(file) {
  const byName = new Map();
  const output = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let e;
    try { e = JSON.parse(line); } catch { continue; }
    if (!e.Test) continue;
    if (e.Action === 'output') {
      const o = output.get(e.Test) ?? [];
      if (o.length < 400) o.push(e.Output);
      output.set(e.Test, o);
    }
    if (['pass', 'fail', 'skip'].includes(e.Action)) byName.set(e.Test, { action: e.Action, seconds: e.Elapsed ?? 0 });
  }
  const names = [...byName.keys()];
  const tests = [];
  for (const [name, r] of byName) {
    // A parent test is its subtests' sum: report the leaves only.
    if (names.some((n) => n.startsWith(`${name}/`))) continue;
    const out = (output.get(name) ?? []).join('');
    const why = out.split('\n').filter((l) => /Error|expected|failed|Skip|skip|not supported/i.test(l)).slice(-6).join('\n');
    tests.push({ name, status: r.action === 'pass' ? 'passed' : r.action === 'fail' ? 'failed' : 'skipped', message: r.action === 'pass' ? '' : why, seconds: r.seconds });
  }
  return tests;
}

const tests = opt.junit ? fromJUnit(opt.junit, opt.focus ? new RegExp(opt.focus) : undefined) : opt.gotest ? fromGoTest(opt.gotest) : (() => { throw new Error('summarize: --junit or --gotest'); })();
const skips = readSkips(opt.skips);
const passed = tests.filter((t) => t.status === 'passed');
const failed = tests.filter((t) => t.status === 'failed');
const skipped = tests.filter((t) => t.status === 'skipped');
const listed = [];
const other = [];
for (const t of skipped) {
  const s = skips.find((k) => k.re.test(t.name));
  (s ? listed : other).push({ ...t, reason: s?.reason });
}
const firstLines = (s, n) => s.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, n).join(' ').slice(0, 400);
const esc = (s) => s.replace(/\|/g, '\\|');

const out = [];
out.push(`# ${opt.title ?? 'Conformance run'}`, '');
if (opt.facts) for (const m of readFileSync(opt.facts, 'utf8').split('\n').filter(Boolean)) out.push(`- ${m}`);
out.push('', `**${passed.length} passed, ${failed.length} failed, ${skipped.length} skipped** (of ${tests.length} tests run or skipped)`, '');
if (failed.length) {
  out.push('## Failed', '', '| test | why (first lines) |', '| --- | --- |');
  for (const t of failed) out.push(`| ${esc(t.name)} | ${esc(firstLines(t.message, 4))} |`);
  out.push('');
}
if (listed.length) {
  out.push('## Skipped by the skip list', '', '| test | reason |', '| --- | --- |');
  for (const t of listed) out.push(`| ${esc(t.name)} | ${esc(t.reason)} |`);
  out.push('');
}
if (other.length) {
  out.push('## Skipped by the suite itself', '', '| test | why |', '| --- | --- |');
  for (const t of other) out.push(`| ${esc(t.name)} | ${esc(firstLines(t.message, 2)) || 'skipped'} |`);
  out.push('');
}
out.push('## Passed', '');
for (const t of passed) out.push(`- ${t.name} (${t.seconds.toFixed(1)} s)`);
out.push('');
process.stdout.write(out.join('\n'));
process.stderr.write(`${passed.length} passed, ${failed.length} failed, ${skipped.length} skipped\n`);
