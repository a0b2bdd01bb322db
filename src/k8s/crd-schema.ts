/**
 * ebmesh's own kinds as Kubernetes CustomResourceDefinitions, with the
 * OpenAPI v3 schema derived from the zod schema the mesh validates with, so
 * the API server refuses what ebmesh would refuse (types, ranges, patterns,
 * enums, required fields, and unknown fields under strict field validation)
 * from one declaration. What zod checks in code (superRefine) the CRD says in
 * CEL where a rule is given for it, and the agent checks again regardless.
 *
 * Only the zod constructs ebmesh's kinds use are converted; any other is an
 * error, so a new construct cannot slip through unchecked.
 */
import { z } from 'zod';

export type JsonSchema = { [k: string]: unknown };

/** CEL rules for what a schema checks in code, by the dotted path of the object they sit on. */
export type CelRules = Record<string, Array<{ rule: string; message: string }>>;

function stringSchema(s: z.ZodString): JsonSchema {
  const out: JsonSchema = { type: 'string' };
  for (const c of s._def.checks) {
    if (c.kind === 'min') out.minLength = c.value;
    else if (c.kind === 'max') out.maxLength = c.value;
    else if (c.kind === 'regex') out.pattern = c.regex.source;
    else throw new Error(`crd-schema: string check ${c.kind} has no OpenAPI form`);
  }
  return out;
}

function numberSchema(n: z.ZodNumber): JsonSchema {
  const out: JsonSchema = { type: 'number' };
  for (const c of n._def.checks) {
    if (c.kind === 'int') out.type = 'integer';
    else if (c.kind === 'min') { out.minimum = c.value; if (!c.inclusive) out.exclusiveMinimum = true; }
    else if (c.kind === 'max') { out.maximum = c.value; if (!c.inclusive) out.exclusiveMaximum = true; }
    else throw new Error(`crd-schema: number check ${c.kind} has no OpenAPI form`);
  }
  return out;
}

/** The OpenAPI (structural) schema of a zod schema; `path` names where it sits, for CEL rules and errors. */
export function openApiOf(schema: z.ZodTypeAny, cel: CelRules = {}, path = ''): JsonSchema {
  const def = schema._def as { typeName: z.ZodFirstPartyTypeKind };
  const withCel = (s: JsonSchema): JsonSchema => (cel[path] ? { ...s, 'x-kubernetes-validations': cel[path] } : s);
  switch (def.typeName) {
    case z.ZodFirstPartyTypeKind.ZodString: return stringSchema(schema as z.ZodString);
    case z.ZodFirstPartyTypeKind.ZodNumber: return numberSchema(schema as z.ZodNumber);
    case z.ZodFirstPartyTypeKind.ZodBoolean: return { type: 'boolean' };
    case z.ZodFirstPartyTypeKind.ZodEnum: return { type: 'string', enum: [...(schema as z.ZodEnum<[string, ...string[]]>).options] };
    case z.ZodFirstPartyTypeKind.ZodLiteral: {
      const v = (schema as z.ZodLiteral<unknown>).value;
      if (typeof v !== 'string') throw new Error(`crd-schema: ${path}: only string literals have an OpenAPI form`);
      return { type: 'string', enum: [v] };
    }
    case z.ZodFirstPartyTypeKind.ZodOptional: return openApiOf((schema as z.ZodOptional<z.ZodTypeAny>).unwrap(), cel, path);
    case z.ZodFirstPartyTypeKind.ZodDefault: {
      const d = schema as z.ZodDefault<z.ZodTypeAny>;
      const inner = openApiOf(d.removeDefault(), cel, path);
      const value = d._def.defaultValue();
      // An object's default is filled in field by field by its own defaults.
      return typeof value === 'object' ? inner : { ...inner, default: value };
    }
    case z.ZodFirstPartyTypeKind.ZodEffects: return withCel(openApiOf((schema as z.ZodEffects<z.ZodTypeAny>).innerType(), {}, path));
    case z.ZodFirstPartyTypeKind.ZodArray: {
      const a = schema as z.ZodArray<z.ZodTypeAny>;
      const out: JsonSchema = { type: 'array', items: openApiOf(a.element, cel, `${path}[]`) };
      if (a._def.minLength) out.minItems = a._def.minLength.value;
      if (a._def.maxLength) out.maxItems = a._def.maxLength.value;
      return withCel(out);
    }
    case z.ZodFirstPartyTypeKind.ZodRecord: {
      const r = schema as z.ZodRecord<z.ZodString, z.ZodTypeAny>;
      return { type: 'object', additionalProperties: openApiOf(r.valueSchema, cel, `${path}{}`) };
    }
    case z.ZodFirstPartyTypeKind.ZodObject: {
      const o = schema as z.AnyZodObject;
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const [k, v] of Object.entries(o.shape as Record<string, z.ZodTypeAny>)) {
        properties[k] = openApiOf(v, cel, path ? `${path}.${k}` : k);
        if (!v.isOptional()) required.push(k);
      }
      return withCel({ type: 'object', properties, ...(required.length ? { required } : {}) });
    }
    default:
      throw new Error(`crd-schema: ${path || 'the root'}: zod ${def.typeName} has no OpenAPI form here`);
  }
}

export interface CrdSpec {
  kind: string;
  plural: string;
  singular: string;
  shortNames?: string[];
  scope: 'Namespaced' | 'Cluster';
  /** The zod schema of the whole object (apiVersion, kind, metadata, spec). */
  schema: z.AnyZodObject;
  cel?: CelRules;
  printerColumns?: Array<{ name: string; type: string; jsonPath: string }>;
}

export const GROUP = 'ebmesh.io';
export const VERSION = 'v1alpha1';

/** The CustomResourceDefinition of one kind, as an object to write as YAML. */
export function crdOf(spec: CrdSpec): JsonSchema {
  const specSchema = spec.schema.shape.spec as z.ZodTypeAny;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${spec.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: spec.scope,
      names: { kind: spec.kind, plural: spec.plural, singular: spec.singular, listKind: `${spec.kind}List`, ...(spec.shortNames ? { shortNames: spec.shortNames } : {}) },
      versions: [{
        name: VERSION,
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            ...(spec.cel?.[''] ? { 'x-kubernetes-validations': spec.cel[''] } : {}),
            required: ['spec'],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec: openApiOf(specSchema, spec.cel ?? {}, 'spec'),
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
        },
        subresources: { status: {} },
        ...(spec.printerColumns ? { additionalPrinterColumns: spec.printerColumns } : {}),
      }],
    },
  };
}
