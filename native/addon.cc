// N-API glue for kernels.h: one method per entry of the Kernels interface
// (src/core/kernels/types.ts), same argument order. Each method checks its
// arguments' types and that every array is long enough for the given sizes,
// then runs the kernel directly on the typed arrays' memory (no copies).
//
// A Napi::Addon instance exists per loading environment (main thread or
// worker thread), so per-thread state (the gemm workspace) lives here.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#include "conv.h"
#include "cpu.h"
#include "infer.h"
#include "infer_pool.h"
#include "kernels.h"
#include "recurrent.h"

namespace {

template <typename T> struct ArrayKind;
template <> struct ArrayKind<float> {
  static constexpr napi_typedarray_type type = napi_float32_array;
  static constexpr const char* name = "Float32Array";
};
template <> struct ArrayKind<double> {
  static constexpr napi_typedarray_type type = napi_float64_array;
  static constexpr const char* name = "Float64Array";
};
template <> struct ArrayKind<int32_t> {
  static constexpr napi_typedarray_type type = napi_int32_array;
  static constexpr const char* name = "Int32Array";
};
template <> struct ArrayKind<uint32_t> {
  static constexpr napi_typedarray_type type = napi_uint32_array;
  static constexpr const char* name = "Uint32Array";
};

// Reads the arguments of one call; every failure throws a JS error that
// names the function and the argument.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), fn_(fn) {}

  [[noreturn]] void TypeError(const std::string& msg) const {
    throw Napi::TypeError::New(info_.Env(), std::string(fn_) + ": " + msg);
  }
  [[noreturn]] void RangeError(const std::string& msg) const {
    throw Napi::RangeError::New(info_.Env(), std::string(fn_) + ": " + msg);
  }

  // Numbers and flags also take one N-API call each, which fails on any other type.
  double Number(size_t i, const char* name) const {
    double v;
    if (napi_get_value_double(info_.Env(), info_[i], &v) != napi_ok) TypeError(std::string(name) + " must be a number");
    return v;
  }

  // A size: an integer in [0, 2^31).
  int Size(size_t i, const char* name) const {
    const double v = Number(i, name);
    if (!(v >= 0 && v <= 2147483647.0) || v != std::floor(v)) {
      RangeError(std::string(name) + " must be an integer in [0, 2^31), got " + info_[i].ToString().Utf8Value());
    }
    return (int)v;
  }

  // True when argument i was passed and is not undefined.
  bool Has(size_t i) const { return i < info_.Length() && !info_[i].IsUndefined(); }

  bool Flag(size_t i, const char* name) const {
    bool v;
    if (napi_get_value_bool(info_.Env(), info_[i], &v) != napi_ok) TypeError(std::string(name) + " must be a boolean");
    return v;
  }

  // The data of a typed array of element type T holding at least `need`
  // elements (the pointer already includes the view's byteOffset), and its
  // length in *length when asked. With nullable, null or undefined give nullptr.
  template <typename T>
  T* Array(size_t i, const char* name, size_t need, bool nullable = false, size_t* length = nullptr) const {
    Napi::Value v = info_[i];
    // One napi_get_typedarray_info, which fails on anything but a typed array;
    // through node-addon-api this took a type check and three such calls
    // (bench/call-overhead.mjs times the difference). Null is only looked for
    // once that call has failed.
    napi_typedarray_type type;
    size_t n = 0;
    void* data = nullptr;
    const bool typed = napi_get_typedarray_info(info_.Env(), v, &type, &n, &data, nullptr, nullptr) == napi_ok;
    if (!typed && nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
    if (!typed || type != ArrayKind<T>::type) {
      TypeError(std::string(name) + " must be a " + ArrayKind<T>::name + (nullable ? " or null" : ""));
    }
    if (n < need) {
      TypeError(std::string(name) + " is too short: " + std::to_string(n) + " elements, the sizes need " +
                std::to_string(need));
    }
    if (length) *length = n;
    return static_cast<T*>(data);
  }

  // a * b * c without overflow (sizes are < 2^31 each, so only the third factor can overflow).
  size_t Product(size_t a, size_t b, size_t c = 1) const {
    size_t ab, abc;
    if (__builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, &abc)) RangeError("sizes overflow");
    return abc;
  }

 private:
  const Napi::CallbackInfo& info_;
  const char* fn_;
};

class NormLabAddon : public Napi::Addon<NormLabAddon> {
 public:
  NormLabAddon(Napi::Env env, Napi::Object exports) {
#ifdef NORMLAB_OPENBLAS
    // NormLab runs one job per thread; OpenBLAS's own threads would only
    // compete with them. native.ts raises this when NORMLAB_THREADS asks.
    normlab::openblas_threads(1);
    const char* backend = "openblas";
#else
    const char* backend = "builtin";
#endif
    gemm_workspace_.isa = normlab::best_isa();
    DefineAddon(exports, {
        InstanceValue("gemmBackend", Napi::String::New(env, backend), napi_enumerable),
        InstanceValue("cpuBest", Napi::String::New(env, normlab::isa_name(normlab::best_isa())), napi_enumerable),
        InstanceMethod("setCpuPath", &NormLabAddon::SetCpuPath, napi_enumerable),
        InstanceMethod("packDense", &NormLabAddon::PackDense, napi_enumerable),
        InstanceMethod("alignedFloat32Array", &NormLabAddon::AlignedFloat32Array, napi_enumerable),
        InstanceMethod("denseInfer", &NormLabAddon::DenseInfer, napi_enumerable),
        InstanceMethod("denseChain", &NormLabAddon::DenseChainNew, napi_enumerable),
        InstanceMethod("denseChainRun", &NormLabAddon::DenseChainRun, napi_enumerable),
        InstanceMethod("inferPoolParts", &NormLabAddon::InferPoolParts, napi_enumerable),
        InstanceMethod("conv2dInfer", &NormLabAddon::Conv2dInfer, napi_enumerable),
        InstanceMethod("packConv", &NormLabAddon::PackConv, napi_enumerable),
        InstanceMethod("setGemmThreads", &NormLabAddon::SetGemmThreads, napi_enumerable),
        InstanceMethod("gemm", &NormLabAddon::Gemm, napi_enumerable),
        InstanceMethod("gemmBuiltin", &NormLabAddon::GemmBuiltin, napi_enumerable),
        InstanceMethod("gemmDirect", &NormLabAddon::GemmDirect, napi_enumerable),
#ifdef NORMLAB_OPENBLAS
        InstanceMethod("gemmOpenblas", &NormLabAddon::GemmOpenblas, napi_enumerable),
#endif
        InstanceMethod("addBias", &NormLabAddon::AddBias, napi_enumerable),
        InstanceMethod("biasGrad", &NormLabAddon::BiasGrad, napi_enumerable),
        InstanceMethod("batchNormForwardTrain", &NormLabAddon::BatchNormForwardTrain, napi_enumerable),
        InstanceMethod("batchNormForwardInfer", &NormLabAddon::BatchNormForwardInfer, napi_enumerable),
        InstanceMethod("batchRenormForwardTrain", &NormLabAddon::BatchRenormForwardTrain, napi_enumerable),
        InstanceMethod("batchNormBackward", &NormLabAddon::BatchNormBackward, napi_enumerable),
        InstanceMethod("batchNormUpdateRunning", &NormLabAddon::BatchNormUpdateRunning, napi_enumerable),
        InstanceMethod("channelShiftedSums", &NormLabAddon::ChannelShiftedSums, napi_enumerable),
        InstanceMethod("batchNormBackwardFrozen", &NormLabAddon::BatchNormBackwardFrozen, napi_enumerable),
        InstanceMethod("batchNormBackwardGhost", &NormLabAddon::BatchNormBackwardGhost, napi_enumerable),
        InstanceMethod("activationForward", &NormLabAddon::ActivationForward, napi_enumerable),
        InstanceMethod("activationBackward", &NormLabAddon::ActivationBackward, napi_enumerable),
        InstanceMethod("dropoutForward", &NormLabAddon::DropoutForward, napi_enumerable),
        InstanceMethod("multiply", &NormLabAddon::Multiply, napi_enumerable),
        InstanceMethod("gatherRows", &NormLabAddon::GatherRows, napi_enumerable),
        InstanceMethod("softmaxRows", &NormLabAddon::SoftmaxRows, napi_enumerable),
        InstanceMethod("softmaxCrossEntropy", &NormLabAddon::SoftmaxCrossEntropy, napi_enumerable),
        InstanceMethod("softmaxCrossEntropyBackward", &NormLabAddon::SoftmaxCrossEntropyBackward,
                       napi_enumerable),
        InstanceMethod("sgdStep", &NormLabAddon::SgdStep, napi_enumerable),
        InstanceMethod("adamStep", &NormLabAddon::AdamStep, napi_enumerable),
        // Convolution and pooling (conv.cc).
        InstanceMethod("conv2dForward", &NormLabAddon::Conv2dForward, napi_enumerable),
        InstanceMethod("conv2dForwardBuiltin", &NormLabAddon::Conv2dForwardBuiltin, napi_enumerable),
        InstanceMethod("conv2dBackward", &NormLabAddon::Conv2dBackward, napi_enumerable),
        InstanceMethod("conv2dBackwardBuiltin", &NormLabAddon::Conv2dBackwardBuiltin, napi_enumerable),
        InstanceMethod("maxPool2dForward", &NormLabAddon::MaxPool2dForward, napi_enumerable),
        InstanceMethod("maxPool2dBackward", &NormLabAddon::MaxPool2dBackward, napi_enumerable),
        InstanceMethod("avgPool2dForward", &NormLabAddon::AvgPool2dForward, napi_enumerable),
        InstanceMethod("avgPool2dBackward", &NormLabAddon::AvgPool2dBackward, napi_enumerable),
        InstanceMethod("globalAvgPoolForward", &NormLabAddon::GlobalAvgPoolForward, napi_enumerable),
        InstanceMethod("globalAvgPoolBackward", &NormLabAddon::GlobalAvgPoolBackward, napi_enumerable),
        // Recurrent cells (recurrent.cc).
        InstanceMethod("lstmCellForward", &NormLabAddon::LstmCellForward, napi_enumerable),
        InstanceMethod("lstmOutputForward", &NormLabAddon::LstmOutputForward, napi_enumerable),
        InstanceMethod("lstmOutputBackward", &NormLabAddon::LstmOutputBackward, napi_enumerable),
        InstanceMethod("lstmCellBackward", &NormLabAddon::LstmCellBackward, napi_enumerable),
        InstanceMethod("gruCellForward", &NormLabAddon::GruCellForward, napi_enumerable),
        InstanceMethod("gruCellBackward", &NormLabAddon::GruCellBackward, napi_enumerable),
        InstanceMethod("rnnCellForward", &NormLabAddon::RnnCellForward, napi_enumerable),
        InstanceMethod("rnnCellBackward", &NormLabAddon::RnnCellBackward, napi_enumerable),
    });
  }

