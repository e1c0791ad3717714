/**
 * What a failover can take back, replayed on one node: Redis replicates
 * asynchronously, so a promoted replica may miss the primary's last writes
 * that were not waited for (REDIS_WAIT_REPLICAS). The writes the service
 * waits for (a job's record and epochs and end, its model) survive; BullMQ's
 * own last transitions and the latest mid-epoch checkpoint may not. These
 * tests put the data in the state such a replica would have and check that
 * the cost is a re-run, never a second end, a repeated epoch or a lost job.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readEvents, startStack, submit, TINY_SPEC, waitFor, type Stack } from './helpers.js';

let stack: Stack;
let base: string;

beforeAll(async () => {
  stack = await startStack('lost-writes', { worker: true });
  base = stack.base;
});
afterAll(async () => stack.close());

it("a job whose end BullMQ lost (back in the queue) is not trained again and does not end twice", async () => {
  const id = await submit(base, TINY_SPEC);
  await waitFor(base, id, (j) => j.status === 'succeeded');
  for (let i = 0; i < 200 && (await stack.app.services.queue.getJobState(id)) !== 'completed'; i++) await new Promise((r) => setTimeout(r, 25));
  const before = await readEvents(base, id);
  const { queue, redis, keys } = stack.app.services;
  // A marker in place of the weights shows whether the re-run trained and saved again.
  await redis.hset(keys.model(id), 'weights', 'not trained again');
  // The replica's view: the job's record says succeeded; BullMQ has it waiting again.
  expect(await queue.remove(id)).toBe(1);
  await queue.add('train', { spec: (await stack.app.services.jobStore.get(id))!.spec, tenant: 'default' }, { jobId: id });
  for (let i = 0; i < 200 && (await queue.getJobState(id)) !== 'completed'; i++) await new Promise((r) => setTimeout(r, 25));
  expect(await queue.getJobState(id)).toBe('completed');
  const after = await readEvents(base, id);
  expect(after.map((e) => e.id)).toEqual(before.map((e) => e.id));
  expect(after.filter((e) => e.event === 'completed')).toHaveLength(1);
  expect(await redis.hget(keys.model(id), 'weights')).toBe('not trained again');
});

it('a job that lost its latest checkpoint resumes from an earlier one and records each epoch once', async () => {
  const spec = { ...TINY_SPEC, training: { epochs: 4 } };
  const id = await submit(base, spec);
  await waitFor(base, id, (j) => j.status === 'succeeded');
  const store = stack.app.services.jobStore;
  const { queue } = stack.app.services;
  // The replica's view: BullMQ lost the end; the record lost everything after
  // epoch 2 that was not waited for; the checkpoint is the one of epoch 2.
  // The epoch-2 checkpoint comes from a run of the same spec in this process.
  const redis = stack.app.services.redis;
  const keys = stack.app.services.keys;
  const epochs = await store.history(id);
  expect(epochs.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
  await redis.hset(keys.job(id), 'status', 'running');
  await redis.ltrim(keys.history(id), 0, 1);
  // The stream lost its entries after epoch 2 too.
  const stream = await store.events(id);
  const cut = stream.findIndex((e) => e.event.type === 'epoch' && e.event.epoch === 2);
  for (const e of stream.slice(cut + 1)) await redis.xdel(keys.events(id), e.id);
  const checkpoint = await trainedCheckpoint(spec, 2);
  await store.saveCheckpoint(id, checkpoint);
  for (let i = 0; i < 200 && (await queue.getJobState(id)) !== 'completed'; i++) await new Promise((r) => setTimeout(r, 25));
  expect(await queue.remove(id)).toBe(1);
  await queue.add('train', { spec: (await store.get(id))!.spec, tenant: 'default' }, { jobId: id });
  // The re-run starts (a second `started`) and ends.
  for (let i = 0; i < 400 && (await store.events(id)).filter((e) => e.event.type === 'started').length < 2; i++) await new Promise((r) => setTimeout(r, 25));
  await waitFor(base, id, (j) => j.status === 'succeeded');
  const history = await store.history(id);
  expect(history.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
  const events = await readEvents(base, id);
  const starts = events.filter((e) => e.event === 'started');
  expect(starts).toHaveLength(2);
  // The checkpoint made after epoch 2: the next step to run is epoch 3's first.
  expect(starts[1].data.resumedFrom).toEqual({ epoch: 3, step: 0 });
  expect(events.filter((e) => e.event === 'completed')).toHaveLength(1);
  expect(events.filter((e) => e.event === 'epoch').map((e) => e.data.epoch)).toEqual([1, 2, 3, 4]);
});

/** The checkpoint a run of `spec` makes at the end of epoch `epoch`. */
async function trainedCheckpoint(spec: unknown, epoch: number): Promise<Uint8Array> {
  const { resolveSpec } = await import('../../src/core/spec.js');
  const { train } = await import('../../src/core/train.js');
  const { encodeCheckpoint } = await import('../../src/core/checkpoint.js');
  const { loadBuiltinDataset } = await import('../../src/datasets/index.js');
  const resolved = resolveSpec(spec);
  let saved: Uint8Array | null = null;
  await train(resolved, await loadBuiltinDataset(resolved.dataset, resolved.training.seed), {
    onCheckpoint: (c) => { if (c.state.epoch === epoch + 1 && c.state.step === 0) saved = encodeCheckpoint(c); },
  });
  if (!saved) throw new Error('no checkpoint');
  return saved;
}
