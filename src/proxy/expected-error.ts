/**
 * The base of the errors that are ordinary ways for a request to end (shed
 * under overload, an open breaker, an upstream that failed, no endpoint):
 * each becomes an answer (responses.ts) and is never logged with a stack.
 * So none is captured: under overload thousands are made per second, and a
 * stack trace costs more than the answer it ends in.
 */
export class ExpectedError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}
