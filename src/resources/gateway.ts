/**
 * Gateway API HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1) as the
 * mesh uses them: the GAMMA convention, where the parent is a Service and the
 * route manages traffic addressed to that Service. Field names and defaults
 * follow the upstream API so a Kubernetes user reads them at sight; only the
 * parts the node proxy implements are accepted (`strict`), so a field we
 * would silently ignore is an error instead.
 */
import { z } from 'zod';
import { dnsLabel, metadata, portNumber } from './schema-common.js';

/** Gateway API Duration: 1 to 4 groups of number+unit, e.g. "1s", "1m30s", "250ms". */
export const gatewayDuration = z
  .string()
  .regex(/^([0-9]{1,5}(h|m|s|ms)){1,4}$/, 'must be a Gateway API duration such as "500ms", "2s" or "1m30s"');

/** Milliseconds of a Gateway API duration ("0s" means no timeout where the API says so). */
export function durationMs(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return total;
}

const headerName = z.string().min(1).max(256).regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/, 'must be an HTTP header name (token characters)');

/** GAMMA: a route attaches to a Service (group "" or "core"). */
export const serviceParentRef = z
  .object({
    group: z.enum(['', 'core']).default(''),
    kind: z.literal('Service', { errorMap: () => ({ message: 'in the mesh a route attaches to a Service (GAMMA); kind must be "Service"' }) }),
    name: dnsLabel,
    namespace: dnsLabel.optional(),
    port: portNumber.optional(),
    sectionName: z.string().optional(),
  })
  .strict();

const backendRef = z
  .object({
    group: z.enum(['', 'core']).default(''),
    kind: z.literal('Service').default('Service'),
    name: dnsLabel,
    namespace: dnsLabel.optional(),
    port: portNumber.optional(),
    weight: z.number().int().min(0).max(1_000_000).default(1),
  })
  .strict();

const headerMatch = z
  .object({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: headerName,
    value: z.string().max(4096),
  })
  .strict();

const pathMatch = z
  .object({
    type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
    value: z.string().max(1024).default('/'),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.type !== 'RegularExpression' && !p.value.startsWith('/')) ctx.addIssue({ code: 'custom', path: ['value'], message: 'must start with "/"' });
    if (p.type === 'RegularExpression') checkRegex(p.value, ctx, ['value']);
  });

function checkRegex(source: string, ctx: z.RefinementCtx, path: (string | number)[]): void {
  try {
    new RegExp(source);
  } catch (e) {
    ctx.addIssue({ code: 'custom', path, message: `is not a valid regular expression: ${(e as Error).message}` });
  }
}

const httpMethod = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

const httpRouteMatch = z
  .object({
    path: pathMatch.optional(),
    headers: z.array(headerMatch).max(16).optional(),
    queryParams: z
      .array(z.object({ type: z.enum(['Exact', 'RegularExpression']).default('Exact'), name: z.string().min(1), value: z.string() }).strict())
      .max(16)
      .optional(),
    method: httpMethod.optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    m.headers?.forEach((h, i) => h.type === 'RegularExpression' && checkRegex(h.value, ctx, ['headers', i, 'value']));
    m.queryParams?.forEach((q, i) => q.type === 'RegularExpression' && checkRegex(q.value, ctx, ['queryParams', i, 'value']));
  });

const headerModifier = z
  .object({
    set: z.array(z.object({ name: headerName, value: z.string() }).strict()).optional(),
    add: z.array(z.object({ name: headerName, value: z.string() }).strict()).optional(),
    remove: z.array(headerName).optional(),
  })
  .strict();

/** How a redirect or a rewrite changes the path (Gateway API HTTPPathModifier). */
const pathModifier = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ReplaceFullPath'), replaceFullPath: z.string().startsWith('/') }).strict(),
  z.object({ type: z.literal('ReplacePrefixMatch'), replacePrefixMatch: z.string().startsWith('/') }).strict(),
]);

const requestRedirect = z
  .object({
    scheme: z.enum(['http', 'https']).optional(),
    hostname: z.string().optional(),
    path: pathModifier.optional(),
    port: portNumber.optional(),
    statusCode: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
  })
  .strict();

const urlRewrite = z
  .object({
    hostname: z.string().optional(),
    path: pathModifier.optional(),
  })
  .strict();

const requestMirror = z
  .object({
    backendRef: backendRef.omit({ weight: true }),
    /** Gateway API v1.2: mirror only a share of requests (percent). */
    percent: z.number().int().min(0).max(100).optional(),
  })
  .strict();

/**
 * A backendRef's own filters (Gateway API HTTPBackendRef.filters): they change
 * only the requests sent to that backend and their responses, after the
 * rule's filters. The header modifiers are the ones the node proxy applies
 * per backend; each at most once.
 */
const backendFilter = z.discriminatedUnion('type', [
  z.object({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }).strict(),
  z.object({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }).strict(),
]);

