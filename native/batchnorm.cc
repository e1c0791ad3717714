// Batch norm and bias, each with an optional activation fused in.
//
// Forward (training): one pass for the per-channel statistics, one pass that
// normalizes, scales, shifts and applies the activation. Backward: one pass
// for the two reductions (Σg, Σg·x̂) and one for dx, where g = dy·f'(·) is
// recomputed from the stored output y instead of being stored.
//
// Every activation's derivative can be read off its output (relu, leaky_relu
// and elu keep the sign of their input; tanh' = 1−y², sigmoid' = y(1−y)), so
// the pre-activation values are never kept.
//
// Batch renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing
// Minibatch Dependence in Batch-Normalized Models") is the same forward with
//   sigma = sqrt(runningVar + eps)                (the old running value)
//   r     = clip(sqrt(var + eps)/sigma, 1/rMax, rMax)
//   d     = clip((mean - runningMean)/sigma, -dMax, dMax)
//   y     = f(gamma*((x - mean)*rstd*r + d) + beta)
// and, r and d being constants to the gradient, the same backward with γ·r as
// the scale and dγ = r·Σg·x̂ + d·Σg. rMax = 1, dMax = 0 gives r = 1, d = 0.
//
// Layout x[(n*C + c)*S + s]. With S = 1 (dense layers) the elementwise loops
// run along rows, over contiguous channels, so the compiler vectorizes them;
// the per-channel sums run down the rows, a group of channels at a time.
#include <algorithm>
#include <cmath>

#include "kernels.h"
#include "lanes.h"

