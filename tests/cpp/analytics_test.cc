// analytics_test.cc: process-mining figures over EventLogs read from XES
// and built in memory.  Expected values are worked out by hand from the
// inputs, or (real logs) computed independently as noted.

#include "crmflow/analytics.h"

#include <gtest/gtest.h>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "crmflow/event_log.h"
#include "crmflow/xes.h"

namespace crmflow {
namespace {

const std::string kDataDir = CRMFLOW_TEST_DATA_DIR;

Timestamp Iso(const char* text) { return Timestamp::ParseIso(text).value(); }

EventLog LoadXes(const std::string& name) {
  auto log = ReadXesEventLog(kDataDir + "/" + name);
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  if (!log.ok()) return EventLog();
  return std::move(log).value();
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

TEST(StatsTest, PercentilesLikeNumpy) {
  // numpy.percentile(x, q) with the default linear method.
  std::vector<int64_t> x = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(*Percentile(x, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(*Percentile(x, 0.9), 3.7);  // 3 + 0.7 * (4 - 3)
  EXPECT_DOUBLE_EQ(*Percentile(x, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(*Percentile(x, 1.0), 4.0);
  std::vector<int64_t> y = {100, 0, 40, 10, 30, 20};
  EXPECT_DOUBLE_EQ(*Percentile(y, 0.9), 70.0);  // 40 + 0.5 * 60
  std::vector<int64_t> one = {7};
  EXPECT_DOUBLE_EQ(*Percentile(one, 0.9), 7.0);
  std::vector<int64_t> none;
  EXPECT_FALSE(Percentile(none, 0.5).has_value());
}

TEST(StatsTest, EmptySetIsNoneNeverNan) {
  std::vector<int64_t> none;
  DurationStats s = ComputeDurationStats(none);
  EXPECT_EQ(s.count, 0);
  EXPECT_FALSE(s.mean.has_value());
  EXPECT_FALSE(s.median.has_value());
  EXPECT_FALSE(s.p90.has_value());
  EXPECT_FALSE(s.min.has_value());
  EXPECT_FALSE(s.max.has_value());
  std::vector<int64_t> micros = {1000000, 2000000, 6000000};
  s = ComputeDurationStats(micros);
  EXPECT_EQ(s.count, 3);
  EXPECT_DOUBLE_EQ(*s.mean, 3.0);
  EXPECT_DOUBLE_EQ(*s.median, 2.0);
  EXPECT_DOUBLE_EQ(*s.p90, 5.2);  // 2 + 0.8 * 4
  EXPECT_DOUBLE_EQ(*s.min, 1.0);
  EXPECT_DOUBLE_EQ(*s.max, 6.0);
}

// ---------------------------------------------------------------------------
// C14: lifecycle start/complete pairing
// ---------------------------------------------------------------------------

TEST(AnalyticsC14, ActivityInstancesFromStartComplete) {
  EventLog log = LoadXes("analytics_c14_lifecycle.xes");
  ASSERT_EQ(log.num_cases(), 2);
  ASSERT_EQ(log.num_events(), 7);
  EXPECT_EQ(log.case_id(0), "SR-20");
  EXPECT_EQ(log.case_id(1), "SR-21");
  EXPECT_EQ(log.lifecycle(0), Lifecycle::kStart);
  EXPECT_EQ(log.lifecycle(1), Lifecycle::kComplete);
  EXPECT_EQ(log.resource_name(log.resource(2)), "ben");
  EXPECT_EQ(log.resource(4), -1);
  int amount = log.FindAttribute("amount");
  ASSERT_GE(amount, 0);
  EXPECT_EQ(log.attribute(amount, 3), "1200");
  EXPECT_EQ(log.attribute(amount, 2), "");

  InstanceAnalysis ia = ActivityInstances(log);
  ASSERT_EQ(ia.instances.size(), 4u);
  EXPECT_EQ(ia.case_offsets, (std::vector<int64_t>{0, 2, 4}));
  // SR-20: Review 10:00-10:30 (1800 s), Approve 10:40-11:00 (1200 s).
  EXPECT_EQ(log.activity_name(ia.instances[0].activity), "Review");
  EXPECT_EQ(ia.instances[0].kind, InstanceKind::kPaired);
  EXPECT_EQ(ia.instances[0].duration(), 1800.0);
  EXPECT_EQ(log.activity_name(ia.instances[1].activity), "Approve");
  EXPECT_EQ(ia.instances[1].duration(), 1200.0);
  // SR-21: Review 09:00-09:20 (1200 s), Approve started 09:30, open.
  EXPECT_EQ(ia.instances[2].duration(), 1200.0);
  EXPECT_EQ(ia.instances[3].kind, InstanceKind::kOpen);
  EXPECT_FALSE(ia.instances[3].end.has_value());
  EXPECT_FALSE(ia.instances[3].duration().has_value());
  EXPECT_EQ(ia.instances[3].start, Iso("2026-02-02T09:30:00Z"));
  EXPECT_EQ(ia.case_complete, (std::vector<bool>{true, false}));

  ASSERT_EQ(ia.service_times.size(), 2u);
  const ActivityServiceTime& approve = ia.service_times[0];
  EXPECT_EQ(approve.activity, "Approve");
  EXPECT_EQ(approve.instances, 2);
  EXPECT_EQ(approve.open, 1);
  EXPECT_EQ(approve.duration.count, 1);  // the open one is left out
  EXPECT_EQ(approve.duration.mean, 1200.0);
  const ActivityServiceTime& review = ia.service_times[1];
  EXPECT_EQ(review.activity, "Review");
  EXPECT_EQ(review.instances, 2);
  EXPECT_EQ(review.open, 0);
  EXPECT_EQ(review.duration.mean, 1500.0);  // (1800 + 1200) / 2
  EXPECT_EQ(review.duration.median, 1500.0);

  // Instance-level DFG: no self-loops from start/complete pairs; the wait
  // Review -> Approve is 10:30 -> 10:40 and 09:20 -> 09:30.
  ASSERT_EQ(ia.dfg.edges.size(), 1u);
  EXPECT_EQ(ia.dfg.edges[0].from, "Review");
  EXPECT_EQ(ia.dfg.edges[0].to, "Approve");
  EXPECT_EQ(ia.dfg.edges[0].count, 2);
  EXPECT_EQ(ia.dfg.edges[0].duration.count, 2);
  EXPECT_EQ(ia.dfg.edges[0].duration.min, 600.0);
  EXPECT_EQ(ia.dfg.edges[0].duration.max, 600.0);
  EXPECT_EQ(ia.dfg.start_activities, (std::vector<NameCount>{{"Review", 2}}));
  EXPECT_EQ(ia.dfg.end_activities, (std::vector<NameCount>{{"Approve", 2}}));

  // The event-level DFG does show the start -> complete self-loops.
  Dfg events = DirectlyFollows(log);
  EXPECT_EQ(events.Count("Review", "Review"), 2);
  EXPECT_EQ(events.Count("Approve", "Approve"), 1);
  EXPECT_EQ(events.Count("Review", "Approve"), 2);

  // Rework counts instances: a start/complete pair is one occurrence.
  EXPECT_EQ(Rework(log).cases_with_rework, 0);
}

TEST(AnalyticsInstances, LetterCaseOfStartAndCompleteDoesNotMatter) {
  // "Start" / "COMPLETE" pair as start / complete do; "suspend" is other,
  // an atomic instance of its own, as before texts were kept.
  EventLogBuilder b;
  int32_t c = b.AddCase("C");
  auto at = [](int s) { return Timestamp{int64_t{s} * 1000000}; };
  b.AddEvent(c, "Call", at(0), "", "Start", 0);
  b.AddEvent(c, "Call", at(5), "", "suspend", 1);
  b.AddEvent(c, "Call", at(30), "", "COMPLETE", 2);
  EventLog log = std::move(b).Build();

  InstanceAnalysis ia = ActivityInstances(log);

  EXPECT_EQ(log.lifecycle_text(0), "Start");
  EXPECT_EQ(log.lifecycle_text(2), "COMPLETE");
  EXPECT_EQ(log.lifecycle(1), Lifecycle::kOther);
  ASSERT_EQ(ia.instances.size(), 2u);
  EXPECT_EQ(ia.instances[0].kind, InstanceKind::kPaired);
  EXPECT_EQ(ia.instances[0].duration(), 30.0);
  EXPECT_EQ(ia.instances[1].kind, InstanceKind::kAtomic);
  EXPECT_EQ(ia.instances[1].start, at(5));
}

TEST(AnalyticsInstances, FifoMatchingAndCompleteWithoutStart) {
  EventLogBuilder b;
  int32_t c = b.AddCase("C");
  auto at = [](int s) { return Timestamp{int64_t{s} * 1000000}; };
  b.AddEvent(c, "Call", at(0), "", Lifecycle::kStart, 0);
  b.AddEvent(c, "Call", at(10), "", Lifecycle::kStart, 1);
  b.AddEvent(c, "Call", at(15), "", Lifecycle::kComplete, 2);
  b.AddEvent(c, "Call", at(40), "", Lifecycle::kComplete, 3);
  b.AddEvent(c, "Mail", at(50), "", Lifecycle::kComplete, 4);
  EventLog log = std::move(b).Build();
  InstanceAnalysis ia = ActivityInstances(log);
  ASSERT_EQ(ia.instances.size(), 3u);
  // FIFO: the first start (0 s) closes at 15 s, the second (10 s) at 40 s.
  EXPECT_EQ(ia.instances[0].duration(), 15.0);
  EXPECT_EQ(ia.instances[1].duration(), 30.0);
  EXPECT_EQ(ia.instances[2].kind, InstanceKind::kAtomic);
  EXPECT_FALSE(ia.instances[2].duration().has_value());
  EXPECT_EQ(ia.case_complete, (std::vector<bool>{true}));
  EXPECT_EQ(ia.dfg.Count("Call", "Call"), 1);  // two real instances
  EXPECT_EQ(ia.dfg.Count("Call", "Mail"), 1);
  // Wait from the end of the second call (40 s) to the mail (50 s).
  EXPECT_EQ(ia.dfg.Find("Call", "Mail")->duration.mean, 10.0);
  ReworkResult r = Rework(log);
  ASSERT_EQ(r.activities.size(), 1u);
  EXPECT_EQ(r.activities[0].activity, "Call");
  EXPECT_EQ(r.activities[0].repetitions, 1);
}

// ---------------------------------------------------------------------------
// C15: empty traces
// ---------------------------------------------------------------------------

void ExpectC15Log1(const EventLog& log) {
  ASSERT_EQ(log.num_cases(), 2);
  ASSERT_EQ(log.num_events(), 3);
  EXPECT_EQ(log.case_id(1), "SR-3");
  EXPECT_EQ(log.case_size(1), 0);
  int urgent = log.FindAttribute("urgent");
  ASSERT_GE(urgent, 0);
  EXPECT_EQ(log.attribute(urgent, 1), "true");

  CaseDurations d = ComputeCaseDurations(log);
  EXPECT_EQ(d.cases, 2);
  EXPECT_EQ(d.per_case[0], 10800.0);  // 09:00 -> 12:00
  EXPECT_FALSE(d.per_case[1].has_value());
  EXPECT_EQ(d.duration.count, 1);
  EXPECT_EQ(d.duration.mean, 10800.0);

  Dfg dfg = DirectlyFollows(log);
  ASSERT_EQ(dfg.edges.size(), 2u);
  EXPECT_EQ(dfg.Count("Opened", "Assigned"), 1);
  EXPECT_EQ(dfg.Count("Assigned", "Resolved"), 1);
  EXPECT_EQ(dfg.Find("Assigned", "Resolved")->duration.mean, 7200.0);
  EXPECT_EQ(dfg.start_activities, (std::vector<NameCount>{{"Opened", 1}}));
  EXPECT_EQ(dfg.end_activities, (std::vector<NameCount>{{"Resolved", 1}}));

  auto funnel = Funnel(log, {"Opened", "Assigned", "Resolved"});
  ASSERT_TRUE(funnel.ok()) << funnel.status().ToString();
  EXPECT_EQ(funnel->total_cases, 2);
  ASSERT_EQ(funnel->steps.size(), 3u);
  for (const FunnelStep& s : funnel->steps) {
    EXPECT_EQ(s.cases, 1) << s.milestone;
    EXPECT_DOUBLE_EQ(s.conversion, 0.5) << s.milestone;
  }
  EXPECT_EQ(funnel->steps[2].milestone, "Resolved");
  EXPECT_DOUBLE_EQ(funnel->steps[0].from_previous, 0.5);
  EXPECT_DOUBLE_EQ(funnel->steps[2].from_previous, 1.0);

  // The empty trace is its own (empty) variant; ties sort by sequence.
  std::vector<Variant> v = Variants(log);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_TRUE(v[0].activities.empty());
  EXPECT_EQ(v[0].example_case, "SR-3");
  EXPECT_EQ(v[1].activities,
            (std::vector<std::string>{"Opened", "Assigned", "Resolved"}));
}

TEST(AnalyticsC15, EmptyTraceIsACaseWithoutDuration) {
  ExpectC15Log1(LoadXes("analytics_c15_log1.xes"));
}

TEST(AnalyticsC15, GzipXesGivesTheSameLog) {
  ExpectC15Log1(LoadXes("analytics_c15_log1.xes.gz"));
}

TEST(AnalyticsC15, LogWithOnlyAnEmptyTrace) {
  EventLog log = LoadXes("analytics_c15_log2.xes");
  ASSERT_EQ(log.num_cases(), 1);
  EXPECT_EQ(log.num_events(), 0);
  EXPECT_EQ(log.case_id(0), "SR-4");
  Dfg dfg = DirectlyFollows(log);
  EXPECT_TRUE(dfg.edges.empty());
  EXPECT_TRUE(dfg.start_activities.empty());
  EXPECT_TRUE(dfg.end_activities.empty());
  CaseDurations d = ComputeCaseDurations(log);
  EXPECT_EQ(d.cases, 1);
  EXPECT_EQ(d.duration.count, 0);
  EXPECT_FALSE(d.duration.mean.has_value());
  EXPECT_FALSE(d.duration.median.has_value());
  EXPECT_FALSE(d.duration.p90.has_value());
  EXPECT_TRUE(TimeInActivity(log).empty());
  EXPECT_TRUE(ArrivalsAndThroughput(log, Period::kDay).empty());
  EXPECT_TRUE(HandOvers(log).empty());
  InstanceAnalysis ia = ActivityInstances(log);
  EXPECT_TRUE(ia.instances.empty());
  EXPECT_EQ(ia.case_complete, (std::vector<bool>{true}));
  std::vector<Variant> v = Variants(log);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].count, 1);
}

// ---------------------------------------------------------------------------
// XES errors
// ---------------------------------------------------------------------------

TEST(XesTest, ErrorsNameFileLineColumn) {
  auto bad = ReadXesEventLogFromString(
      "bad.xes", "<log>\n  <trace>\n    <event></trace>\n</log>\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kParseError);
  EXPECT_EQ(bad.status().message().rfind("bad.xes:3:", 0), 0u)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("mismatched tag"), std::string::npos)
      << bad.status().message();

  auto no_time = ReadXesEventLogFromString(
      "t.xes",
      "<log>\n<trace><string key=\"concept:name\" value=\"A\"/>\n"
      "  <event><string key=\"concept:name\" value=\"x\"/></event>\n"
      "</trace></log>\n");
  ASSERT_FALSE(no_time.ok());
  EXPECT_EQ(no_time.status().message(),
            "t.xes:3:3: event x without time:timestamp (expected a date "
            "attribute with key time:timestamp)");

  auto bad_time = ReadXesEventLogFromString(
      "d.xes",
      "<log><trace><string key=\"concept:name\" value=\"A\"/>\n"
      "<event><string key=\"concept:name\" value=\"x\"/>\n"
      "<date key=\"time:timestamp\" value=\"soon\"/></event>\n"
      "</trace></log>\n");
  ASSERT_FALSE(bad_time.ok());
  EXPECT_EQ(bad_time.status().message(),
            "d.xes:3:1: trace A: unparseable time \"soon\" (expected ISO "
            "8601)");

  auto late = ReadXesEventLogFromString(
      "y.xes",
      "<log><trace><string key=\"concept:name\" value=\"A\"/>\n"
      "<event><string key=\"concept:name\" value=\"x\"/>\n"
      "<date key=\"time:timestamp\" value=\"9999-12-31T23:30:00-01:00\"/>"
      "</event>\n</trace></log>\n");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().message(),
            "y.xes:3:1: trace A: time \"9999-12-31T23:30:00-01:00\" out of "
            "range (expected a time in years 1 to 9999 UTC)");

  auto no_name = ReadXesEventLogFromString("n.xes", "<log>\n <trace/></log>");
  ASSERT_FALSE(no_name.ok());
  EXPECT_EQ(no_name.status().message(),
            "n.xes:2:2: trace without concept:name (expected a string "
            "attribute with key concept:name)");

  auto missing = ReadXesEventLog(kDataDir + "/analytics_missing.xes");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

TEST(XesTest, EmptyOrMissingNamesAreRefusedWhereTheyAre) {
  // An empty activity, named at its attribute (line 3, column 3) with the
  // case, as the CSV reader words it.
  auto empty_activity = ReadXesEventLogFromString(
      "e.xes",
      "<log><trace><string key=\"concept:name\" value=\"t1\"/>\n"
      "<event>\n"
      "  <string key=\"concept:name\" value=\"\"/>\n"
      "  <date key=\"time:timestamp\" value=\"2021-01-01T00:00:00Z\"/>\n"
      "</event></trace></log>\n");
  // The same without a value attribute, and with the trace's name after
  // its events.
  auto no_value = ReadXesEventLogFromString(
      "v.xes",
      "<log><trace>\n"
      "<event><string key=\"concept:name\"/>"
      "<date key=\"time:timestamp\" value=\"2021-01-01T00:00:00Z\"/>"
      "</event>\n"
      "<string key=\"concept:name\" value=\"t2\"/></trace></log>\n");
  // No concept:name at all in the event.
  auto missing_activity = ReadXesEventLogFromString(
      "m.xes",
      "<log><trace><string key=\"concept:name\" value=\"t3\"/>\n"
      " <event><date key=\"time:timestamp\" value=\"2021-01-01T00:00:00Z\""
      "/></event>\n"
      "</trace></log>\n");
  // An empty case id: the trace's concept:name is "".
  auto empty_case = ReadXesEventLogFromString(
      "c.xes",
      "<log>\n<trace>\n <string key=\"concept:name\" value=\"\"/>\n"
      "</trace></log>\n");

  ASSERT_FALSE(empty_activity.ok());
  EXPECT_EQ(empty_activity.status().code(), Code::kParseError);
  EXPECT_EQ(empty_activity.status().message(),
            "e.xes:3:3: empty activity in case t1 (expected a value in the "
            "event's concept:name)");
  ASSERT_FALSE(no_value.ok());
  EXPECT_EQ(no_value.status().message(),
            "v.xes:2:8: empty activity in case t2 (expected a value in the "
            "event's concept:name)");
  ASSERT_FALSE(missing_activity.ok());
  EXPECT_EQ(missing_activity.status().message(),
            "m.xes:2:2: event without concept:name (expected a string "
            "attribute with key concept:name)");
  ASSERT_FALSE(empty_case.ok());
  EXPECT_EQ(empty_case.status().code(), Code::kParseError);
  EXPECT_EQ(empty_case.status().message(),
            "c.xes:3:2: empty case id (expected a value in the trace's "
            "concept:name)");
}

TEST(XesTest, TruncatedGzipFails) {
  std::FILE* f =
      std::fopen((kDataDir + "/analytics_c15_log1.xes.gz").c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string bytes(4096, '\0');
  bytes.resize(std::fread(bytes.data(), 1, bytes.size(), f));
  std::fclose(f);
  ASSERT_GT(bytes.size(), 100u);
  // The whole stream reads; half of it is a truncated gzip stream.
  ASSERT_TRUE(ReadXesEventLogFromString("full.xes.gz", bytes).ok());
  auto half = ReadXesEventLogFromString("half.xes.gz",
                                        bytes.substr(0, bytes.size() / 2));
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.status().code(), Code::kParseError);
  EXPECT_EQ(half.status().message().rfind("half.xes.gz", 0), 0u)
      << half.status().message();
  std::string corrupt = bytes;
  for (size_t i = 20; i < 60; ++i) corrupt[i] = static_cast<char>(0xff);
  auto bad = ReadXesEventLogFromString("bad.xes.gz", corrupt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kParseError);
  auto empty = ReadXesEventLogFromString("empty.xes", "");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), Code::kParseError);
}

TEST(XesTest, OffsetsNestedAttributesAndGlobals) {
  auto log = ReadXesEventLogFromString(
      "o.xes",
      "<?xml version='1.0'?><log>"
      "<global scope='event'><string key='concept:name' value='g'/></global>"
      "<trace><string key='concept:name' value='T'/>"
      "<string key='region' value='north'/>"
      "<event><string key='concept:name' value='b'/>"
      "<date key='time:timestamp' value='2026-02-02T10:00:00.5+01:00'/>"
      "<float key='cost' value='1.25'><int key='nested' value='1'/></float>"
      "</event>"
      "<event><string key='concept:name' value='a'/>"
      "<date key='time:timestamp' value='2026-02-02T09:00:00.5Z'/>"
      "</event></trace></log>");
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_EQ(log->num_events(), 2);
  // 10:00:00.5+01:00 == 09:00:00.5Z: a tie, file order kept (b first).
  EXPECT_EQ(log->activity_name(log->activity(0)), "b");
  EXPECT_EQ(log->time(0), Iso("2026-02-02T09:00:00.5Z"));
  EXPECT_EQ(log->time(1), log->time(0));
  EXPECT_EQ(log->num_attributes(), 1);  // cost; nested and trace attrs not
  EXPECT_EQ(log->attribute_name(0), "cost");
  EXPECT_EQ(log->attribute(0, 0), "1.25");
}

// ---------------------------------------------------------------------------
// Time in activity, rework, hand-overs, funnel, arrivals
// ---------------------------------------------------------------------------

// Case A (Monday 2026-03-02): a@0s r1, b@10s r2, a@30s r2, c@60s r1.
// Case B: a on Sunday 2026-03-08 23:59:00 r1, c 100 s later (Monday) r1.
EventLog SmallLog() {
  EventLogBuilder b;
  int32_t a = b.AddCase("A");
  int32_t bb = b.AddCase("B");
  const int64_t base = Iso("2026-03-02T00:00:00Z").micros;
  const int64_t sunday = Iso("2026-03-08T23:59:00Z").micros;
  auto s = [](int64_t from, int sec) {
    return Timestamp{from + int64_t{sec} * 1000000};
  };
  b.AddEvent(a, "a", s(base, 0), "r1", Lifecycle::kNone, 0);
  b.AddEvent(a, "b", s(base, 10), "r2", Lifecycle::kNone, 1);
  b.AddEvent(bb, "a", s(sunday, 0), "r1", Lifecycle::kNone, 2);
  b.AddEvent(a, "a", s(base, 30), "r2", Lifecycle::kNone, 3);
  b.AddEvent(a, "c", s(base, 60), "r1", Lifecycle::kNone, 4);
  b.AddEvent(bb, "c", s(sunday, 100), "r1", Lifecycle::kNone, 5);
  return std::move(b).Build();
}

TEST(AnalyticsVariants, TiesOrderBySequenceOfNames) {
  EventLogBuilder b;
  auto add = [&b](const char* id, std::vector<const char*> acts) {
    int32_t c = b.AddCase(id);
    int64_t t = 0;
    for (const char* a : acts) {
      b.AddEvent(c, a, Timestamp{t}, "", Lifecycle::kNone, t);
      ++t;
    }
  };
  // Activity ids follow first appearance (z = 0, a = 1, b = 2), names
  // sort a < b < z.
  add("1", {"z"});
  add("2", {"a", "b"});
  add("3", {"a"});
  add("4", {"a", "z"});
  add("5", {"a", "z"});
  std::vector<Variant> v = Variants(std::move(b).Build());
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].activities, (std::vector<std::string>{"a", "z"}));
  EXPECT_EQ(v[0].count, 2);
  EXPECT_EQ(v[0].example_case, "4");
  EXPECT_EQ(v[1].activities, (std::vector<std::string>{"a"}));
  EXPECT_EQ(v[2].activities, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(v[3].activities, (std::vector<std::string>{"z"}));
}

// A random log over `num_activities` activities: `num_cases` cases whose
// sequences share long prefixes (so that variants tie on count and on
// every packed prefix), gaps of 0-99 s, some cases without events.
EventLog RandomLog(int num_activities, int num_cases, unsigned seed) {
  std::mt19937 rng(seed);
  EventLogBuilder b;
  for (int c = 0; c < num_cases; ++c) {
    int32_t id = b.AddCase("case " + std::to_string(c));
    const int length = c % 17 == 0 ? 0 : 10 + static_cast<int>(rng() % 6);
    int64_t t = int64_t{1000000} * (rng() % 1000);
    for (int k = 0; k < length; ++k) {
      // The first 11 activities follow one pattern; the rest vary.
      const int a = k < 11 ? (k * 7) % num_activities
                           : static_cast<int>(rng() % num_activities);
      t += int64_t{1000000} * (rng() % 100);
      b.AddEvent(id, "act " + std::to_string(a), Timestamp{t}, "",
                 Lifecycle::kNone, 0);
    }
  }
  return std::move(b).Build();
}

// numpy.percentile's linear interpolation on a sorted copy.
double NaivePercentile(std::vector<int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return (v[lo] + (v[hi] - v[lo]) * (pos - lo)) / 1e6;
}

void ExpectStats(const DurationStats& s, const std::vector<int64_t>& gaps) {
  ASSERT_EQ(s.count, static_cast<int64_t>(gaps.size()));
  if (gaps.empty()) {
    EXPECT_FALSE(s.mean.has_value());
    return;
  }
  int64_t sum = 0;
  for (int64_t g : gaps) sum += g;
  EXPECT_DOUBLE_EQ(*s.mean, static_cast<double>(sum) / gaps.size() / 1e6);
  EXPECT_NEAR(*s.median, NaivePercentile(gaps, 0.5), 1e-9);
  EXPECT_NEAR(*s.p90, NaivePercentile(gaps, 0.9), 1e-9);
  EXPECT_DOUBLE_EQ(*s.min, *std::min_element(gaps.begin(), gaps.end()) / 1e6);
  EXPECT_DOUBLE_EQ(*s.max, *std::max_element(gaps.begin(), gaps.end()) / 1e6);
}

// DFG and time in activity against maps of names built here from the raw
// events, for a log that fits the per-pair arrays (20 activities) and one
// that does not (300 activities: 90,000 pairs).
// DirectlyFollowsAndTimes, DirectlyFollows and TimeInActivity against
// maps of gaps built here.
void ExpectFollowsMatchNaive(const EventLog& log) {
  {
    std::map<std::pair<std::string, std::string>, std::vector<int64_t>> pairs;
    std::map<std::string, std::vector<int64_t>> after;
    std::map<std::string, int64_t> events;
    for (int32_t c = 0; c < log.num_cases(); ++c) {
      for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
        const std::string& a = log.activity_name(log.activity(e));
        ++events[a];
        after[a];
        if (e + 1 == log.case_end(c)) continue;
        const int64_t gap = log.time(e + 1).micros - log.time(e).micros;
        pairs[{a, log.activity_name(log.activity(e + 1))}].push_back(gap);
        after[a].push_back(gap);
      }
    }
    // Expected edge order: count descending, then from, then to.
    std::vector<std::pair<std::string, std::string>> order;
    for (const auto& [key, gaps] : pairs) order.push_back(key);
    std::stable_sort(order.begin(), order.end(), [&](const auto& x,
                                                     const auto& y) {
      return pairs[x].size() > pairs[y].size();
    });
    FollowsAnalysis joint = DirectlyFollowsAndTimes(log);
    Dfg alone = DirectlyFollows(log);
    std::vector<ActivityTime> times = TimeInActivity(log);
    for (const Dfg* dfg : {&joint.dfg, &alone}) {
      ASSERT_EQ(dfg->edges.size(), order.size());
      for (size_t i = 0; i < order.size(); ++i) {
        const DfgEdge& edge = dfg->edges[i];
        EXPECT_EQ(edge.from, order[i].first);
        EXPECT_EQ(edge.to, order[i].second);
        EXPECT_EQ(edge.count, static_cast<int64_t>(pairs[order[i]].size()));
        ExpectStats(edge.duration, pairs[order[i]]);
      }
    }
    EXPECT_EQ(joint.dfg.start_activities, alone.start_activities);
    EXPECT_EQ(joint.dfg.end_activities, alone.end_activities);
    for (const std::vector<ActivityTime>* t : {&joint.time_in_activity,
                                               &times}) {
      ASSERT_EQ(t->size(), after.size());
      size_t i = 0;
      for (const auto& [name, gaps] : after) {  // std::map: by name
        const ActivityTime& at = (*t)[i++];
        EXPECT_EQ(at.activity, name);
        EXPECT_EQ(at.events, events[name]);
        ExpectStats(at.duration, gaps);
      }
    }
  }
}

TEST(AnalyticsFollows, JointAndSeparateMatchNaiveCounts) {
  for (int num_activities : {20, 300}) {
    SCOPED_TRACE(num_activities);
    ExpectFollowsMatchNaive(RandomLog(num_activities, 3000, 11));
  }
}

// Variants against a map of name sequences built here, with sequences
// longer than the prefix the sort packs into 64 bits and equal on it.
void ExpectVariantsMatchNaive(const EventLog& log) {
  {
    std::map<std::vector<std::string>, std::pair<int64_t, std::string>> seen;
    for (int32_t c = 0; c < log.num_cases(); ++c) {
      std::vector<std::string> seq;
      for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
        seq.push_back(log.activity_name(log.activity(e)));
      }
      auto [it, added] = seen.try_emplace(seq, 0, log.case_id(c));
      ++it->second.first;
    }
    // std::map iterates sequences in lexicographic order of names; a
    // stable sort by count keeps it among equal counts.
    std::vector<std::vector<std::string>> order;
    for (const auto& [seq, v] : seen) order.push_back(seq);
    std::stable_sort(order.begin(), order.end(), [&](const auto& x,
                                                     const auto& y) {
      return seen[x].first > seen[y].first;
    });
    std::vector<Variant> v = Variants(log);
    ASSERT_EQ(v.size(), order.size());
    for (size_t i = 0; i < order.size(); ++i) {
      EXPECT_EQ(v[i].activities, order[i]) << i;
      EXPECT_EQ(v[i].count, seen[order[i]].first) << i;
      EXPECT_EQ(v[i].example_case, seen[order[i]].second) << i;
    }
  }
}

