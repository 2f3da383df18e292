// engine_test.cc: firing semantics (candidates, guards, hooks, internal and
// external self-transitions), atomicity on failure, version checks,
// persistence, replay and the report; includes acceptance cases C01-C03.

#include "crmflow/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

namespace crmflow {
namespace {

Timestamp T(const char* iso) { return Timestamp::ParseIso(iso).value(); }

FireOptions At(const char* iso) {
  FireOptions o;
  o.time = T(iso);
  return o;
}

CreateRequest Req(const std::string& kind, const std::string& id,
                  const char* iso = "2026-02-02T08:00:00Z") {
  CreateRequest r;
  r.kind = kind;
  r.id = id;
  r.time = T(iso);
  return r;
}

Workflow SalesOrder() {
  Workflow wf("sales_order", 1);
  EXPECT_TRUE(wf.AddState("created", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("submitted").ok());
  EXPECT_TRUE(wf.AddState("shipped").ok());
  EXPECT_TRUE(wf.AddState("cancelled", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddState("done", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddTransition({"submit", "created", "submitted"}).ok());
  EXPECT_TRUE(wf.AddTransition({"cancel", "created", "cancelled"}).ok());
  EXPECT_TRUE(wf.AddTransition({"ship", "submitted", "shipped"}).ok());
  EXPECT_TRUE(wf.AddTransition({"complete", "shipped", "done"}).ok());
  EXPECT_TRUE(wf.AddAttribute({"amount", ValueType::kDecimal, false}).ok());
  EXPECT_TRUE(wf.AddAttribute({"note", ValueType::kText, false}).ok());
  return wf;
}

std::unique_ptr<Engine> MemoryEngine() {
  auto e = Engine::Open({});
  EXPECT_TRUE(e.ok());
  return std::move(*e);
}

// SQLite-backed cases: a fresh file per test, removed afterwards.
class SqliteEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("crmflow_engine_test_" + std::to_string(getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() +
              ".db"))
                .string();
    Remove();
  }
  void TearDown() override { Remove(); }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path_ + suffix);
    }
  }
  std::unique_ptr<Engine> Open() {
    EngineOptions o;
    o.path = path_;
    auto e = Engine::Open(o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return std::move(*e);
  }

  std::string path_;
};

TEST(Engine, CreateWritesCreationRow) {
  auto e = MemoryEngine();
  ASSERT_TRUE(e->Register(SalesOrder(), "{}").ok());

  auto txn = e->Create(Req("sales_order", "SO-1"));

  ASSERT_TRUE(txn.ok()) << txn.status().ToString();
  EXPECT_EQ(txn->state, "created");
  EXPECT_EQ(txn->version, 1);
  auto rows = e->History({}).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].event, "create");
  EXPECT_EQ(rows[0].from_state, "");
  EXPECT_EQ(rows[0].to_state, "created");
}

TEST(Engine, NotAllowedNamesStateEventAndAllowedEvents) {
  auto e = MemoryEngine();
  ASSERT_TRUE(e->Register(SalesOrder(), "{}").ok());
  ASSERT_TRUE(e->Create(Req("sales_order", "SO-1")).ok());

  auto r = e->Fire("SO-1", "ship", {});

  EXPECT_EQ(r.status().code(), Code::kNotAllowed);
  EXPECT_EQ(r.status().message(),
            "transaction \"SO-1\" in state \"created\": event \"ship\" not "
            "allowed (allowed: submit, cancel)");
  EXPECT_EQ(e->Get("SO-1")->version, 1);
  EXPECT_EQ(e->History({}).value().size(), 1u);
}

TEST(Engine, UnknownIdAndKindAreNotFound) {
  auto e = MemoryEngine();
  ASSERT_TRUE(e->Register(SalesOrder(), "{}").ok());

  EXPECT_EQ(e->Fire("nope", "submit", {}).status().code(), Code::kNotFound);
  EXPECT_EQ(e->Create(Req("widget", "W-1")).status().code(),
            Code::kNotFound);
  ASSERT_TRUE(e->Create(Req("sales_order", "SO-1")).ok());
  EXPECT_EQ(e->Create(Req("sales_order", "SO-1")).status().code(),
            Code::kAlreadyExists);
}