namespace normlab {

namespace {

// Independent partial sums per reduction over a channel's plane.
constexpr int kLanes = 16;
typedef float f4 __attribute__((vector_size(16)));
typedef double d4 __attribute__((vector_size(32)));

// With S = 1, the sums of kGroup channels at a time stay in registers through
// all N rows; the row loop outside would load and store every channel's sums
// once per row. Each channel's sums are the same adds in the same order. The
// float work runs on 4 lanes, each converted to double in one instruction.
constexpr int kGroup = 8;

// Element by element: GCC lowers this to one vcvtps2pd, __builtin_convertvector to four instructions.
inline d4 to_d4(f4 v) { return d4{v[0], v[1], v[2], v[3]}; }

template <int K> inline float act(float z, float alpha) {
  if constexpr (K == kRelu) return z < 0.0f ? 0.0f : z;  // NaN stays NaN
  else if constexpr (K == kLeakyRelu) return z < 0.0f ? alpha * z : z;
  else if constexpr (K == kElu) return z > 0.0f ? z : alpha * std::expm1(z);
  else if constexpr (K == kTanh) return std::tanh(z);
  else if constexpr (K == kSigmoid) return 1.0f / (1.0f + std::exp(-z));
  else return z;
}

// f'(z) from y = f(z), on one float or on 4 lanes (f4). At z = 0 this is the
// z < 0 side, as in PyTorch.
template <int K, typename T> inline T act_grad(T y, float alpha) {
  const T zero = T{}, one = zero + 1.0f, a = zero + alpha;
  if constexpr (K == kRelu) return y > zero ? one : zero;
  else if constexpr (K == kLeakyRelu) return y > zero ? one : a;
  else if constexpr (K == kElu) return y > zero ? one : y + a;
  else if constexpr (K == kTanh) return one - y * y;
  else if constexpr (K == kSigmoid) return y * (one - y);
  else return one;
}

// Calls fn.template operator()<K>() for the runtime activation kind.
template <typename Fn> void with_activation(int kind, Fn&& fn) {
  switch (kind) {
    case kRelu: fn.template operator()<kRelu>(); break;
    case kLeakyRelu: fn.template operator()<kLeakyRelu>(); break;
    case kElu: fn.template operator()<kElu>(); break;
    case kTanh: fn.template operator()<kTanh>(); break;
    case kSigmoid: fn.template operator()<kSigmoid>(); break;
    default: fn.template operator()<kNoActivation>(); break;
  }
}

// y = f(x·scale[c] + shift[c]) over channels [c0, c0+cb).
template <int K>
NORMLAB_CLONES void affine_activation(const float* x, float* y, int N, int C, int S, int c0, int cb,
                       const float* scale, const float* shift, float alpha) {
  for (int n = 0; n < N; n++) {
    const size_t off = ((size_t)n * C + c0) * S;
    if (S == 1) {
      for (int j = 0; j < cb; j++) y[off + j] = act<K>(x[off + j] * scale[j] + shift[j], alpha);
    } else {
      for (int j = 0; j < cb; j++) {
        const float a = scale[j], b = shift[j];
        for (int s = 0; s < S; s++) y[off + (size_t)j * S + s] = act<K>(x[off + (size_t)j * S + s] * a + b, alpha);
      }
    }
  }
}

}  // namespace

NORMLAB_CLONES void add_shifted_sums(const float* x, int N, int C, int S, int c0, int cb, const double* shift,
                                     double* sums) {
  double sum[kChannelBlock], sumsq[kChannelBlock];
  for (int j = 0; j < cb; j++) {
    sum[j] = sums[2 * j];
    sumsq[j] = sums[2 * j + 1];
  }
  if (S == 1) {
    int j = 0;
    for (; j + kGroup <= cb; j += kGroup) {
      d4 sm[kGroup / 4], sq[kGroup / 4], sh[kGroup / 4];
      for (int q = 0; q < kGroup / 4; q++) {
        sm[q] = lanes::load<d4>(sum + j + 4 * q);
        sq[q] = lanes::load<d4>(sumsq + j + 4 * q);
        sh[q] = lanes::load<d4>(shift + j + 4 * q);
      }
      for (int n = 0; n < N; n++) {
        const float* xn = x + (size_t)n * C + c0 + j;
        for (int q = 0; q < kGroup / 4; q++) {
          const d4 d = to_d4(lanes::load<f4>(xn + 4 * q)) - sh[q];
          sm[q] += d;
          sq[q] += d * d;
        }
      }
      for (int q = 0; q < kGroup / 4; q++) {
        lanes::store(sum + j + 4 * q, sm[q]);
        lanes::store(sumsq + j + 4 * q, sq[q]);
      }
    }
    for (; j < cb; j++) {
      for (int n = 0; n < N; n++) {
        const double d = (double)x[(size_t)n * C + c0 + j] - shift[j];
        sum[j] += d;
        sumsq[j] += d * d;
      }
    }
  } else {
    for (int n = 0; n < N; n++) {
      const float* xn = x + ((size_t)n * C + c0) * S;
      for (int j = 0; j < cb; j++) {
        const float* xc = xn + (size_t)j * S;
        const double sh = shift[j];
        // kLanes independent sums (one long chain of dependent adds would
        // bound the pass by the add latency), combined in a fixed order.
        // Written as vectors of 4 lanes: the compiler leaves the scalar
        // form, float-to-double conversions and all, unvectorized.
        d4 v1[kLanes / 4] = {}, v2[kLanes / 4] = {};
        const d4 shv = {sh, sh, sh, sh};
        int s = 0;
        for (; s + kLanes <= S; s += kLanes) {
          for (int q = 0; q < kLanes / 4; q++) {
            const d4 d = to_d4(lanes::load<f4>(xc + s + 4 * q)) - shv;
            v1[q] += d;
            v2[q] += d * d;
          }
        }
        double s1 = 0.0, s2 = 0.0;
        for (int l = 0; l < kLanes; l++) {
          s1 += v1[l / 4][l % 4];
          s2 += v2[l / 4][l % 4];
        }
        for (; s < S; s++) {
          const double d = (double)xc[s] - sh;
          s1 += d;
          s2 += d * d;
        }
        sum[j] += s1;
        sumsq[j] += s2;
      }
    }
  }
  for (int j = 0; j < cb; j++) {
    sums[2 * j] = sum[j];
    sums[2 * j + 1] = sumsq[j];
  }
}

void channel_shifted_sums(const float* x, int N, int C, int S, const double* shift, double* sums) {
  for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
    add_shifted_sums(x, N, C, S, c0, std::min(kChannelBlock, C - c0), shift + c0, sums + 2 * (size_t)c0);
  }
}

void channel_moments(const float* x, int N, int C, int S, int c0, int cb, double* mean, double* var) {
  // Sums around a shift (the channel's first value) keep the variance from
  // cancelling when |mean| >> std.
  // shift zeroed for GCC's -Wmaybe-uninitialized: [0, cb), all that is read, is set below.
  double shift[kChannelBlock] = {}, sums[2 * kChannelBlock] = {};
  for (int j = 0; j < cb; j++) shift[j] = x[(size_t)(c0 + j) * S];
  add_shifted_sums(x, N, C, S, c0, cb, shift, sums);
  const double M = (double)N * S;
  for (int j = 0; j < cb; j++) {
    const double sum = sums[2 * j], sumsq = sums[2 * j + 1];
    mean[j] = shift[j] + sum / M;
    var[j] = (sumsq - sum * sum / M) / M;
    if (var[j] < 0.0) var[j] = 0.0;  // rounding only; NaN must stay NaN
  }
}

