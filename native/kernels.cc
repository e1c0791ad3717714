// Every kernel but gemm: each forward next to its backward, plain loops.
// Reductions accumulate in double; elementwise work stays in float.
// Built without -ffast-math: NaN and Inf must propagate so the trainer can
// detect divergence.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace normlab {

// ----------------------------------------------------------------------------
// activations. Written so that a NaN input gives a NaN output (relu included).

NORMLAB_CLONES void activation_forward(int kind, const float* x, float* y, size_t n, float alpha) {
  switch (kind) {
    case kRelu:
      for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
      break;
    case kLeakyRelu:
      for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? alpha * x[i] : x[i];
      break;
    case kElu:
      for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : alpha * std::expm1(x[i]);
      break;
    case kTanh:
      for (size_t i = 0; i < n; i++) y[i] = std::tanh(x[i]);
      break;
    case kSigmoid:
      for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
      break;
  }
}

NORMLAB_CLONES void activation_backward(int kind, const float* x, const float* y, const float* dy, float* dx,
                         size_t n, float alpha) {
  switch (kind) {
    case kRelu:  // x = 0 takes the x < 0 side, as PyTorch does
      for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
      break;
    case kLeakyRelu:
      for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : alpha * dy[i];
      break;
    case kElu:  // alpha * exp(x) = y + alpha on the negative side
      for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * (y[i] + alpha);
      break;
    case kTanh:
      for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
      break;
    case kSigmoid:
      for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
      break;
  }
}

// ----------------------------------------------------------------------------
// inverted dropout; backward is multiply(dy, mask)

// xoshiro128**, the algorithm of src/core/rng.ts nextUint32: both sides must
// draw the same stream from the same state.
static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static inline uint32_t next_uint32(uint32_t* s) {
  const uint32_t result = rotl(s[1] * 5, 7) * 9;
  const uint32_t t = s[1] << 9;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 11);
  return result;
}

void dropout_forward(const float* x, float* y, float* mask, size_t n, double rate, uint32_t* rng_state) {
  uint32_t s[4] = {rng_state[0], rng_state[1], rng_state[2], rng_state[3]};
  const float keep_scale = (float)(1.0 / (1.0 - rate));
  for (size_t i = 0; i < n; i++) {
    const double u = (double)(next_uint32(s) >> 8) * (1.0 / 16777216.0);
    mask[i] = u < rate ? 0.0f : keep_scale;
    y[i] = x[i] * mask[i];
  }
  for (int k = 0; k < 4; k++) rng_state[k] = s[k];
}

NORMLAB_CLONES void multiply(const float* a, const float* b, float* out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

// ----------------------------------------------------------------------------
// mini-batch gather: rows of the training set straight into the input buffer

void gather_rows(const float* src, const int32_t* src_labels, const int32_t* rows, int start, int n, int features,
                 float* dst, int32_t* dst_labels) {
  for (int i = 0; i < n; i++) {
    const int32_t r = rows[start + i];
    std::memcpy(dst + (size_t)i * features, src + (size_t)r * features, sizeof(float) * features);
    dst_labels[i] = src_labels[r];
  }
}

// ----------------------------------------------------------------------------
// softmax and softmax cross-entropy over rows of C logits

void softmax_rows(const float* z, float* out, int N, int C) {
  thread_local std::vector<double> exps;
  if (exps.size() < (size_t)C) exps.resize(C);
  for (int n = 0; n < N; n++) {
    const float* zr = z + (size_t)n * C;
    float* o = out + (size_t)n * C;
    double max = -INFINITY;  // NaN when any logit is (std::max alone would drop it)
    for (int c = 0; c < C && !std::isnan(max); c++) max = std::isnan(zr[c]) ? NAN : std::max(max, (double)zr[c]);
    double sum = 0.0;
    for (int c = 0; c < C; c++) sum += (exps[c] = std::exp((double)zr[c] - max));
    for (int c = 0; c < C; c++) o[c] = (float)(exps[c] / sum);
  }
}

double softmax_cross_entropy(const float* logits, const int32_t* labels, float* probs,
                             int N, int C, int32_t* correct) {
  double loss = 0.0;
  int32_t hits = 0;
  for (int n = 0; n < N; n++) {
    const float* z = logits + (size_t)n * C;
    float* p = probs + (size_t)n * C;
    int argmax = 0;
    for (int c = 1; c < C; c++) {
      if (z[c] > z[argmax]) argmax = c;
    }
    const float maxval = z[argmax];
    double sum = 0.0;
    for (int c = 0; c < C; c++) {
      p[c] = std::exp(z[c] - maxval);
      sum += p[c];
    }
    const float norm = (float)(1.0 / sum);
    for (int c = 0; c < C; c++) p[c] *= norm;
    // -log softmax[label] = log(sum) - (z[label] - max), exact even when the
    // probability underflows to 0.
    const int label = labels[n];
    loss += std::log(sum) - ((double)z[label] - maxval);
    if (argmax == label) hits++;
  }
  if (correct) *correct = hits;
  return loss / N;
}

NORMLAB_CLONES void softmax_cross_entropy_backward(const float* probs, const int32_t* labels, float* dlogits,
                                    int N, int C) {
  const float inv_n = 1.0f / (float)N;
  for (int n = 0; n < N; n++) {
    const float* p = probs + (size_t)n * C;
    float* d = dlogits + (size_t)n * C;
    for (int c = 0; c < C; c++) d[c] = (p[c] - (c == labels[n] ? 1.0f : 0.0f)) * inv_n;
  }
}

// ----------------------------------------------------------------------------
// optimizers (PyTorch semantics, see types.ts)

NORMLAB_CLONES void sgd_step(float* param, const float* grad, float* velocity, size_t n,
              float lr, float momentum, bool nesterov, float weight_decay) {
  for (size_t i = 0; i < n; i++) {
    float g = grad[i] + weight_decay * param[i];
    if (momentum > 0.0f) {
      velocity[i] = momentum * velocity[i] + g;
      g = nesterov ? g + momentum * velocity[i] : velocity[i];
    }
    param[i] -= lr * g;
  }
}

NORMLAB_CLONES void adam_step(float* param, const float* grad, float* m, float* v, size_t n,
               double lr, double beta1, double beta2, double eps, double weight_decay, double step) {
  const float step_size = (float)(lr / (1.0 - std::pow(beta1, step)));
  const float bc2_sqrt = (float)std::sqrt(1.0 - std::pow(beta2, step));
  const float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps, wd = (float)weight_decay;
  for (size_t i = 0; i < n; i++) {
    const float g = grad[i] + wd * param[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    param[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + e);
  }
}

}  // namespace normlab