TEST(AnalyticsVariants, LongTiedSequencesMatchNaiveOrder) {
  for (int num_activities : {5, 40, 300}) {
    SCOPED_TRACE(num_activities);
    ExpectVariantsMatchNaive(RandomLog(num_activities, 4000, 5));
  }
}

// Logs large enough to be split between threads (parts of 65k events)
// give the naive figures with 1, 2 and 3 threads: the dense pair arrays
// with few activities (four parts a thread) and with many (one part a
// thread), and the variant shards.
TEST(AnalyticsThreads, ResultsDoNotDependOnThreads) {
  for (int num_activities : {20, 200}) {
    SCOPED_TRACE(num_activities);
    const EventLog log = RandomLog(num_activities, 30000, 3);
    ASSERT_GT(log.num_events(), 300000);
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(threads);
      SetWorkerThreads(threads);
      EXPECT_EQ(WorkerThreads(), threads);
      ExpectFollowsMatchNaive(log);
      ExpectVariantsMatchNaive(log);
    }
  }
  SetWorkerThreads(0);
}

// GroupVariantsInOrder finds the variants of GroupVariants, each with its
// first case, in the order of those cases, and reports them as found.
TEST(AnalyticsThreads, VariantsInOrderOfFirstCase) {
  const EventLog log = RandomLog(40, 30000, 8);
  std::map<std::vector<int32_t>, std::pair<int32_t, int64_t>> naive;
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    std::vector<int32_t> seq(
        log.activity_column().begin() + log.case_begin(c),
        log.activity_column().begin() + log.case_end(c));
    auto [it, added] = naive.try_emplace(seq, c, 0);
    ++it->second.second;
  }
  VariantTable in_order;
  std::vector<size_t> reported;
  GroupVariantsInOrder(log, &in_order,
                       [&](size_t k) { reported.push_back(k); });
  ASSERT_EQ(in_order.count.size(), naive.size());
  ASSERT_FALSE(reported.empty());
  EXPECT_EQ(reported.back(), naive.size());
  EXPECT_TRUE(std::is_sorted(reported.begin(), reported.end()));
  EXPECT_TRUE(std::is_sorted(in_order.example_case.begin(),
                             in_order.example_case.end()));
  for (int threads : {1, 2}) {
    SetWorkerThreads(threads);
    const VariantTable grouped = GroupVariants(log);
    const VariantTable* tables[] = {&in_order, &grouped};
    for (const VariantTable* t : tables) {
      ASSERT_EQ(t->count.size(), naive.size());
      for (size_t i = 0; i < t->count.size(); ++i) {
        const int32_t c = t->example_case[i];
        std::vector<int32_t> seq(
            log.activity_column().begin() + log.case_begin(c),
            log.activity_column().begin() + log.case_end(c));
        const auto& [first, count] = naive.at(seq);
        EXPECT_EQ(c, first);
        EXPECT_EQ(t->count[i], count);
      }
    }
    // OrderVariants puts either grouping in VariantIds' order.
    const VariantTable ids = VariantIds(log);
    const std::vector<int32_t> order = OrderVariants(log, in_order);
    ASSERT_EQ(order.size(), ids.count.size());
    for (size_t i = 0; i < order.size(); ++i) {
      EXPECT_EQ(in_order.example_case[order[i]], ids.example_case[i]);
      EXPECT_EQ(in_order.count[order[i]], ids.count[i]);
    }
  }
  SetWorkerThreads(0);
}

