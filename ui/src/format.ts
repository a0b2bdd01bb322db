import type { EdgeState, Golden } from '../../src/observe/servicemap.js';

export const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(x >= 0.9995 || x === 0 ? 0 : 1)}%`);
export const ms = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(0)} ms`);
export const rate = (x: number) => (x === 0 ? '0' : x < 0.1 ? `${x.toFixed(3)}/s` : x < 10 ? `${x.toFixed(2)}/s` : `${x.toFixed(0)}/s`);
export const time = (iso: string) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
};

/** Colour of an edge: by success rate; an edge whose every flow was denied has its own colour (and a dash). */
export function edgeColour(state: EdgeState, m: Golden): string {
  if (state === 'denied') return 'var(--denied)';
  if (state === 'idle' || m.successRate === null) return 'var(--idle)';
  if (m.successRate >= 0.99) return 'var(--ok)';
  if (m.successRate >= 0.95) return 'var(--warn)';
  return 'var(--bad)';
}

/** Thickness by request rate, on a log scale so 1/s and 1000/s both read. */
export function edgeWidth(m: Golden): number {
  return Math.min(10, 1.5 + 2.2 * Math.log10(1 + m.rate * 10));
}
