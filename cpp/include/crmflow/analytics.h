// analytics.h: process-mining figures over an EventLog (event_log.h).
//
// Every function reads an immutable EventLog and returns a plain result
// struct; none modifies the log, prints, or allocates per event (work
// buffers are contiguous vectors sized once).  Events are taken in the
// log's order: by case, then (timestamp, original row).
//
//   DirectlyFollows   directly-follows graph: edge counts, time between the
//                     two events (mean/median/p90), start and end
//                     activities
//   Variants          distinct activity sequences with their case counts
//   ActivityInstances start/complete pairing into activity instances, their
//                     service times, the waits between them and the
//                     instance-level directly-follows graph
//   TimeInActivity    time from each event to the next one of its case
//                     (time spent in an activity or state)
//   CaseDurations     cycle time, first to last event of each case
//   Funnel            cases reaching named milestones in order
//   Rework            activities repeated within a case
//   HandOvers         resource changes between consecutive events
//   ArrivalsAndThroughput  cases started and finished per day/week/month
//
// Durations are in seconds (double; the log keeps microseconds, so values
// are exact to the microsecond).  A statistic over an empty set is
// std::nullopt, never NaN.  Percentiles interpolate linearly between the
// two closest ranks, like numpy.percentile's default: for sorted x of size
// n, p in [0, 1], position p * (n - 1).
//
// Example:
//
//   auto log = crmflow::ReadXesEventLog("helpdesk.xes.gz");
//   if (!log.ok()) return log.status();
//   crmflow::Dfg dfg = crmflow::DirectlyFollows(*log);
//   for (const crmflow::DfgEdge& e : dfg.edges) {
//     std::cout << e.from << " -> " << e.to << ": " << e.count << ", median "
//               << e.duration.median.value_or(0) << " s\n";
//   }
//   for (const crmflow::Variant& v : crmflow::Variants(*log)) { ... }

#ifndef CRMFLOW_ANALYTICS_H_
#define CRMFLOW_ANALYTICS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/event_log.h"
#include "crmflow/status.h"
#include "crmflow/value.h"

