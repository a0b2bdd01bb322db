import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, meshApi } from './api.js';
import type { NodeStatus } from '../../src/api/status.js';
import { MapView } from './MapView.js';
import { FlowsView } from './FlowsView.js';
import { PolicyView } from './PolicyView.js';
import './style.css';

const TABS = { map: 'Service map', flows: 'Flows', policy: 'Policy' } as const;
type Tab = keyof typeof TABS;

const tabOf = (): Tab => {
  const t = location.hash.replace(/^#\/?/, '');
  return t in TABS ? (t as Tab) : 'map';
};

function App() {
  const [tab, setTab] = useState<Tab>(tabOf());
  const [status, setStatus] = useState<NodeStatus>();
  const [down, setDown] = useState<string>();
  useEffect(() => {
    const on = () => setTab(tabOf());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  useEffect(() => {
    const poll = () => api().call(meshApi.status, {})
      .then((s) => {
        if (s.role !== 'node') throw new Error(`this is a ${s.role}, not a node: run ebmesh ui --node NAME`);
        setStatus(s);
        setDown(undefined);
      })
      .catch((e: Error) => setDown(e.message));
    poll();
    const t = setInterval(poll, 5000);
    return () => clearInterval(t);
  }, []);
  return (
    <>
      <header>
        <span class="brand">ebmesh</span>
        <nav>
          {(Object.keys(TABS) as Tab[]).map((t) => <a href={`#/${t}`} class={t === tab ? 'active' : ''} data-tab={t}>{TABS[t]}</a>)}
        </nav>
        <span class="node" data-testid="node-info">
          {down ? <span class="error">{down}</span> : status ? <>node {status.node} · instance {status.instance} · {status.workloads.length} workloads · {status.services.length} services</> : '…'}
        </span>
      </header>
      <main>
        {tab === 'map' && <MapView />}
        {tab === 'flows' && <FlowsView />}
        {tab === 'policy' && <PolicyView />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
