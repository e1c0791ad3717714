/**
 * `npm start`: the API and an embedded training worker in one process (and a
 * private redis-server when there is no Redis, see store/local-redis.ts).
 * `--role api` runs the API only, `--role worker` the worker only; any
 * number of each can share one Redis.
 */
import { pino } from 'pino';
import { ConfigError, DEFAULT_REDIS_URL, describeConfig, loadConfig, redisTarget } from './config.js';
import { buildApp } from './server/app.js';
import { localRedis, NoRedisError } from './store/local-redis.js';
import { startWorker, type TrainWorker } from '../workers/worker.js';

type Role = 'all' | 'api' | 'worker';

function parseRole(argv: string[]): Role {
  const i = argv.indexOf('--role');
  const role = i >= 0 ? argv[i + 1] : 'all';
  if (role !== 'all' && role !== 'api' && role !== 'worker') throw new ConfigError(`--role ${role}: expected api, worker or all`);
  return role;
}

function printHelp(): void {
  console.log('usage: node dist/src/main.js [--role all|api|worker]\n\n' +
    '  all     the API and an embedded training worker (default; `npm start`)\n' +
    '  api     the API only (`npm run api`)\n' +
    '  worker  a training worker only (like `npm run worker`)\n\nSettings (environment variables):');
  for (const s of describeConfig()) console.log(`  ${s.env.padEnd(26)} ${s.default.padEnd(12)} ${s.description}`);
}

async function main(): Promise<void> {
  if (process.argv.includes('--help')) return printHelp();
  const role = parseRole(process.argv.slice(2));
  const config = loadConfig();
  const logger = pino({ level: config.logLevel, name: 'normlab' });

  let stopRedis = async () => {};
  const single = redisTarget(config).kind === 'single';
  if (single && !config.redisUrl && role === 'all') {
    const redis = await localRedis(config.redisDataDir);
    config.redisUrl = redis.url;
    stopRedis = redis.stop;
    if (redis.origin !== 'default') logger.info({ url: redis.url, dataDir: config.redisDataDir }, `using a private redis-server (${redis.origin})`);
  }
  if (single) config.redisUrl ||= DEFAULT_REDIS_URL;

  const app = role === 'worker' ? null : await buildApp(config);
  const worker: TrainWorker | null = role === 'api' ? null : startWorker(config, logger);
  if (app) {
    await app.listen({ port: config.port, host: config.host });
    logger.info(`docs at http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${config.port}/v1/docs`);
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // At once, whatever Redis does: running jobs are left to the stalled check of other workers.
      logger.warn({ signal }, 'second signal: stopping now');
      void stopRedis();
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'stopping: the API finishes in-flight requests, running jobs checkpoint and go back to the queue (signal again to stop now)');
    // Redis away, a job that cannot checkpoint: the stop is bounded all the same.
    setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs, setting: 'SHUTDOWN_TIMEOUT_MS' }, 'could not stop gracefully in time: stopping now');
      void stopRedis();
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    try {
      await Promise.all([app?.close(), worker?.close()]);
      await stopRedis();
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'error while stopping');
      await stopRedis();
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  // Startup problems the user can fix get one plain message, not a stack.
  const plain = err instanceof NoRedisError || err instanceof ConfigError;
  console.error(plain ? (err as Error).message : err);
  process.exit(1);
});
