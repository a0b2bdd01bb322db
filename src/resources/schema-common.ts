import { z } from 'zod';
import { canonicalIp, isV4Mapped, parseCidr, parseIp } from './ip.js';

/** RFC 1123 label, as Kubernetes uses for names and namespaces. */
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit');

const labelKey = z
  .string()
  .max(253)
  .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, 'must be a label key ([prefix/]name)');
const labelValue = z
  .string()
  .max(63)
  .regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/, 'must be a label value');

export const labels = z.record(labelKey, labelValue);

export const metadata = z
  .object({
    name: dnsLabel,
    namespace: dnsLabel.default('default'),
    labels: labels.optional(),
    annotations: z.record(z.string()).optional(),
  })
  .strict();

export const portNumber = z.number().int().min(1, 'must be a port from 1 to 65535').max(65535, 'must be a port from 1 to 65535');
export const protocol = z.enum(['TCP', 'UDP'], {
  errorMap: (issue, ctx) => ({
    message: issue.code === 'invalid_enum_value' && issue.received === 'SCTP' ? 'SCTP is not supported by ebmesh (TCP and UDP are)' : `must be TCP or UDP`,
  }),
});

/** An IANA service name, as Kubernetes requires for named ports. */
export const portName = z
  .string()
  .max(15)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a port name (lower-case letters, digits and "-", at most 15)')
  .refine((s) => /[a-z]/.test(s), 'must contain a letter');

export const ipv4Address = z
  .string()
  .regex(/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/, 'must be an IPv4 address');

export const cidr4 = z
  .string()
  .regex(/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\/(3[0-2]|[12]?\d)$/, 'must be an IPv4 CIDR (a.b.c.d/n)');

/**
 * An IPv6 address, stored in its canonical text (fd00::a, not FD00:0:0::A)
 * so that it is one key wherever it is used. A v4-mapped address
 * (::ffff:a.b.c.d) is IPv4 and is refused here.
 */
export const ipv6Address = z
  .string()
  .refine((s) => { const a = parseIp(s); return a?.family === 6 && !isV4Mapped(a); }, 'must be an IPv6 address (not v4-mapped)')
  .transform((s) => canonicalIp(s)!);

/** An address of either family (IPv6 stored canonical). */
export const ipAddress = z
  .string()
  .refine((s) => { const a = parseIp(s); return a !== undefined && !isV4Mapped(a); }, 'must be an IPv4 or IPv6 address')
  .transform((s) => canonicalIp(s)!);

export const cidr6 = z
  .string()
  .refine((s) => { const c = parseCidr(s); return c?.family === 6 && s.includes(':'); }, 'must be an IPv6 CIDR (x:y::z/n)');

/** A CIDR of either family (an ipBlock may be either). */
export const cidr = z
  .string()
  .refine((s) => parseCidr(s) !== undefined, 'must be an IPv4 CIDR (a.b.c.d/n) or an IPv6 CIDR (x:y::z/n)');

export const labelSelectorRequirement = z
  .object({
    key: labelKey,
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z.array(labelValue).optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const needs = r.operator === 'In' || r.operator === 'NotIn';
    if (needs && !r.values?.length) ctx.addIssue({ code: 'custom', path: ['values'], message: `operator ${r.operator} needs at least one value` });
    if (!needs && r.values?.length) ctx.addIssue({ code: 'custom', path: ['values'], message: `operator ${r.operator} takes no values` });
  });

export const labelSelector = z
  .object({
    matchLabels: labels.optional(),
    matchExpressions: z.array(labelSelectorRequirement).optional(),
  })
  .strict();

export type LabelSelector = z.infer<typeof labelSelector>;
