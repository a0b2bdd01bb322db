import { useEffect, useState } from 'preact/hooks';
import { api, meshApi, nodeApi } from './api.js';

import type { Explanation, SideExplanation as Side } from '../../src/policy/explain.js';

/** GET /v1/policy/explain: one explanation, or one per backend when the destination is a Service (the LB picks before policy judges). */
interface Answer { explanations: Explanation[] }

interface Target { value: string; label: string; port?: number }

/** What `ebmesh policy explain FROM TO:PORT/PROTO` says, for a source and destination picked from the store. */
export function PolicyView() {
  const [sources, setSources] = useState<Target[]>([]);
  const [targets, setTargets] = useState<Target[]>([]);
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [port, setPort] = useState('');
  const [proto, setProto] = useState('TCP');
  const [answer, setAnswer] = useState<Answer>();
  const [error, setError] = useState<string>();

  useEffect(() => {
    Promise.all([api().call(meshApi.resources, { kind: 'Workload' }), api().call(meshApi.resources, { kind: 'Service' })])
      .then(([w, s]) => {
        const wl = w.items.flatMap((r) => (r.kind === 'Workload' ? [{
          value: `${r.metadata.namespace}/${r.metadata.name}`,
          label: `workload ${r.metadata.namespace}/${r.metadata.name}`,
          port: r.spec.ports?.[0]?.containerPort,
        }] : []));
        const svc = s.items.flatMap((r) => (r.kind === 'Service' ? [{
          value: `${r.metadata.namespace}/${r.metadata.name}`,
          label: `service ${r.metadata.namespace}/${r.metadata.name}${r.spec.clusterIP ? ` (${r.spec.clusterIP})` : ''}`,
          port: r.spec.ports?.[0]?.port,
        }] : []));
        setSources(wl);
        setTargets([...svc, ...wl]);
      })
      .catch((e: Error) => setError(e.message));
  }, []);

  const pickTo = (v: string) => {
    setTo(v);
    const p = targets.find((t) => t.value === v)?.port;
    if (p) setPort(String(p));
  };

  const ask = async (e: Event) => {
    e.preventDefault();
    setAnswer(undefined);
    setError(undefined);
    try {
      setAnswer(await api().call(nodeApi.policyExplain, { from, to: port ? `${to}:${port}/${proto}` : to }));
    } catch (err) {
      const m = (err as Error).message;
      setError(/not found/.test(m) && /explain/.test(m) ? `${m}: this agent has no policy explain endpoint yet` : m);
    }
  };

  return (
    <div class="policy-page">
      <form class="toolbar" onSubmit={ask} data-testid="policy-form">
        <label>from <select name="from" value={from} onChange={(e) => setFrom((e.target as HTMLSelectElement).value)} required>
          <option value="" disabled>source workload</option>{sources.map((s) => <option value={s.value}>{s.label}</option>)}
        </select></label>
        <label>to <select name="to" value={to} onChange={(e) => pickTo((e.target as HTMLSelectElement).value)} required>
          <option value="" disabled>destination</option>{targets.map((s) => <option value={s.value}>{s.label}</option>)}
        </select></label>
        <label>port <input name="port" size={6} value={port} required pattern="[0-9]+" onInput={(e) => setPort((e.target as HTMLInputElement).value)} /></label>
        <label><select name="proto" value={proto} onChange={(e) => setProto((e.target as HTMLSelectElement).value)}><option>TCP</option><option>UDP</option></select></label>
        <button type="submit">explain</button>
      </form>
      {error && <p class="error" data-testid="policy-error">{error}</p>}
      {answer && (() => {
        const verdicts = new Set(answer.explanations.map((x) => x.verdict));
        const overall = verdicts.size === 1 ? [...verdicts][0]! : 'mixed';
        return (
          <div class="explain" data-testid="policy-answer" data-verdict={overall}>
            <p class={`verdict-big ${overall}`}>{overall === 'allow' ? 'allowed' : overall === 'deny' ? 'denied' : 'allowed to some backends only'}</p>
            {answer.explanations.map((x) => (
              <div class="backend">
                {x.service && <h4>service {x.service.name ?? x.service.ip}:{x.service.port} → backend {'workload' in x.flow.to ? x.flow.to.workload : x.flow.to.ip}: {x.verdict}</h4>}
                {[x.egress, x.ingress].map((s) => (
                  <div class={`side ${s.verdict}`} data-direction={s.direction}>
                    <strong>{s.direction} of {s.subject ?? 'the other side'}: {s.verdict}</strong>
                    <p>{s.text}</p>
                    <p class="muted">decided by: {s.decidedBy}{s.policy ? ` — ${s.policy}${s.rule !== undefined ? ` rule ${s.rule}` : ''}` : ''}{s.via ? ` (via ${s.via})` : ''}</p>
                    {s.isolatedBy.length > 0 && <p class="muted">isolated by {s.isolatedBy.join(', ')}</p>}
                  </div>
                ))}
                {x.warnings.map((w) => <p class="warn">{w}</p>)}
              </div>
            ))}
          </div>
        );
      })()}
    </div>
  );
}