namespace crmflow {

// Summary of a set of durations, in seconds.  All optionals are empty
// when count == 0.
struct DurationStats {
  int64_t count = 0;
  std::optional<double> mean;
  std::optional<double> median;
  std::optional<double> p90;
  std::optional<double> min;
  std::optional<double> max;
};

// Returns the statistics of `micros` (durations in microseconds).  The
// span is reordered (partially sorted) in place.
DurationStats ComputeDurationStats(std::span<int64_t> micros);

// Returns the q-th percentile (q in [0, 1]) of `values` with numpy's
// linear interpolation, or nullopt when empty.  Reorders `values`.
std::optional<double> Percentile(std::span<int64_t> values, double q);

// An activity (or resource) name with a count.
struct NameCount {
  std::string name;
  int64_t count = 0;
  bool operator==(const NameCount& o) const {
    return name == o.name && count == o.count;
  }
};

// One edge of a directly-follows graph.
struct DfgEdge {
  std::string from;
  std::string to;
  int64_t count = 0;
  // Time between the two events (event DFG) or from the end of the first
  // instance to the start of the second (instance DFG; pairs whose first
  // instance is open are counted but not timed).
  DurationStats duration;
};

// A directly-follows graph.  Edges are ordered by count (descending), then
// from, then to; start/end activities by count (descending), then name.
struct Dfg {
  std::vector<DfgEdge> edges;
  std::vector<NameCount> start_activities;  // first activity of each case
  std::vector<NameCount> end_activities;    // last activity of each case
  // Returns the count of edge from -> to, 0 when absent.
  int64_t Count(std::string_view from, std::string_view to) const;
  // Returns the edge from -> to, or nullptr.
  const DfgEdge* Find(std::string_view from, std::string_view to) const;
};

// Returns the directly-follows graph of the events: one edge count for each
// pair of consecutive events of a case, with the time between them.
// Lifecycle is ignored (start and complete of one activity give a
// self-loop; use ActivityInstances for the instance-level graph).  Cases
// without events contribute nothing.  Time: linear in events.
Dfg DirectlyFollows(const EventLog& log);

// A distinct activity sequence.
struct Variant {
  std::vector<std::string> activities;  // empty for cases without events
  int64_t count = 0;                    // number of cases
  std::string example_case;             // the first case, in log order
};

// Returns the variants ordered by count (descending), then by sequence
// (lexicographic over activity names).  Cases without events form the
// variant with an empty sequence.  Every case is in exactly one variant.
std::vector<Variant> Variants(const EventLog& log);

// The variants of Variants() as interned ids, with no name copied: the
// same variants in the same order.  The activities of variant i are those
// of its example case, log.activity_column()[case_begin(c) .. case_end(c))
// for c = example_case[i].  Time: linear in events (one hash per case),
// plus sorting the distinct variants.
struct VariantTable {
  std::vector<int32_t> example_case;  // per variant: first case (index)
  std::vector<int64_t> count;         // per variant: number of cases
};
VariantTable VariantIds(const EventLog& log);

// VariantIds in two steps, for a caller that does other work between
// them.  GroupVariants gives the same variants with the same example
// cases and counts, in no particular order; OrderVariants gives the
// indices into them in VariantIds' order.  Both run on several threads
// for large logs (the environment variable CRMFLOW_THREADS caps them;
// 1 = the calling thread only); the results do not depend on the number.
VariantTable GroupVariants(const EventLog& log);
// The number of threads the scans of a large log use: the last
// SetWorkerThreads, else the environment variable CRMFLOW_THREADS (a
// whole number >= 1, capped at 64; other values are ignored), else the
// machine's cores, at most 8.  A scan is split in parts of at least 65,536
// events, so logs under 131,072 events are scanned on the calling thread
// alone.
int WorkerThreads();
// Sets that number (1 to 64; 0 restores the default).  Results never
// depend on it.  Takes effect for computations started afterwards.
void SetWorkerThreads(int threads);
// GroupVariants on the calling thread alone, for a caller that uses the
// variants while they are being found (on another thread): the variants
// come in the order of their first cases, groups->example_case is
// reserved for every case first (so it never moves), and after each batch
// of cases `found(k)` is called: example_case[0 .. k) is then final.
// Counts are final on return.
void GroupVariantsInOrder(const EventLog& log, VariantTable* groups,
                          const std::function<void(size_t)>& found);
std::vector<int32_t> OrderVariants(const EventLog& log,
                                   const VariantTable& groups);

// How an activity instance was formed.
enum class InstanceKind : uint8_t {
  kPaired,  // a start matched with a later complete: duration known
  kOpen,    // a start never completed: no end, no duration
  kAtomic,  // a single event (no lifecycle, "other", or a complete without
            // start): start == end, no duration
};

// One activity instance.
struct ActivityInstance {
  int32_t case_index = 0;
  int32_t activity = 0;  // id in log.activities()
  int32_t resource = -1;  // resource of the start event, -1 for none
  InstanceKind kind = InstanceKind::kAtomic;
  Timestamp start;
  std::optional<Timestamp> end;  // empty when open
  int64_t start_event = 0;       // event index of the start (or the event)
  int64_t end_event = -1;        // event index of the complete, -1 if none
  // Service time in seconds, set for kPaired only.
  std::optional<double> duration() const;
};

// Service time of one activity over its instances.
struct ActivityServiceTime {
  std::string activity;
  int64_t instances = 0;  // all kinds
  int64_t open = 0;       // kOpen instances (not in `duration`)
  DurationStats duration;  // over kPaired instances
};

// Activity instances of a log and what follows from them.
struct InstanceAnalysis {
  // Instances grouped by case (in case order), within a case ordered by
  // start (time, then event index).
  std::vector<ActivityInstance> instances;
  // num_cases + 1 offsets into `instances`.
  std::vector<int64_t> case_offsets;
  // Per case: true when the case has no open instance.
  std::vector<bool> case_complete;
  // Per activity that has instances, ordered by name.
  std::vector<ActivityServiceTime> service_times;
  // Directly-follows graph over consecutive instances of each case; the
  // edge duration is the wait from the end of one instance to the start of
  // the next (untimed when the first is open).
  Dfg dfg;
};

// Pairs lifecycle events into activity instances: per case and activity, a
// complete closes the oldest open start (FIFO).  A start never completed is
// an open instance: no duration, left out of the service-time statistics,
// and its case is not complete.  A complete without a start, and events
// with lifecycle none or other, are atomic instances.  Time and memory:
// linear in events (one ActivityInstance, 56 bytes, per instance).
InstanceAnalysis ActivityInstances(const EventLog& log);

// Time spent in one activity (or state).
struct ActivityTime {
  std::string activity;
  int64_t events = 0;      // occurrences
  DurationStats duration;  // over occurrences that have a next event
};

// Returns, per activity (ordered by name), the time from each of its events
// to the next event of the same case: the time spent in that activity or
// state (for a log from EventLog::FromHistory with kToState, the time in
// each state).  The last event of a case has no next event and is left out
// of the statistics.
std::vector<ActivityTime> TimeInActivity(const EventLog& log);

// The directly-follows graph and the time in each activity at once.  Both
// are statistics of the same gaps between consecutive events of a case,
// grouped by (activity, next activity) for the one and by the first
// activity alone for the other; gathered once, grouped by pair with the
// pairs of one activity adjacent, they serve both.  Equal to
// {DirectlyFollows(log), TimeInActivity(log)}, for little more than the
// cost of the first.
struct FollowsAnalysis {
  Dfg dfg;
  std::vector<ActivityTime> time_in_activity;
};
FollowsAnalysis DirectlyFollowsAndTimes(const EventLog& log);

// Cycle times of the cases.
struct CaseDurations {
  int64_t cases = 0;  // all cases, including those without events
  // Per case (indexed like the log): last minus first event in seconds;
  // empty for a case without events.
  std::vector<std::optional<double>> per_case;
  DurationStats duration;  // over cases with events
};

// Returns each case's cycle time (first to last event).  Cases without
// events have no duration: counted in `cases`, not in the statistics.
CaseDurations ComputeCaseDurations(const EventLog& log);

// One step of a funnel.
struct FunnelStep {
  std::string milestone;
  int64_t cases = 0;        // cases that reached this and all earlier steps
  double conversion = 0;    // cases / total cases (0 when the log is empty)
  double from_previous = 0;  // cases / cases of the previous step (first:
                             // same as conversion; 0 when that is 0)
};

struct FunnelResult {
  int64_t total_cases = 0;  // every case of the log, also empty ones
  std::vector<FunnelStep> steps;
};

// Counts the cases that reach `milestones` in order: a case reaches step k
// when it has an event of milestone 0, a later event of milestone 1, ...,
// and of milestone k (other events may come between; the earliest match is
// taken).  Fails with kInvalidArgument for an empty list and with
// kNotFound naming an activity that does not occur in the log
// (`unknown activity "Shipped" (expected one of Created, ...)`).
StatusOr<FunnelResult> Funnel(const EventLog& log,
                              const std::vector<std::string>& milestones);

// Rework of one activity.
struct ReworkEntry {
  std::string activity;
  int64_t cases = 0;        // cases where it occurs more than once
  int64_t repetitions = 0;  // occurrences beyond the first, over all cases
};

struct ReworkResult {
  int64_t cases_with_rework = 0;  // cases with any repeated activity
  // Activities with rework, by repetitions (descending), then name.
  std::vector<ReworkEntry> activities;
};

// Returns the activities repeated within a case.  Occurrences are
// activity instances as ActivityInstances forms them (a start/complete pair
// is one occurrence, not two), so lifecycle logs show no false rework.
ReworkResult Rework(const EventLog& log);

// Hand-overs from one resource to another.
struct HandOver {
  std::string from;
  std::string to;
  int64_t count = 0;
};

// Counts consecutive events of a case whose resource changes, per
// (from, to) pair; pairs where either event has no resource are not
// counted.  Ordered by count (descending), then from, then to.
std::vector<HandOver> HandOvers(const EventLog& log);

enum class Period { kDay, kWeek, kMonth };

// Cases started and finished in one period.
struct PeriodCount {
  Timestamp start;        // UTC midnight opening the period (weeks start
                          // on Monday, months on the 1st)
  int64_t arrivals = 0;   // cases whose first event falls in the period
  int64_t completions = 0;  // cases whose last event falls in the period
};

// Returns arrivals and throughput per period (UTC), every period from the
// earliest to the latest event, including periods with zero counts.
// Cases without events are left out; an empty log gives an empty vector.
std::vector<PeriodCount> ArrivalsAndThroughput(const EventLog& log,
                                               Period period);

}  // namespace crmflow

#endif  // CRMFLOW_ANALYTICS_H_
