// The inference kernel of dense layers: y = f(x·Wᵀ + bias) on weights packed
// once (pack_dense). Each output is one fixed chain of multiply-adds over k
// (see infer_tile.inc), so a row's result is the same bytes whatever the
// batch around it; the instruction set (cpu.h) is the only thing that changes
// the bytes (FMA or not). Conv layers in inference form: conv.h conv2d_infer.
#pragma once

#include <cstddef>

#include "cpu.h"

namespace normlab {

// Outputs per packed panel.
constexpr int kPanel = 16;
// packed[(p*K + k)*kPanel + j] = W[(p*kPanel + j)*K + k], zero for outputs >= N.
inline size_t packed_dense_size(int N, int K) { return (size_t)((N + kPanel - 1) / kPanel) * kPanel * K; }
void pack_dense(const float* W, int N, int K, float* packed);

struct DenseArgs {
  const float* x;  // n rows of K values, row r at x + r*ldx
  size_t ldx;
  int n, K, N;
  const float* packed;
  const float* bias;  // N values, or null
  float* y;           // y[r*ldy + o]
  size_t ldy;
  int activation;  // a kind of kernels.h or kNoActivation
  float alpha;
};
void dense_infer(Isa isa, const DenseArgs& a);

}  // namespace normlab
