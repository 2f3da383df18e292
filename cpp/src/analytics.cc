// analytics.cc: process-mining figures over an EventLog.

#include "crmflow/analytics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "parallel.h"

namespace crmflow {

namespace {

constexpr double kMicrosPerSecond = 1e6;
constexpr int64_t kMicrosPerDay = int64_t{86400} * 1000000;

// Orders name counts by count (descending), then name.
void SortNameCounts(std::vector<NameCount>* v) {
  std::sort(v->begin(), v->end(), [](const NameCount& a, const NameCount& b) {
    if (a.count != b.count) return a.count > b.count;
    return a.name < b.name;
  });
}

std::vector<NameCount> CountsToNames(const EventLog& log,
                                     const std::vector<int64_t>& counts) {
  std::vector<NameCount> out;
  for (size_t a = 0; a < counts.size(); ++a) {
    if (counts[a] > 0) {
      out.push_back(
          NameCount{log.activity_name(static_cast<int32_t>(a)), counts[a]});
    }
  }
  SortNameCounts(&out);
  return out;
}

// Maps (from, to) activity pairs to dense edge ids: a matrix for few
// activities, a hash map otherwise.
class EdgeIndex {
 public:
  explicit EdgeIndex(int32_t num_activities) : n_(num_activities) {
    if (static_cast<int64_t>(n_) * n_ <= (int64_t{1} << 20)) {
      dense_.assign(static_cast<size_t>(n_) * n_, -1);
    }
  }
  // Returns the id of the edge, creating it when new.
  int32_t Get(int32_t from, int32_t to) {
    int64_t key = static_cast<int64_t>(from) * n_ + to;
    if (!dense_.empty()) {
      int32_t& slot = dense_[key];
      if (slot < 0) {
        slot = static_cast<int32_t>(edges_.size());
        edges_.emplace_back(from, to);
      }
      return slot;
    }
    auto [it, inserted] =
        sparse_.try_emplace(key, static_cast<int32_t>(edges_.size()));
    if (inserted) edges_.emplace_back(from, to);
    return it->second;
  }
  const std::vector<std::pair<int32_t, int32_t>>& edges() const {
    return edges_;
  }

