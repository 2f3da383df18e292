// importer_test.cc: ImportEventLog and ImportMilestones against small
// in-memory engines: ordering by (instant, file row), status logs,
// inferred paths to a final status, deviations, rejects naming
// file:line:column, idempotent re-import and all-or-nothing failure.

#include "crmflow/importer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "crmflow/csv.h"
#include "crmflow/engine.h"
#include "crmflow/workflow.h"

namespace crmflow {
namespace {

constexpr int64_t kSecond = 1000000;

std::unique_ptr<Engine> NewEngine() {
  EngineOptions options;
  options.clock = [] { return Timestamp{1767225600 * kSecond}; };
  auto engine = Engine::Open(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return engine.ok() ? std::move(engine.value()) : nullptr;
}

void Register(Engine& engine, Workflow wf) {
  Status st = engine.Register(std::move(wf), "{}");
  ASSERT_TRUE(st.ok()) << st.ToString();
}

// new -> open -> resolved.
Workflow ServiceRequestFlow() {
  Workflow wf("service_request", 1);
  (void)wf.AddState("new", StateRole::kInitial);
  (void)wf.AddState("open");
  (void)wf.AddState("resolved", StateRole::kTerminal);
  (void)wf.AddTransition({"open", "new", "open"});
  (void)wf.AddTransition({"resolve", "open", "resolved"});
  return wf;
}

// new -> assigned -> resolved, for C04.
Workflow TicketFlow() {
  Workflow wf("ticket", 1);
  (void)wf.AddState("new", StateRole::kInitial);
  (void)wf.AddState("assigned");
  (void)wf.AddState("resolved", StateRole::kTerminal);
  (void)wf.AddTransition({"assign", "new", "assigned"});
  (void)wf.AddTransition({"resolve", "assigned", "resolved"});
  return wf;
}

// A status-driven incident flow with a loop through waiting_customer.
Workflow IncidentFlow() {
  Workflow wf("incident", 1);
  (void)wf.AddState("new", StateRole::kInitial);
  (void)wf.AddState("in_progress");
  (void)wf.AddState("waiting_customer");
  (void)wf.AddState("resolved", StateRole::kTerminal);
  (void)wf.AddTransition({"start", "new", "in_progress"});
  (void)wf.AddTransition({"wait", "in_progress", "waiting_customer"});
  (void)wf.AddTransition({"resume", "waiting_customer", "in_progress"});
  (void)wf.AddTransition({"resolve", "in_progress", "resolved"});
  (void)wf.AddAttribute({"priority", ValueType::kInteger, false});
  (void)wf.AddAttribute({"amount", ValueType::kDecimal, false});
  (void)wf.AddAttribute({"vip", ValueType::kBoolean, false});
  return wf;
}

// created -> approved -> shipped -> invoiced -> closed, with cancel from
// the first two.
Workflow SalesOrderFlow() {
  Workflow wf("sales_order", 1);
  (void)wf.AddState("created", StateRole::kInitial);
  (void)wf.AddState("approved");
  (void)wf.AddState("shipped");
  (void)wf.AddState("invoiced");
  (void)wf.AddState("closed", StateRole::kTerminal);
  (void)wf.AddState("cancelled", StateRole::kTerminal);
  (void)wf.AddTransition({"approve", "created", "approved"});
  (void)wf.AddTransition({"ship", "approved", "shipped"});
  (void)wf.AddTransition({"invoice", "shipped", "invoiced"});
  (void)wf.AddTransition({"close", "invoiced", "closed"});
  (void)wf.AddTransition({"cancel", "created", "cancelled"});
  (void)wf.AddTransition({"cancel", "approved", "cancelled"});
  return wf;
}

std::unique_ptr<CsvReader> Reader(const std::string& text,
                                  const std::string& name = "t.csv") {
  auto r = CsvReader::FromString(name, text, {});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r.value()) : nullptr;
}

std::vector<HistoryRow> AllHistory(Engine& engine) {
  auto rows = engine.History(HistoryQuery{});
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  return rows.ok() ? rows.value() : std::vector<HistoryRow>{};
}

std::vector<HistoryRow> CaseHistory(Engine& engine, const std::string& id) {
  HistoryQuery q;
  q.transaction_id = id;
  auto rows = engine.History(q);
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  return rows.ok() ? rows.value() : std::vector<HistoryRow>{};
}

// One replayed event: what the import did at a position of its case.
struct Replayed {
  int position;
  std::string event;
  int64_t micros;
  bool deviation;
};

// Rebuilds each case's event order from the history (position from the
// source key "...#<p>") and the deviations (their position field).
std::map<std::string, std::vector<Replayed>> ReplayedOrder(
    Engine& engine, const std::string& kind) {
  std::map<std::string, std::vector<Replayed>> out;
  for (const HistoryRow& row : AllHistory(engine)) {
    size_t hash = row.source.rfind('#');
    if (hash == std::string::npos) continue;
    std::string pos = row.source.substr(hash + 1);
    if (pos == "create") continue;
    out[row.transaction_id].push_back(
        {std::stoi(pos), row.event, row.time.micros, false});
  }
  auto deviations = engine.Deviations(kind);
  EXPECT_TRUE(deviations.ok());
  for (const Deviation& d : deviations.value()) {
    out[d.transaction_id].push_back(
        {d.position, d.event, d.time.micros, true});
  }
  for (auto& [id, events] : out) {
    std::sort(events.begin(), events.end(),
              [](const Replayed& a, const Replayed& b) {
                return a.position < b.position;
              });
  }
  return out;
}

EventLogMapping ServiceRequestMapping() {
  EventLogMapping m;
  m.common.kind = "service_request";
  m.common.case_columns = {"case_id"};
  m.activity_column = "activity";
  m.time_column = "timestamp";
  m.payload_columns = {"comment"};
  m.activity_map = {{"Opened", "open"}, {"Resolved", "resolve"}};
  return m;
}

TEST(ImportEventLog, C13QuotedSemicolonFileGivesOneCaseOfTwoEvents) {
  auto engine = NewEngine();
  Register(*engine, ServiceRequestFlow());
  EventLogMapping mapping = ServiceRequestMapping();

  auto summary = ImportEventLog(
      *engine, std::string(CRMFLOW_TEST_DATA_DIR) + "/c13_service_requests.csv",
      mapping);

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->rows, 2);
  EXPECT_EQ(summary->cases, 1);
  EXPECT_EQ(summary->created, 1);
  EXPECT_EQ(summary->events_applied, 2);
  EXPECT_TRUE(summary->rejects.empty());
  std::vector<HistoryRow> rows = CaseHistory(*engine, "SR-1");
  ASSERT_EQ(rows.size(), 3u);  // create, open, resolve
  EXPECT_EQ(rows[1].event, "open");
  EXPECT_EQ(rows[2].event, "resolve");
  EXPECT_EQ(rows[2].time.micros - rows[1].time.micros, 5400 * kSecond);
  EXPECT_EQ(rows[1].payload,
            "{\"comment\":\"Kunde meldet:\\nDrucker druckt nicht; "
            "Papierstau\"}");
  EXPECT_EQ(rows[2].payload, "{\"comment\":\"Teil \\\"X-12\\\" getauscht\"}");
  auto txn = engine->Get("SR-1");
  ASSERT_TRUE(txn.ok());
  EXPECT_EQ(txn->state, "resolved");
}

// The importer keeps events as compact records grouped by case after
// reading: cases whose rows interleave, ties at one instant (kept in file
// order) and texts shared between events (interned once) must come out as
// if each case had been read alone.
TEST(ImportEventLog, InterleavedCasesWithTiesKeepFileOrderAndTheirTexts) {
  auto engine = NewEngine();
  Register(*engine, ServiceRequestFlow());
  EventLogMapping mapping = ServiceRequestMapping();
  mapping.common.customer_column = "customer";
  mapping.actor_column = "actor";
  const std::string csv =
      "case_id,activity,timestamp,comment,customer,actor\n"
      "B,Opened,2026-01-01T10:00:00Z,same,C-2,ann\n"
      "A,Resolved,2026-01-01T09:00:00Z,,C-1,bob\n"
      "A,Opened,2026-01-01T09:00:00Z,same,C-9,ann\n"
      "B,Resolved,2026-01-01T09:30:00Z,late,C-2,ann\n"
      "A,Resolved,2026-01-01T08:00:00Z,first,C-1,cy\n";

  auto reader = Reader(csv);
  auto summary = ImportEventLog(*engine, *reader, mapping);

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->rows, 5);
  EXPECT_EQ(summary->created, 2);
  // A, by time then file row: Resolved 08:00 (line 6), Resolved 09:00
  // (line 3), Opened 09:00 (line 4); both resolves deviate (nothing is
  // open yet).
  auto order = ReplayedOrder(*engine, "service_request");
  ASSERT_EQ(order["A"].size(), 3u);
  EXPECT_EQ(order["A"][0].event, "resolve");
  EXPECT_EQ(order["A"][0].micros, order["A"][1].micros - 3600 * kSecond);
  EXPECT_TRUE(order["A"][1].deviation);
  EXPECT_EQ(order["A"][2].event, "open");
  EXPECT_FALSE(order["A"][2].deviation);
  // B: Resolved 09:30 comes before Opened 10:00.
  ASSERT_EQ(order["B"].size(), 2u);
  EXPECT_EQ(order["B"][0].event, "resolve");
  EXPECT_EQ(order["B"][1].event, "open");
  // The creation takes the customer of the case's first row in the file,
  // and each event keeps its own actor and payload.
  auto a = engine->Get("A");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->customer_id, "C-1");
  auto b = engine->Get("B");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->customer_id, "C-2");
  std::vector<HistoryRow> rows = CaseHistory(*engine, "B");
  ASSERT_EQ(rows.size(), 2u);  // created by the first event, then open
  EXPECT_EQ(rows[1].event, "open");
  EXPECT_EQ(rows[1].actor, "ann");
  EXPECT_EQ(rows[1].payload, "{\"comment\":\"same\"}");
}

