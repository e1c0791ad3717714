/**
 * Prometheus metrics of one API process (prom-client, a registry per app).
 * Counted as they happen: HTTP requests and their latency by route and
 * status, predictions (latency and rows) by API. Read at scrape time: jobs by
 * BullMQ state (its job counts), worker threads busy training (one per
 * active job, over every worker sharing the queue), samples/s of each running
 * job (its latest progress event), the Redis connection state, and Node's
 * defaults (event-loop lag, heap, CPU).
 */
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JobStore } from '../store/jobs.js';
import type { Redis } from '../store/redis.js';

/** Running jobs whose samples/s are exported; more are left out rather than slow a scrape. */
const MAX_RUNNING_REPORTED = 256;

export type PredictApi = 'v1' | 'v2';

export class Metrics {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly predictDuration: Histogram<'api'>;
  private readonly predictRows: Counter<'api'>;

  constructor(queue: Queue, redis: Redis, jobStore: JobStore) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({
      name: 'normlab_http_requests_total', help: 'HTTP requests answered, by method, route template and status code',
      labelNames: ['method', 'route', 'status'], registers,
    });
    this.httpDuration = new Histogram({
      name: 'normlab_http_request_duration_seconds', help: 'Time from receiving a request to sending its answer, by method, route template and status code',
      labelNames: ['method', 'route', 'status'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
    });
    this.predictDuration = new Histogram({
      name: 'normlab_predict_duration_seconds', help: 'Model computation of one prediction request (rows in, probabilities out), by API (v1 predict, v2 infer)',
      labelNames: ['api'], buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers,
    });
    this.predictRows = new Counter({ name: 'normlab_predict_rows_total', help: 'Rows predicted, by API', labelNames: ['api'], registers });
    new Gauge({
      name: 'normlab_redis_up', help: 'Whether the API\'s Redis connection is ready (1) or not (0)', registers,
      collect() { this.set(redis.status === 'ready' ? 1 : 0); },
    });
    new Gauge({
      name: 'normlab_jobs', help: 'Training jobs in the queue by BullMQ state (waiting, active, delayed, prioritized, paused, completed, failed)',
      labelNames: ['state'], registers,
      async collect() {
        if (redis.status !== 'ready') return; // Redis away: the scrape still answers, normlab_redis_up says why
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'paused', 'completed', 'failed');
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'normlab_worker_threads_busy', help: 'Worker threads training a job, over every worker process sharing the queue (one per active job)', registers,
      async collect() { if (redis.status === 'ready') this.set(await queue.getActiveCount()); },
    });
    new Gauge({
      name: 'normlab_training_samples_per_second', help: 'Training throughput of each running job, from its latest progress event',
      labelNames: ['job'], registers,
      async collect() {
        this.reset();
        if (redis.status !== 'ready') return;
        const active = await queue.getActive(0, MAX_RUNNING_REPORTED - 1);
        const records = await Promise.all(active.map((j) => jobStore.get(j.id!)));
        for (const r of records) if (r?.status === 'running' && r.progress) this.set({ job: r.id }, r.progress.samplesPerSec);
      },
    });
  }

  /** Count every answered request under its route template (unmatched URLs as one route). */
  install(app: FastifyInstance): void {
    app.addHook('onResponse', async (request, reply) => {
      const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
      this.httpRequests.inc(labels);
      this.httpDuration.observe(labels, reply.elapsedTime / 1000);
    });
  }

  observePredict(api: PredictApi, rows: number, seconds: number): void {
    this.predictDuration.observe({ api }, seconds);
    this.predictRows.inc({ api }, rows);
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
