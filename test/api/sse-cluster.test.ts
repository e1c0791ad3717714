/**
 * Event streams on a Redis Cluster: clients follow, at once, jobs whose
 * streams lie in different hash slots on every primary (and in several slots
 * on one primary), through one API process's reader. Every client gets every
 * event exactly once, and a client that reconnects with Last-Event-ID gets
 * the rest, nothing repeated.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { keysFor } from '../../src/queue/keys.js';
import { readEvents, startStack, submit, type SseEvent, type Stack } from './helpers.js';
import { RedisClusterServers } from '../redis-servers.mjs';

const EPOCHS = 6;
/** A few seconds of training each, so the streams are followed live. */
const SPEC = { dataset: { id: 'spirals', size: 2000 }, model: { hidden: [32, 32] }, training: { epochs: EPOCHS, batchSize: 32 } };
/**
 * Longest wait from an entry's append (its stream id's time) to its arrival
 * at a live client: the reader polls a cluster's slots at least every 400 ms;
 * the rest is room for a loaded machine. A stream not read live gets its
 * entries only from the idle check when the job ends (seconds later).
 */
const LIVE_LATENCY_MS = 1500;

let cluster: RedisClusterServers;
let stack: Stack;
beforeAll(async () => {
  cluster = await RedisClusterServers.start();
  stack = await startStack('sse-cluster', { worker: true, config: { ...cluster.config(), workerConcurrency: 3, rateLimitMax: 0 } });
}, 90_000);
afterAll(async () => {
  await stack?.close();
  await cluster?.stop();
});

/** Bound a read: a stream that stalls fails the test with its name instead of hanging it. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([work, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no end within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

function checkOnce(events: SseEvent[], what: string): void {
  expect(new Set(events.map((e) => e.id)).size, `${what}: ids unique`).toBe(events.length);
  expect(events.filter((e) => e.event === 'epoch').map((e) => e.data.epoch), `${what}: epochs`).toEqual(Array.from({ length: EPOCHS }, (_, i) => i + 1));
  expect(events.filter((e) => e.event === 'completed'), `${what}: terminal events`).toHaveLength(1);
  expect(events.at(-1)!.event).toBe('completed');
}

it('serves clients following jobs in different slots on every primary at once, each event once, with Last-Event-ID resume', async () => {
  const keys = keysFor(stack.config.prefix);
  // Jobs until their streams lie on all three primaries and one primary holds two of them (two slots, one node).
  const ids: string[] = [];
  const byPrimary = new Map<number, string[]>();
  while (ids.length < 30 && (byPrimary.size < 3 || ![...byPrimary.values()].some((v) => v.length >= 2) || ids.length < 6)) {
    const id = await submit(stack.base, SPEC);
    ids.push(id);
    const primary = await cluster.primaryOf(keys.events(id));
    byPrimary.set(primary, [...(byPrimary.get(primary) ?? []), id]);
  }
  expect(byPrimary.size).toBe(3);

  const results = await Promise.all(ids.map(async (id) => {
    // Two clients per job: one reads through to the end; one stops after its first epoch and resumes from there.
    const arrivals = new Map<string, number>();
    const connectedAt = Date.now();
    const whole = within(readEvents(stack.base, id, { until: (e) => { arrivals.set(e.id, Date.now()); return false; } }), 90_000, `stream of ${id}`);
    const first = await within(readEvents(stack.base, id, { until: (e) => e.event === 'epoch' }), 90_000, `first part of ${id}`);
    const rest = await within(readEvents(stack.base, id, { lastEventId: first.at(-1)!.id }), 90_000, `rest of ${id}`);
    return { id, whole: await whole, resumed: [...first, ...rest], arrivals, connectedAt };
  }));
  let live = 0;
  for (const { id, whole, arrivals, connectedAt } of results) {
    for (const e of whole) {
      const appended = Number(e.id.split('-')[0]);
      if (appended <= connectedAt) continue; // history, sent at connect
      live++;
      expect(arrivals.get(e.id)! - appended, `${id}: ${e.event} ${e.id} arrived live`).toBeLessThan(LIVE_LATENCY_MS);
    }
  }
  expect(live, 'events read live').toBeGreaterThan(ids.length * EPOCHS);
  for (const { id, whole, resumed } of results) {
    checkOnce(whole, id);
    checkOnce(resumed, `${id} resumed`);
    expect(resumed.map((e) => e.id), `${id}: the resumed client saw what the other saw`).toEqual(whole.map((e) => e.id));
  }
}, 240_000);
