// Direct sgemm for the dense layers' training multiplies on AVX-512: no
// packing of the large operand (the weights, or the weight gradient's
// inputs), which a BLAS copies on every call however few the rows (at 32
// rows the first layer's forward: 105 GFLOPS here, 72 on OpenBLAS, `node
// bench/gemm.mjs --batches 32`).
//
// Every case becomes C(r, c) = alpha * sum_t A(r, t) B(t, c) + beta C(r, c),
// with B read row by row as vectors of 16 columns and A as broadcast scalars
// at any two strides, so both transposes of A cost nothing:
// - transB = false: C = op(A) B directly (dW = dyᵀ·x, dx = dy·W);
// - transA = false, transB = true (y = x·Wᵀ): Cᵀ = B Aᵀ, with the small A
//   (a batch of rows) transposed into panels of 16 or 32 columns and each
//   tile transposed back in registers on its way to C.
// Tiles are 6 rows x 4 vectors (form N) or 12 rows x 2 vectors (form T):
// 24 accumulators, so 24 independent multiply-add chains per step of t.
#include <algorithm>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels.h"

namespace normlab {

#if defined(__x86_64__)
namespace avx512 {
namespace {

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
// GCC 12's AVX-512 shuffle and unpack intrinsics start from
// _mm512_undefined_ps(), a self-initialized value it then warns about (its
// bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// r[0..15] rows of 16 -> c[j] = column j of them (lane i = r[i][j]).
inline void transpose16(const __m512 (&r)[16], __m512 (&c)[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // Group g of rows 4g..4g+3: u[4g + m] holds, in 128-bit lane L, column 4L + m.
  for (int g = 0; g < 16; g += 4) {
    u[g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
    u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
    u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
    u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
  }
  // Column 4L + m gathers lane L of u[m], u[4 + m], u[8 + m], u[12 + m].
  for (int m = 0; m < 4; m++) {
    const __m512 x0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44), x1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xEE);
    const __m512 y0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44), y1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xEE);
    c[m] = _mm512_shuffle_f32x4(x0, y0, 0x88);
    c[4 + m] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
    c[8 + m] = _mm512_shuffle_f32x4(x1, y1, 0x88);
    c[12 + m] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
  }
}

inline __mmask16 first(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

// alpha * x + beta * (masked) p; p is not read when beta == 0 (it may hold NaN).
// alpha = 1, which every layer passes, skips the multiply: 1 * x is x, and at
// K = 32 (dW at batch 32) the 24 multiplies of a tile cost 3 % of its 768
// multiply-adds.
inline __m512 scaled(__m512 x, const float* p, __mmask16 m, float alpha, float beta) {
  if (alpha != 1.0f) x = _mm512_mul_ps(_mm512_set1_ps(alpha), x);
  if (beta != 0.0f) x = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, p), x);
  return x;
}

// The accumulators of an MR x NV tile over t = 0 .. K-1. The unroll pragmas
// make every index a constant, without which GCC keeps acc on the stack.
template <int MR, int NV>
inline void accumulate(__m512 (&acc)[MR][NV], int K, const float* a, long sar, long sat, const float* b,
                       long ldb, __mmask16 last) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int t = 0; t < K; t++, a += sat, b += ldb) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, b + v * 16) : _mm512_loadu_ps(b + v * 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const __m512 ar = _mm512_set1_ps(a[r * sar]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
}

// Form N: the MR x (NV vectors, the last masked by `last`) tile of C at c.
template <int MR, int NV>
__attribute__((noipa)) void tile_n(int K, const float* a, long sar, long sat, const float* b, long ldb,
                                   __mmask16 last, float* c, long ldc, float alpha, float beta) {
  __m512 acc[MR][NV];
  accumulate<MR, NV>(acc, K, a, sar, sat, b, ldb, last);
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float* p = c + r * ldc + v * 16;
      const __mmask16 m = v == NV - 1 ? last : (__mmask16)0xFFFF;
      _mm512_mask_storeu_ps(p, m, scaled(acc[r][v], p, m, alpha, beta));
    }
}

