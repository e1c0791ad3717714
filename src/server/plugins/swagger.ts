/**
 * OpenAPI from the route schemas, served as /v1/openapi.json and browsable at
 * /v1/docs. Every route but health and the docs takes the bearer API key and
 * can answer 401 and 429, which are added here rather than in each route.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { errors } from '../schemas/common.js';

/** The project's package.json (the nearest one up from here, in the sources or in dist/). */
function packageInfo(): { version: string; description: string } {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string; description: string };
}

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  const pkg = packageInfo();
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'NormLab API', version: pkg.version, description: pkg.description },
      tags: [
        { name: 'jobs', description: 'Training jobs: submit, follow, cancel' },
        { name: 'datasets', description: 'Built-in datasets and CSV uploads' },
        { name: 'models', description: 'Trained models, frozen batch-norm statistics, prediction' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http', scheme: 'bearer',
            description: 'An API key of NORMLAB_API_KEYS; it names the tenant that owns what the request creates and sees. A server without keys is open and needs none.',
          },
        },
      },
      security: [{ apiKey: [] }],
    },
    // Shared schemas ($id) become components/schemas/{$id}.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  app.addHook('onRoute', (route) => {
    if (!route.schema?.response || route.schema.hide) return;
    if (route.url.startsWith('/v1/healthz') || route.url.startsWith('/v1/readyz')) {
      route.schema = { ...route.schema, security: [] };
    } else {
      route.schema = { ...route.schema, response: { ...(route.schema.response as object), ...errors(401, 429) } };
    }
  });
  await app.register(swaggerUi, { routePrefix: '/v1/docs' });
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