TEST(AnalyticsSmall, TimeInActivity) {
  std::vector<ActivityTime> t = TimeInActivity(SmallLog());
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].activity, "a");
  EXPECT_EQ(t[0].events, 3);
  // a lasts 10 s and 30 s in A, 100 s in B.
  EXPECT_EQ(t[0].duration.count, 3);
  EXPECT_DOUBLE_EQ(*t[0].duration.mean, 140.0 / 3);
  EXPECT_DOUBLE_EQ(*t[0].duration.median, 30.0);
  EXPECT_DOUBLE_EQ(*t[0].duration.p90, 86.0);  // 30 + 0.8 * 70
  EXPECT_EQ(t[1].activity, "b");
  EXPECT_EQ(t[1].duration.mean, 20.0);
  EXPECT_EQ(t[2].activity, "c");
  EXPECT_EQ(t[2].events, 2);
  EXPECT_FALSE(t[2].duration.mean.has_value());  // always last
}

TEST(AnalyticsSmall, ReworkAndHandOvers) {
  EventLog log = SmallLog();
  ReworkResult r = Rework(log);
  EXPECT_EQ(r.cases_with_rework, 1);
  ASSERT_EQ(r.activities.size(), 1u);
  EXPECT_EQ(r.activities[0].activity, "a");
  EXPECT_EQ(r.activities[0].cases, 1);
  EXPECT_EQ(r.activities[0].repetitions, 1);
  std::vector<HandOver> h = HandOvers(log);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].from, "r1");
  EXPECT_EQ(h[0].to, "r2");
  EXPECT_EQ(h[0].count, 1);
  EXPECT_EQ(h[1].from, "r2");
  EXPECT_EQ(h[1].to, "r1");
  EXPECT_EQ(h[1].count, 1);
}