 private:
  normlab::GemmWorkspace gemm_workspace_;
  std::vector<float> winograd_;  // conv2d's Winograd scratch
  std::unique_ptr<normlab::InferPool> infer_pool_;  // started by the first chain run on two threads

  // inferPoolParts() -> {posted, helper}: the parts two-thread chain runs of this instance have
  // handed to its helper thread, and how many of them the helper ran (the caller, the rest);
  // zeros before the helper starts.
  Napi::Value InferPoolParts(const Napi::CallbackInfo& info) {
    Napi::Object counts = Napi::Object::New(info.Env());
    counts.Set("posted", infer_pool_ ? (double)infer_pool_->posted_parts() : 0.0);
    counts.Set("helper", infer_pool_ ? (double)infer_pool_->helper_parts() : 0.0);
    return counts;
  }

  // The helper thread, started on first use; null when no thread can be had (the
  // chain then runs on this thread alone, with the same bytes).
  normlab::InferPool* Pool() {
    if (!infer_pool_) {
      try {
        infer_pool_ = std::make_unique<normlab::InferPool>();
      } catch (const std::system_error&) {
        return nullptr;
      }
    }
    return infer_pool_.get();
  }

  // setGemmThreads(n): OpenBLAS threads (process-wide; above 1 this instance's gemm leaves the
  // direct kernel out); a no-op for the built-in gemm.
  void SetGemmThreads(const Napi::CallbackInfo& info) {
    const int n = Args(info, "setGemmThreads").Size(0, "n");
#ifdef NORMLAB_OPENBLAS
    normlab::openblas_threads(n < 1 ? 1 : n);
    gemm_workspace_.blas_threads = n < 1 ? 1 : n;
#else
    (void)n;
#endif
  }

  // setCpuPath(name) -> the path now in use: "auto" takes the best this CPU
  // runs; "baseline", "avx2" or "avx512" force one (an error when the CPU lacks it).
  Napi::Value SetCpuPath(const Napi::CallbackInfo& info) {
    Args a(info, "setCpuPath");
    if (!info[0].IsString()) a.TypeError("name must be a string");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    const normlab::Isa best = normlab::best_isa();
    normlab::Isa isa = best;
    if (name != "auto") {
      if (!normlab::parse_isa(name.c_str(), &isa)) a.RangeError("unknown CPU path \"" + name + "\" (auto, baseline, avx2, avx512)");
      if ((int)isa > (int)best) a.RangeError("this CPU cannot run the " + name + " kernels (best: " + normlab::isa_name(best) + ")");
    }
    gemm_workspace_.isa = isa;
    return Napi::String::New(info.Env(), normlab::isa_name(isa));
  }

  // alignedFloat32Array(n): n zeroed floats whose data starts on a 64-byte
  // boundary (a view into a slightly larger ArrayBuffer, whose memory V8 never
  // moves). Large ArrayBuffers from malloc start 16 bytes past a page, where
  // every 64-byte load of the packed weights would straddle two cache lines.
  Napi::Value AlignedFloat32Array(const Napi::CallbackInfo& info) {
    Args a(info, "alignedFloat32Array");
    const size_t n = a.Size(0, "n");
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(info.Env(), (n + 16) * sizeof(float));
    const uintptr_t base = reinterpret_cast<uintptr_t>(buffer.Data());
    const size_t offset = ((base + 63) & ~(uintptr_t)63) - base;
    return Napi::Float32Array::New(info.Env(), n, buffer, offset);
  }

  // packDense(weight, out, in, packed)
  void PackDense(const Napi::CallbackInfo& info) {
    Args a(info, "packDense");
    const int N = a.Size(1, "out"), K = a.Size(2, "in");
    const float* weight = a.Array<float>(0, "weight", a.Product(N, K));
    float* packed = a.Array<float>(3, "packed", normlab::packed_dense_size(N, K));
    normlab::pack_dense(weight, N, K, packed);
  }

  // denseInfer(x, packed, bias, y, N, in, out, activation, alpha)
  void DenseInfer(const Napi::CallbackInfo& info) {
    Args a(info, "denseInfer");
    const int n = a.Size(4, "N"), K = a.Size(5, "in"), N = a.Size(6, "out");
    const float* x = a.Array<float>(0, "x", a.Product(n, K));
    const float* packed = a.Array<float>(1, "packed", normlab::packed_dense_size(N, K));
    const float* bias = a.Array<float>(2, "bias", N, true);
    float* y = a.Array<float>(3, "y", a.Product(n, N));
    const normlab::DenseArgs args{x, (size_t)K, n, K, N, packed, bias, y, (size_t)N,
                                  FusedActivation(a, 7), FusedAlpha(a, 8)};
    normlab::dense_infer(gemm_workspace_.isa, args);
  }

