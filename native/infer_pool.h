// Two cores for one dense prediction (NORMLAB_INFER_THREADS=2): each layer's
// output panels are split in two, the caller computes the first half and a
// helper thread the second, then both go on to the next layer. A lane's chain
// of multiply-adds (infer_tile.inc) is the same whichever thread runs it, so
// the bytes are those of one thread, for any batch.
//
// At batch 1 the weights stream from cache (1.07 MB for 784-256-256-10, more
// than one core's L2); split, each core keeps its half in its own L2. At large
// batches the multiply-adds split in two.
//
// The helper spins for kSpinNs after each half so the next layer or the next
// prediction finds it awake, then sleeps. A half the helper has not claimed by
// the time the caller finishes its own is run by the caller, so a sleeping or
// descheduled helper never makes a prediction wait for it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "cpu.h"
#include "infer.h"

namespace normlab {

class InferPool {
 public:
  InferPool();
  ~InferPool();  // stops the helper and joins it
  InferPool(const InferPool&) = delete;
  InferPool& operator=(const InferPool&) = delete;

  // dense_infer(isa, a) with a's panels shared between the caller and the helper.
  void dense(Isa isa, const DenseArgs& a);
  // Halves the helper has run so far (the rest of the split layers' second halves ran on the caller).
  uint64_t helper_halves() const { return helper_halves_.load(std::memory_order_relaxed); }

 private:
  static constexpr int64_t kSpinNs = 100'000;
  void helper();
  void run_task();

  // Generation g is posted when posted_ becomes g; whoever moves claimed_ from
  // g - 1 to g runs it; the helper sets done_ to g when it has.
  alignas(64) std::atomic<uint64_t> posted_{0};
  alignas(64) std::atomic<uint64_t> claimed_{0};
  alignas(64) std::atomic<uint64_t> done_{0};
  alignas(64) std::atomic<bool> sleeping_{false};
  std::atomic<uint64_t> helper_halves_{0};  // written by the helper only
  // Written by the caller before posted_, read by the claimer after it.
  Isa task_isa_ = Isa::kBaseline;
  DenseArgs task_{};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;  // under mutex_
  std::thread thread_;
};

}  // namespace normlab