TEST(AnalyticsSmall, FunnelInOrder) {
  EventLog log = SmallLog();
  auto f = Funnel(log, {"a", "c"});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->steps[0].cases, 2);
  EXPECT_EQ(f->steps[1].cases, 2);
  EXPECT_DOUBLE_EQ(f->steps[1].conversion, 1.0);
  // c then a: no case has an a after its c.
  f = Funnel(log, {"c", "a"});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->steps[0].cases, 2);
  EXPECT_EQ(f->steps[1].cases, 0);
  EXPECT_DOUBLE_EQ(f->steps[1].conversion, 0.0);
  auto unknown = Funnel(log, {"a", "Shipped"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
  EXPECT_EQ(unknown.status().message(),
            "unknown activity \"Shipped\" (expected one of a, b, c)");
  EXPECT_EQ(Funnel(log, {}).status().code(), Code::kInvalidArgument);
}

TEST(AnalyticsSmall, ArrivalsAndThroughput) {
  EventLog log = SmallLog();
  std::vector<PeriodCount> day = ArrivalsAndThroughput(log, Period::kDay);
  ASSERT_EQ(day.size(), 8u);  // 03-02 .. 03-09
  EXPECT_EQ(day[0].start, Iso("2026-03-02T00:00:00Z"));
  EXPECT_EQ(day[0].arrivals, 1);
  EXPECT_EQ(day[0].completions, 1);
  EXPECT_EQ(day[3].arrivals + day[3].completions, 0);
  EXPECT_EQ(day[6].start, Iso("2026-03-08T00:00:00Z"));
  EXPECT_EQ(day[6].arrivals, 1);
  EXPECT_EQ(day[6].completions, 0);
  EXPECT_EQ(day[7].completions, 1);
  std::vector<PeriodCount> week = ArrivalsAndThroughput(log, Period::kWeek);
  ASSERT_EQ(week.size(), 2u);
  EXPECT_EQ(week[0].start, Iso("2026-03-02T00:00:00Z"));  // a Monday
  EXPECT_EQ(week[0].arrivals, 2);
  EXPECT_EQ(week[0].completions, 1);
  EXPECT_EQ(week[1].start, Iso("2026-03-09T00:00:00Z"));
  EXPECT_EQ(week[1].completions, 1);
  std::vector<PeriodCount> month = ArrivalsAndThroughput(log, Period::kMonth);
  ASSERT_EQ(month.size(), 1u);
  EXPECT_EQ(month[0].start, Iso("2026-03-01T00:00:00Z"));
  EXPECT_EQ(month[0].arrivals, 2);
  EXPECT_EQ(month[0].completions, 2);
}

TEST(AnalyticsSmall, PeriodsBefore1970AndAcrossYears) {
  EventLogBuilder b;
  int32_t c = b.AddCase("old");
  b.AddEvent(c, "x", Iso("1969-12-31T23:00:00Z"), "", Lifecycle::kNone, 0);
  b.AddEvent(c, "y", Iso("1970-02-01T00:00:00Z"), "", Lifecycle::kNone, 1);
  EventLog log = std::move(b).Build();
  std::vector<PeriodCount> m = ArrivalsAndThroughput(log, Period::kMonth);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].start, Iso("1969-12-01T00:00:00Z"));
  EXPECT_EQ(m[2].start, Iso("1970-02-01T00:00:00Z"));
  std::vector<PeriodCount> w = ArrivalsAndThroughput(log, Period::kWeek);
  EXPECT_EQ(w[0].start, Iso("1969-12-29T00:00:00Z"));  // a Monday
}

