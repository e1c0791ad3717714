/**
 * Trained models: `model:{id}` holds the manifest (JSON) and the weights
 * (safetensors bytes). A model's id is the id of the job that trained it.
 */
import type { Artifact, ModelManifest } from '../core/artifact.js';
import type { Keys } from '../queue/keys.js';
import type { Redis } from './redis.js';

export class ModelStore {
  constructor(private readonly redis: Redis, private readonly keys: Keys) {}

  async save(id: string, artifact: Artifact): Promise<void> {
    await this.redis.multi()
      .hset(this.keys.model(id), { manifest: JSON.stringify(artifact.manifest), weights: Buffer.from(artifact.weights) })
      .zadd(this.keys.modelIndex, 0, id)
      .exec();
  }

  async manifest(id: string): Promise<ModelManifest | null> {
    const s = await this.redis.hget(this.keys.model(id), 'manifest');
    return s ? (JSON.parse(s) as ModelManifest) : null;
  }

  async weights(id: string): Promise<Buffer | null> {
    return this.redis.hgetBuffer(this.keys.model(id), 'weights');
  }

  async artifact(id: string): Promise<Artifact | null> {
    const [manifest, weights] = await this.redis.hmgetBuffer(this.keys.model(id), 'manifest', 'weights');
    if (!manifest || !weights) return null;
    return { manifest: JSON.parse(manifest.toString('utf8')) as ModelManifest, weights };
  }

  /** Newest first; the cursor is the last id of the previous page. */
  async list(limit: number, cursor?: string): Promise<{ items: Array<{ id: string; manifest: ModelManifest }>; nextCursor: string | null }> {
    const ids = await this.redis.zrevrangebylex(this.keys.modelIndex, cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, limit);
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hget(this.keys.model(id), 'manifest');
    const manifests = (await pipeline.exec()) ?? [];
    const items = ids.flatMap((id, i) => {
      const s = manifests[i][1] as string | null;
      return s ? [{ id, manifest: JSON.parse(s) as ModelManifest }] : [];
    });
    return { items, nextCursor: ids.length === limit ? ids[ids.length - 1] : null };
  }
}
