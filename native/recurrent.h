// Recurrent cells, one time step (src/core/kernels/types.ts documents the
// contract). Elementwise over rows and units, scalar float loops: each value
// is computed the same way wherever its row sits, so inference built on these
// stays batch-invariant. Null dh / dh_next / dc_next mean zero.
#pragma once

namespace normlab {

void lstm_cell_forward(const float* xg, const float* hg, const float* c_prev, float* gates, float* c, int N, int H);
void lstm_output_forward(const float* gates, const float* z, float* h, int N, int H);
void lstm_output_backward(const float* gates, const float* z, const float* dh, const float* dh_next, float* dz,
                          float* dgates, int N, int H);
void lstm_cell_backward(const float* gates, const float* c_prev, const float* dz, const float* dc_next, float* dgates,
                        float* dc_prev, int N, int H);
void gru_cell_forward(const float* xg, const float* hg, const float* h_prev, float* gates, float* h, int N, int H);
void gru_cell_backward(const float* gates, const float* hg, const float* h_prev, const float* dh, const float* dh_next,
                       float* dxg, float* dhg, float* dh_prev, int N, int H);
void rnn_cell_forward(const float* xg, const float* hg, float* h, int N, int H, int activation);
void rnn_cell_backward(const float* h, const float* dh, const float* dh_next, float* da, int N, int H, int activation);

}  // namespace normlab
