// event_log_test.cc: the columnar event log, its CSV reader and writer, and
// the history and column builders.  Expected values are worked out by hand
// from the inputs written here.

#include "crmflow/event_log.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "crmflow/analytics.h"

namespace crmflow {
namespace {

const std::string kDataDir = CRMFLOW_TEST_DATA_DIR;

Timestamp Iso(const char* text) { return Timestamp::ParseIso(text).value(); }

// C04: 1000 cases with tied timestamps in file order, plus SR-X whose
// rows are out of time order by 75 ms.
std::string C04Csv(bool with_x) {
  std::string csv = "case_id,activity,timestamp\n";
  char id[16];
  for (int i = 1; i <= 1000; ++i) {
    std::snprintf(id, sizeof(id), "SR-%04d", i);
    csv += std::string(id) + ",Created,2026-03-02T09:00:00Z\n";
    csv += std::string(id) + ",Assigned,2026-03-02T09:00:00Z\n";
    csv += std::string(id) + ",Resolved,2026-03-02T10:00:00Z\n";
  }
  if (with_x) {
    csv += "SR-X,Created,2026-03-02T09:00:00.120Z\n";
    csv += "SR-X,Assigned,2026-03-02T09:00:00.045Z\n";
  }
  return csv;
}

EventLog LoadC04(bool with_x) {
  auto loaded = ReadCsvEventLogFromString("c04.csv", C04Csv(with_x), {});
  EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(loaded->rejects.empty());
  return std::move(loaded.value().log);
}

TEST(EventLogC04, ThousandCasesWithTiesKeepFileOrder) {
  EventLog log = LoadC04(false);
  ASSERT_EQ(log.num_cases(), 1000);
  ASSERT_EQ(log.num_events(), 3000);
  EXPECT_EQ(log.case_id(0), "SR-0001");
  EXPECT_EQ(log.case_id(999), "SR-1000");
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    ASSERT_EQ(log.case_size(c), 3);
    int64_t b = log.case_begin(c);
    EXPECT_EQ(log.activity_name(log.activity(b)), "Created");
    EXPECT_EQ(log.activity_name(log.activity(b + 1)), "Assigned");
    EXPECT_EQ(log.activity_name(log.activity(b + 2)), "Resolved");
  }
  Dfg dfg = DirectlyFollows(log);
  ASSERT_EQ(dfg.edges.size(), 2u);
  EXPECT_EQ(dfg.Count("Created", "Assigned"), 1000);
  EXPECT_EQ(dfg.Count("Assigned", "Resolved"), 1000);
  EXPECT_EQ(dfg.Count("Assigned", "Created"), 0);
  const DfgEdge* ca = dfg.Find("Created", "Assigned");
  ASSERT_NE(ca, nullptr);
  EXPECT_EQ(ca->duration.count, 1000);
  EXPECT_EQ(ca->duration.mean, 0.0);
  EXPECT_EQ(ca->duration.median, 0.0);
  EXPECT_EQ(ca->duration.p90, 0.0);
  EXPECT_EQ(dfg.Find("Assigned", "Resolved")->duration.mean, 3600.0);
  ASSERT_EQ(dfg.start_activities.size(), 1u);
  EXPECT_EQ(dfg.start_activities[0], (NameCount{"Created", 1000}));
  std::vector<Variant> variants = Variants(log);
  ASSERT_EQ(variants.size(), 1u);
  EXPECT_EQ(variants[0].activities,
            (std::vector<std::string>{"Created", "Assigned", "Resolved"}));
  EXPECT_EQ(variants[0].count, 1000);
}

TEST(EventLogC04, SubSecondOrderAndWholeLog) {
  EventLog log = LoadC04(true);
  ASSERT_EQ(log.num_cases(), 1001);
  int32_t x = log.FindCase("SR-X");
  ASSERT_EQ(x, 1000);
  ASSERT_EQ(log.case_size(x), 2);
  int64_t b = log.case_begin(x);
  EXPECT_EQ(log.activity_name(log.activity(b)), "Assigned");
  EXPECT_EQ(log.activity_name(log.activity(b + 1)), "Created");
  EXPECT_EQ(log.time(b + 1).micros - log.time(b).micros, 75000);
  // The original rows: Created is data record 3000, Assigned 3001.
  EXPECT_EQ(log.row(b), 3001);
  EXPECT_EQ(log.row(b + 1), 3000);

  Dfg dfg = DirectlyFollows(log);
  ASSERT_EQ(dfg.edges.size(), 3u);
  EXPECT_EQ(dfg.Count("Created", "Assigned"), 1000);
  EXPECT_EQ(dfg.Count("Assigned", "Resolved"), 1000);
  EXPECT_EQ(dfg.Count("Assigned", "Created"), 1);
  EXPECT_DOUBLE_EQ(*dfg.Find("Assigned", "Created")->duration.mean, 0.075);
  // Still 0 s: SR-X adds no Created -> Assigned pair.
  EXPECT_EQ(dfg.Find("Created", "Assigned")->duration.max, 0.0);
  EXPECT_EQ(dfg.start_activities,
            (std::vector<NameCount>{{"Created", 1000}, {"Assigned", 1}}));
  EXPECT_EQ(dfg.end_activities,
            (std::vector<NameCount>{{"Resolved", 1000}, {"Created", 1}}));

  // SR-X on its own.
  EventLogBuilder only_x;
  int32_t c = only_x.AddCase("SR-X");
  for (int64_t e = b; e < log.case_end(x); ++e) {
    only_x.AddEvent(c, log.activity_name(log.activity(e)), log.time(e), "",
                    Lifecycle::kNone, log.row(e));
  }
  Dfg x_dfg = DirectlyFollows(std::move(only_x).Build());
  EXPECT_EQ(x_dfg.start_activities,
            (std::vector<NameCount>{{"Assigned", 1}}));
  ASSERT_EQ(x_dfg.edges.size(), 1u);
  EXPECT_EQ(x_dfg.edges[0].from, "Assigned");
  EXPECT_EQ(x_dfg.edges[0].to, "Created");
  EXPECT_DOUBLE_EQ(*x_dfg.edges[0].duration.median, 0.075);
}

TEST(EventLogC04, TenLoadsGiveIdenticalResults) {
  EventLog first = LoadC04(true);
  EventColumns want = first.ToColumns();
  Dfg want_dfg = DirectlyFollows(first);
  std::vector<Variant> want_variants = Variants(first);
  for (int i = 0; i < 10; ++i) {
    EventLog log = LoadC04(true);
    EventColumns got = log.ToColumns();
    EXPECT_EQ(got.case_ids, want.case_ids);
    EXPECT_EQ(got.activities, want.activities);
    EXPECT_EQ(got.timestamps, want.timestamps);
    EXPECT_EQ(got.rows, want.rows);
    Dfg dfg = DirectlyFollows(log);
    ASSERT_EQ(dfg.edges.size(), want_dfg.edges.size());
    for (size_t k = 0; k < dfg.edges.size(); ++k) {
      EXPECT_EQ(dfg.edges[k].from, want_dfg.edges[k].from);
      EXPECT_EQ(dfg.edges[k].to, want_dfg.edges[k].to);
      EXPECT_EQ(dfg.edges[k].count, want_dfg.edges[k].count);
      EXPECT_EQ(dfg.edges[k].duration.mean, want_dfg.edges[k].duration.mean);
    }
    EXPECT_EQ(dfg.start_activities, want_dfg.start_activities);
    std::vector<Variant> variants = Variants(log);
    ASSERT_EQ(variants.size(), want_variants.size());
    for (size_t k = 0; k < variants.size(); ++k) {
      EXPECT_EQ(variants[k].activities, want_variants[k].activities);
      EXPECT_EQ(variants[k].count, want_variants[k].count);
    }
  }
}

CsvEventLogOptions C13Options() {
  CsvEventLogOptions o;
  o.attribute_columns = {"comment"};
  return o;
}

TEST(EventLogC13, BomSemicolonQuotedNewlinesAndQuotes) {
  auto loaded = ReadCsvEventLog(kDataDir + "/analytics_c13_bom_semicolon.csv",
                                C13Options());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const EventLog& log = loaded->log;
  ASSERT_EQ(log.num_cases(), 1);
  ASSERT_EQ(log.num_events(), 2);
  EXPECT_EQ(log.case_id(0), "SR-1");
  EXPECT_EQ(log.activity_name(log.activity(0)), "Opened");
  EXPECT_EQ(log.activity_name(log.activity(1)), "Resolved");
  int comment = log.FindAttribute("comment");
  ASSERT_EQ(comment, 0);
  EXPECT_EQ(log.attribute(comment, 0),
            "Kunde meldet:\nDrucker druckt nicht; Papierstau");
  EXPECT_EQ(log.attribute(comment, 1), "Teil \"X-12\" getauscht");
  Dfg dfg = DirectlyFollows(log);
  ASSERT_EQ(dfg.edges.size(), 1u);
  EXPECT_EQ(dfg.Count("Opened", "Resolved"), 1);
  EXPECT_EQ(dfg.edges[0].duration.mean, 5400.0);

  // Export and import again: identical events.
  std::string path = testing::TempDir() + "/analytics_c13_roundtrip.csv";
  ASSERT_TRUE(WriteEventLogCsv(log, path, ';').ok());
  auto again = ReadCsvEventLog(path, C13Options());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EventColumns a = log.ToColumns();
  EventColumns b = again->log.ToColumns();
  EXPECT_EQ(a.case_ids, b.case_ids);
  EXPECT_EQ(a.activities, b.activities);
  EXPECT_EQ(a.timestamps, b.timestamps);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.attribute_names, b.attribute_names);
  EXPECT_EQ(a.attribute_values, b.attribute_values);
  std::remove(path.c_str());
}

