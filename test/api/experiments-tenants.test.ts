/**
 * An experiment's children are ordinary jobs of its tenant: they count
 * against TENANT_MAX_ACTIVE_JOBS (an experiment that does not fit records
 * nothing), show in the tenant's job list, and another tenant sees neither
 * the experiment nor its children.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startStack, type Stack } from './helpers.js';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef00';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack('exp-tenants', {
    config: { apiKeys: [{ key: ALICE, tenant: 'alice' }, { key: BOB, tenant: 'bob' }], tenantMaxActiveJobs: 3, rateLimitMax: 0 },
  });
});
afterAll(async () => stack.close());

const EXPERIMENT = { base: { dataset: { id: 'moons', size: 200 }, training: { epochs: 1 } }, grid: { 'model.batchNorm': ['none', 'before'] } };

it('children count against the tenant quota and belong to the tenant', async () => {
  const tooMany = await api(stack.base, 'POST', '/experiments', { ...EXPERIMENT, seeds: [1, 2] }, ALICE);
  expect(tooMany.status).toBe(429);
  expect(tooMany.body.error).toMatchObject({ code: 'TOO_MANY_ACTIVE_JOBS', details: { setting: 'TENANT_MAX_ACTIVE_JOBS', limit: 3 } });
  expect((await api(stack.base, 'GET', '/jobs', undefined, ALICE)).body.items).toEqual([]);
  expect((await api(stack.base, 'GET', '/experiments', undefined, ALICE)).body.items).toEqual([]);

  const res = await api(stack.base, 'POST', '/experiments', { ...EXPERIMENT, seeds: [1] }, ALICE);
  expect(res.status).toBe(202);
  const { id, jobIds } = res.body;
  const jobs = (await api(stack.base, 'GET', '/jobs', undefined, ALICE)).body.items;
  expect(jobs.map((j: any) => j.id).sort()).toEqual([...jobIds].sort());
  expect(jobs.every((j: any) => j.experiment.id === id)).toBe(true);
  // One slot is left: a single job fits, a second experiment does not.
  expect((await api(stack.base, 'POST', '/experiments', { ...EXPERIMENT, seeds: [5] }, ALICE)).status).toBe(429);

  for (const [method, path] of [['GET', `/experiments/${id}`], ['DELETE', `/experiments/${id}`], ['GET', `/experiments/${id}/events`], ['GET', `/experiments/${id}/metrics`], ['GET', `/jobs/${jobIds[0]}`]]) {
    const other = await api(stack.base, method!, path!, undefined, BOB);
    expect(other.status, `${method} ${path}`).toBe(404);
  }
  expect((await api(stack.base, 'GET', '/experiments', undefined, BOB)).body.items).toEqual([]);
  expect((await api(stack.base, 'GET', `/experiments/${id}`, undefined, ALICE)).body).toMatchObject({ status: 'queued', counts: { queued: 2 } });
});
