/**
 * Trained models: `model:{id}` (in its job's slot) holds the owning tenant, the manifest (JSON)
 * and the weights (safetensors bytes). A model's id is the id of the job that
 * trained it. Reads take the asking tenant and answer null for another
 * tenant's model, as for a missing one.
 */
import type { Artifact, ModelManifest } from '../core/artifact.js';
import type { Keys } from '../queue/keys.js';
import { NOT_DURABLE, writeDurably, type Durability } from './durable.js';
import type { Redis } from './redis.js';

/** KEYS: model, index. ARGV: tenant, id. One script, so the owner check and the delete are atomic. */
const DELETE_MODEL_LUA = `
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 0 end
redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
`;

export class ModelStore {
  constructor(private readonly redis: Redis, private readonly keys: Keys, private readonly durability: Durability = NOT_DURABLE) {}

  /**
   * The model (its job's slot), then the tenant's index (the tenant's slot),
   * each acknowledged by the replicas of `durability`: the job's `completed`
   * event comes after, so a job never points at a model a failover took back.
   * Saving again (a re-run) writes the same entries.
   */
  async save(tenant: string, id: string, artifact: Artifact): Promise<void> {
    const model = this.keys.model(id);
    const index = this.keys.modelIndex(tenant);
    await writeDurably(this.redis, this.durability, model, () => this.redis.hset(model, { tenant, manifest: JSON.stringify(artifact.manifest), weights: Buffer.from(artifact.weights) }));
    await writeDurably(this.redis, this.durability, index, () => this.redis.zadd(index, 0, id));
  }

  async manifest(tenant: string, id: string): Promise<ModelManifest | null> {
    const [owner, s] = await this.redis.hmget(this.keys.model(id), 'tenant', 'manifest');
    return owner === tenant && s ? (JSON.parse(s) as ModelManifest) : null;
  }

  async weights(tenant: string, id: string): Promise<Buffer | null> {
    const [owner, weights] = await this.redis.hmgetBuffer(this.keys.model(id), 'tenant', 'weights');
    return owner?.toString() === tenant ? weights : null;
  }

  /** The artifact and its owner, whoever asks (the model cache checks the owner on every use). */
  async owned(id: string): Promise<{ tenant: string; artifact: Artifact } | null> {
    const [tenant, manifest, weights] = await this.redis.hmgetBuffer(this.keys.model(id), 'tenant', 'manifest', 'weights');
    if (!tenant || !manifest || !weights) return null;
    return { tenant: tenant.toString(), artifact: { manifest: JSON.parse(manifest.toString('utf8')) as ModelManifest, weights } };
  }

  /** Delete the tenant's model (true), or nothing when it has no such model (false, also for another tenant's). */
  async delete(tenant: string, id: string): Promise<boolean> {
    return (await this.redis.eval(DELETE_MODEL_LUA, 2, this.keys.model(id), this.keys.modelIndex(tenant), tenant, id)) === 1;
  }

  /** The tenant's models, newest first; the cursor is the last id of the previous page. */
  async list(tenant: string, limit: number, cursor?: string): Promise<{ items: Array<{ id: string; manifest: ModelManifest }>; nextCursor: string | null }> {
    const ids = await this.redis.zrevrangebylex(this.keys.modelIndex(tenant), cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, limit);
    const manifests = await Promise.all(ids.map((id) => this.redis.hget(this.keys.model(id), 'manifest')));
    const items = ids.flatMap((id, i) => {
      const s = manifests[i];
      return s ? [{ id, manifest: JSON.parse(s) as ModelManifest }] : [];
    });
    return { items, nextCursor: ids.length === limit ? ids[ids.length - 1] : null };
  }
}