  // A run of denseInfer layers compiled once, so a prediction crosses into
  // the addon once for all of them: the operands' pointers (the chain holds
  // references, so they stay alive and in place) and scratch for the rows
  // between layers, grown to the largest batch seen.
  struct DenseChain {
    std::vector<normlab::DenseArgs> layers;  // x, y and n filled in per run
    std::vector<Napi::Reference<Napi::Value>> keep;
    std::vector<float> a, b;
    int width = 0;  // the widest output before the last layer
    int threads = 1;  // 2: each run shared with the helper thread (DenseChainRun)
  };

  // denseChain(packed[], bias[], sizes, activations, alphas, threads): layer i
  // maps sizes[i] inputs to sizes[i + 1] outputs; bias[i] may be null; threads
  // is 1, or 2 to share each run with a helper thread (infer_pool.h).
  Napi::Value DenseChainNew(const Napi::CallbackInfo& info) {
    Args a(info, "denseChain");
    if (!info[0].IsArray() || !info[1].IsArray()) a.TypeError("packed and bias must be arrays");
    Napi::Array packed = info[0].As<Napi::Array>(), bias = info[1].As<Napi::Array>();
    const size_t L = packed.Length();
    if (L == 0 || bias.Length() != L) a.RangeError("needs at least one layer and one bias entry per layer");
    const int32_t* sizes = a.Array<int32_t>(2, "sizes", L + 1);
    const int32_t* acts = a.Array<int32_t>(3, "activations", L);
    const float* alphas = a.Array<float>(4, "alphas", L);
    const int threads = a.Size(5, "threads");
    if (threads != 1 && threads != 2) a.RangeError("threads must be 1 or 2");
    auto chain = std::make_unique<DenseChain>();
    chain->threads = threads;
    for (size_t i = 0; i < L; i++) {
      const int K = sizes[i], N = sizes[i + 1];
      if (K < 0 || N < 0) a.RangeError("sizes must be non-negative");
      Napi::Value p = packed[(uint32_t)i], b = bias[(uint32_t)i];
      if (!p.IsTypedArray() || p.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          p.As<Napi::Float32Array>().ElementLength() < normlab::packed_dense_size(N, K)) {
        a.TypeError("packed[" + std::to_string(i) + "] must be a Float32Array of packedDenseSize(out, in) floats");
      }
      const bool has_bias = !(b.IsNull() || b.IsUndefined());
      if (has_bias && (!b.IsTypedArray() || b.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
                       b.As<Napi::Float32Array>().ElementLength() < (size_t)N)) {
        a.TypeError("bias[" + std::to_string(i) + "] must be null or a Float32Array of out floats");
      }
      const int act = acts[i];
      if (act < normlab::kNoActivation || act > normlab::kSigmoid) a.RangeError("unknown activation kind " + std::to_string(act));
      chain->layers.push_back({nullptr, (size_t)K, 0, K, N, p.As<Napi::Float32Array>().Data(),
                               has_bias ? b.As<Napi::Float32Array>().Data() : nullptr, nullptr, (size_t)N, act, alphas[i]});
      chain->keep.push_back(Napi::Persistent(p));
      if (has_bias) chain->keep.push_back(Napi::Persistent(b));
      if (i + 1 < L) chain->width = std::max(chain->width, N);
    }
    return Napi::External<DenseChain>::New(info.Env(), chain.release(), [](Napi::Env, DenseChain* c) { delete c; });
  }

  // denseChainRun(chain, x, N, y): denseInfer through every layer, the last into y (infer.h
  // dense_chain, which a two-thread chain shares with the helper thread).
  void DenseChainRun(const Napi::CallbackInfo& info) {
    Args a(info, "denseChainRun");
    if (!info[0].IsExternal()) a.TypeError("chain must come from denseChain");
    DenseChain& c = *info[0].As<Napi::External<DenseChain>>().Data();
    const int n = a.Size(2, "N");
    const float* x = a.Array<float>(1, "x", a.Product(n, c.layers.front().K));
    float* y = a.Array<float>(3, "y", a.Product(n, c.layers.back().N));
    const size_t need = (size_t)n * c.width;
    if (c.a.size() < need) {
      c.a.resize(need);
      c.b.resize(need);
    }
    normlab::dense_chain(gemm_workspace_.isa, c.layers, x, y, n, c.a.data(), c.b.data(),
                         c.threads == 2 ? Pool() : nullptr);
  }

  // conv2dInfer(x, weight, bias, y, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW, col, activation, alpha)
  void Conv2dInfer(const Napi::CallbackInfo& info) {
    Args a(info, "conv2dInfer");
    const normlab::ConvShape s = ConvShapeArgs(a, 4);
    const size_t taps = a.Product(s.C, s.KH, s.KW);
    const float* x = a.Array<float>(0, "x", a.Product(a.Product(s.N, s.C), s.H, s.W));
    const float* weight = a.Array<float>(1, "weight", PackedConvFloats(a, s));
    const float* bias = a.Array<float>(2, "bias", s.F, true);
    float* y = a.Array<float>(3, "y", a.Product(a.Product(s.N, s.F), s.OH, s.OW));
    float* col = a.Array<float>(15, "col", a.Product(taps, s.OH, s.OW));
    normlab::conv2d_infer(gemm_workspace_, s, x, weight, bias, y, col, WinogradScratch(a, s), FusedActivation(a, 16),
                          FusedAlpha(a, 17));
  }

  // Floats of packConv's output for s: the Winograd transform's U, or the weight as it is.
  static size_t PackedConvFloats(const Args& a, const normlab::ConvShape& s) {
    return normlab::conv2d_winograd(s) ? normlab::conv2d_winograd_weight_floats(s)
                                       : a.Product(s.F, a.Product(s.C, s.KH, s.KW));
  }

  // packConv(weight, F, C, KH, KW, strideH, strideW): a new Float32Array.
  Napi::Value PackConv(const Napi::CallbackInfo& info) {
    Args a(info, "packConv");
    normlab::ConvShape s{};
    s.F = a.Size(1, "F"); s.C = a.Size(2, "C"); s.KH = a.Size(3, "KH"); s.KW = a.Size(4, "KW");
    s.stride_h = a.Size(5, "strideH"); s.stride_w = a.Size(6, "strideW");
    CheckKernel(a, s);
    const size_t n = a.Product(s.F, a.Product(s.C, s.KH, s.KW));
    const float* weight = a.Array<float>(0, "weight", n);
    Napi::Float32Array packed = Napi::Float32Array::New(info.Env(), PackedConvFloats(a, s));
    if (normlab::conv2d_winograd(s)) normlab::conv2d_winograd_weight(s, weight, packed.Data());
    else std::copy(weight, weight + n, packed.Data());
    return packed;
  }

