import { useEffect, useState } from 'preact/hooks';
import { api, meshApi, nodeApi } from './api.js';
import type { Status } from '../../src/api/status.js';
import { normalizeFlow, type Flow, type FlowEndpoint } from '../../src/observe/servicemap-flow.js';
import { ms, time } from './format.js';

/** The filters of `ebmesh observe` (namespace, from, to, verdict, protocol, status), passed to GET /v1/flows as they are: the node filters, not the page. */
export interface FlowFilter { namespace: string; from: string; to: string; verdict: string; protocol: string; status: string }
const EMPTY: FlowFilter = { namespace: '', from: '', to: '', verdict: '', protocol: '', status: '' };
const KEEP = 500;

/** The filters that are set, as the flow routes take them. */
export function flowInput(f: FlowFilter): Partial<FlowFilter> {
  const out: Partial<FlowFilter> = {};
  for (const [k, v] of Object.entries(f) as Array<[keyof FlowFilter, string]>) if (v) out[k] = v;
  return out;
}

const who = (e: FlowEndpoint) => (e.workload ? `${e.namespace ? `${e.namespace}/` : ''}${e.workload}` : e.ip ?? '?');
const key = (f: Flow) => `${f.time}|${f.type}|${who(f.source)}:${f.source.port}|${who(f.destination)}:${f.destination.port}|${f.http?.path ?? ''}`;

export function FlowRows({ flows, compact }: { flows: Flow[]; compact?: boolean }) {
  return (
    <>
      {flows.map((f) => (
        <tr class={`verdict-${f.verdict}`} data-verdict={f.verdict} data-protocol={f.protocol} data-src={who(f.source)} data-dst={who(f.destination)} data-status={f.http?.status ?? ''}>
          <td class="mono">{time(f.time)}</td>
          <td class="mono">{who(f.source)}</td>
          <td class="mono">{f.service ? <>{f.service.namespace}/{f.service.name} <span class="muted">→</span> </> : null}{who(f.destination)}{f.destination.port ? `:${f.destination.port}` : ''}</td>
          {!compact && <td>{f.protocol}{f.type && f.type !== f.protocol ? <span class="muted"> {f.type}</span> : null}</td>}
          <td><span class={`verdict ${f.verdict}`}>{f.verdict}</span></td>
          <td class="mono">{f.http ? `${f.http.method ?? ''} ${f.http.path ?? ''} ${f.http.status ?? ''}` : ''}</td>
          <td class="mono">{ms(f.latencyMs)}</td>
          {!compact && <td class="muted">{f.reason ?? ''}</td>}
        </tr>
      ))}
    </>
  );
}

type StreamState = 'connecting' | 'live' | 'ended' | 'error';
/** The rows and the stream's state, with the query they answer. */
interface Shown { query: string; flows: Flow[]; state: StreamState; error?: string }

