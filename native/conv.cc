// Convolution and pooling over NCHW activations; each forward next to its
// backward.
//
// conv2d is im2col + one sgemm per sample, on the gemm the caller chose
// (OpenBLAS or the built-in one), except for 3x3 kernels at stride 1 with at
// least 8 channels in and out, which take Winograd F(2x2, 3x3) (winograd.cc:
// 2.25x fewer multiplies; conv2 forward + backward at batch 128 went from
// 37.9 to 20.4 ms, bench/conv.mjs). For sample n, with P = OH*OW output
// positions and K = C*KH*KW taps:
//   col[K, P]   = im2col(x[n])                     (the receptive fields as columns)
//   y[n][F, P]  = weight[F, K] · col               (+ bias)
//   dweight    += dy[n][F, P] · colᵀ               (accumulated over n)
//   dcol[K, P]  = weightᵀ · dy[n];  dx[n] = col2im(dcol)
// One sample at a time keeps col (225 KB at the Fashion-MNIST net's second
// layer) in L2 and needs no reordering of y or dy. Measured alternatives
// (OpenBLAS, one core): gemms over 4-8 samples at once run at most ~8% faster
// in isolation, before the copies that batching needs into and out of the
// NCHW layout, and over the whole batch slower (measured again in CPU time,
// conv2 forward + backward at batch 128: 45.7 ms one gemm per sample, 48.9 /
// 47.2 / 53.6 / 54.8 ms at 4 / 8 / 16 / 128 samples per gemm, the reordering
// included; and dx as a convolution of dy with the flipped weight, which
// saves col2im, 35.9 ms against 32.6); a direct convolution of the
// 1-channel first layer ran 2x slower than im2col + gemm. bench/conv.mjs
// times this path. A 1x1 kernel at stride 1 without padding needs no im2col:
// col is x[n].
#include "conv.h"
#include "lanes.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>


namespace normlab {

void conv_sgemm(const GemmChoice& g, bool transA, bool transB, int M, int N, int K,
                float alpha, const float* A, const float* B, float beta, float* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // no products: C = beta * C, and beta = 0 must not read C
    for (size_t i = 0; i < (size_t)M * N; i++) C[i] = beta == 0.0f ? 0.0f : beta * C[i];
    return;
  }
#ifdef NORMLAB_OPENBLAS
  if (!g.builtin) {
    sgemm_openblas(transA, transB, M, N, K, alpha, A, B, beta, C);
    return;
  }
#endif
  sgemm_builtin(*g.builtin, transA, transB, M, N, K, alpha, A, B, beta, C);
}

