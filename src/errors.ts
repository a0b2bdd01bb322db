/**
 * Errors with a stable `code` that callers match on, a message that says
 * what and where, and an optional hint for the person reading it.
 */
export interface ErrorDetails {
  hint?: string;
  cause?: unknown;
  /** Where the problem is: a file, resource and field path, a map name… */
  where?: string;
}

export class EbmeshError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly where: string | undefined;

  constructor(code: string, message: string, details: ErrorDetails = {}) {
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

export function isEbmeshError(e: unknown, code?: string): e is EbmeshError {
  return e instanceof EbmeshError && (code === undefined || e.code === code);
}

/** Renders any thrown value for a person: message, then the hint if any. */
export function describeError(e: unknown): string {
  if (e instanceof EbmeshError) return e.hint ? `${e.message}\n  hint: ${e.hint}` : e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
