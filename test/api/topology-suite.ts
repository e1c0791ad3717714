/**
 * The API and worker tests that run against each Redis deployment (a Redis
 * Cluster, a Sentinel group): submit, SSE with resume, predict, an
 * experiment (a BullMQ flow), cancel, tenants (isolation, active-job quota,
 * dataset quota). They run the same code as on one node; on a cluster any
 * command whose keys cross slots would fail with CROSSSLOT.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { parseCsvDataset } from '../../src/datasets/csv.js';
import { storedSize } from '../../src/store/datasets.js';
import { keysFor } from '../../src/queue/keys.js';
import { createRedis, type Redis } from '../../src/store/redis.js';
import { api, readEvents, REDIS_URL, startStack, submit, TINY_SPEC, waitFor, type Stack } from './helpers.js';

export interface Deployment {
  config(): Partial<Config>;
  stop(): Promise<void>;
}

const SLOW_SPEC = {
  dataset: { id: 'spirals', size: 20_000 },
  model: { hidden: [128, 128] },
  training: { epochs: 200, batchSize: 32 },
};

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef00';
const KEYS = [{ key: ALICE, tenant: 'alice' }, { key: BOB, tenant: 'bob' }];
const CSV = ['x,y,label', ...Array.from({ length: 40 }, (_, i) => `${i % 7},${i % 3},${i % 2 ? 'a' : 'b'}`)].join('\n');
/** What one upload of CSV counts against the quota (the bytes Redis stores). */
const STORED = storedSize(parseCsvDataset(CSV, { id: `ds_${'0'.repeat(21)}`, name: 'uploaded dataset' }));