NORMLAB_CLONES void batchnorm_forward_train(const float* x, float* y, int N, int C, int S,
                             const float* gamma, const float* beta,
                             float* running_mean, float* running_var,
                             double momentum, double eps, bool update_running,
                             float* save_mean, float* save_rstd, int activation, float alpha,
                             const RenormClip* renorm) {
  const double M = (double)N * S;
  for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
    const int cb = std::min(kChannelBlock, C - c0);
    float scale[kChannelBlock], shift[kChannelBlock];
    double means[kChannelBlock], vars[kChannelBlock];
    channel_moments(x, N, C, S, c0, cb, means, vars);
    for (int j = 0; j < cb; j++) {
      const int c = c0 + j;
      const double mean = means[j], var = vars[j];
      const double rstd = 1.0 / std::sqrt(var + eps);
      const double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
      save_mean[c] = (float)mean;
      save_rstd[c] = (float)rstd;
      if (renorm) {
        // r and d from the running statistics as they were before this batch.
        // std::max/min with the ratio first: a NaN ratio stays NaN.
        const double sigma = std::sqrt((double)running_var[c] + eps);
        const double r = std::min(std::max(std::sqrt(var + eps) / sigma, 1.0 / renorm->r_max), renorm->r_max);
        const double d = std::min(std::max((mean - running_mean[c]) / sigma, -renorm->d_max), renorm->d_max);
        renorm->save_r[c] = (float)r;
        renorm->save_d[c] = (float)d;
        // γ·((x − mean)·rstd·r + d) + β as one multiply-add per value.
        scale[j] = (float)(g * rstd * r);
        shift[j] = (float)(b + g * d - mean * g * rstd * r);
      } else {
        // (x − mean)·rstd·γ + β folded into one multiply-add per value.
        scale[j] = (float)(g * rstd);
        shift[j] = (float)(b - mean * g * rstd);
      }
      if (update_running) update_running_stats(running_mean, running_var, c, mean, var, M, momentum);
    }
    with_activation(activation, [&]<int K>() { affine_activation<K>(x, y, N, C, S, c0, cb, scale, shift, alpha); });
  }
}

NORMLAB_CLONES void batchnorm_forward_infer(const float* x, float* y, int N, int C, int S,
                             const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, double eps) {
  for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
    const int cb = std::min(kChannelBlock, C - c0);
    float scale[kChannelBlock], shift[kChannelBlock];
    for (int j = 0; j < cb; j++) {
      const int c = c0 + j;
      const double s = (gamma ? gamma[c] : 1.0) / std::sqrt((double)running_var[c] + eps);
      scale[j] = (float)s;
      shift[j] = (float)((beta ? beta[c] : 0.0) - running_mean[c] * s);
    }
    affine_activation<kNoActivation>(x, y, N, C, S, c0, cb, scale, shift, 0.0f);
  }
}

