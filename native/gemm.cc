// sgemm, row-major: C = alpha * op(A) * op(B) + beta * C.
//
// The built-in path is the BLIS loop nest (jc, pc, ic, jr, ir): op(B) and
// op(A) blocks are packed into contiguous panels (which also absorbs the four
// transpose cases), and an MR x NR micro-kernel keeps its accumulators in
// registers: AVX2/FMA intrinsics when the CPU has them (chosen at run time,
// cpu.h), plain loops the compiler vectorizes otherwise.
#include <algorithm>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels.h"

#ifdef NORMLAB_OPENBLAS
#include <cblas.h>
// Declared here too: the cblas.h that Debian's alternatives pick may be another BLAS's.
extern "C" void openblas_set_num_threads(int num_threads);
#endif

namespace normlab {
namespace {

// MR x NR tiles: 6 x 16 with AVX2/FMA (twelve accumulators of the sixteen
// registers), 4 x 16 on the baseline; MC is a multiple of both.
constexpr int MC = 120;
constexpr int NR = 16;
// A KC x NR panel of B (16 KB) stays in L1, an MC x KC block of A (~128 KB)
// in L2, a KC x NC panel of B (2 MB) in L3.
constexpr int KC = 256;
constexpr int NC = 2048;
static_assert(MC % 6 == 0 && MC % 4 == 0 && NC % NR == 0, "blocks are whole slivers");

// Packs the mc x kc block of op(A) at (i0, p0) into MR-row slivers, each
// stored p-major (MR values per p) and zero-padded past mc.
template <int MR>
void pack_a(bool transA, const float* A, int lda, int i0, int p0, int mc, int kc,
            float* __restrict dst) {
  for (int ir = 0; ir < mc; ir += MR, dst += MR * kc) {
    const int mr = std::min(MR, mc - ir);
    if (transA) {  // stored [K, M]: op(A)(i, p) = A[p * lda + i], contiguous in i
      for (int p = 0; p < kc; ++p) {
        const float* src = A + (size_t)(p0 + p) * lda + i0 + ir;
        for (int i = 0; i < MR; ++i) dst[p * MR + i] = i < mr ? src[i] : 0.0f;
      }
    } else {  // stored [M, K]: contiguous in p
      for (int i = 0; i < MR; ++i) {
        const float* src = A + (size_t)(i0 + ir + i) * lda + p0;
        for (int p = 0; p < kc; ++p) dst[p * MR + i] = i < mr ? src[p] : 0.0f;
      }
    }
  }
}

// Packs the kc x nc block of op(B) at (p0, j0) into NR-column slivers, each
// stored p-major (NR values per p) and zero-padded past nc.
void pack_b(bool transB, const float* B, int ldb, int p0, int j0, int kc, int nc,
            float* __restrict dst) {
  for (int jr = 0; jr < nc; jr += NR, dst += NR * kc) {
    const int nr = std::min(NR, nc - jr);
    if (transB) {  // stored [N, K]: op(B)(p, j) = B[j * ldb + p], contiguous in p
      for (int j = 0; j < NR; ++j) {
        const float* src = B + (size_t)(j0 + jr + j) * ldb + p0;
        for (int p = 0; p < kc; ++p) dst[p * NR + j] = j < nr ? src[p] : 0.0f;
      }
    } else {  // stored [K, N]: contiguous in j
      for (int p = 0; p < kc; ++p) {
        const float* src = B + (size_t)(p0 + p) * ldb + j0 + jr;
        for (int j = 0; j < NR; ++j) dst[p * NR + j] = j < nr ? src[j] : 0.0f;
      }
    }
  }
}

// Writes the valid mr x nr corner of C as alpha * acc + beta * C (C is not
// read when beta == 0).
template <int MR>
inline void store_tile(const float (&acc)[MR][NR], float* __restrict c, int ldc, int mr, int nr,
                       float alpha, float beta) {
  for (int i = 0; i < mr; ++i) {
    float* ci = c + (size_t)i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

// acc = (A sliver) * (B sliver) over kc, then C's corner from store_tile.
// The plain-loop kernel of the baseline (SSE2 on x86-64, NEON on ARM64).
void micro_kernel_base(int kc, const float* __restrict a, const float* __restrict b,
                       float* __restrict c, int ldc, int mr, int nr, float alpha, float beta) {
  constexpr int MR = 4;
  alignas(32) float acc[MR][NR];
  for (int i = 0; i < MR; ++i) std::fill(acc[i], acc[i] + NR, 0.0f);
  for (int p = 0; p < kc; ++p, a += MR, b += NR) {
    // Without the unroll hints GCC vectorizes this nest with 16-byte vectors.
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i];
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
  }
  store_tile<MR>(acc, c, ldc, mr, nr, alpha, beta);
}

#if defined(__x86_64__)
// Compiled for AVX2/FMA on its own (the build targets the baseline);
// sgemm_builtin calls it only when the CPU has both.
#pragma GCC push_options
#pragma GCC target("avx2,fma")
void micro_kernel_avx2(int kc, const float* __restrict a, const float* __restrict b,
                       float* __restrict c, int ldc, int mr, int nr, float alpha, float beta) {
  constexpr int MR = 6;
  alignas(32) float acc[MR][NR];
  // Twelve named accumulators: an array of __m256 is not reliably kept in registers.
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int p = 0; p < kc; ++p, a += MR, b += NR) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 ai = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51);
  }
  _mm256_store_ps(acc[0], c00); _mm256_store_ps(acc[0] + 8, c01);
  _mm256_store_ps(acc[1], c10); _mm256_store_ps(acc[1] + 8, c11);
  _mm256_store_ps(acc[2], c20); _mm256_store_ps(acc[2] + 8, c21);
  _mm256_store_ps(acc[3], c30); _mm256_store_ps(acc[3] + 8, c31);
  _mm256_store_ps(acc[4], c40); _mm256_store_ps(acc[4] + 8, c41);
  _mm256_store_ps(acc[5], c50); _mm256_store_ps(acc[5] + 8, c51);
  store_tile<MR>(acc, c, ldc, mr, nr, alpha, beta);
}
#pragma GCC pop_options
#endif

