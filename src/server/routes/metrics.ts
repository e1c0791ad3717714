/**
 * GET /metrics for Prometheus, on the API's port. It spans every tenant, so
 * tenant API keys do not open it: it takes the bearer token METRICS_TOKEN.
 * Without one it is open only while the whole API is (no NORMLAB_API_KEYS).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { prometheusContentType } from 'prom-client';
import { HttpError } from '../errors.js';
import { errors } from '../schemas/common.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

const metricsRoutes: FastifyPluginAsync = async (app) => {
  const { config, metrics } = app.services;
  const token = config.metricsToken ? sha256(config.metricsToken) : null;

  app.get('/metrics', {
    config: { rateLimit: false },
    schema: {
      tags: ['health'],
      summary: 'Prometheus metrics (text format 0.0.4); bearer METRICS_TOKEN',
      security: [],
      response: { 200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors(401, 403) },
    },
  }, async (request, reply) => {
    if (token) {
      const presented = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1];
      if (presented === undefined || !timingSafeEqual(sha256(presented), token)) {
        reply.header('www-authenticate', 'Bearer');
        throw new HttpError(401, 'UNAUTHORIZED', '/metrics needs the METRICS_TOKEN: send the header Authorization: Bearer <token>', { header: 'authorization', setting: 'METRICS_TOKEN' });
      }
    } else if (config.apiKeys.length > 0) {
      throw new HttpError(403, 'METRICS_DISABLED', 'this API has API keys but no METRICS_TOKEN; set METRICS_TOKEN to scrape /metrics', { setting: 'METRICS_TOKEN' });
    }
    return reply.type(prometheusContentType).send(await metrics.text());
  });
};

export default metricsRoutes;
