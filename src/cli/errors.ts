/** A mistake the user can fix (bad file, bad argument, an API's 4xx): printed as one line, never a stack. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}