namespace {

// The output columns ow whose input column iw = ow*stride - pad + k lies in
// [0, W): ow in [lo, hi).
struct Span {
  int lo, hi;
};
Span valid_span(int W, int OW, int k, int stride, int pad) {
  const int first = pad - k;   // ow*stride >= first
  const int end = W + pad - k; // ow*stride < end
  int lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  int hi = end <= 0 ? 0 : (end + stride - 1) / stride;
  if (hi > OW) hi = OW;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

// Stride 1 with OW == W (the 'same' padding of an odd kernel along W): the
// row of tap (kh, kw) is then the input plane shifted by
// off = (kh - ph)*W + (kw - pw), so its valid part is one long contiguous
// run instead of OH short ones. The shift wraps values of the neighbouring
// input rows into the padding columns, which get zeroed separately.
bool is_plane_shift(const ConvShape& s) { return s.stride_h == 1 && s.stride_w == 1 && s.OW == s.W; }

// The contiguous run of one tap's row in the plane-shift case: row[q] pairs
// with plane[q + off] for q in [begin, end), which covers every valid
// position (and the padding columns between them).
struct Run {
  long off, begin, end;
  Span rows, cols;
};
Run plane_run(const ConvShape& s, int kh, int kw) {
  Run run;
  run.rows = valid_span(s.H, s.OH, kh, 1, s.pad_h);
  run.cols = valid_span(s.W, s.OW, kw, 1, s.pad_w);
  run.off = (long)(kh - s.pad_h) * s.W + (kw - s.pad_w);
  // The valid rows [q0, q1), clipped to where plane[q + off] exists:
  // q0 <= begin <= end <= q1 (an empty run when no row is valid).
  const long q0 = (long)run.rows.lo * s.OW, q1 = (long)run.rows.hi * s.OW;
  run.begin = std::min(q1, std::max(q0, -run.off));
  run.end = std::max(run.begin, std::min(q1, (long)s.H * s.W - run.off));
  return run;
}

// Zeroes the padding columns of the valid rows of a tap's row.
void zero_pad_columns(const ConvShape& s, const Run& run, float* row) {
  for (int oh = run.rows.lo; oh < run.rows.hi; oh++) {
    float* r = row + (size_t)oh * s.OW;
    for (int ow = 0; ow < run.cols.lo; ow++) r[ow] = 0.0f;
    for (int ow = run.cols.hi; ow < s.OW; ow++) r[ow] = 0.0f;
  }
}

// col[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][oh*sh - ph + kh][ow*sw - pw + kw], 0 outside.
// zeroed: col holds an earlier im2col of this shape and nothing has written
// to it since, so its zeros (the same places for every sample) are in place
// and only the values are written; the per-tap zero runs are short, and
// writing them for each sample cost more than the copies.
NORMLAB_CLONES void im2col(const ConvShape& s, const float* x, float* col, bool zeroed) {
  const size_t P = (size_t)s.OH * s.OW;
  const bool shift_path = is_plane_shift(s);
  // Taps outside, channels inside: a tap's run or span holds for every channel.
  for (int kh = 0; kh < s.KH; kh++) {
    for (int kw = 0; kw < s.KW; kw++) {
      const Run run = shift_path ? plane_run(s, kh, kw) : Run{};
      const Span span = valid_span(s.W, s.OW, kw, s.stride_w, s.pad_w);
      const int shift = kw - s.pad_w;
      for (int c = 0; c < s.C; c++) {
        const float* xc = x + (size_t)c * s.H * s.W;
        float* row = col + ((size_t)(c * s.KH + kh) * s.KW + kw) * P;
        if (shift_path) {
          if (!zeroed) std::memset(row, 0, sizeof(float) * run.begin);
          float* __restrict dst = row + run.begin;
          const float* __restrict src = xc + (run.begin + run.off);
          for (long i = 0; i < run.end - run.begin; i++) dst[i] = src[i];
          if (!zeroed) std::memset(row + run.end, 0, sizeof(float) * (P - run.end));
          // The run's copy put neighbouring rows' values there.
          zero_pad_columns(s, run, row);
          continue;
        }
        for (int oh = 0; oh < s.OH; oh++) {
          float* r = row + (size_t)oh * s.OW;
          const int ih = oh * s.stride_h - s.pad_h + kh;
          if (ih < 0 || ih >= s.H) {
            if (!zeroed) std::memset(r, 0, sizeof(float) * s.OW);
            continue;
          }
          const float* xr = xc + (size_t)ih * s.W;
          if (!zeroed) {
            for (int ow = 0; ow < span.lo; ow++) r[ow] = 0.0f;
          }
          for (int ow = span.lo; ow < span.hi; ow++) r[ow] = xr[ow * s.stride_w + shift];
          if (!zeroed) {
            for (int ow = span.hi; ow < s.OW; ow++) r[ow] = 0.0f;
          }
        }
      }
    }
  }
}

// The adjoint of im2col: dx = 0, then every col entry is added to the input
// position it was copied from (padding positions are dropped). Clobbers col.
NORMLAB_CLONES void col2im(const ConvShape& s, float* col, float* dx) {
  const size_t P = (size_t)s.OH * s.OW;
  const bool shift_path = is_plane_shift(s);
  std::memset(dx, 0, sizeof(float) * s.C * s.H * s.W);
  for (int c = 0; c < s.C; c++) {
    float* dxc = dx + (size_t)c * s.H * s.W;
    for (int kh = 0; kh < s.KH; kh++) {
      for (int kw = 0; kw < s.KW; kw++) {
        float* row = col + ((size_t)(c * s.KH + kh) * s.KW + kw) * P;
        if (shift_path) {
          // Padding entries would wrap onto the neighbouring rows: drop them first.
          const Run run = plane_run(s, kh, kw);
          zero_pad_columns(s, run, row);
          float* __restrict dst = dxc + (run.begin + run.off);
          const float* __restrict src = row + run.begin;
          for (long i = 0; i < run.end - run.begin; i++) dst[i] += src[i];
          continue;
        }
        const Span span = valid_span(s.W, s.OW, kw, s.stride_w, s.pad_w);
        const int shift = kw - s.pad_w;
        for (int oh = 0; oh < s.OH; oh++) {
          const int ih = oh * s.stride_h - s.pad_h + kh;
          if (ih < 0 || ih >= s.H) continue;
          const float* r = row + (size_t)oh * s.OW;
          float* dxr = dxc + (size_t)ih * s.W;
          for (int ow = span.lo; ow < span.hi; ow++) dxr[ow * s.stride_w + shift] += r[ow];
        }
      }
    }
  }
}

bool is_pointwise(const ConvShape& s) {
  return s.KH == 1 && s.KW == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
}

}  // namespace

// ----------------------------------------------------------------------------
// conv2d

void conv2d_forward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                    const float* bias, float* y, float* col, float* winograd) {
  if (conv2d_winograd(s)) {
    conv2d_winograd_forward(gemm, s, x, weight, bias, y, winograd);
    return;
  }
  const int P = s.OH * s.OW, K = s.C * s.KH * s.KW;
  const bool pointwise = is_pointwise(s);
  for (int n = 0; n < s.N; n++) {
    const float* xn = x + (size_t)n * s.C * s.H * s.W;
    float* yn = y + (size_t)n * s.F * P;
    if (!pointwise) im2col(s, xn, col, n > 0);  // the gemm only reads col
    conv_sgemm(gemm, false, false, s.F, P, K, 1.0f, weight, pointwise ? xn : col, 0.0f, yn);
    if (bias) {
      for (int f = 0; f < s.F; f++) {
        float* yf = yn + (size_t)f * P;
        const float b = bias[f];
        for (int p = 0; p < P; p++) yf[p] += b;
      }
    }
  }
}

