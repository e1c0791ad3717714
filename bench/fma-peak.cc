// The machine's single-precision multiply-add rate: the ceiling for the
// dense layers' multiplies, against which bench/gemm.mjs and
// bench/dense-infer.mjs GFLOPS read as a fraction. 24 independent chains of
// AVX-512 (or, with -mavx2, AVX2) multiply-adds per thread, enough to cover
// the instruction's latency, on 1 and then 2 threads at once (all cores busy
// may run at a lower clock than one). One JSON line per round and thread count.
// Usage (the C++ is only built for this bench, not part of the addon):
//   g++ -O2 -std=c++17 -mavx512f -mfma -pthread bench/fma-peak.cc -o /tmp/fma-peak && /tmp/fma-peak [rounds]
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#if defined(__AVX512F__)
typedef __m512 V;
static const char* kIsa = "avx512";
static V splat(float x) { return _mm512_set1_ps(x); }
static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static float sum(V v) { return _mm512_reduce_add_ps(v); }
#else
typedef __m256 V;
static const char* kIsa = "avx2";
static V splat(float x) { return _mm256_set1_ps(x); }
static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static float sum(V v) {
  float f[8];
  _mm256_storeu_ps(f, v);
  return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#endif

constexpr int kChains = 24;
constexpr long kSteps = 20'000'000;

// kSteps steps of kChains multiply-adds; the result is returned so none is dropped.
static float run() {
  V acc[kChains];
  for (int i = 0; i < kChains; i++) acc[i] = splat(i * 1e-3f);
  const V a = splat(0.9999f), b = splat(1e-4f);
  for (long s = 0; s < kSteps; s++) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; i++) acc[i] = fma(acc[i], a, b);
  }
  float t = 0;
  for (int i = 0; i < kChains; i++) t += sum(acc[i]);
  return t;
}

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const double flops = 2.0 * kChains * (sizeof(V) / sizeof(float)) * kSteps;
  float sink = 0;
  for (int r = 1; r <= rounds; r++) {
    for (int threads = 1; threads <= 2; threads++) {
      std::vector<float> out(threads);
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; t++) pool.emplace_back([&out, t] { out[t] = run(); });
      for (auto& th : pool) th.join();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (float v : out) sink += v;
      std::printf("{\"bench\":\"fma-peak\",\"isa\":\"%s\",\"round\":%d,\"threads\":%d,\"gflopsPerCore\":%.1f,\"gflops\":%.1f}\n",
                  kIsa, r, threads, flops / s / 1e9, threads * flops / s / 1e9);
    }
  }
  std::fprintf(stderr, "checksum %g\n", sink);
}
