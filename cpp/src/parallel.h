// parallel.h: the two tools the scans of large logs share (internal).
//
// * WorkerCount / PartsFor / RunParts: split a scan into parts that
//   threads take in turn.  The parts write disjoint outputs that the
//   caller merges in part order, so a result never depends on the number
//   of threads or on which thread ran which part.
// * ScratchArray: an uninitialised array for the big temporary buffers of
//   one computation.  From a few MiB up it is mapped with transparent huge
//   pages advised: the first touch then faults once per 2 MiB instead of
//   once per 4 KiB, which for a buffer written once and read once is most
//   of its cost.
//
// The number of threads is the machine's (at most 8), or the value of the
// environment variable CRMFLOW_THREADS (1 = everything on the calling
// thread), read once, or what SetWorkerThreads (analytics.h) set.

#ifndef CRMFLOW_SRC_PARALLEL_H_
#define CRMFLOW_SRC_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace crmflow {
namespace internal {

// The default number of threads: CRMFLOW_THREADS, else the machine's
// cores, at most 8 (read once).
inline int DefaultWorkerCount() {
  static const int count = [] {
    if (const char* env = std::getenv("CRMFLOW_THREADS")) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && v >= 1) {
        return static_cast<int>(std::min<long>(v, 64));
      }
    }
    const unsigned hw = std::thread::hardware_concurrency();
    return static_cast<int>(std::clamp(hw, 1u, 8u));
  }();
  return count;
}

// Set by SetWorkerThreads (analytics.h); 0 = the default.
inline std::atomic<int>& WorkerCountOverride() {
  static std::atomic<int> value{0};
  return value;
}

// Threads a scan may use (>= 1).
inline int WorkerCount() {
  const int set = WorkerCountOverride().load(std::memory_order_relaxed);
  return set > 0 ? set : DefaultWorkerCount();
}

// How many parts to split `work` items into: one per `min_per_part`
// items, at most `per_thread` per thread, and one when there is a single
// thread or too little work to repay starting one (tens of microseconds).
inline int PartsFor(int64_t work, int per_thread = 4,
                    int64_t min_per_part = int64_t{1} << 16) {
  if (WorkerCount() == 1) return 1;
  const int64_t parts = work / std::max<int64_t>(min_per_part, 1);
  return static_cast<int>(std::clamp<int64_t>(
      parts, 1, static_cast<int64_t>(WorkerCount()) * per_thread));
}