TEST(ImportEventLog, SqliteStoreReimportOfC13IsSkipped) {
  std::string path = ::testing::TempDir() + "/importer_test_c13.db";
  std::remove(path.c_str());
  EngineOptions options;
  options.path = path;
  options.clock = [] { return Timestamp{1767225600 * kSecond}; };
  auto engine = Engine::Open(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  Register(*engine.value(), ServiceRequestFlow());
  const std::string csv =
      std::string(CRMFLOW_TEST_DATA_DIR) + "/c13_service_requests.csv";
  auto first = ImportEventLog(*engine.value(), csv, ServiceRequestMapping());
  ASSERT_TRUE(first.ok()) << first.status().ToString();

  auto again = ImportEventLog(*engine.value(), csv, ServiceRequestMapping());

  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(first->events_applied, 2);
  // Every stored row counts: the creation row and the two transitions.
  EXPECT_EQ(again->skipped, 3);
  EXPECT_EQ(again->events_applied, 0);
  EXPECT_EQ(CaseHistory(*engine.value(), "SR-1").size(), 3u);
  engine.value().reset();
  std::remove(path.c_str());
}

// C04: 1000 ordinary cases plus SR-X whose rows are out of time order.
std::string C04Csv() {
  std::string text = "case_id,activity,timestamp\n";
  char id[16];
  for (int i = 1; i <= 1000; ++i) {
    std::snprintf(id, sizeof(id), "SR-%04d", i);
    text += std::string(id) + ",Created,2026-03-02T09:00:00Z\n";
    text += std::string(id) + ",Assigned,2026-03-02T09:00:00Z\n";
    text += std::string(id) + ",Resolved,2026-03-02T10:00:00Z\n";
  }
  text += "SR-X,Created,2026-03-02T09:00:00.120Z\n";
  text += "SR-X,Assigned,2026-03-02T09:00:00.045Z\n";
  return text;
}

EventLogMapping TicketMapping() {
  EventLogMapping m;
  m.common.kind = "ticket";
  m.common.case_columns = {"case_id"};
  m.activity_column = "activity";
  m.time_column = "timestamp";
  m.activity_map = {
      {"Created", "create"}, {"Assigned", "assign"}, {"Resolved", "resolve"}};
  return m;
}

// A printable digest of everything an import wrote, for comparing runs.
std::string Digest(Engine& engine, const ImportSummary& s) {
  std::string out = std::to_string(s.cases) + "/" +
                    std::to_string(s.events_applied) + "/" +
                    std::to_string(s.deviations) + "\n";
  for (const HistoryRow& row : AllHistory(engine)) {
    out += row.transaction_id + " " + row.event + " " + row.to_state + " " +
           std::to_string(row.time.micros) + " " + row.source + "\n";
  }
  auto deviations = engine.Deviations("ticket");
  EXPECT_TRUE(deviations.ok());
  for (const Deviation& d : deviations.value()) {
    out += d.transaction_id + " " + std::to_string(d.position) + " " +
           d.event + " " + d.state + " " + d.source + "\n";
  }
  return out;
}

TEST(ImportEventLog, C04OrdersEachCaseByInstantThenFileRow) {
  auto engine = NewEngine();
  Register(*engine, TicketFlow());

  auto reader = Reader(C04Csv());
  auto summary = ImportEventLog(*engine, *reader, TicketMapping());

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->rows, 3002);
  EXPECT_EQ(summary->cases, 1001);
  EXPECT_EQ(summary->created, 1001);
  // 2 per ordinary case, 1 (assign) for SR-X.
  EXPECT_EQ(summary->events_applied, 2001);
  // SR-X's creation row comes after its assignment.
  EXPECT_EQ(summary->deviations, 1);
  auto order = ReplayedOrder(*engine, "ticket");
  ASSERT_EQ(order.size(), 1001u);
  for (int i = 1; i <= 1000; ++i) {
    char id[16];
    std::snprintf(id, sizeof(id), "SR-%04d", i);
    const auto& events = order[id];
    ASSERT_EQ(events.size(), 3u) << id;
    EXPECT_EQ(events[0].event, "create") << id;
    EXPECT_EQ(events[1].event, "assign") << id;
    EXPECT_EQ(events[2].event, "resolve") << id;
    EXPECT_FALSE(events[2].deviation) << id;
  }
  const auto& x = order["SR-X"];
  ASSERT_EQ(x.size(), 2u);
  EXPECT_EQ(x[0].event, "assign");
  EXPECT_FALSE(x[0].deviation);
  EXPECT_EQ(x[1].event, "create");
  EXPECT_TRUE(x[1].deviation);
  EXPECT_EQ(x[1].micros - x[0].micros, 75000);
}

