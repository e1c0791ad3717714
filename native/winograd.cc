// conv2d of a 3x3 kernel at stride 1 as Winograd F(2x2, 3x3) (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 block
// of outputs ("tile") comes from the 4x4 input patch under it as
//   y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
// with g the 3x3 kernel. Summed over input channels, each of the 16 points ξ
// of the 4x4 transform is one gemm over all tiles:
//   U[ξ][F, C] = (G g Gᵀ)[ξ]   V[ξ][C, T] = (Bᵀ d B)[ξ]   M[ξ][F, T] = U[ξ] · V[ξ]
// 16 gemms of F·C·T multiply-adds in place of im2col's one of F·9C·4T: 2.25x
// fewer. The backward is the exact adjoint of these steps:
//   dM = A dY Aᵀ,  dU[ξ] = Σ dM[ξ] · V[ξ]ᵀ,  dg = Gᵀ dU G,
//   dV[ξ] = U[ξ]ᵀ · dM[ξ],  dx = Σ over patches of B dV Bᵀ.
// Samples go in chunks sized so V and M stay in cache between the transforms
// and the gemms. The transforms only add, subtract and halve, so both clones
// give the same bytes; the results differ from im2col's by rounding.
#include <algorithm>
#include <cstring>

#include "conv.h"

namespace normlab {

namespace {

constexpr int kPoints = 16;  // the 4x4 transform's points ξ = 4*i + j

// Sizes of one call: tiles per plane, samples per chunk, and where the
// scratch parts start (floats from the start of the scratch).
struct Plan {
  int TH, TW, T;  // tiles per plane: ceil(OH/2) x ceil(OW/2)
  int HP, WP;     // the zero-padded plane a patch reads: 2*TH + 2 rows, 2*TW + 2 columns
  int chunk;      // samples per chunk
  size_t Tc;      // tiles per chunk: chunk * T
  size_t u, du, v, m, plane, total;
};

// V and M of a chunk in about this many bytes: they stay in L2/L3 between
// the transforms and the gemms, and the gemms' N (tiles) stays large.
constexpr size_t kChunkBytes = size_t(2) << 20;

Plan plan_for(const ConvShape& s, bool backward) {
  Plan p;
  p.TH = (s.OH + 1) / 2;
  p.TW = (s.OW + 1) / 2;
  p.T = p.TH * p.TW;
  p.HP = 2 * p.TH + 2;
  p.WP = 2 * p.TW + 2;
  const size_t per_sample = (size_t)kPoints * p.T * (s.C + s.F) * sizeof(float);
  p.chunk = (int)std::clamp<size_t>(kChunkBytes / per_sample, 1, std::max(1, s.N));
  p.Tc = (size_t)p.chunk * p.T;
  p.u = 0;
  p.du = p.u + (size_t)kPoints * s.F * s.C;
  p.v = p.du + (backward ? (size_t)kPoints * s.F * s.C : 0);
  p.m = p.v + (size_t)kPoints * s.C * p.Tc;
  p.plane = p.m + (size_t)kPoints * s.F * p.Tc;
  p.total = p.plane + (size_t)p.HP * p.WP;
  return p;
}

void sgemm(const GemmChoice& g, bool transA, bool transB, int M, int N, int K, const float* A, const float* B,
           float beta, float* C) {
#ifdef NORMLAB_OPENBLAS
  if (!g.builtin) {
    sgemm_openblas(transA, transB, M, N, K, 1.0f, A, B, beta, C);
    return;
  }
#endif
  sgemm_builtin(*g.builtin, transA, transB, M, N, K, 1.0f, A, B, beta, C);
}

// U[ξ][f][c] = (G g Gᵀ)[ξ] for the kernel g = weight[f][c],
// G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1].
NORMLAB_CLONES void transform_weight(const ConvShape& s, const float* weight, float* U) {
  const size_t FC = (size_t)s.F * s.C;
  for (size_t fc = 0; fc < FC; fc++) {
    const float* g = weight + fc * 9;
    float t[4][3];  // G g
    for (int k = 0; k < 3; k++) {
      const float g0 = g[k], g1 = g[3 + k], g2 = g[6 + k];
      t[0][k] = g0;
      t[1][k] = 0.5f * (g0 + g1 + g2);
      t[2][k] = 0.5f * (g0 - g1 + g2);
      t[3][k] = g2;
    }
    for (int i = 0; i < 4; i++) {
      const float a = t[i][0], b = t[i][1], c = t[i][2];
      U[(4 * i + 0) * FC + fc] = a;
      U[(4 * i + 1) * FC + fc] = 0.5f * (a + b + c);
      U[(4 * i + 2) * FC + fc] = 0.5f * (a - b + c);
      U[(4 * i + 3) * FC + fc] = c;
    }
  }
}

// dweight[f][c] = Gᵀ dU[·][f][c] G, the adjoint of transform_weight.
NORMLAB_CLONES void transform_weight_grad(const ConvShape& s, const float* dU, float* dweight) {
  const size_t FC = (size_t)s.F * s.C;
  for (size_t fc = 0; fc < FC; fc++) {
    float t[3][4];  // Gᵀ dU
    for (int j = 0; j < 4; j++) {
      const float u0 = dU[(0 + j) * FC + fc], u1 = dU[(4 + j) * FC + fc];
      const float u2 = dU[(8 + j) * FC + fc], u3 = dU[(12 + j) * FC + fc];
      t[0][j] = u0 + 0.5f * (u1 + u2);
      t[1][j] = 0.5f * (u1 - u2);
      t[2][j] = 0.5f * (u1 + u2) + u3;
    }
    float* g = dweight + fc * 9;
    for (int k = 0; k < 3; k++) {
      const float a = t[k][0], b = t[k][1], c = t[k][2], d = t[k][3];
      g[3 * k + 0] = a + 0.5f * (b + c);
      g[3 * k + 1] = 0.5f * (b - c);
      g[3 * k + 2] = 0.5f * (b + c) + d;
    }
  }
}

// The plane src [H, W] into buf [HP, WP] with pad_h rows and pad_w columns
// of zeros before it and zeros after it (HP = 2*ceil(OH/2) + 2 >= OH + 2 =
// H + 2*pad_h, likewise WP).
void pad_plane(const ConvShape& s, const Plan& p, const float* src, float* buf) {
  std::memset(buf, 0, sizeof(float) * p.HP * p.WP);
  for (int h = 0; h < s.H; h++) {
    std::memcpy(buf + (size_t)(h + s.pad_h) * p.WP + s.pad_w, src + (size_t)h * s.W, sizeof(float) * s.W);
  }
}

// V[ξ][c][t0 + th*TW + tw] = (Bᵀ d B)[ξ] for the 4x4 patch d at rows 2*th,
// columns 2*tw of the padded plane, Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
// Vst is the stride between points (C*Tc).
NORMLAB_CLONES void transform_input(const Plan& p, const float* buf, float* V, size_t Vst) {
  const int WP = p.WP;
  for (int th = 0; th < p.TH; th++) {
    const float* r0 = buf + (size_t)(2 * th) * WP;
    const float* r1 = r0 + WP;
    const float* r2 = r1 + WP;
    const float* r3 = r2 + WP;
    float* v = V + (size_t)th * p.TW;
    for (int tw = 0; tw < p.TW; tw++) {
      const int q = 2 * tw;
      float t[4][4];  // Bᵀ d
      for (int j = 0; j < 4; j++) {
        t[0][j] = r0[q + j] - r2[q + j];
        t[1][j] = r1[q + j] + r2[q + j];
        t[2][j] = r2[q + j] - r1[q + j];
        t[3][j] = r1[q + j] - r3[q + j];
      }
      for (int i = 0; i < 4; i++) {
        v[(4 * i + 0) * Vst + tw] = t[i][0] - t[i][2];
        v[(4 * i + 1) * Vst + tw] = t[i][1] + t[i][2];
        v[(4 * i + 2) * Vst + tw] = t[i][2] - t[i][1];
        v[(4 * i + 3) * Vst + tw] = t[i][1] - t[i][3];
      }
    }
  }
}

// y[2*th + a][2*tw + b] = (Aᵀ m A)[a][b] + bias for the outputs inside the
// plane [OH, OW], m[ξ] = M[ξ][f][t0 + th*TW + tw], Aᵀ = [1 1 1 0; 0 1 -1 -1].
NORMLAB_CLONES void transform_output(const ConvShape& s, const Plan& p, const float* M, size_t Mst, float bias,
                                     float* y) {
  for (int th = 0; th < p.TH; th++) {
    const float* m = M + (size_t)th * p.TW;
    const int oh = 2 * th;
    const bool second_row = oh + 1 < s.OH;
    for (int tw = 0; tw < p.TW; tw++) {
      float z[2][4];  // Aᵀ m
      for (int j = 0; j < 4; j++) {
        const float m0 = m[(0 + j) * Mst + tw], m1 = m[(4 + j) * Mst + tw];
        const float m2 = m[(8 + j) * Mst + tw], m3 = m[(12 + j) * Mst + tw];
        z[0][j] = m0 + m1 + m2;
        z[1][j] = m1 - m2 - m3;
      }
      const int ow = 2 * tw;
      float* y0 = y + (size_t)oh * s.OW + ow;
      y0[0] = (z[0][0] + z[0][1] + z[0][2]) + bias;
      if (ow + 1 < s.OW) y0[1] = (z[0][1] - z[0][2] - z[0][3]) + bias;
      if (second_row) {
        float* y1 = y0 + s.OW;
        y1[0] = (z[1][0] + z[1][1] + z[1][2]) + bias;
        if (ow + 1 < s.OW) y1[1] = (z[1][1] - z[1][2] - z[1][3]) + bias;
      }
    }
  }
}

// dM[ξ][f][t0 + th*TW + tw] = (A dY Aᵀ)[ξ] for the tile's 2x2 outputs of dy
// [OH, OW] (0 past the plane's edge), the adjoint of transform_output.
NORMLAB_CLONES void transform_output_grad(const ConvShape& s, const Plan& p, const float* dy, float* dM, size_t Mst) {
  for (int th = 0; th < p.TH; th++) {
    float* m = dM + (size_t)th * p.TW;
    const int oh = 2 * th;
    const bool second_row = oh + 1 < s.OH;
    for (int tw = 0; tw < p.TW; tw++) {
      const int ow = 2 * tw;
      const bool second_col = ow + 1 < s.OW;
      const float* g0 = dy + (size_t)oh * s.OW + ow;
      const float a = g0[0], b = second_col ? g0[1] : 0.0f;
      const float c = second_row ? g0[s.OW] : 0.0f, d = second_row && second_col ? g0[s.OW + 1] : 0.0f;
      // A dY, A = [1 0; 1 1; 1 -1; 0 -1]: rows (r0, r0 + r1, r0 - r1, -r1).
      const float w[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}};
      for (int i = 0; i < 4; i++) {
        const float e = w[i][0], f = w[i][1];
        m[(4 * i + 0) * Mst + tw] = e;
        m[(4 * i + 1) * Mst + tw] = e + f;
        m[(4 * i + 2) * Mst + tw] = e - f;
        m[(4 * i + 3) * Mst + tw] = -f;
      }
    }
  }
}

// buf [HP, WP] += B dV[·][c][t0 + th*TW + tw] Bᵀ at each tile's 4x4 patch,
// the adjoint of transform_input; buf starts zeroed.
NORMLAB_CLONES void transform_input_grad(const Plan& p, const float* dV, size_t Vst, float* buf) {
  const int WP = p.WP;
  for (int th = 0; th < p.TH; th++) {
    const float* v = dV + (size_t)th * p.TW;
    float* r0 = buf + (size_t)(2 * th) * WP;
    for (int tw = 0; tw < p.TW; tw++) {
      // B dV over the rows i: (v0, v1 - v2 + v3, v1 + v2 - v0, -v3).
      float t[4][4];
      for (int j = 0; j < 4; j++) {
        const float v0 = v[(0 + j) * Vst + tw], v1 = v[(4 + j) * Vst + tw];
        const float v2 = v[(8 + j) * Vst + tw], v3 = v[(12 + j) * Vst + tw];
        t[0][j] = v0;
        t[1][j] = v1 - v2 + v3;
        t[2][j] = v1 + v2 - v0;
        t[3][j] = -v3;
      }
      float* d = r0 + 2 * tw;
      for (int k = 0; k < 4; k++) {
        const float a = t[k][0], b = t[k][1], c = t[k][2], e = t[k][3];
        float* row = d + (size_t)k * WP;
        row[0] += a;
        row[1] += b - c + e;
        row[2] += b + c - a;
        row[3] -= e;
      }
    }
  }
}

}  // namespace