namespace {

template <int K>
NORMLAB_CLONES void batchnorm_backward_block(const float* x, const float* y, const float* dy, float* dx,
                              int N, int C, int S, int c0, int cb, const float* gamma,
                              const float* save_mean, const float* save_rstd,
                              const float* save_r, const float* save_d,
                              float* dgamma, float* dbeta, const float alpha) {
  const double M = (double)N * S;
  double gsum[kChannelBlock] = {}, gxhat_sum[kChannelBlock] = {};
  float mean[kChannelBlock], rstd[kChannelBlock];
  std::copy(save_mean + c0, save_mean + c0 + cb, mean);
  std::copy(save_rstd + c0, save_rstd + c0 + cb, rstd);
  // g = dy·f'(y), the gradient at the batch-norm output; plain values (no
  // captured references) so the loops below vectorize.
  if (S == 1) {
    int j = 0;
    for (; j + kGroup <= cb; j += kGroup) {
      f4 m[kGroup / 4], r[kGroup / 4];
      d4 gs[kGroup / 4] = {}, gx[kGroup / 4] = {};
      for (int q = 0; q < kGroup / 4; q++) {
        m[q] = lanes::load<f4>(mean + j + 4 * q);
        r[q] = lanes::load<f4>(rstd + j + 4 * q);
      }
      for (int n = 0; n < N; n++) {
        const size_t off = (size_t)n * C + c0 + j;
        for (int q = 0; q < kGroup / 4; q++) {
          const size_t i = off + 4 * q;
          f4 g = lanes::load<f4>(dy + i);
          if constexpr (K != kNoActivation) g = g * act_grad<K>(lanes::load<f4>(y + i), alpha);
          gs[q] += to_d4(g);
          gx[q] += to_d4(g * ((lanes::load<f4>(x + i) - m[q]) * r[q]));
        }
      }
      for (int q = 0; q < kGroup / 4; q++) {
        lanes::store(gsum + j + 4 * q, gs[q]);
        lanes::store(gxhat_sum + j + 4 * q, gx[q]);
      }
    }
    for (; j < cb; j++) {
      for (int n = 0; n < N; n++) {
        const size_t off = (size_t)n * C + c0 + j;
        const float g = K == kNoActivation ? dy[off] : dy[off] * act_grad<K>(y[off], alpha);
        gsum[j] += g;
        gxhat_sum[j] += g * ((x[off] - mean[j]) * rstd[j]);
      }
    }
  } else {
    for (int n = 0; n < N; n++) {
      const size_t off = ((size_t)n * C + c0) * S;
      for (int j = 0; j < cb; j++) {
        const float m = mean[j], r = rstd[j];
        // One row (S values) in kLanes float sums (as channel_moments), then into double.
        float v1[kLanes] = {}, v2[kLanes] = {};
        const size_t row = off + (size_t)j * S;
        int s = 0;
        for (; s + kLanes <= S; s += kLanes) {
          for (int l = 0; l < kLanes; l++) {
            const size_t i = row + s + l;
            const float g = K == kNoActivation ? dy[i] : dy[i] * act_grad<K>(y[i], alpha);
            v1[l] += g;
            v2[l] += g * ((x[i] - m) * r);
          }
        }
        float s1 = 0.0f, s2 = 0.0f;
        for (int l = 0; l < kLanes; l++) {
          s1 += v1[l];
          s2 += v2[l];
        }
        for (; s < S; s++) {
          const size_t i = row + s;
          const float g = K == kNoActivation ? dy[i] : dy[i] * act_grad<K>(y[i], alpha);
          s1 += g;
          s2 += g * ((x[i] - m) * r);
        }
        gsum[j] += s1;
        gxhat_sum[j] += s2;
      }
    }
  }
  float scale[kChannelBlock], gmean[kChannelBlock], gxhat_mean[kChannelBlock];
  for (int j = 0; j < cb; j++) {
    const int c = c0 + j;
    if (save_r) {
      // Renormalization: x̂ = r·x̂_B + d, so Σg·x̂ = r·Σg·x̂_B + d·Σg, and γ·r scales dx.
      if (dgamma) dgamma[c] = (float)((double)save_r[c] * gxhat_sum[j] + (double)save_d[c] * gsum[j]);
      scale[j] = (gamma ? gamma[c] : 1.0f) * save_r[c] * rstd[j];
    } else {
      if (dgamma) dgamma[c] = (float)gxhat_sum[j];
      scale[j] = (gamma ? gamma[c] : 1.0f) * rstd[j];
    }
    if (dbeta) dbeta[c] = (float)gsum[j];
    gmean[j] = (float)(gsum[j] / M);
    gxhat_mean[j] = (float)(gxhat_sum[j] / M);
  }
  // dx = γ·rstd·(g − mean(g) − x̂·mean(g·x̂)); reads dy[i] before writing dx[i].
  for (int n = 0; n < N; n++) {
    const size_t off = ((size_t)n * C + c0) * S;
    if (S == 1) {
      for (int j = 0; j < cb; j++) {
        const float g = K == kNoActivation ? dy[off + j] : dy[off + j] * act_grad<K>(y[off + j], alpha);
        dx[off + j] = scale[j] * (g - gmean[j] - (x[off + j] - mean[j]) * rstd[j] * gxhat_mean[j]);
      }
      continue;
    }
    for (int j = 0; j < cb; j++) {
      const float m = mean[j], r = rstd[j], a = scale[j], gm = gmean[j], gxm = gxhat_mean[j];
      for (int s = 0; s < S; s++) {
        const size_t i = off + (size_t)j * S + s;
        const float g = K == kNoActivation ? dy[i] : dy[i] * act_grad<K>(y[i], alpha);
        dx[i] = a * (g - gm - (x[i] - m) * r * gxm);
      }
    }
  }
}

}  // namespace

NORMLAB_CLONES void batchnorm_backward(const float* x, const float* dy, float* dx, int N, int C, int S,
                        const float* gamma, const float* save_mean, const float* save_rstd,
                        const float* save_r, const float* save_d,
                        float* dgamma, float* dbeta, int activation, float alpha, const float* y) {
  for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
    const int cb = std::min(kChannelBlock, C - c0);
    with_activation(activation, [&]<int K>() {
      batchnorm_backward_block<K>(x, y, dy, dx, N, C, S, c0, cb, gamma, save_mean, save_rstd, save_r, save_d, dgamma,
                                  dbeta, alpha);
    });
  }
}