TEST(ImportEventLog, C04TenImportsIntoFreshEnginesAreIdentical) {
  std::string first;

  for (int run = 0; run < 10; ++run) {
    auto engine = NewEngine();
    Register(*engine, TicketFlow());
    auto reader = Reader(C04Csv());
    auto summary = ImportEventLog(*engine, *reader, TicketMapping());
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    std::string digest = Digest(*engine, summary.value());
    if (run == 0) first = digest;

    EXPECT_EQ(digest, first) << "run " << run;
  }
}

EventLogMapping IncidentMapping() {
  EventLogMapping m;
  m.common.kind = "incident";
  m.common.case_columns = {"number"};
  m.activity_column = "state";
  m.time_column = "updated";
  m.actor_column = "by";
  m.status_map = {{"New", "new"},
                  {"Active", "in_progress"},
                  {"Awaiting User", "waiting_customer"},
                  {"Resolved", "resolved"}};
  return m;
}

TEST(ImportEventLog, StatusLogFiresTransitionsCountsUnchangedAndDeviates) {
  auto engine = NewEngine();
  Register(*engine, IncidentFlow());
  auto reader = Reader(
      "number,state,updated,by\n"
      "INC1,New,2026-02-01T08:00:00Z,ann\n"
      "INC1,Active,2026-02-01T09:00:00Z,bob\n"
      "INC1,Active,2026-02-01T09:30:00Z,bob\n"
      "INC1,Awaiting User,2026-02-01T10:00:00Z,bob\n"
      "INC1,Active,2026-02-01T11:00:00Z,bob\n"
      "INC1,Resolved,2026-02-01T12:00:00Z,bob\n"
      "INC1,Awaiting User,2026-02-01T13:00:00Z,bob\n"
      "INC2,Active,2026-02-02T08:00:00Z,cy\n");

  auto summary = ImportEventLog(*engine, *reader, IncidentMapping());

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->created, 2);
  // INC1: start, wait, resume, resolve; INC2: start.
  EXPECT_EQ(summary->events_applied, 5);
  EXPECT_EQ(summary->unchanged, 1);
  EXPECT_EQ(summary->deviations, 1);
  auto deviations = engine->Deviations("incident");
  ASSERT_TRUE(deviations.ok());
  ASSERT_EQ(deviations->size(), 1u);
  EXPECT_EQ(deviations->at(0).transaction_id, "INC1");
  EXPECT_EQ(deviations->at(0).position, 6);
  EXPECT_EQ(deviations->at(0).state, "resolved");
  EXPECT_EQ(deviations->at(0).reason,
            "no transition from \"resolved\" to \"waiting_customer\"");
  EXPECT_EQ(engine->Get("INC1")->state, "resolved");
  std::vector<HistoryRow> inc2 = CaseHistory(*engine, "INC2");
  ASSERT_EQ(inc2.size(), 2u);  // created in new, then started
  EXPECT_EQ(inc2[0].to_state, "new");
  EXPECT_EQ(inc2[1].event, "start");
  EXPECT_EQ(inc2[1].actor, "cy");
}

