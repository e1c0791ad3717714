// Which instruction set the hand-written kernels (the built-in sgemm, the
// inference kernels) run on. The addon is built for the baseline of its
// target (x86-64: SSE2); the AVX2/FMA and AVX-512 kernels are compiled for
// their instruction sets function by function and chosen at run time, so one
// build runs on any x86-64 CPU. Other architectures have the baseline only.
#pragma once

namespace normlab {

enum class Isa { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The best kernels this CPU (and OS) can run.
Isa best_isa();
const char* isa_name(Isa isa);
// The Isa named "baseline", "avx2" or "avx512"; false for any other name.
bool parse_isa(const char* name, Isa* out);

}  // namespace normlab
