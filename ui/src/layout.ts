/**
 * Where each node of the service map goes. Hand-made rather than a force
 * simulation: a mesh map has tens of nodes, namespaces are boxes, and the
 * same mesh must draw the same way on every refresh (no jitter, stable
 * screenshots, positions tests can reason about). Inside a namespace, three
 * columns read left to right the way traffic goes: workloads no Service
 * selects (the clients), Services, then the workloads behind them.
 */
import type { MapEdge, MapNode } from '../../src/observe/servicemap.js';

export const NODE_W = 168;
export const NODE_H = 46;
const COL_GAP = 150;
const ROW_GAP = 22;
const PAD = 18;
const TITLE = 30;
const GROUP_GAP = 40;

export interface Box { x: number; y: number; w: number; h: number }
export interface Group extends Box { name: string; external: boolean }
export interface Layout { nodes: Map<string, Box>; groups: Group[]; width: number; height: number }

function column(n: MapNode): number {
  if (n.kind === 'service') return 1;
  if (n.kind === 'workload' && n.services?.length) return 2;
  return 0;
}

export function layout(nodes: MapNode[], _edges: MapEdge[], maxWidth: number): Layout {
  const byGroup = new Map<string, MapNode[]>();
  for (const n of nodes) {
    const g = n.namespace ?? '';
    if (!byGroup.has(g)) byGroup.set(g, []);
    byGroup.get(g)!.push(n);
  }
  const names = [...byGroup.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a.localeCompare(b)));
  const out: Layout = { nodes: new Map(), groups: [], width: 0, height: 0 };
  let x = 0;
  let y = 0;
  let rowH = 0;
  for (const name of names) {
    const members = byGroup.get(name)!;
    const cols: MapNode[][] = [[], [], []];
    for (const n of members) cols[column(n)]!.push(n);
    for (const c of cols) c.sort((a, b) => a.name.localeCompare(b.name));
    const used = cols.filter((c) => c.length);
    const rows = Math.max(...used.map((c) => c.length));
    const w = PAD * 2 + used.length * NODE_W + (used.length - 1) * COL_GAP;
    const h = TITLE + PAD + rows * NODE_H + (rows - 1) * ROW_GAP + PAD;
    if (x > 0 && x + w > maxWidth) {
      x = 0;
      y += rowH + GROUP_GAP;
      rowH = 0;
    }
    out.groups.push({ name: name || 'outside the mesh', external: name === '', x, y, w, h });
    used.forEach((c, ci) => {
      // centre a shorter column against the tallest one
      const top = y + TITLE + PAD + ((rows - c.length) * (NODE_H + ROW_GAP)) / 2;
      c.forEach((n, ri) => out.nodes.set(n.id, { x: x + PAD + ci * (NODE_W + COL_GAP), y: top + ri * (NODE_H + ROW_GAP), w: NODE_W, h: NODE_H }));
    });
    x += w + GROUP_GAP;
    rowH = Math.max(rowH, h);
    out.width = Math.max(out.width, x - GROUP_GAP);
  }
  out.height = y + rowH;
  return out;
}

/** An edge as an SVG path: left to right when it can, else a loop around the side. */
export function edgePath(a: Box, b: Box): { d: string; mid: { x: number; y: number } } {
  const ay = a.y + a.h / 2;
  const by = b.y + b.h / 2;
  if (b.x >= a.x + a.w) {
    const x1 = a.x + a.w, x2 = b.x - 6;
    const dx = Math.max(30, (x2 - x1) / 2);
    return { d: `M${x1},${ay} C${x1 + dx},${ay} ${x2 - dx},${by} ${x2},${by}`, mid: { x: (x1 + x2) / 2, y: (ay + by) / 2 } };
  }
  if (b.x + b.w <= a.x) {
    const x1 = a.x, x2 = b.x + b.w + 6;
    const dx = Math.max(30, (x1 - x2) / 2);
    return { d: `M${x1},${ay} C${x1 - dx},${ay} ${x2 + dx},${by} ${x2},${by}`, mid: { x: (x1 + x2) / 2, y: (ay + by) / 2 } };
  }
  // same column: bulge out to the right
  const x1 = a.x + a.w, x2 = b.x + b.w + 6;
  const bulge = 40 + Math.abs(by - ay) / 4;
  return { d: `M${x1},${ay} C${x1 + bulge},${ay} ${x2 + bulge},${by} ${x2},${by}`, mid: { x: Math.max(x1, x2) + bulge * 0.75, y: (ay + by) / 2 } };
}
