/**
 * The Fastify app: `buildApp(config)` wires the services, validation, error
 * handling, OpenAPI and one route plugin per resource under /v1. It does not
 * listen; main.ts and the tests do.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { installErrorHandling } from './plugins/errors.js';
import { registerOpenApi } from './plugins/swagger.js';
import datasetsRoutes from './routes/datasets.js';
import healthRoutes from './routes/health.js';
import jobsRoutes from './routes/jobs.js';
import modelsRoutes from './routes/models.js';
import { ErrorResponse } from './schemas/common.js';
import { JobSpecSchema } from '../core/spec.js';
import { createServices, type Services } from './services.js';
import { typeboxValidatorCompiler } from './validation.js';

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
  }
}

export async function buildApp(config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel, name: 'normlab-api' },
    bodyLimit: config.bodyLimitBytes,
  });
  const services = createServices(config, app.log);
  app.decorate('services', services);
  app.addHook('onClose', async () => services.close());

  app.setValidatorCompiler(typeboxValidatorCompiler);
  installErrorHandling(app);
  app.addSchema(ErrorResponse);
  app.addSchema(JobSpecSchema);
  await registerOpenApi(app);

  await app.register(healthRoutes, { prefix: '/v1' });
  await app.register(jobsRoutes, { prefix: '/v1' });
  await app.register(datasetsRoutes, { prefix: '/v1' });
  await app.register(modelsRoutes, { prefix: '/v1' });
  return app;
}
