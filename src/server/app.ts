/**
 * The Fastify app: `buildApp(config)` wires the services, API keys and
 * tenants, rate limits, JSON parsing and validation, error handling, OpenAPI
 * and one route plugin per resource under /v1. It does not listen; main.ts
 * and the tests do.
 */
import type { Duplex } from 'node:stream';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { installAuth } from './plugins/auth.js';
import { installErrorHandling } from './plugins/errors.js';
import { installJsonParser } from './plugins/json-body.js';
import { registerOpenApi } from './plugins/swagger.js';
import { dashboardPages, samplesRoute } from './routes/dashboard.js';
import datasetsRoutes from './routes/datasets.js';
import experimentsRoutes from './routes/experiments.js';
import healthRoutes from './routes/health.js';
import jobsRoutes from './routes/jobs.js';
import modelsRoutes from './routes/models.js';
import v2Routes from './routes/v2.js';
import metricsRoutes from './routes/metrics.js';
import { ErrorResponse } from './schemas/common.js';
import { JobSpecSchema } from '../core/spec.js';
import { ExperimentSpecSchema, TemplateRequestSchema } from '../experiments/spec.js';
import { Summary as ExperimentSummary } from './schemas/experiments.js';
import { HttpError } from './errors.js';
import { createServices, whenReady, type Services } from './services.js';
import { typeboxValidatorCompiler } from './validation.js';

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
  }
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (a garbage
 * request line, a bad Content-Length, headers too large) get the project's
 * error body too, then the connection is closed.
 */
function answerClientError(err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const [status, code, text] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'HEADERS_TOO_LARGE', 'Request Header Fields Too Large']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'REQUEST_TIMEOUT', 'Request Timeout']
      : [400, 'BAD_REQUEST', 'Bad Request'];
  const reason = err.reason ?? err.message;
  const body = JSON.stringify({ error: { code, message: `the request is not valid HTTP: ${reason}`, details: { reason } } });
  socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** How long buildApp waits for Redis before starting without it. */
const READY_WAIT_MS = 2000;

export async function buildApp(config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel, name: 'normlab-api' },
    bodyLimit: config.bodyLimitBytes,
    // Requests that arrive while the server closes get the usual error body (below).
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
  });
  const services = createServices(config, app.log);
  app.decorate('services', services);
  await whenReady(services.redis, READY_WAIT_MS);
  app.addHook('onClose', async () => services.close());

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    services.streams.closeAll();
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw new HttpError(503, 'SHUTTING_DOWN', 'this API process is shutting down; retry the request', {});
  });

  services.metrics.install(app);
  app.setValidatorCompiler(typeboxValidatorCompiler);
  installErrorHandling(app);
  installJsonParser(app, config.maxJsonDepth);
  installAuth(app, config.apiKeys, config.authFailMax > 0
    ? { redis: services.redis, prefix: config.prefix, max: config.authFailMax, windowMs: config.authFailWindowMs } : undefined);
  if (config.rateLimitMax > 0) {
    await app.register(rateLimit, {
      max: config.rateLimitMax,
      timeWindow: config.rateLimitWindowMs,
      redis: services.redis,
      nameSpace: `${config.prefix}:ratelimit:`,
      // Redis away: let requests through (they answer 503 themselves if they need Redis).
      skipOnError: true,
      keyGenerator: (request) => request.clientId,
      errorResponseBuilder: (_request, context) => new HttpError(429, 'RATE_LIMITED',
        `more than ${context.max} requests in ${config.rateLimitWindowMs} ms with this ${config.apiKeys.length > 0 ? 'API key' : 'client address'}; retry in ${context.after}`,
        { limit: context.max, windowMs: config.rateLimitWindowMs, retryAfterSeconds: Math.ceil(context.ttl / 1000), setting: 'RATE_LIMIT_MAX' }),
    });
  }
  app.addSchema(ErrorResponse);
  app.addSchema(JobSpecSchema);
  app.addSchema(ExperimentSpecSchema);
  app.addSchema(TemplateRequestSchema);
  app.addSchema(ExperimentSummary);
  await registerOpenApi(app);

  await app.register(healthRoutes, { prefix: '/v1' });
  await app.register(jobsRoutes, { prefix: '/v1' });
  await app.register(experimentsRoutes, { prefix: '/v1' });
  await app.register(datasetsRoutes, { prefix: '/v1' });
  await app.register(modelsRoutes, { prefix: '/v1' });
  await app.register(samplesRoute, { prefix: '/v1' });
  await app.register(dashboardPages);
  await app.register(v2Routes, { prefix: '/v2' });
  await app.register(metricsRoutes);
  return app;
}
