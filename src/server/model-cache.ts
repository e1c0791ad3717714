/**
 * Models in inference form (frozen statistics, batch norm folded), least
 * recently used evicted first. Concurrent requests for a model that is not
 * loaded yet share one load. Each entry remembers its owner, so another
 * tenant's request is answered like a miss without touching Redis.
 */
import { InferenceModel } from '../core/inference.js';
import type { Kernels } from '../core/kernels/types.js';
import type { ModelStore } from '../store/models.js';

type Entry = { tenant: string; model: InferenceModel } | null;

export class ModelCache {
  private readonly entries = new Map<string, Promise<Entry>>();

  constructor(private readonly store: ModelStore, private readonly kernels: Kernels, private readonly capacity: number) {}

  /** The tenant's model, or null when it has no such model. */
  async get(tenant: string, id: string): Promise<InferenceModel | null> {
    const entry = await this.entry(id);
    return entry?.tenant === tenant ? entry.model : null;
  }

  /** Forget a model (deleted): the next request loads it again, or finds it gone. */
  evict(id: string): void {
    this.entries.delete(id);
  }

  private entry(id: string): Promise<Entry> {
    const entry = this.entries.get(id);
    if (entry) {
      this.entries.delete(id);
      this.entries.set(id, entry);
      return entry;
    }
    const loading = this.load(id);
    this.entries.set(id, loading);
    // Failures and misses are not cached: the model may appear (or Redis come back) later.
    const drop = () => { if (this.entries.get(id) === loading) this.entries.delete(id); };
    loading.then((m) => { if (!m) drop(); }, drop);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return loading;
  }

  private async load(id: string): Promise<Entry> {
    const owned = await this.store.owned(id);
    return owned && { tenant: owned.tenant, model: InferenceModel.fromArtifact(owned.artifact, { kernels: this.kernels, fold: true }) };
  }
}
