/**
 * Errors with a stable `code` that callers match on, a message that says
 * what and where, and an optional hint for the person reading it.
 *
 * ERROR_CODES is the catalogue: every code ebmesh raises, what it means and
 * the HTTP status the API answers it with. docs/errors.md is its table for
 * people; errors.test.ts fails when the two disagree.
 */
export const ERROR_CODES = {
  EBMESH_USAGE: { status: 400, meaning: 'a command, option or API request is malformed: a missing or bad argument, field or value' },
  EBMESH_RESOURCE_INVALID: { status: 400, meaning: 'a resource fails its schema or a cross-resource check; nothing was applied' },
  EBMESH_UNKNOWN_KIND: { status: 400, meaning: 'a resource kind (or its alias) ebmesh does not know' },
  EBMESH_AMBIGUOUS: { status: 400, meaning: 'a short name matches several objects: say NAMESPACE/NAME' },
  EBMESH_NOT_FOUND: { status: 404, meaning: 'the named object, route or file does not exist' },
  EBMESH_TLS: { status: 502, meaning: 'a TLS handshake with a peer failed: its certificate is not trusted or does not name it, or it refused ours' },
  EBMESH_FORBIDDEN: { status: 403, meaning: 'the caller is authenticated but may not do this (another node\'s state, a reserved namespace)' },
  EBMESH_UNAUTHENTICATED: { status: 401, meaning: 'the caller presented no credential, or one the callee does not trust' },
  EBMESH_READ_ONLY: { status: 405, meaning: 'the face is read-only (the web UI); changes go through the CLI' },
  EBMESH_BAD_ADDRESS: { status: 400, meaning: 'not an IP address or CIDR of the family expected' },
  EBMESH_IP_CONFLICT: { status: 409, meaning: 'an address is taken by another workload or service' },
  EBMESH_FILE: { status: 400, meaning: 'a file named on the command line cannot be read' },
  EBMESH_NOT_RUNNING: { status: 503, meaning: 'the mesh node (or the workload asked about) is not running' },
  EBMESH_NOT_READY: { status: 503, meaning: 'workloads did not become ready in time' },
  EBMESH_START: { status: 500, meaning: 'a process of the mesh failed to start' },
  EBMESH_STOP: { status: 500, meaning: 'a process of the mesh did not stop' },
  EBMESH_API: { status: 502, meaning: 'an API peer answered something outside the contract or failed' },
  EBMESH_API_TIMEOUT: { status: 504, meaning: 'an API peer did not answer in time' },
  EBMESH_CP_UNAVAILABLE: { status: 503, meaning: 'the control plane is unreachable or did not answer' },
  EBMESH_STORE_UNAVAILABLE: { status: 503, meaning: 'the store (etcd) is unreachable or refused the call' },
  EBMESH_STORE_CORRUPT: { status: 500, meaning: 'the store file cannot be read as a store' },
  EBMESH_STORE_WRITE: { status: 507, meaning: 'the store file cannot be written (its disk is full or read-only); nothing of the change was stored' },
  EBMESH_ETCD_START: { status: 500, meaning: 'the lab\'s etcd did not start' },
  EBMESH_HOST_COMMAND: { status: 500, meaning: 'a host command (ip, mount, ...) failed' },
  EBMESH_SOCKET: { status: 500, meaning: 'a socket call failed' },
  EBMESH_PORT_IN_USE: { status: 409, meaning: 'a port ebmesh must listen on is taken' },
  EBMESH_KERNEL: { status: 500, meaning: 'a bpf() or other kernel call failed; the message names the call and errno' },
  EBMESH_VERIFIER: { status: 500, meaning: 'the kernel\'s verifier rejected a program; the verifier log is attached' },
  EBMESH_KERNEL_FEATURE: { status: 500, meaning: 'the kernel lacks a feature ebmesh needs (BTF, a program or map type, cgroup v2)' },
  EBMESH_CAPABILITY: { status: 500, meaning: 'the process lacks a privilege it needs (root, CAP_BPF, CAP_NET_ADMIN)' },
  EBMESH_POLICY_INVALID: { status: 400, meaning: 'a policy cannot be compiled into the kernel\'s tables' },
  EBMESH_POLICY_UNKNOWN_WORKLOAD: { status: 404, meaning: 'policy explain was asked about an unknown workload' },
  EBMESH_IDENTITY_EXHAUSTED: { status: 500, meaning: 'no security identity number is left to allocate' },
  EBMESH_IDENTITY_TABLE_INVALID: { status: 500, meaning: 'the persisted identity table is inconsistent' },
  EBMESH_IDENTITY_MISSING: { status: 500, meaning: 'a workload has no security identity where one is needed' },
  EBMESH_OBSERVE_OFF: { status: 503, meaning: 'flow observation is not running on this node' },
  EBMESH_CA_INVALID: { status: 400, meaning: 'a CA certificate or key is unusable' },
  EBMESH_CSR_INVALID: { status: 400, meaning: 'a certificate signing request is malformed or not signed by its key' },
  EBMESH_SVID_INVALID: { status: 500, meaning: 'a workload or node certificate is unusable' },
  EBMESH_SVID_MISMATCH: { status: 500, meaning: 'a certificate names another identity than expected' },
  EBMESH_PROXY_NOT_RUNNING: { status: 503, meaning: 'the node proxy is not running' },
  EBMESH_PROXY_LISTEN: { status: 500, meaning: 'the node proxy could not listen on its address' },
  EBMESH_PROXY_HANDOVER: { status: 500, meaning: 'a node proxy handover did not complete' },
  EBMESH_PROXY_CONFIG_INVALID: { status: 400, meaning: 'the node proxy was given a configuration it refuses' },
  EBMESH_UI_NOT_BUILT: { status: 500, meaning: 'the web UI bundle is missing (npm run build)' },
  EBMESH_RELAY_NOT_BUILT: { status: 500, meaning: 'the node proxy\'s native relay (native/relay) is not built (npm run build)' },
  EBMESH_KUBERNETES: { status: 502, meaning: 'the Kubernetes API server refused or failed a call' },
  EBMESH_BENCH: { status: 500, meaning: 'a benchmark step failed' },
  EBMESH_BENCH_BUSY: { status: 409, meaning: 'another benchmark holds the bench lock' },
  EBMESH_BENCH_DUPLICATE: { status: 400, meaning: 'a scenario was named twice' },
  EBMESH_BENCH_INSTANCE: { status: 500, meaning: 'a benchmark\'s mesh instance could not be made or removed' },
  EBMESH_BENCH_TOOL_MISSING: { status: 500, meaning: 'a tool a scenario needs is not installed (scripts/setup.sh installs them)' },
  EBMESH_BENCH_SERVER_START: { status: 500, meaning: 'a benchmark\'s server did not start' },
  EBMESH_BENCH_RESULT_INVALID: { status: 500, meaning: 'a scenario produced a result outside the report schema' },
  EBMESH_BENCH_LOADGEN_MISSING: { status: 500, meaning: 'the load generator is not built' },
  EBMESH_BENCH_LOADGEN_SPAWN: { status: 500, meaning: 'the load generator could not be started' },
  EBMESH_BENCH_LOADGEN_FAILED: { status: 500, meaning: 'the load generator exited with an error' },
  EBMESH_BENCH_LOADGEN_KILLED: { status: 500, meaning: 'the load generator was killed (its time bound)' },
  EBMESH_BENCH_LOADGEN_OUTPUT: { status: 500, meaning: 'the load generator printed something that is not its report' },
  EBMESH_BENCH_WRK_FAILED: { status: 500, meaning: 'wrk exited with an error' },
  EBMESH_BENCH_WRK_OUTPUT: { status: 500, meaning: 'wrk printed something that could not be read' },
  EBMESH_INTERNAL: { status: 500, meaning: 'a bug: an error ebmesh did not expect (please report it with the message)' },
} as const satisfies Record<string, { status: number; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetails {
  hint?: string;
  cause?: unknown;
  /** Where the problem is: a file, resource and field path, a map name… */
  where?: string;
}

export class EbmeshError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(details.where ? `${details.where}: ${message}` : message, { cause: details.cause });
    this.name = 'EbmeshError';
    this.code = code;
    this.hint = details.hint;
    this.where = details.where;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, where: this.where };
  }
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

export function isEbmeshError(e: unknown, code?: ErrorCode): e is EbmeshError {
  return e instanceof EbmeshError && (code === undefined || e.code === code);
}

/** The HTTP status an API answers an error with: the catalogue's for our codes, 500 for anything else. */
export function httpStatusOf(e: unknown): number {
  return e instanceof EbmeshError ? ERROR_CODES[e.code].status : 500;
}

/** Renders any thrown value for a person: message, then the hint if any. */
export function describeError(e: unknown): string {
  if (e instanceof EbmeshError) return e.hint ? `${e.message}\n  hint: ${e.hint}` : e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
