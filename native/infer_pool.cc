// InferPool (infer_pool.h): the caller and one helper thread split a dense
// layer's output panels.
#include "infer_pool.h"

#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace normlab {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Panels [p0, p1) of a as a layer of their own: the packed panels, bias and
// outputs are contiguous per panel, so a panel range is a narrower layer.
DenseArgs panel_range(const DenseArgs& a, int p0, int p1) {
  DenseArgs r = a;
  const int o0 = p0 * kPanel;
  r.N = std::min(a.N, p1 * kPanel) - o0;
  r.packed = a.packed + (size_t)p0 * a.K * kPanel;
  r.bias = a.bias ? a.bias + o0 : nullptr;
  r.y = a.y + o0;
  return r;
}

}  // namespace

InferPool::InferPool() : thread_([this] { helper(); }) {}

InferPool::~InferPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void InferPool::run_task() { dense_infer(task_isa_, task_); }

void InferPool::dense(Isa isa, const DenseArgs& a) {
  const int panels = (a.N + kPanel - 1) / kPanel;
  if (a.n == 0 || panels < 2) return dense_infer(isa, a);
  const int half = (panels + 1) / 2;
  task_isa_ = isa;
  task_ = panel_range(a, half, panels);
  const uint64_t g = posted_.load(std::memory_order_relaxed) + 1;
  posted_.store(g, std::memory_order_seq_cst);
  // seq_cst on both sides (here and in helper()) so that either the helper
  // sees g before it sleeps or this sees it asleep and wakes it.
  if (sleeping_.load(std::memory_order_seq_cst)) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_one();
  }
  dense_infer(isa, panel_range(a, 0, half));
  uint64_t expected = g - 1;
  if (claimed_.compare_exchange_strong(expected, g, std::memory_order_acq_rel)) {
    run_task();
    return;
  }
  while (done_.load(std::memory_order_acquire) != g) cpu_relax();
}

void InferPool::helper() {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = posted_.load(std::memory_order_acquire);
    if (g == seen) {
      const int64_t until = now_ns() + kSpinNs;
      for (int i = 1; (g = posted_.load(std::memory_order_acquire)) == seen; i++) {
        cpu_relax();
        if (i % 256 == 0 && now_ns() > until) break;
      }
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleeping_.store(true, std::memory_order_seq_cst);
      wake_.wait(lock, [&] { return stop_ || posted_.load(std::memory_order_seq_cst) != seen; });
      sleeping_.store(false, std::memory_order_relaxed);
      if (stop_) return;
      continue;
    }
    seen = g;
    uint64_t expected = g - 1;
    if (claimed_.compare_exchange_strong(expected, g, std::memory_order_acq_rel)) {
      run_task();
      helper_halves_.store(helper_halves_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      done_.store(g, std::memory_order_release);
    }
  }
}

}  // namespace normlab