// Form T: rows r of the tile are C's columns, its `cols` columns C's rows:
// C[j * ldc + r] for j < cols. Each 16-column block is transposed in registers
// and stored as `cols` rows of MR values.
template <int MR, int NV>
__attribute__((noipa)) void tile_t(int K, const float* a, long sar, const float* b, int cols, float* c,
                                   long ldc, float alpha, float beta) {
  __m512 acc[MR][NV];
  accumulate<MR, NV>(acc, K, a, sar, 1, b, NV * 16, (__mmask16)0xFFFF);
  const __mmask16 m = first(MR);
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    __m512 rows[16], colv[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++) rows[r] = r < MR ? acc[r][v] : _mm512_setzero_ps();
    transpose16(rows, colv);
    const int n = std::min(16, cols - v * 16);
    for (int j = 0; j < n; j++) {
      float* p = c + (long)(v * 16 + j) * ldc;
      _mm512_mask_storeu_ps(p, m, scaled(colv[j], p, m, alpha, beta));
    }
  }
}

// Row tiles of at most MRmax rows, split evenly so no tile is left with a
// few rows and few chains (32 rows as 6 6 5 5 5 5, not 6 6 6 6 6 2).
template <int MRmax, typename F>
void row_tiles(int M, F&& tile) {
  const int tiles = (M + MRmax - 1) / MRmax;
  const int base = M / tiles, extra = M % tiles;
  for (int i = 0, r = 0; i < tiles; i++) {
    const int mr = base + (i < extra ? 1 : 0);
    tile(r, mr);
    r += mr;
  }
}

template <int NV>
void form_n_block(int M, int K, const float* A, long sar, long sat, const float* b, long ldb, __mmask16 last,
                  float* c, long ldc, float alpha, float beta) {
  row_tiles<6>(M, [&](int r, int mr) {
    const float* a = A + r * sar;
    float* cr = c + r * ldc;
    switch (mr) {
#define NORMLAB_TILE(n) case n: tile_n<n, NV>(K, a, sar, sat, b, ldb, last, cr, ldc, alpha, beta); break;
      NORMLAB_TILE(1) NORMLAB_TILE(2) NORMLAB_TILE(3) NORMLAB_TILE(4) NORMLAB_TILE(5) NORMLAB_TILE(6)
#undef NORMLAB_TILE
    }
  });
}

// C [M, N] = alpha * A(r, t) B [K, N] + beta C, A(r, t) = A[r * sar + t * sat].
void form_n(int M, int N, int K, const float* A, long sar, long sat, const float* B, float* C, float alpha,
            float beta) {
  for (int j = 0; j < N; j += 64) {
    const int w = std::min(64, N - j), nv = (w + 15) / 16;
    const __mmask16 last = first(w - (nv - 1) * 16);
    switch (nv) {
      case 1: form_n_block<1>(M, K, A, sar, sat, B + j, N, last, C + j, N, alpha, beta); break;
      case 2: form_n_block<2>(M, K, A, sar, sat, B + j, N, last, C + j, N, alpha, beta); break;
      case 3: form_n_block<3>(M, K, A, sar, sat, B + j, N, last, C + j, N, alpha, beta); break;
      default: form_n_block<4>(M, K, A, sar, sat, B + j, N, last, C + j, N, alpha, beta); break;
    }
  }
}

// X [M, K] row-major into panels of W = 16 * NV rows, each stored t-major:
// P[p][t][i] = X[(p * W + i) * K + t], zero past row M.
template <int NV>
void pack_columns(int M, int K, const float* X, float* P) {
  constexpr int W = NV * 16;
  __m512 rows[16], cols[16];
  for (int p0 = 0; p0 < M; p0 += W, P += (size_t)K * W) {
    for (int h = 0; h < NV; h++) {
      const int i0 = p0 + h * 16, ni = std::max(0, std::min(16, M - i0));
      for (int t0 = 0; t0 < K; t0 += 16) {
        const __mmask16 m = first(K - t0);
        for (int i = 0; i < 16; i++)
          rows[i] = i < ni ? _mm512_maskz_loadu_ps(m, X + (size_t)(i0 + i) * K + t0) : _mm512_setzero_ps();
        transpose16(rows, cols);
        const int nt = std::min(16, K - t0);
        for (int t = 0; t < nt; t++) _mm512_storeu_ps(P + (size_t)(t0 + t) * W + h * 16, cols[t]);
      }
    }
  }
}

