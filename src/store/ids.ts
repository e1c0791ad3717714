import { randomBytes } from 'node:crypto';

/**
 * `{kind}_` + creation time (ms, base 36, fixed width) + 48 random bits:
 * ids sort by creation time, which the indexes use for paging.
 */
export function newId(kind: 'job' | 'ds' | 'exp'): string {
  return `${kind}_${Date.now().toString(36).padStart(9, '0')}${randomBytes(6).toString('hex')}`;
}

export const ID_PATTERN = '^(job|ds|exp)_[0-9a-z]{21}$';
