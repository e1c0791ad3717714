// Batch renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing
// Minibatch Dependence in Batch-Normalized Models"), training mode, over the
// N*S values of each channel c, x[(n*C + c)*S + s]:
//
//   mean, var      the batch statistics (var biased), rstd = 1/sqrt(var + eps)
//   sigma          = sqrt(runningVar + eps)               (the old running value)
//   r              = clip(sqrt(var + eps)/sigma, 1/rMax, rMax)
//   d              = clip((mean - runningMean)/sigma, -dMax, dMax)
//   xhat           = (x - mean)*rstd*r + d
//   y              = gamma*xhat + beta
//
// r and d are constants to the backward pass, so it is batch norm's backward
// for the upstream gradient dy*gamma*r at xhat_B = (x - mean)*rstd.
// rMax = 1, dMax = 0 gives r = 1, d = 0: plain batch norm.
#include "renorm.h"

#include "kernels.h"

#include <algorithm>
#include <cmath>

namespace normlab {

NORMLAB_CLONES void batch_renorm_forward_train(const float* x, float* y, int N, int C, int S,
                                const float* gamma, const float* beta,
                                float* running_mean, float* running_var,
                                double momentum, double eps, double r_max, double d_max,
                                bool update_running,
                                float* save_mean, float* save_rstd, float* save_r, float* save_d) {
  const double M = (double)N * S;
  for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
    const int cb = std::min(kChannelBlock, C - c0);
    double means[kChannelBlock], vars[kChannelBlock];
    channel_moments(x, N, C, S, c0, cb, means, vars);
    for (int c = c0; c < c0 + cb; c++) {
      const double mean = means[c - c0], var = vars[c - c0];
      const double std_b = std::sqrt(var + eps);
      const double rstd = 1.0 / std_b;
      // r and d from the running statistics as they were before this batch.
      // std::max/min with the ratio first: a NaN ratio stays NaN.
      const double sigma = std::sqrt((double)running_var[c] + eps);
      const double r = std::min(std::max(std_b / sigma, 1.0 / r_max), r_max);
      const double d = std::min(std::max((mean - running_mean[c]) / sigma, -d_max), d_max);
      save_mean[c] = (float)mean;
      save_rstd[c] = (float)rstd;
      save_r[c] = (float)r;
      save_d[c] = (float)d;
      if (update_running) update_running_stats(running_mean, running_var, c, mean, var, M, momentum);
      // y = gamma*((x - mean)*rstd*r + d) + beta = (x - mean)*scale + offset.
      const double g = gamma ? gamma[c] : 1.0;
      const float m = (float)mean;
      const float scale = (float)(g * rstd * r);
      const float offset = (float)(g * d + (beta ? beta[c] : 0.0));
      for (int n = 0; n < N; n++) {
        const size_t off = ((size_t)n * C + c) * S;
        for (int s = 0; s < S; s++) y[off + s] = (x[off + s] - m) * scale + offset;
      }
    }
  }
}

NORMLAB_CLONES void batch_renorm_backward(const float* x, const float* dy, float* dx, int N, int C, int S,
                           const float* gamma, const float* save_mean, const float* save_rstd,
                           const float* save_r, const float* save_d, float* dgamma, float* dbeta) {
  const double M = (double)N * S;
  for (int c = 0; c < C; c++) {
    const float mean = save_mean[c];
    const float rstd = save_rstd[c];
    const float r = save_r[c];
    // The two reductions, over xhat_B = (x - mean)*rstd: Σdy and Σdy*xhat_B.
    double dsum = 0.0, dxhat_sum = 0.0;
    for (int n = 0; n < N; n++) {
      const size_t off = ((size_t)n * C + c) * S;
      for (int s = 0; s < S; s++) {
        const float xhat = (x[off + s] - mean) * rstd;
        dsum += dy[off + s];
        dxhat_sum += (double)dy[off + s] * xhat;
      }
    }
    // xhat = r*xhat_B + d, so Σdy*xhat = r*Σdy*xhat_B + d*Σdy.
    if (dgamma) dgamma[c] = (float)(r * dxhat_sum + (double)save_d[c] * dsum);
    if (dbeta) dbeta[c] = (float)dsum;
    // dx = gamma*r*rstd * (dy - mean(dy) - xhat_B*mean(dy*xhat_B)); reads
    // dy[i] before writing dx[i], so dx may alias dy.
    const float scale = (float)((gamma ? gamma[c] : 1.0) * r * rstd);
    const float dmean = (float)(dsum / M);
    const float dxhat_mean = (float)(dxhat_sum / M);
    for (int n = 0; n < N; n++) {
      const size_t off = ((size_t)n * C + c) * S;
      for (int s = 0; s < S; s++) {
        const float xhat = (x[off + s] - mean) * rstd;
        dx[off + s] = scale * (dy[off + s] - dmean - xhat * dxhat_mean);
      }
    }
  }
}

}  // namespace normlab