// C [M, N] = alpha * X [M, K] · Wᵀ + beta C, W [N, K], as Cᵀ = W Xᵀ: the
// weights are read in place, X is packed (M is the small side).
template <int NV>
void form_t(GemmWorkspace& ws, int M, int N, int K, const float* X, const float* Wt, float* C, float alpha,
            float beta) {
  constexpr int W = NV * 16;
  const int panels = (M + W - 1) / W;
  ws.direct.resize((size_t)panels * K * W);
  float* P = ws.direct.data();
  pack_columns<NV>(M, K, X, P);
  // Weight rows outside, panels inside: each tile's rows of W stay in L1/L2
  // while every panel passes under them.
  row_tiles<12>(N, [&](int r, int mr) {
    for (int p = 0; p < panels; p++) {
      const float* a = Wt + (size_t)r * K;
      const float* b = P + (size_t)p * K * W;
      float* c = C + (size_t)p * W * N + r;
      const int cols = std::min(W, M - p * W);
      switch (mr) {
#define NORMLAB_TILE(n) case n: tile_t<n, NV>(K, a, K, b, cols, c, N, alpha, beta); break;
        NORMLAB_TILE(1) NORMLAB_TILE(2) NORMLAB_TILE(3) NORMLAB_TILE(4) NORMLAB_TILE(5) NORMLAB_TILE(6)
        NORMLAB_TILE(7) NORMLAB_TILE(8) NORMLAB_TILE(9) NORMLAB_TILE(10) NORMLAB_TILE(11) NORMLAB_TILE(12)
#undef NORMLAB_TILE
      }
    }
  });
}

#pragma GCC diagnostic pop
#pragma GCC pop_options

}  // namespace
}  // namespace avx512
#endif

bool sgemm_direct(GemmWorkspace& ws, bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                  const float* B, float beta, float* C) {
#if defined(__x86_64__)
  if (ws.isa != Isa::kAvx512 || ws.blas_threads > 1 || K > kDirectMaxK || N < 16) return false;
  if (!transB) {
    // B's 64-column block (K x 64) must sit in L2 across the row tiles, and
    // A, read once per block, in L2 too. Below 16 steps of t the stores
    // outweigh the sums (dx of a 10-output layer ran at 0.94x OpenBLAS).
    if (K < 16 || (size_t)M * K > kDirectMaxA) return false;
    if (transA) avx512::form_n(M, N, K, A, 1, M, B, C, alpha, beta);  // op(A)(r, t) = A[t * M + r]
    else avx512::form_n(M, N, K, A, K, 1, B, C, alpha, beta);
    return true;
  }
  // x's panels, read again under every tile of weight rows, from L2 or L3
  // (at 512 x 784, 1.6 MB, still 1.05x OpenBLAS). C is written 12 columns
  // at a time down all its rows: past 512 KB of it OpenBLAS's tiles win (an
  // LSTM's input projection ran at 0.75x before this bound: `node
  // bench/gemm.mjs --shapes nt:3584x512x28` with the addon built at 03f9594).
  if (transA || M < 16 || K < 16 || (size_t)M * K > kDirectMaxX || (size_t)M * N > kDirectMaxC) return false;
  if (M <= 16) avx512::form_t<1>(ws, M, N, K, A, B, C, alpha, beta);
  else avx512::form_t<2>(ws, M, N, K, A, B, C, alpha, beta);
  return true;
#else
  (void)ws, (void)transA, (void)transB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)B, (void)beta, (void)C;
  return false;
#endif
}

}  // namespace normlab
