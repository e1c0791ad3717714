/**
 * Every Redis key of the service, derived from one prefix (NORMLAB_PREFIX),
 * laid out for Redis Cluster on any deployment (one node, Sentinel, cluster):
 * what one script or transaction touches shares one hash tag, and nothing
 * else does, so the keys spread over the cluster's slots.
 *
 * - BullMQ: prefix `{prefix}`, so its keys are `{prefix}:train:…`. BullMQ's
 *   scripts touch many keys of a queue, and a flow's scripts touch the parent's
 *   and the children's queues together, so every queue shares this one slot
 *   (one primary holds all the queue traffic; see the README's cluster section).
 * - A job: `prefix:job:{id}…` (hash, events, history, cancel flag,
 *   checkpoint, batch-norm history) and its model `prefix:model:{id}` (a
 *   model's id is its job's).
 * - An experiment: `prefix:experiment:{id}` and its event stream.
 * - A tenant: `prefix:tenant:{t}:…` (indexes, usage) and its uploaded
 *   datasets `prefix:tenant:{t}:dataset:id` (the quota script checks usage
 *   and stores the dataset at once).
 * Jobs, models and datasets belong to a tenant; each tenant has its own indexes.
 */
export const QUEUE_NAME = 'train';
/** Parent jobs of experiments (BullMQ flows); their children are training jobs in `train`. */
export const EXPERIMENT_QUEUE_NAME = 'experiments';

export interface Keys {
  prefix: string;
  /** BullMQ's prefix: one hash tag for every queue (flows need it). */
  bullPrefix: string;
  /** Hash: the job's tenant, status, progress, latest metrics, warnings, error, spec. */
  job(id: string): string;
  /** Capped stream of the job's events (DESIGN.md "Events"). */
  events(id: string): string;
  /** List of the job's epoch events, uncapped: the metrics history. */
  history(id: string): string;
  /** Set while a cancellation is requested. */
  cancel(id: string): string;
  /** The latest training checkpoint (encodeCheckpoint bytes). */
  checkpoint(id: string): string;
  /** List of per-epoch per-channel batch-norm statistics (JSON), bounded by BN_HISTORY_MAX_BYTES. */
  batchnorm(id: string): string;
  /** Sorted set (all scores 0, ordered by id = by creation time) of the tenant's job ids. */
  jobIndex(tenant: string): string;
  /** Set of the tenant's job ids that were queued or running when last looked at (the active-jobs quota). */
  activeJobs(tenant: string): string;
  /** Hash: manifest (JSON), weights (safetensors bytes), tenant. In its job's slot. */
  model(id: string): string;
  modelIndex(tenant: string): string;
  /** Hash: dataset summary (JSON), the encoded dataset, tenant. In its tenant's slot. */
  dataset(tenant: string, id: string): string;
  datasetIndex(tenant: string): string;
  /** Hash: the tenant's usage counters (datasetBytes). */
  usage(tenant: string): string;
  /** Hash: the experiment's tenant, status, request, variants, runs, summary. */
  experiment(id: string): string;
  /** Stream of the experiment's events: its children's epoch and terminal events, then its own terminal event. */
  experimentEvents(id: string): string;
  /** Sorted set (scores 0, ordered by id) of the tenant's experiment ids. */
  experimentIndex(tenant: string): string;
  /** SCAN patterns that match every key of this prefix (tests, tooling). */
  patterns: string[];
}

export function keysFor(prefix: string): Keys {
  const job = (id: string) => `${prefix}:job:{${id}}`;
  const tenant = (t: string) => `${prefix}:tenant:{${t}}`;
  return {
    prefix,
    bullPrefix: `{${prefix}}`,
    job,
    events: (id) => `${job(id)}:events`,
    history: (id) => `${job(id)}:history`,
    cancel: (id) => `${job(id)}:cancel`,
    checkpoint: (id) => `${job(id)}:checkpoint`,
    batchnorm: (id) => `${job(id)}:batchnorm`,
    jobIndex: (t) => `${tenant(t)}:jobs`,
    activeJobs: (t) => `${tenant(t)}:active`,
    model: (id) => `${prefix}:model:{${id}}`,
    modelIndex: (t) => `${tenant(t)}:models`,
    dataset: (t, id) => `${tenant(t)}:dataset:${id}`,
    datasetIndex: (t) => `${tenant(t)}:datasets`,
    usage: (t) => `${tenant(t)}:usage`,
    experiment: (id) => `${prefix}:experiment:{${id}}`,
    experimentEvents: (id) => `${prefix}:experiment:{${id}}:events`,
    experimentIndex: (t) => `${tenant(t)}:experiments`,
    patterns: [`${prefix}:*`, `{${prefix}}:*`],
  };
}
