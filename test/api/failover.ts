/**
 * Failover under load: while 10 jobs train, kill -9 a Redis primary (the
 * one holding the queue's slot on a cluster; the Sentinel primary), then
 * check that every job still ends `succeeded` exactly once with every epoch
 * event once and its model, and measure how long the API took to answer
 * again. Prints the figures as one JSON line (the README quotes them).
 */
import { expect } from 'vitest';
import type { Config } from '../../src/config.js';
import { api, readEvents, startStack, submit, waitFor, type SseEvent, type Stack } from './helpers.js';

const EPOCHS = 6;
/** A few seconds of training on a shared 2-core machine, checkpointed often. */
export const FAILOVER_SPEC = {
  dataset: { id: 'spirals', size: 1500 },
  model: { hidden: [32, 32] },
  training: { epochs: EPOCHS, batchSize: 32 },
};
export const FAILOVER_JOBS = 10;

export interface FailoverFigures {
  deployment: string;
  prefix: string;
  /** Jobs training when the primary was killed. */
  jobs: number;
  /** Those and the probe submitted until the API accepted a job again. */
  submitted: number;
  succeeded: number;
  duplicated: number;
  lost: number;
  /** Jobs whose attempt was interrupted and that resumed (a `started` after the first). */
  resumed: number;
  /** From the kill until a submit (which needs the queue's slot) was accepted again. */
  apiAnsweredAgainMs: number;
  /** Submits refused (503) meanwhile, retried every 50 ms. */
  refusedWhileFailingOver: number;
  /** From the kill until every job had ended. */
  allDoneMs: number;
}

export interface FailoverTarget {
  name: string;
  config: Partial<Config>;
  /** Kill -9 the primary the queue is on; resolves when it is dead. */
  killPrimary(stack: Stack): Promise<void>;
}

/** Per job: how often each terminal event and each epoch appears in its stream. */
function tally(events: SseEvent[]): { terminal: number; epochs: Map<number, number>; starts: number } {
  const epochs = new Map<number, number>();
  for (const e of events) if (e.event === 'epoch') epochs.set(e.data.epoch, (epochs.get(e.data.epoch) ?? 0) + 1);
  return {
    terminal: events.filter((e) => e.event === 'completed' || e.event === 'failed' || e.event === 'cancelled').length,
    epochs,
    starts: events.filter((e) => e.event === 'started').length,
  };
}

export async function failoverUnderLoad(target: FailoverTarget): Promise<FailoverFigures> {
  const stack = await startStack(`failover-${target.name}`, {
    worker: true,
    config: {
      ...target.config,
      workerConcurrency: 4,
      checkpointEverySteps: 20,
      tenantMaxActiveJobs: 100,
      rateLimitMax: 0,
      // Connection errors during the failover are expected; the figures tell the story.
      logLevel: process.env.FAILOVER_LOG ?? 'silent',
      // The promoted replica has no replica of its own: do not wait long for one.
      redisWaitTimeoutMs: 300,
    },
  });
  const { base } = stack;
  try {
    const ids: string[] = [];
    for (let i = 0; i < FAILOVER_JOBS; i++) ids.push(await submit(base, { ...FAILOVER_SPEC, training: { ...FAILOVER_SPEC.training, seed: i + 1 } }));
    // Training under way: some job has finished an epoch.
    await readEvents(base, ids[0], { until: (e) => e.event === 'epoch' });

    const killedAt = Date.now();
    await target.killPrimary(stack);
    // A submit needs the queue's slot: retry one until it is accepted. The
    // accepted probe job counts like the others (submitted, must succeed).
    let apiAnsweredAgainMs = -1;
    let refused = 0;
    let lastRefusal = '';
    while (apiAnsweredAgainMs < 0) {
      const res = await api(base, 'POST', '/jobs', FAILOVER_SPEC).catch((err: unknown) => ({ status: 0, body: String(err), headers: new Headers() }));
      if (res?.status === 202) {
        apiAnsweredAgainMs = Date.now() - killedAt;
        ids.push(res.body.id);
      } else {
        refused++;
        lastRefusal = `${res.status} ${JSON.stringify(res.body)}`;
        // Refused while the primary fails over: 503 with a code, never a 500 or a dropped connection.
        expect(lastRefusal, 'a submit refused during the failover').toMatch(/^503 .*REDIS_UNAVAILABLE/);
        await new Promise((r) => setTimeout(r, 50));
      }
      if (Date.now() - killedAt > 60_000) throw new Error(`the API did not accept a job within 60 s of the kill (${refused} refusals, the last: ${lastRefusal})`);
    }

    for (const id of ids) await waitFor(base, id, (j) => j.status === 'succeeded' || j.status === 'failed' || j.status === 'cancelled', 90_000);
    const allDoneMs = Date.now() - killedAt;

    let succeeded = 0;
    let duplicated = 0;
    let resumed = 0;
    for (const id of ids) {
      const job = (await api(base, 'GET', `/jobs/${id}`)).body;
      const events = await readEvents(base, id);
      const t = tally(events);
      const epochsOnce = t.epochs.size === EPOCHS && [...t.epochs.values()].every((n) => n === 1);
      const history = (await api(base, 'GET', `/jobs/${id}/metrics`)).body;
      const model = await api(base, 'GET', `/models/${id}`);
      if (job.status === 'succeeded' && t.terminal === 1 && model.status === 200) succeeded++;
      if (t.terminal > 1 || !epochsOnce || history.epochs?.length !== EPOCHS) duplicated++;
      if (t.starts > 1) resumed++;
      expect(job.status, `job ${id}`).toBe('succeeded');
      expect(t.terminal, `terminal events of ${id}`).toBe(1);
      expect([...t.epochs.entries()].sort(([a], [b]) => a - b), `epoch events of ${id}`).toEqual(Array.from({ length: EPOCHS }, (_, i) => [i + 1, 1]));
      expect(model.status, `model of ${id}`).toBe(200);
    }
    const figures: FailoverFigures = {
      deployment: target.name, prefix: stack.config.prefix, jobs: FAILOVER_JOBS, submitted: ids.length, succeeded, duplicated,
      lost: ids.length - succeeded, resumed, apiAnsweredAgainMs, refusedWhileFailingOver: refused, allDoneMs,
    };
    console.log(JSON.stringify({ failover: figures }));
    return figures;
  } finally {
    await stack.close();
  }
}
