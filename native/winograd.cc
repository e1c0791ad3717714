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
// Inference transforms the kernels once at model load (packConv) and runs on
// the built-in gemm, batch-invariant (winograd_forward says why).
#include <algorithm>
#include <cstring>

#include "conv.h"
#include "lanes.h"

namespace normlab {

namespace {

constexpr int kPoints = 16;  // the 4x4 transform's points ξ = 4*i + j

// Sizes of one call: tiles per plane, samples per chunk, and where the
// scratch parts start (floats from the start of the scratch).
struct Plan {
  int TH, TW, T;  // tiles per plane: ceil(OH/2) x ceil(OW/2)
  int HP, K1;     // the zero-padded plane a patch reads: 2*TH + 2 rows, 2*K1 columns (K1 = TW + 1 each of E and O)
  int chunk;      // samples per chunk
  size_t Tc;      // tiles per chunk: chunk * T
  size_t ust;     // floats between the 16 planes of U and of dU
  size_t u, du, v, m, plane, total;
};

// The floats between two of the 16 planes of a transform, for planes of n
// floats: whole cache lines, an odd number of them, so that the 16 streams a
// transform reads or writes fall in 16 different sets of the L1 cache. (With
// planes a multiple of 4 KB apart they share one set and evict each other:
// the 7x7 outputs of [128, 32] -> 64 ran 1.7x slower than im2col that way.)
size_t plane_stride(size_t n) {
  size_t lines = (n + 15) / 16;
  if (lines % 2 == 0) lines++;
  return lines * 16;
}

// V and M of a chunk in about this many bytes: they stay in L2/L3 between
// the transforms and the gemms, and the gemms' N (tiles) stays large.
constexpr size_t kChunkBytes = size_t(1) << 20;

Plan plan_for(const ConvShape& s, bool backward) {
  Plan p;
  p.TH = (s.OH + 1) / 2;
  p.TW = (s.OW + 1) / 2;
  p.T = p.TH * p.TW;
  p.HP = 2 * p.TH + 2;
  p.K1 = p.TW + 1;
  const size_t per_sample = (size_t)kPoints * p.T * (s.C + s.F) * sizeof(float);
  p.chunk = (int)std::clamp<size_t>(kChunkBytes / per_sample, 1, std::max(1, s.N));
  p.Tc = (size_t)p.chunk * p.T;
  p.ust = plane_stride((size_t)s.F * s.C);
  p.u = 0;
  p.du = p.u + kPoints * p.ust;
  p.v = p.du + (backward ? kPoints * p.ust : 0);
  p.m = p.v + kPoints * plane_stride(s.C * p.Tc);
  p.plane = p.m + kPoints * plane_stride(s.F * p.Tc);
  p.total = p.plane + 2 * (size_t)p.HP * p.K1;
  return p;
}

// U[ξ][f][c] = (G g Gᵀ)[ξ] for the kernel g = weight[f][c],
// G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]; Ust floats between the planes ξ.
NORMLAB_CLONES void transform_weight(const ConvShape& s, const float* weight, float* U, size_t Ust) {
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
      U[(4 * i + 0) * Ust + fc] = a;
      U[(4 * i + 1) * Ust + fc] = 0.5f * (a + b + c);
      U[(4 * i + 2) * Ust + fc] = 0.5f * (a - b + c);
      U[(4 * i + 3) * Ust + fc] = c;
    }
  }
}