bool conv2d_winograd(const ConvShape& s) {
  // Few channels leave the 16 gemms too thin to beat im2col's one.
  return s.KH == 3 && s.KW == 3 && s.stride_h == 1 && s.stride_w == 1 && s.C >= 8 && s.F >= 8;
}

size_t conv2d_winograd_floats(const ConvShape& s) { return plan_for(s, true).total; }

void conv2d_winograd_forward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                             const float* bias, float* y, float* scratch) {
  const Plan p = plan_for(s, false);
  float* U = scratch + p.u;
  float* V = scratch + p.v;
  float* M = scratch + p.m;
  float* buf = scratch + p.plane;
  const size_t plane_in = (size_t)s.H * s.W, plane_out = (size_t)s.OH * s.OW;
  transform_weight(s, weight, U);
  for (int n0 = 0; n0 < s.N; n0 += p.chunk) {
    const int nc = std::min(p.chunk, s.N - n0);
    const size_t Tc = (size_t)nc * p.T;  // this chunk's tiles (the last chunk may be short)
    for (int i = 0; i < nc; i++) {
      for (int c = 0; c < s.C; c++) {
        pad_plane(s, p, x + ((size_t)(n0 + i) * s.C + c) * plane_in, buf);
        transform_input(p, buf, V + c * Tc + (size_t)i * p.T, s.C * Tc);
      }
    }
    for (int xi = 0; xi < kPoints; xi++) {
      sgemm(gemm, false, false, s.F, (int)Tc, s.C, U + (size_t)xi * s.F * s.C, V + xi * s.C * Tc, 0.0f,
            M + xi * s.F * Tc);
    }
    for (int i = 0; i < nc; i++) {
      for (int f = 0; f < s.F; f++) {
        transform_output(s, p, M + f * Tc + (size_t)i * p.T, s.F * Tc, bias ? bias[f] : 0.0f,
                         y + ((size_t)(n0 + i) * s.F + f) * plane_out);
      }
    }
  }
}