inline float* align64(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~(uintptr_t)63);
}

using MicroKernel = void (*)(int, const float*, const float*, float*, int, int, int, float, float);

// The BLIS loop nest over one micro-kernel of MR rows.
template <int MR>
void sgemm_blocked(MicroKernel micro_kernel, GemmWorkspace& ws, bool transA, bool transB, int M, int N, int K,
                   float alpha, const float* A, const float* B, float beta, float* C) {
  const int lda = transA ? M : K;
  const int ldb = transB ? K : N;
  // 16 floats of slack: the panels start on a 64-byte boundary, so the
  // micro-kernel's vector loads never straddle two cache lines.
  ws.packA.resize((size_t)MC * KC + 16);
  ws.packB.resize((size_t)KC * NC + 16);
  float* pa = align64(ws.packA.data());
  float* pb = align64(ws.packB.data());
  for (int jc = 0; jc < N; jc += NC) {
    const int nc = std::min(NC, N - jc);
    for (int pc = 0; pc < K; pc += KC) {
      const int kc = std::min(KC, K - pc);
      pack_b(transB, B, ldb, pc, jc, kc, nc, pb);
      // Only the first K block sees the caller's beta; later ones accumulate.
      const float blk_beta = pc == 0 ? beta : 1.0f;
      for (int ic = 0; ic < M; ic += MC) {
        const int mc = std::min(MC, M - ic);
        pack_a<MR>(transA, A, lda, ic, pc, mc, kc, pa);
        for (int jr = 0; jr < nc; jr += NR) {
          for (int ir = 0; ir < mc; ir += MR) {
            micro_kernel(kc, pa + (size_t)ir * kc, pb + (size_t)jr * kc,
                         C + (size_t)(ic + ir) * N + jc + jr, N,
                         std::min(MR, mc - ir), std::min(NR, nc - jr), alpha, blk_beta);
          }
        }
      }
    }
  }
}

}  // namespace

void sgemm_builtin(GemmWorkspace& ws, bool transA, bool transB, int M, int N, int K,
                   float alpha, const float* A, const float* B, float beta, float* C) {
#if defined(__x86_64__)
  if (ws.isa != Isa::kBaseline) {
    sgemm_blocked<6>(micro_kernel_avx2, ws, transA, transB, M, N, K, alpha, A, B, beta, C);
    return;
  }
#endif
  sgemm_blocked<4>(micro_kernel_base, ws, transA, transB, M, N, K, alpha, A, B, beta, C);
}

#ifdef NORMLAB_OPENBLAS
void sgemm_openblas(bool transA, bool transB, int M, int N, int K,
                    float alpha, const float* A, const float* B, float beta, float* C) {
  if (M == 1) {
    // One row (inference at batch 1): sgemm would pack all of B on every call;
    // sgemv reads it once. A's single row is contiguous whether or not transA.
    if (beta == 0.0f) std::fill(C, C + N, 0.0f);  // beta = 0 must not read C (it may hold NaN)
    if (transB) cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, K, A, 1, beta, C, 1);
    else cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B, N, A, 1, beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, transA ? M : K, B, transB ? K : N, beta, C, N);
}

void openblas_threads(int n) { openblas_set_num_threads(n); }
#endif

}  // namespace normlab
