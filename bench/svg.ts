/**
 * Plots as hand-written SVG text. Two chart kinds do not justify a plotting
 * package, and text output is deterministic, needs no browser or canvas, and
 * can be checked by a test.
 */

export interface LatencySeries {
  name: string;
  /** [percentile 0..100, microseconds] */
  points: ReadonlyArray<readonly [number, number]>;
}

export interface Bar {
  name: string;
  value: number;
  /** Whisker, e.g. min and max over repeats. */
  low?: number;
  high?: number;
  /** Text above the bar, e.g. the ratio to the baseline. */
  label?: string;
}

// Okabe–Ito: stays distinguishable for the common kinds of colour blindness.
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

const W = 800;
const H = 440;
const M = { left: 80, right: 200, top: 48, bottom: 64 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/\.?0+$/, '');
}

export function formatMicros(us: number): string {
  if (us >= 1e6) return `${fmt(us / 1e6)} s`;
  if (us >= 1e3) return `${fmt(us / 1e3)} ms`;
  return `${fmt(us)} µs`;
}

function frame(title: string, body: string[]): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    ...body,
    `</svg>`,
    '',
  ].join('\n');
}

function legend(names: readonly string[]): string[] {
  return names.map((n, i) => {
    const y = M.top + 10 + i * 20;
    const x = M.left + PW + 16;
    return `<rect x="${x}" y="${y - 9}" width="14" height="10" fill="${PALETTE[i % PALETTE.length]}"/>` +
      `<text x="${x + 20}" y="${y}">${escapeXml(n)}</text>`;
  });
}

/** x position of a percentile on the "nines" scale: 90% → 1, 99% → 2, … */
function nines(p: number): number {
  return Math.log10(100 / (100 - p));
}

/**
 * Latency by percentile, log-log, one line per configuration: the shape shows
 * where a tail begins, which a table of four percentiles hides.
 */
export function latencyPercentilePlot(title: string, series: readonly LatencySeries[]): string {
  const pts = series.map((s) => s.points.filter(([p, v]) => p < 100 && v > 0));
  const all = pts.flat();
  if (all.length === 0) return frame(title, [`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no latency data</text>`]);
  const xMax = Math.max(2, Math.ceil(Math.max(...all.map(([p]) => nines(p)))));
  const lo = Math.floor(Math.log10(Math.min(...all.map(([, v]) => v))));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...all.map(([, v]) => v)))));
  const sx = (p: number): number => M.left + (nines(p) / xMax) * PW;
  const sy = (v: number): number => M.top + PH - ((Math.log10(v) - lo) / (hi - lo)) * PH;

  const body: string[] = [];
  for (let k = 0; k <= xMax; k++) {
    const x = M.left + (k / xMax) * PW;
    const label = k === 0 ? '0%' : `${(100 - 100 / 10 ** k).toFixed(Math.max(0, k - 2))}%`;
    body.push(`<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + PH}" stroke="#dddddd"/>`);
    body.push(`<text x="${x}" y="${M.top + PH + 18}" text-anchor="middle">${label}</text>`);
  }
  const steps = hi - lo <= 2 ? [1, 2, 5] : [1];
  for (let e = lo; e <= hi; e++) {
    for (const m of steps) {
      const v = m * 10 ** e;
      if (Math.log10(v) > hi + 1e-9) continue;
      const y = sy(v);
      body.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + PW}" y2="${y}" stroke="${m === 1 ? '#cccccc' : '#eeeeee'}"/>`);
      body.push(`<text x="${M.left - 6}" y="${y + 4}" text-anchor="end">${escapeXml(formatMicros(v))}</text>`);
    }
  }
  body.push(`<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="none" stroke="#333333"/>`);
  body.push(`<text x="${M.left + PW / 2}" y="${H - 18}" text-anchor="middle">percentile (log scale of 1/(1-p))</text>`);
  body.push(`<text transform="translate(18 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">latency (from scheduled send)</text>`);
  pts.forEach((p, i) => {
    if (p.length === 0) return;
    const d = p.map(([q, v]) => `${sx(q).toFixed(1)},${sy(v).toFixed(1)}`).join(' ');
    body.push(`<polyline fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2" points="${d}"/>`);
  });
  body.push(...legend(series.map((s) => s.name)));
  return frame(title, body);
}

/** Vertical bars with optional min–max whiskers. */
export function barPlot(title: string, unit: string, bars: readonly Bar[]): string {
  const top = Math.max(1e-9, ...bars.map((b) => Math.max(b.value, b.high ?? 0)));
  const scale = niceCeil(top);
  const sy = (v: number): number => M.top + PH - (v / scale) * PH;
  const body: string[] = [];
  for (let i = 0; i <= 5; i++) {
    const v = (scale * i) / 5;
    const y = sy(v);
    body.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + PW}" y2="${y}" stroke="#e5e5e5"/>`);
    body.push(`<text x="${M.left - 6}" y="${y + 4}" text-anchor="end">${escapeXml(fmtQty(v))}</text>`);
  }
  const slot = PW / Math.max(1, bars.length);
  const bw = Math.min(80, slot * 0.6);
  bars.forEach((b, i) => {
    const cx = M.left + slot * (i + 0.5);
    const color = PALETTE[i % PALETTE.length];
    body.push(`<rect x="${(cx - bw / 2).toFixed(1)}" y="${sy(b.value).toFixed(1)}" width="${bw.toFixed(1)}" height="${(M.top + PH - sy(b.value)).toFixed(1)}" fill="${color}"/>`);
    if (b.low !== undefined && b.high !== undefined) {
      const [y1, y2] = [sy(b.low).toFixed(1), sy(b.high).toFixed(1)];
      body.push(`<line x1="${cx}" y1="${y1}" x2="${cx}" y2="${y2}" stroke="#333333" stroke-width="1.5"/>`);
      body.push(`<line x1="${cx - 8}" y1="${y1}" x2="${cx + 8}" y2="${y1}" stroke="#333333"/>`);
      body.push(`<line x1="${cx - 8}" y1="${y2}" x2="${cx + 8}" y2="${y2}" stroke="#333333"/>`);
    }
    const labelY = Math.min(sy(b.value), b.high !== undefined ? sy(b.high) : Infinity) - 6;
    body.push(`<text x="${cx}" y="${labelY.toFixed(1)}" text-anchor="middle">${escapeXml(b.label ?? fmtQty(b.value))}</text>`);
    body.push(`<text x="${cx}" y="${M.top + PH + 18}" text-anchor="middle">${i + 1}</text>`);
  });
  body.push(`<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="none" stroke="#333333"/>`);
  body.push(`<text transform="translate(18 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(unit)}</text>`);
  body.push(`<text x="${M.left + PW / 2}" y="${H - 18}" text-anchor="middle">configuration (numbered as in the legend)</text>`);
  body.push(...legend(bars.map((b, i) => `${i + 1}. ${b.name}`)));
  return frame(title, body);
}

function niceCeil(v: number): number {
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

function fmtQty(v: number): string {
  if (v >= 1e6) return `${fmt(v / 1e6)}M`;
  if (v >= 1e3) return `${fmt(v / 1e3)}k`;
  return fmt(v);
}