void batch_norm_update_running(float* running_mean, float* running_var, const double* mean, const double* var,
                               int C, double momentum, double count) {
  for (int c = 0; c < C; c++) update_running_stats(running_mean, running_var, c, mean[c], var[c], count, momentum);
}

void batchnorm_backward_frozen(const float* x, const float* dy, float* dx, int N, int C, int S,
                               const float* gamma, const float* running_mean, const float* running_var, double eps,
                               float* dgamma, float* dbeta, int activation, float alpha, const float* y) {
  const size_t total = (size_t)N * C * S;
  const float* g = dy;
  if (activation != kNoActivation) {
    // f' read off the output, whose sign matches the input for every activation here.
    activation_backward(activation, y, y, dy, dx, total, alpha);
    g = dx;
  }
  // Double throughout, one rounding per stored value: μ and σ are constants here.
  for (int c = 0; c < C; c++) {
    const double rstd = 1.0 / std::sqrt((double)running_var[c] + eps);
    const double mean = running_mean[c];
    const double scale = (gamma ? (double)gamma[c] : 1.0) * rstd;
    double sum = 0.0, sum_xhat = 0.0;
    for (int n = 0; n < N; n++) {
      const size_t off = ((size_t)n * C + c) * S;
      for (size_t q = off; q < off + (size_t)S; q++) {
        const double gq = g[q];
        sum += gq;
        sum_xhat += gq * ((double)x[q] - mean) * rstd;
        dx[q] = (float)(gq * scale);
      }
    }
    if (dgamma) dgamma[c] = (float)sum_xhat;
    if (dbeta) dbeta[c] = (float)sum;
  }
}

void batchnorm_backward_ghost(const float* x, const float* dy, float* dx, int N, int C, int S, int virtual_batch,
                              const float* gamma, const float* save_mean, const float* save_rstd,
                              const float* save_r, const float* save_d, float* dgamma, float* dbeta, float* scratch,
                              int activation, float alpha, const float* y) {
  const int chunks = N / virtual_batch;
  const size_t per = (size_t)C * S;
  float* dg = dgamma ? scratch : nullptr;
  float* db = dbeta ? scratch + C : nullptr;
  if (dgamma) std::fill(dgamma, dgamma + C, 0.0f);
  if (dbeta) std::fill(dbeta, dbeta + C, 0.0f);
  for (int i = 0; i < chunks; i++) {
    const size_t first = (size_t)i * virtual_batch;
    const int rows = i == chunks - 1 ? N - (int)first : virtual_batch;
    const size_t off = first * per;
    const size_t st = (size_t)i * C;
    batchnorm_backward(x + off, dy + off, dx + off, rows, C, S, gamma, save_mean + st, save_rstd + st,
                       save_r ? save_r + st : nullptr, save_d ? save_d + st : nullptr, dg, db, activation, alpha,
                       y ? y + off : nullptr);
    for (int c = 0; c < C; c++) {
      if (dgamma) dgamma[c] += dg[c];
      if (dbeta) dbeta[c] += db[c];
    }
  }
}

// ----------------------------------------------------------------------------
// bias (dense and conv), optionally fused with the activation that follows

NORMLAB_CLONES void add_bias(float* x, const float* bias, int N, int C, int S, int activation, float alpha) {
  for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
    const int cb = std::min(kChannelBlock, C - c0);
    float ones[kChannelBlock];
    std::fill(ones, ones + cb, 1.0f);
    with_activation(activation, [&]<int K>() { affine_activation<K>(x, x, N, C, S, c0, cb, ones, bias + c0, alpha); });
  }
}

NORMLAB_CLONES void bias_grad(float* dy, float* dbias, int N, int C, int S, int activation, float alpha, const float* y) {
  const size_t total = (size_t)N * C * S;
  with_activation(activation, [&]<int K>() {
    if constexpr (K != kNoActivation) {
      for (size_t i = 0; i < total; i++) dy[i] *= act_grad<K>(y[i], alpha);
    }
  });
  for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
    const int cb = std::min(kChannelBlock, C - c0);
    double sum[kChannelBlock] = {};
    for (int n = 0; n < N; n++) {
      const float* dyn = dy + ((size_t)n * C + c0) * S;
      for (int j = 0; j < cb; j++) {
        double s1 = 0.0;
        for (int s = 0; s < S; s++) s1 += dyn[(size_t)j * S + s];
        sum[j] += s1;
      }
    }
    for (int j = 0; j < cb; j++) dbias[c0 + j] = (float)sum[j];
  }
}

}  // namespace normlab
