// The compute kernels of NormLab over raw float pointers, one function per
// entry of the Kernels interface (src/core/kernels/types.ts, whose doc
// comments are the contract). Sizes are validated by addon.cc before any of
// these run; nothing here allocates except the gemm workspace.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu.h"

// The elementwise and reduction loops (batch norm, activations, optimizers,
// im2col, pooling) get an AVX2 clone next to the baseline one, picked by the
// CPU when the addon loads (GCC function multi-versioning). AVX2 without FMA:
// no multiply-add is contracted and no reduction reordered, so both clones
// give the same bytes; only the hand-written kernels (cpu.h) differ by path.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NORMLAB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NORMLAB_CLONES
#endif

namespace normlab {

// Packed panels of the built-in sgemm, and the instruction set its
// micro-kernel uses. One per addon instance, i.e. per thread, so the kernels
// stay reentrant without static state.
struct GemmWorkspace {
  std::vector<float> packA;
  std::vector<float> packB;
  std::vector<float> direct;  // sgemm_direct's transposed panels of x
  Isa isa = Isa::kBaseline;
  // OpenBLAS's threads (setGemmThreads): above 1, sgemm_direct, which runs on
  // one, leaves every multiply to OpenBLAS.
  int blas_threads = 1;
};

// C = alpha * op(A) * op(B) + beta * C, row-major, op(A) [M, K], op(B) [K, N].
void sgemm_builtin(GemmWorkspace& ws, bool transA, bool transB, int M, int N, int K,
                   float alpha, const float* A, const float* B, float beta, float* C);
// The same product without packing the large operand (gemm_direct.cc), on
// AVX-512 only and where it measured faster than OpenBLAS: transB false with
// M * K <= kDirectMaxA (dW = dyᵀ·x, dx = dy·W), or transA false, transB true
// with M >= 16, M * K <= kDirectMaxX and M * N <= kDirectMaxC (y = x·Wᵀ);
// 16 <= K <= kDirectMaxK and N >= 16 in both; and OpenBLAS on one thread.
// False, with C untouched, when it does not apply.
constexpr int kDirectMaxK = 1024;
constexpr size_t kDirectMaxA = 131072;
constexpr size_t kDirectMaxX = 524288;
constexpr size_t kDirectMaxC = 131072;
bool sgemm_direct(GemmWorkspace& ws, bool transA, bool transB, int M, int N, int K,
                  float alpha, const float* A, const float* B, float beta, float* C);
#ifdef NORMLAB_OPENBLAS
void sgemm_openblas(bool transA, bool transB, int M, int N, int K,
                    float alpha, const float* A, const float* B, float beta, float* C);
void openblas_threads(int n);
#endif

// Batch norm and bias (batchnorm.cc). `activation` is a kind below or
// kNoActivation; with one, the forward writes f(BN(x)) or f(x + bias) and the
// backward takes y = that output to get f'.
// kind is the index in ACTIVATIONS of types.ts.
enum Activation { kNoActivation = -1, kRelu = 0, kLeakyRelu = 1, kElu = 2, kTanh = 3, kSigmoid = 4 };
void add_bias(float* x, const float* bias, int N, int C, int S, int activation, float alpha);
// Per-channel statistics over the N*S values of channels [c0, c0+cb),
// cb <= kChannelBlock: mean and biased variance.
constexpr int kChannelBlock = 64;
void channel_moments(const float* x, int N, int C, int S, int c0, int cb, double* mean, double* var);
// The one shifted-moments pass: adds Σ(x − shift[j]) and Σ(x − shift[j])² over the N*S values of
// channel c0 + j to sums[2j] and sums[2j + 1] (double; each row's S values summed first), j < cb.
void add_shifted_sums(const float* x, int N, int C, int S, int c0, int cb, const double* shift, double* sums);
// add_shifted_sums over all C channels (sums[2c], sums[2c + 1]): channel_moments, population statistics.
void channel_shifted_sums(const float* x, int N, int C, int S, const double* shift, double* sums);
// Keras convention: momentum weighs the old value; the variance goes in
// unbiased (M values per channel), or as it is when M = 0 (already unbiased).
// The one running-statistics update: batchnorm_forward_train (with or without
// renormalization) and batch_norm_update_running (ghost batch norm, population statistics).
inline void update_running_stats(float* running_mean, float* running_var, int c, double mean, double var,
                                 double M, double momentum) {
  running_mean[c] = (float)(momentum * running_mean[c] + (1.0 - momentum) * mean);
  running_var[c] = M > 0.0 ? (float)(momentum * running_var[c] + (1.0 - momentum) * var * M / (M - 1.0))
                           : (float)(momentum * running_var[c] + (1.0 - momentum) * var);
}
void batch_norm_update_running(float* running_mean, float* running_var, const double* mean, const double* var,
                               int C, double momentum, double count);
// With an activation, dy is first replaced in place by dy·f'(y).
void bias_grad(float* dy, float* dbias, int N, int C, int S, int activation, float alpha, const float* y);
// Batch renormalization's clip limits and the r, d it saves; null for batch norm.
struct RenormClip {
  double r_max, d_max;
  float* save_r;
  float* save_d;
};
void batchnorm_forward_train(const float* x, float* y, int N, int C, int S,
                             const float* gamma, const float* beta,
                             float* running_mean, float* running_var,
                             double momentum, double eps, bool update_running,
                             float* save_mean, float* save_rstd, int activation, float alpha,
                             const RenormClip* renorm);
void batchnorm_forward_infer(const float* x, float* y, int N, int C, int S,
                             const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, double eps);
// save_r, save_d (renormalization's r and d, constants here) both null for batch norm.
void batchnorm_backward(const float* x, const float* dy, float* dx, int N, int C, int S,
                        const float* gamma, const float* save_mean, const float* save_rstd,
                        const float* save_r, const float* save_d,
                        float* dgamma, float* dbeta, int activation, float alpha, const float* y);
// Frozen statistics: dx = g·γ·rstd, dγ = Σ g·x̂, dβ = Σ g in double, g = dy·f'(y) with an activation.
void batchnorm_backward_frozen(const float* x, const float* dy, float* dx, int N, int C, int S,
                               const float* gamma, const float* running_mean, const float* running_var, double eps,
                               float* dgamma, float* dbeta, int activation, float alpha, const float* y);
// Ghost batch norm: batchnorm_backward per virtual batch (save_r, save_d null without renormalization),
// γ/β gradients summed in float through scratch (2·C floats).
void batchnorm_backward_ghost(const float* x, const float* dy, float* dx, int N, int C, int S, int virtual_batch,
                              const float* gamma, const float* save_mean, const float* save_rstd,
                              const float* save_r, const float* save_d, float* dgamma, float* dbeta, float* scratch,
                              int activation, float alpha, const float* y);
void activation_forward(int kind, const float* x, float* y, size_t n, float alpha);
// One value of activation_forward (kNoActivation: v itself), for the fused epilogues.
inline float activate(int kind, float v, float alpha) {
  switch (kind) {
    case kRelu: return v < 0.0f ? 0.0f : v;
    case kLeakyRelu: return v < 0.0f ? alpha * v : v;
    case kElu: return v > 0.0f ? v : alpha * std::expm1(v);
    case kTanh: return std::tanh(v);
    case kSigmoid: return 1.0f / (1.0f + std::exp(-v));
    default: return v;
  }
}
void activation_backward(int kind, const float* x, const float* y, const float* dy, float* dx,
                         size_t n, float alpha);

void dropout_forward(const float* x, float* y, float* mask, size_t n, double rate, uint32_t* rng_state);
void multiply(const float* a, const float* b, float* out, size_t n);
// dst row i = src row rows[start + i], dst_labels[i] = src_labels[that row]; rows are range-checked by the caller.
void gather_rows(const float* src, const int32_t* src_labels, const int32_t* rows, int start, int n, int features,
                 float* dst, int32_t* dst_labels);

// out[n, c] = exp(z[n, c] - max_c z[n, c]) / sum, in double precision (an
// inference model's probabilities); a NaN among a row's logits makes the row
// NaN. out may alias z.
void softmax_rows(const float* z, float* out, int N, int C);
// Returns the mean loss; writes *correct when correct is non-null.
// Labels are range-checked by the caller.
double softmax_cross_entropy(const float* logits, const int32_t* labels, float* probs,
                             int N, int C, int32_t* correct);
void softmax_cross_entropy_backward(const float* probs, const int32_t* labels, float* dlogits,
                                    int N, int C);

void sgd_step(float* param, const float* grad, float* velocity, size_t n,
              float lr, float momentum, bool nesterov, float weight_decay);
void adam_step(float* param, const float* grad, float* m, float* v, size_t n,
               double lr, double beta1, double beta2, double eps, double weight_decay, double step);

}  // namespace normlab