TEST(EventLogCsvWriter, QuotesOnlyWhenNeeded) {
  EventLogBuilder b;
  int note = b.AddAttribute("note");
  int32_t c = b.AddCase("A,1");
  b.AddEvent(c, "Say \"hi\"", Iso("2026-01-01T00:00:00Z"), "bo",
             Lifecycle::kStart, 0);
  b.SetAttribute(note, "x\ny");
  b.AddEvent(c, "Plain", Iso("2026-01-01T00:00:01.5Z"), "", Lifecycle::kNone,
             1);
  EXPECT_EQ(EventLogToCsv(std::move(b).Build()),
            "case_id,activity,timestamp,resource,lifecycle,note\n"
            "\"A,1\",\"Say \"\"hi\"\"\",2026-01-01T00:00:00.000000Z,bo,start,"
            "\"x\ny\"\n"
            "\"A,1\",Plain,2026-01-01T00:00:01.500000Z,,,\n");
}

TEST(EventLogCsv, RaiseNamesFileLineColumn) {
  std::string csv =
      "case_id,activity,timestamp\n"
      "A,Open,2026-01-01T00:00:00Z\n"
      "A,Close,yesterday\n";
  auto loaded = ReadCsvEventLogFromString("bad.csv", csv, {});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Code::kParseError);
  EXPECT_EQ(loaded.status().message(),
            "bad.csv:3:3: unparseable time \"yesterday\" (expected ISO 8601)");
}