 private:
  int32_t n_;
  std::vector<int32_t> dense_;
  std::unordered_map<int64_t, int32_t> sparse_;
  std::vector<std::pair<int32_t, int32_t>> edges_;
};

constexpr int64_t kUntimed = INT64_MIN;

// Builds a DFG over items grouped by case.  `activity(i)` gives the
// activity of item i; `gap(i)` the time in microseconds from item i - 1 to
// item i, or kUntimed.
template <typename ActivityFn, typename GapFn>
Dfg BuildDfg(const EventLog& log, const std::vector<int64_t>& offsets,
             ActivityFn activity, GapFn gap) {
  const int32_t num_activities = log.activities().size();
  const int64_t n = offsets.back();
  EdgeIndex index(num_activities);
  std::vector<int32_t> pair_edge(n, -1);  // by the second item of a pair
  std::vector<int64_t> counts;
  std::vector<int64_t> timed;
  std::vector<int64_t> starts(num_activities, 0), ends(num_activities, 0);
  const size_t num_cases = offsets.size() - 1;
  for (size_t c = 0; c < num_cases; ++c) {
    const int64_t b = offsets[c], e = offsets[c + 1];
    if (b == e) continue;
    ++starts[activity(b)];
    ++ends[activity(e - 1)];
    int32_t prev = activity(b);
    for (int64_t i = b + 1; i < e; ++i) {
      int32_t cur = activity(i);
      int32_t id = index.Get(prev, cur);
      if (static_cast<size_t>(id) == counts.size()) {
        counts.push_back(0);
        timed.push_back(0);
      }
      ++counts[id];
      if (gap(i) != kUntimed) ++timed[id];
      pair_edge[i] = id;
      prev = cur;
    }
  }
  // Gaps of each edge, contiguous (CSR by edge id).
  const size_t num_edges = counts.size();
  std::vector<int64_t> pos(num_edges + 1, 0);
  for (size_t k = 0; k < num_edges; ++k) pos[k + 1] = pos[k] + timed[k];
  std::vector<int64_t> gaps(pos.back());
  std::vector<int64_t> fill(pos.begin(), pos.end() - 1);
  for (int64_t i = 0; i < n; ++i) {
    if (pair_edge[i] < 0) continue;
    int64_t g = gap(i);
    if (g != kUntimed) gaps[fill[pair_edge[i]]++] = g;
  }
  Dfg dfg;
  dfg.edges.reserve(num_edges);
  for (size_t k = 0; k < num_edges; ++k) {
    DfgEdge edge;
    edge.from = log.activity_name(index.edges()[k].first);
    edge.to = log.activity_name(index.edges()[k].second);
    edge.count = counts[k];
    edge.duration = ComputeDurationStats(
        std::span<int64_t>(gaps.data() + pos[k], timed[k]));
    dfg.edges.push_back(std::move(edge));
  }
  std::sort(dfg.edges.begin(), dfg.edges.end(),
            [](const DfgEdge& a, const DfgEdge& b) {
              if (a.count != b.count) return a.count > b.count;
              if (a.from != b.from) return a.from < b.from;
              return a.to < b.to;
            });
  dfg.start_activities = CountsToNames(log, starts);
  dfg.end_activities = CountsToNames(log, ends);
  return dfg;
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic
// Gregorian, day 0 = 1970-01-01).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Returns a dense, ordered number for the period holding `micros`.
int64_t PeriodKey(int64_t micros, Period period) {
  int64_t day = FloorDiv(micros, kMicrosPerDay);
  switch (period) {
    case Period::kDay:
      return day;
    case Period::kWeek:
      // 1970-01-01 was a Thursday; weeks start on Monday.
      return FloorDiv(day + 3, 7);
    case Period::kMonth: {
      int64_t y;
      unsigned m, d;
      CivilFromDays(day, &y, &m, &d);
      return y * 12 + (m - 1);
    }
  }
  return day;
}

Timestamp PeriodStart(int64_t key, Period period) {
  switch (period) {
    case Period::kDay:
      return Timestamp{key * kMicrosPerDay};
    case Period::kWeek:
      return Timestamp{(key * 7 - 3) * kMicrosPerDay};
    case Period::kMonth: {
      int64_t y = FloorDiv(key, 12);
      unsigned m = static_cast<unsigned>(key - y * 12) + 1;
      return Timestamp{DaysFromCivil(y, m, 1) * kMicrosPerDay};
    }
  }
  return Timestamp{};
}

}  // namespace

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

namespace {

// numpy's _lerp between the values at two neighbouring ranks: exact at
// both ends.
double Lerp(double a, double b, double frac) {
  return frac < 0.5 ? a + (b - a) * frac : b - (b - a) * (1 - frac);
}

// Returns the q-th percentile of `values` (q in [0, 1], values not empty)
// selecting only in values[from, n): requires every value before `from` to
// be <= every value from there on, and q * (n - 1) >= from.  The result is
// the one of a selection over the whole span.
double SelectPercentile(std::span<int64_t> values, size_t from, double q) {
  const size_t n = values.size();
  const double pos = q * static_cast<double>(n - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(lo);
  std::nth_element(values.begin() + from, values.begin() + lo, values.end());
  const double a = static_cast<double>(values[lo]);
  if (frac == 0 || lo + 1 >= n) return a;
  const double b = static_cast<double>(
      *std::min_element(values.begin() + lo + 1, values.end()));
  return Lerp(a, b, frac);
}

}  // namespace

std::optional<double> Percentile(std::span<int64_t> values, double q) {
  if (values.empty()) return std::nullopt;
  return SelectPercentile(values, 0, std::clamp(q, 0.0, 1.0));
}

namespace {

// Stores in out[i] the value of rank ranks[i] (ascending, each < n) of
// `v`, all of whose values lie in [lo, hi].  Two passes instead of one
// nth_element per rank: a histogram of the values' high bits gives the
// bucket of each rank, a second pass gathers those few buckets, and the
// selection runs on them alone.  Exact for any data; only the speed
// depends on it (one bucket holding most values costs what nth_element
// over the whole span would).
void SelectRanks(std::span<const int64_t> v, int64_t lo, int64_t hi,
                 const size_t* ranks, int k, int64_t* out) {
  constexpr int kMaxBits = 11;
  const size_t n = v.size();
  const int bits =
      std::clamp(static_cast<int>(std::bit_width(n)) - 2, 4, kMaxBits);
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  const int shift = std::max(0, static_cast<int>(std::bit_width(range)) - bits);
  const size_t num_buckets = size_t{1} << bits;
  uint32_t hist[size_t{1} << kMaxBits];
  std::fill(hist, hist + num_buckets, 0);
  auto bucket = [&](int64_t x) {
    return static_cast<size_t>(
        (static_cast<uint64_t>(x) - static_cast<uint64_t>(lo)) >> shift);
  };
  for (int64_t x : v) ++hist[bucket(x)];
  // Bucket and rank within it of every wanted rank; target[b] numbers the
  // distinct wanted buckets.
  int8_t target[size_t{1} << kMaxBits];
  std::fill(target, target + num_buckets, int8_t{-1});
  int bucket_of[4], num_targets = 0;
  size_t within[4];
  size_t below = 0, b = 0;
  for (int i = 0; i < k; ++i) {
    while (below + hist[b] <= ranks[i]) below += hist[b++];
    if (target[b] < 0) target[b] = static_cast<int8_t>(num_targets++);
    bucket_of[i] = target[b];
    within[i] = ranks[i] - below;
  }
  std::vector<int64_t> gathered[4];
  for (size_t bk = 0; bk < num_buckets; ++bk) {
    if (target[bk] >= 0) gathered[target[bk]].reserve(hist[bk]);
  }
  for (int64_t x : v) {
    const int t = target[bucket(x)];
    if (t >= 0) gathered[t].push_back(x);
  }
  for (int i = 0; i < k; ++i) {
    std::vector<int64_t>& g = gathered[bucket_of[i]];
    std::nth_element(g.begin(), g.begin() + within[i], g.end());
    out[i] = g[within[i]];
  }
}


// The least, the greatest and the sum of a set of durations, when a
// caller has them already (a pass over the values saved).
struct DurationSummary {
  int64_t lo = INT64_MAX;
  int64_t hi = INT64_MIN;
  __int128 sum = 0;
  void Add(int64_t v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  void Merge(const DurationSummary& o) {
    lo = std::min(lo, o.lo);
    hi = std::max(hi, o.hi);
    sum += o.sum;
  }
};

DurationStats StatsWithSummary(std::span<int64_t> micros,
                               const DurationSummary& summary);

}  // namespace

DurationStats ComputeDurationStats(std::span<int64_t> micros) {
  DurationSummary summary;
  for (int64_t v : micros) summary.Add(v);
  return StatsWithSummary(micros, summary);
}

namespace {

DurationStats StatsWithSummary(std::span<int64_t> micros,
                               const DurationSummary& summary) {
  DurationStats s;
  const size_t n = micros.size();
  s.count = static_cast<int64_t>(n);
  if (micros.empty()) return s;
  const __int128 sum = summary.sum;
  const int64_t lo = summary.lo, hi = summary.hi;
  s.mean = static_cast<double>(sum) / static_cast<double>(n) /
           kMicrosPerSecond;
  s.min = static_cast<double>(lo) / kMicrosPerSecond;
  s.max = static_cast<double>(hi) / kMicrosPerSecond;
  // Below a few hundred values nth_element is as fast as anything.
  if (n < 256) {
    s.median = SelectPercentile(micros, 0, 0.5) / kMicrosPerSecond;
    // The median's selection left every value at or above its rank in the
    // upper part, and the p90 rank is not below it: selecting there
    // alone gives the same value.
    const size_t median_rank =
        static_cast<size_t>(std::floor(0.5 * static_cast<double>(n - 1)));
    s.p90 = SelectPercentile(micros, median_rank, 0.9) / kMicrosPerSecond;
    return s;
  }
  // Same positions and interpolation as Percentile (numpy's linear).
  const double qs[2] = {0.5, 0.9};
  double frac[2];
  size_t ranks[4];
  for (int i = 0; i < 2; ++i) {
    const double pos = qs[i] * static_cast<double>(n - 1);
    ranks[2 * i] = static_cast<size_t>(std::floor(pos));
    ranks[2 * i + 1] = std::min(ranks[2 * i] + 1, n - 1);
    frac[i] = pos - static_cast<double>(ranks[2 * i]);
  }
  int64_t at[4];
  SelectRanks(micros, lo, hi, ranks, 4, at);
  double q[2];
  for (int i = 0; i < 2; ++i) {
    const double a = static_cast<double>(at[2 * i]);
    q[i] = frac[i] == 0 || ranks[2 * i] + 1 >= n
               ? a
               : Lerp(a, static_cast<double>(at[2 * i + 1]), frac[i]);
  }
  s.median = q[0] / kMicrosPerSecond;
  s.p90 = q[1] / kMicrosPerSecond;
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------
// Directly-follows graph
// ---------------------------------------------------------------------------

int64_t Dfg::Count(std::string_view from, std::string_view to) const {
  const DfgEdge* e = Find(from, to);
  return e == nullptr ? 0 : e->count;
}

const DfgEdge* Dfg::Find(std::string_view from, std::string_view to) const {
  for (const DfgEdge& e : edges) {
    if (e.from == from && e.to == to) return &e;
  }
  return nullptr;
}

namespace {

// Up to this many (activity, next activity) pairs the gaps are grouped
// through flat per-pair arrays indexed by from * n + to (two 4- and 8-byte
// entries a pair: they stay in the L2 cache); beyond, the hash-mapped
// BuildDfg and a per-activity grouping take over.
constexpr int64_t kDensePairs = int64_t{1} << 16;

// The gaps between consecutive events of each case, grouped by pair key
// from * n + to: those of key k are gaps[pos[k] .. pos[k + 1]).  Keys of
// one first activity a are adjacent, so the gaps after activity a are
// gaps[pos[a * n] .. pos[(a + 1) * n]).
struct PairGaps {
  int32_t n = 0;
  std::vector<int64_t> pos;    // n * n + 1
  // One per pair of consecutive events, every slot written by the
  // gathering pass (so not a zeroed vector).
  internal::ScratchArray<int64_t> gaps;
  std::vector<int64_t> starts;  // per activity: cases starting with it
  std::vector<int64_t> ends;    // per activity: cases ending with it
  // Per pair, when n * n <= kSummarisedPairs (else empty): the least and
  // greatest gap and their sum, gathered with the gaps.
  std::vector<DurationSummary> summary;
};

// Up to this many pairs the gathering pass also sums up each pair's gaps
// (a table small enough for the L1 cache), saving the statistics a pass.
constexpr size_t kSummarisedPairs = 4096;

// Two sequential passes over the activity and time columns: counts per
// pair (giving the offsets), then every gap written to its pair's slot.
// No per-event index is kept between the passes.  Large logs are split
// into ranges of cases, one per thread; the gaps of a pair from range p
// follow those from ranges before p, so the layout is the one a single
// pass gives.
PairGaps GatherPairGaps(const EventLog& log) {
  PairGaps g;
  const int32_t n = log.activities().size();
  g.n = n;
  const size_t n2 = static_cast<size_t>(n) * static_cast<size_t>(n);
  const int32_t* act = log.activity_column().data();
  const int64_t* t = log.time_column().data();
  const int64_t* off = log.case_offsets().data();
  const int32_t num_cases = log.num_cases();
  // Each part keeps a count and a slot per pair: with many activities,
  // one part a thread.
  const int parts =
      internal::PartsFor(log.num_events(), n2 <= 4096 ? 4 : 1);
  const std::vector<int64_t> bounds = internal::SplitByWeight(
      num_cases, parts, [off](int64_t c) { return off[c]; });
  struct Part {
    // Fewer than 2^32 events, so a pair count fits 32 bits.
    std::vector<uint32_t> count;
    std::vector<int64_t> starts, ends;
    std::vector<int64_t> fill;  // next slot of each pair for this part
    std::vector<DurationSummary> summary;  // per pair, when summarised
  };
  const bool summarise = n2 <= kSummarisedPairs;
  std::vector<Part> part(parts);
  internal::RunParts(parts, [&](int p) {
    Part& mine = part[p];
    mine.count.assign(n2, 0);
    mine.starts.assign(n, 0);
    mine.ends.assign(n, 0);
    uint32_t* count = mine.count.data();
    for (int64_t c = bounds[p]; c < bounds[p + 1]; ++c) {
      const int64_t b = off[c], e = off[c + 1];
      if (b == e) continue;
      ++mine.starts[act[b]];
      ++mine.ends[act[e - 1]];
      size_t row = static_cast<size_t>(act[b]) * n;
      for (int64_t i = b + 1; i < e; ++i) {
        const size_t cur = static_cast<size_t>(act[i]);
        ++count[row + cur];
        row = cur * n;
      }
    }
  });
  g.pos.resize(n2 + 1);
  g.pos[0] = 0;
  for (Part& mine : part) mine.fill.resize(n2);
  for (size_t k = 0; k < n2; ++k) {
    int64_t at = g.pos[k];
    for (Part& mine : part) {
      mine.fill[k] = at;
      at += mine.count[k];
    }
    g.pos[k + 1] = at;
  }
  g.starts.assign(n, 0);
  g.ends.assign(n, 0);
  for (Part& mine : part) {
    std::vector<uint32_t>().swap(mine.count);
    for (int32_t a = 0; a < n; ++a) {
      g.starts[a] += mine.starts[a];
      g.ends[a] += mine.ends[a];
    }
  }
  g.gaps = internal::ScratchArray<int64_t>(static_cast<size_t>(g.pos[n2]));
  int64_t* gaps = g.gaps.get();
  internal::RunParts(parts, [&](int p) {
    int64_t* fill = part[p].fill.data();
    auto gather = [&](auto add) {
      for (int64_t c = bounds[p]; c < bounds[p + 1]; ++c) {
        const int64_t b = off[c], e = off[c + 1];
        if (e - b < 2) continue;
        size_t row = static_cast<size_t>(act[b]) * n;
        for (int64_t i = b + 1; i < e; ++i) {
          const size_t cur = static_cast<size_t>(act[i]);
          const int64_t gap = t[i] - t[i - 1];
          gaps[fill[row + cur]++] = gap;
          add(row + cur, gap);
          row = cur * n;
        }
      }
    };
    if (summarise) {
      part[p].summary.resize(n2);
      DurationSummary* sum = part[p].summary.data();
      gather([sum](size_t k, int64_t gap) { sum[k].Add(gap); });
    } else {
      gather([](size_t, int64_t) {});
    }
  });
  if (summarise) {
    g.summary.resize(n2);
    for (const Part& mine : part) {
      for (size_t k = 0; k < n2; ++k) g.summary[k].Merge(mine.summary[k]);
    }
  }
  return g;
}

// The DFG of gathered gaps (reorders each pair's gaps).
Dfg DfgFromPairGaps(const EventLog& log, PairGaps& g) {
  const int32_t n = g.n;
  // Edges are ordered by count, then names: compare name ranks, not
  // strings.
  std::vector<int32_t> by_name(n);
  std::iota(by_name.begin(), by_name.end(), 0);
  std::sort(by_name.begin(), by_name.end(), [&](int32_t a, int32_t b) {
    return log.activity_name(a) < log.activity_name(b);
  });
  std::vector<int32_t> rank(n);
  for (int32_t i = 0; i < n; ++i) rank[by_name[i]] = i;
  struct Key {
    int64_t count;
    int32_t from, to;
  };
  std::vector<Key> keys;
  const size_t n2 = static_cast<size_t>(n) * static_cast<size_t>(n);
  for (size_t k = 0; k < n2; ++k) {
    const int64_t count = g.pos[k + 1] - g.pos[k];
    if (count > 0) {
      keys.push_back(Key{count, static_cast<int32_t>(k / n),
                         static_cast<int32_t>(k % n)});
    }
  }
  std::sort(keys.begin(), keys.end(), [&](const Key& a, const Key& b) {
    if (a.count != b.count) return a.count > b.count;
    if (a.from != b.from) return rank[a.from] < rank[b.from];
    return rank[a.to] < rank[b.to];
  });
  Dfg dfg;
  dfg.edges.resize(keys.size());
  // The statistics cost about the number of gaps: the edges are spread
  // over the threads by their gap counts.
  internal::ForEachWeighted(
      static_cast<int64_t>(keys.size()),
      [&keys](int64_t i) { return keys[i].count; },
      [&](int64_t i) {
        DfgEdge& edge = dfg.edges[i];
        const size_t k = static_cast<size_t>(keys[i].from) * n + keys[i].to;
        edge.from = log.activity_name(keys[i].from);
        edge.to = log.activity_name(keys[i].to);
        edge.count = keys[i].count;
        std::span<int64_t> gaps(g.gaps.get() + g.pos[k], keys[i].count);
        edge.duration = g.summary.empty()
                            ? ComputeDurationStats(gaps)
                            : StatsWithSummary(gaps, g.summary[k]);
      });
  dfg.start_activities = CountsToNames(log, g.starts);
  dfg.end_activities = CountsToNames(log, g.ends);
  return dfg;
}

// The time in each activity of gathered gaps (reorders the gaps).
std::vector<ActivityTime> TimesFromPairGaps(const EventLog& log,
                                            PairGaps& g) {
  const int32_t n = g.n;
  std::vector<ActivityTime> out;
  // Activities with events, and where their gaps lie.
  std::vector<int32_t> present;
  for (int32_t a = 0; a < n; ++a) {
    const int64_t b = g.pos[static_cast<size_t>(a) * n];
    const int64_t e = g.pos[static_cast<size_t>(a + 1) * n];
    // Every occurrence has a next event except the last of a case.
    const int64_t events = (e - b) + g.ends[a];
    if (events == 0) continue;
    present.push_back(a);
    ActivityTime at;
    at.activity = log.activity_name(a);
    at.events = events;
    out.push_back(std::move(at));
  }
  auto gap_range = [&](int32_t a) {
    return std::pair<int64_t, int64_t>(
        g.pos[static_cast<size_t>(a) * n],
        g.pos[static_cast<size_t>(a + 1) * n]);
  };
  internal::ForEachWeighted(
      static_cast<int64_t>(present.size()),
      [&](int64_t i) {
        auto [b, e] = gap_range(present[i]);
        return e - b;
      },
      [&](int64_t i) {
        auto [b, e] = gap_range(present[i]);
        std::span<int64_t> gaps(g.gaps.get() + b, e - b);
        if (g.summary.empty()) {
          out[i].duration = ComputeDurationStats(gaps);
          return;
        }
        DurationSummary summary;
        const size_t row = static_cast<size_t>(present[i]) * n;
        for (int32_t to = 0; to < n; ++to) summary.Merge(g.summary[row + to]);
        out[i].duration = StatsWithSummary(gaps, summary);
      });
  std::sort(out.begin(), out.end(),
            [](const ActivityTime& a, const ActivityTime& b) {
              return a.activity < b.activity;
            });
  return out;
}

bool DensePairs(const EventLog& log) {
  const int64_t n = log.activities().size();
  return n * n <= kDensePairs;
}

std::vector<ActivityTime> SparseTimeInActivity(const EventLog& log);

}  // namespace

Dfg DirectlyFollows(const EventLog& log) {
  if (DensePairs(log)) {
    PairGaps g = GatherPairGaps(log);
    return DfgFromPairGaps(log, g);
  }
  const int32_t* act = log.activity_column().data();
  const int64_t* t = log.time_column().data();
  return BuildDfg(
      log, log.case_offsets(), [act](int64_t i) { return act[i]; },
      [t](int64_t i) { return t[i] - t[i - 1]; });
}

FollowsAnalysis DirectlyFollowsAndTimes(const EventLog& log) {
  FollowsAnalysis out;
  if (!DensePairs(log)) {
    out.dfg = DirectlyFollows(log);
    out.time_in_activity = SparseTimeInActivity(log);
    return out;
  }
  PairGaps g = GatherPairGaps(log);
  // The statistics of one pair reorder its gaps only among themselves:
  // the gaps after each activity stay the same set for the second use.
  out.dfg = DfgFromPairGaps(log, g);
  out.time_in_activity = TimesFromPairGaps(log, g);
  return out;
}

// ---------------------------------------------------------------------------
// Variants
// ---------------------------------------------------------------------------

namespace {

// Returns a 64-bit hash of an activity-id sequence.  Equal sequences hash
// equally; the variant table compares the spans on a hash match, so a
// collision costs a comparison, never a wrong count.  Two ids are mixed
// per multiply to halve the dependency chain of the loop.
uint64_t HashSpan(const int32_t* a, int64_t n) {
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ull;
  uint64_t h = static_cast<uint64_t>(n) * kMul;
  int64_t i = 0;
  for (; i + 1 < n; i += 2) {
    uint64_t w = static_cast<uint32_t>(a[i]) |
                 (static_cast<uint64_t>(static_cast<uint32_t>(a[i + 1]))
                  << 32);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  if (i < n) {
    h = (h ^ static_cast<uint32_t>(a[i])) * kMul;
    h ^= h >> 29;
  }
  // Final avalanche (from splitmix64): the table uses the low bits.
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  return h;
}

}  // namespace

namespace {

// Sorts `v` by (major descending, minor ascending), stably, with an LSD
// radix sort on bytes: a byte that is the same in every element costs no
// pass, so small counts and short prefixes cost little.  Linear where a
// comparison sort of tens of thousands of variants is not.
struct RadixItem {
  uint64_t minor;
  uint32_t major;  // stored inverted by the caller for descending order
  int32_t id;
};

void RadixSort(std::vector<RadixItem>* v) {
  const size_t n = v->size();
  if (n < 2) return;
  constexpr int kDigits = 12;  // 8 bytes of minor, then 4 of major
  std::vector<uint32_t> hist(size_t{kDigits} * 256, 0);
  auto digit = [](const RadixItem& x, int d) -> uint32_t {
    return d < 8 ? static_cast<uint32_t>(x.minor >> (8 * d)) & 0xff
                 : (x.major >> (8 * (d - 8))) & 0xff;
  };
  for (const RadixItem& x : *v) {
    for (int d = 0; d < kDigits; ++d) ++hist[d * 256 + digit(x, d)];
  }
  std::vector<RadixItem> tmp(n);
  std::vector<RadixItem>* src = v;
  std::vector<RadixItem>* dst = &tmp;
  for (int d = 0; d < kDigits; ++d) {
    uint32_t* h = hist.data() + d * 256;
    if (h[digit((*src)[0], d)] == n) continue;  // one value: no pass
    uint32_t sum = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t c = h[b];
      h[b] = sum;
      sum += c;
    }
    for (const RadixItem& x : *src) (*dst)[h[digit(x, d)]++] = x;
    std::swap(src, dst);
  }
  if (src != v) v->swap(tmp);
}

}  // namespace

namespace {

// Open addressing on the low bits of the hash; the slot keeps the high 32
// bits as a tag and where the variant's first case lies, so that a probe
// reads neither the offsets nor (unless the tag and length match) the
// events.  Events number fewer than 2^32.
struct VariantSlot {
  uint32_t tag;
  int32_t variant;  // -1: free
  uint32_t begin;   // first event of the variant's first case
  uint32_t length;
};

// Cases between two calls of ProbeVariants' on_batch.
constexpr int32_t kVariantBatch = 2048;

// Finds the distinct sequences among m cases, visited in the order
// case_at(0), case_at(1), ... (increasing case indices): appends each new
// variant's first case to *rep and its count to *count (so *rep must not
// reallocate while `on_batch` readers look at it), and calls
// on_batch(rep->size()) after every batch of cases and at the end.
template <typename CaseAt, typename OnBatch>
void ProbeVariants(const EventLog& log, const uint64_t* hashes, int32_t m,
                   CaseAt case_at, std::vector<int32_t>* rep,
                   std::vector<int64_t>* count, OnBatch on_batch) {
  const int32_t* act = log.activity_column().data();
  const int64_t* off = log.case_offsets().data();
  size_t capacity = 16;
  while (capacity < 2 * static_cast<size_t>(m)) capacity *= 2;
  const size_t mask = capacity - 1;
  internal::ScratchArray<VariantSlot> table(capacity);
  std::fill(table.get(), table.get() + capacity, VariantSlot{0, -1, 0, 0});
  // Two-stage prefetch: the slot far ahead, then (once it is in cache) the
  // events of the variant it holds, which the comparison of a repeated
  // variant reads at a random place in the log.
  constexpr int32_t kFar = 16, kNear = 6;
  for (int32_t j = 0; j < m; ++j) {
    if (j + kFar < m) {
      __builtin_prefetch(&table[hashes[case_at(j + kFar)] & mask]);
    }
    if (j + kNear < m) {
      const VariantSlot& ahead = table[hashes[case_at(j + kNear)] & mask];
      if (ahead.variant >= 0) __builtin_prefetch(act + ahead.begin);
    }
    const int32_t c = case_at(j);
    const int32_t* b = act + off[c];
    const uint32_t n = static_cast<uint32_t>(off[c + 1] - off[c]);
    const uint64_t h = hashes[c];
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    size_t slot = static_cast<size_t>(h) & mask;
    while (true) {
      VariantSlot& s = table[slot];
      if (s.variant < 0) {
        s = VariantSlot{tag, static_cast<int32_t>(rep->size()),
                        static_cast<uint32_t>(off[c]), n};
        rep->push_back(c);
        count->push_back(1);
        break;
      }
      if (s.tag == tag && s.length == n &&
          std::equal(b, b + n, act + s.begin)) {
        ++(*count)[s.variant];
        break;
      }
      slot = (slot + 1) & mask;
    }
    if ((j + 1) % kVariantBatch == 0) on_batch(rep->size());
  }
  on_batch(rep->size());
}

// The hash of every case's sequence, on up to WorkerCount() threads (or
// on this one alone when `threads` is false).  Hashed first, in one
// sequential pass, so that the probes can prefetch their slots: a table
// outgrows the L2 cache at about 100k cases, and a miss per case would
// cost more than all the hashing.
internal::ScratchArray<uint64_t> CaseHashes(const EventLog& log,
                                            bool threads) {
  const int32_t* act = log.activity_column().data();
  const int64_t* off = log.case_offsets().data();
  const int32_t num_cases = log.num_cases();
  internal::ScratchArray<uint64_t> hashes(static_cast<size_t>(num_cases));
  const int parts = threads ? internal::PartsFor(log.num_events()) : 1;
  const std::vector<int64_t> bounds = internal::SplitByWeight(
      num_cases, parts, [off](int64_t c) { return off[c]; });
  internal::RunParts(parts, [&](int p) {
    for (int64_t c = bounds[p]; c < bounds[p + 1]; ++c) {
      hashes[c] = HashSpan(act + off[c], off[c + 1] - off[c]);
    }
  });
  return hashes;
}

}  // namespace

VariantTable GroupVariants(const EventLog& log) {
  const int32_t num_cases = log.num_cases();
  const internal::ScratchArray<uint64_t> hashes = CaseHashes(log, true);
  // The distinct sequences are found in `shards` independent tables, a
  // case going to the shard its hash picks, one shard per thread.  Equal
  // sequences hash equally, so each variant lives in one shard, and each
  // shard visits its cases in log order: its first case is the variant's
  // first case, as with one table.  Variant numbers differ with the shard
  // count, but OrderVariants' order is total, so its result does not.
  const int shards = std::min(internal::WorkerCount(),
                              internal::PartsFor(log.num_events(), 1));
  VariantTable out;
  if (shards == 1) {
    ProbeVariants(
        log, hashes.get(), num_cases, [](int32_t j) { return j; },
        &out.example_case, &out.count, [](size_t) {});
    return out;
  }
  auto shard_of = [shards](uint64_t h) {
    return static_cast<int>(((h >> 32) * static_cast<uint64_t>(shards)) >>
                            32);
  };
  std::vector<VariantTable> shard(shards);
  internal::RunParts(shards, [&](int p) {
    std::vector<int32_t> cases;  // of this shard, in log order
    cases.reserve(num_cases / shards + num_cases / 16 + 16);
    for (int32_t c = 0; c < num_cases; ++c) {
      if (shard_of(hashes[c]) == p) cases.push_back(c);
    }
    const int32_t* at = cases.data();
    ProbeVariants(
        log, hashes.get(), static_cast<int32_t>(cases.size()),
        [at](int32_t j) { return at[j]; }, &shard[p].example_case,
        &shard[p].count, [](size_t) {});
  });
  size_t total = 0;
  for (const VariantTable& mine : shard) total += mine.count.size();
  out.example_case.reserve(total);
  out.count.reserve(total);
  for (VariantTable& mine : shard) {
    out.example_case.insert(out.example_case.end(),
                            mine.example_case.begin(),
                            mine.example_case.end());
    out.count.insert(out.count.end(), mine.count.begin(), mine.count.end());
    mine = VariantTable();
  }
  return out;
}

void GroupVariantsInOrder(const EventLog& log, VariantTable* groups,
                          const std::function<void(size_t)>& found) {
  const int32_t num_cases = log.num_cases();
  groups->example_case.clear();
  groups->count.clear();
  // Reserved for the most variants there can be, so that readers of
  // example_case on other threads never see it move.
  groups->example_case.reserve(static_cast<size_t>(num_cases) + 1);
  groups->count.reserve(static_cast<size_t>(num_cases) + 1);
  // Hashed batch by batch, a batch ahead of the probes (which prefetch a
  // few cases ahead): the first variants are out after one batch, not
  // after a pass over the whole log.
  const int32_t* act = log.activity_column().data();
  const int64_t* off = log.case_offsets().data();
  internal::ScratchArray<uint64_t> hashes(static_cast<size_t>(num_cases));
  constexpr int32_t kAhead = 2 * kVariantBatch;
  int32_t hashed = 0;
  auto hash_to = [&](int32_t end) {
    for (; hashed < end; ++hashed) {
      hashes[hashed] =
          HashSpan(act + off[hashed], off[hashed + 1] - off[hashed]);
    }
  };
  hash_to(std::min(num_cases, kAhead));
  ProbeVariants(
      log, hashes.get(), num_cases, [](int32_t j) { return j; },
      &groups->example_case, &groups->count, [&](size_t k) {
        // Called every kVariantBatch cases: the hashes stay a batch or
        // more ahead of the probes.
        hash_to(std::min(num_cases, hashed + kAhead / 2));
        found(k);
      });
}

std::vector<int32_t> OrderVariants(const EventLog& log,
                                   const VariantTable& groups) {
  const int32_t* act = log.activity_column().data();
  const int64_t* off = log.case_offsets().data();
  const std::vector<int32_t>& rep = groups.example_case;
  const std::vector<int64_t>& count = groups.count;
  // Order by count, then by sequence of names (compared through the rank
  // of each activity name, so no string is touched while sorting).
  const int32_t num_activities = log.activities().size();
  std::vector<int32_t> by_name(num_activities);
  std::iota(by_name.begin(), by_name.end(), 0);
  std::sort(by_name.begin(), by_name.end(), [&](int32_t a, int32_t b) {
    return log.activity_name(a) < log.activity_name(b);
  });
  std::vector<int32_t> rank(num_activities);
  for (int32_t i = 0; i < num_activities; ++i) rank[by_name[i]] = i;
  // A prefix of the sequence packed into 64 bits orders most pairs
  // without touching the sequences: rank + 1 per activity (0 = end of
  // sequence), as few bits each as the number of activities allows.  The
  // radix sort orders by (count, prefix); only runs of equal prefixes
  // (sequences longer than the prefix) are then ordered by a comparison
  // of the whole sequences.
  int bits = 1;
  while ((int64_t{1} << bits) <= num_activities) ++bits;
  const int per_key = 64 / bits;
  std::vector<RadixItem> items(rep.size());
  for (size_t v = 0; v < items.size(); ++v) {
    uint64_t key = 0;
    const int64_t b = off[rep[v]], e = off[rep[v] + 1];
    for (int64_t k = 0; k < per_key; ++k) {
      uint64_t r = b + k < e ? static_cast<uint64_t>(rank[act[b + k]]) + 1 : 0;
      key = (key << bits) | r;
    }
    // Counts are at most the number of cases, below 2^31.
    items[v] = RadixItem{key, ~static_cast<uint32_t>(count[v]),
                         static_cast<int32_t>(v)};
  }
  RadixSort(&items);
  auto sequence_less = [&](const RadixItem& x, const RadixItem& y) {
    const int32_t* a = act + off[rep[x.id]];
    const int32_t* a_end = act + off[rep[x.id] + 1];
    const int32_t* b = act + off[rep[y.id]];
    const int32_t* b_end = act + off[rep[y.id] + 1];
    for (; a != a_end && b != b_end; ++a, ++b) {
      if (*a != *b) return rank[*a] < rank[*b];
    }
    return a == a_end && b != b_end;
  };
  for (size_t i = 0; i < items.size();) {
    size_t j = i + 1;
    while (j < items.size() && items[j].major == items[i].major &&
           items[j].minor == items[i].minor) {
      ++j;
    }
    if (j - i > 1) std::sort(items.begin() + i, items.begin() + j, sequence_less);
    i = j;
  }
  std::vector<int32_t> order(items.size());
  for (size_t i = 0; i < items.size(); ++i) order[i] = items[i].id;
  return order;
}

int WorkerThreads() { return internal::WorkerCount(); }

void SetWorkerThreads(int threads) {
  internal::WorkerCountOverride().store(std::clamp(threads, 0, 64),
                                        std::memory_order_relaxed);
}

VariantTable VariantIds(const EventLog& log) {
  const VariantTable groups = GroupVariants(log);
  const std::vector<int32_t> order = OrderVariants(log, groups);
  VariantTable sorted;
  sorted.example_case.resize(order.size());
  sorted.count.resize(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    sorted.example_case[i] = groups.example_case[order[i]];
    sorted.count[i] = groups.count[order[i]];
  }
  return sorted;
}

std::vector<Variant> Variants(const EventLog& log) {
  const VariantTable t = VariantIds(log);
  const int32_t* act = log.activity_column().data();
  // Names are copied here only, once per distinct variant.
  std::vector<Variant> out(t.count.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const int32_t c = t.example_case[i];
    Variant& v = out[i];
    v.count = t.count[i];
    v.example_case = log.case_id(c);
    v.activities.reserve(log.case_size(c));
    for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
      v.activities.push_back(log.activity_name(act[e]));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Activity instances
// ---------------------------------------------------------------------------

std::optional<double> ActivityInstance::duration() const {
  if (kind != InstanceKind::kPaired || !end) return std::nullopt;
  return static_cast<double>(end->micros - start.micros) / kMicrosPerSecond;
}

namespace {

// Forms the instances of each case with FIFO matching per activity.
void FormInstances(const EventLog& log,
                   std::vector<ActivityInstance>* instances,
                   std::vector<int64_t>* case_offsets,
                   std::vector<bool>* case_complete) {
  const int32_t num_activities = log.activities().size();
  // Pending starts per activity form a FIFO list threaded through the
  // open instances' end_event field (reset to -1 when the case ends).
  std::vector<int64_t> head(num_activities, -1), tail(num_activities, -1);
  std::vector<int32_t> touched;
  const int32_t num_cases = log.num_cases();
  instances->reserve(log.num_events());
  case_offsets->assign(1, 0);
  case_complete->assign(num_cases, true);
  for (int32_t c = 0; c < num_cases; ++c) {
    for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
      const int32_t a = log.activity(e);
      const Lifecycle lc = log.lifecycle(e);
      if (lc == Lifecycle::kComplete && head[a] >= 0) {
        int64_t k = head[a];
        ActivityInstance& inst = (*instances)[k];
        head[a] = inst.end_event;
        if (head[a] < 0) tail[a] = -1;
        inst.kind = InstanceKind::kPaired;
        inst.end = log.time(e);
        inst.end_event = e;
        continue;
      }
      ActivityInstance inst;
      inst.case_index = c;
      inst.activity = a;
      inst.start = log.time(e);
      inst.start_event = e;
      inst.resource = log.resource(e);
      const int64_t k = static_cast<int64_t>(instances->size());
      if (lc == Lifecycle::kStart) {
        inst.kind = InstanceKind::kOpen;
        if (head[a] < 0 && tail[a] < 0) touched.push_back(a);
        if (tail[a] >= 0) {
          (*instances)[tail[a]].end_event = k;
        } else {
          head[a] = k;
        }
        tail[a] = k;
      } else {
        inst.kind = InstanceKind::kAtomic;
        inst.end = inst.start;
      }
      instances->push_back(inst);
    }
    for (int32_t a : touched) {
      for (int64_t k = head[a]; k >= 0;) {
        (*case_complete)[c] = false;
        int64_t next = (*instances)[k].end_event;
        (*instances)[k].end_event = -1;
        k = next;
      }
      head[a] = tail[a] = -1;
    }
    touched.clear();
    case_offsets->push_back(static_cast<int64_t>(instances->size()));
  }
}

}  // namespace

InstanceAnalysis ActivityInstances(const EventLog& log) {
  InstanceAnalysis out;
  FormInstances(log, &out.instances, &out.case_offsets, &out.case_complete);
  const std::vector<ActivityInstance>& inst = out.instances;

  // Service times per activity (CSR over activities).
  const int32_t num_activities = log.activities().size();
  std::vector<int64_t> total(num_activities, 0), open(num_activities, 0),
      paired(num_activities, 0);
  for (const ActivityInstance& i : inst) {
    ++total[i.activity];
    if (i.kind == InstanceKind::kOpen) ++open[i.activity];
    if (i.kind == InstanceKind::kPaired) ++paired[i.activity];
  }
  std::vector<int64_t> pos(num_activities + 1, 0);
  for (int32_t a = 0; a < num_activities; ++a) pos[a + 1] = pos[a] + paired[a];
  std::vector<int64_t> durations(pos.back());
  std::vector<int64_t> fill(pos.begin(), pos.end() - 1);
  for (const ActivityInstance& i : inst) {
    if (i.kind == InstanceKind::kPaired) {
      durations[fill[i.activity]++] = i.end->micros - i.start.micros;
    }
  }
  for (int32_t a = 0; a < num_activities; ++a) {
    if (total[a] == 0) continue;
    ActivityServiceTime s;
    s.activity = log.activity_name(a);
    s.instances = total[a];
    s.open = open[a];
    s.duration = ComputeDurationStats(
        std::span<int64_t>(durations.data() + pos[a], paired[a]));
    out.service_times.push_back(std::move(s));
  }
  std::sort(out.service_times.begin(), out.service_times.end(),
            [](const ActivityServiceTime& a, const ActivityServiceTime& b) {
              return a.activity < b.activity;
            });

  out.dfg = BuildDfg(
      log, out.case_offsets,
      [&inst](int64_t i) { return inst[i].activity; },
      [&inst](int64_t i) -> int64_t {
        const ActivityInstance& prev = inst[i - 1];
        if (!prev.end) return kUntimed;
        return inst[i].start.micros - prev.end->micros;
      });
  return out;
}

// ---------------------------------------------------------------------------
// Time in activity, case durations
// ---------------------------------------------------------------------------

std::vector<ActivityTime> TimeInActivity(const EventLog& log) {
  if (DensePairs(log)) {
    PairGaps g = GatherPairGaps(log);
    return TimesFromPairGaps(log, g);
  }
  return SparseTimeInActivity(log);
}

namespace {

// Time in activity grouped by activity alone, for logs with too many
// activities for the per-pair arrays.
std::vector<ActivityTime> SparseTimeInActivity(const EventLog& log) {
  const int32_t num_activities = log.activities().size();
  const int32_t* act = log.activity_column().data();
  const int64_t* t = log.time_column().data();
  std::vector<int64_t> events(num_activities, 0), timed(num_activities, 0);
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
      ++events[act[e]];
      if (e + 1 < log.case_end(c)) ++timed[act[e]];
    }
  }
  std::vector<int64_t> pos(num_activities + 1, 0);
  for (int32_t a = 0; a < num_activities; ++a) pos[a + 1] = pos[a] + timed[a];
  std::vector<int64_t> d(pos.back());
  std::vector<int64_t> fill(pos.begin(), pos.end() - 1);
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    for (int64_t e = log.case_begin(c); e + 1 < log.case_end(c); ++e) {
      d[fill[act[e]]++] = t[e + 1] - t[e];
    }
  }
  std::vector<ActivityTime> out;
  for (int32_t a = 0; a < num_activities; ++a) {
    if (events[a] == 0) continue;
    ActivityTime at;
    at.activity = log.activity_name(a);
    at.events = events[a];
    at.duration =
        ComputeDurationStats(std::span<int64_t>(d.data() + pos[a], timed[a]));
    out.push_back(std::move(at));
  }
  std::sort(out.begin(), out.end(),
            [](const ActivityTime& a, const ActivityTime& b) {
              return a.activity < b.activity;
            });
  return out;
}

}  // namespace

CaseDurations ComputeCaseDurations(const EventLog& log) {
  CaseDurations out;
  out.cases = log.num_cases();
  out.per_case.resize(log.num_cases());
  std::vector<int64_t> d;
  d.reserve(log.num_cases());
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    if (log.case_size(c) == 0) continue;
    int64_t micros = log.time(log.case_end(c) - 1).micros -
                     log.time(log.case_begin(c)).micros;
    out.per_case[c] = static_cast<double>(micros) / kMicrosPerSecond;
    d.push_back(micros);
  }
  out.duration = ComputeDurationStats(d);
  return out;
}

// ---------------------------------------------------------------------------
// Funnel, rework, hand-overs
// ---------------------------------------------------------------------------

StatusOr<FunnelResult> Funnel(const EventLog& log,
                              const std::vector<std::string>& milestones) {
  if (milestones.empty()) {
    return Status(Code::kInvalidArgument,
                  "empty milestone list (expected at least one activity)");
  }
  std::vector<int32_t> ids;
  for (const std::string& m : milestones) {
    int32_t id = log.FindActivity(m);
    if (id < 0) {
      std::string names;
      for (const std::string& a : log.activities().strings()) {
        if (names.size() > 200) {
          names += ", ...";
          break;
        }
        if (!names.empty()) names += ", ";
        names += a;
      }
      return Status(Code::kNotFound, "unknown activity \"" + m +
                                         "\" (expected one of " + names +
                                         ")");
    }
    ids.push_back(id);
  }
  const size_t k = ids.size();
  std::vector<int64_t> reached(k + 1, 0);  // cases reaching exactly j steps
  const int32_t* act = log.activity_column().data();
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    size_t j = 0;
    for (int64_t e = log.case_begin(c); e < log.case_end(c) && j < k; ++e) {
      if (act[e] == ids[j]) ++j;
    }
    ++reached[j];
  }
  FunnelResult out;
  out.total_cases = log.num_cases();
  int64_t at_least = 0;
  std::vector<int64_t> cumulative(k + 1, 0);
  for (size_t j = k + 1; j-- > 0;) {
    at_least += reached[j];
    cumulative[j] = at_least;
  }
  for (size_t j = 0; j < k; ++j) {
    FunnelStep s;
    s.milestone = milestones[j];
    s.cases = cumulative[j + 1];
    s.conversion = out.total_cases == 0
                       ? 0.0
                       : static_cast<double>(s.cases) / out.total_cases;
    int64_t prev = j == 0 ? out.total_cases : cumulative[j];
    s.from_previous =
        prev == 0 ? 0.0 : static_cast<double>(s.cases) / prev;
    out.steps.push_back(std::move(s));
  }
  return out;
}

ReworkResult Rework(const EventLog& log) {
  const int32_t num_activities = log.activities().size();
  std::vector<int64_t> occurrences(num_activities, 0);
  std::vector<int64_t> pending(num_activities, 0);
  std::vector<int64_t> cases(num_activities, 0), reps(num_activities, 0);
  std::vector<int32_t> touched;
  ReworkResult out;
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
      const int32_t a = log.activity(e);
      if (occurrences[a] == 0 && pending[a] == 0) touched.push_back(a);
      switch (log.lifecycle(e)) {
        case Lifecycle::kStart:
          ++occurrences[a];
          ++pending[a];
          break;
        case Lifecycle::kComplete:
          if (pending[a] > 0) {
            --pending[a];
          } else {
            ++occurrences[a];
          }
          break;
        default:
          ++occurrences[a];
      }
    }
    bool any = false;
    for (int32_t a : touched) {
      if (occurrences[a] > 1) {
        ++cases[a];
        reps[a] += occurrences[a] - 1;
        any = true;
      }
      occurrences[a] = pending[a] = 0;
    }
    touched.clear();
    if (any) ++out.cases_with_rework;
  }
  for (int32_t a = 0; a < num_activities; ++a) {
    if (cases[a] > 0) {
      out.activities.push_back(
          ReworkEntry{log.activity_name(a), cases[a], reps[a]});
    }
  }
  std::sort(out.activities.begin(), out.activities.end(),
            [](const ReworkEntry& a, const ReworkEntry& b) {
              if (a.repetitions != b.repetitions) {
                return a.repetitions > b.repetitions;
              }
              return a.activity < b.activity;
            });
  return out;
}

