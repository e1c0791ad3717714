import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Test files share two cores and one Redis; keep parallelism modest.
    maxWorkers: 2,
  },
});