const routeBackendRef = backendRef.extend({ filters: z.array(backendFilter).max(16).optional() }).superRefine((b, ctx) => {
  for (const t of ['RequestHeaderModifier', 'ResponseHeaderModifier'] as const) {
    if ((b.filters ?? []).filter((f) => f.type === t).length > 1) ctx.addIssue({ code: 'custom', path: ['filters'], message: `${t} may appear at most once per backendRef` });
  }
});

const httpFilter = z.discriminatedUnion('type', [
  z.object({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }).strict(),
  z.object({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }).strict(),
  z.object({ type: z.literal('RequestRedirect'), requestRedirect }).strict(),
  z.object({ type: z.literal('URLRewrite'), urlRewrite }).strict(),
  z.object({ type: z.literal('RequestMirror'), requestMirror }).strict(),
]);

const routeTimeouts = z
  .object({
    request: gatewayDuration.optional(),
    backendRequest: gatewayDuration.optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.request && t.backendRequest && durationMs(t.request) > 0 && durationMs(t.backendRequest) > durationMs(t.request)) {
      ctx.addIssue({ code: 'custom', path: ['backendRequest'], message: 'must not be longer than timeouts.request' });
    }
  });

/** Gateway API v1.2 HTTPRouteRetry. */
const routeRetry = z
  .object({
    codes: z.array(z.number().int().min(400).max(599)).optional(),
    attempts: z.number().int().min(0).max(10).optional(),
    backoff: gatewayDuration.optional(),
  })
  .strict();

const httpRouteRule = z
  .object({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).max(253).optional(),
    matches: z.array(httpRouteMatch).max(64).default([{ path: { type: 'PathPrefix', value: '/' } }]),
    filters: z.array(httpFilter).max(16).default([]),
    backendRefs: z.array(routeBackendRef).max(16).default([]),
    timeouts: routeTimeouts.optional(),
    retry: routeRetry.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const types = r.filters.map((f) => f.type);
    for (const t of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite'] as const) {
      if (types.filter((x) => x === t).length > 1) ctx.addIssue({ code: 'custom', path: ['filters'], message: `${t} may appear at most once per rule` });
    }
    if (types.includes('RequestRedirect') && types.includes('URLRewrite')) ctx.addIssue({ code: 'custom', path: ['filters'], message: 'RequestRedirect and URLRewrite cannot be used together' });
    if (!types.includes('RequestRedirect') && r.backendRefs.length === 0) ctx.addIssue({ code: 'custom', path: ['backendRefs'], message: 'a rule needs backendRefs unless it redirects' });
  });

const hostnames = z.array(z.string().max(253)).max(16).optional();

export const HTTPRoute = z
  .object({
    apiVersion: z.literal('gateway.networking.k8s.io/v1'),
    kind: z.literal('HTTPRoute'),
    metadata,
    spec: z
      .object({
        parentRefs: z.array(serviceParentRef).min(1, 'a mesh route needs a Service in parentRefs').max(32),
        hostnames,
        rules: z.array(httpRouteRule).min(1).max(16).default([{}]),
      })
      .strict(),
  })
  .strict();

const grpcMethodMatch = z
  .object({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    service: z.string().optional(),
    method: z.string().optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (!m.service && !m.method) ctx.addIssue({ code: 'custom', message: 'a method match needs service or method' });
    if (m.type === 'RegularExpression') {
      if (m.service) checkRegex(m.service, ctx, ['service']);
      if (m.method) checkRegex(m.method, ctx, ['method']);
    }
  });

const grpcFilter = z.discriminatedUnion('type', [
  z.object({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }).strict(),
  z.object({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }).strict(),
  z.object({ type: z.literal('RequestMirror'), requestMirror }).strict(),
]);

const grpcRouteRule = z
  .object({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).max(253).optional(),
    matches: z.array(z.object({ method: grpcMethodMatch.optional(), headers: z.array(headerMatch).max(16).optional() }).strict()).max(64).default([{}]),
    filters: z.array(grpcFilter).max(16).default([]),
    backendRefs: z.array(routeBackendRef).min(1).max(16),
  })
  .strict();

export const GRPCRoute = z
  .object({
    apiVersion: z.literal('gateway.networking.k8s.io/v1'),
    kind: z.literal('GRPCRoute'),
    metadata,
    spec: z
      .object({
        parentRefs: z.array(serviceParentRef).min(1, 'a mesh route needs a Service in parentRefs').max(32),
        hostnames,
        rules: z.array(grpcRouteRule).min(1).max(16),
      })
      .strict(),
  })
  .strict();

export type HTTPRouteResource = z.infer<typeof HTTPRoute>;
export type GRPCRouteResource = z.infer<typeof GRPCRoute>;
export type HTTPRouteRule = z.infer<typeof httpRouteRule>;
export type HTTPRouteMatch = z.infer<typeof httpRouteMatch>;
export type HTTPRouteFilter = z.infer<typeof httpFilter>;
export type HeaderModifier = z.infer<typeof headerModifier>;
export type BackendRef = z.infer<typeof backendRef>;
export type HeaderMatch = z.infer<typeof headerMatch>;
