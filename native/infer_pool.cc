// InferPool (infer_pool.h): a caller and one helper thread share a prediction.
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

void InferPool::post(void (*fn)(void*), void* arg) {
  fn_ = fn;
  arg_ = arg;
  posted_.store(posted_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  // seq_cst on both sides (here and in helper()) so that either the helper
  // sees the post before it sleeps or this sees it asleep and wakes it.
  if (sleeping_.load(std::memory_order_seq_cst)) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_one();
  }
}

void InferPool::finish() {
  const uint64_t g = posted_.load(std::memory_order_relaxed);
  uint64_t expected = g - 1;
  if (claimed_.compare_exchange_strong(expected, g, std::memory_order_acq_rel)) {
    fn_(arg_);
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
      fn_(arg_);
      helper_parts_.store(helper_parts_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      done_.store(g, std::memory_order_release);
    }
  }
}

}  // namespace normlab