// dweight[f][c] = Gᵀ dU[·][f][c] G, the adjoint of transform_weight.
NORMLAB_CLONES void transform_weight_grad(const ConvShape& s, const float* dU, size_t Ust, float* dweight) {
  const size_t FC = (size_t)s.F * s.C;
  for (size_t fc = 0; fc < FC; fc++) {
    float t[3][4];  // Gᵀ dU
    for (int j = 0; j < 4; j++) {
      const float u0 = dU[(0 + j) * Ust + fc], u1 = dU[(4 + j) * Ust + fc];
      const float u2 = dU[(8 + j) * Ust + fc], u3 = dU[(12 + j) * Ust + fc];
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

// The padded plane is kept as its even and odd columns, E[r][k] = padded
// [r][2k] and O[r][k] = padded[r][2k + 1] (rows of K1 = TW + 1), so that the
// transforms below read and write whole vectors of consecutive tiles: tile tw
// covers columns 2tw .. 2tw + 3, i.e. E and O at tw and tw + 1.
//
// The vector code runs on L tiles of a tile row at once in GCC vector types
// (lowered to SSE2, AVX2 or NEON as the clone allows), the same operations in
// the same order as the scalar code for one tile, so every lane computes what
// the scalar code does. A row of TW >= L tiles ends with a block overlapping
// the one before it, which writes the same values again.
using lanes::Lanes;
using lanes::load;
using lanes::store;
// L floats: one vector, or a plain float for the single-tile code.
template <int L> struct Tile {
  typedef typename Lanes<L>::F F;
};
template <> struct Tile<1> {
  typedef float F;
};
template <int L> using VecF = typename Tile<L>::F;

// Runs block(tw0, L) over the tiles [0, n) in blocks of 8 or 4, the last one
// overlapping the one before, or block(tw, 1) one tile at a time when n < 4.
template <typename Block> inline __attribute__((always_inline)) void over_tiles(int n, Block block) {
  if (n >= 8) {
    for (int tw = 0; tw < n; tw += 8) block.template run<8>(std::min(tw, n - 8));
  } else if (n >= 4) {
    block.template run<4>(0);
    block.template run<4>(n - 4);
  } else {
    for (int tw = 0; tw < n; tw++) block.template run<1>(tw);
  }
}

// The plane src [H, W] into E and O with pad_h rows and pad_w columns of
// zeros before it and zeros after it (HP = 2*ceil(OH/2) + 2 >= OH + 2 =
// H + 2*pad_h rows, likewise 2*K1 columns).
void pad_plane(const ConvShape& s, const Plan& p, const float* src, float* E, float* O) {
  const int K1 = p.K1;
  std::memset(E, 0, sizeof(float) * p.HP * K1);
  std::memset(O, 0, sizeof(float) * p.HP * K1);
  for (int h = 0; h < s.H; h++) {
    float* e = E + (size_t)(h + s.pad_h) * K1;
    float* o = O + (size_t)(h + s.pad_h) * K1;
    const float* x = src + (size_t)h * s.W;
    for (int w = 0; w < s.W; w++) {
      const int q = w + s.pad_w;
      (q & 1 ? o : e)[q >> 1] = x[w];
    }
  }
}

// V[ξ][th*TW + tw] = (Bᵀ d B)[ξ] for the 4x4 patch d at rows 2*th, columns
// 2*tw of the padded plane, Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
// Vst floats between the planes ξ.
struct InputBlock {
  const float *E, *O;
  float* v;
  size_t Vst;
  int K1;
  template <int L> inline __attribute__((always_inline)) void run(int tw) const {
    using F = VecF<L>;
    // Bᵀ d for each of the patch's four columns: even at tw, odd at tw, even at tw + 1, odd at tw + 1.
    F t[4][4];
    const float* cols[4] = {E + tw, O + tw, E + tw + 1, O + tw + 1};
    for (int j = 0; j < 4; j++) {
      const F r0 = load<F>(cols[j]), r1 = load<F>(cols[j] + K1), r2 = load<F>(cols[j] + 2 * K1),
              r3 = load<F>(cols[j] + 3 * K1);
      t[0][j] = r0 - r2;
      t[1][j] = r1 + r2;
      t[2][j] = r2 - r1;
      t[3][j] = r1 - r3;
    }
    for (int i = 0; i < 4; i++) {
      store(v + (4 * i + 0) * Vst + tw, t[i][0] - t[i][2]);
      store(v + (4 * i + 1) * Vst + tw, t[i][1] + t[i][2]);
      store(v + (4 * i + 2) * Vst + tw, t[i][2] - t[i][1]);
      store(v + (4 * i + 3) * Vst + tw, t[i][1] - t[i][3]);
    }
  }
};

NORMLAB_CLONES void transform_input(const Plan& p, const float* E, const float* O, float* V, size_t Vst) {
  const int K1 = p.K1;
  for (int th = 0; th < p.TH; th++) {
    const size_t row = (size_t)(2 * th) * K1;
    over_tiles(p.TW, InputBlock{E + row, O + row, V + (size_t)th * p.TW, Vst, K1});
  }
}

// y[2*th + a][2*tw + b] = (Aᵀ m A)[a][b] + bias, m[ξ] = M[ξ][th*TW + tw],
// Aᵀ = [1 1 1 0; 0 1 -1 -1], for tiles whose four outputs are inside the
// plane (the vector path) or, one output at a time, for those cut by its edge.
template <int L> inline __attribute__((always_inline)) void output_tile(const float* m, size_t Mst, int tw, float bias,
                                                                       float (&y)[2][2][L]) {
  using F = VecF<L>;
  F z[2][4];  // Aᵀ m
  for (int j = 0; j < 4; j++) {
    const F m0 = load<F>(m + (0 + j) * Mst + tw), m1 = load<F>(m + (4 + j) * Mst + tw);
    const F m2 = load<F>(m + (8 + j) * Mst + tw), m3 = load<F>(m + (12 + j) * Mst + tw);
    z[0][j] = m0 + m1 + m2;
    z[1][j] = m1 - m2 - m3;
  }
  for (int a = 0; a < 2; a++) {
    store(y[a][0], (z[a][0] + z[a][1] + z[a][2]) + bias);
    store(y[a][1], (z[a][1] - z[a][2] - z[a][3]) + bias);
  }
}

struct OutputBlock {
  const float* m;
  size_t Mst;
  float bias;
  float *y0, *y1;  // output rows 2*th and 2*th + 1
  template <int L> inline __attribute__((always_inline)) void run(int tw) const {
    float out[2][2][L];
    output_tile<L>(m, Mst, tw, bias, out);
    if constexpr (L == 1) {
      y0[2 * tw] = out[0][0][0], y0[2 * tw + 1] = out[0][1][0];
      y1[2 * tw] = out[1][0][0], y1[2 * tw + 1] = out[1][1][0];
    } else {
      using T = Lanes<L>;
      using F = typename T::F;
      float* rows[2] = {y0, y1};
      for (int a = 0; a < 2; a++) {
        const F e = load<F>(out[a][0]), o = load<F>(out[a][1]);
        store(rows[a] + 2 * tw, T::lo(e, o));
        store(rows[a] + 2 * tw + L, T::hi(e, o));
      }
    }
  }
};

NORMLAB_CLONES void transform_output(const ConvShape& s, const Plan& p, const float* M, size_t Mst, float bias,
                                     float* y) {
  const int full = s.OW / 2;  // tiles of a row with both columns inside
  for (int th = 0; th < p.TH; th++) {
    const float* m = M + (size_t)th * p.TW;
    const int oh = 2 * th;
    float* y0 = y + (size_t)oh * s.OW;
    int first_cut = 0;  // the tiles from here on are cut by the edge
    if (oh + 1 < s.OH) {
      over_tiles(full, OutputBlock{m, Mst, bias, y0, y0 + s.OW});
      first_cut = full;
    }
    for (int tw = first_cut; tw < p.TW; tw++) {
      float out[2][2][1];
      output_tile<1>(m, Mst, tw, bias, out);
      for (int a = 0; a < 2 && oh + a < s.OH; a++) {
        for (int b = 0; b < 2 && 2 * tw + b < s.OW; b++) y0[(size_t)a * s.OW + 2 * tw + b] = out[a][b][0];
      }
    }
  }
}

// dM[ξ][th*TW + tw] = (A dY Aᵀ)[ξ] for the tile's 2x2 outputs of dy [OH, OW]
// (0 past the plane's edge), the adjoint of transform_output.
template <int L> inline __attribute__((always_inline)) void output_grad_tile(VecF<L> a, VecF<L> b, VecF<L> c, VecF<L> d,
                                                                            float* m, size_t Mst, int tw) {
  using F = VecF<L>;
  // A dY, A = [1 0; 1 1; 1 -1; 0 -1]: rows (r0, r0 + r1, r0 - r1, -r1).
  const F w[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}};
  for (int i = 0; i < 4; i++) {
    const F e = w[i][0], f = w[i][1];
    store(m + (4 * i + 0) * Mst + tw, e);
    store(m + (4 * i + 1) * Mst + tw, e + f);
    store(m + (4 * i + 2) * Mst + tw, e - f);
    store(m + (4 * i + 3) * Mst + tw, -f);
  }
}

struct OutputGradBlock {
  const float *g0, *g1;  // dy rows 2*th and 2*th + 1
  float* m;
  size_t Mst;
  template <int L> inline __attribute__((always_inline)) void run(int tw) const {
    if constexpr (L == 1) {
      output_grad_tile<1>(g0[2 * tw], g0[2 * tw + 1], g1[2 * tw], g1[2 * tw + 1], m, Mst, tw);
    } else {
      using T = Lanes<L>;
      using F = typename T::F;
      const F p0 = load<F>(g0 + 2 * tw), p1 = load<F>(g0 + 2 * tw + L);
      const F q0 = load<F>(g1 + 2 * tw), q1 = load<F>(g1 + 2 * tw + L);
      output_grad_tile<L>(T::even(p0, p1), T::odd(p0, p1), T::even(q0, q1), T::odd(q0, q1), m, Mst, tw);
    }
  }
};

NORMLAB_CLONES void transform_output_grad(const ConvShape& s, const Plan& p, const float* dy, float* dM, size_t Mst) {
  const int full = s.OW / 2;
  for (int th = 0; th < p.TH; th++) {
    float* m = dM + (size_t)th * p.TW;
    const int oh = 2 * th;
    const float* g0 = dy + (size_t)oh * s.OW;
    int first_cut = 0;
    if (oh + 1 < s.OH) {
      over_tiles(full, OutputGradBlock{g0, g0 + s.OW, m, Mst});
      first_cut = full;
    }
    for (int tw = first_cut; tw < p.TW; tw++) {
      const int ow = 2 * tw;
      const bool second_row = oh + 1 < s.OH, second_col = ow + 1 < s.OW;
      const float a = g0[ow], b = second_col ? g0[ow + 1] : 0.0f;
      const float c = second_row ? g0[s.OW + ow] : 0.0f, d = second_row && second_col ? g0[s.OW + ow + 1] : 0.0f;
      output_grad_tile<1>(a, b, c, d, m, Mst, tw);
    }
  }
}

// E, O += B dV[·][th*TW + tw] Bᵀ at each tile's 4x4 patch, the adjoint of
// transform_input; E and O start zeroed. Blocks do not overlap here (they
// add): L = 8, then 4, then single tiles.
template <int L> inline __attribute__((always_inline)) void input_grad_tile(const float* v, size_t Vst, int tw,
                                                                           float* E, float* O, int K1) {
  using F = VecF<L>;
  // B dV over the rows i: (v0, v1 - v2 + v3, v1 + v2 - v0, -v3).
  F t[4][4];
  for (int j = 0; j < 4; j++) {
    const F v0 = load<F>(v + (0 + j) * Vst + tw), v1 = load<F>(v + (4 + j) * Vst + tw);
    const F v2 = load<F>(v + (8 + j) * Vst + tw), v3 = load<F>(v + (12 + j) * Vst + tw);
    t[0][j] = v0;
    t[1][j] = v1 - v2 + v3;
    t[2][j] = v1 + v2 - v0;
    t[3][j] = -v3;
  }
  for (int k = 0; k < 4; k++) {
    const F a = t[k][0], b = t[k][1], c = t[k][2], e = t[k][3];
    float* er = E + (size_t)k * K1 + tw;
    float* orow = O + (size_t)k * K1 + tw;
    // Columns 2tw .. 2tw + 3: E at tw, O at tw, E at tw + 1, O at tw + 1.
    store(er, load<F>(er) + a);
    store(orow, load<F>(orow) + (b - c + e));
    store(er + 1, load<F>(er + 1) + (b + c - a));
    store(orow + 1, load<F>(orow + 1) - e);
  }
}

NORMLAB_CLONES void transform_input_grad(const Plan& p, const float* dV, size_t Vst, float* E, float* O) {
  const int K1 = p.K1;
  for (int th = 0; th < p.TH; th++) {
    const float* v = dV + (size_t)th * p.TW;
    float* e = E + (size_t)(2 * th) * K1;
    float* o = O + (size_t)(2 * th) * K1;
    int tw = 0;
    for (; tw + 8 <= p.TW; tw += 8) input_grad_tile<8>(v, Vst, tw, e, o, K1);
    for (; tw + 4 <= p.TW; tw += 4) input_grad_tile<4>(v, Vst, tw, e, o, K1);
    for (; tw < p.TW; tw++) input_grad_tile<1>(v, Vst, tw, e, o, K1);
  }
}

// dx [H, W] = the plane's part of E and O; the padding's gradients are dropped.
void unpad_plane(const ConvShape& s, const Plan& p, const float* E, const float* O, float* dx) {
  const int K1 = p.K1;
  for (int h = 0; h < s.H; h++) {
    const float* e = E + (size_t)(h + s.pad_h) * K1;
    const float* o = O + (size_t)(h + s.pad_h) * K1;
    float* d = dx + (size_t)h * s.W;
    for (int w = 0; w < s.W; w++) {
      const int q = w + s.pad_w;
      d[w] = (q & 1 ? o : e)[q >> 1];
    }
  }
}

}  // namespace

bool conv2d_winograd(const ConvShape& s) {
  // Few channels leave the 16 gemms too thin to beat im2col's one: with the
  // 1 input channel of the Fashion-MNIST first layer, forward + backward at
  // batch 128 took 6.6-8.6 ms against im2col's 2.9-3.4 (bench/conv.mjs,
  // conv1, with this threshold lowered to 1).
  return s.KH == 3 && s.KW == 3 && s.stride_h == 1 && s.stride_w == 1 && s.C >= 8 && s.F >= 8;
}

size_t conv2d_winograd_floats(const ConvShape& s) { return plan_for(s, true).total; }

namespace {

// y = the convolution of x by the transformed kernels U (planes Ust apart),
// + bias, then the activation on each sample's output (kNoActivation: none).
// On the built-in gemm a value of y depends on its sample and on (F, C) only,
// however the batch falls into chunks: the transforms work tile by tile, and
// that gemm blocks by K alone and computes whole micro-tiles, so every element
// is the same sum over the C input channels whatever the chunk's width.
void winograd_forward(const GemmChoice& gemm, const ConvShape& s, const Plan& p, const float* x, const float* U,
                      size_t Ust, const float* bias, float* y, float* scratch, int activation, float alpha) {
  float* V = scratch + p.v;
  float* M = scratch + p.m;
  float* E = scratch + p.plane;
  float* O = E + (size_t)p.HP * p.K1;
  const size_t plane_in = (size_t)s.H * s.W, plane_out = (size_t)s.OH * s.OW;
  for (int n0 = 0; n0 < s.N; n0 += p.chunk) {
    const int nc = std::min(p.chunk, s.N - n0);
    const size_t Tc = (size_t)nc * p.T;  // this chunk's tiles (the last chunk may be short)
    const size_t Vst = plane_stride(s.C * Tc), Mst = plane_stride(s.F * Tc);
    for (int i = 0; i < nc; i++) {
      for (int c = 0; c < s.C; c++) {
        pad_plane(s, p, x + ((size_t)(n0 + i) * s.C + c) * plane_in, E, O);
        transform_input(p, E, O, V + c * Tc + (size_t)i * p.T, Vst);
      }
    }
    for (int xi = 0; xi < kPoints; xi++) {
      conv_sgemm(gemm, false, false, s.F, (int)Tc, s.C, 1.0f, U + xi * Ust, V + xi * Vst, 0.0f, M + xi * Mst);
    }
    for (int i = 0; i < nc; i++) {
      float* yn = y + (size_t)(n0 + i) * s.F * plane_out;
      for (int f = 0; f < s.F; f++) {
        transform_output(s, p, M + f * Tc + (size_t)i * p.T, Mst, bias ? bias[f] : 0.0f, yn + f * plane_out);
      }
      // While the sample's output is still in cache.
      if (activation != kNoActivation) activation_forward(activation, yn, yn, s.F * plane_out, alpha);
    }
  }
}

}  // namespace

void conv2d_winograd_forward(const GemmChoice& gemm, const ConvShape& s, const float* x, const float* weight,
                             const float* bias, float* y, float* scratch) {
  const Plan p = plan_for(s, false);
  transform_weight(s, weight, scratch + p.u, p.ust);
  winograd_forward(gemm, s, p, x, scratch + p.u, p.ust, bias, y, scratch, kNoActivation, 0.0f);
}

size_t conv2d_winograd_weight_floats(const ConvShape& s) { return (size_t)kPoints * s.F * s.C; }

void conv2d_winograd_weight(const ConvShape& s, const float* weight, float* U) {
  transform_weight(s, weight, U, (size_t)s.F * s.C);
}

void conv2d_winograd_infer(GemmWorkspace& ws, const ConvShape& s, const float* x, const float* U, const float* bias,
                           float* y, float* scratch, int activation, float alpha) {
  winograd_forward(GemmChoice{&ws}, s, plan_for(s, false), x, U, (size_t)s.F * s.C, bias, y, scratch, activation,
                   alpha);
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
  float* E = scratch + p.plane;
  float* O = E + (size_t)p.HP * p.K1;
  const size_t plane_in = (size_t)s.H * s.W, plane_out = (size_t)s.OH * s.OW;
  if (dx) transform_weight(s, weight, U, p.ust);
  for (int n0 = 0; n0 < s.N; n0 += p.chunk) {
    const int nc = std::min(p.chunk, s.N - n0);
    const size_t Tc = (size_t)nc * p.T;
    const size_t Vst = plane_stride(s.C * Tc), Mst = plane_stride(s.F * Tc);
    for (int i = 0; i < nc; i++) {
      for (int c = 0; c < s.C; c++) {
        pad_plane(s, p, x + ((size_t)(n0 + i) * s.C + c) * plane_in, E, O);
        transform_input(p, E, O, V + c * Tc + (size_t)i * p.T, Vst);
      }
      for (int f = 0; f < s.F; f++) {
        transform_output_grad(s, p, dy + ((size_t)(n0 + i) * s.F + f) * plane_out, dM + f * Tc + (size_t)i * p.T, Mst);
      }
    }
    // dU[ξ] (+)= dM[ξ] · V[ξ]ᵀ; the first chunk overwrites.
    for (int xi = 0; xi < kPoints; xi++) {
      conv_sgemm(gemm, false, true, s.F, s.C, (int)Tc, 1.0f, dM + xi * Mst, V + xi * Vst, n0 == 0 ? 0.0f : 1.0f,
                 dU + xi * p.ust);
    }
    if (!dx) continue;
    // dV[ξ] = U[ξ]ᵀ · dM[ξ], into V's place (V is done with).
    for (int xi = 0; xi < kPoints; xi++) {
      conv_sgemm(gemm, true, false, s.C, (int)Tc, s.F, 1.0f, U + xi * p.ust, dM + xi * Mst, 0.0f, V + xi * Vst);
    }
    for (int i = 0; i < nc; i++) {
      for (int c = 0; c < s.C; c++) {
        std::memset(E, 0, sizeof(float) * 2 * p.HP * p.K1);  // E and O, one after the other
        transform_input_grad(p, V + c * Tc + (size_t)i * p.T, Vst, E, O);
        unpad_plane(s, p, E, O, dx + ((size_t)(n0 + i) * s.C + c) * plane_in);
      }
    }
  }
  transform_weight_grad(s, dU, p.ust, dweight);
}

}  // namespace normlab
