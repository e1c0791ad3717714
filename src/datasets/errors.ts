/** A dataset problem the client can act on: a stable `code`, a readable message, optional structured details. */
export class DatasetError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'DatasetError';
  }
}
