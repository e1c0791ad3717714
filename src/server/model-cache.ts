/**
 * Models in inference form (frozen statistics, batch norm folded), least
 * recently used evicted first. Concurrent requests for a model that is not
 * loaded yet share one load.
 */
import { InferenceModel } from '../core/inference.js';
import type { Kernels } from '../core/kernels/types.js';
import type { ModelStore } from '../store/models.js';

export class ModelCache {
  private readonly entries = new Map<string, Promise<InferenceModel | null>>();

  constructor(private readonly store: ModelStore, private readonly kernels: Kernels, private readonly capacity: number) {}

  /** The model, or null when there is no such model. */
  get(id: string): Promise<InferenceModel | null> {
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

  private async load(id: string): Promise<InferenceModel | null> {
    const artifact = await this.store.artifact(id);
    return artifact ? InferenceModel.fromArtifact(artifact, { kernels: this.kernels, fold: true }) : null;
  }
}
