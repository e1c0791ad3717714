// sgemm, row-major: C = alpha * op(A) * op(B) + beta * C.
//
// The built-in path is the BLIS loop nest (jc, pc, ic, jr, ir) in plain
// loops: op(B) and op(A) blocks are packed into contiguous panels (which also
// absorbs the four transpose cases), and an MR x NR micro-kernel that the
// compiler unrolls and vectorizes keeps its accumulators in registers.
#include <algorithm>

#include "kernels.h"

#ifdef NORMLAB_OPENBLAS
#include <cblas.h>
// Declared here too: the cblas.h that Debian's alternatives pick may be another BLAS's.
extern "C" void openblas_set_num_threads(int num_threads);
#endif

namespace normlab {
namespace {

// 4 x 16 accumulators = 8 AVX2 registers. GCC keeps all of them in
// registers at this size; at 6 x 16 it starts spilling (measured).
constexpr int MR = 4;
constexpr int NR = 16;
// A KC x NR panel of B (16 KB) stays in L1, an MC x KC block of A (128 KB)
// in L2, a KC x NC panel of B (2 MB) in L3.
constexpr int KC = 256;
constexpr int MC = 128;
constexpr int NC = 2048;
static_assert(MC % MR == 0 && NC % NR == 0, "blocks are whole slivers");

// Packs the mc x kc block of op(A) at (i0, p0) into MR-row slivers, each
// stored p-major (MR values per p) and zero-padded past mc.
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

// acc = (A sliver) * (B sliver) over kc, then the valid mr x nr corner of C
// becomes alpha * acc + beta * C (C is not read when beta == 0).
void micro_kernel(int kc, const float* __restrict a, const float* __restrict b,
                  float* __restrict c, int ldc, int mr, int nr, float alpha, float beta) {
  float acc[MR][NR] = {};
  for (int p = 0; p < kc; ++p, a += MR, b += NR) {
    // Without the unroll hints GCC vectorizes this nest with 16-byte vectors.
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i];
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
  }
  for (int i = 0; i < mr; ++i) {
    float* ci = c + (size_t)i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

}  // namespace

void sgemm_builtin(GemmWorkspace& ws, bool transA, bool transB, int M, int N, int K,
                   float alpha, const float* A, const float* B, float beta, float* C) {
  const int lda = transA ? M : K;
  const int ldb = transB ? K : N;
  ws.packA.resize((size_t)MC * KC);
  ws.packB.resize((size_t)KC * NC);
  float* pa = ws.packA.data();
  float* pb = ws.packB.data();
  for (int jc = 0; jc < N; jc += NC) {
    const int nc = std::min(NC, N - jc);
    for (int pc = 0; pc < K; pc += KC) {
      const int kc = std::min(KC, K - pc);
      pack_b(transB, B, ldb, pc, jc, kc, nc, pb);
      // Only the first K block sees the caller's beta; later ones accumulate.
      const float blk_beta = pc == 0 ? beta : 1.0f;
      for (int ic = 0; ic < M; ic += MC) {
        const int mc = std::min(MC, M - ic);
        pack_a(transA, A, lda, ic, pc, mc, kc, pa);
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