TEST(EventLogCsv, NullValuesReadAsMissing) {
  // "?" and "NULL" mean no value: a missing resource and attribute, a bad
  // row where the case id or the time is one.
  std::string csv =
      "case_id,activity,timestamp,agent,group\n"
      "A,Open,2026-01-01T00:00:00Z,?,NULL\n"
      "?,Open,2026-01-01T00:00:00Z,ann,g1\n"
      "A,Close,NULL,ann,g1\n"
      "A,Close,2026-01-01T01:00:00Z,bob,g2\n";
  CsvEventLogOptions o;
  o.resource_column = "agent";
  o.attribute_columns = {"group"};
  o.on_error = OnError::kCollect;
  o.null_values = {"?", "NULL"};

  auto loaded = ReadCsvEventLogFromString("n.csv", csv, o);

  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const EventLog& log = loaded->log;
  ASSERT_EQ(log.num_events(), 2);
  EXPECT_EQ(log.resource(0), -1);
  EXPECT_EQ(log.attribute(0, 0), "");
  EXPECT_EQ(log.resource_name(log.resource(1)), "bob");
  EXPECT_EQ(log.attribute(0, 1), "g2");
  const auto& r = loaded->rejects;
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].line, 3);
  EXPECT_EQ(r[0].column, 1);
  EXPECT_EQ(r[0].reason,
            "missing (null value \"?\") case id (expected a value in column "
            "case_id)");
  EXPECT_EQ(r[1].line, 4);
  EXPECT_EQ(r[1].column, 3);
  EXPECT_EQ(r[1].reason,
            "missing (null value \"NULL\") time in case A (expected a value "
            "in column timestamp)");
}

TEST(EventLogCsv, CollectListsEveryRejectAndKeepsTheRest) {
  std::string csv =
      "case_id,activity,timestamp,agent\n"
      "A,Open,2026-01-01T00:00:00Z,ann\n"
      ",Open,2026-01-01T00:00:00Z,ann\n"
      "B,,2026-01-01T00:00:00Z,ann\n"
      "B,Open,2026-13-01T00:00:00Z,ann\n"
      "B,Open,2026-01-01T00:00:00Z\n"
      "A,Close,2026-01-01T01:00:00Z,bob\n";
  CsvEventLogOptions o;
  o.resource_column = "agent";
  o.on_error = OnError::kCollect;
  auto loaded = ReadCsvEventLogFromString("r.csv", csv, o);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const EventLog& log = loaded->log;
  EXPECT_EQ(log.num_cases(), 1);  // B never got a valid row
  EXPECT_EQ(log.num_events(), 2);
  EXPECT_EQ(log.resource_name(log.resource(1)), "bob");
  // Row numbers are data record indexes: the kept rows are 0 and 5.
  EXPECT_EQ(log.row(0), 0);
  EXPECT_EQ(log.row(1), 5);
  const auto& r = loaded->rejects;
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].file, "r.csv");
  EXPECT_EQ(r[0].line, 3);
  EXPECT_EQ(r[0].column, 1);
  EXPECT_EQ(r[0].reason, "empty case id (expected a value in column case_id)");
  EXPECT_EQ(r[1].line, 4);
  EXPECT_EQ(r[1].column, 2);
  EXPECT_EQ(r[2].line, 5);
  EXPECT_EQ(r[2].column, 3);
  EXPECT_EQ(r[2].reason,
            "unparseable time \"2026-13-01T00:00:00Z\" (expected ISO 8601)");
  EXPECT_EQ(r[3].line, 6);
  EXPECT_NE(r[3].reason.find("record has 3 fields"), std::string::npos)
      << r[3].reason;

  o.on_error = OnError::kRaise;
  auto raised = ReadCsvEventLogFromString("r.csv", csv, o);
  ASSERT_FALSE(raised.ok());
  EXPECT_EQ(raised.status().message(),
            "r.csv:3:1: empty case id (expected a value in column case_id)");
}

TEST(EventLogCsv, TimeOutsideYearsOneTo9999IsARejectedRow) {
  // The first and last rows are written in years 1 and 9999 but their
  // instants fall in years 0 and 10000 UTC; the middle one is the last
  // instant kept.
  std::string csv =
      "case_id,activity,timestamp\n"
      "A,x,0001-01-01T00:30:00+01:00\n"
      "A,y,9999-12-31T22:59:59.999999-01:00\n"
      "A,z,9999-12-31T23:30:00-01:00\n";
  CsvEventLogOptions o;

  auto raised = ReadCsvEventLogFromString("y.csv", csv, o);
  o.on_error = OnError::kCollect;
  auto loaded = ReadCsvEventLogFromString("y.csv", csv, o);

  ASSERT_FALSE(raised.ok());
  EXPECT_EQ(raised.status().code(), Code::kParseError);
  EXPECT_EQ(raised.status().message(),
            "y.csv:2:3: time \"0001-01-01T00:30:00+01:00\" out of range "
            "(expected a time in years 1 to 9999 UTC)");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_EQ(loaded->log.num_events(), 1);
  EXPECT_EQ(loaded->log.time(0).micros, 253402300800LL * 1000000 - 1);
  const auto& r = loaded->rejects;
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].line, 2);
  EXPECT_EQ(r[0].column, 3);
  EXPECT_EQ(r[1].line, 4);
  EXPECT_EQ(r[1].column, 3);
  EXPECT_EQ(r[1].reason,
            "time \"9999-12-31T23:30:00-01:00\" out of range (expected a "
            "time in years 1 to 9999 UTC)");
}