TEST(ImportEventLog, StatusLogReimportAddsNothing) {
  auto engine = NewEngine();
  Register(*engine, IncidentFlow());
  const std::string text =
      "number,state,updated\n"
      "INC1,New,2026-02-01T08:00:00Z\n"
      "INC1,Active,2026-02-01T09:00:00Z\n"
      "INC1,Active,2026-02-01T09:30:00Z\n"
      "INC1,Resolved,2026-02-01T12:00:00Z\n"
      "INC1,Awaiting User,2026-02-01T13:00:00Z\n";
  EventLogMapping mapping = IncidentMapping();
  mapping.actor_column = "";
  auto first = ImportEventLog(*engine, *Reader(text), mapping);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  size_t history_rows = AllHistory(*engine).size();

  auto again = ImportEventLog(*engine, *Reader(text), mapping);

  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(first->events_applied, 2);
  EXPECT_EQ(first->deviations, 1);
  EXPECT_EQ(again->created, 0);
  EXPECT_EQ(again->events_applied, 0);
  EXPECT_EQ(again->deviations, 0);
  // Every stored row counts: creation rows, transitions and deviations.
  EXPECT_EQ(again->skipped,
            first->created + first->events_applied + first->deviations);
  EXPECT_EQ(again->unchanged, first->unchanged);
  EXPECT_EQ(AllHistory(*engine).size(), history_rows);
  EXPECT_EQ(engine->Deviations("incident")->size(), 1u);
}