TEST(Engine, AttributesAreChecked) {
  auto e = MemoryEngine();
  Workflow wf = SalesOrder();
  ASSERT_TRUE(wf.AddAttribute({"region", ValueType::kText, true}).ok());
  ASSERT_TRUE(e->Register(std::move(wf), "{}").ok());
  CreateRequest r = Req("sales_order", "SO-1");

  auto missing = e->Create(r);
  r.attributes = {{"region", Value::Text("EU")}, {"color", Value::Text("x")}};
  auto unknown = e->Create(r);
  r.attributes = {{"region", Value::Text("EU")}, {"amount", Value::Integer(3)}};
  auto mistyped = e->Create(r);
  r.attributes = {{"region", Value::Text("\xC0\xAF")}};
  auto bad_utf8 = e->Create(r);
  r.attributes = {{"region", Value::Text("EU")},
                  {"amount", Value::Dec(Decimal::Parse("9.99").value())}};
  auto ok = e->Create(r);

  EXPECT_EQ(missing.status().code(), Code::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("\"region\""), std::string::npos);
  EXPECT_EQ(unknown.status().code(), Code::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("\"color\""), std::string::npos);
  EXPECT_EQ(mistyped.status().code(), Code::kInvalidArgument);
  EXPECT_NE(mistyped.status().message().find("(expected decimal)"),
            std::string::npos);
  EXPECT_EQ(bad_utf8.status().code(), Code::kInvalidArgument);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  auto updated = e->SetAttributes(
      "SO-1", {{"note", Value::Text("gift")}}, /*expected_version=*/1);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->version, 2);
  EXPECT_EQ(FindAttribute(updated->attributes, "note")->text(), "gift");
  EXPECT_EQ(FindAttribute(updated->attributes, "amount")->decimal().ToString(),
            "9.99");
  EXPECT_EQ(e->SetAttributes("SO-1", {}, 1).status().code(),
            Code::kConcurrentUpdate);
}

TEST(Engine, StaleExpectedVersionIsRefused) {
  auto e = MemoryEngine();
  ASSERT_TRUE(e->Register(SalesOrder(), "{}").ok());
  ASSERT_TRUE(e->Create(Req("sales_order", "SO-1")).ok());
  FireOptions o;
  o.expected_version = 2;

  auto stale = e->Fire("SO-1", "submit", o);
  o.expected_version = 1;
  auto fresh = e->Fire("SO-1", "submit", o);

  EXPECT_EQ(stale.status().code(), Code::kConcurrentUpdate);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->state, "submitted");
  EXPECT_EQ(fresh->version, 2);
}

// C01: internal vs external self-transitions.
TEST(Engine, C01InternalAndExternalSelfTransitions) {
  auto e = MemoryEngine();
  Workflow wf("service_request", 1);
  ASSERT_TRUE(wf.AddState("new", StateRole::kInitial).ok());
  ASSERT_TRUE(wf.AddState("in_progress").ok());
  ASSERT_TRUE(wf.AddState("closed", StateRole::kTerminal).ok());
  ASSERT_TRUE(wf.AddTransition({"start", "new", "in_progress"}).ok());
  TransitionSpec note{"add_note", "in_progress", "in_progress", {}, {"note"}};
  note.internal = true;
  ASSERT_TRUE(wf.AddTransition(note).ok());
  ASSERT_TRUE(wf.AddTransition({"reassign", "in_progress", "in_progress", {},
                                {"set_owner"}})
                  .ok());
  ASSERT_TRUE(wf.AddTransition({"close", "in_progress", "closed"}).ok());
  ASSERT_TRUE(e->Register(std::move(wf), "{}").ok());
  std::vector<std::string> log;
  e->OnEnter("service_request", "in_progress",
             [&](const CallContext&) { log.push_back("enter:in_progress"); });
  e->OnExit("service_request", "in_progress",
            [&](const CallContext&) { log.push_back("exit:in_progress"); });
  e->RegisterAction("note",
                    [&](const CallContext&) { log.push_back("act:note"); });
  e->RegisterAction("set_owner", [&](const CallContext&) {
    log.push_back("act:set_owner");
  });
  ASSERT_TRUE(
      e->Create(Req("service_request", "SR-1", "2026-02-02T08:00:00Z")).ok());

  ASSERT_TRUE(e->Fire("SR-1", "start", At("2026-02-02T09:00:00Z")).ok());
  ASSERT_TRUE(e->Fire("SR-1", "add_note", At("2026-02-02T09:10:00Z")).ok());
  ASSERT_TRUE(e->Fire("SR-1", "add_note", At("2026-02-02T09:20:00Z")).ok());
  Transaction after_notes = e->Get("SR-1").value();
  auto reassigned = e->Fire("SR-1", "reassign", At("2026-02-02T09:30:00Z"));

  ASSERT_TRUE(reassigned.ok());
  EXPECT_EQ(log, (std::vector<std::string>{
                     "enter:in_progress", "act:note", "act:note",
                     "exit:in_progress", "act:set_owner",
                     "enter:in_progress"}));
  EXPECT_EQ(after_notes.state, "in_progress");
  EXPECT_EQ(after_notes.state_entered_at, T("2026-02-02T09:00:00Z"));
  Transaction final_txn = e->Get("SR-1").value();
  EXPECT_EQ(final_txn.state, "in_progress");
  EXPECT_EQ(final_txn.state_entered_at, T("2026-02-02T09:30:00Z"));
  auto rows = e->History({}).value();
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].event, "create");
  EXPECT_FALSE(rows[1].internal);
  EXPECT_TRUE(rows[2].internal);
  EXPECT_TRUE(rows[3].internal);
  EXPECT_FALSE(rows[4].internal);
  EXPECT_EQ(rows[4].event, "reassign");
}

