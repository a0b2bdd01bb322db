import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, nodeApi } from './api.js';
import type { MapEdge, MapNode, ServiceMap } from '../../src/observe/servicemap.js';
import { normalizeFlow, type Flow } from '../../src/observe/servicemap-flow.js';
import { edgePath, layout, NODE_H, NODE_W } from './layout.js';
import { edgeColour, edgeWidth, ms, pct, rate, time } from './format.js';
import { FlowRows } from './FlowsView.js';

type Selection = { node: string } | { edge: string } | undefined;

const WINDOWS = [60, 300, 900];
const KIND_LABEL: Record<MapNode['kind'], string> = { service: 'SVC', workload: 'WL', external: 'EXT' };

function useWidth(ref: { current: HTMLElement | null }): number {
  const [w, setW] = useState(1000);
  useEffect(() => {
    if (!ref.current) return undefined;
    const ro = new ResizeObserver(([e]) => e && setW(Math.max(400, e.contentRect.width)));
    ro.observe(ref.current);
    return () => ro.disconnect();
  }, []);
  return w;
}

export function MapView() {
  const [win, setWin] = useState(60);
  const [map, setMap] = useState<ServiceMap>();
  const [error, setError] = useState<string>();
  const [sel, setSel] = useState<Selection>();
  const box = useRef<HTMLDivElement>(null);
  const width = useWidth(box);

  useEffect(() => {
    let stop = false;
    const ctl = new AbortController();
    const tick = async () => {
      try {
        const m = await api(ctl.signal).call(nodeApi.servicemap, { window: win });
        if (!stop) { setMap(m); setError(undefined); }
      } catch (e) {
        if (!stop) setError((e as Error).message);
      }
      if (!stop) timer = setTimeout(tick, 2000);
    };
    let timer = setTimeout(tick, 0);
    return () => { stop = true; ctl.abort(); clearTimeout(timer); };
  }, [win]);

  const lay = useMemo(() => (map ? layout(map.nodes, map.edges, width - 24) : undefined), [map, width]);
  const nodeById = useMemo(() => new Map((map?.nodes ?? []).map((n) => [n.id, n])), [map]);

  return (
    <div class="map-page">
      <div class="map-main" ref={box}>
        <div class="toolbar">
          <label>window{' '}
            <select value={win} onChange={(e) => setWin(Number((e.target as HTMLSelectElement).value))} data-testid="map-window">
              {WINDOWS.map((w) => <option value={w}>last {w / 60} min</option>)}
            </select>
          </label>
          {map && <span class="muted" data-testid="map-summary">{map.nodes.length} nodes · {map.edges.length} edges · {map.flowsCounted} flows</span>}
          {map && !map.flowsAvailable && <span class="warn" data-testid="no-flows">this agent reports no flows (GET /v1/flows is missing): nodes only</span>}
          {error && <span class="error">{error}</span>}
          <Legend />
        </div>
        {lay && map ? (
          <svg class="map" width={Math.max(lay.width + 24, 300)} height={lay.height + 24} data-testid="service-map">
            <defs>
              {['ok', 'warn', 'bad', 'idle', 'denied'].map((k) => (
                <marker id={`arrow-${k}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                  <path d="M0,0 L10,5 L0,10 z" fill={`var(--${k})`} />
                </marker>
              ))}
            </defs>
            <g transform="translate(12,12)">
              {lay.groups.map((g) => (
                <g class={`ns ${g.external ? 'external' : ''}`} data-namespace={g.name}>
                  <rect x={g.x} y={g.y} width={g.w} height={g.h} rx="10" />
                  <text x={g.x + 12} y={g.y + 20}>{g.external ? g.name : `namespace ${g.name}`}</text>
                </g>
              ))}
              {map.edges.map((e) => {
                const a = lay.nodes.get(e.source), b = lay.nodes.get(e.target);
                if (!a || !b) return null;
                const { d, mid } = edgePath(a, b);
                const colour = edgeColour(e.state, e.metrics);
                const key = colour.slice(6, -1);
                const denied = e.state === 'denied';
                const selected = sel && 'edge' in sel && sel.edge === e.id;
                return (
                  <g class={`edge ${selected ? 'selected' : ''}`} data-edge-id={e.id} data-edge-state={e.state} data-source={e.source} data-target={e.target}
                    onClick={() => setSel({ edge: e.id })}>
                    <path class="hit" d={d} />
                    <path d={d} stroke={colour} stroke-width={edgeWidth(e.metrics)} fill="none" stroke-dasharray={denied ? '7 5' : undefined} marker-end={`url(#arrow-${key})`} />
                    <text class="edge-label" x={mid.x} y={mid.y - 6} text-anchor="middle">
                      {e.state === 'denied' ? `⊘ denied ×${e.metrics.denied}` : `${rate(e.metrics.rate)} · ${pct(e.metrics.successRate)}`}
                      {e.state === 'partly-denied' && <tspan class="denied-count"> · ⊘{e.metrics.denied} denied</tspan>}
                    </text>
                  </g>
                );
              })}
              {map.nodes.map((n) => {
                const b = lay.nodes.get(n.id)!;
                const selected = sel && 'node' in sel && sel.node === n.id;
                const down = n.kind === 'workload' && n.ready === false;
                return (
                  <g class={`node ${n.kind} ${selected ? 'selected' : ''} ${down ? 'down' : ''}`} data-node-id={n.id} data-kind={n.kind}
                    transform={`translate(${b.x},${b.y})`} onClick={() => setSel({ node: n.id })}>
                    <rect width={NODE_W} height={NODE_H} rx={n.kind === 'service' ? 22 : 6} />
                    <text class="badge" x="12" y="18">{KIND_LABEL[n.kind]}</text>
                    <text class="name" x="12" y="35">{n.name.length > 20 ? `${n.name.slice(0, 19)}…` : n.name}</text>
                    {n.metrics.requests > 0 && <text class="stat" x={NODE_W - 10} y="18" text-anchor="end">{rate(n.metrics.rate)} {pct(n.metrics.successRate)}</text>}
                  </g>
                );
              })}
            </g>
          </svg>
        ) : !error && <p class="muted">loading…</p>}
      </div>
      <aside class="panel" data-testid="detail-panel">
        {!sel && <p class="muted">Click a node for its golden metrics, workloads, identities, policies and routes; click an edge for its recent flows.</p>}
        {sel && 'node' in sel && nodeById.get(sel.node) && <NodeDetail node={nodeById.get(sel.node)!} byId={nodeById} onPick={(id) => setSel({ node: id })} />}
        {sel && 'edge' in sel && map && <EdgeDetail edge={map.edges.find((e) => e.id === sel.edge)} id={sel.edge} win={win} byId={nodeById} />}
      </aside>
    </div>
  );
}

function Legend() {
  return (
    <span class="legend">
      <i style="background:var(--ok)" /> ≥99% ok <i style="background:var(--warn)" /> ≥95% <i style="background:var(--bad)" /> failing
      <i class="dash" /> all denied <i style="background:var(--idle)" /> idle · ⊘ = denied by policy · width = rate
    </span>
  );
}

function Metrics({ m, title }: { m: MapNode['metrics']; title: string }) {
  return (
    <div class="metrics" data-testid={`metrics-${title}`}>
      <h4>{title}</h4>
      <dl>
        <dt>rate</dt><dd>{rate(m.rate)}</dd>
        <dt>success</dt><dd>{pct(m.successRate)}</dd>
        <dt>p50</dt><dd>{ms(m.p50Ms)}</dd>
        <dt>p99</dt><dd>{ms(m.p99Ms)}</dd>
        <dt>requests</dt><dd>{m.requests}</dd>
        <dt>denied</dt><dd>{m.denied}</dd>
      </dl>
    </div>
  );
}

function Refs({ title, items, byId, onPick, empty }: { title: string; items?: string[]; byId?: Map<string, MapNode>; onPick?: (id: string) => void; empty: string }) {
  return (
    <div class="refs" data-testid={`refs-${title}`}>
      <h4>{title}</h4>
      {items?.length ? (
        <ul>{items.map((i) => <li>{byId?.has(i) && onPick ? <a href="#" onClick={(e) => { e.preventDefault(); onPick(i); }}>{i.replace(/^\w+:/, '')}</a> : i}</li>)}</ul>
      ) : <p class="muted">{empty}</p>}
    </div>
  );
}

function NodeDetail({ node: n, byId, onPick }: { node: MapNode; byId: Map<string, MapNode>; onPick: (id: string) => void }) {
  return (
    <div data-testid="node-detail" data-node={n.id}>
      <h3>{n.kind === 'service' ? 'Service' : n.kind === 'workload' ? 'Workload' : 'Outside the mesh'} <span class="mono">{n.namespace ? `${n.namespace}/` : ''}{n.name}</span></h3>
      <p class="muted">
        {n.ip && <>IP <span class="mono">{n.ip}</span> </>}
        {n.ports?.length ? <>ports {n.ports.join(', ')} </> : null}
        {n.phase && <>· {n.phase}{n.ready === false ? ' (not ready)' : ''}</>}
      </p>
      <Metrics m={n.metrics} title="inbound" />
      {n.outbound.requests > 0 && <Metrics m={n.outbound} title="outbound" />}
      {n.kind === 'service' && <Refs title="workloads" items={n.workloads} byId={byId} onPick={onPick} empty="no workload selected" />}
      {n.kind === 'workload' && <Refs title="services" items={n.services} byId={byId} onPick={onPick} empty="no Service selects it" />}
      {n.identities && (
        <div class="refs" data-testid="refs-identities">
          <h4>identities</h4>
          <ul>
            <li>service account <span class="mono">{n.identities.serviceAccount}</span></li>
            {n.identities.spiffe && <li class="mono">{n.identities.spiffe}</li>}
            {n.identities.numeric.length > 0 && <li>identity {n.identities.numeric.join(', ')}</li>}
          </ul>
        </div>
      )}
      {n.labels && <p class="labels">{Object.entries(n.labels).map(([k, v]) => <span class="tag">{k}={v}</span>)}</p>}
      {n.kind !== 'external' && <Refs title="policies" items={n.policies} empty="no NetworkPolicy selects it" />}
      {n.kind === 'service' && <Refs title="routes" items={n.routes} empty="no route attached" />}
    </div>
  );
}

function EdgeDetail({ edge: e, id, win, byId }: { edge: MapEdge | undefined; id: string; win: number; byId: Map<string, MapNode> }) {
  const [flows, setFlows] = useState<Flow[]>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    const ctl = new AbortController();
    api(ctl.signal).call(nodeApi.servicemapEdge, { id, window: win, limit: 50 })
      .then((r) => { setFlows(r.flows.map(normalizeFlow).filter((f): f is Flow => !!f)); setError(undefined); })
      .catch((err: Error) => err.name !== 'AbortError' && setError(err.message));
    return () => ctl.abort();
  }, [id, win, e?.lastSeen]);
  const [s, t] = id.split('>');
  const name = (x?: string) => (x && byId.get(x) ? `${byId.get(x)!.namespace ? `${byId.get(x)!.namespace}/` : ''}${byId.get(x)!.name}` : x);
  return (
    <div data-testid="edge-detail" data-edge={id}>
      <h3><span class="mono">{name(s)}</span> → <span class="mono">{name(t)}</span></h3>
      {e ? (
        <>
          <p class="muted">{e.kind === 'backend' ? 'service to the backend the load balancer chose' : 'client to what it dialled'} · {e.protocols.join(', ')} · <span class={`state ${e.state}`}>{e.state}</span></p>
          <Metrics m={e.metrics} title="edge" />
        </>
      ) : <p class="muted">no traffic in this window</p>}
      <h4>recent flows</h4>
      {error && <p class="error">{error}</p>}
      {flows && (flows.length ? <table class="flows compact"><tbody><FlowRows flows={flows} compact /></tbody></table> : <p class="muted">none</p>)}
    </div>
  );
}
