/**
 * HTTP's optional whitespace (RFC 9110 5.6.3: spaces and horizontal tabs)
 * around a value or a list member. Not String.prototype.trim(), which also
 * takes NBSP, line breaks and other Unicode spaces: a byte 0xA0 before
 * "chunked" would then frame a body that llhttp, and the HTTP grammar, read
 * otherwise.
 */
const OWS_AROUND = /^[\t ]+|[\t ]+$/g;

export const withoutOws = (s: string): string => s.replace(OWS_AROUND, '');
