// parallel_test.cc: the thread helpers the scans of large logs use
// (cpp/src/parallel.h): every part runs once, an exception on any thread
// comes back to the caller, weight splits cover their range.

#include "parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <new>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include "crmflow/analytics.h"

namespace crmflow {
namespace {

class ParallelTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SetWorkerThreads(GetParam()); }
  void TearDown() override { SetWorkerThreads(0); }
};

TEST_P(ParallelTest, EveryPartRunsOnce) {
  EXPECT_EQ(internal::WorkerCount(), GetParam());
  for (int parts : {1, 2, 3, 7, 50}) {
    std::vector<std::atomic<int>> runs(parts);
    internal::RunParts(parts, [&](int p) { runs[p].fetch_add(1); });
    for (int p = 0; p < parts; ++p) EXPECT_EQ(runs[p].load(), 1) << p;
  }
}

TEST_P(ParallelTest, AnExceptionOnAnyThreadReachesTheCaller) {
  // Part 5 fails; with one thread it runs on the caller, with more
  // usually on another thread.  Either way the call throws it, after
  // every thread has stopped.
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> started{0};
  EXPECT_THROW(internal::RunParts(40,
                                  [&](int p) {
                                    started.fetch_add(1);
                                    if (p == 5) throw std::bad_alloc();
                                  }),
               std::bad_alloc);
  EXPECT_GE(started.load(), 6);
  EXPECT_LE(started.load(), 40);
  // A failure on the caller's own part as well.  Each helper holds its
  // first part until the caller has thrown, so there are fewer helpers
  // than parts and the caller surely takes one (without the wait the
  // helpers could finish all three before the caller starts).
  std::atomic<bool> thrown{false};
  EXPECT_THROW(
      internal::RunParts(3,
                         [&](int) {
                           if (std::this_thread::get_id() == caller) {
                             thrown.store(true);
                             throw std::runtime_error("here");
                           }
                           const auto give_up =
                               std::chrono::steady_clock::now() +
                               std::chrono::seconds(10);
                           while (!thrown.load() &&
                                  std::chrono::steady_clock::now() < give_up) {
                             std::this_thread::yield();
                           }
                         }),
      std::runtime_error);
  EXPECT_TRUE(thrown.load());
}

INSTANTIATE_TEST_SUITE_P(Threads, ParallelTest, ::testing::Values(1, 2, 4));

TEST(ParallelSplit, BoundsCoverTheRangeInOrder) {
  // Weights 1, 2, 3, ... : prefix(i) = i (i + 1) / 2.
  auto prefix = [](int64_t i) { return i * (i + 1) / 2; };
  for (int parts : {1, 2, 3, 8}) {
    const std::vector<int64_t> b =
        internal::SplitByWeight(1000, parts, prefix);
    ASSERT_EQ(b.size(), static_cast<size_t>(parts) + 1);
    EXPECT_EQ(b.front(), 0);
    EXPECT_EQ(b.back(), 1000);
    EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
    // Each bound is the first index whose prefix reaches its share.
    const int64_t total = prefix(1000);
    for (int p = 1; p < parts; ++p) {
      EXPECT_GE(prefix(b[p]), total / parts * p);
      EXPECT_LT(prefix(b[p] - 1), total / parts * p);
    }
  }
  // An empty range.
  const std::vector<int64_t> none =
      internal::SplitByWeight(0, 4, [](int64_t) { return int64_t{0}; });
  EXPECT_EQ(none, std::vector<int64_t>(5, 0));
}

TEST(ParallelScratch, SmallAndMappedBuffersHoldWhatIsWritten) {
  for (size_t n : {size_t{0}, size_t{10}, size_t{3} << 20}) {
    internal::ScratchArray<int64_t> a(n);
    for (size_t i = 0; i < n; ++i) a[i] = static_cast<int64_t>(i * 3);
    internal::ScratchArray<int64_t> b = std::move(a);
    EXPECT_EQ(a.get(), nullptr);
    int64_t sum = 0;
    for (size_t i = 0; i < n; ++i) sum += b[i];
    const int64_t m = static_cast<int64_t>(n);
    EXPECT_EQ(sum, m == 0 ? 0 : 3 * (m - 1) * m / 2);
  }
}

TEST(ParallelCount, PartsForFollowsWorkAndThreads) {
  SetWorkerThreads(1);
  EXPECT_EQ(internal::PartsFor(int64_t{1} << 30), 1);
  SetWorkerThreads(2);
  EXPECT_EQ(internal::PartsFor(131071), 1);
  EXPECT_EQ(internal::PartsFor(131072), 2);
  EXPECT_EQ(internal::PartsFor(int64_t{1} << 30), 8);     // 4 a thread
  EXPECT_EQ(internal::PartsFor(int64_t{1} << 30, 1), 2);  // 1 a thread
  SetWorkerThreads(0);
}

}  // namespace
}  // namespace crmflow