TEST(EventLogCsv, LogAtTheEdgesOfTheRangeIsWrittenAndReadBack) {
  std::string csv =
      "case_id,activity,timestamp\n"
      "A,x,0001-01-01T01:00:00+01:00\n"
      "A,y,9999-12-31T22:59:59.999999-01:00\n";
  auto first = ReadCsvEventLogFromString("edge.csv", csv, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();

  std::string written = EventLogToCsv(first->log);
  auto again = ReadCsvEventLogFromString("edge2.csv", written, {});

  EXPECT_EQ(written,
            "case_id,activity,timestamp,resource,lifecycle\n"
            "A,x,0001-01-01T00:00:00.000000Z,,\n"
            "A,y,9999-12-31T23:59:59.999999Z,,\n");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(EventLogToCsv(again->log), written);
}

TEST(EventLogCsv, CollectStopsAtAnUnterminatedQuote) {
  std::string csv =
      "case_id,activity,timestamp\n"
      "A,Open,2026-01-01T00:00:00Z\n"
      "A,\"Close,2026-01-01T01:00:00Z\n";
  CsvEventLogOptions o;
  o.on_error = OnError::kCollect;
  auto loaded = ReadCsvEventLogFromString("q.csv", csv, o);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Code::kParseError);
  EXPECT_EQ(loaded.status().message().rfind("q.csv:3:", 0), 0u)
      << loaded.status().message();
}

TEST(EventLogCsv, MappingErrors) {
  CsvEventLogOptions o;
  o.timestamp_column = "ts";
  auto missing =
      ReadCsvEventLogFromString("m.csv", "case_id,activity,time\n", o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(missing.status().message(),
            "m.csv: column \"ts\" not in the header (expected one of "
            "case_id, activity, time)");
  auto nofile = ReadCsvEventLog(kDataDir + "/analytics_no_such_file.csv", {});
  ASSERT_FALSE(nofile.ok());
  EXPECT_EQ(nofile.status().code(), Code::kNotFound);
  CsvEventLogOptions zone;
  zone.time_zone = "Mars/Olympus";
  auto bad_zone = ReadCsvEventLogFromString(
      "z.csv", "case_id,activity,timestamp\n", zone);
  ASSERT_FALSE(bad_zone.ok());
  EXPECT_EQ(bad_zone.status().code(), Code::kInvalidArgument);
}

TEST(EventLogCsv, FormatZoneAndLifecycle) {
  std::string csv =
      "id|what|when|lc\n"
      "T1|Work|02.03.2026 10:00|START\n"
      "T1|Work|02.03.2026 10:30|complete\n"
      "T1|Note|02.03.2026 10:30|schedule\n";
  CsvEventLogOptions o;
  o.case_column = "id";
  o.activity_column = "what";
  o.timestamp_column = "when";
  o.lifecycle_column = "lc";
  o.time_format = "%d.%m.%Y %H:%M";
  o.time_zone = "Europe/Berlin";
  auto loaded = ReadCsvEventLogFromString("f.csv", csv, o);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const EventLog& log = loaded->log;
  ASSERT_EQ(log.num_events(), 3);
  // 10:00 in Berlin (CET, +01:00) is 09:00 UTC.
  EXPECT_EQ(log.time(0), Iso("2026-03-02T09:00:00Z"));
  EXPECT_EQ(log.lifecycle(0), Lifecycle::kStart);
  EXPECT_EQ(log.lifecycle(1), Lifecycle::kComplete);
  EXPECT_EQ(log.lifecycle(2), Lifecycle::kOther);
}

TEST(EventLogBuilderTest, GroupsByCaseAndSortsStably) {
  EventLogBuilder b;
  int32_t a = b.AddCase("a");
  int32_t z = b.AddCase("z");
  int32_t empty = b.AddCase("empty");
  b.AddEvent(z, "z2", Timestamp{20}, "", Lifecycle::kNone, 0);
  b.AddEvent(a, "a2", Timestamp{20}, "", Lifecycle::kNone, 1);
  b.AddEvent(z, "z1", Timestamp{10}, "", Lifecycle::kNone, 2);
  b.AddEvent(a, "a3", Timestamp{20}, "", Lifecycle::kNone, 3);
  b.AddEvent(a, "a1", Timestamp{5}, "", Lifecycle::kNone, 4);
  EventLog log = std::move(b).Build();
  ASSERT_EQ(log.num_cases(), 3);
  EXPECT_EQ(log.case_size(empty), 0);
  std::vector<std::string> got;
  for (int64_t e = 0; e < log.num_events(); ++e) {
    got.push_back(log.activity_name(log.activity(e)));
    EXPECT_EQ(log.case_of(e), e < 3 ? a : z);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"a1", "a2", "a3", "z1", "z2"}));
}

TEST(EventLogHistory, ToStateOrEvent) {
  std::vector<HistoryRow> rows(3);
  rows[0].transaction_id = "O-1";
  rows[0].event = "create";
  rows[0].to_state = "draft";
  rows[0].time = Iso("2026-01-01T08:00:00Z");
  rows[0].actor = "ann";
  rows[1].transaction_id = "O-1";
  rows[1].event = "submit";
  rows[1].from_state = "draft";
  rows[1].to_state = "submitted";
  rows[1].time = Iso("2026-01-01T09:00:00Z");
  rows[2] = rows[1];
  rows[2].event = "tick";
  rows[2].internal = true;
  rows[2].actor = "";
  rows[2].time = Iso("2026-01-01T09:30:00Z");
  EventLog by_state = EventLog::FromHistory(rows);
  ASSERT_EQ(by_state.num_cases(), 1);
  ASSERT_EQ(by_state.num_events(), 3);
  EXPECT_EQ(by_state.activity_name(by_state.activity(0)), "draft");
  EXPECT_EQ(by_state.activity_name(by_state.activity(1)), "submitted");
  EXPECT_EQ(by_state.resource_name(by_state.resource(0)), "ann");
  EXPECT_EQ(by_state.resource(2), -1);
  EventLog by_event = EventLog::FromHistory(
      rows, EventLog::HistoryActivity::kEvent, /*include_internal=*/false);
  ASSERT_EQ(by_event.num_events(), 2);
  EXPECT_EQ(by_event.activity_name(by_event.activity(1)), "submit");
  // Time in state "draft": one hour.
  std::vector<ActivityTime> t = TimeInActivity(by_state);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].activity, "draft");
  EXPECT_EQ(t[0].duration.mean, 3600.0);
}