TEST(ImportEventLog, AttributesAreTypedFromTheFirstRow) {
  auto engine = NewEngine();
  Register(*engine, IncidentFlow());
  EventLogMapping mapping = IncidentMapping();
  mapping.actor_column = "";
  mapping.common.attributes = {{"prio", "priority", ValueType::kInteger},
                               {"amount", "amount", ValueType::kDecimal},
                               {"vip", "vip", ValueType::kBoolean}};
  mapping.common.null_values = {"?"};
  auto reader = Reader(
      "number,state,updated,prio,amount,vip\n"
      "INC1,New,2026-02-01T08:00:00Z,2,12.30,yes\n"
      "INC1,Active,2026-02-01T09:00:00Z,9,99.99,no\n"
      "INC2,New,2026-02-01T08:00:00Z,?,0.10,0\n");

  auto summary = ImportEventLog(*engine, *reader, mapping);

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  auto inc1 = engine->Get("INC1");
  ASSERT_TRUE(inc1.ok());
  ASSERT_NE(FindAttribute(inc1->attributes, "priority"), nullptr);
  EXPECT_EQ(FindAttribute(inc1->attributes, "priority")->integer(), 2);
  EXPECT_EQ(FindAttribute(inc1->attributes, "amount")->decimal().ToString(),
            "12.30");
  EXPECT_TRUE(FindAttribute(inc1->attributes, "vip")->boolean());
  auto inc2 = engine->Get("INC2");
  ASSERT_TRUE(inc2.ok());
  const Value* prio = FindAttribute(inc2->attributes, "priority");
  EXPECT_TRUE(prio == nullptr || prio->is_null());
  EXPECT_FALSE(FindAttribute(inc2->attributes, "vip")->boolean());
}

TEST(ImportEventLog, BadAttributeRejectsTheCaseNamingItsColumn) {
  auto engine = NewEngine();
  Register(*engine, IncidentFlow());
  EventLogMapping mapping = IncidentMapping();
  mapping.actor_column = "";
  mapping.common.attributes = {{"prio", "priority", ValueType::kInteger}};
  auto reader = Reader(
      "number,state,updated,prio\n"
      "INC1,New,2026-02-01T08:00:00Z,high\n"
      "INC2,New,2026-02-01T08:00:00Z,3\n");

  auto summary = ImportEventLog(*engine, *reader, mapping);

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  ASSERT_EQ(summary->rejects.size(), 1u);
  EXPECT_EQ(summary->rejects[0].ToString(),
            "t.csv:2:4: invalid integer \"high\" for attribute \"priority\" "
            "(expected an integer)");
  EXPECT_EQ(engine->Get("INC1").status().code(), Code::kNotFound);
  EXPECT_TRUE(engine->Get("INC2").ok());
}

const char kBadTimeCsv[] =
    "case_id,activity,timestamp,comment\n"
    "SR-1,Opened,2026-02-02T09:00:00Z,a\n"
    "SR-1,Resolved,2026-02-30T10:00:00Z,b\n"
    "SR-2,Opened,2026-02-02T09:00:00Z,c\n"
    "SR-1,Resolved,2026-02-02T11:00:00Z,d\n";

