/**
 * ebmesh's own L7 kinds (ebmesh.io/v1alpha1), for what Gateway API does not
 * (yet) say: TrafficPolicy (rate limits, circuit breaking, outlier detection,
 * fault injection) and AuthorizationPolicy (L7 allow/deny by identity).
 * Both attach to a Service (or one HTTPRoute/GRPCRoute) with a targetRef, the
 * Gateway API policy-attachment shape. The format is documented in
 * docs/proxy.md and docs/l7-policy.md.
 */
import { z } from 'zod';
import { dnsLabel, metadata } from './schema-common.js';
import { gatewayDuration } from './gateway.js';

export const policyTargetRef = z
  .object({
    group: z.enum(['', 'core', 'gateway.networking.k8s.io']).default(''),
    kind: z.enum(['Service', 'HTTPRoute', 'GRPCRoute']),
    name: dnsLabel,
  })
  .strict()
  .superRefine((t, ctx) => {
    const routeKind = t.kind !== 'Service';
    if (routeKind !== (t.group === 'gateway.networking.k8s.io')) {
      ctx.addIssue({ code: 'custom', path: ['group'], message: routeKind ? `kind ${t.kind} is in group gateway.networking.k8s.io` : 'kind Service is in the core group ("")' });
    }
  });

const percentage = z.number().min(0).max(100);

const rateLimitBucket = z
  .object({
    /** Tokens added per `per`; a request takes one. */
    requests: z.number().int().min(1).max(1_000_000),
    per: gatewayDuration,
    /** Bucket size: how many requests may arrive at once; defaults to `requests`. */
    burst: z.number().int().min(1).max(1_000_000).optional(),
  })
  .strict();

export const TrafficPolicy = z
  .object({
    apiVersion: z.literal('ebmesh.io/v1alpha1'),
    kind: z.literal('TrafficPolicy'),
    metadata,
    spec: z
      .object({
        targetRef: policyTargetRef,
        rateLimit: z
          .object({
            /** One bucket shared by every client of the target. */
            total: rateLimitBucket.optional(),
            /** One bucket per client identity. */
            perClient: rateLimitBucket.optional(),
          })
          .strict()
          .optional(),
        circuitBreaker: z
          .object({
            maxConnections: z.number().int().min(1).default(1024),
            maxPendingRequests: z.number().int().min(0).default(1024),
            maxRequests: z.number().int().min(1).default(1024),
          })
          .strict()
          .optional(),
        outlierDetection: z
          .object({
            consecutiveErrors: z.number().int().min(1).default(5),
            baseEjectionTime: gatewayDuration.default('30s'),
            maxEjectionTime: gatewayDuration.default('300s'),
            maxEjectionPercent: percentage.default(100),
          })
          .strict()
          .optional(),
        fault: z
          .object({
            delay: z.object({ fixedDelay: gatewayDuration, percentage: percentage.default(100) }).strict().optional(),
            abort: z.object({ httpStatus: z.number().int().min(200).max(599), percentage: percentage.default(100) }).strict().optional(),
          })
          .strict()
          .optional(),
      })
      .strict(),
  })
  .strict();

const stringList = z.array(z.string().min(1)).min(1).max(64);

const authzSource = z
  .object({
    /** Client identities (spiffe://… or workload names); "*" suffix is a prefix match. */
    identities: stringList.optional(),
    namespaces: stringList.optional(),
    notIdentities: stringList.optional(),
    notNamespaces: stringList.optional(),
  })
  .strict();

const authzOperation = z
  .object({
    methods: stringList.optional(),
    /** Exact paths; a trailing "*" makes a prefix match ("/admin/*"). */
    paths: stringList.optional(),
    notMethods: stringList.optional(),
    notPaths: stringList.optional(),
  })
  .strict();

const authzHeader = z
  .object({
    name: z.string().min(1).regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/),
    /** Any of these values matches; omitted means "present". */
    values: stringList.optional(),
    notValues: stringList.optional(),
  })
  .strict();

export const AuthorizationPolicy = z
  .object({
    apiVersion: z.literal('ebmesh.io/v1alpha1'),
    kind: z.literal('AuthorizationPolicy'),
    metadata,
    spec: z
      .object({
        targetRef: policyTargetRef,
        action: z.enum(['ALLOW', 'DENY']),
        rules: z
          .array(
            z
              .object({
                name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label').max(63),
                from: z.array(authzSource).max(16).optional(),
                to: z.array(authzOperation).max(16).optional(),
                when: z.array(authzHeader).max(16).optional(),
              })
              .strict(),
          )
          .max(64)
          .superRefine((rules, ctx) => {
            const seen = new Set<string>();
            rules.forEach((r, i) => {
              if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `rule name ${r.name} is used twice` });
              seen.add(r.name);
            });
          }),
      })
      .strict(),
  })
  .strict();

export type TrafficPolicyResource = z.infer<typeof TrafficPolicy>;
export type AuthorizationPolicyResource = z.infer<typeof AuthorizationPolicy>;
export type PolicyTargetRef = z.infer<typeof policyTargetRef>;