// C02: a throwing guard leaves nothing behind, in memory or on disk.
TEST_F(SqliteEngineTest, C02ThrowingGuardLeavesNothingBehind) {
  auto make = [] {
    Workflow wf("complaint", 1);
    EXPECT_TRUE(wf.AddState("submitted", StateRole::kInitial).ok());
    EXPECT_TRUE(wf.AddState("approved", StateRole::kTerminal).ok());
    EXPECT_TRUE(
        wf.AddTransition({"approve", "submitted", "approved", {"credit_ok"}})
            .ok());
    return wf;
  };
  auto e = Open();
  ASSERT_TRUE(e->Register(make(), "{}").ok());
  int guard_calls = 0;
  int exits = 0;
  e->RegisterGuard("credit_ok", [&](const CallContext&, std::string*) {
    if (++guard_calls == 1) throw std::runtime_error("credit service down");
    return true;
  });
  e->OnExit("complaint", "submitted", [&](const CallContext&) { ++exits; });
  ASSERT_TRUE(e->Create(Req("complaint", "C-1")).ok());

  std::string what;
  try {
    (void)e->Fire("C-1", "approve", {});
  } catch (const std::runtime_error& ex) {
    what = ex.what();
  }

  EXPECT_EQ(what, "credit service down");
  EXPECT_EQ(e->Get("C-1")->state, "submitted");
  EXPECT_EQ(e->Get("C-1")->version, 1);
  EXPECT_EQ(exits, 0);
  EXPECT_EQ(e->History({}).value().size(), 1u);  // the creation row only
  {
    auto reopened = Open();
    ASSERT_TRUE(reopened->Register(make(), "{}").ok());
    EXPECT_EQ(reopened->Get("C-1")->state, "submitted");
    EXPECT_EQ(reopened->History({}).value().size(), 1u);
  }
  auto second = e->Fire("C-1", "approve", {});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(guard_calls, 2);
  EXPECT_EQ(second->state, "approved");
  EXPECT_EQ(exits, 1);
  auto rows = e->History({}).value();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].from_state, "submitted");
  EXPECT_EQ(rows[1].to_state, "approved");
}

// C03: candidates in declaration order, guards left to right with
// short-circuit.
struct Ticket {
  bool p1, has_owner, active;
};