TEST(ImportEventLog, BadTimestampRejectsTheWholeCase) {
  auto engine = NewEngine();
  Register(*engine, ServiceRequestFlow());

  auto summary =
      ImportEventLog(*engine, *Reader(kBadTimeCsv), ServiceRequestMapping());

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  ASSERT_EQ(summary->rejects.size(), 1u);
  EXPECT_EQ(summary->rejects[0].ToString(),
            "t.csv:3:3: unparseable time \"2026-02-30T10:00:00Z\" (expected "
            "ISO 8601)");
  EXPECT_EQ(summary->rejects[0].case_id, "SR-1");
  EXPECT_EQ(summary->cases, 1);
  // Nothing of SR-1, not even its good rows.
  EXPECT_EQ(engine->Get("SR-1").status().code(), Code::kNotFound);
  EXPECT_EQ(engine->Get("SR-2")->state, "open");
  auto imports = engine->store().QueryImports();
  ASSERT_TRUE(imports.ok());
  ASSERT_EQ(imports->size(), 1u);
  EXPECT_EQ(imports->at(0).rejected, 1);
  EXPECT_EQ(imports->at(0).cases, 1);
}

TEST(ImportEventLog, OnErrorRaiseLeavesTheDatabaseUnchanged) {
  auto engine = NewEngine();
  Register(*engine, ServiceRequestFlow());
  EventLogMapping mapping = ServiceRequestMapping();
  mapping.common.on_error = OnError::kRaise;

  auto summary = ImportEventLog(*engine, *Reader(kBadTimeCsv), mapping);

  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), Code::kParseError);
  EXPECT_EQ(summary.status().message(),
            "t.csv:3:3: unparseable time \"2026-02-30T10:00:00Z\" (expected "
            "ISO 8601)");
  EXPECT_TRUE(AllHistory(*engine).empty());
  EXPECT_TRUE(engine->List("", "")->empty());
  EXPECT_TRUE(engine->store().QueryImports()->empty());
}

TEST(ImportEventLog, ThrowingActionRollsBackTheWholeImport) {
  auto engine = NewEngine();
  Workflow wf("service_request", 1);
  (void)wf.AddState("new", StateRole::kInitial);
  (void)wf.AddState("open");
  (void)wf.AddState("resolved", StateRole::kTerminal);
  (void)wf.AddTransition({"open", "new", "open"});
  (void)wf.AddTransition({"resolve", "open", "resolved", {}, {"explode"}});
  Register(*engine, std::move(wf));
  engine->RegisterAction("explode", [](const CallContext& c) {
    if (c.txn.id == "SR-2") throw std::runtime_error("boom");
  });
  auto reader = Reader(
      "case_id,activity,timestamp,comment\n"
      "SR-1,Opened,2026-02-02T09:00:00Z,\n"
      "SR-1,Resolved,2026-02-02T10:00:00Z,\n"
      "SR-2,Opened,2026-02-02T09:00:00Z,\n"
      "SR-2,Resolved,2026-02-02T10:00:00Z,\n");

  EXPECT_THROW((void)ImportEventLog(*engine, *reader, ServiceRequestMapping()),
               std::runtime_error);

  EXPECT_TRUE(AllHistory(*engine).empty());
  EXPECT_TRUE(engine->List("", "")->empty());
}

TEST(ImportEventLog, UnknownMappingColumnListsTheHeader) {
  auto engine = NewEngine();
  Register(*engine, ServiceRequestFlow());
  EventLogMapping mapping = ServiceRequestMapping();
  mapping.time_column = "stamp";

  auto summary = ImportEventLog(
      *engine, *Reader("case_id,activity,timestamp,comment\n"), mapping);

  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(summary.status().message(),
            "t.csv: unknown column \"stamp\" in the mapping (expected one of "
            "case_id, activity, timestamp, comment)");
}

TEST(ImportEventLog, UnknownActivityRejectsAndIgnoredActivityIsCounted) {
  auto engine = NewEngine();
  Register(*engine, ServiceRequestFlow());
  EventLogMapping mapping = ServiceRequestMapping();
  mapping.activity_map.push_back({"Viewed", ""});
  auto reader = Reader(
      "case_id,activity,timestamp,comment\n"
      "SR-1,Opened,2026-02-02T09:00:00Z,\n"
      "SR-1,Viewed,not a time,\n"
      "SR-2,Opened,2026-02-02T09:00:00Z,\n"
      "SR-2,Escalated,2026-02-02T09:10:00Z,\n");

  auto summary = ImportEventLog(*engine, *reader, mapping);

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->ignored, 1);
  ASSERT_EQ(summary->rejects.size(), 1u);
  EXPECT_EQ(summary->rejects[0].ToString(),
            "t.csv:5:2: unknown activity \"Escalated\" (expected Opened, "
            "Resolved, Viewed)");
  EXPECT_EQ(engine->Get("SR-1")->state, "open");
  EXPECT_EQ(engine->Get("SR-2").status().code(), Code::kNotFound);
}

