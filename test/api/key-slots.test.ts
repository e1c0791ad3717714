/**
 * Hash slots: every script (ours and BullMQ's), every MULTI transaction and
 * every multi-key command the stores and the queue send keeps its keys in
 * one Redis Cluster slot. The test records each command the stores send to
 * the real Redis (a client whose sendCommand is observed), then checks the
 * slot of every key of each unit, as Redis Cluster computes it
 * (cluster-key-slot, ioredis's own implementation of CLUSTER KEYSLOT).
 * It also checks that every script registered on our clients was seen, so a
 * new script cannot skip the check.
 */
import { createHash } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import { FlowProducer, Queue } from 'bullmq';
import type { Command, Redis as SingleRedis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseCsvDataset } from '../../src/datasets/csv.js';
import { EXPERIMENT_QUEUE_NAME, keysFor, QUEUE_NAME } from '../../src/queue/keys.js';
import { JobService } from '../../src/queue/train-queue.js';
import { resolveSpec } from '../../src/core/spec.js';
import { DatasetStore } from '../../src/store/datasets.js';
import { ExperimentStore } from '../../src/store/experiments.js';
import { JobStore } from '../../src/store/jobs.js';
import { ModelStore } from '../../src/store/models.js';
import { createRedis, deleteKeys, SCRIPTS } from '../../src/store/redis.js';
import { REDIS_URL, testConfig } from './helpers.js';

interface Unit { what: string; keys: string[] }

const config = testConfig('slots');
const keys = keysFor(config.prefix);
const units: Unit[] = [];
const scriptNames = new Map(Object.entries(SCRIPTS).map(([name, s]) => [createHash('sha1').update(s.lua).digest('hex'), name]));
let redis: SingleRedis;
let queueRedis: SingleRedis;

/** Record every unit of work the client sends: a script call, a MULTI … EXEC, a command with several keys. */
function observe(client: SingleRedis, origin: string): void {
  const send = client.sendCommand.bind(client);
  let transaction: Unit | null = null;
  client.sendCommand = ((command: Command, stream?: never) => {
    const name = command.name.toLowerCase();
    if (name === 'multi') transaction = { what: `${origin} MULTI`, keys: [] };
    else if (name === 'exec' && transaction) {
      units.push(transaction);
      transaction = null;
    } else {
      const commandKeys = command.getKeys().map(String);
      if (transaction) transaction.keys.push(...commandKeys);
      else if (name === 'evalsha' || name === 'eval' || commandKeys.length > 1) {
        const sha = String(command.args[0]);
        const script = name === 'evalsha' ? scriptNames.get(sha) ?? `BullMQ script ${sha.slice(0, 8)}` : name;
        units.push({ what: `${origin} ${script}`, keys: commandKeys });
      }
    }
    return send(command, stream);
  }) as SingleRedis['sendCommand'];
}

