// LSTM, GRU and Elman cells: forward and backward of one time step. The
// projections (gemms) and batch norm run outside, in the kernels they share
// with the dense layers; what is left per step is this elementwise work.
#include "recurrent.h"

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace normlab {

// exp, sigmoid and tanh in plain float arithmetic (no libm call), so the
// loops below vectorize; vector lanes and the scalar tail run the same IEEE
// operations (no FMA is contracted: the clones have no FMA target), so a
// value does not depend on its position and inference stays batch-invariant.
// exp: x = k·ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its
// degree-6 Taylor polynomial (truncation < 2e-7 relative), times 2^k built in
// the exponent bits. Inputs are clamped to [-87, 88] (finite results, e^-87
// still normal); NaN passes through.
static inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float magic = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float kf = (x * 1.44269504088896341f + magic) - magic;
  const float r = (x - kf * 0.693145751953125f) - kf * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t k = (int32_t)kf;
  return p * std::bit_cast<float>((k + 127) << 23);
}
static inline float sigmoid(float v) { return 1.0f / (1.0f + exp_approx(-v)); }
// tanh v = sign(v)·(1 − e)/(1 + e), e = e^(−2|v|): no overflow, odd by construction.
static inline float tanh_approx(float v) {
  const float e = exp_approx(-2.0f * std::fabs(v));
  const float t = (1.0f - e) / (1.0f + e);
  return v < 0.0f ? -t : t;
}
static inline float grad_at(const float* dh, const float* dh_next, size_t i) {
  return (dh ? dh[i] : 0.0f) + (dh_next ? dh_next[i] : 0.0f);
}

// Each row's gate blocks are addressed through their own pointers (plain
// unit-stride loops over j), and `ivdep` tells GCC what the contract says:
// an output may alias an input only element for element (read, then written,
// in the same iteration), never across iterations; so the loops vectorize
// without runtime overlap checks.

NORMLAB_CLONES void lstm_cell_forward(const float* xg, const float* hg, const float* c_prev, float* gates, float* c, int N, int H) {
  for (int n = 0; n < N; n++) {
    const float* x = xg + (size_t)n * 4 * H;
    const float* h = hg + (size_t)n * 4 * H;
    float* g = gates + (size_t)n * 4 * H;
    const float* cp = c_prev + (size_t)n * H;
    float* cn = c + (size_t)n * H;
    #pragma GCC ivdep
    for (int j = 0; j < H; j++) {
      const float i = sigmoid(x[j] + h[j]);
      const float f = sigmoid(x[H + j] + h[H + j]);
      const float gg = tanh_approx(x[2 * H + j] + h[2 * H + j]);
      const float o = sigmoid(x[3 * H + j] + h[3 * H + j]);
      g[j] = i;
      g[H + j] = f;
      g[2 * H + j] = gg;
      g[3 * H + j] = o;
      cn[j] = f * cp[j] + i * gg;
    }
  }
}

NORMLAB_CLONES void lstm_output_forward(const float* gates, const float* z, float* h, int N, int H) {
  for (int n = 0; n < N; n++) {
    const float* o = gates + (size_t)n * 4 * H + 3 * H;
    const float* zr = z + (size_t)n * H;
    float* hr = h + (size_t)n * H;
    #pragma GCC ivdep
    for (int j = 0; j < H; j++) hr[j] = o[j] * tanh_approx(zr[j]);
  }
}

NORMLAB_CLONES void lstm_output_backward(const float* gates, const float* z, const float* dh, const float* dh_next, float* dz,
                                         float* dgates, int N, int H) {
  for (int n = 0; n < N; n++) {
    const size_t s = (size_t)n * H;
    const float* o = gates + (size_t)n * 4 * H + 3 * H;
    float* dO = dgates + (size_t)n * 4 * H + 3 * H;
    const float* zr = z + s;
    float* dzr = dz + s;
    const float* a = dh ? dh + s : nullptr;
    const float* b = dh_next ? dh_next + s : nullptr;
    #pragma GCC ivdep
    for (int j = 0; j < H; j++) {
      const float d = (a ? a[j] : 0.0f) + (b ? b[j] : 0.0f);
      const float og = o[j];
      const float t = tanh_approx(zr[j]);
      dO[j] = d * t * og * (1.0f - og);
      dzr[j] = d * og * (1.0f - t * t);
    }
  }
}

