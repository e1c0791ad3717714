// The inference kernel of dense layers: y = f(x·Wᵀ + bias) on weights packed
// once (pack_dense). Each output is one fixed chain of multiply-adds over k
// (see infer_tile.inc), so a row's result is the same bytes whatever the
// batch around it; the instruction set (cpu.h) is the only thing that changes
// the bytes (FMA or not). Conv layers in inference form: conv.h conv2d_infer.
#pragma once

#include <cstddef>
#include <vector>

#include "cpu.h"

namespace normlab {

class InferPool;

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

// Rows [r0, r1) of a, or its output panels [p0, p1), as a layer of their own
// (a panel's packed weights, bias and outputs are contiguous). Every output is
// the same chain in the part as in the whole, so parts give the whole's bytes.
inline DenseArgs dense_rows(const DenseArgs& a, int r0, int r1) {
  DenseArgs r = a;
  r.x = a.x + (size_t)r0 * a.ldx;
  r.y = a.y + (size_t)r0 * a.ldy;
  r.n = r1 - r0;
  return r;
}
inline DenseArgs dense_panels(const DenseArgs& a, int p0, int p1) {
  DenseArgs r = a;
  const int o0 = p0 * kPanel;
  r.N = (p1 * kPanel < a.N ? p1 * kPanel : a.N) - o0;
  r.packed = a.packed + (size_t)p0 * a.K * kPanel;
  r.bias = a.bias ? a.bias + o0 : nullptr;
  r.y = a.y + o0;
  return r;
}

// dense_infer through every layer (their x, y and n are set here): n rows of x
// in, the last layer's outputs into y, the layers between in a and b (n times
// the widest of them, each). With a pool (infer_pool.h) the run is shared with
// its helper thread: from kRowSplitMin rows each thread takes half of the rows
// through every layer, and nothing crosses between the cores; below, each
// layer's output panels are split, so that each core streams only its half of
// the weights, which few rows barely reuse (each layer then ends in a wait
// for both halves).
constexpr int kRowSplitMin = 8;
void dense_chain(Isa isa, const std::vector<DenseArgs>& layers, const float* x, float* y, int n, float* a, float* b,
                 InferPool* pool);

}  // namespace normlab