  // gemm(transA, transB, M, N, K, alpha, A, B, beta, C): the direct kernel
  // where it applies, else the build's backend. gemmBuiltin and gemmOpenblas
  // run that one gemm for every shape; gemmDirect only the direct kernel, and
  // returns whether it applied (C untouched when not).
  enum class GemmPath { kAuto, kBuiltin, kOpenblas, kDirect };
  void Gemm(const Napi::CallbackInfo& info) { RunGemm(info, "gemm", GemmPath::kAuto); }
  void GemmBuiltin(const Napi::CallbackInfo& info) { RunGemm(info, "gemmBuiltin", GemmPath::kBuiltin); }
#ifdef NORMLAB_OPENBLAS
  void GemmOpenblas(const Napi::CallbackInfo& info) { RunGemm(info, "gemmOpenblas", GemmPath::kOpenblas); }
#endif
  Napi::Value GemmDirect(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), RunGemm(info, "gemmDirect", GemmPath::kDirect));
  }

  // False only when the direct kernel was asked for and does not apply.
  bool RunGemm(const Napi::CallbackInfo& info, const char* fn, GemmPath path) {
    Args a(info, fn);
    const bool transA = a.Flag(0, "transA"), transB = a.Flag(1, "transB");
    const int M = a.Size(2, "M"), N = a.Size(3, "N"), K = a.Size(4, "K");
    const float alpha = (float)a.Number(5, "alpha");
    const float* A = a.Array<float>(6, "A", a.Product(M, K));
    const float* B = a.Array<float>(7, "B", a.Product(K, N));
    const float beta = (float)a.Number(8, "beta");
    float* C = a.Array<float>(9, "C", a.Product(M, N));
    if (M == 0 || N == 0) return path != GemmPath::kDirect;
    if (K == 0) {  // no products: C = beta * C, and beta = 0 must not read C
      if (path == GemmPath::kDirect) return false;
      for (size_t i = 0; i < (size_t)M * N; i++) C[i] = beta == 0.0f ? 0.0f : beta * C[i];
      return true;
    }
    if (path == GemmPath::kAuto || path == GemmPath::kDirect) {
      if (normlab::sgemm_direct(gemm_workspace_, transA, transB, M, N, K, alpha, A, B, beta, C)) return true;
      if (path == GemmPath::kDirect) return false;
    }
#ifdef NORMLAB_OPENBLAS
    if (path != GemmPath::kBuiltin) {
      normlab::sgemm_openblas(transA, transB, M, N, K, alpha, A, B, beta, C);
      return true;
    }
#endif
    normlab::sgemm_builtin(gemm_workspace_, transA, transB, M, N, K, alpha, A, B, beta, C);
    return true;
  }

  // addBias(x, bias, N, C, S)
  // The optional fused activation of addBias, biasGrad and the batch-norm
  // kernels: arguments (kind, alpha) at i, i+1; absent means none.
  static int FusedActivation(const Args& a, size_t i) {
    if (!a.Has(i)) return normlab::kNoActivation;
    const double kind = a.Number(i, "activation");
    if (kind == -1.0) return normlab::kNoActivation;
    return ActivationKind(a, i);
  }
  static float FusedAlpha(const Args& a, size_t i) { return a.Has(i) ? (float)a.Number(i, "alpha") : 0.0f; }

  // addBias(x, bias, N, C, S, activation?, alpha?)
  void AddBias(const Napi::CallbackInfo& info) {
    Args a(info, "addBias");
    const int N = a.Size(2, "N"), C = a.Size(3, "C"), S = a.Size(4, "S");
    float* x = a.Array<float>(0, "x", a.Product(N, C, S));
    const float* bias = a.Array<float>(1, "bias", C);
    normlab::add_bias(x, bias, N, C, S, FusedActivation(a, 5), FusedAlpha(a, 6));
  }

  // biasGrad(dy, dbias, N, C, S, activation?, alpha?, y?)
  void BiasGrad(const Napi::CallbackInfo& info) {
    Args a(info, "biasGrad");
    const int N = a.Size(2, "N"), C = a.Size(3, "C"), S = a.Size(4, "S");
    const size_t size = a.Product(N, C, S);
    float* dy = a.Array<float>(0, "dy", size);
    float* dbias = a.Array<float>(1, "dbias", C);
    const int activation = FusedActivation(a, 5);
    const float* y = activation == normlab::kNoActivation ? nullptr : a.Array<float>(7, "y", size);
    normlab::bias_grad(dy, dbias, N, C, S, activation, FusedAlpha(a, 6), y);
  }

  // batchNormForwardTrain(x, y, N, C, S, gamma, beta, runningMean, runningVar,
  //                       momentum, eps, updateRunning, saveMean, saveRstd, activation?, alpha?)
  void BatchNormForwardTrain(const Napi::CallbackInfo& info) {
    Args a(info, "batchNormForwardTrain");
    const int N = a.Size(2, "N"), C = a.Size(3, "C"), S = a.Size(4, "S");
    const size_t size = a.Product(N, C, S);
    const float* x = a.Array<float>(0, "x", size);
    float* y = a.Array<float>(1, "y", size);
    const float* gamma = a.Array<float>(5, "gamma", C, true);
    const float* beta = a.Array<float>(6, "beta", C, true);
    float* running_mean = a.Array<float>(7, "runningMean", C);
    float* running_var = a.Array<float>(8, "runningVar", C);
    const double momentum = a.Number(9, "momentum"), eps = a.Number(10, "eps");
    const bool update_running = a.Flag(11, "updateRunning");
    float* save_mean = a.Array<float>(12, "saveMean", C);
    float* save_rstd = a.Array<float>(13, "saveRstd", C);
    const size_t per_channel = a.Product(N, S);
    if (C > 0 && per_channel < (update_running ? 2u : 1u)) {
      a.RangeError("needs " + std::string(update_running ? "two values" : "a value") +
                   " per channel (N*S = " + std::to_string(per_channel) + ")");
    }
    normlab::batchnorm_forward_train(x, y, N, C, S, gamma, beta, running_mean, running_var, momentum,
                                     eps, update_running, save_mean, save_rstd,
                                     FusedActivation(a, 14), FusedAlpha(a, 15), nullptr);
  }

  // batchRenormForwardTrain(x, y, N, C, S, gamma, beta, runningMean, runningVar, momentum, eps,
  //                         rMax, dMax, updateRunning, saveMean, saveRstd, saveR, saveD, activation?, alpha?)
  void BatchRenormForwardTrain(const Napi::CallbackInfo& info) {
    Args a(info, "batchRenormForwardTrain");
    const int N = a.Size(2, "N"), C = a.Size(3, "C"), S = a.Size(4, "S");
    const size_t size = a.Product(N, C, S);
    const float* x = a.Array<float>(0, "x", size);
    float* y = a.Array<float>(1, "y", size);
    const float* gamma = a.Array<float>(5, "gamma", C, true);
    const float* beta = a.Array<float>(6, "beta", C, true);
    float* running_mean = a.Array<float>(7, "runningMean", C);
    float* running_var = a.Array<float>(8, "runningVar", C);
    const double momentum = a.Number(9, "momentum"), eps = a.Number(10, "eps");
    const double r_max = a.Number(11, "rMax"), d_max = a.Number(12, "dMax");
    const bool update_running = a.Flag(13, "updateRunning");
    float* save_mean = a.Array<float>(14, "saveMean", C);
    float* save_rstd = a.Array<float>(15, "saveRstd", C);
    const normlab::RenormClip renorm{r_max, d_max, a.Array<float>(16, "saveR", C), a.Array<float>(17, "saveD", C)};
    if (!(r_max >= 1.0)) a.RangeError("rMax must be at least 1");
    if (!(d_max >= 0.0)) a.RangeError("dMax must be at least 0");
    const size_t per_channel = a.Product(N, S);
    if (C > 0 && per_channel < (update_running ? 2u : 1u)) {
      a.RangeError("needs " + std::string(update_running ? "two values" : "a value") +
                   " per channel (N*S = " + std::to_string(per_channel) + ")");
    }
    normlab::batchnorm_forward_train(x, y, N, C, S, gamma, beta, running_mean, running_var, momentum, eps,
                                     update_running, save_mean, save_rstd, FusedActivation(a, 18), FusedAlpha(a, 19),
                                     &renorm);
  }

  // batchNormForwardInfer(x, y, N, C, S, gamma, beta, runningMean, runningVar, eps)
  void BatchNormForwardInfer(const Napi::CallbackInfo& info) {
    Args a(info, "batchNormForwardInfer");
    const int N = a.Size(2, "N"), C = a.Size(3, "C"), S = a.Size(4, "S");
    const size_t size = a.Product(N, C, S);
    const float* x = a.Array<float>(0, "x", size);
    float* y = a.Array<float>(1, "y", size);
    const float* gamma = a.Array<float>(5, "gamma", C, true);
    const float* beta = a.Array<float>(6, "beta", C, true);
    const float* running_mean = a.Array<float>(7, "runningMean", C);
    const float* running_var = a.Array<float>(8, "runningVar", C);
    const double eps = a.Number(9, "eps");
    normlab::batchnorm_forward_infer(x, y, N, C, S, gamma, beta, running_mean, running_var, eps);
  }

  // batchNormBackward(x, dy, dx, N, C, S, gamma, saveMean, saveRstd, saveR, saveD, dgamma, dbeta,
  //                   activation?, alpha?, y?)
  void BatchNormBackward(const Napi::CallbackInfo& info) {
    Args a(info, "batchNormBackward");
    const int N = a.Size(3, "N"), C = a.Size(4, "C"), S = a.Size(5, "S");
    const size_t size = a.Product(N, C, S);
    const float* x = a.Array<float>(0, "x", size);
    const float* dy = a.Array<float>(1, "dy", size);
    float* dx = a.Array<float>(2, "dx", size);
    const float* gamma = a.Array<float>(6, "gamma", C, true);
    const float* save_mean = a.Array<float>(7, "saveMean", C);
    const float* save_rstd = a.Array<float>(8, "saveRstd", C);
    const float* save_r = a.Array<float>(9, "saveR", C, true);
    const float* save_d = a.Array<float>(10, "saveD", C, true);
    if ((save_r == nullptr) != (save_d == nullptr)) a.TypeError("saveR and saveD go together");
    float* dgamma = a.Array<float>(11, "dgamma", C, true);
    float* dbeta = a.Array<float>(12, "dbeta", C, true);
    if (C > 0 && a.Product(N, S) == 0) a.RangeError("needs a value per channel (N*S = 0)");
    const int activation = FusedActivation(a, 13);
    const float* y = activation == normlab::kNoActivation ? nullptr : a.Array<float>(15, "y", size);
    normlab::batchnorm_backward(x, dy, dx, N, C, S, gamma, save_mean, save_rstd, save_r, save_d, dgamma, dbeta,
                                activation, FusedAlpha(a, 14), y);
  }

  // batchNormUpdateRunning(runningMean, runningVar, mean, variance, C, momentum, count)
  void BatchNormUpdateRunning(const Napi::CallbackInfo& info) {
    Args a(info, "batchNormUpdateRunning");
    const int C = a.Size(4, "C");
    float* running_mean = a.Array<float>(0, "runningMean", C);
    float* running_var = a.Array<float>(1, "runningVar", C);
    const double* mean = a.Array<double>(2, "mean", C);
    const double* var = a.Array<double>(3, "variance", C);
    const double momentum = a.Number(5, "momentum");
    const int count = a.Size(6, "count");
    if (count == 1) a.RangeError("count must be 0 (unbiased variance) or at least 2");
    normlab::batch_norm_update_running(running_mean, running_var, mean, var, C, momentum, count);
  }

  // channelShiftedSums(x, N, C, S, shift, sums)
  void ChannelShiftedSums(const Napi::CallbackInfo& info) {
    Args a(info, "channelShiftedSums");
    const int N = a.Size(1, "N"), C = a.Size(2, "C"), S = a.Size(3, "S");
    const float* x = a.Array<float>(0, "x", a.Product(N, C, S));
    const double* shift = a.Array<double>(4, "shift", C);
    double* sums = a.Array<double>(5, "sums", a.Product(2, C));
    normlab::channel_shifted_sums(x, N, C, S, shift, sums);
  }

  // batchNormBackwardFrozen(x, dy, dx, N, C, S, gamma, runningMean, runningVar, eps, dgamma, dbeta, activation?, alpha?, y?)
  void BatchNormBackwardFrozen(const Napi::CallbackInfo& info) {
    Args a(info, "batchNormBackwardFrozen");
    const int N = a.Size(3, "N"), C = a.Size(4, "C"), S = a.Size(5, "S");
    const size_t size = a.Product(N, C, S);
    const float* x = a.Array<float>(0, "x", size);
    const float* dy = a.Array<float>(1, "dy", size);
    float* dx = a.Array<float>(2, "dx", size);
    const float* gamma = a.Array<float>(6, "gamma", C, true);
    const float* running_mean = a.Array<float>(7, "runningMean", C);
    const float* running_var = a.Array<float>(8, "runningVar", C);
    const double eps = a.Number(9, "eps");
    float* dgamma = a.Array<float>(10, "dgamma", C, true);
    float* dbeta = a.Array<float>(11, "dbeta", C, true);
    const int activation = FusedActivation(a, 12);
    const float* y = activation == normlab::kNoActivation ? nullptr : a.Array<float>(14, "y", size);
    normlab::batchnorm_backward_frozen(x, dy, dx, N, C, S, gamma, running_mean, running_var, eps, dgamma, dbeta,
                                       activation, FusedAlpha(a, 13), y);
  }

  // batchNormBackwardGhost(x, dy, dx, N, C, S, virtualBatch, gamma, saveMean, saveRstd, saveR, saveD,
  //                        dgamma, dbeta, scratch, activation?, alpha?, y?)
  void BatchNormBackwardGhost(const Napi::CallbackInfo& info) {
    Args a(info, "batchNormBackwardGhost");
    const int N = a.Size(3, "N"), C = a.Size(4, "C"), S = a.Size(5, "S"), vb = a.Size(6, "virtualBatch");
    if (vb < 1 || N < vb) {
      a.RangeError("needs 1 <= virtualBatch <= N (virtualBatch = " + std::to_string(vb) + ", N = " + std::to_string(N) + ")");
    }
    const size_t size = a.Product(N, C, S);
    const size_t stats = a.Product(N / vb, C);
    const float* x = a.Array<float>(0, "x", size);
    const float* dy = a.Array<float>(1, "dy", size);
    float* dx = a.Array<float>(2, "dx", size);
    const float* gamma = a.Array<float>(7, "gamma", C, true);
    const float* save_mean = a.Array<float>(8, "saveMean", stats);
    const float* save_rstd = a.Array<float>(9, "saveRstd", stats);
    const float* save_r = a.Array<float>(10, "saveR", stats, true);
    const float* save_d = a.Array<float>(11, "saveD", stats, true);
    if ((save_r == nullptr) != (save_d == nullptr)) a.TypeError("saveR and saveD go together");
    float* dgamma = a.Array<float>(12, "dgamma", C, true);
    float* dbeta = a.Array<float>(13, "dbeta", C, true);
    float* scratch = a.Array<float>(14, "scratch", a.Product(2, C));
    const int activation = FusedActivation(a, 15);
    const float* y = activation == normlab::kNoActivation ? nullptr : a.Array<float>(17, "y", size);
    normlab::batchnorm_backward_ghost(x, dy, dx, N, C, S, vb, gamma, save_mean, save_rstd, save_r, save_d, dgamma, dbeta,
                                      scratch, activation, FusedAlpha(a, 16), y);
  }

  static int ActivationKind(const Args& a, size_t i) {
    const int kind = a.Size(i, "kind");
    if (kind > normlab::kSigmoid) a.RangeError("unknown activation kind " + std::to_string(kind));
    return kind;
  }

  // activationForward(kind, x, y, n, alpha)
  void ActivationForward(const Napi::CallbackInfo& info) {
    Args a(info, "activationForward");
    const int kind = ActivationKind(a, 0);
    const int n = a.Size(3, "n");
    const float* x = a.Array<float>(1, "x", n);
    float* y = a.Array<float>(2, "y", n);
    const float alpha = (float)a.Number(4, "alpha");
    normlab::activation_forward(kind, x, y, n, alpha);
  }

  // activationBackward(kind, x, y, dy, dx, n, alpha)
  void ActivationBackward(const Napi::CallbackInfo& info) {
    Args a(info, "activationBackward");
    const int kind = ActivationKind(a, 0);
    const int n = a.Size(5, "n");
    const float* x = a.Array<float>(1, "x", n);
    const float* y = a.Array<float>(2, "y", n);
    const float* dy = a.Array<float>(3, "dy", n);
    float* dx = a.Array<float>(4, "dx", n);
    const float alpha = (float)a.Number(6, "alpha");
    normlab::activation_backward(kind, x, y, dy, dx, n, alpha);
  }

  // dropoutForward(x, y, mask, n, rate, rngState)
  void DropoutForward(const Napi::CallbackInfo& info) {
    Args a(info, "dropoutForward");
    const int n = a.Size(3, "n");
    const float* x = a.Array<float>(0, "x", n);
    float* y = a.Array<float>(1, "y", n);
    float* mask = a.Array<float>(2, "mask", n);
    const double rate = a.Number(4, "rate");
    uint32_t* state = a.Array<uint32_t>(5, "rngState", 4);
    if (!(rate >= 0.0 && rate < 1.0)) a.RangeError("rate must be in [0, 1)");
    normlab::dropout_forward(x, y, mask, n, rate, state);
  }

  // multiply(a, b, out, n)
  void Multiply(const Napi::CallbackInfo& info) {
    Args a(info, "multiply");
    const int n = a.Size(3, "n");
    const float* x = a.Array<float>(0, "a", n);
    const float* y = a.Array<float>(1, "b", n);
    float* out = a.Array<float>(2, "out", n);
    normlab::multiply(x, y, out, n);
  }

  // gatherRows(src, srcLabels, rows, start, n, features, dst, dstLabels)
  void GatherRows(const Napi::CallbackInfo& info) {
    Args a(info, "gatherRows");
    const int start = a.Size(3, "start"), n = a.Size(4, "n"), features = a.Size(5, "features");
    const int32_t* rows = a.Array<int32_t>(2, "rows", (size_t)start + n);
    size_t src_length;
    const float* src = a.Array<float>(0, "src", 0, false, &src_length);
    const size_t src_rows = features == 0 ? 0 : src_length / features;
    const int32_t* src_labels = a.Array<int32_t>(1, "srcLabels", src_rows);
    float* dst = a.Array<float>(6, "dst", a.Product(n, features));
    int32_t* dst_labels = a.Array<int32_t>(7, "dstLabels", n);
    for (int i = 0; i < n; i++) {
      if (rows[start + i] < 0 || (size_t)rows[start + i] >= src_rows) {
        a.RangeError("row " + std::to_string(rows[start + i]) + " is outside the " + std::to_string(src_rows) + " source rows");
      }
    }
    normlab::gather_rows(src, src_labels, rows, start, n, features, dst, dst_labels);
  }

  static void CheckLabels(const Args& a, const int32_t* labels, int N, int C) {
    for (int n = 0; n < N; n++) {
      if (labels[n] < 0 || labels[n] >= C) {
        a.RangeError("labels[" + std::to_string(n) + "] = " + std::to_string(labels[n]) +
                     " is outside [0, " + std::to_string(C) + ")");
      }
    }
  }

  // softmaxCrossEntropy(logits, labels, probs, N, C, correct) -> mean loss
  Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
    Args a(info, "softmaxCrossEntropy");
    const int N = a.Size(3, "N"), C = a.Size(4, "C");
    const size_t size = a.Product(N, C);
    const float* logits = a.Array<float>(0, "logits", size);
    const int32_t* labels = a.Array<int32_t>(1, "labels", N);
    float* probs = a.Array<float>(2, "probs", size);
    int32_t* correct = a.Array<int32_t>(5, "correct", 1, true);
    CheckLabels(a, labels, N, C);  // also rejects C = 0 when N > 0
    return Napi::Number::New(info.Env(), normlab::softmax_cross_entropy(logits, labels, probs, N, C, correct));
  }

  // softmaxRows(logits, out, N, C)
  void SoftmaxRows(const Napi::CallbackInfo& info) {
    Args a(info, "softmaxRows");
    const int N = a.Size(2, "N"), C = a.Size(3, "C");
    const size_t size = a.Product(N, C);
    normlab::softmax_rows(a.Array<float>(0, "logits", size), a.Array<float>(1, "out", size), N, C);
  }

  // softmaxCrossEntropyBackward(probs, labels, dlogits, N, C)
  void SoftmaxCrossEntropyBackward(const Napi::CallbackInfo& info) {
    Args a(info, "softmaxCrossEntropyBackward");
    const int N = a.Size(3, "N"), C = a.Size(4, "C");
    const size_t size = a.Product(N, C);
    const float* probs = a.Array<float>(0, "probs", size);
    const int32_t* labels = a.Array<int32_t>(1, "labels", N);
    float* dlogits = a.Array<float>(2, "dlogits", size);
    CheckLabels(a, labels, N, C);
    normlab::softmax_cross_entropy_backward(probs, labels, dlogits, N, C);
  }

  // sgdStep(param, grad, velocity, n, lr, momentum, nesterov, weightDecay)
  void SgdStep(const Napi::CallbackInfo& info) {
    Args a(info, "sgdStep");
    const int n = a.Size(3, "n");
    const double momentum = a.Number(5, "momentum");
    float* param = a.Array<float>(0, "param", n);
    const float* grad = a.Array<float>(1, "grad", n);
    // velocity is only touched with momentum, so it may be empty without.
    float* velocity = a.Array<float>(2, "velocity", momentum > 0 ? n : 0);
    const double lr = a.Number(4, "lr");
    const bool nesterov = a.Flag(6, "nesterov");
    const double weight_decay = a.Number(7, "weightDecay");
    normlab::sgd_step(param, grad, velocity, n, (float)lr, (float)momentum, nesterov, (float)weight_decay);
  }

  // adamStep(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step)
  void AdamStep(const Napi::CallbackInfo& info) {
    Args a(info, "adamStep");
    const int n = a.Size(4, "n");
    float* param = a.Array<float>(0, "param", n);
    const float* grad = a.Array<float>(1, "grad", n);
    float* m = a.Array<float>(2, "m", n);
    float* v = a.Array<float>(3, "v", n);
    const double lr = a.Number(5, "lr"), beta1 = a.Number(6, "beta1"), beta2 = a.Number(7, "beta2");
    const double eps = a.Number(8, "eps"), weight_decay = a.Number(9, "weightDecay");
    const int step = a.Size(10, "step");
    if (step < 1) a.RangeError("step counts from 1");
    normlab::adam_step(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step);
  }

  // ---------------------------------------------------------------------------
  // Convolution and pooling (conv.cc).

  // The gemm of the conv kernels: OpenBLAS for conv2d*, the built-in one for conv2d*Builtin.
  normlab::GemmChoice GemmFor(bool builtin) {
#ifdef NORMLAB_OPENBLAS
    if (!builtin) return {nullptr};
#else
    (void)builtin;
#endif
    return {&gemm_workspace_};
  }

  // The Winograd path's scratch for s (null when s does not take it), grown
  // as needed and kept for the next call; a RangeError when it cannot grow.
  float* WinogradScratch(const Args& a, const normlab::ConvShape& s) {
    if (!normlab::conv2d_winograd(s)) return nullptr;
    const size_t n = normlab::conv2d_winograd_floats(s);
    try {
      if (winograd_.size() < n) winograd_.resize(n);
    } catch (const std::bad_alloc&) {
      a.RangeError("cannot allocate " + std::to_string(n * sizeof(float)) + " bytes of Winograd scratch");
    }
    return winograd_.data();
  }

  // A RangeError for a kernel or stride below 1.
  static void CheckKernel(const Args& a, const normlab::ConvShape& s) {
    if (s.KH < 1 || s.KW < 1) a.RangeError("the kernel must be at least 1x1");
    if (s.stride_h < 1 || s.stride_w < 1) a.RangeError("the strides must be at least 1");
  }

  // The sizes N, C, H, W, F, KH, KW, strideH, strideW, padH, padW at i .. i+10.
  static normlab::ConvShape ConvShapeArgs(const Args& a, size_t i) {
    normlab::ConvShape s;
    s.N = a.Size(i, "N"); s.C = a.Size(i + 1, "C"); s.H = a.Size(i + 2, "H"); s.W = a.Size(i + 3, "W");
    s.F = a.Size(i + 4, "F"); s.KH = a.Size(i + 5, "KH"); s.KW = a.Size(i + 6, "KW");
    s.stride_h = a.Size(i + 7, "strideH"); s.stride_w = a.Size(i + 8, "strideW");
    s.pad_h = a.Size(i + 9, "padH"); s.pad_w = a.Size(i + 10, "padW");
    CheckKernel(a, s);
    const long oh = normlab::conv_out_size(s.H, s.KH, s.stride_h, s.pad_h);
    const long ow = normlab::conv_out_size(s.W, s.KW, s.stride_w, s.pad_w);
    if (oh < 1 || ow < 1) {
      a.RangeError("the " + std::to_string(s.KH) + "x" + std::to_string(s.KW) + " kernel does not fit the padded " +
                   std::to_string(2L * s.pad_h + s.H) + "x" + std::to_string(2L * s.pad_w + s.W) + " input");
    }
    // The gemm sizes (C*KH*KW, OH*OW) are ints.
    if (a.Product(s.C, s.KH, s.KW) > 2147483647u || a.Product(oh, ow) > 2147483647u) a.RangeError("sizes overflow");
    s.OH = (int)oh;
    s.OW = (int)ow;
    return s;
  }

  // conv2dForward(x, weight, bias, y, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW, col)
  void Conv2dForward(const Napi::CallbackInfo& info) { RunConv2dForward(info, "conv2dForward", false); }
  void Conv2dForwardBuiltin(const Napi::CallbackInfo& info) { RunConv2dForward(info, "conv2dForward", true); }

  void RunConv2dForward(const Napi::CallbackInfo& info, const char* fn, bool builtin) {
    Args a(info, fn);
    const normlab::ConvShape s = ConvShapeArgs(a, 4);
    const size_t taps = a.Product(s.C, s.KH, s.KW);
    const float* x = a.Array<float>(0, "x", a.Product(a.Product(s.N, s.C), s.H, s.W));
    const float* weight = a.Array<float>(1, "weight", a.Product(s.F, taps));
    const float* bias = a.Array<float>(2, "bias", s.F, true);
    float* y = a.Array<float>(3, "y", a.Product(a.Product(s.N, s.F), s.OH, s.OW));
    float* col = a.Array<float>(15, "col", a.Product(taps, s.OH, s.OW));
    normlab::conv2d_forward(GemmFor(builtin), s, x, weight, bias, y, col, WinogradScratch(a, s));
  }

  // conv2dBackward(x, weight, dy, dx, dweight, dbias, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW, col)
  void Conv2dBackward(const Napi::CallbackInfo& info) { RunConv2dBackward(info, "conv2dBackward", false); }
  void Conv2dBackwardBuiltin(const Napi::CallbackInfo& info) { RunConv2dBackward(info, "conv2dBackward", true); }

  void RunConv2dBackward(const Napi::CallbackInfo& info, const char* fn, bool builtin) {
    Args a(info, fn);
    const normlab::ConvShape s = ConvShapeArgs(a, 6);
    const size_t taps = a.Product(s.C, s.KH, s.KW);
    const size_t in_size = a.Product(a.Product(s.N, s.C), s.H, s.W);
    const float* x = a.Array<float>(0, "x", in_size);
    const float* weight = a.Array<float>(1, "weight", a.Product(s.F, taps));
    const float* dy = a.Array<float>(2, "dy", a.Product(a.Product(s.N, s.F), s.OH, s.OW));
    float* dx = a.Array<float>(3, "dx", in_size, true);
    float* dweight = a.Array<float>(4, "dweight", a.Product(s.F, taps));
    float* dbias = a.Array<float>(5, "dbias", s.F, true);
    float* col = a.Array<float>(17, "col", a.Product(taps, s.OH, s.OW));
    normlab::conv2d_backward(GemmFor(builtin), s, x, weight, dy, dx, dweight, dbias, col, WinogradScratch(a, s));
  }

  struct PoolShape {
    int N, C, H, W, size, stride, OH, OW;
    size_t in_size, out_size;
  };

  // The sizes N, C, H, W, size, stride at i .. i+5.
  static PoolShape PoolShapeArgs(const Args& a, size_t i) {
    PoolShape p;
    p.N = a.Size(i, "N"); p.C = a.Size(i + 1, "C"); p.H = a.Size(i + 2, "H"); p.W = a.Size(i + 3, "W");
    p.size = a.Size(i + 4, "size"); p.stride = a.Size(i + 5, "stride");
    if (p.size < 1 || p.stride < 1) a.RangeError("size and stride must be at least 1");
    if (p.size > p.H || p.size > p.W) {
      a.RangeError("the " + std::to_string(p.size) + "x" + std::to_string(p.size) + " window does not fit the " +
                   std::to_string(p.H) + "x" + std::to_string(p.W) + " input");
    }
    p.OH = (int)normlab::conv_out_size(p.H, p.size, p.stride, 0);
    p.OW = (int)normlab::conv_out_size(p.W, p.size, p.stride, 0);
    p.in_size = a.Product(a.Product(p.N, p.C), p.H, p.W);
    p.out_size = a.Product(a.Product(p.N, p.C), p.OH, p.OW);
    return p;
  }

  // maxPool2dForward(x, y, argmax, N, C, H, W, size, stride)
  void MaxPool2dForward(const Napi::CallbackInfo& info) {
    Args a(info, "maxPool2dForward");
    const PoolShape p = PoolShapeArgs(a, 3);
    const float* x = a.Array<float>(0, "x", p.in_size);
    float* y = a.Array<float>(1, "y", p.out_size);
    int32_t* argmax = a.Array<int32_t>(2, "argmax", p.out_size);
    normlab::maxpool2d_forward(x, y, argmax, p.N, p.C, p.H, p.W, p.size, p.stride);
  }

  // maxPool2dBackward(dy, argmax, dx, N, C, H, W, size, stride)
  void MaxPool2dBackward(const Napi::CallbackInfo& info) {
    Args a(info, "maxPool2dBackward");
    const PoolShape p = PoolShapeArgs(a, 3);
    const float* dy = a.Array<float>(0, "dy", p.out_size);
    const int32_t* argmax = a.Array<int32_t>(1, "argmax", p.out_size);
    float* dx = a.Array<float>(2, "dx", p.in_size);
    const long bad = normlab::maxpool2d_backward(dy, argmax, dx, p.N, p.C, p.H, p.W, p.size, p.stride);
    if (bad >= 0) {
      a.RangeError("argmax[" + std::to_string(bad) + "] = " + std::to_string(argmax[bad]) + " is outside [0, " +
                   std::to_string((long)p.H * p.W) + ")");
    }
  }

  // avgPool2dForward(x, y, N, C, H, W, size, stride)
  void AvgPool2dForward(const Napi::CallbackInfo& info) {
    Args a(info, "avgPool2dForward");
    const PoolShape p = PoolShapeArgs(a, 2);
    const float* x = a.Array<float>(0, "x", p.in_size);
    float* y = a.Array<float>(1, "y", p.out_size);
    normlab::avgpool2d_forward(x, y, p.N, p.C, p.H, p.W, p.size, p.stride);
  }

  // avgPool2dBackward(dy, dx, N, C, H, W, size, stride)
  void AvgPool2dBackward(const Napi::CallbackInfo& info) {
    Args a(info, "avgPool2dBackward");
    const PoolShape p = PoolShapeArgs(a, 2);
    const float* dy = a.Array<float>(0, "dy", p.out_size);
    float* dx = a.Array<float>(1, "dx", p.in_size);
    normlab::avgpool2d_backward(dy, dx, p.N, p.C, p.H, p.W, p.size, p.stride);
  }

  // globalAvgPoolForward(x, y, N, C, S)
  void GlobalAvgPoolForward(const Napi::CallbackInfo& info) {
    Args a(info, "globalAvgPoolForward");
    const int N = a.Size(2, "N"), C = a.Size(3, "C"), S = a.Size(4, "S");
    const float* x = a.Array<float>(0, "x", a.Product(N, C, S));
    float* y = a.Array<float>(1, "y", a.Product(N, C));
    if (a.Product(N, C) > 0 && S == 0) a.RangeError("needs a value per plane (S = 0)");
    normlab::global_avgpool_forward(x, y, N, C, S);
  }

  // globalAvgPoolBackward(dy, dx, N, C, S)
  void GlobalAvgPoolBackward(const Napi::CallbackInfo& info) {
    Args a(info, "globalAvgPoolBackward");
    const int N = a.Size(2, "N"), C = a.Size(3, "C"), S = a.Size(4, "S");
    const float* dy = a.Array<float>(0, "dy", a.Product(N, C));
    float* dx = a.Array<float>(1, "dx", a.Product(N, C, S));
    normlab::global_avgpool_backward(dy, dx, N, C, S);
  }

  // The cells' sizes: rows N, units H; `gate` values per row are gates*H.
  struct CellSizes { int N, H; size_t state, gate; };
  static CellSizes Cell(Args& a, size_t n_index, int gates) {
    const int N = a.Size(n_index, "N"), H = a.Size(n_index + 1, "H");
    return {N, H, a.Product(N, H), a.Product(N, H, gates)};
  }

  // lstmCellForward(xg, hg, cPrev, gates, c, N, H)
  void LstmCellForward(const Napi::CallbackInfo& info) {
    Args a(info, "lstmCellForward");
    const CellSizes s = Cell(a, 5, 4);
    normlab::lstm_cell_forward(a.Array<float>(0, "xg", s.gate), a.Array<float>(1, "hg", s.gate),
                               a.Array<float>(2, "cPrev", s.state), a.Array<float>(3, "gates", s.gate),
                               a.Array<float>(4, "c", s.state), s.N, s.H);
  }

  // lstmOutputForward(gates, z, h, N, H)
  void LstmOutputForward(const Napi::CallbackInfo& info) {
    Args a(info, "lstmOutputForward");
    const CellSizes s = Cell(a, 3, 4);
    normlab::lstm_output_forward(a.Array<float>(0, "gates", s.gate), a.Array<float>(1, "z", s.state),
                                 a.Array<float>(2, "h", s.state), s.N, s.H);
  }

  // lstmOutputBackward(gates, z, dh, dhNext, dz, dgates, N, H)
  void LstmOutputBackward(const Napi::CallbackInfo& info) {
    Args a(info, "lstmOutputBackward");
    const CellSizes s = Cell(a, 6, 4);
    normlab::lstm_output_backward(a.Array<float>(0, "gates", s.gate), a.Array<float>(1, "z", s.state),
                                  a.Array<float>(2, "dh", s.state, true), a.Array<float>(3, "dhNext", s.state, true),
                                  a.Array<float>(4, "dz", s.state), a.Array<float>(5, "dgates", s.gate), s.N, s.H);
  }

  // lstmCellBackward(gates, cPrev, dz, dcNext, dgates, dcPrev, N, H)
  void LstmCellBackward(const Napi::CallbackInfo& info) {
    Args a(info, "lstmCellBackward");
    const CellSizes s = Cell(a, 6, 4);
    normlab::lstm_cell_backward(a.Array<float>(0, "gates", s.gate), a.Array<float>(1, "cPrev", s.state),
                                a.Array<float>(2, "dz", s.state), a.Array<float>(3, "dcNext", s.state, true),
                                a.Array<float>(4, "dgates", s.gate), a.Array<float>(5, "dcPrev", s.state), s.N, s.H);
  }

  // gruCellForward(xg, hg, hPrev, gates, h, N, H)
  void GruCellForward(const Napi::CallbackInfo& info) {
    Args a(info, "gruCellForward");
    const CellSizes s = Cell(a, 5, 3);
    normlab::gru_cell_forward(a.Array<float>(0, "xg", s.gate), a.Array<float>(1, "hg", s.gate),
                              a.Array<float>(2, "hPrev", s.state), a.Array<float>(3, "gates", s.gate),
                              a.Array<float>(4, "h", s.state), s.N, s.H);
  }

  // gruCellBackward(gates, hg, hPrev, dh, dhNext, dxg, dhg, dhPrev, N, H)
  void GruCellBackward(const Napi::CallbackInfo& info) {
    Args a(info, "gruCellBackward");
    const CellSizes s = Cell(a, 8, 3);
    normlab::gru_cell_backward(a.Array<float>(0, "gates", s.gate), a.Array<float>(1, "hg", s.gate),
                               a.Array<float>(2, "hPrev", s.state), a.Array<float>(3, "dh", s.state, true),
                               a.Array<float>(4, "dhNext", s.state, true), a.Array<float>(5, "dxg", s.gate),
                               a.Array<float>(6, "dhg", s.gate), a.Array<float>(7, "dhPrev", s.state), s.N, s.H);
  }

  static int CellActivation(Args& a, size_t i) {
    const double kind = a.Number(i, "activation");
    if (kind != (double)normlab::kTanh && kind != (double)normlab::kRelu) a.RangeError("activation must be tanh or relu");
    return (int)kind;
  }

  // rnnCellForward(xg, hg, h, N, H, activation)
  void RnnCellForward(const Napi::CallbackInfo& info) {
    Args a(info, "rnnCellForward");
    const CellSizes s = Cell(a, 3, 1);
    const int activation = CellActivation(a, 5);
    normlab::rnn_cell_forward(a.Array<float>(0, "xg", s.state), a.Array<float>(1, "hg", s.state),
                              a.Array<float>(2, "h", s.state), s.N, s.H, activation);
  }

  // rnnCellBackward(h, dh, dhNext, da, N, H, activation)
  void RnnCellBackward(const Napi::CallbackInfo& info) {
    Args a(info, "rnnCellBackward");
    const CellSizes s = Cell(a, 4, 1);
    const int activation = CellActivation(a, 6);
    normlab::rnn_cell_backward(a.Array<float>(0, "h", s.state), a.Array<float>(1, "dh", s.state, true),
                               a.Array<float>(2, "dhNext", s.state, true), a.Array<float>(3, "da", s.state),
                               s.N, s.H, activation);
  }
};

}  // namespace

NODE_API_ADDON(NormLabAddon)