TEST(EventLogColumns, RoundTripAndErrors) {
  EventColumns in;
  in.case_ids = {"B", "A", "B"};
  in.activities = {"y", "x", "w"};
  in.timestamps = {2000000, 1000000, 1000000};
  in.resources = {"r1", "", "r2"};
  in.lifecycles = {"", "start", "COMPLETE"};
  in.attribute_names = {"k"};
  in.attribute_values = {{"1", "", "3"}};
  in.cases = {"Empty"};
  auto log = EventLog::FromColumns(in);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_EQ(log->num_cases(), 3);
  EXPECT_EQ(log->case_id(0), "Empty");
  EXPECT_EQ(log->case_size(0), 0);
  EventColumns out = log->ToColumns();
  EXPECT_EQ(out.cases, (std::vector<std::string>{"Empty", "B", "A"}));
  EXPECT_EQ(out.case_ids, (std::vector<std::string>{"B", "B", "A"}));
  EXPECT_EQ(out.activities, (std::vector<std::string>{"w", "y", "x"}));
  EXPECT_EQ(out.timestamps, (std::vector<int64_t>{1000000, 2000000, 1000000}));
  EXPECT_EQ(out.resources, (std::vector<std::string>{"r2", "r1", ""}));
  // Lifecycle texts come back as given, letter case included.
  EXPECT_EQ(out.lifecycles,
            (std::vector<std::string>{"COMPLETE", "", "start"}));
  EXPECT_EQ(out.rows, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(out.attribute_values[0], (std::vector<std::string>{"3", "1", ""}));
  auto again = EventLog::FromColumns(out);
  ASSERT_TRUE(again.ok());
  EventColumns out2 = again->ToColumns();
  EXPECT_EQ(out2.cases, out.cases);
  EXPECT_EQ(out2.activities, out.activities);
  EXPECT_EQ(out2.rows, out.rows);

  EventColumns bad = in;
  bad.resources.pop_back();
  auto r = EventLog::FromColumns(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "column resources has 2 values (expected 3, one per event)");
  bad = in;
  bad.activities[1] = "";
  r = EventLog::FromColumns(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "event 1 of case A: empty activity");
}

TEST(EventLogColumns, TimeOutsideYearsOneTo9999IsRefused) {
  EventColumns columns;
  columns.case_ids = {"A", "A"};
  columns.activities = {"x", "y"};
  // 0001-01-01T00:00:00Z, then one microsecond before it.
  columns.timestamps = {-62135596800LL * 1000000,
                        -62135596800LL * 1000000 - 1};

  auto r = EventLog::FromColumns(columns);

  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "event 1 of case A: time -62135596800000001 out of range "
            "(expected a time in years 1 to 9999 UTC)");
}

TEST(EventLogRealData, HelpdeskCsvGz) {
  const char kPath[] =
      "/work/shared/data/helpdesk_ticket_log/helpdesk_events.csv.gz";
  if (!std::filesystem::exists(kPath)) GTEST_SKIP() << "no " << kPath;
  CsvEventLogOptions o;
  o.resource_column = "resource";
  o.lifecycle_column = "lifecycle";
  o.attribute_columns = {"customer", "product"};
  auto loaded = ReadCsvEventLog(kPath, o);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const EventLog& log = loaded->log;
  EXPECT_TRUE(loaded->rejects.empty());
  // Figures from the README (4,580 traces, 21,348 events, 22 resources)
  // and a Python csv.DictReader + Counter script over the same file.
  EXPECT_EQ(log.num_cases(), 4580);
  EXPECT_EQ(log.num_events(), 21348);
  EXPECT_EQ(log.resources().size(), 22);
  EXPECT_EQ(log.case_id(0), "Case 1");
  EXPECT_EQ(log.lifecycle(0), Lifecycle::kNone);
  Dfg dfg = DirectlyFollows(log);
  EXPECT_EQ(dfg.edges[0].from, "Resolve ticket");
  EXPECT_EQ(dfg.edges[0].to, "Closed");
  EXPECT_EQ(dfg.edges[0].count, 4558);
  EXPECT_EQ(Variants(log).size(), 226u);
}