// ---------------------------------------------------------------------------
// Real data
// ---------------------------------------------------------------------------

const char kHelpdesk[] =
    "/work/shared/data/helpdesk_ticket_log/helpdesk.xes.gz";
const char kRunning[] =
    "/work/shared/data/pm4py_small_example_logs/running-example.xes";

TEST(AnalyticsRealData, Helpdesk) {
  if (!std::filesystem::exists(kHelpdesk)) GTEST_SKIP() << "no " << kHelpdesk;
  auto log = ReadXesEventLog(kHelpdesk);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  // Expected values computed independently with a short Python script over
  // helpdesk_events.csv.gz (csv.DictReader; events of each case_id sorted
  // by (timestamp, event_index); Counter over consecutive pairs and over
  // activity tuples), and matching the README's 4,580 traces / 21,348
  // events / 4,384 starting with "Assign seriousness".
  EXPECT_EQ(log->num_cases(), 4580);
  EXPECT_EQ(log->num_events(), 21348);
  EXPECT_EQ(log->num_attributes(), 9);
  Dfg dfg = DirectlyFollows(*log);
  ASSERT_FALSE(dfg.edges.empty());
  EXPECT_EQ(dfg.edges[0].from, "Resolve ticket");
  EXPECT_EQ(dfg.edges[0].to, "Closed");
  EXPECT_EQ(dfg.edges[0].count, 4558);
  EXPECT_EQ(dfg.Count("Assign seriousness", "Take in charge ticket"), 4160);
  EXPECT_EQ(dfg.start_activities[0], (NameCount{"Assign seriousness", 4384}));
  std::vector<Variant> v = Variants(*log);
  EXPECT_EQ(v.size(), 226u);
  EXPECT_EQ(v[0].count, 2366);
  EXPECT_EQ(v[0].activities,
            (std::vector<std::string>{"Assign seriousness",
                                      "Take in charge ticket",
                                      "Resolve ticket", "Closed"}));
}

