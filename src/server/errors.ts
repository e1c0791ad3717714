/** An error with an HTTP status and a stable code, answered as `{error:{code,message,details}}`. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function notFound(kind: 'job' | 'model' | 'dataset', id: string): HttpError {
  return new HttpError(404, `${kind.toUpperCase()}_NOT_FOUND`, `no ${kind} with id ${id}`, { id });
}

/** One offending field: where it is, what rule it broke. */
export interface Issue { path: string; message: string; allowed?: unknown[]; [extra: string]: unknown }

/** A request that failed schema validation (body, query string, path parameters). */
export class ValidationError extends Error {
  constructor(readonly part: string, readonly issues: Issue[]) {
    super(`invalid ${part}: ${issues.map((i) => `${i.path || '/'} ${i.message}`).join('; ')}`);
    this.name = 'ValidationError';
  }
}

/** The Content-Encoding of a request, lower case ('identity' when absent; 'x-gzip' is 'gzip'). */
export function contentEncoding(header: string | string[] | undefined): string {
  const value = (Array.isArray(header) ? header.join(',') : header ?? '').trim().toLowerCase();
  return value === '' ? 'identity' : value === 'x-gzip' ? 'gzip' : value;
}