NORMLAB_CLONES void conv2d_infer(GemmWorkspace& ws, const ConvShape& s, const float* x, const float* weight, const float* bias,
                  float* y, float* col, float* winograd, int activation, float alpha) {
  if (conv2d_winograd(s)) {
    conv2d_winograd_infer(ws, s, x, weight, bias, y, winograd, activation, alpha);
    return;
  }
  const int P = s.OH * s.OW, K = s.C * s.KH * s.KW;
  const bool pointwise = is_pointwise(s);
  for (int n = 0; n < s.N; n++) {
    const float* xn = x + (size_t)n * s.C * s.H * s.W;
    float* yn = y + (size_t)n * s.F * P;
    if (!pointwise) im2col(s, xn, col, n > 0);  // the gemm only reads col
    conv_sgemm(GemmChoice{&ws}, false, false, s.F, P, K, 1.0f, weight, pointwise ? xn : col, 0.0f, yn);
    if (bias) {
      for (int f = 0; f < s.F; f++) {
        float* yf = yn + (size_t)f * P;
        const float b = bias[f];
        for (int p = 0; p < P; p++) yf[p] += b;
      }
    }
    // While the sample's output is still in cache.
    if (activation != kNoActivation) activation_forward(activation, yn, yn, (size_t)s.F * P, alpha);
  }
}