TEST(AnalyticsRealData, RunningExample) {
  if (!std::filesystem::exists(kRunning)) GTEST_SKIP() << "no " << kRunning;
  auto log = ReadXesEventLog(kRunning);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  // Expected values from a Python script over the XES with
  // xml.etree.ElementTree and datetime.fromisoformat (README: 6 cases, 42
  // events).
  EXPECT_EQ(log->num_cases(), 6);
  EXPECT_EQ(log->num_events(), 42);
  EXPECT_EQ(log->case_id(0), "3");
  Dfg dfg = DirectlyFollows(*log);
  EXPECT_EQ(dfg.edges[0].from, "check ticket");
  EXPECT_EQ(dfg.edges[0].to, "decide");
  EXPECT_EQ(dfg.edges[0].count, 6);
  EXPECT_EQ(Variants(*log).size(), 6u);
  std::vector<HandOver> h = HandOvers(*log);
  ASSERT_FALSE(h.empty());
  EXPECT_EQ(h[0].from, "Sara");
  EXPECT_EQ(h[0].to, "Ellen");
  EXPECT_EQ(h[0].count, 4);
  CaseDurations d = ComputeCaseDurations(*log);
  EXPECT_EQ(d.per_case[0], 1368780.0);  // case 3
  // 2010-12-30T14:32:00.000+01:00 is 13:32 UTC.
  EXPECT_EQ(log->time(0), Iso("2010-12-30T13:32:00Z"));
}

