import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, medianDistribution, ratio, stdev, summarize } from './stats.js';

test('median of odd and even counts, unsorted input untouched', () => {
  const v = [5, 1, 3];
  assert.equal(median(v), 3);
  assert.deepEqual(v, [5, 1, 3]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('sample standard deviation', () => {
  assert.equal(stdev([2, 4, 4, 4, 5, 5, 7, 9]).toFixed(4), '2.1381');
  assert.equal(stdev([1]), 0);
});

test('noise verdict follows the coefficient of variation', () => {
  assert.equal(summarize([100, 101, 99]).verdict, 'stable');
  assert.equal(summarize([100, 150, 60]).verdict, 'noisy');
  assert.equal(summarize([100]).verdict, 'single run');
  assert.equal(summarize([100, 104], 0.01).verdict, 'noisy');
});

test('ratio is median over median, and flags overlapping ranges', () => {
  const base = summarize([100, 110, 90]);
  const same = summarize([105, 95, 100]);
  const slower = summarize([200, 210, 190]);
  assert.equal(ratio(slower, base).value, 2);
  assert.equal(ratio(slower, base).withinNoise, false);
  assert.equal(ratio(same, base).withinNoise, true);
  assert.ok(Number.isNaN(ratio(base, summarize([0, 0])).value));
});

test('median distribution is taken point by point', () => {
  const d = medianDistribution([
    [[50, 10], [99, 100]],
    [[50, 30], [99, 300]],
    [[50, 20], [99, 200]],
  ]);
  assert.deepEqual(d, [[50, 20], [99, 200]]);
});