NORMLAB_CLONES void conv2d_backward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                     const float* dy, float* dx, float* dweight, float* dbias, float* col, float* winograd) {
  const int P = s.OH * s.OW, K = s.C * s.KH * s.KW;
  const bool pointwise = is_pointwise(s);
  if (dbias) {
    for (int f = 0; f < s.F; f++) {
      double sum = 0.0;
      for (int n = 0; n < s.N; n++) {
        const float* dyf = dy + ((size_t)n * s.F + f) * P;
        for (int p = 0; p < P; p++) sum += dyf[p];
      }
      dbias[f] = (float)sum;
    }
  }
  if (conv2d_winograd(s)) {
    conv2d_winograd_backward(gemm, s, x, weight, dy, dx, dweight, winograd);
    return;
  }
  if (s.N == 0) std::memset(dweight, 0, sizeof(float) * s.F * K);
  // Every sample's dweight first, then every dx: col then holds im2col
  // results only until the dx loop reuses it, so im2col keeps its zeros.
  for (int n = 0; n < s.N; n++) {
    const float* xn = x + (size_t)n * s.C * s.H * s.W;
    const float* dyn = dy + (size_t)n * s.F * P;
    if (!pointwise) im2col(s, xn, col, n > 0);
    // dweight[F, K] (+)= dy[n][F, P] · col[K, P]ᵀ; the first sample overwrites.
    conv_sgemm(gemm, false, true, s.F, K, P, 1.0f, dyn, pointwise ? xn : col, n == 0 ? 0.0f : 1.0f, dweight);
  }
  if (!dx) return;
  for (int n = 0; n < s.N; n++) {
    const float* dyn = dy + (size_t)n * s.F * P;
    float* dxn = dx + (size_t)n * s.C * s.H * s.W;
    // dcol[K, P] = weight[F, K]ᵀ · dy[n][F, P], then folded back onto dx[n].
    if (pointwise) {
      conv_sgemm(gemm, true, false, K, P, s.F, 1.0f, weight, dyn, 0.0f, dxn);
    } else {
      conv_sgemm(gemm, true, false, K, P, s.F, 1.0f, weight, dyn, 0.0f, col);
      col2im(s, col, dxn);
    }
  }
}

// ----------------------------------------------------------------------------
// max pooling: size x size windows at stride, argmax = index h*W + w in the plane
//
// The 2x2 windows at stride 2 of the usual CNN get their own loops (pooling
// and its backward in one pass over a pair of input rows, no inner window
// loops, in vector blocks along ow); they compute exactly what the general
// loops do.

