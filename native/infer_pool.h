// Two cores for one prediction (NORMLAB_INFER_THREADS=2): the caller runs one
// part of the work and a helper thread the other. Each output is one chain
// of multiply-adds (infer_tile.inc) whichever thread runs it, so the bytes
// are those of one thread, for any batch. How a dense chain is split (its
// rows, or each layer's output panels) is infer.h dense_chain's choice.
//
// The helper spins for kSpinNs after each part so the next layer or the next
// prediction finds it awake, then sleeps. A part the helper has not claimed by
// the time the caller finishes its own is run by the caller, so a sleeping
// helper never makes a prediction wait for it (one descheduled after claiming
// its part is waited for).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace normlab {

class InferPool {
 public:
  InferPool();
  ~InferPool();  // stops the helper and joins it
  InferPool(const InferPool&) = delete;
  InferPool& operator=(const InferPool&) = delete;

  // Runs first() on this thread and second() on the helper (or here, after
  // first(), when the helper has not claimed it); returns when both are done.
  template <typename F1, typename F2>
  void split(F1&& first, F2&& second) {
    post(&call<F2>, &second);
    first();
    finish();
  }
  // Parts posted (split calls) so far, and how many of them the helper ran.
  uint64_t posted_parts() const { return posted_.load(std::memory_order_relaxed); }
  uint64_t helper_parts() const { return helper_parts_.load(std::memory_order_relaxed); }

 private:
  static constexpr int64_t kSpinNs = 100'000;
  template <typename F>
  static void call(void* f) { (*static_cast<F*>(f))(); }
  void post(void (*fn)(void*), void* arg);
  void finish();
  void helper();

  // Generation g is posted when posted_ becomes g; whoever moves claimed_ from
  // g - 1 to g runs it; the helper sets done_ to g when it has.
  alignas(64) std::atomic<uint64_t> posted_{0};
  alignas(64) std::atomic<uint64_t> claimed_{0};
  alignas(64) std::atomic<uint64_t> done_{0};
  alignas(64) std::atomic<bool> sleeping_{false};
  std::atomic<uint64_t> helper_parts_{0};  // written by the helper only
  // The posted part: written by the caller before posted_, read by the claimer after it.
  void (*fn_)(void*) = nullptr;
  void* arg_ = nullptr;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;  // under mutex_
  std::thread thread_;
};

}  // namespace normlab
