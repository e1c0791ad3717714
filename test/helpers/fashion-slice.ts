/** The committed slice of the real Fashion-MNIST files: the first 600 training and 100 test images (make_fashion_mnist_slice.mjs). */
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

export const FASHION_MNIST_SLICE_DIR = fileURLToPath(new URL('../fixtures/datasets/fashion-mnist-slice', import.meta.url));

/** Point FASHION_MNIST_DIR at `dir` (default: the slice) for the current test. */
export function useFashionMnistDir(dir = FASHION_MNIST_SLICE_DIR): void {
  const previous = process.env.FASHION_MNIST_DIR;
  process.env.FASHION_MNIST_DIR = dir;
  onTestFinished(() => {
    if (previous === undefined) delete process.env.FASHION_MNIST_DIR;
    else process.env.FASHION_MNIST_DIR = previous;
  });
}
