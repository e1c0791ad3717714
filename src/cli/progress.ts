/** How training events look on a terminal: a progress bar on a TTY, one line per epoch otherwise. */
import type { TrainEvent } from '../core/events.js';

export function humanPrinter(): (e: TrainEvent) => void {
  const tty = process.stderr.isTTY;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  return (e) => {
    switch (e.type) {
      case 'progress': {
        if (!tty) return;
        const width = 30;
        const filled = Math.round((width * e.step) / e.stepsPerEpoch);
        process.stderr.write(`\repoch ${e.epoch} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] loss ${e.loss.toFixed(4)}  ${e.samplesPerSec} samples/s  eta ${e.etaSeconds}s `);
        return;
      }
      case 'epoch': {
        if (tty) process.stderr.write('\r\x1b[K');
        const parts = [`epoch ${e.epoch}`, `loss ${e.train.loss.toFixed(4)}`, `acc ${pct(e.train.accuracy)}`];
        if (e.val) parts.push(`val_loss ${e.val.loss.toFixed(4)}`, `val_acc ${pct(e.val.accuracy)}`);
        if (e.test) parts.push(`test_acc ${pct(e.test.accuracy)}`);
        // The train/inference gap: accuracy with batch statistics minus accuracy with the frozen ones.
        if (e.gap) parts.push(`gap ${e.gap.accuracy >= 0 ? '+' : ''}${pct(e.gap.accuracy)} (${e.gap.split}: batch ${pct(e.gap.batch.accuracy)}, frozen ${pct(e.gap.frozen.accuracy)})`);
        parts.push(`${e.seconds.toFixed(2)}s`);
        console.log(parts.join('  '));
        return;
      }
      case 'warning':
        console.error(`warning ${e.code}: ${e.message}`);
        return;
      case 'completed': {
        const m = e.metrics;
        console.log(`done: ${m.epochs} epochs, ${m.samplesPerSec} samples/s` + (m.test ? `, test accuracy ${pct(m.test.accuracy)}` : '') +
          (m.val ? `, validation accuracy ${pct(m.val.accuracy)}` : '') + (m.inferenceStats ? `, ${m.inferenceStats} statistics` : '') +
          (e.modelId !== 'unsaved' ? `; model ${e.modelId}` : ''));
        return;
      }
      case 'failed':
        console.error(`failed ${e.code}: ${e.message}`);
        return;
      case 'cancelled':
        console.error('cancelled');
        return;
      default:
    }
  };
}