TEST(EventLogLifecycle, TextsAreKeptAsReadAndKindsFollowThem) {
  // Rows out of time order, so the lifecycle column is permuted by Build.
  std::string csv =
      "case_id,activity,timestamp,lc\n"
      "A,Review,2026-01-01T00:00:07Z,\"custom, text\"\n"
      "A,Review,2026-01-01T00:00:00Z,schedule\n"
      "A,Review,2026-01-01T00:00:01Z,Start\n"
      "A,Review,2026-01-01T00:00:02Z,suspend\n"
      "A,Review,2026-01-01T00:00:03Z,resume\n"
      "A,Review,2026-01-01T00:00:04Z,COMPLETE\n"
      "A,Close,2026-01-01T00:00:05Z,\n"
      "A,Close,2026-01-01T00:00:06Z,start\n";
  CsvEventLogOptions o;
  o.lifecycle_column = "lc";

  auto loaded = ReadCsvEventLogFromString("lc.csv", csv, o);

  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const EventLog& log = loaded->log;
  ASSERT_EQ(log.num_events(), 8);
  const std::vector<std::string> texts = {
      "schedule", "Start", "suspend", "resume", "COMPLETE", "", "start",
      "custom, text"};
  const std::vector<Lifecycle> kinds = {
      Lifecycle::kOther, Lifecycle::kStart,    Lifecycle::kOther,
      Lifecycle::kOther, Lifecycle::kComplete, Lifecycle::kNone,
      Lifecycle::kStart, Lifecycle::kOther};
  for (int64_t e = 0; e < 8; ++e) {
    EXPECT_EQ(log.lifecycle_text(e), texts[e]) << "event " << e;
    EXPECT_EQ(log.lifecycle(e), kinds[e]) << "event " << e;
  }
  // Seven distinct texts in order of first appearance in the file; "Start"
  // and "start" are two texts of one kind.
  EXPECT_EQ(log.lifecycle_names().strings(),
            (std::vector<std::string>{"custom, text", "schedule", "Start",
                                      "suspend", "resume", "COMPLETE",
                                      "start"}));
  EXPECT_EQ(log.lifecycle_id(5), -1);
  EXPECT_EQ(log.lifecycle_kind(log.lifecycle_id(1)), Lifecycle::kStart);
  EXPECT_EQ(log.lifecycle_column_bytes(), 8u);
  EXPECT_EQ(log.ToColumns().lifecycles, texts);
  EXPECT_EQ(EventLogToCsv(log),
            "case_id,activity,timestamp,resource,lifecycle\n"
            "A,Review,2026-01-01T00:00:00.000000Z,,schedule\n"
            "A,Review,2026-01-01T00:00:01.000000Z,,Start\n"
            "A,Review,2026-01-01T00:00:02.000000Z,,suspend\n"
            "A,Review,2026-01-01T00:00:03.000000Z,,resume\n"
            "A,Review,2026-01-01T00:00:04.000000Z,,COMPLETE\n"
            "A,Close,2026-01-01T00:00:05.000000Z,,\n"
            "A,Close,2026-01-01T00:00:06.000000Z,,start\n"
            "A,Review,2026-01-01T00:00:07.000000Z,,\"custom, text\"\n");
}

TEST(EventLogLifecycle, ColumnsRoundTripKeepsTexts) {
  EventColumns columns;
  columns.case_ids = {"A", "A", "A"};
  columns.activities = {"x", "x", "y"};
  columns.timestamps = {1, 2, 3};
  columns.lifecycles = {"assign", "ate_abort", " "};

  auto log = EventLog::FromColumns(columns);

  ASSERT_TRUE(log.ok()) << log.status().ToString();
  // Blanks are no lifecycle, as ParseLifecycle reads them.
  EXPECT_EQ(log->ToColumns().lifecycles,
            (std::vector<std::string>{"assign", "ate_abort", ""}));
  EXPECT_EQ(log->lifecycle(2), Lifecycle::kNone);
  EXPECT_EQ(log->lifecycle_names().size(), 2);
}

TEST(EventLogLifecycle, OverTwoHundredFiftyFiveTextsWidenTheColumn) {
  // 300 distinct texts "lc299" ... "lc0", added latest first, then one
  // event without lifecycle (time 300) and one "start" (time 301).
  EventLogBuilder b;
  int32_t c = b.AddCase("A");
  for (int i = 299; i >= 0; --i) {
    b.AddEvent(c, "x", Timestamp{i}, "", "lc" + std::to_string(i), 299 - i);
  }
  b.AddEvent(c, "x", Timestamp{300}, "", "", 300);
  b.AddEvent(c, "y", Timestamp{301}, "", "start", 301);

  EventLog log = std::move(b).Build();

  ASSERT_EQ(log.num_events(), 302);
  EXPECT_EQ(log.lifecycle_names().size(), 301);
  EXPECT_EQ(log.lifecycle_column_bytes(), 302u * 4);
  // Sorted by time: event i is "lc" + i for i < 300.
  for (int64_t e = 0; e < 300; ++e) {
    ASSERT_EQ(log.lifecycle_text(e), "lc" + std::to_string(e));
    ASSERT_EQ(log.lifecycle(e), Lifecycle::kOther);
  }
  EXPECT_EQ(log.lifecycle_text(300), "");
  EXPECT_EQ(log.lifecycle(300), Lifecycle::kNone);
  EXPECT_EQ(log.lifecycle_text(301), "start");
  EXPECT_EQ(log.lifecycle(301), Lifecycle::kStart);
}

TEST(LifecycleTest, Parse) {
  EXPECT_EQ(ParseLifecycle(""), Lifecycle::kNone);
  EXPECT_EQ(ParseLifecycle(" Start "), Lifecycle::kStart);
  EXPECT_EQ(ParseLifecycle("complete"), Lifecycle::kComplete);
  EXPECT_EQ(ParseLifecycle("suspend"), Lifecycle::kOther);
}

// --- Memory layout: optional columns, exact sizes, cases from offsets ------