NORMLAB_CLONES void lstm_cell_backward(const float* gates, const float* c_prev, const float* dz, const float* dc_next, float* dgates,
                                       float* dc_prev, int N, int H) {
  for (int n = 0; n < N; n++) {
    const size_t s = (size_t)n * H;
    const float* g = gates + (size_t)n * 4 * H;
    float* dg = dgates + (size_t)n * 4 * H;
    const float* cp = c_prev + s;
    const float* dzr = dz + s;
    const float* dn = dc_next ? dc_next + s : nullptr;
    float* dp = dc_prev + s;
    #pragma GCC ivdep
    for (int j = 0; j < H; j++) {
      const float dc = dzr[j] + (dn ? dn[j] : 0.0f);
      const float i = g[j], f = g[H + j], gg = g[2 * H + j];
      dg[j] = dc * gg * i * (1.0f - i);
      dg[H + j] = dc * cp[j] * f * (1.0f - f);
      dg[2 * H + j] = dc * i * (1.0f - gg * gg);
      dp[j] = dc * f;
    }
  }
}

NORMLAB_CLONES void gru_cell_forward(const float* xg, const float* hg, const float* h_prev, float* gates, float* h, int N, int H) {
  for (int n = 0; n < N; n++) {
    const float* x = xg + (size_t)n * 3 * H;
    const float* hh = hg + (size_t)n * 3 * H;
    float* g = gates + (size_t)n * 3 * H;
    const float* hp = h_prev + (size_t)n * H;
    float* hn = h + (size_t)n * H;
    #pragma GCC ivdep
    for (int j = 0; j < H; j++) {
      const float r = sigmoid(x[j] + hh[j]);
      const float z = sigmoid(x[H + j] + hh[H + j]);
      const float nn = tanh_approx(x[2 * H + j] + r * hh[2 * H + j]);
      g[j] = r;
      g[H + j] = z;
      g[2 * H + j] = nn;
      hn[j] = (1.0f - z) * nn + z * hp[j];
    }
  }
}

NORMLAB_CLONES void gru_cell_backward(const float* gates, const float* hg, const float* h_prev, const float* dh, const float* dh_next,
                                      float* dxg, float* dhg, float* dh_prev, int N, int H) {
  for (int n = 0; n < N; n++) {
    const size_t s = (size_t)n * H, q = (size_t)n * 3 * H;
    const float* g = gates + q;
    const float* hh = hg + q;
    float* dx = dxg + q;
    float* dhh = dhg + q;
    const float* hp = h_prev + s;
    const float* a = dh ? dh + s : nullptr;
    const float* b = dh_next ? dh_next + s : nullptr;
    float* dp = dh_prev + s;
    #pragma GCC ivdep
    for (int j = 0; j < H; j++) {
      const float d = (a ? a[j] : 0.0f) + (b ? b[j] : 0.0f);
      const float r = g[j], z = g[H + j], nn = g[2 * H + j];
      const float an = d * (1.0f - z) * (1.0f - nn * nn);
      const float ar = an * hh[2 * H + j] * r * (1.0f - r);
      const float az = d * (hp[j] - nn) * z * (1.0f - z);
      dx[j] = ar;
      dx[H + j] = az;
      dx[2 * H + j] = an;
      dhh[j] = ar;
      dhh[H + j] = az;
      dhh[2 * H + j] = an * r;
      dp[j] = d * z;
    }
  }
}

NORMLAB_CLONES void rnn_cell_forward(const float* xg, const float* hg, float* h, int N, int H, int activation) {
  const size_t size = (size_t)N * H;
  if (activation == kTanh) {
    #pragma GCC ivdep
    for (size_t i = 0; i < size; i++) h[i] = tanh_approx(xg[i] + hg[i]);
  } else {
    #pragma GCC ivdep
    for (size_t i = 0; i < size; i++) h[i] = activate(kRelu, xg[i] + hg[i], 0.0f);
  }
}

NORMLAB_CLONES void rnn_cell_backward(const float* h, const float* dh, const float* dh_next, float* da, int N, int H, int activation) {
  const size_t size = (size_t)N * H;
  #pragma GCC ivdep
  for (size_t i = 0; i < size; i++) {
    const float d = grad_at(dh, dh_next, i);
    da[i] = activation == kTanh ? d * (1.0f - h[i] * h[i]) : (h[i] > 0.0f ? d : 0.0f);
  }
}

}  // namespace normlab