MilestoneMapping SalesOrderMapping() {
  MilestoneMapping m;
  m.common.kind = "sales_order";
  m.common.case_columns = {"order_id"};
  m.created_column = "created_at";
  m.milestones = {{"approved_at", {"approve"}}, {"shipped_at", {"ship"}}};
  m.status_column = "status";
  m.status_map = {{"closed", "closed"},
                  {"shipped", "shipped"},
                  {"cancelled", "cancelled"}};
  return m;
}

const char kOrdersCsv[] =
    "order_id,created_at,approved_at,shipped_at,status\n"
    // Reaches shipped; closed is two inferred steps further.
    "SO-1,2026-01-05T08:00:00Z,2026-01-05T09:00:00Z,2026-01-06T10:00:00Z,"
    "closed\n"
    // Shipped before approved: ship is a deviation, then approve, then the
    // final status needs an inferred ship.
    "SO-2,2026-01-05T08:00:00Z,2026-01-07T09:00:00Z,2026-01-06T12:00:00Z,"
    "shipped\n"
    // No milestone: cancelled straight from created.
    "SO-3,2026-01-05T08:00:00Z,,,cancelled\n"
    // Shipped, but cancelled is unreachable from shipped.
    "SO-4,2026-01-05T08:00:00Z,2026-01-05T09:00:00Z,2026-01-05T10:00:00Z,"
    "cancelled\n"
    "SO-1,2026-01-09T08:00:00Z,,,closed\n";

TEST(ImportMilestones, FinalStatusIsReachedByTheShortestInferredPath) {
  auto engine = NewEngine();
  Register(*engine, SalesOrderFlow());

  auto summary =
      ImportMilestones(*engine, *Reader(kOrdersCsv), SalesOrderMapping());

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->rows, 5);
  EXPECT_EQ(summary->cases, 4);
  EXPECT_EQ(summary->created, 4);
  // SO-1 approve ship invoice close, SO-2 approve ship, SO-3 cancel, SO-4
  // approve ship.
  EXPECT_EQ(summary->events_applied, 9);
  EXPECT_EQ(summary->inferred, 4);
  EXPECT_EQ(summary->deviations, 2);
  std::vector<HistoryRow> so1 = CaseHistory(*engine, "SO-1");
  ASSERT_EQ(so1.size(), 5u);
  EXPECT_EQ(so1[3].event, "invoice");
  EXPECT_EQ(so1[4].event, "close");
  EXPECT_EQ(so1[4].to_state, "closed");
  EXPECT_EQ(so1[4].payload, "{\"inferred\":true}");
  // Inferred steps happen at the last known time, the shipment.
  EXPECT_EQ(so1[4].time.micros, so1[2].time.micros);
  EXPECT_EQ(engine->Get("SO-3")->state, "cancelled");
  EXPECT_EQ(engine->Get("SO-4")->state, "shipped");
}

TEST(ImportMilestones, OutOfOrderMilestoneAndUnreachableStatusDeviate) {
  auto engine = NewEngine();
  Register(*engine, SalesOrderFlow());

  auto summary =
      ImportMilestones(*engine, *Reader(kOrdersCsv), SalesOrderMapping());

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  auto deviations = engine->Deviations("sales_order");
  ASSERT_TRUE(deviations.ok());
  ASSERT_EQ(deviations->size(), 2u);
  const Deviation* so2 = nullptr;
  const Deviation* so4 = nullptr;
  for (const Deviation& d : deviations.value()) {
    if (d.transaction_id == "SO-2") so2 = &d;
    if (d.transaction_id == "SO-4") so4 = &d;
  }
  ASSERT_NE(so2, nullptr);
  EXPECT_EQ(so2->event, "ship");
  EXPECT_EQ(so2->state, "created");
  EXPECT_EQ(so2->position, 0);
  ASSERT_NE(so4, nullptr);
  EXPECT_EQ(so4->state, "shipped");
  EXPECT_EQ(so4->reason,
            "no path from \"shipped\" to final status \"cancelled\"");
  EXPECT_EQ(engine->Get("SO-2")->state, "shipped");
}

