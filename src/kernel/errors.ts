import { EbmeshError, type ErrorDetails } from '../errors.js';
import { constants } from 'node:os';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, num]) => [num, name]),
);

export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `errno ${errno}`;
}

/** A libbpf or bpf(2) call failed; carries the errno. */
export class KernelError extends EbmeshError {
  readonly errno: number;
  constructor(op: string, errno: number, details: ErrorDetails = {}) {
    super('EBMESH_KERNEL', `${op} failed: ${errnoName(errno)}`, details);
    this.errno = Math.abs(errno);
  }
}

/** The verifier rejected a program; `log` is what the verifier said. */
export class VerifierError extends EbmeshError {
  readonly log: string;
  constructor(program: string, object: string, errno: number, log: string) {
    const tail = log.trim().split('\n').slice(-25).join('\n');
    super(
      'EBMESH_VERIFIER',
      `the kernel verifier rejected program ${program} (${errnoName(errno)}):\n${tail}`,
      { where: object, hint: 'the full verifier log is in error.log' },
    );
    this.log = log;
  }
}

/** The running kernel lacks something ebmesh needs. */
export class MissingFeatureError extends EbmeshError {
  readonly feature: string;
  constructor(feature: string, hint?: string) {
    super('EBMESH_KERNEL_FEATURE', `this kernel does not support ${feature}`, hint ? { hint } : {});
    this.feature = feature;
  }
}

/** The process lacks privileges the node needs (not a kernel problem). */
export class MissingCapabilityError extends EbmeshError {
  readonly capabilities: string[];
  constructor(capabilities: string[], hint: string) {
    super('EBMESH_CAPABILITY', `missing capabilities ${capabilities.join(', ')}: uid 0, but they are not in this process's effective set`, { hint });
    this.capabilities = capabilities;
  }
}