namespace {

// The 2x2/2 loops work on L windows at once in GCC vector types (lowered to
// SSE2, AVX2 or NEON as the clone allows): de-interleaved even and odd input
// columns, then the scalar loop's compare-and-select in the same order, lane
// by lane, so every lane computes what the scalar loop does. A row of OW >= L
// windows ends with a block overlapping the one before it, which writes the
// same values again.
using lanes::Lanes;
using lanes::load;
using lanes::store;

// Windows ow in [ow0, ow0 + L) of one output row, from input rows r0 = 2*oh
// and r1 = r0 + 1; base = (2*oh)*W is r0's index in the plane.
template <int L>
inline __attribute__((always_inline)) void maxpool2x2_block(const float* r0, const float* r1, float* y, int32_t* argmax,
                                                            int ow0, int base, int W) {
  using T = Lanes<L>;
  using F = typename T::F;
  using I = typename T::I;
  const F p0 = load<F>(r0 + 2 * ow0), p1 = load<F>(r0 + 2 * ow0 + L);
  const F q0 = load<F>(r1 + 2 * ow0), q1 = load<F>(r1 + 2 * ow0 + L);
  const F a = T::even(p0, p1), b = T::odd(p0, p1), c = T::even(q0, q1), d = T::odd(q0, q1);
  const I ia = (base + 2 * ow0) + T::steps;
  // Window order a, b / c, d, as the scalar loop below.
  F max = a;
  I best = ia;
  I take = (b > max) | (b != b);
  max = take ? b : max;
  best = take ? ia + 1 : best;
  take = (c > max) | (c != c);
  max = take ? c : max;
  best = take ? ia + W : best;
  take = (d > max) | (d != d);
  max = take ? d : max;
  best = take ? ia + (W + 1) : best;
  store(y + ow0, max);
  store(argmax + ow0, best);
}

inline __attribute__((always_inline)) void maxpool2x2_row(const float* __restrict r0, const float* __restrict r1,
                                                          float* __restrict y, int32_t* __restrict argmax, int OW,
                                                          int base, int W) {
  if (OW >= 8) {
    for (int ow = 0; ow < OW; ow += 8) maxpool2x2_block<8>(r0, r1, y, argmax, std::min(ow, OW - 8), base, W);
    return;
  }
  if (OW >= 4) {
    maxpool2x2_block<4>(r0, r1, y, argmax, 0, base, W);
    maxpool2x2_block<4>(r0, r1, y, argmax, OW - 4, base, W);
    return;
  }
  for (int ow = 0; ow < OW; ow++) {
    // Starting from a gives what starting from -inf does (a = -inf keeps
    // index a either way).
    float max = r0[2 * ow];
    int32_t best = base + 2 * ow;
    const float b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
    bool take = b > max || b != b;
    max = take ? b : max;
    best = take ? base + 2 * ow + 1 : best;
    take = c > max || c != c;
    max = take ? c : max;
    best = take ? base + W + 2 * ow : best;
    take = d > max || d != d;
    max = take ? d : max;
    best = take ? base + W + 2 * ow + 1 : best;
    y[ow] = max;
    argmax[ow] = best;
  }
}

// The gradient of L windows of one output row onto input rows d0 = 2*oh and
// d1 = d0 + 1: dy where the window's argmax is, 0 elsewhere (each input
// position is in one window at most, so this overwrites what dx = 0 and
// dx[argmax] += dy give, 0 + dy included). Returns false when a window's
// argmax is not one of its four positions.
template <int L>
inline __attribute__((always_inline)) bool maxpool2x2_backward_block(const float* dy, const int32_t* argmax, float* d0,
                                                                     float* d1, int ow0, int base, int W) {
  using T = Lanes<L>;
  using F = typename T::F;
  using I = typename T::I;
  const F g = 0.0f + load<F>(dy + ow0);
  const I at = load<I>(argmax + ow0), ia = (base + 2 * ow0) + T::steps;
  const I ma = at == ia, mb = at == ia + 1, mc = at == ia + W, md = at == ia + (W + 1);
  const F z = {};
  const F ea = ma ? g : z, eb = mb ? g : z, ec = mc ? g : z, ed = md ? g : z;
  store(d0 + 2 * ow0, T::lo(ea, eb));
  store(d0 + 2 * ow0 + L, T::hi(ea, eb));
  store(d1 + 2 * ow0, T::lo(ec, ed));
  store(d1 + 2 * ow0 + L, T::hi(ec, ed));
  const I hit = ma | mb | mc | md;
  for (int l = 0; l < L; l++) {
    if (!hit[l]) return false;
  }
  return true;
}

// One plane of the 2x2/2 backward; false (dx part-written) when some argmax
// lies outside its window, which the general loop then handles.
inline __attribute__((always_inline)) bool maxpool2x2_backward_plane(const float* dy, const int32_t* argmax, float* dx,
                                                                     int H, int W, int OH, int OW) {
  for (int oh = 0; oh < OH; oh++) {
    const int base = 2 * oh * W;
    float* d0 = dx + base;
    float* d1 = d0 + W;
    const float* g = dy + (size_t)oh * OW;
    const int32_t* at = argmax + (size_t)oh * OW;
    bool ok = true;
    if (OW >= 8) {
      for (int ow = 0; ow < OW; ow += 8) ok &= maxpool2x2_backward_block<8>(g, at, d0, d1, std::min(ow, OW - 8), base, W);
    } else if (OW >= 4) {
      ok &= maxpool2x2_backward_block<4>(g, at, d0, d1, 0, base, W);
      ok &= maxpool2x2_backward_block<4>(g, at, d0, d1, OW - 4, base, W);
    } else {
      for (int ow = 0; ow < OW; ow++) {
        const int32_t i = at[ow], a = base + 2 * ow;
        const float v = 0.0f + g[ow];
        d0[2 * ow] = i == a ? v : 0.0f;
        d0[2 * ow + 1] = i == a + 1 ? v : 0.0f;
        d1[2 * ow] = i == a + W ? v : 0.0f;
        d1[2 * ow + 1] = i == a + W + 1 ? v : 0.0f;
        ok &= i == a || i == a + 1 || i == a + W || i == a + W + 1;
      }
    }
    if (!ok) return false;
    // An odd width leaves the last column out of every window.
    if (2 * OW < W) {
      d0[W - 1] = 0.0f;
      d1[W - 1] = 0.0f;
    }
  }
  // An odd height leaves the last row out.
  if (2 * OH < H) std::memset(dx + (size_t)2 * OH * W, 0, sizeof(float) * (H - 2 * OH) * W);
  return true;
}

}  // namespace

