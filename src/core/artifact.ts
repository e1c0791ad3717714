/**
 * A trained model as it is stored and served: a JSON manifest plus one
 * safetensors weights buffer (tensor names layers.{i}.weight|bias|gamma|beta|
 * running_mean|running_var, i = index in the expanded layer list). The
 * running statistics stored are the frozen inference statistics named by
 * `inferenceStats`.
 */
import type { Preprocess } from '../datasets/types.js';
import type { FinalMetrics } from './events.js';
import { layerTensors, type LayerInfo } from './layers/index.js';
import { decodeSafetensors, encodeSafetensors, type NamedTensor } from './safetensors.js';
import type { JobSpec } from './spec.js';

export const MANIFEST_FORMAT = 'normlab-model/1';

export interface ModelManifest {
  format: typeof MANIFEST_FORMAT;
  spec: JobSpec;
  layers: LayerInfo[];
  inputShape: number[];
  features: number;
  classes: number;
  classNames: string[];
  preprocess: Preprocess;
  inferenceStats: 'moving' | 'population';
  /** Batch-norm epsilon, needed with the frozen statistics at inference. */
  epsilon: number;
  parameters: number;
  metrics: FinalMetrics;
  createdAt: string;
}

export interface Artifact {
  manifest: ModelManifest;
  weights: Uint8Array;
}

export function buildArtifact(manifest: ModelManifest, tensors: NamedTensor[]): Artifact {
  return { manifest, weights: encodeSafetensors(tensors, { format: MANIFEST_FORMAT }) };
}

/**
 * The weights as a name → tensor map, checked against the manifest's layer
 * list: every tensor each layer's module declares must be there, in its shape.
 */
export function readWeights(artifact: Artifact): Map<string, NamedTensor> {
  const { tensors } = decodeSafetensors(artifact.weights);
  for (const layer of artifact.manifest.layers) {
    const { params, state } = layerTensors(layer, artifact.manifest.spec.batchNorm);
    for (const { name, shape } of [...params, ...state]) {
      const t = tensors.get(`layers.${layer.index}.${name}`);
      if (!t || t.shape.join('x') !== shape.join('x')) {
        throw new Error(`model weights: layers.${layer.index}.${name} missing or not of shape [${shape}]`);
      }
    }
  }
  return tensors;
}