std::vector<std::string> Triage(bool t3_before_t2, const Ticket& t,
                                std::string* state) {
  auto e = MemoryEngine();
  Workflow wf("ticket", 1);
  EXPECT_TRUE(wf.AddState("new", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("escalated", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddState("assigned", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddState("queued", StateRole::kTerminal).ok());
  TransitionSpec t1{"triage", "new", "escalated", {"is_p1", "customer_active"}};
  TransitionSpec t2{"triage", "new", "assigned", {"has_owner"}};
  TransitionSpec t3{"triage", "new", "queued"};
  EXPECT_TRUE(wf.AddTransition(t1).ok());
  EXPECT_TRUE(wf.AddTransition(t3_before_t2 ? t3 : t2).ok());
  EXPECT_TRUE(wf.AddTransition(t3_before_t2 ? t2 : t3).ok());
  EXPECT_TRUE(e->Register(std::move(wf), "{}").ok());
  std::vector<std::string> calls;
  auto guard = [&](const char* name, bool value) {
    e->RegisterGuard(name, [&calls, name, value](const CallContext&,
                                                 std::string*) {
      calls.push_back(name);
      return value;
    });
  };
  guard("is_p1", t.p1);
  guard("customer_active", t.active);
  guard("has_owner", t.has_owner);
  EXPECT_TRUE(e->Create(Req("ticket", "T")).ok());
  auto r = e->Fire("T", "triage", {});
  EXPECT_TRUE(r.ok());
  *state = r.ok() ? r->state : "";
  return calls;
}

TEST(Engine, C03GuardsInDeclarationOrderWithShortCircuit) {
  Ticket a{true, true, true}, b{false, true, true}, c{false, false, true};
  using V = std::vector<std::string>;
  std::string s;

  EXPECT_EQ(Triage(false, a, &s), (V{"is_p1", "customer_active"}));
  EXPECT_EQ(s, "escalated");
  EXPECT_EQ(Triage(false, b, &s), (V{"is_p1", "has_owner"}));
  EXPECT_EQ(s, "assigned");
  EXPECT_EQ(Triage(false, c, &s), (V{"is_p1", "has_owner"}));
  EXPECT_EQ(s, "queued");
  EXPECT_EQ(Triage(true, a, &s), (V{"is_p1", "customer_active"}));
  EXPECT_EQ(s, "escalated");
  EXPECT_EQ(Triage(true, b, &s), (V{"is_p1"}));
  EXPECT_EQ(s, "queued");
  EXPECT_EQ(Triage(true, c, &s), (V{"is_p1"}));
  EXPECT_EQ(s, "queued");
}

TEST(Engine, GuardRefusalNamesGuardAndReason) {
  auto e = MemoryEngine();
  Workflow wf("complaint", 1);
  ASSERT_TRUE(wf.AddState("submitted", StateRole::kInitial).ok());
  ASSERT_TRUE(wf.AddState("approved", StateRole::kTerminal).ok());
  ASSERT_TRUE(
      wf.AddTransition({"approve", "submitted", "approved", {"credit_ok"}})
          .ok());
  ASSERT_TRUE(e->Register(std::move(wf), "{}").ok());
  e->RegisterGuard("credit_ok", [](const CallContext&, std::string* why) {
    *why = "credit limit exceeded";
    return false;
  });
  ASSERT_TRUE(e->Create(Req("complaint", "C-1")).ok());

  auto r = e->Fire("C-1", "approve", {});

  EXPECT_EQ(r.status().code(), Code::kGuardRefused);
  EXPECT_EQ(r.status().message(),
            "guard \"credit_ok\" refused event \"approve\" on transaction "
            "\"C-1\": credit limit exceeded");
}

TEST(Engine, NestedBeginRollback) {
  auto e = MemoryEngine();
  ASSERT_TRUE(e->Register(SalesOrder(), "{}").ok());
  ASSERT_TRUE(e->Create(Req("sales_order", "SO-1")).ok());

  ASSERT_TRUE(e->Begin().ok());
  ASSERT_TRUE(e->Fire("SO-1", "submit", {}).ok());
  ASSERT_TRUE(e->Begin().ok());
  ASSERT_TRUE(e->Fire("SO-1", "ship", {}).ok());
  ASSERT_TRUE(e->Rollback().ok());
  ASSERT_TRUE(e->Commit().ok());

  EXPECT_EQ(e->Get("SO-1")->state, "submitted");
  EXPECT_EQ(e->History({}).value().size(), 2u);
}

TEST_F(SqliteEngineTest, ReopenRestoresEverything) {
  {
    auto e = Open();
    ASSERT_TRUE(e->Register(SalesOrder(), "{\"v\":1}").ok());
    CreateRequest r = Req("sales_order", "SO-1");
    r.customer_id = "CU-9";
    r.attributes = {{"amount", Value::Dec(Decimal::Parse("12.30").value())}};
    ASSERT_TRUE(e->Create(r).ok());
    ASSERT_TRUE(e->Fire("SO-1", "submit", At("2026-02-02T09:00:00Z")).ok());
  }

  auto e = Open();
  ASSERT_TRUE(e->Register(SalesOrder(), "{\"v\":1}").ok());

  Transaction t = e->Get("SO-1").value();
  EXPECT_EQ(t.state, "submitted");
  EXPECT_EQ(t.version, 2);
  EXPECT_EQ(t.customer_id, "CU-9");
  EXPECT_EQ(t.state_entered_at, T("2026-02-02T09:00:00Z"));
  EXPECT_EQ(FindAttribute(t.attributes, "amount")->decimal().ToString(),
            "12.30");
  EXPECT_EQ(e->History({}).value().size(), 2u);
  auto stored = e->StoredWorkflows().value();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].definition, "{\"v\":1}");
  EXPECT_TRUE(e->Fire("SO-1", "ship", {}).ok());
}

TEST_F(SqliteEngineTest, TwoEnginesDetectStaleCachedCopy) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a->Register(SalesOrder(), "{}").ok());
  ASSERT_TRUE(b->Register(SalesOrder(), "{}").ok());
  ASSERT_TRUE(a->Create(Req("sales_order", "SO-1")).ok());
  ASSERT_EQ(b->Get("SO-1")->state, "created");  // b caches version 1

  ASSERT_TRUE(a->Fire("SO-1", "submit", {}).ok());
  auto again = b->Fire("SO-1", "submit", {});
  FireOptions stale;
  stale.expected_version = 1;
  auto stale_write = b->Fire("SO-1", "ship", stale);
  auto ship = b->Fire("SO-1", "ship", {});

  EXPECT_EQ(again.status().code(), Code::kNotAllowed);
  EXPECT_NE(again.status().message().find("in state \"submitted\""),
            std::string::npos);
  EXPECT_EQ(stale_write.status().code(), Code::kConcurrentUpdate);
  ASSERT_TRUE(ship.ok());
  EXPECT_EQ(ship->version, 3);
  EXPECT_EQ(a->Get("SO-1")->state, "shipped");
}

