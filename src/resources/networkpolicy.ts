/**
 * NetworkPolicy (networking.k8s.io/v1), the whole standard, so that a policy
 * written for Kubernetes means the same thing here. Field names, defaults and
 * validation follow the upstream API: policyTypes defaults to Ingress, plus
 * Egress when the policy has egress rules; a port's protocol defaults to TCP;
 * endPort needs a numeric port; an ipBlock stands alone in its peer and its
 * excepts are strict subsets of its cidr. Unknown fields are errors.
 *
 * Registration in the kinds table lives in schemas.ts (not done here).
 */
import { z } from 'zod';
import { cidr, labelSelector, metadata, portName, portNumber, protocol } from './schema-common.js';
import { cidrContains, parseCidr } from './ip.js';

/** A port by number or by name; a union of zod schemas would say only "Invalid input". */
const portRef = z
  .custom<number | string>((v) => typeof v === 'number' || typeof v === 'string', { message: 'must be a port number or a port name' })
  .superRefine((v, ctx) => {
    const r = (typeof v === 'number' ? portNumber : portName).safeParse(v);
    if (!r.success) for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message });
  });

export const NetworkPolicyPort = z
  .object({
    protocol: protocol.default('TCP'),
    port: portRef.optional(),
    endPort: portNumber.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.endPort === undefined) return;
    if (p.port === undefined) ctx.addIssue({ code: 'custom', path: ['endPort'], message: 'endPort needs a numeric port' });
    else if (typeof p.port === 'string') ctx.addIssue({ code: 'custom', path: ['endPort'], message: `endPort cannot be used with a named port ("${p.port}")` });
    else if (p.endPort < p.port) ctx.addIssue({ code: 'custom', path: ['endPort'], message: `endPort ${p.endPort} must be >= port ${p.port}` });
  });

export const IPBlock = z
  .object({
    cidr,
    except: z.array(cidr).optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    // Runs even when a field failed its regex (zod marks it dirty, not aborted), so parse defensively.
    const outer = parseCidr(b.cidr);
    if (!outer) return;
    b.except?.forEach((e, i) => {
      const inner = parseCidr(e);
      if (inner && !(cidrContains(outer, inner) && inner.len > outer.len)) {
        ctx.addIssue({ code: 'custom', path: ['except', i], message: `${e} must be a strict subset of cidr ${b.cidr}` });
      }
    });
  });

export const NetworkPolicyPeer = z
  .object({
    podSelector: labelSelector.optional(),
    namespaceSelector: labelSelector.optional(),
    ipBlock: IPBlock.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (!p.podSelector && !p.namespaceSelector && !p.ipBlock) {
      ctx.addIssue({ code: 'custom', message: 'a peer needs podSelector, namespaceSelector or ipBlock' });
    }
    if (p.ipBlock && (p.podSelector || p.namespaceSelector)) {
      ctx.addIssue({ code: 'custom', path: ['ipBlock'], message: 'ipBlock cannot be combined with podSelector or namespaceSelector in one peer (use two peers)' });
    }
  });

export const NetworkPolicyIngressRule = z
  .object({ from: z.array(NetworkPolicyPeer).optional(), ports: z.array(NetworkPolicyPort).optional() })
  .strict();

export const NetworkPolicyEgressRule = z
  .object({ to: z.array(NetworkPolicyPeer).optional(), ports: z.array(NetworkPolicyPort).optional() })
  .strict();

const policyType = z.enum(['Ingress', 'Egress'], { errorMap: () => ({ message: 'must be Ingress or Egress' }) });

export const NetworkPolicySpec = z
  .object({
    podSelector: labelSelector,
    policyTypes: z.array(policyType).max(2).optional(),
    ingress: z.array(NetworkPolicyIngressRule).optional(),
    egress: z.array(NetworkPolicyEgressRule).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.policyTypes && new Set(s.policyTypes).size !== s.policyTypes.length) {
      ctx.addIssue({ code: 'custom', path: ['policyTypes'], message: 'lists a type twice' });
    }
  })
  // Kubernetes' defaulting, exactly: an empty or absent list becomes
  // [Ingress], plus Egress only if there is at least one egress rule
  // (so `egress: []` alone does not make a policy egress-isolating).
  .transform((s) => ({
    ...s,
    policyTypes: s.policyTypes?.length
      ? s.policyTypes
      : (['Ingress', ...(s.egress?.length ? ['Egress' as const] : [])] as Array<'Ingress' | 'Egress'>),
  }));

export const NetworkPolicy = z
  .object({
    apiVersion: z.literal('networking.k8s.io/v1'),
    kind: z.literal('NetworkPolicy'),
    metadata,
    spec: NetworkPolicySpec,
  })
  .strict();

/** A validated, defaulted NetworkPolicy (policyTypes always set). */
export type NetworkPolicy = z.infer<typeof NetworkPolicy>;
export type NetworkPolicyResource = NetworkPolicy;
/** What a user writes: defaults not yet applied. */
export type NetworkPolicyInput = z.input<typeof NetworkPolicy>;
export type NetworkPolicyPeer = z.infer<typeof NetworkPolicyPeer>;
export type NetworkPolicyPort = z.infer<typeof NetworkPolicyPort>;
export type IPBlock = z.infer<typeof IPBlock>;
export type PolicyType = z.infer<typeof policyType>;
