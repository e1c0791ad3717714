/**
 * Every Redis key of the service, derived from one prefix (NORMLAB_PREFIX).
 * BullMQ gets the same prefix, so its keys are `{prefix}:train:…`.
 */
export const QUEUE_NAME = 'train';

export interface Keys {
  prefix: string;
  /** Hash: the job's status, progress, latest metrics, warnings, error, spec. */
  job(id: string): string;
  /** Capped stream of the job's events (DESIGN.md "Events"). */
  events(id: string): string;
  /** List of the job's epoch events, uncapped: the metrics history. */
  history(id: string): string;
  /** Set while a cancellation is requested. */
  cancel(id: string): string;
  /** Sorted set (all scores 0, ordered by id = by creation time) of job ids. */
  jobIndex: string;
  /** Hash: model manifest (JSON) and weights (safetensors bytes). */
  model(id: string): string;
  modelIndex: string;
  /** Hash: dataset summary (JSON) and the encoded dataset. */
  dataset(id: string): string;
  datasetIndex: string;
}

export function keysFor(prefix: string): Keys {
  return {
    prefix,
    job: (id) => `${prefix}:job:${id}`,
    events: (id) => `${prefix}:job:${id}:events`,
    history: (id) => `${prefix}:job:${id}:history`,
    cancel: (id) => `${prefix}:job:${id}:cancel`,
    jobIndex: `${prefix}:jobs`,
    model: (id) => `${prefix}:model:${id}`,
    modelIndex: `${prefix}:models`,
    dataset: (id) => `${prefix}:dataset:${id}`,
    datasetIndex: `${prefix}:datasets`,
  };
}