export function FlowsView() {
  const [filter, setFilter] = useState<FlowFilter>(EMPTY);
  const query = new URLSearchParams(flowInput(filter)).toString();
  // Rows and state are kept with the query they answer, and shown only while it
  // is the current one: between a filter change and its stream's first answer the
  // page says "connecting" over an empty table, never the old filter's rows under
  // an old "live" (a reader, or a test, would take them for the new filter's).
  const [shown, setShown] = useState<Shown>({ query, flows: [], state: 'connecting' });
  const current: Shown = shown.query === query ? shown : { query, flows: [], state: 'connecting' };
  const [status, setStatus] = useState<Status>();
  // The status box is typed into: it holds a draft (so a re-render from the stream never wipes what is typed)
  // and commits on change (Enter or leaving the box), not on every key.
  const [statusDraft, setStatusDraft] = useState('');

  useEffect(() => { api().call(meshApi.status, {}).then(setStatus).catch(() => undefined); }, []);

  useEffect(() => {
    const ctl = new AbortController();
    // A stream that was replaced may still answer (its history was on the way): it changes nothing.
    const update = (f: (s: Shown) => Shown) => {
      if (!ctl.signal.aborted) setShown((s) => (s.query === query ? f(s) : s));
    };
    let pending: Flow[] = [];
    let seen = new Set<string>();
    setShown({ query, flows: [], state: 'connecting' });
    // Batch renders: a busy stream must not re-render the table per flow.
    const flush = setInterval(() => {
      if (!pending.length) return;
      const add = pending;
      pending = [];
      update((s) => ({ ...s, flows: [...add.reverse(), ...s.flows].slice(0, KEEP) }));
    }, 250);
    const take = (raw: unknown) => {
      const f = normalizeFlow(raw);
      if (!f) return;
      const k = key(f);
      if (seen.has(k)) return;
      seen.add(k);
      if (seen.size > 4 * KEEP) seen = new Set([...seen].slice(-2 * KEEP));
      pending.push(f);
    };
    (async () => {
      try {
        const client = api(ctl.signal);
        const recent = await client.call(nodeApi.flows, { ...flowInput(filter), last: 200 });
        [...recent.flows].sort((a, b) => a.time.localeCompare(b.time)).forEach(take);
        update((s) => ({ ...s, state: 'live' }));
        await client.follow(nodeApi.followFlows, { ...flowInput(filter), follow: '1' }, take, ctl.signal);
        update((s) => ({ ...s, state: 'ended' }));
      } catch (e) {
        if ((e as Error).name === 'AbortError') return;
        update((s) => ({ ...s, state: 'error', error: (e as Error).message }));
      }
    })();
    return () => { ctl.abort(); clearInterval(flush); };
  }, [query]);

  // Functional update: two quick changes must not lose one to a stale render's filter.
  const set = (k: keyof FlowFilter) => (e: Event) => {
    const v = (e.target as HTMLInputElement).value.trim();
    setFilter((f) => ({ ...f, [k]: v }));
  };
  const namespaces = [...new Set(status?.workloads.map((w) => w.namespace) ?? [])].sort();
  const inNs = <T extends { namespace: string; name: string }>(l: T[] | undefined) =>
    (l ?? []).filter((w) => !filter.namespace || w.namespace === filter.namespace).map((w) => `${w.namespace}/${w.name}`).sort();
  const workloads = inNs(status?.workloads);
  const services = inNs(status?.services).map((s) => `svc:${s}`);

  return (
    <div class="flows-page">
      <form class="toolbar filters" onSubmit={(e) => e.preventDefault()} data-testid="flow-filters">
        <label>namespace <select name="namespace" value={filter.namespace} onChange={set('namespace')}><option value="">any</option>{namespaces.map((n) => <option>{n}</option>)}</select></label>
        <label>from <select name="from" value={filter.from} onChange={set('from')}><option value="">any</option>{workloads.map((n) => <option>{n}</option>)}</select></label>
        <label>to <select name="to" value={filter.to} onChange={set('to')}><option value="">any</option>{[...services, ...workloads].map((n) => <option>{n}</option>)}</select></label>
        <label title="a drop by policy shows as denied">verdict <select name="verdict" value={filter.verdict} onChange={set('verdict')}><option value="">any</option>{['forwarded', 'dropped', 'error', 'audit'].map((n) => <option>{n}</option>)}</select></label>
        <label>protocol <select name="protocol" value={filter.protocol} onChange={set('protocol')}><option value="">any</option>{['tcp', 'udp', 'http'].map((n) => <option>{n}</option>)}</select></label>
        <label>status <input name="status" size={6} placeholder="e.g. 5xx" value={statusDraft}
          onInput={(e) => setStatusDraft((e.target as HTMLInputElement).value)} onChange={set('status')} /></label>
        <span class={`stream ${current.state}`} data-testid="stream-state" data-query={query}>{current.state === 'live' ? '● live' : current.state}</span>
        <span class="muted" data-testid="flow-count">{current.flows.length} flows{current.flows.length >= KEEP ? ` (newest ${KEEP})` : ''}</span>
      </form>
      {current.error && <p class="error" data-testid="flows-error">{current.error}</p>}
      <div class="table-wrap">
        <table class="flows" data-testid="flow-table">
          <thead><tr><th>time</th><th>source</th><th>destination</th><th>protocol</th><th>verdict</th><th>HTTP</th><th>latency</th><th>reason</th></tr></thead>
          <tbody><FlowRows flows={current.flows} /></tbody>
        </table>
      </div>
    </div>
  );
}