TEST(Engine, ReplayRecordsDeviationsAndSkipsKnownSources) {
  auto e = MemoryEngine();
  ASSERT_TRUE(e->Register(SalesOrder(), "{}").ok());
  ASSERT_TRUE(e->Create(Req("sales_order", "SO-1")).ok());
  std::vector<ReplayEvent> batch = {
      {"SO-1", "submit", T("2026-02-02T09:00:00Z"), "", "", "f:1"},
      {"SO-1", "cancel", T("2026-02-02T09:05:00Z"), "", "", "f:2"},
      {"SO-1", "ship", T("2026-02-02T10:00:00Z"), "", "", "f:3"},
  };

  auto first = e->Replay(batch, {});
  auto second = e->Replay(batch, {});

  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->applied, 2);
  EXPECT_EQ(first->deviations, 1);
  EXPECT_EQ(second->skipped, 3);
  auto devs = e->Deviations("sales_order").value();
  ASSERT_EQ(devs.size(), 1u);
  EXPECT_EQ(devs[0].event, "cancel");
  EXPECT_EQ(devs[0].state, "submitted");
  EXPECT_EQ(devs[0].position, 1);
  EXPECT_EQ(e->Get("SO-1")->state, "shipped");
}

TEST(Engine, ReplayWithoutDeviationsRollsBackTheBatch) {
  auto e = MemoryEngine();
  ASSERT_TRUE(e->Register(SalesOrder(), "{}").ok());
  ASSERT_TRUE(e->Create(Req("sales_order", "SO-1")).ok());
  std::vector<ReplayEvent> batch = {
      {"SO-1", "submit", T("2026-02-02T09:00:00Z"), "", "", ""},
      {"SO-1", "cancel", T("2026-02-02T09:05:00Z"), "", "", ""},
  };
  ReplayOptions o;
  o.record_deviations = false;

  auto r = e->Replay(batch, o);

  EXPECT_EQ(r.status().code(), Code::kNotAllowed);
  EXPECT_EQ(e->Get("SO-1")->state, "created");
  EXPECT_EQ(e->History({}).value().size(), 1u);
}

TEST(Engine, ReportCountsReachedAndPercentiles) {
  auto e = MemoryEngine();
  ASSERT_TRUE(e->Register(SalesOrder(), "{}").ok());
  // Time in "created" before submit: 60 s, 120 s, 300 s.
  const char* submits[] = {"2026-02-02T08:01:00Z", "2026-02-02T08:02:00Z",
                           "2026-02-02T08:05:00Z"};
  for (int i = 0; i < 3; ++i) {
    std::string id = "SO-" + std::to_string(i);
    ASSERT_TRUE(e->Create(Req("sales_order", id)).ok());
    ASSERT_TRUE(e->Fire(id, "submit", At(submits[i])).ok());
  }
  ASSERT_TRUE(e->Create(Req("sales_order", "SO-9")).ok());

  auto reports = e->Report().value();

  ASSERT_EQ(reports.size(), 1u);
  const KindReport& r = reports[0];
  EXPECT_EQ(r.transactions, 4);
  EXPECT_EQ(r.by_state.at("submitted"), 3);
  EXPECT_EQ(r.by_state.at("created"), 1);
  EXPECT_EQ(r.reached.at("created"), 4);
  EXPECT_EQ(r.reached.at("submitted"), 3);
  ASSERT_EQ(r.transitions.size(), 1u);
  EXPECT_EQ(r.transitions[0].count, 3);
  // Sorted 60, 120, 300: median 120; p90 at position 1.8 = 120 + 0.8*180.
  EXPECT_DOUBLE_EQ(r.transitions[0].median_seconds, 120.0);
  EXPECT_DOUBLE_EQ(r.transitions[0].p90_seconds, 264.0);
}

}  // namespace
}  // namespace crmflow
