/** Liveness and readiness. */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { checkReady, READY_TIMEOUT_MS } from '../../store/redis.js';
import { HttpError } from '../errors.js';
import { errors } from '../schemas/common.js';

const healthRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app;

  app.get('/healthz', {
    config: { rateLimit: false },
    schema: {
      tags: ['health'],
      summary: 'The process is up',
      response: { 200: Type.Object({ status: Type.Literal('ok') }) },
    },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    config: { rateLimit: false },
    schema: {
      tags: ['health'],
      summary: 'Redis is usable (it answers; on Sentinel it is the primary; on a cluster every slot has a primary that answers); which compute kernels inference uses',
      response: {
        200: Type.Object({
          status: Type.Literal('ready'),
          redis: Type.Literal('ok'),
          kernels: Type.Union([Type.Literal('native'), Type.Literal('portable')]),
          gemm: Type.String(),
          cpu: Type.String({ description: 'Instruction set the native kernels picked at run time: avx512, avx2 or baseline (portable: the TypeScript kernels); NORMLAB_CPU forces one' }),
          inferThreads: Type.Union([Type.Literal(1), Type.Literal(2)], { description: 'Threads of one dense-layer prediction (NORMLAB_INFER_THREADS); the predictions are the same bytes either way' }),
          kernelsReason: Type.Optional(Type.String({ description: 'Why the portable kernels are in use' })),
        }),
        ...errors(503),
      },
    },
  }, async () => {
    try {
      await checkReady(services.redis, READY_TIMEOUT_MS);
    } catch (err) {
      throw new HttpError(503, 'REDIS_UNAVAILABLE', `Redis is not reachable: ${(err as Error).message}`);
    }
    const { kernels, gemm, cpu, inferThreads, reason } = services.kernels;
    return { status: 'ready' as const, redis: 'ok' as const, kernels, gemm, cpu, inferThreads, ...(reason ? { kernelsReason: reason } : {}) };
  });
};

export default healthRoutes;