NORMLAB_CLONES void maxpool2d_forward(const float* x, float* y, int32_t* argmax, int N, int C, int H, int W,
                       int size, int stride) {
  const int OH = (int)conv_out_size(H, size, stride, 0), OW = (int)conv_out_size(W, size, stride, 0);
  const size_t planes = (size_t)N * C;
  for (size_t pl = 0; pl < planes; pl++) {
    const float* xp = x + pl * H * W;
    float* yp = y + pl * OH * OW;
    int32_t* ap = argmax + pl * OH * OW;
    if (size == 2 && stride == 2) {
      for (int oh = 0; oh < OH; oh++) {
        const float* r0 = xp + (size_t)2 * oh * W;
        maxpool2x2_row(r0, r0 + W, yp + (size_t)oh * OW, ap + (size_t)oh * OW, OW, 2 * oh * W, W);
      }
      continue;
    }
    for (int oh = 0; oh < OH; oh++) {
      for (int ow = 0; ow < OW; ow++) {
        const int h0 = oh * stride, w0 = ow * stride;
        // As PyTorch: the first maximum wins a tie, a NaN beats everything
        // (the last NaN, as each NaN takes over).
        int best = h0 * W + w0;
        float max = -std::numeric_limits<float>::infinity();
        for (int i = 0; i < size; i++) {
          for (int j = 0; j < size; j++) {
            const int idx = (h0 + i) * W + w0 + j;
            const float v = xp[idx];
            const bool take = v > max || std::isnan(v);
            max = take ? v : max;
            best = take ? idx : best;
          }
        }
        yp[oh * OW + ow] = max;
        ap[oh * OW + ow] = best;
      }
    }
  }
}

NORMLAB_CLONES long maxpool2d_backward(const float* dy, const int32_t* argmax, float* dx, int N, int C, int H, int W,
                        int size, int stride) {
  const int OH = (int)conv_out_size(H, size, stride, 0), OW = (int)conv_out_size(W, size, stride, 0);
  const size_t planes = (size_t)N * C, HW = (size_t)H * W, OHW = (size_t)OH * OW;
  for (size_t pl = 0; pl < planes; pl++) {
    float* dxp = dx + pl * HW;
    if (size == 2 && stride == 2 && maxpool2x2_backward_plane(dy + pl * OHW, argmax + pl * OHW, dxp, H, W, OH, OW)) {
      continue;
    }
    std::memset(dxp, 0, sizeof(float) * HW);
    for (size_t o = 0; o < OHW; o++) {
      const int32_t idx = argmax[pl * OHW + o];
      if (idx < 0 || (size_t)idx >= HW) return (long)(pl * OHW + o);
      dxp[idx] += dy[pl * OHW + o];
    }
  }
  return -1;
}

// ----------------------------------------------------------------------------
// average pooling: size x size windows at stride, every window full (no padding)