TEST(EventLogColumnsStored, NoResourceLifecycleOrRowColumnWhenAllDefault) {
  std::string csv =
      "case_id,activity,timestamp\n"
      "A,Open,2026-01-01T00:00:00Z\n"
      "A,Close,2026-01-01T01:00:00Z\n"
      "B,Open,2026-01-01T00:30:00Z\n";
  auto loaded = ReadCsvEventLogFromString("plain.csv", csv, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const EventLog& log = loaded->log;
  ASSERT_EQ(log.num_events(), 3);
  EXPECT_TRUE(log.resource_column().empty());
  EXPECT_EQ(log.lifecycle_column_bytes(), 0u);
  // Grouped and time-sorted input with rows 0, 1, 2: nothing to store.
  EXPECT_TRUE(log.row_column().empty());
  for (int64_t e = 0; e < 3; ++e) {
    EXPECT_EQ(log.resource(e), -1);
    EXPECT_EQ(log.resource_name(log.resource(e)), "");
    EXPECT_EQ(log.lifecycle(e), Lifecycle::kNone);
    EXPECT_EQ(log.row(e), e);
  }
  EXPECT_EQ(log.resources().size(), 0);
  EXPECT_TRUE(HandOvers(log).empty());
  // Exports still carry one value per event.
  EventColumns out = log.ToColumns();
  EXPECT_EQ(out.resources, (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(out.lifecycles, (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(out.rows, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(EventLogToCsv(log),
            "case_id,activity,timestamp,resource,lifecycle\n"
            "A,Open,2026-01-01T00:00:00.000000Z,,\n"
            "A,Close,2026-01-01T01:00:00.000000Z,,\n"
            "B,Open,2026-01-01T00:30:00.000000Z,,\n");
}

TEST(EventLogColumnsStored, FirstResourceOnFifthEventFillsTheEarlierOnes) {
  EventLogBuilder b;
  int32_t c = b.AddCase("SR-9");
  const char* names[] = {"e0", "e1", "e2", "e3", "e4", "e5"};
  for (int i = 0; i < 6; ++i) {
    b.AddEvent(c, names[i], Timestamp{1000 * i}, i == 4 ? "eve" : "",
               i == 2 ? Lifecycle::kStart : Lifecycle::kNone, i);
  }
  EventLog log = std::move(b).Build();
  ASSERT_EQ(log.num_events(), 6);
  ASSERT_EQ(log.resource_column().size(), 6u);
  ASSERT_EQ(log.resources().size(), 1);
  const int32_t eve = log.resources().Find("eve");
  EXPECT_EQ(eve, 0);
  EXPECT_EQ(log.resource_column(),
            (std::vector<int32_t>{-1, -1, -1, -1, eve, -1}));
  for (int64_t e = 0; e < 6; ++e) {
    EXPECT_EQ(log.resource(e), e == 4 ? eve : -1) << "event " << e;
  }
  EXPECT_EQ(log.resource_name(log.resource(4)), "eve");
  EXPECT_EQ(log.lifecycle_column_bytes(), 6u);  // one byte per event
  EXPECT_EQ(log.lifecycle(1), Lifecycle::kNone);
  EXPECT_EQ(log.lifecycle(2), Lifecycle::kStart);
  EXPECT_EQ(log.lifecycle(3), Lifecycle::kNone);
  EXPECT_TRUE(log.row_column().empty());
  EXPECT_EQ(log.ToColumns().resources,
            (std::vector<std::string>{"", "", "", "", "eve", ""}));
}

TEST(EventLogColumnsStored, RowsOfReorderedInputAreTheInputRows) {
  // Data records 0..4; case B comes first (first appearance), each case is
  // sorted by time.  Worked out by hand:
  //   B: b1 (record 2, 09:30), b2 (record 0, 10:00)
  //   A: a1 (record 1, 09:00), a2 (record 4, 09:10), a3 (record 3, 09:15)
  std::string csv =
      "case_id,activity,timestamp\n"
      "B,b2,2026-01-01T10:00:00Z\n"
      "A,a1,2026-01-01T09:00:00Z\n"
      "B,b1,2026-01-01T09:30:00Z\n"
      "A,a3,2026-01-01T09:15:00Z\n"
      "A,a2,2026-01-01T09:10:00Z\n";
  auto loaded = ReadCsvEventLogFromString("mixed.csv", csv, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const EventLog& log = loaded->log;
  ASSERT_EQ(log.num_events(), 5);
  const std::vector<std::string> want_activity = {"b1", "b2", "a1", "a2",
                                                  "a3"};
  const std::vector<int64_t> want_row = {2, 0, 1, 4, 3};
  ASSERT_EQ(log.row_column().size(), 5u);
  for (int64_t e = 0; e < 5; ++e) {
    EXPECT_EQ(log.activity_name(log.activity(e)), want_activity[e]);
    EXPECT_EQ(log.row(e), want_row[e]) << "event " << e;
  }
  EXPECT_EQ(log.ToColumns().rows, want_row);

  // Grouped input whose only disorder is inside a case: the same.
  EventLogBuilder b;
  int32_t c = b.AddCase("C");
  b.AddEvent(c, "late", Timestamp{20}, "", Lifecycle::kNone, 0);
  b.AddEvent(c, "early", Timestamp{10}, "", Lifecycle::kNone, 1);
  EventLog sorted = std::move(b).Build();
  EXPECT_EQ(sorted.row_column(), (std::vector<int64_t>{1, 0}));

  // Explicit rows that come out as 0, 1 after sorting are not stored.
  EventLogBuilder d;
  c = d.AddCase("D");
  d.AddEvent(c, "second", Timestamp{20}, "", Lifecycle::kNone, 1);
  d.AddEvent(c, "first", Timestamp{10}, "", Lifecycle::kNone, 0);
  EventLog identity = std::move(d).Build();
  EXPECT_TRUE(identity.row_column().empty());
  EXPECT_EQ(identity.row(0), 0);
  EXPECT_EQ(identity.row(1), 1);
  EXPECT_EQ(identity.activity_name(identity.activity(0)), "first");

  // Rows with a gap (a skipped record) are stored as given.
  EventLogBuilder g;
  c = g.AddCase("G");
  g.AddEvent(c, "x", Timestamp{10}, "", Lifecycle::kNone, 0);
  g.AddEvent(c, "y", Timestamp{20}, "", Lifecycle::kNone, 2);
  EventLog gap = std::move(g).Build();
  EXPECT_EQ(gap.row_column(), (std::vector<int64_t>{0, 2}));
}

TEST(EventLogColumnsStored, CaseOfEveryEventFromTheOffsets) {
  // Sizes 0..3 from a fixed pseudo-random sequence, cases with no events
  // included (first, last and in runs).  The expected case of each event
  // is counted here from the sizes, not read from the log.
  EventLogBuilder b;
  std::vector<int32_t> want;
  std::vector<int64_t> sizes;
  uint32_t x = 12345;
  const int kCases = 500;
  for (int i = 0; i < kCases; ++i) {
    x = x * 1103515245u + 12345u;
    int64_t size = (i == 0 || i == kCases - 1) ? 0 : (x >> 16) % 4;
    sizes.push_back(size);
    int32_t c = b.AddCase("K" + std::to_string(i));
    for (int64_t k = 0; k < size; ++k) {
      b.AddEvent(c, "act", Timestamp{k}, "", Lifecycle::kNone,
                 static_cast<int64_t>(want.size()));
      want.push_back(i);
    }
  }
  EventLog log = std::move(b).Build();
  ASSERT_EQ(log.num_cases(), kCases);
  ASSERT_EQ(log.num_events(), static_cast<int64_t>(want.size()));
  for (int32_t c = 0; c < kCases; ++c) {
    EXPECT_EQ(log.case_size(c), sizes[c]) << "case " << c;
  }
  for (int64_t e = 0; e < log.num_events(); ++e) {
    const int32_t c = log.case_of(e);
    ASSERT_EQ(c, want[e]) << "event " << e;
    EXPECT_LE(log.case_begin(c), e);
    EXPECT_LT(e, log.case_end(c));
  }
  EXPECT_EQ(log.CaseIndexPerEvent(), want);
  EXPECT_TRUE(log.row_column().empty());
}

TEST(EventLogColumnsStored, CasesWithoutEvents) {
  EventLogBuilder b;
  b.AddCase("none-1");
  int32_t a = b.AddCase("A");
  b.AddCase("none-2");
  b.AddCase("none-3");
  int32_t z = b.AddCase("Z");
  b.AddCase("none-4");
  b.AddEvent(z, "z1", Timestamp{1}, "", Lifecycle::kNone, 0);
  b.AddEvent(a, "a1", Timestamp{2}, "", Lifecycle::kNone, 1);
  b.AddEvent(a, "a2", Timestamp{3}, "", Lifecycle::kNone, 2);
  EventLog log = std::move(b).Build();
  ASSERT_EQ(log.num_cases(), 6);
  EXPECT_EQ(log.case_offsets(), (std::vector<int64_t>{0, 0, 2, 2, 2, 3, 3}));
  EXPECT_EQ(log.case_of(0), a);
  EXPECT_EQ(log.case_of(1), a);
  EXPECT_EQ(log.case_of(2), z);
  // Input order was z1, a1, a2: log positions 0, 1, 2 hold rows 1, 2, 0.
  EXPECT_EQ(log.row_column(), (std::vector<int64_t>{1, 2, 0}));
  EventColumns out = log.ToColumns();
  EXPECT_EQ(out.cases, (std::vector<std::string>{"none-1", "A", "none-2",
                                                 "none-3", "Z", "none-4"}));
  EXPECT_EQ(out.case_ids, (std::vector<std::string>{"A", "A", "Z"}));
  EXPECT_EQ(EventLogToCsv(log),
            "case_id,activity,timestamp,resource,lifecycle\n"
            "A,a1,1970-01-01T00:00:00.000002Z,,\n"
            "A,a2,1970-01-01T00:00:00.000003Z,,\n"
            "Z,z1,1970-01-01T00:00:00.000001Z,,\n");

  // Only empty cases: no events at all.
  EventLogBuilder e;
  e.AddCase("lonely");
  EventLog empty = std::move(e).Build();
  EXPECT_EQ(empty.num_cases(), 1);
  EXPECT_EQ(empty.num_events(), 0);
  EXPECT_EQ(empty.case_size(0), 0);
  EXPECT_TRUE(empty.CaseIndexPerEvent().empty());
  EXPECT_EQ(EventLogToCsv(empty),
            "case_id,activity,timestamp,resource,lifecycle\n");
}

TEST(EventLogColumnsStored, ColumnsKeepNoGrowthSlack) {
  // 3002 events read one by one: the columns grew by doubling while
  // reading, the built log holds exactly one entry per event.
  EventLog log = LoadC04(true);
  ASSERT_EQ(log.num_events(), 3002);
  EXPECT_EQ(log.activity_column().capacity(), 3002u);
  EXPECT_EQ(log.time_column().capacity(), 3002u);
  EXPECT_EQ(log.row_column().capacity(), 3002u);  // SR-X was reordered
  EXPECT_TRUE(log.resource_column().empty());
  EXPECT_EQ(log.resource_column().capacity(), 0u);
  EXPECT_EQ(log.lifecycle_column_bytes(), 0u);
}

}  // namespace
}  // namespace crmflow
