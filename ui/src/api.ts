/**
 * The UI's only source of data: the node API, reached through `ebmesh ui`'s
 * /api forwarder. Every call here is a GET of an endpoint the CLI can use too.
 */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = 'EBMESH_API';
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(res.status, code, message);
}

export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(`api${path}`, { signal, headers: { accept: 'application/json' } });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

/**
 * Reads a newline-delimited JSON stream (GET /v1/flows?follow=1) and hands
 * each record to `onItem` until the signal aborts or the stream ends.
 */
export async function stream(path: string, onItem: (item: unknown) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(`api${path}`, { signal, headers: { accept: 'application/x-ndjson' } });
  if (!res.ok) throw await errorOf(res);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      try { onItem(JSON.parse(line)); } catch { /* a torn line is skipped, not fatal */ }
    }
  }
}

export interface StatusWorkload { name: string; namespace: string; ip?: string; phase: string; ready: boolean }
export interface StatusService { name: string; namespace: string; clusterIP?: string; ports: string[]; endpoints: number }
export interface Status { instance: string; node: string; revision: number; workloads: StatusWorkload[]; services: StatusService[] }

export interface Resource {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}