TEST(ImportMilestones, DuplicateCaseRejectsTheLaterRowNamingTheEarlier) {
  auto engine = NewEngine();
  Register(*engine, SalesOrderFlow());

  auto summary =
      ImportMilestones(*engine, *Reader(kOrdersCsv), SalesOrderMapping());

  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  ASSERT_EQ(summary->rejects.size(), 1u);
  EXPECT_EQ(summary->rejects[0].ToString(),
            "t.csv:6:1: duplicate case \"SO-1\" (first seen on line 2)");
  EXPECT_EQ(engine->Get("SO-1")->state, "closed");
}

TEST(ImportMilestones, ReimportAddsNothing) {
  auto engine = NewEngine();
  Register(*engine, SalesOrderFlow());
  auto first =
      ImportMilestones(*engine, *Reader(kOrdersCsv), SalesOrderMapping());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  size_t history_rows = AllHistory(*engine).size();

  auto again =
      ImportMilestones(*engine, *Reader(kOrdersCsv), SalesOrderMapping());

  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->created, 0);
  EXPECT_EQ(again->events_applied, 0);
  EXPECT_EQ(again->deviations, 0);
  EXPECT_EQ(again->inferred, 0);
  // 4 creation rows + 9 transitions + 2 deviations.
  EXPECT_EQ(again->skipped, 15);
  EXPECT_EQ(again->cases, 4);
  EXPECT_EQ(AllHistory(*engine).size(), history_rows);
  EXPECT_EQ(engine->Deviations("sales_order")->size(), 2u);
  EXPECT_EQ(engine->store().QueryImports()->size(), 2u);
}

TEST(ImportEventLog, C04ReimportSkipsEveryEvent) {
  auto engine = NewEngine();
  Register(*engine, TicketFlow());
  auto first = ImportEventLog(*engine, *Reader(C04Csv()), TicketMapping());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  size_t history_rows = AllHistory(*engine).size();

  auto again = ImportEventLog(*engine, *Reader(C04Csv()), TicketMapping());

  ASSERT_TRUE(again.ok()) << again.status().ToString();
  // 1001 creation rows, 2000 transitions, SR-X's two events.
  EXPECT_EQ(again->skipped, 3003);
  EXPECT_EQ(again->skipped,
            first->created + first->events_applied + first->deviations);
  EXPECT_EQ(again->events_applied, 0);
  EXPECT_EQ(again->deviations, 0);
  EXPECT_EQ(AllHistory(*engine).size(), history_rows);
}

// Two daily exports with the same file name in different folders: the
// second one's events for a case already imported must still be applied.
TEST(ImportEventLog, SameFileNameWithOtherEventsIsNotSkipped) {
  auto engine = NewEngine();
  Register(*engine, TicketFlow());
  const std::string day1 =
      "case_id,activity,timestamp\n"
      "Z1,Created,2026-03-02T09:00:00Z\n"
      "Z1,Assigned,2026-03-02T09:30:00Z\n";
  const std::string day2 =
      "case_id,activity,timestamp\n"
      "Z1,Resolved,2026-03-03T10:00:00Z\n";
  ASSERT_TRUE(
      ImportEventLog(*engine, *Reader(day1, "d1/orders.csv"), TicketMapping())
          .ok());

  auto second =
      ImportEventLog(*engine, *Reader(day2, "d2/orders.csv"), TicketMapping());

  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->events_applied, 1);
  EXPECT_EQ(second->skipped, 0);
  EXPECT_EQ(engine->Get("Z1")->state, "resolved");
}

// The same export under another name is the same data: nothing new.
TEST(ImportEventLog, SameContentUnderAnotherNameIsSkipped) {
  auto engine = NewEngine();
  Register(*engine, TicketFlow());
  const std::string text =
      "case_id,activity,timestamp\n"
      "Z1,Created,2026-03-02T09:00:00Z\n"
      "Z1,Assigned,2026-03-02T09:30:00Z\n"
      "Z1,Resolved,2026-03-03T10:00:00Z\n";
  ASSERT_TRUE(
      ImportEventLog(*engine, *Reader(text, "good.csv"), TicketMapping()).ok());
  size_t rows = AllHistory(*engine).size();

  auto copy =
      ImportEventLog(*engine, *Reader(text, "good_copy.csv"), TicketMapping());

  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_EQ(copy->events_applied, 0);
  EXPECT_EQ(copy->deviations, 0);
  EXPECT_EQ(copy->skipped, 3);  // the creation row and two transitions
  EXPECT_EQ(AllHistory(*engine).size(), rows);
}

}  // namespace
}  // namespace crmflow