beforeAll(async () => {
  redis = createRedis(REDIS_URL, 'normlab:test-slots') as SingleRedis;
  queueRedis = createRedis(REDIS_URL, 'normlab:test-slots-queue', { maxRetriesPerRequest: null, lazyConnect: false }) as SingleRedis;
  observe(redis, 'store');
  observe(queueRedis, 'queue');

  const jobs = new JobStore(redis, keys, config);
  const queue = new Queue(QUEUE_NAME, { connection: queueRedis, prefix: keys.bullPrefix });
  const service = new JobService(queue, jobs);
  const spec = resolveSpec({ dataset: { id: 'spirals', size: 100 }, training: { epochs: 1 } });

  // Jobs: submit (record, reserve, queue), events, cancel, a removal, a listing.
  const job = await service.submit('alice', spec);
  await jobs.append(job.id, { type: 'started', attempt: 1, resumedFrom: null });
  await jobs.saveCheckpoint(job.id, new Uint8Array([1, 2, 3]));
  await jobs.appendBatchNorm(job.id, 1, [{ layer: 1, kind: 'batchnorm1d', channels: 1, frozen: false, batchMean: [0], batchVar: [1], runningMean: [0], runningVar: [1], gamma: [1], beta: [0] }]);
  await service.cancel('alice', job.id);
  await jobs.create('alice', 'job_slots-removed', spec);
  await jobs.remove('alice', 'job_slots-removed');
  await jobs.list('alice', { limit: 10 });
  await jobs.list('alice', { limit: 10, status: 'queued' });

  // Models and datasets.
  const models = new ModelStore(redis, keys);
  await models.save('alice', job.id, { manifest: { format: 'test' } as never, weights: new Uint8Array(8) });
  await models.list('alice', 10);
  const datasets = new DatasetStore(redis, keys, 1 << 20);
  const csv = 'x,label\n1,a\n2,b\n3,a\n4,b\n';
  const ds = parseCsvDataset(csv, { id: 'ds_slots', name: 'slots' });
  await datasets.save('alice', ds);
  await datasets.list('alice');
  await datasets.delete('alice', ds.id);

  // Experiments: the record, a child whose epoch and end are copied to the
  // experiment's stream, the flow (BullMQ), the end, a listing, a removal.
  const experiments = new ExperimentStore(redis, keys, 60);
  const experiment = {
    id: 'exp_slots', tenant: 'alice', name: null, template: null, createdAt: new Date().toISOString(),
    request: {} as never, paths: [], target: null, variants: [], runs: [{ jobId: 'job_slots-child', variant: 0, seed: 1 }],
  };
  await experiments.create(experiment);
  await jobs.create('alice', 'job_slots-child', spec, { id: experiment.id, variant: 0, seed: 1 });
  await jobs.append('job_slots-child', { type: 'started', attempt: 1, resumedFrom: null });
  await jobs.append('job_slots-child', { type: 'cancelled' });
  const flows = new FlowProducer({ connection: queueRedis, prefix: keys.bullPrefix });
  await flows.add({ name: 'experiment', queueName: EXPERIMENT_QUEUE_NAME, data: {}, opts: { jobId: 'exp_slots-flow' }, children: [{ name: QUEUE_NAME, queueName: QUEUE_NAME, data: {}, opts: { jobId: 'job_slots-flow-child' } }] });
  await flows.close();
  await experiments.requestCancel(experiment.id);
  await experiments.finish(experiment.id, 'cancelled', {} as never);
  await experiments.list('alice', { limit: 10 });
  expect((await experiments.events(experiment.id)).map((e) => e.event.type)).toEqual(['queued', 'cancelled', 'cancelled']);
  await experiments.remove('alice', experiment.id);
  await queue.close();
});

afterAll(async () => {
  await deleteKeys(redis, config.prefix);
  await Promise.all([redis.quit(), queueRedis.quit()]);
});

it('every script, transaction and multi-key command keeps its keys in one hash slot', () => {
  expect(units.length).toBeGreaterThan(10);
  const crossing = units
    .map((u) => ({ ...u, slots: [...new Set(u.keys.map((k) => calculateSlot(k)))] }))
    .filter((u) => u.slots.length > 1);
  expect(crossing).toEqual([]);
});

it('every script our clients register was checked', () => {
  const seen = new Set(units.map((u) => u.what.replace(/^store /, '')));
  for (const name of Object.keys(SCRIPTS)) expect(seen, `script ${name}`).toContain(name);
});

it("BullMQ's scripts and transactions all use the queue's one slot, under the prefix's hash tag", () => {
  const bull = units.filter((u) => u.what.startsWith('queue '));
  expect(bull.length).toBeGreaterThan(0);
  const slot = calculateSlot(keys.bullPrefix);
  for (const unit of bull) for (const key of unit.keys) expect(calculateSlot(key), `${unit.what}: ${key}`).toBe(slot);
});

it("puts a job's keys and its model in one slot and the tenant's indexes and datasets in another", () => {
  const id = 'job_0000000000000000000000';
  const jobSlot = calculateSlot(keys.job(id));
  for (const key of [keys.events(id), keys.history(id), keys.cancel(id), keys.checkpoint(id), keys.model(id)]) expect(calculateSlot(key)).toBe(jobSlot);
  const tenantSlot = calculateSlot(keys.jobIndex('alice'));
  for (const key of [keys.activeJobs('alice'), keys.modelIndex('alice'), keys.datasetIndex('alice'), keys.usage('alice'), keys.dataset('alice', 'ds_x')]) {
    expect(calculateSlot(key)).toBe(tenantSlot);
  }
  // Jobs spread: 1000 ids land on many slots (the cluster's 16384 slots split over its primaries).
  const slots = new Set(Array.from({ length: 1000 }, (_, i) => calculateSlot(keys.job(`job_${String(i).padStart(21, '0')}`))));
  expect(slots.size).toBeGreaterThan(900);
});
