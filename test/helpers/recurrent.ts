/** What the recurrent-layer tests share. */
import type { BatchNormSpec } from '../../src/core/spec.js';

/** A batch-norm configuration with the given momentum and epsilon, γ and β learned. */
export function bnConfig(momentum: number | null, epsilon: number): BatchNormSpec {
  return { momentum, epsilon, center: true, scale: true, inferenceStats: 'moving', renorm: null, virtualBatchSize: null };
}