export function apiSuite(name: string, start: () => Promise<Deployment>): void {
  let deployment: Deployment;
  let stack: Stack;
  let base: string;

  beforeAll(async () => {
    deployment = await start();
    stack = await startStack(name, {
      worker: true,
      config: { ...deployment.config(), apiKeys: KEYS, tenantMaxActiveJobs: 3, tenantMaxDatasetBytes: 2 * STORED + 10, rateLimitMax: 1000 },
    });
    base = stack.base;
  }, 90_000);
  afterAll(async () => {
    await stack?.close();
    await deployment?.stop();
  });

  describe(`on ${name}`, () => {
    let id: string;
    let events: Awaited<ReturnType<typeof readEvents>>;

    it('answers ready', async () => {
      const res = await api(base, 'GET', '/readyz');
      expect(res.status).toBe(200);
      expect(res.body.redis).toBe('ok');
    });

    it('trains a submitted job and streams its events through to completed, each epoch once', async () => {
      id = await submit(base, TINY_SPEC, ALICE);
      events = await readEvents(base, id, { key: ALICE });
      const types = events.map((e) => e.event);
      expect(types.slice(0, 2)).toEqual(['queued', 'started']);
      expect(types.filter((t) => t === 'epoch')).toHaveLength(3);
      expect(events.filter((e) => e.event === 'epoch').map((e) => e.data.epoch)).toEqual([1, 2, 3]);
      expect(types.at(-1)).toBe('completed');
      expect(types.filter((t) => t === 'completed')).toHaveLength(1);
      const job = (await api(base, 'GET', `/jobs/${id}`, undefined, ALICE)).body;
      expect(job).toMatchObject({ status: 'succeeded', modelId: id });
      const history = await api(base, 'GET', `/jobs/${id}/metrics`, undefined, ALICE);
      expect(history.status).toBe(200);
    });

    it('resumes the event stream after Last-Event-ID with nothing lost or repeated', async () => {
      const cut = Math.floor(events.length / 2);
      const after = await readEvents(base, id, { key: ALICE, lastEventId: events[cut - 1].id });
      expect(after.map((e) => e.id)).toEqual(events.slice(cut).map((e) => e.id));
    });

    it('predicts with the trained model', async () => {
      const res = await api(base, 'POST', `/models/${id}/predict`, { instances: [[0.1, 0.2], [-0.5, 0.3]] }, ALICE);
      expect(res.status).toBe(200);
      expect(res.body.predictions).toHaveLength(2);
      const listed = (await api(base, 'GET', '/models', undefined, ALICE)).body.items.map((m: { id: string }) => m.id);
      expect(listed).toContain(id);
    });

    it('runs an experiment (a BullMQ flow across two queues) to its summary, its stream carrying each child', async () => {
      const res = await api(base, 'POST', '/experiments', {
        base: { dataset: { id: 'moons', size: 300 }, model: { hidden: [16] }, training: { epochs: 2 } },
        grid: { 'model.batchNorm': ['none', 'before'] }, seeds: [1],
      }, ALICE);
      expect(res.status).toBe(202);
      const { id: experiment, jobIds } = res.body as { id: string; jobIds: string[] };
      for (let i = 0; i < 400; i++) {
        if ((await api(base, 'GET', `/experiments/${experiment}`, undefined, ALICE)).body.status === 'succeeded') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await api(base, 'GET', `/experiments/${experiment}`, undefined, ALICE)).body.status).toBe('succeeded');
      const child = (await api(base, 'GET', `/jobs/${jobIds[0]}`, undefined, ALICE)).body;
      expect(child).toMatchObject({ status: 'succeeded', experiment: { id: experiment } });
      const text = await fetch(`${base}/experiments/${experiment}/events`, { headers: { authorization: `Bearer ${ALICE}` } }).then((r) => r.text());
      const events = [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!) as { type: string; jobId?: string });
      for (const jobId of jobIds) expect(events.filter((e) => e.jobId === jobId && e.type === 'completed')).toHaveLength(1);
      expect(events.at(-1)!.type).toBe('completed');
      expect((await api(base, 'GET', `/experiments/${experiment}`, undefined, BOB)).status).toBe(404);
    });

    it('cancels a running job', async () => {
      const slow = await submit(base, SLOW_SPEC, ALICE);
      await readEvents(base, slow, { key: ALICE, until: (e) => e.event === 'progress' });
      expect((await api(base, 'DELETE', `/jobs/${slow}`, undefined, ALICE)).status).toBe(202);
      const job = await waitFor(base, slow, (j) => j.status === 'cancelled', 20_000, ALICE);
      expect(job.status).toBe('cancelled');
      const tail = await readEvents(base, slow, { key: ALICE });
      expect(tail.at(-1)!.event).toBe('cancelled');
    });

    it("keeps tenants apart: another tenant's job, model and list are not found", async () => {
      expect((await api(base, 'GET', `/jobs/${id}`, undefined, BOB)).status).toBe(404);
      expect((await api(base, 'GET', `/models/${id}`, undefined, BOB)).status).toBe(404);
      expect((await api(base, 'GET', '/jobs', undefined, BOB)).body.items).toEqual([]);
      const mine = (await api(base, 'GET', '/jobs', undefined, ALICE)).body.items.map((j: { id: string }) => j.id);
      expect(mine).toContain(id);
    });

    it('refuses a job beyond the active-jobs quota until one ends', async () => {
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await submit(base, SLOW_SPEC, BOB));
      const refused = await api(base, 'POST', '/jobs', TINY_SPEC, BOB);
      expect(refused.status).toBe(429);
      await api(base, 'DELETE', `/jobs/${ids[0]}`, undefined, BOB);
      await waitFor(base, ids[0], (j) => j.status === 'cancelled', 20_000, BOB);
      const admitted = await api(base, 'POST', '/jobs', TINY_SPEC, BOB);
      expect(admitted.status).toBe(202);
      for (const other of [ids[1], ids[2], admitted.body.id]) await api(base, 'DELETE', `/jobs/${other}`, undefined, BOB);
    });

    it('keeps its keys on the deployment under test, none on the shared Redis', async () => {
      const count = async (redis: Redis) => {
        const [, found] = await redis.scan('0', 'MATCH', `*${stack.config.prefix}*`, 'COUNT', 100_000);
        return found.length;
      };
      const shared = createRedis(REDIS_URL, 'normlab:test-shared');
      const deployed = createRedis(stack.config, 'normlab:test-deployed');
      try {
        expect(await count(shared)).toBe(0);
        expect(await deployed.exists(keysFor(stack.config.prefix).job(id))).toBe(1);
      } finally {
        shared.disconnect();
        deployed.disconnect();
      }
    });

    it("stores a tenant's datasets under its quota and deletes them", async () => {
      const upload = () => fetch(`${base}/datasets`, { method: 'POST', headers: { 'content-type': 'text/csv', authorization: `Bearer ${BOB}` }, body: CSV })
        .then(async (r) => ({ status: r.status, body: await r.json() }));
      const first = await upload();
      expect(first.status).toBe(201);
      expect((await upload()).status).toBe(201);
      expect((await upload()).status).toBe(413);
      expect((await api(base, 'GET', `/datasets/${first.body.id}`, undefined, ALICE)).status).toBe(404);
      expect((await api(base, 'DELETE', `/datasets/${first.body.id}`, undefined, BOB)).status).toBe(204);
      expect((await upload()).status).toBe(201);
    });
  });
}