// ---------------------------------------------------------------------------
// Speed (run with --gtest_also_run_disabled_tests on a Release build)
// ---------------------------------------------------------------------------

// 10 M events in 1 M cases of 10 events over 12 activities.  `paths` > 0:
// each case follows one of `paths` fixed sequences (a realistic variant
// count); 0: every activity after the first is random (about 1 M
// distinct variants, the worst case for Variants).
EventLog SyntheticLog(int paths) {
  const int64_t kCases = 1000000;
  const int kPerCase = 10;
  const char* names[] = {"Created", "Assigned", "Quoted", "Approved",
                         "Shipped", "Invoiced", "Paid", "Closed",
                         "Reopened", "Escalated", "Waiting", "Called"};
  uint64_t rng = 12345;
  auto next = [&rng] {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return rng >> 33;
  };
  std::vector<std::vector<int>> templates(paths);
  for (auto& t : templates) {
    t.push_back(0);
    for (int k = 1; k < kPerCase; ++k) t.push_back(next() % 12);
  }
  EventLogBuilder b;
  std::string id;
  for (int64_t i = 0; i < kCases; ++i) {
    id = "C" + std::to_string(i);
    int32_t c = b.AddCase(id);
    const std::vector<int>* t =
        paths > 0 ? &templates[next() % paths] : nullptr;
    for (int k = 0; k < kPerCase; ++k) {
      int a = t != nullptr ? (*t)[k] : (k == 0 ? 0 : next() % 12);
      b.AddEvent(c, names[a], Timestamp{i * 1000 + k * 60000000},
                 names[next() % 12], Lifecycle::kNone, i * kPerCase + k);
    }
  }
  return std::move(b).Build();
}

