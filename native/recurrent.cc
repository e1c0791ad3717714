// LSTM, GRU and Elman cells: forward and backward of one time step. The
// projections (gemms) and batch norm run outside, in the kernels they share
// with the dense layers; what is left per step is this elementwise work.
#include "recurrent.h"

#include <cmath>
#include <cstddef>

#include "kernels.h"

namespace normlab {

static inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }
static inline float grad_at(const float* dh, const float* dh_next, size_t i) {
  return (dh ? dh[i] : 0.0f) + (dh_next ? dh_next[i] : 0.0f);
}

void lstm_cell_forward(const float* xg, const float* hg, const float* c_prev, float* gates, float* c, int N, int H) {
  for (int n = 0; n < N; n++) {
    const size_t g = (size_t)n * 4 * H, s = (size_t)n * H;
    for (int j = 0; j < H; j++) {
      const float i = sigmoid(xg[g + j] + hg[g + j]);
      const float f = sigmoid(xg[g + H + j] + hg[g + H + j]);
      const float gg = std::tanh(xg[g + 2 * H + j] + hg[g + 2 * H + j]);
      const float o = sigmoid(xg[g + 3 * H + j] + hg[g + 3 * H + j]);
      gates[g + j] = i;
      gates[g + H + j] = f;
      gates[g + 2 * H + j] = gg;
      gates[g + 3 * H + j] = o;
      c[s + j] = f * c_prev[s + j] + i * gg;
    }
  }
}

void lstm_output_forward(const float* gates, const float* z, float* h, int N, int H) {
  for (int n = 0; n < N; n++) {
    const float* o = gates + (size_t)n * 4 * H + 3 * H;
    const size_t s = (size_t)n * H;
    for (int j = 0; j < H; j++) h[s + j] = o[j] * std::tanh(z[s + j]);
  }
}

void lstm_output_backward(const float* gates, const float* z, const float* dh, const float* dh_next, float* dz,
                          float* dgates, int N, int H) {
  for (int n = 0; n < N; n++) {
    const size_t o = (size_t)n * 4 * H + 3 * H, s = (size_t)n * H;
    for (int j = 0; j < H; j++) {
      const float d = grad_at(dh, dh_next, s + j);
      const float og = gates[o + j];
      const float t = std::tanh(z[s + j]);
      dgates[o + j] = d * t * og * (1.0f - og);
      dz[s + j] = d * og * (1.0f - t * t);
    }
  }
}

void lstm_cell_backward(const float* gates, const float* c_prev, const float* dz, const float* dc_next, float* dgates,
                        float* dc_prev, int N, int H) {
  for (int n = 0; n < N; n++) {
    const size_t g = (size_t)n * 4 * H, s = (size_t)n * H;
    for (int j = 0; j < H; j++) {
      const float dc = dz[s + j] + (dc_next ? dc_next[s + j] : 0.0f);
      const float i = gates[g + j], f = gates[g + H + j], gg = gates[g + 2 * H + j];
      dgates[g + j] = dc * gg * i * (1.0f - i);
      dgates[g + H + j] = dc * c_prev[s + j] * f * (1.0f - f);
      dgates[g + 2 * H + j] = dc * i * (1.0f - gg * gg);
      dc_prev[s + j] = dc * f;
    }
  }
}

void gru_cell_forward(const float* xg, const float* hg, const float* h_prev, float* gates, float* h, int N, int H) {
  for (int n = 0; n < N; n++) {
    const size_t g = (size_t)n * 3 * H, s = (size_t)n * H;
    for (int j = 0; j < H; j++) {
      const float r = sigmoid(xg[g + j] + hg[g + j]);
      const float z = sigmoid(xg[g + H + j] + hg[g + H + j]);
      const float nn = std::tanh(xg[g + 2 * H + j] + r * hg[g + 2 * H + j]);
      gates[g + j] = r;
      gates[g + H + j] = z;
      gates[g + 2 * H + j] = nn;
      h[s + j] = (1.0f - z) * nn + z * h_prev[s + j];
    }
  }
}

void gru_cell_backward(const float* gates, const float* hg, const float* h_prev, const float* dh, const float* dh_next,
                       float* dxg, float* dhg, float* dh_prev, int N, int H) {
  for (int n = 0; n < N; n++) {
    const size_t g = (size_t)n * 3 * H, s = (size_t)n * H;
    for (int j = 0; j < H; j++) {
      const float d = grad_at(dh, dh_next, s + j);
      const float r = gates[g + j], z = gates[g + H + j], nn = gates[g + 2 * H + j];
      const float an = d * (1.0f - z) * (1.0f - nn * nn);
      const float ar = an * hg[g + 2 * H + j] * r * (1.0f - r);
      const float az = d * (h_prev[s + j] - nn) * z * (1.0f - z);
      dxg[g + j] = ar;
      dxg[g + H + j] = az;
      dxg[g + 2 * H + j] = an;
      dhg[g + j] = ar;
      dhg[g + H + j] = az;
      dhg[g + 2 * H + j] = an * r;
      dh_prev[s + j] = d * z;
    }
  }
}

void rnn_cell_forward(const float* xg, const float* hg, float* h, int N, int H, int activation) {
  const size_t size = (size_t)N * H;
  for (size_t i = 0; i < size; i++) h[i] = activate(activation, xg[i] + hg[i], 0.0f);
}

void rnn_cell_backward(const float* h, const float* dh, const float* dh_next, float* da, int N, int H, int activation) {
  const size_t size = (size_t)N * H;
  for (size_t i = 0; i < size; i++) {
    const float d = grad_at(dh, dh_next, i);
    da[i] = activation == kTanh ? d * (1.0f - h[i] * h[i]) : (h[i] > 0.0f ? d : 0.0f);
  }
}

}  // namespace normlab