std::vector<HandOver> HandOvers(const EventLog& log) {
  const int64_t n = log.resources().size();
  // An empty resource column: no event has a resource, so no hand-over.
  if (log.resource_column().empty()) return {};
  std::unordered_map<int64_t, int64_t> counts;
  const int32_t* res = log.resource_column().data();
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    for (int64_t e = log.case_begin(c) + 1; e < log.case_end(c); ++e) {
      int32_t a = res[e - 1], b = res[e];
      if (a < 0 || b < 0 || a == b) continue;
      ++counts[a * n + b];
    }
  }
  std::vector<HandOver> out;
  out.reserve(counts.size());
  for (const auto& [key, count] : counts) {
    out.push_back(HandOver{
        std::string(log.resource_name(static_cast<int32_t>(key / n))),
        std::string(log.resource_name(static_cast<int32_t>(key % n))),
        count});
  }
  std::sort(out.begin(), out.end(), [](const HandOver& a, const HandOver& b) {
    if (a.count != b.count) return a.count > b.count;
    if (a.from != b.from) return a.from < b.from;
    return a.to < b.to;
  });
  return out;
}

// ---------------------------------------------------------------------------
// Arrivals and throughput
// ---------------------------------------------------------------------------

std::vector<PeriodCount> ArrivalsAndThroughput(const EventLog& log,
                                               Period period) {
  std::vector<PeriodCount> out;
  if (log.num_events() == 0) return out;
  const std::vector<int64_t>& t = log.time_column();
  const auto [lo, hi] = std::minmax_element(t.begin(), t.end());
  const int64_t first = PeriodKey(*lo, period);
  const int64_t last = PeriodKey(*hi, period);
  out.resize(static_cast<size_t>(last - first + 1));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].start = PeriodStart(first + static_cast<int64_t>(i), period);
  }
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    if (log.case_size(c) == 0) continue;
    ++out[PeriodKey(t[log.case_begin(c)], period) - first].arrivals;
    ++out[PeriodKey(t[log.case_end(c) - 1], period) - first].completions;
  }
  return out;
}

}  // namespace crmflow
