/**
 * YAML text to validated resources. Every problem names the file and line,
 * the resource (kind namespace/name) and the field path; nothing is returned
 * unless every document in the input is valid.
 */
import { LineCounter, parseAllDocuments, isNode, type Document } from 'yaml';
import type { ZodIssue } from 'zod';
import { EbmeshError } from '../errors.js';
import { isKindName, kinds, namespaced, type AnyResource, type KindName } from './schemas.js';

export interface Problem {
  file: string;
  line?: number;
  resource?: string;
  field?: string;
  message: string;
}

export class ResourceError extends EbmeshError {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super('EBMESH_RESOURCE_INVALID', problems.map(formatProblem).join('\n'), { hint: 'nothing was applied' });
    this.problems = problems;
  }
}

export function formatProblem(p: Problem): string {
  const where = [p.line ? `${p.file}:${p.line}` : p.file, p.resource, p.field].filter(Boolean).join(': ');
  return `${where}: ${p.message}`;
}

export function resourceKey(r: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return namespaced.has(r.kind) ? `${r.kind}/${r.metadata.namespace ?? 'default'}/${r.metadata.name}` : `${r.kind}/${r.metadata.name}`;
}

export function describeResource(r: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return namespaced.has(r.kind) ? `${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name}` : `${r.kind} ${r.metadata.name}`;
}

function fieldPath(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function issueMessage(i: ZodIssue): string {
  if (i.code === 'unrecognized_keys') return `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
  if (i.code === 'invalid_type' && i.received === 'undefined') return 'is required';
  if (i.code === 'invalid_literal') return `must be ${JSON.stringify(i.expected)}`;
  return i.message;
}

function lineOf(doc: Document, lc: LineCounter, path: ReadonlyArray<string | number>): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}

/** Parses and validates every document in `text`. Throws ResourceError. */
export function parseResources(text: string, file = '<input>'): AnyResource[] {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: true });
  const problems: Problem[] = [];
  const out: AnyResource[] = [];
  if (!Array.isArray(docs)) {
    throw new ResourceError([{ file, message: 'is not a YAML stream' }]);
  }
  let current: Document | undefined;
  for (const doc of docs) {
    current = doc;
    if (doc.errors.length) {
      for (const e of doc.errors) problems.push({ file, line: e.linePos?.[0]?.line, message: `YAML: ${e.message.split('\n')[0]}` });
      continue;
    }
    let raw: unknown;
    try {
      raw = doc.toJS();
    } catch (e) {
      const line = doc.contents?.range ? lc.linePos(doc.contents.range[0]).line : undefined;
      problems.push({ file, line, message: `YAML: ${(e as Error).message}` });
      continue;
    }
    if (raw === null || raw === undefined) continue; // an empty document
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      validateOne(raw, []);
      continue;
    }
    const obj = raw as Record<string, unknown>;
    // A v1 List holds several resources in one document (so YAML anchors can be shared).
    if (obj.kind === 'List' && Array.isArray(obj.items)) {
      obj.items.forEach((item, i) => validateOne(item, ['items', i]));
    } else {
      validateOne(obj, []);
    }
  }
  function validateOne(raw: unknown, base: Array<string | number>) {
    const doc = current!;
    const at = (path: ReadonlyArray<string | number>) => lineOf(doc, lc, [...base, ...path]);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push({ file, line: at([]), message: 'a resource must be a mapping with apiVersion, kind, metadata and spec' });
      return;
    }
    const obj = raw as Record<string, unknown>;
    const kind = obj.kind;
    const meta = (obj.metadata ?? {}) as Record<string, unknown>;
    const label = typeof kind === 'string'
      ? describeResource({ kind, metadata: { name: typeof meta.name === 'string' ? meta.name : '?', namespace: typeof meta.namespace === 'string' ? meta.namespace : undefined } })
      : undefined;
    if (typeof kind !== 'string' || !isKindName(kind)) {
      problems.push({
        file, line: at(['kind']), field: 'kind',
        message: typeof kind === 'string' ? `unknown kind "${kind}" (known: ${Object.keys(kinds).join(', ')})` : 'is required',
      });
      return;
    }
    const result = kinds[kind].safeParse(obj);
    if (!result.success) {
      for (const i of result.error.issues) {
        problems.push({ file, line: at(i.path), resource: label, field: fieldPath(i.path) || undefined, message: issueMessage(i) });
      }
      return;
    }
    out.push(result.data as AnyResource);
  }
  // Two documents for the same object in one input is a mistake, not a merge.
  const seen = new Map<string, number>();
  out.forEach((r, i) => {
    const k = resourceKey(r);
    if (seen.has(k)) problems.push({ file, resource: describeResource(r), message: 'appears twice in this input' });
    seen.set(k, i);
  });
  if (problems.length) throw new ResourceError(problems);
  return out;
}
