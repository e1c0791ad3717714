/**
 * JSON bodies: Fastify's own parser (prototype poisoning is an error), after
 * a check that arrays and objects nest at most MAX_JSON_DEPTH levels, so a
 * hostile `[[[[…]]]]` is a 400 and never a deep recursion in the parser or
 * the validator.
 */
import type { FastifyInstance } from 'fastify';
import { HttpError } from '../errors.js';

/** The deepest nesting of arrays and objects in JSON text (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) deepest = depth;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

function isValidJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

export function installJsonParser(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  // JSON is only read as application/json: a JSON body sent as text/plain is a 415, not a string to validate.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    const depth = jsonDepth(text);
    if (depth > maxDepth) {
      done(new HttpError(400, 'JSON_TOO_DEEP', `the JSON body nests ${depth} levels deep; the limit is ${maxDepth}`, {
        depth, limit: maxDepth, setting: 'MAX_JSON_DEPTH',
      }), undefined);
      return;
    }
    parse(request, text, (err, value) => {
      if (err && isValidJson(text)) {
        // Valid JSON that the parser refuses: a prototype-poisoning key.
        done(new HttpError(400, 'FORBIDDEN_JSON_KEY',
          'the JSON body has a "__proto__" key, or a "constructor" key holding "prototype"; such keys are refused', {
            keys: ['__proto__', 'constructor.prototype'],
          }), undefined);
        return;
      }
      done(err, value);
    });
  });
}
