/** Optimizers (state per parameter, updates through the kernels) and learning-rate schedules. */
import type { Kernels } from './kernels/types.js';
import type { Param } from './model.js';
import type { OptimizerSpec, ScheduleSpec } from './spec.js';

export class Optimizer {
  /** sgd: [velocity]; adam: [m, v]. Exposed for checkpoints. */
  readonly state: Float32Array[][];
  step = 0;

  constructor(private readonly spec: OptimizerSpec, private readonly params: Param[], private readonly k: Kernels) {
    const slots = spec.type === 'adam' ? 2 : spec.momentum > 0 ? 1 : 0;
    this.state = params.map((p) => Array.from({ length: slots }, () => new Float32Array(p.value.length)));
  }

  /** Apply one update with learning rate lr to every parameter from its gradient. */
  update(lr: number): void {
    this.step++;
    const s = this.spec;
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i]!;
      const st = this.state[i]!;
      if (s.type === 'adam') {
        this.k.adamStep(p.value, p.grad, st[0]!, st[1]!, p.value.length, lr, s.beta1, s.beta2, s.epsilon, s.weightDecay, this.step);
      } else {
        this.k.sgdStep(p.value, p.grad, st[0] ?? p.grad, p.value.length, lr, s.momentum, s.nesterov, s.weightDecay);
      }
    }
  }
}

/** Learning rate of a (0-based) epoch. */
export function learningRateAt(base: number, schedule: ScheduleSpec, epoch: number, epochs: number): number {
  switch (schedule.type) {
    case 'constant': return base;
    case 'step': return base * schedule.gamma ** Math.floor(epoch / schedule.stepSize);
    case 'exponential': return base * schedule.gamma ** epoch;
    case 'cosine': {
      const min = Math.min(schedule.minLearningRate, base);
      return min + (base - min) * (1 + Math.cos((Math.PI * epoch) / Math.max(1, epochs))) / 2;
    }
  }
}
