import type { LabelSelector } from './schema-common.js';

type Labels = Record<string, string> | undefined;

/** Service-style selector: every key=value present. An empty one matches nothing (as for Services). */
export function matchesLabels(selector: Labels, labels: Labels): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** metav1.LabelSelector semantics: the empty selector matches everything. */
export function matchesSelector(sel: LabelSelector | undefined, labels: Labels): boolean {
  if (!sel) return true;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const val = l[e.key];
    switch (e.operator) {
      case 'In': if (!has || !e.values?.includes(val!)) return false; break;
      case 'NotIn': if (has && e.values?.includes(val!)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
    }
  }
  return true;
}
