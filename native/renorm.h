// Batch renormalization (Ioffe 2017), training mode (renorm.cc): the entries
// batchRenormForwardTrain / batchRenormBackward of the Kernels interface
// (src/core/kernels/types.ts, whose doc comments are the contract). Sizes,
// rMax >= 1 and dMax >= 0 are validated by addon.cc.
#pragma once

namespace normlab {

void batch_renorm_forward_train(const float* x, float* y, int N, int C, int S,
                                const float* gamma, const float* beta,
                                float* running_mean, float* running_var,
                                double momentum, double eps, double r_max, double d_max,
                                bool update_running,
                                float* save_mean, float* save_rstd, float* save_r, float* save_d);
void batch_renorm_backward(const float* x, const float* dy, float* dx, int N, int C, int S,
                           const float* gamma, const float* save_mean, const float* save_rstd,
                           const float* save_r, const float* save_d, float* dgamma, float* dbeta);

}  // namespace normlab