void conv2d_winograd_backward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                              const float* dy, float* dx, float* dweight, float* scratch) {
  if (s.N == 0) {
    std::memset(dweight, 0, sizeof(float) * s.F * s.C * 9);
    return;
  }
  const Plan p = plan_for(s, true);
  float* U = scratch + p.u;
  float* dU = scratch + p.du;
  float* V = scratch + p.v;
  float* dM = scratch + p.m;
  float* buf = scratch + p.plane;
  const size_t plane_in = (size_t)s.H * s.W, plane_out = (size_t)s.OH * s.OW;
  if (dx) transform_weight(s, weight, U);
  for (int n0 = 0; n0 < s.N; n0 += p.chunk) {
    const int nc = std::min(p.chunk, s.N - n0);
    const size_t Tc = (size_t)nc * p.T;
    for (int i = 0; i < nc; i++) {
      for (int c = 0; c < s.C; c++) {
        pad_plane(s, p, x + ((size_t)(n0 + i) * s.C + c) * plane_in, buf);
        transform_input(p, buf, V + c * Tc + (size_t)i * p.T, s.C * Tc);
      }
      for (int f = 0; f < s.F; f++) {
        transform_output_grad(s, p, dy + ((size_t)(n0 + i) * s.F + f) * plane_out, dM + f * Tc + (size_t)i * p.T,
                              s.F * Tc);
      }
    }
    // dU[ξ] (+)= dM[ξ] · V[ξ]ᵀ; the first chunk overwrites.
    for (int xi = 0; xi < kPoints; xi++) {
      sgemm(gemm, false, true, s.F, s.C, (int)Tc, dM + xi * s.F * Tc, V + xi * s.C * Tc, n0 == 0 ? 0.0f : 1.0f,
            dU + (size_t)xi * s.F * s.C);
    }
    if (!dx) continue;
    // dV[ξ] = U[ξ]ᵀ · dM[ξ], into V's place (V is done with).
    for (int xi = 0; xi < kPoints; xi++) {
      sgemm(gemm, true, false, s.C, (int)Tc, s.F, U + (size_t)xi * s.F * s.C, dM + xi * s.F * Tc, 0.0f,
            V + xi * s.C * Tc);
    }
    for (int i = 0; i < nc; i++) {
      for (int c = 0; c < s.C; c++) {
        std::memset(buf, 0, sizeof(float) * p.HP * p.WP);
        transform_input_grad(p, V + c * Tc + (size_t)i * p.T, s.C * Tc, buf);
        float* dxc = dx + ((size_t)(n0 + i) * s.C + c) * plane_in;
        // The plane's part of buf; the padding's gradients are dropped.
        for (int h = 0; h < s.H; h++) {
          std::memcpy(dxc + (size_t)h * s.W, buf + (size_t)(h + s.pad_h) * p.WP + s.pad_w, sizeof(float) * s.W);
        }
      }
    }
  }
  transform_weight_grad(s, dU, dweight);
}

}  // namespace normlab
