/**
 * Every Redis key of the service, derived from one prefix (NORMLAB_PREFIX).
 * BullMQ gets the same prefix, so its keys are `{prefix}:train:…`. Jobs,
 * models and datasets belong to a tenant; each tenant has its own indexes.
 */
export const QUEUE_NAME = 'train';
/** Parent jobs of experiments (BullMQ flows); their children are training jobs in `train`. */
export const EXPERIMENT_QUEUE_NAME = 'experiments';

export interface Keys {
  prefix: string;
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
  /** Hash: manifest (JSON), weights (safetensors bytes), tenant. */
  model(id: string): string;
  modelIndex(tenant: string): string;
  /** Hash: dataset summary (JSON), the encoded dataset, tenant. */
  dataset(id: string): string;
  datasetIndex(tenant: string): string;
  /** Hash: the tenant's usage counters (datasetBytes). */
  usage(tenant: string): string;
  /** Hash: the experiment's tenant, status, request, variants, runs, summary. */
  experiment(id: string): string;
  /** Stream of the experiment's events: its children's epoch and terminal events, then its own terminal event. */
  experimentEvents(id: string): string;
  /** Sorted set (scores 0, ordered by id) of the tenant's experiment ids. */
  experimentIndex(tenant: string): string;
}

export function keysFor(prefix: string): Keys {
  const tenant = (t: string) => `${prefix}:tenant:${t}`;
  return {
    prefix,
    job: (id) => `${prefix}:job:${id}`,
    events: (id) => `${prefix}:job:${id}:events`,
    history: (id) => `${prefix}:job:${id}:history`,
    cancel: (id) => `${prefix}:job:${id}:cancel`,
    checkpoint: (id) => `${prefix}:job:${id}:checkpoint`,
    batchnorm: (id) => `${prefix}:job:${id}:batchnorm`,
    jobIndex: (t) => `${tenant(t)}:jobs`,
    activeJobs: (t) => `${tenant(t)}:active`,
    model: (id) => `${prefix}:model:${id}`,
    modelIndex: (t) => `${tenant(t)}:models`,
    dataset: (id) => `${prefix}:dataset:${id}`,
    datasetIndex: (t) => `${tenant(t)}:datasets`,
    usage: (t) => `${tenant(t)}:usage`,
    experiment: (id) => `${prefix}:experiment:${id}`,
    experimentEvents: (id) => `${prefix}:experiment:${id}:events`,
    experimentIndex: (t) => `${tenant(t)}:experiments`,
  };
}
