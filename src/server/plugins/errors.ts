/**
 * Every error becomes `{error:{code,message,details}}` with a stable code;
 * 5xx are logged and never show internals.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { SpecError } from '../../core/spec.js';
import { DatasetError } from '../../datasets/index.js';
import { DatasetQuotaError } from '../../store/datasets.js';
import { ActiveJobsLimitError } from '../../store/jobs.js';
import { contentEncoding, HttpError, ValidationError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The setting that sets the route's body limit, named in its 413 (default BODY_LIMIT_BYTES). */
    bodyLimitSetting?: string;
    /** Content-Encodings the route decodes itself besides identity (others: 415). */
    contentEncodings?: string[];
  }
}

interface Answer { status: number; code: string; message: string; details: Record<string, unknown> }

const DATASET_STATUS: Record<string, number> = {
  UNKNOWN_DATASET: 400, DATASET_UNAVAILABLE: 422, CSV_INVALID: 400, CSV_TOO_LARGE: 413,
};

/** Fastify's own client errors, by their code. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_CONTENT_LENGTH',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_JSON',
};

/** ioredis's errors for a command that could not reach Redis (disconnected with no offline queue, no answer in time, retries used up). */
function isRedisUnreachable(err: Error): boolean {
  return err.name === 'MaxRetriesPerRequestError' || /enableOfflineQueue|Command timed out|Connection is closed/.test(err.message);
}

function answer(err: Error, bodyLimit: number, bodyLimitSetting: string, redisReady: boolean): Answer {
  if (err instanceof HttpError) return { status: err.statusCode, code: err.code, message: err.message, details: err.details };
  if (err instanceof ValidationError) {
    return { status: 400, code: 'INVALID_REQUEST', message: err.message, details: { in: err.part, issues: err.issues } };
  }
  if (err instanceof SpecError) {
    return { status: 400, code: 'INVALID_SPEC', message: `invalid job spec: ${err.message}`, details: { issues: err.issues } };
  }
  if (err instanceof DatasetError) {
    return { status: DATASET_STATUS[err.code] ?? 400, code: err.code, message: err.message, details: err.details ?? {} };
  }
  if (err instanceof ActiveJobsLimitError) {
    return { status: 429, code: 'TOO_MANY_ACTIVE_JOBS', message: `${err.message}; wait for one to finish or cancel one`, details: { limit: err.limit, setting: 'TENANT_MAX_ACTIVE_JOBS' } };
  }
  if (err instanceof DatasetQuotaError) {
    return {
      status: 413, code: 'DATASET_QUOTA_EXCEEDED', message: `${err.message}; delete an upload first`,
      details: { bytes: err.bytes, used: err.used, limit: err.limit, setting: 'TENANT_MAX_DATASET_BYTES' },
    };
  }
  const { code = '', statusCode = 500 } = err as FastifyError;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return {
      status: 413, code: 'PAYLOAD_TOO_LARGE', message: `the request body is larger than the limit of this route (${bodyLimit} bytes, ${bodyLimitSetting})`,
      details: { limit: bodyLimit, setting: bodyLimitSetting },
    };
  }
  if (isRedisUnreachable(err) || REDIS_FAILING_OVER.test(err.message) || (!redisReady && statusCode >= 500)) {
    return { status: 503, code: 'REDIS_UNAVAILABLE', message: 'the service cannot reach Redis; retry shortly', details: {} };
  }
  if (statusCode >= 400 && statusCode < 500) {
    // JSON syntax errors arrive as SyntaxError with status 400.
    const clientCode = FASTIFY_CODES[code] ?? (err instanceof SyntaxError ? 'MALFORMED_JSON' : 'BAD_REQUEST');
    return { status: statusCode, code: clientCode, message: err.message, details: {} };
  }
  return { status: 500, code: 'INTERNAL', message: 'internal error', details: {} };
}

/** What a cluster or Sentinel client reports while a primary fails over (the request may be retried). */
const REDIS_FAILING_OVER = /^(Too many Cluster redirections|CLUSTERDOWN|TRYAGAIN|All sentinels are unreachable|Connection is closed)/;

export function installErrorHandling(app: FastifyInstance): void {
  // A body in an encoding the route does not decode would be read as garbage: 415 before parsing.
  app.addHook('preParsing', async (request, _reply, payload) => {
    const encoding = contentEncoding(request.headers['content-encoding']);
    const accepted = request.routeOptions.config?.contentEncodings ?? [];
    if (encoding !== 'identity' && !accepted.includes(encoding)) {
      throw new HttpError(415, 'UNSUPPORTED_CONTENT_ENCODING',
        `Content-Encoding ${encoding.slice(0, 40)} is not supported here; send the body uncompressed${accepted.length ? ` or as ${accepted.join(', ')}` : ''}`,
        { header: 'content-encoding', supported: ['identity', ...accepted] });
    }
    return payload;
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const bodyLimit = request.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit ?? 0;
    const a = answer(err, bodyLimit, request.routeOptions.config?.bodyLimitSetting ?? 'BODY_LIMIT_BYTES', app.services.redis.status === 'ready');
    // 503s (Redis away, shutting down) are not failures of the server; the Redis connection logs the outage itself, rate-limited.
    if (a.code === 'INTERNAL') request.log.error({ err }, 'request failed');
    return reply.code(a.status).type('application/json; charset=utf-8').send({ error: { code: a.code, message: a.message, details: a.details } });
  });

  app.setNotFoundHandler((request, reply) => reply.code(404).send({
    error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}`, details: {} },
  }));
}
