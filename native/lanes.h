// Vectors of L = 4 or 8 floats (and int32) in GCC vector types, lowered to
// SSE2, AVX2 or NEON as the enclosing clone allows, for the loops that work
// on L consecutive outputs at once (2x2 pooling in conv.cc, the Winograd
// transforms in winograd.cc): de-interleaving loads (even, odd), interleaving
// stores (lo, hi), and unaligned loads and stores. Only for functions inlined
// into their caller: the 32-byte vectors never cross a call, so GCC's ABI
// note (-Wpsabi) does not apply to the baseline clone.
#pragma once

#include <cstdint>
#include <cstring>

#pragma GCC diagnostic ignored "-Wpsabi"

namespace normlab {
namespace lanes {

template <int L> struct Lanes;
template <> struct Lanes<8> {
  typedef float F __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  static F even(F p, F q) { return __builtin_shufflevector(p, q, 0, 2, 4, 6, 8, 10, 12, 14); }
  static F odd(F p, F q) { return __builtin_shufflevector(p, q, 1, 3, 5, 7, 9, 11, 13, 15); }
  static F lo(F e, F o) { return __builtin_shufflevector(e, o, 0, 8, 1, 9, 2, 10, 3, 11); }
  static F hi(F e, F o) { return __builtin_shufflevector(e, o, 4, 12, 5, 13, 6, 14, 7, 15); }
  static constexpr I steps = {0, 2, 4, 6, 8, 10, 12, 14};
};
template <> struct Lanes<4> {
  typedef float F __attribute__((vector_size(16)));
  typedef int32_t I __attribute__((vector_size(16)));
  static F even(F p, F q) { return __builtin_shufflevector(p, q, 0, 2, 4, 6); }
  static F odd(F p, F q) { return __builtin_shufflevector(p, q, 1, 3, 5, 7); }
  static F lo(F e, F o) { return __builtin_shufflevector(e, o, 0, 4, 1, 5); }
  static F hi(F e, F o) { return __builtin_shufflevector(e, o, 2, 6, 3, 7); }
  static constexpr I steps = {0, 2, 4, 6};
};

template <typename V> inline V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V> inline void store(void* p, V v) { std::memcpy(p, &v, sizeof v); }

}  // namespace lanes
}  // namespace normlab