// CPU time of this thread in milliseconds (steadier than wall time on a
// shared machine).
double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void TimeAnalytics(int paths) {
  double t0 = CpuMs();
  EventLog log = SyntheticLog(paths);
  double t1 = CpuMs();
  Dfg dfg = DirectlyFollows(log);
  double t2 = CpuMs();
  std::vector<Variant> v = Variants(log);
  double t3 = CpuMs();
  InstanceAnalysis ia = ActivityInstances(log);
  double t4 = CpuMs();
  int64_t pairs = 0;
  for (const DfgEdge& e : dfg.edges) pairs += e.count;
  EXPECT_EQ(pairs, 9000000);
  EXPECT_EQ(ia.instances.size(), 10000000u);
  std::printf("paths %d (cpu ms): build %.0f, dfg %.0f, variants %.0f "
              "(%zu variants), instances %.0f\n",
              paths, t1 - t0, t2 - t1, t3 - t2, v.size(), t4 - t3);
}

TEST(AnalyticsPerf, DISABLED_TenMillionEvents) {
  TimeAnalytics(50);
  TimeAnalytics(0);
}

TEST(AnalyticsPerf, DISABLED_LoadHelpdesk) {
  if (!std::filesystem::exists(kHelpdesk)) GTEST_SKIP();
  for (int i = 0; i < 3; ++i) {
    double t0 = CpuMs();
    auto log = ReadXesEventLog(kHelpdesk);
    double t1 = CpuMs();
    ASSERT_TRUE(log.ok());
    std::printf("helpdesk.xes.gz: %.1f cpu ms\n", t1 - t0);
  }
}

}  // namespace
}  // namespace crmflow
