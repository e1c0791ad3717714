/**
 * API keys → tenants (NORMLAB_API_KEYS), sent as `Authorization: Bearer KEY`.
 * Every route but health and the docs needs a key; the key's tenant owns what
 * the request creates and is the only one that sees it. A presented key is
 * hashed and compared with every configured key's hash by timingSafeEqual,
 * without stopping at a match, so the time taken says nothing about which
 * key, or how much of one, was right. Without keys the API is open: every
 * request acts for the tenant "default".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiKey } from '../../config.js';
import { HttpError } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant the request acts for. */
    tenant: string;
    /** Who the rate limit counts: an API key's id (a digest prefix, safe to log), or the client address when open. */
    clientId: string;
  }
  interface FastifyContextConfig {
    /** Served without an API key: the dashboard's pages and scripts, which hold no data. */
    public?: boolean;
  }
}

export const OPEN_TENANT = 'default';

const PUBLIC_PATHS = ['/v1/healthz', '/v1/readyz', '/v1/openapi.json'];

export function isPublic(request: FastifyRequest): boolean {
  if (request.routeOptions.config.public === true) return true;
  const path = request.url.split('?')[0]!;
  return PUBLIC_PATHS.includes(path) || path === '/v1/docs' || path.startsWith('/v1/docs/');
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export function installAuth(app: FastifyInstance, keys: ApiKey[]): void {
  app.decorateRequest('tenant', '');
  app.decorateRequest('clientId', '');
  if (keys.length === 0) {
    app.log.warn('NORMLAB_API_KEYS is not set: the API is open to anyone who can reach it (every request acts for the tenant "default")');
    app.addHook('onRequest', async (request) => {
      request.tenant = OPEN_TENANT;
      request.clientId = request.ip;
    });
    return;
  }

  const known = keys.map(({ key, tenant }) => {
    const digest = sha256(key);
    return { digest, tenant, id: `key-${digest.toString('hex').slice(0, 12)}` };
  });
  app.addHook('onRequest', async (request, reply) => {
    request.clientId = request.ip;
    if (isPublic(request)) return;
    const presented = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1];
    let match: (typeof known)[number] | undefined;
    if (presented !== undefined) {
      const digest = sha256(presented);
      for (const k of known) if (timingSafeEqual(k.digest, digest)) match = k;
    }
    if (!match) {
      reply.header('www-authenticate', 'Bearer');
      throw presented === undefined
        ? new HttpError(401, 'UNAUTHORIZED', 'this API needs an API key: send the header Authorization: Bearer <key>', { header: 'authorization' })
        : new HttpError(401, 'UNAUTHORIZED', 'the API key in the Authorization header is not valid', { header: 'authorization' });
    }
    request.tenant = match.tenant;
    request.clientId = match.id;
  });
}
