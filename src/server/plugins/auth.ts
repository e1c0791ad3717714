/**
 * API keys → tenants (NORMLAB_API_KEYS), sent as `Authorization: Bearer KEY`.
 * Every route but health and the docs needs a key; the key's tenant owns what
 * the request creates and is the only one that sees it. A presented key is
 * hashed and compared with every configured key's hash by timingSafeEqual,
 * without stopping at a match, so the time taken says nothing about which
 * key, or how much of one, was right. Failed attempts are counted per client
 * address: beyond AUTH_FAIL_MAX in AUTH_FAIL_WINDOW_MS the address gets 429
 * until the window ends. Without keys the API is open: every request acts
 * for the tenant "default".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiKey } from '../../config.js';
import type { Redis } from '../../store/redis.js';
import { HttpError } from '../errors.js';

/** Failed authentications per client address (AUTH_FAIL_MAX per AUTH_FAIL_WINDOW_MS), counted in Redis across API processes. */
export interface AuthFailLimit { redis: Redis; prefix: string; max: number; windowMs: number }

/** Most client addresses one process remembers as blocked. */
const MAX_BLOCKED = 100_000;

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

const PUBLIC_PATHS = ['/v1/healthz', '/v1/readyz', '/v1/openapi.json', '/v2/health/live', '/v2/health/ready',
  '/metrics']; // /metrics checks its own token (METRICS_TOKEN): it spans every tenant

export function isPublic(request: FastifyRequest): boolean {
  if (request.routeOptions.config.public === true) return true;
  const path = request.url.split('?')[0]!;
  return PUBLIC_PATHS.includes(path) || path === '/v1/docs' || path.startsWith('/v1/docs/');
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export function installAuth(app: FastifyInstance, keys: ApiKey[], failLimit?: AuthFailLimit): void {
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
  // Addresses over the limit, until when: refused before any key is checked, so guessing stops paying off.
  const blocked = new Map<string, number>();
  const tooMany = (reply: FastifyReply, until: number, limit: AuthFailLimit) => {
    const retryAfterSeconds = Math.max(1, Math.ceil((until - Date.now()) / 1000));
    reply.header('retry-after', String(retryAfterSeconds));
    return new HttpError(429, 'RATE_LIMITED', `more than ${limit.max} failed authentications from this client address in ${limit.windowMs} ms; retry in ${retryAfterSeconds} s`, {
      limit: limit.max, windowMs: limit.windowMs, retryAfterSeconds, setting: 'AUTH_FAIL_MAX',
    });
  };
  /** Count a failure of this address; the time until which it is blocked, or null. Redis away: not counted. */
  const countFailure = async (ip: string, limit: AuthFailLimit): Promise<number | null> => {
    const key = `${limit.prefix}:authfail:${ip}`;
    const result = await limit.redis.multi().incr(key).pexpire(key, limit.windowMs, 'NX').pttl(key).exec().catch(() => null);
    const count = Number(result?.[0]?.[1] ?? 0);
    if (count <= limit.max) return null;
    const until = Date.now() + Math.max(0, Number(result?.[2]?.[1] ?? limit.windowMs));
    if (blocked.size >= MAX_BLOCKED) for (const [addr, t] of blocked) if (t <= Date.now()) blocked.delete(addr);
    if (blocked.size < MAX_BLOCKED) blocked.set(ip, until);
    return until;
  };

  app.addHook('onRequest', async (request, reply) => {
    request.clientId = request.ip;
    if (isPublic(request)) return;
    const blockedUntil = blocked.get(request.ip);
    if (failLimit && blockedUntil !== undefined) {
      if (blockedUntil > Date.now()) throw tooMany(reply, blockedUntil, failLimit);
      blocked.delete(request.ip);
    }
    const presented = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1];
    let match: (typeof known)[number] | undefined;
    if (presented !== undefined) {
      const digest = sha256(presented);
      for (const k of known) if (timingSafeEqual(k.digest, digest)) match = k;
    }
    if (!match) {
      const until = failLimit ? await countFailure(request.ip, failLimit) : null;
      if (until !== null && failLimit) throw tooMany(reply, until, failLimit);
      reply.header('www-authenticate', 'Bearer');
      throw presented === undefined
        ? new HttpError(401, 'UNAUTHORIZED', 'this API needs an API key: send the header Authorization: Bearer <key>', { header: 'authorization' })
        : new HttpError(401, 'UNAUTHORIZED', 'the API key in the Authorization header is not valid', { header: 'authorization' });
    }
    request.tenant = match.tenant;
    request.clientId = match.id;
  });
}