NORMLAB_CLONES void avgpool2d_forward(const float* x, float* y, int N, int C, int H, int W, int size, int stride) {
  const int OH = (int)conv_out_size(H, size, stride, 0), OW = (int)conv_out_size(W, size, stride, 0);
  const size_t planes = (size_t)N * C;
  const double count = (double)size * size;
  for (size_t pl = 0; pl < planes; pl++) {
    const float* xp = x + pl * H * W;
    float* yp = y + pl * OH * OW;
    if (size == 2 && stride == 2) {
      for (int oh = 0; oh < OH; oh++) {
        const float* __restrict r0 = xp + (size_t)2 * oh * W;
        const float* __restrict r1 = r0 + W;
        float* __restrict yr = yp + (size_t)oh * OW;
        for (int ow = 0; ow < OW; ow++) {
          yr[ow] = (float)(((double)r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) * 0.25);
        }
      }
      continue;
    }
    for (int oh = 0; oh < OH; oh++) {
      for (int ow = 0; ow < OW; ow++) {
        const float* xw = xp + (size_t)oh * stride * W + (size_t)ow * stride;
        double sum = 0.0;
        for (int i = 0; i < size; i++) {
          for (int j = 0; j < size; j++) sum += xw[(size_t)i * W + j];
        }
        yp[oh * OW + ow] = (float)(sum / count);
      }
    }
  }
}

NORMLAB_CLONES void avgpool2d_backward(const float* dy, float* dx, int N, int C, int H, int W, int size, int stride) {
  const int OH = (int)conv_out_size(H, size, stride, 0), OW = (int)conv_out_size(W, size, stride, 0);
  const size_t planes = (size_t)N * C;
  const double count = (double)size * size;
  for (size_t pl = 0; pl < planes; pl++) {
    float* dxp = dx + pl * H * W;
    const float* dyp = dy + pl * OH * OW;
    if (size == 2 && stride == 2) {
      // Disjoint windows: each covered dx is written once; the last row or
      // column of an odd H or W is in no window.
      for (int oh = 0; oh < OH; oh++) {
        float* __restrict r0 = dxp + (size_t)2 * oh * W;
        float* __restrict r1 = r0 + W;
        const float* __restrict g = dyp + (size_t)oh * OW;
        for (int ow = 0; ow < OW; ow++) {
          const float q = (float)(g[ow] * 0.25);
          r0[2 * ow] = r0[2 * ow + 1] = r1[2 * ow] = r1[2 * ow + 1] = q;
        }
        if (W > 2 * OW) r0[W - 1] = r1[W - 1] = 0.0f;
      }
      if (H > 2 * OH) std::memset(dxp + (size_t)(H - 1) * W, 0, sizeof(float) * W);
      continue;
    }
    std::memset(dxp, 0, sizeof(float) * H * W);
    for (int oh = 0; oh < OH; oh++) {
      for (int ow = 0; ow < OW; ow++) {
        const float g = (float)(dyp[oh * OW + ow] / count);
        float* dxw = dxp + (size_t)oh * stride * W + (size_t)ow * stride;
        for (int i = 0; i < size; i++) {
          for (int j = 0; j < size; j++) dxw[(size_t)i * W + j] += g;
        }
      }
    }
  }
}

// ----------------------------------------------------------------------------
// global average pooling: [N, C, S] -> [N, C]

void global_avgpool_forward(const float* x, float* y, int N, int C, int S) {
  const size_t planes = (size_t)N * C;
  for (size_t pl = 0; pl < planes; pl++) {
    const float* xp = x + pl * S;
    double sum = 0.0;
    for (int s = 0; s < S; s++) sum += xp[s];
    y[pl] = (float)(sum / S);
  }
}

void global_avgpool_backward(const float* dy, float* dx, int N, int C, int S) {
  const size_t planes = (size_t)N * C;
  for (size_t pl = 0; pl < planes; pl++) {
    const float g = (float)((double)dy[pl] / S);
    float* dxp = dx + pl * S;
    for (int s = 0; s < S; s++) dxp[s] = g;
  }
}

}  // namespace normlab
