// The inference kernels (infer.h). The tiles are written once
// (infer_tile.inc) and compiled three times: for the build's baseline, for
// AVX2/FMA and for AVX-512, each under its own `#pragma GCC target`, so the
// build itself needs neither (no -march). dense_infer picks one by the Isa
// the caller passes (cpu.h).
#include "infer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "infer_pool.h"
#include "kernels.h"

namespace normlab {

void pack_dense(const float* W, int N, int K, float* packed) {
  const int panels = (N + kPanel - 1) / kPanel;
  for (int p = 0; p < panels; p++) {
    for (int k = 0; k < K; k++) {
      float* dst = packed + ((size_t)p * K + k) * kPanel;
      for (int j = 0; j < kPanel; j++) {
        const int o = p * kPanel + j;
        dst[j] = o < N ? W[(size_t)o * K + k] : 0.0f;
      }
    }
  }
}

namespace {

constexpr int kPanelsMax = 4;
// Rows per L2 chunk: 96 rows of the Fashion-MNIST MLP's 784 inputs are 300 KB.
constexpr int kRowChunk = 96;

// Rows [r, r + mr) and outputs [o0, o1) of a tile's raw sums: + bias, f, store.
// One function for every instruction set, so the epilogue never differs.
// No activation and relu (the usual ones) get loops of their own without the
// per-value switch, which the compiler vectorizes (the same adds and selects,
// so the same values): at K = 256 the switch cost a fifth of the layer.
__attribute__((noinline)) void epilogue(const DenseArgs& a, const float (*out)[kPanelsMax * kPanel], int r, int mr,
                                        int o0, int o1) {
  if (a.activation == kNoActivation || a.activation == kRelu) {
    const bool relu = a.activation == kRelu;
    const int w = o1 - o0;
    for (int i = 0; i < mr; i++) {
      const float* __restrict src = out[i];
      float* __restrict dst = a.y + (size_t)(r + i) * a.ldy + o0;
      const float* __restrict b = a.bias ? a.bias + o0 : nullptr;
      if (b && relu) {
        for (int o = 0; o < w; o++) { const float v = src[o] + b[o]; dst[o] = v < 0.0f ? 0.0f : v; }
      } else if (b) {
        for (int o = 0; o < w; o++) dst[o] = src[o] + b[o];
      } else if (relu) {
        for (int o = 0; o < w; o++) { const float v = src[o]; dst[o] = v < 0.0f ? 0.0f : v; }
      } else {
        for (int o = 0; o < w; o++) dst[o] = src[o];
      }
    }
    return;
  }
  for (int i = 0; i < mr; i++) {
    for (int o = o0; o < o1; o++) {
      float v = out[i][o - o0];
      if (a.bias) v += a.bias[o];
      v = activate(a.activation, v, a.alpha);
      a.y[(size_t)(r + i) * a.ldy + o] = v;
    }
  }
}

// ---------------------------------------------------------------------------
// Baseline: GCC vector extensions (SSE2 on x86-64, NEON on ARM64); no FMA on
// x86-64's baseline, so a product and a sum, each rounded.
namespace base {
typedef float v4 __attribute__((vector_size(16)));
struct S {
  using V = v4;
  static constexpr int kLanes = 4;
  static V zero() { return V{0.0f, 0.0f, 0.0f, 0.0f}; }
  static V load(const float* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
  static V broadcast(const float* p) { const float f = *p; return V{f, f, f, f}; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }
};
constexpr int kRows = 3;
// Accumulators (4 vectors per panel row) within the 16 vector registers.
constexpr int panels_for(int mr) { return mr == 1 ? 2 : 1; }
#include "infer_tile.inc"
}  // namespace base

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
struct S {
  using V = __m256;
  static constexpr int kLanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
};
// 6 rows x 2 vectors = 12 of the 16 registers (the built-in sgemm's tile);
// fewer rows take more panels to keep 8-12 independent chains.
constexpr int kRows = 6;
constexpr int panels_for(int mr) { return mr == 1 ? 4 : mr == 2 ? 3 : mr == 3 ? 2 : 1; }
#include "infer_tile.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {
struct S {
  using V = __m512;
  static constexpr int kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
};
// One vector per panel row: 6 rows x 2 panels = 12 accumulators of 32 registers.
constexpr int kRows = 6;
constexpr int panels_for(int mr) { return mr <= 3 ? 4 : mr == 4 ? 3 : 2; }
#include "infer_tile.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

}  // namespace

namespace {

// Rows [r0, r1) of the chain; with a pool, each layer's output panels are split.
void chain_rows(Isa isa, const std::vector<DenseArgs>& layers, const float* x, float* y, int r0, int r1, float* a,
                float* b, InferPool* pool) {
  const float* in = x;
  for (size_t i = 0; i < layers.size(); i++) {
    DenseArgs args = layers[i];
    float* out = i + 1 == layers.size() ? y : (i % 2 == 0 ? a : b);
    args.x = in;
    args.y = out;
    in = out;
    args = dense_rows(args, r0, r1);
    const int panels = (args.N + kPanel - 1) / kPanel;
    if (!pool || panels < 2) {
      dense_infer(isa, args);
      continue;
    }
    const int half = (panels + 1) / 2;
    pool->split([&] { dense_infer(isa, dense_panels(args, 0, half)); },
                [&] { dense_infer(isa, dense_panels(args, half, panels)); });
  }
}

}  // namespace

void dense_chain(Isa isa, const std::vector<DenseArgs>& layers, const float* x, float* y, int n, float* a, float* b,
                 InferPool* pool) {
  if (n == 0) return;
  if (pool && n >= kRowSplitMin) {
    const int h = n / 2;
    pool->split([&] { chain_rows(isa, layers, x, y, 0, h, a, b, nullptr); },
                [&] { chain_rows(isa, layers, x, y, h, n, a, b, nullptr); });
  } else {
    chain_rows(isa, layers, x, y, 0, n, a, b, pool);
  }
}

void dense_infer(Isa isa, const DenseArgs& a) {
  if (a.n == 0 || a.N == 0) return;
#if defined(__x86_64__)
  if (isa == Isa::kAvx512) return avx512::dense(a);
  if (isa == Isa::kAvx2) return avx2::dense(a);
#else
  (void)isa;
#endif
  base::dense(a);
}

}  // namespace normlab