// Calls fn(p) for every p in [0, parts) and returns when all are done.
// The calling thread and up to WorkerCount() - 1 others take parts in
// turn from a shared counter, so a thread the system leaves waiting
// delays the end by one part at most: give a scan a few parts per thread.
// When the system refuses a thread, the others take its share.  When
// `fn` throws (std::bad_alloc from a part's buffers, on any thread), no
// further part is started, every thread is joined, and the first
// exception is rethrown here: escaping a thread would end the process.
template <typename Fn>
void RunParts(int parts, Fn&& fn) {
  const int helpers = std::min(parts, WorkerCount()) - 1;
  if (helpers <= 0) {
    for (int p = 0; p < parts; ++p) fn(p);
    return;
  }
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr failure;  // written by the one thread that set failed
  auto work = [&] {
    try {
      for (int p; (p = next.fetch_add(1, std::memory_order_relaxed)) < parts;) {
        fn(p);
      }
    } catch (...) {
      next.store(parts, std::memory_order_relaxed);
      if (!failed.exchange(true)) failure = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(helpers));
  for (int h = 0; h < helpers; ++h) {
    try {
      threads.emplace_back(work);
    } catch (const std::exception&) {  // system_error, or bad_alloc
      break;
    }
  }
  work();
  for (std::thread& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
}

// Splits [0, n) into `parts` ranges of about equal weight, where
// prefix(i) is the total weight of items [0, i) (non-decreasing, prefix(0)
// == 0).  Returns parts + 1 bounds.
template <typename PrefixFn>
std::vector<int64_t> SplitByWeight(int64_t n, int parts, PrefixFn prefix) {
  std::vector<int64_t> bounds(static_cast<size_t>(parts) + 1, n);
  bounds[0] = 0;
  const int64_t total = prefix(n);
  int64_t lo = 0;
  for (int p = 1; p < parts; ++p) {
    const int64_t want = total / parts * p;
    int64_t hi = n;
    // First i >= lo with prefix(i) >= want.
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (prefix(mid) < want) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    bounds[p] = lo;
  }
  return bounds;
}

// Calls fn(i) for every i in [0, n), in ranges of about equal total
// weight(i) (a cost, >= 0) that RunParts spreads over the threads.
template <typename WeightFn, typename Fn>
void ForEachWeighted(int64_t n, WeightFn weight, Fn&& fn) {
  std::vector<int64_t> prefix(static_cast<size_t>(n) + 1, 0);
  for (int64_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + weight(i);
  const int parts = PartsFor(prefix.back());
  const std::vector<int64_t> bounds = SplitByWeight(
      n, parts, [&prefix](int64_t i) { return prefix[i]; });
  RunParts(parts, [&](int p) {
    for (int64_t i = bounds[p]; i < bounds[p + 1]; ++i) fn(i);
  });
}

// An uninitialised array of n trivially copyable T (see the file
// comment).  Throws std::bad_alloc when memory is exhausted.
template <typename T>
class ScratchArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  ScratchArray() = default;
  explicit ScratchArray(size_t n) { Allocate(n); }
  ScratchArray(ScratchArray&& other) noexcept { *this = std::move(other); }
  ScratchArray& operator=(ScratchArray&& other) noexcept {
    if (this != &other) {
      Release();
      data_ = std::exchange(other.data_, nullptr);
      map_ = std::exchange(other.map_, nullptr);
      map_bytes_ = std::exchange(other.map_bytes_, 0);
    }
    return *this;
  }
  ScratchArray(const ScratchArray&) = delete;
  ScratchArray& operator=(const ScratchArray&) = delete;
  ~ScratchArray() { Release(); }

  T* get() const { return data_; }
  T& operator[](size_t i) const { return data_[i]; }

 private:
  static constexpr size_t kHuge = size_t{2} << 20;
  // Below this a buffer is plain new[]: a huge page would be mostly slack.
  static constexpr size_t kMinMapped = size_t{2} << 20;

  void Allocate(size_t n) {
    if (n == 0) return;
    if (n > SIZE_MAX / sizeof(T) - kHuge) throw std::bad_alloc();
    const size_t bytes = n * sizeof(T);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kMinMapped) {
      // Map one huge page more than needed, then keep a 2 MiB-aligned
      // window: only aligned 2 MiB ranges can be backed by huge pages.
      const size_t want = (bytes + kHuge - 1) / kHuge * kHuge;
      void* raw = mmap(nullptr, want + kHuge, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (raw != MAP_FAILED) {
        char* base = static_cast<char*>(raw);
        char* start = reinterpret_cast<char*>(
            (reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~(kHuge - 1));
        const size_t head = static_cast<size_t>(start - base);
        if (head > 0) munmap(base, head);
        const size_t tail = kHuge - head;
        if (tail > 0) munmap(start + want, tail);
        madvise(start, want, MADV_HUGEPAGE);  // advice only; may be refused
        map_ = start;
        map_bytes_ = want;
        data_ = reinterpret_cast<T*>(start);
        return;
      }
    }
#endif
    data_ = new T[n];
  }

  void Release() {
#if defined(__linux__)
    if (map_ != nullptr) {
      munmap(map_, map_bytes_);
      map_ = nullptr;
      data_ = nullptr;
      return;
    }
#endif
    delete[] data_;
    data_ = nullptr;
  }

  T* data_ = nullptr;
  char* map_ = nullptr;  // set when data_ is a mapping
  size_t map_bytes_ = 0;
};

}  // namespace internal
}  // namespace crmflow

#endif  // CRMFLOW_SRC_PARALLEL_H_
