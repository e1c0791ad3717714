// Convolution and pooling over NCHW activations (conv.cc), one function per
// entry of the Kernels interface (src/core/kernels/types.ts, whose doc
// comments are the contract). Sizes, and that every output size is at least
// 1, are validated by addon.cc before any of these run; nothing here
// allocates (the im2col matrix lives in the caller's `col`, the built-in
// gemm's packing buffers in the addon's GemmWorkspace).
#pragma once

#include <cstdint>

#include "kernels.h"

namespace normlab {

// The geometry of one conv2d call: x [N, C, H, W], weight [F, C, KH, KW],
// y [N, F, OH, OW].
struct ConvShape {
  int N, C, H, W, F, KH, KW, stride_h, stride_w, pad_h, pad_w;
  int OH, OW;  // derived: (H + 2*pad_h - KH) / stride_h + 1, likewise OW
};

// floor((in + 2*pad - kernel) / stride) + 1, or 0 when the kernel does not
// fit the padded input. Pooling is the case pad = 0.
inline long conv_out_size(long in, long kernel, long stride, long pad) {
  const long span = in + 2 * pad - kernel;
  return span < 0 ? 0 : span / stride + 1;
}

// The gemm the conv kernels multiply with: the built-in one on `ws`, or
// OpenBLAS when ws is null (only in an OpenBLAS build).
struct GemmChoice {
  GemmWorkspace* builtin;
};

// The sgemm of the conv kernels: C = alpha * op(A) * op(B) + beta * C on the
// chosen gemm (row-major, contiguous), beta = 0 not reading C even when K = 0.
void conv_sgemm(const GemmChoice& g, bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                const float* B, float beta, float* C);

// Whether conv2d_forward, conv2d_backward and conv2d_infer take the Winograd path
// (winograd.cc): a 3x3 kernel at stride 1 with at least 8 channels in and
// out. It then needs conv2d_winograd_floats(s) floats of `winograd` scratch
// instead of col.
bool conv2d_winograd(const ConvShape& s);
size_t conv2d_winograd_floats(const ConvShape& s);
void conv2d_winograd_forward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                             const float* bias, float* y, float* winograd);
// Inference: U = conv2d_winograd_weight(weight), 16*F*C floats, done once at
// model load; conv2d_winograd_infer then runs on the built-in gemm with the
// optional activation, each sample's output the same bytes in any batch.
size_t conv2d_winograd_weight_floats(const ConvShape& s);
void conv2d_winograd_weight(const ConvShape& s, const float* weight, float* U);
void conv2d_winograd_infer(GemmWorkspace& ws, const ConvShape& s, const float* x, const float* U, const float* bias,
                           float* y, float* winograd, int activation, float alpha);
void conv2d_winograd_backward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                              const float* dy, float* dx, float* dweight, float* winograd);

// col holds C*KH*KW*OH*OW floats (one sample's im2col matrix); winograd is
// the scratch above, used (and non-null) only when conv2d_winograd(s).
void conv2d_forward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                    const float* bias, float* y, float* col, float* winograd);
// Inference form on the built-in sgemm, then the optional activation on each
// sample's output while it is in cache: im2col with one gemm per sample of
// the same shape and fixed blocking, or, when conv2d_winograd(s), Winograd on
// `weight` = conv2d_winograd_weight's U. Either way a sample's output does not
// depend on the batch it is in.
void conv2d_infer(GemmWorkspace& ws, const ConvShape& s, const float* x, const float* weight, const float* bias,
                  float* y, float* col, float* winograd, int activation, float alpha);
// dx and dbias may be null.
void conv2d_backward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                     const float* dy, float* dx, float* dweight, float* dbias, float* col, float* winograd);

// Square size x size windows at `stride`, no padding; OH, OW as conv_out_size(H, size, stride, 0).
void maxpool2d_forward(const float* x, float* y, int32_t* argmax, int N, int C, int H, int W,
                       int size, int stride);
// Returns -1, or the position in argmax of the first entry outside [0, H*W)
// (dx is then partly written).
long maxpool2d_backward(const float* dy, const int32_t* argmax, float* dx, int N, int C, int H, int W,
                        int size, int stride);
void avgpool2d_forward(const float* x, float* y, int N, int C, int H, int W, int size, int stride);
void avgpool2d_backward(const float* dy, float* dx, int N, int C, int H, int W, int size, int stride);
void global_avgpool_forward(const float* x, float* y, int N, int C, int S);
void global_avgpool_backward(const float* dy, float* dx, int N, int C, int S);

}  // namespace normlab
