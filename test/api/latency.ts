/** Health-check latency while something else runs on the same API process: how long the event loop was held. */
import { performance } from 'node:perf_hooks';

export interface Latency { samples: number; p50: number; p99: number; max: number }

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/** GET {base}/healthz back to back (5 ms apart) while `during` runs; latencies in ms. */
export async function healthLatency(base: string, during: () => Promise<unknown>): Promise<Latency> {
  const times: number[] = [];
  let done = false;
  const poll = (async () => {
    while (!done) {
      const t0 = performance.now();
      const res = await fetch(`${base}/healthz`);
      await res.arrayBuffer();
      times.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    await during();
  } finally {
    done = true;
    await poll;
  }
  const sorted = [...times].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return { samples: sorted.length, p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)), max: round(sorted.at(-1) ?? 0) };
}
