// approvals_test.cc: band selection, chains, unanimous and first-response
// steps, rejection, delegation windows, refusals and atomicity of
// approvals.h, on the memory store and on a SQLite file.

#include "crmflow/approvals.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "crmflow/routing.h"
#include "crmflow/rules.h"

namespace crmflow {
namespace {

Timestamp At(int day, int hour) {
  return Timestamp::FromCivilUtc(2026, 3, day, hour, 0, 0, 0).value();
}

Decimal Dec(const char* text) { return Decimal::Parse(text).value(); }

// draft -submit-> pending_approval -approve-> approved -ship-> shipped;
// reject returns to draft, cancel ends in cancelled.
Workflow SalesOrder() {
  Workflow wf("sales_order", 1);
  EXPECT_TRUE(wf.AddState("draft", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("pending_approval").ok());
  EXPECT_TRUE(wf.AddState("approved").ok());
  EXPECT_TRUE(wf.AddState("shipped", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddState("cancelled", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddTransition({"submit", "draft", "pending_approval"}).ok());
  // The guard refuses blocked customers, whoever approved.
  EXPECT_TRUE(wf.AddTransition({"approve",
                                "pending_approval",
                                "approved",
                                {"expr: coalesce(tier, '') != 'blocked'"}})
                  .ok());
  EXPECT_TRUE(wf.AddTransition({"reject", "pending_approval", "draft"}).ok());
  EXPECT_TRUE(
      wf.AddTransition({"cancel", "pending_approval", "cancelled"}).ok());
  EXPECT_TRUE(wf.AddTransition({"ship", "approved", "shipped"}).ok());
  EXPECT_TRUE(wf.AddAttribute({"amount", ValueType::kDecimal, false}).ok());
  EXPECT_TRUE(wf.AddAttribute({"tier", ValueType::kText, false}).ok());
  return wf;
}

ApprovalStep Step(std::string name, std::vector<std::string> approvers,
                  ApprovalMode mode = ApprovalMode::kUnanimous) {
  ApprovalStep s;
  s.name = std::move(name);
  s.approvers = std::move(approvers);
  s.mode = mode;
  return s;
}

// Up to 1,000 automatic; up to 10,000 the manager; above, the manager
// then one of two directors (first response).
ApprovalMatrix ThreeBands() {
  ApprovalMatrix m;
  m.kind = "sales_order";
  m.request_state = "pending_approval";
  m.approve_event = "approve";
  m.reject_event = "reject";
  m.bands = {
      {"small", "amount <= 1000", {}},
      {"medium", "amount <= 10000", {Step("manager", {"mia"})}},
      {"large",
       "true",
       {Step("manager", {"mia"}),
        Step("director", {"dan", "dora"}, ApprovalMode::kFirst)}},
  };
  return m;
}

std::unique_ptr<Engine> OpenEngine(const std::string& path) {
  EngineOptions options;
  options.path = path;
  options.clock = [] { return At(2, 10); };
  auto engine = Engine::Open(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_TRUE(engine.value()->Register(SalesOrder(), "{}").ok());
  return std::move(engine).value();
}

void CreateOrder(Engine& engine, const std::string& id, const char* amount,
                 const char* tier = nullptr) {
  CreateRequest req;
  req.kind = "sales_order";
  req.id = id;
  if (amount != nullptr) {
    req.attributes = {{"amount", Value::Dec(Dec(amount))}};
  }
  if (tier != nullptr) req.attributes.push_back({"tier", Value::Text(tier)});
  auto t = engine.Create(req);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
}

std::string StateOf(Engine& engine, const std::string& id) {
  auto t = engine.Get(id);
  return t.ok() ? t->state : t.status().ToString();
}

DecisionOptions By(std::string actor, int hour = 11) {
  DecisionOptions o;
  o.actor = std::move(actor);
  o.time = At(2, hour);
  return o;
}

// Runs each case on the memory store and on a SQLite file.
class ApprovalsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      path_ = (std::filesystem::temp_directory_path() /
               ("crmflow_approvals_test_" + std::to_string(getpid()) + "_" +
                std::to_string(serial_++) + ".db"))
                  .string();
      Remove();
    }
    engine_ = OpenEngine(path_);
    auto a = Approvals::Attach(engine_.get());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    approvals_ = std::move(a).value();
    Status st = approvals_->SetMatrix(ThreeBands());
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void TearDown() override {
    approvals_.reset();
    engine_.reset();
    if (!path_.empty()) Remove();
  }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path_ + suffix);
    }
  }
  void Submit(const std::string& id, const char* amount,
              const char* tier = nullptr) {
    CreateOrder(*engine_, id, amount, tier);
    FireOptions fo;
    fo.time = At(2, 10);
    auto r = engine_->Fire(id, "submit", fo);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  static int serial_;
  std::string path_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Approvals> approvals_;
};

int ApprovalsTest::serial_ = 0;

INSTANTIATE_TEST_SUITE_P(Stores, ApprovalsTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "Sqlite" : "Memory";
                         });

TEST(ApprovalMatrix, FirstMatchingBandWins) {
  ExprSchema schema;
  schema.attributes = {{"amount", ValueType::kDecimal}};
  auto m = CompiledMatrix::Compile(ThreeBands(), schema);
  ASSERT_TRUE(m.ok()) << m.status().ToString();

  auto band = [&](const char* amount) {
    Attributes a = {{"amount", Value::Dec(Dec(amount))}};
    auto c = m->Chain(a);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c->band_name + ":" + std::to_string(c->steps.size())
                  : std::string("error");
  };

  // The boundaries belong to the lower band (<=).
  EXPECT_EQ("small:0", band("0.00"));
  EXPECT_EQ("small:0", band("1000.00"));
  EXPECT_EQ("medium:1", band("1000.01"));
  EXPECT_EQ("medium:1", band("10000"));
  EXPECT_EQ("large:2", band("10000.01"));
  // A missing amount compares false everywhere, so only "true" matches.
  auto none = m->Chain({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ("large", none->band_name);
}

TEST(ApprovalMatrix, NoBandMatchingNamesTheValues) {
  ExprSchema schema;
  schema.attributes = {{"amount", ValueType::kDecimal}};
  ApprovalMatrix mx = ThreeBands();
  mx.bands.pop_back();
  auto m = CompiledMatrix::Compile(mx, schema);
  ASSERT_TRUE(m.ok());

  auto c = m->Chain({{"amount", Value::Dec(Dec("20000"))}});

  ASSERT_FALSE(c.ok());
  EXPECT_EQ(Code::kNotFound, c.status().code());
  EXPECT_EQ("approval matrix \"sales_order\": no band matches "
            "(amount=20000)",
            c.status().message());
}

TEST(ApprovalMatrix, ValidationAgainstTheWorkflow) {
  Workflow wf = SalesOrder();
  auto check = [&](ApprovalMatrix m) {
    auto c = CompiledMatrix::ForWorkflow(std::move(m), wf);
    return c.ok() ? std::string("ok") : c.status().message();
  };

  ApprovalMatrix bad_state = ThreeBands();
  bad_state.request_state = "pending";
  EXPECT_EQ("approval matrix \"sales_order\": unknown request state "
            "\"pending\" (states: draft, pending_approval, approved, "
            "shipped, cancelled)",
            check(bad_state));
  ApprovalMatrix bad_event = ThreeBands();
  bad_event.approve_event = "ok";
  EXPECT_EQ("approval matrix \"sales_order\": unknown approve event \"ok\" "
            "(events: submit, approve, reject, cancel, ship)",
            check(bad_event));
  ApprovalMatrix not_leaving = ThreeBands();
  not_leaving.reject_event = "ship";
  EXPECT_EQ("approval matrix \"sales_order\": reject event \"ship\" does not "
            "leave request state \"pending_approval\" (events leaving it: "
            "approve, reject, cancel)",
            check(not_leaving));
  ApprovalMatrix typo = ThreeBands();
  typo.bands[1].condition = "amout <= 10000";
  std::string msg = check(typo);
  EXPECT_EQ(0u, msg.find("approval matrix \"sales_order\": band 2 "
                         "(\"medium\"): column 1: unknown name \"amout\""))
      << msg;
  ApprovalMatrix mistyped = ThreeBands();
  mistyped.bands[0].condition = "amount <= 'a lot'";
  EXPECT_NE(std::string::npos, check(mistyped).find("band 1 (\"small\")"));
  ApprovalMatrix no_approvers = ThreeBands();
  no_approvers.bands[1].steps[0].approvers.clear();
  EXPECT_EQ("approval matrix \"sales_order\": band 2 (\"medium\"): step 1 "
            "(\"manager\"): expected either approvers or a team (got "
            "neither)",
            check(no_approvers));
  EXPECT_EQ("ok", check(ThreeBands()));
}

TEST_P(ApprovalsTest, SmallOrderIsApprovedAutomatically) {
  Submit("SO-1", "250.00");

  EXPECT_EQ("approved", StateOf(*engine_, "SO-1"));
  auto reqs = approvals_->Requests("SO-1");
  ASSERT_TRUE(reqs.ok());
  ASSERT_EQ(1u, reqs->size());
  EXPECT_EQ("approved", (*reqs)[0].status);
  EXPECT_TRUE((*reqs)[0].automatic);
  EXPECT_EQ("small", (*reqs)[0].band_name);
  EXPECT_EQ("approve", (*reqs)[0].outcome_event);
  EXPECT_TRUE(approvals_->OpenRequests("")->empty());
}

TEST_P(ApprovalsTest, MediumOrderWaitsForTheManager) {
  Submit("SO-2", "5000.00");

  EXPECT_EQ("pending_approval", StateOf(*engine_, "SO-2"));
  auto pending = approvals_->Pending("mia", At(2, 11));
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(1u, pending->size());
  EXPECT_EQ("manager", (*pending)[0].step_name);

  auto r = approvals_->Approve("SO-2", By("mia"));

  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ("approved", r->status);
  EXPECT_EQ("approve", r->fired_event);
  EXPECT_EQ("approved", StateOf(*engine_, "SO-2"));
  auto history = engine_->History({.transaction_id = "SO-2"});
  ASSERT_EQ(3u, history->size());
  EXPECT_EQ("mia", (*history)[2].actor);
  EXPECT_TRUE(approvals_->Pending("mia", At(2, 11))->empty());
}

TEST_P(ApprovalsTest, LargeOrderNeedsManagerThenFirstDirector) {
  Submit("SO-3", "25000.00");

  // The director step waits until the manager approved.
  auto early = approvals_->Approve("SO-3", By("dan"));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(Code::kNotAllowed, early.status().code());
  EXPECT_EQ("transaction \"SO-3\": step 1 (\"manager\"): actor \"dan\" is "
            "not an approver (approvers: mia)",
            early.status().message());
  auto first = approvals_->Approve("SO-3", By("mia"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ("open", first->status);
  EXPECT_EQ(1, first->current_step);
  EXPECT_EQ("", first->fired_event);
  EXPECT_EQ("pending_approval", StateOf(*engine_, "SO-3"));
  EXPECT_EQ(1u, approvals_->Pending("dora", At(2, 11))->size());

  // One director decides for both.
  auto second = approvals_->Approve("SO-3", By("dora", 12));

  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ("approved", second->status);
  EXPECT_EQ("approved", StateOf(*engine_, "SO-3"));
  EXPECT_TRUE(approvals_->Pending("dan", At(2, 12))->empty());
  auto decisions = approvals_->Decisions("SO-3");
  ASSERT_EQ(2u, decisions->size());
  EXPECT_EQ("mia", (*decisions)[0].actor);
  EXPECT_EQ("manager", (*decisions)[0].step_name);
  EXPECT_EQ("dora", (*decisions)[1].actor);
  EXPECT_EQ(1, (*decisions)[1].step);
}

TEST_P(ApprovalsTest, UnanimousStepWaitsForEveryApprover) {
  ApprovalMatrix m = ThreeBands();
  m.bands[1].steps[0] = Step("board", {"ann", "bob", "cy"});
  ASSERT_TRUE(approvals_->SetMatrix(m).ok());
  Submit("SO-4", "5000.00");

  auto a = approvals_->Approve("SO-4", By("ann"));
  auto b = approvals_->Approve("SO-4", By("bob"));
  std::string after_two = StateOf(*engine_, "SO-4");
  auto again = approvals_->Approve("SO-4", By("bob"));
  auto c = approvals_->Approve("SO-4", By("cy"));

  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ("open", b->status);
  EXPECT_EQ("pending_approval", after_two);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(Code::kAlreadyExists, again.status().code());
  EXPECT_EQ("transaction \"SO-4\": step 1 (\"board\"): actor \"bob\" already "
            "decided",
            again.status().message());
  EXPECT_EQ("approved", c->status);
  EXPECT_EQ("approved", StateOf(*engine_, "SO-4"));
  EXPECT_EQ(3u, approvals_->Decisions("SO-4")->size());
}

TEST_P(ApprovalsTest, RejectionReturnsToTheWorkflowsStateAndReopensFresh) {
  Submit("SO-5", "25000.00");
  ASSERT_TRUE(approvals_->Approve("SO-5", By("mia")).ok());

  DecisionOptions no = By("dan", 12);
  no.comment = "margin too thin";
  auto r = approvals_->Reject("SO-5", no);

  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ("rejected", r->status);
  EXPECT_EQ("reject", r->fired_event);
  EXPECT_EQ("draft", r->state);
  EXPECT_EQ("draft", StateOf(*engine_, "SO-5"));
  auto late = approvals_->Approve("SO-5", By("dora", 13));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(Code::kNotFound, late.status().code());
  EXPECT_EQ("transaction \"SO-5\" in state \"draft\": no open approval "
            "request",
            late.status().message());

  // Resubmitted: a fresh request from step 1; the old one stays.
  FireOptions fo;
  fo.time = At(2, 14);
  ASSERT_TRUE(engine_->Fire("SO-5", "submit", fo).ok());
  auto reqs = approvals_->Requests("SO-5");
  ASSERT_EQ(2u, reqs->size());
  EXPECT_EQ("rejected", (*reqs)[0].status);
  EXPECT_EQ("open", (*reqs)[1].status);
  EXPECT_EQ(0, (*reqs)[1].current_step);
  auto decisions = approvals_->Decisions("SO-5");
  ASSERT_EQ(2u, decisions->size());
  EXPECT_EQ("reject", (*decisions)[1].decision);
  EXPECT_EQ("margin too thin", (*decisions)[1].comment);
  EXPECT_EQ(1u, approvals_->Pending("mia", At(2, 15))->size());
}

TEST_P(ApprovalsTest, DelegateDecidesOnBehalfInsideTheWindowOnly) {
  Submit("SO-6", "5000.00");
  auto id = approvals_->Delegate("mia", "sam", At(3, 0), At(5, 0));
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  // Before the window: refused.
  auto before = approvals_->Approve("SO-6", By("sam", 23));
  ASSERT_FALSE(before.ok());
  EXPECT_EQ(Code::kNotAllowed, before.status().code());
  EXPECT_TRUE(approvals_->Pending("sam", At(2, 23))->empty());
  auto pending = approvals_->Pending("sam", At(3, 9));
  ASSERT_EQ(1u, pending->size());
  EXPECT_EQ("mia", (*pending)[0].on_behalf_of);
  DecisionOptions in = By("sam");
  in.time = At(3, 9);
  auto r = approvals_->Approve("SO-6", in);

  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ("mia", r->on_behalf_of);
  EXPECT_EQ("approved", StateOf(*engine_, "SO-6"));
  auto d = approvals_->Decisions("SO-6");
  ASSERT_EQ(1u, d->size());
  EXPECT_EQ("sam", (*d)[0].actor);
  EXPECT_EQ("mia", (*d)[0].on_behalf_of);
}

TEST_P(ApprovalsTest, DelegationWindowsAreChecked) {
  ASSERT_TRUE(approvals_->Delegate("mia", "sam", At(3, 0), At(5, 0)).ok());

  auto overlap = approvals_->Delegate("mia", "tom", At(4, 0), At(6, 0));
  auto inverted = approvals_->Delegate("mia", "tom", At(7, 0), At(6, 0));
  auto self = approvals_->Delegate("mia", "mia", At(7, 0), At(8, 0));
  auto adjacent = approvals_->Delegate("mia", "tom", At(5, 0), At(6, 0));
  auto other = approvals_->Delegate("dan", "sam", At(3, 0), At(5, 0));

  ASSERT_FALSE(overlap.ok());
  EXPECT_EQ(Code::kAlreadyExists, overlap.status().code());
  EXPECT_EQ("delegation of \"mia\" to \"tom\": window "
            "2026-03-04T00:00:00.000000Z to 2026-03-06T00:00:00.000000Z "
            "overlaps delegation 1 to \"sam\" (2026-03-03T00:00:00.000000Z "
            "to 2026-03-05T00:00:00.000000Z)",
            overlap.status().message());
  ASSERT_FALSE(inverted.ok());
  EXPECT_EQ(Code::kInvalidArgument, inverted.status().code());
  ASSERT_FALSE(self.ok());
  EXPECT_EQ(Code::kInvalidArgument, self.status().code());
  EXPECT_TRUE(adjacent.ok()) << adjacent.status().ToString();  // half-open
  EXPECT_TRUE(other.ok());
  EXPECT_EQ(2u, approvals_->Delegations("mia")->size());
}

TEST_P(ApprovalsTest, RefusalsNameTransactionStepAndActor) {
  CreateOrder(*engine_, "SO-7", "5000.00");

  auto none = approvals_->Approve("SO-7", By("mia"));
  auto unknown = approvals_->Approve("SO-404", By("mia"));
  auto empty_actor = approvals_->Approve("SO-7", By(""));

  ASSERT_FALSE(none.ok());
  EXPECT_EQ(Code::kNotFound, none.status().code());
  EXPECT_EQ("transaction \"SO-7\" in state \"draft\": no open approval "
            "request",
            none.status().message());
  EXPECT_EQ(Code::kNotFound, unknown.status().code());
  EXPECT_EQ(Code::kInvalidArgument, empty_actor.status().code());
}

TEST_P(ApprovalsTest, NoMatchingBandRefusesTheSubmit) {
  ApprovalMatrix m = ThreeBands();
  m.bands.pop_back();  // nothing above 10,000
  ASSERT_TRUE(approvals_->SetMatrix(m).ok());
  CreateOrder(*engine_, "SO-8", "20000.00");

  try {
    (void)engine_->Fire("SO-8", "submit", {});
    FAIL() << "the submit was accepted";
  } catch (const ApprovalError& e) {
    EXPECT_EQ(Code::kNotAllowed, e.status().code());
    EXPECT_EQ("transaction \"SO-8\": entering \"pending_approval\": approval "
              "matrix \"sales_order\": no band matches (amount=20000.00)",
              e.status().message());
  }

  EXPECT_EQ("draft", StateOf(*engine_, "SO-8"));
  EXPECT_TRUE(approvals_->Requests("SO-8")->empty());
}

TEST_P(ApprovalsTest, FailedFireLeavesDecisionAndTransactionAsTheyWere) {
  Submit("SO-9", "5000.00");
  int calls = 0;
  engine_->OnEnter("sales_order", "approved", [&](const CallContext&) {
    ++calls;
    throw std::runtime_error("erp down");
  });

  bool thrown = false;
  try {
    (void)approvals_->Approve("SO-9", By("mia"));
  } catch (const std::runtime_error& e) {
    thrown = std::string(e.what()) == "erp down";
  }

  EXPECT_TRUE(thrown);
  EXPECT_EQ(1, calls);
  EXPECT_EQ("pending_approval", StateOf(*engine_, "SO-9"));
  EXPECT_TRUE(approvals_->Decisions("SO-9")->empty());
  auto open = approvals_->OpenRequests("sales_order");
  ASSERT_EQ(1u, open->size());
  EXPECT_EQ("open", (*open)[0].status);
  EXPECT_EQ(0, (*open)[0].current_step);
  EXPECT_EQ(2, engine_->Get("SO-9")->version);  // create, submit
  // The same approver may decide again once the hook is gone.
  engine_->ClearCallbacks();
}

TEST_P(ApprovalsTest, GuardRefusalKeepsNothingOfTheDecision) {
  Submit("SO-13", "5000.00", "blocked");

  auto r = approvals_->Approve("SO-13", By("mia"));

  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Code::kGuardRefused, r.status().code());
  EXPECT_EQ(0u, r.status().message().find(
                    "transaction \"SO-13\": step 1 (\"manager\"): approve "
                    "by \"mia\": guard"))
      << r.status().message();
  EXPECT_EQ("pending_approval", StateOf(*engine_, "SO-13"));
  EXPECT_TRUE(approvals_->Decisions("SO-13")->empty());
  auto open = approvals_->OpenRequests("");
  ASSERT_EQ(1u, open->size());
  EXPECT_EQ("open", (*open)[0].status);
  // The refusal is no vote: the same approver may try again.
  auto again = approvals_->Approve("SO-13", By("mia"));
  EXPECT_EQ(Code::kGuardRefused, again.status().code());
}

TEST_P(ApprovalsTest, RuleErrorKeepsNothingOfTheDecision) {
  Rule rule;
  rule.name = "broken";
  rule.kind = "sales_order";
  rule.trigger = RuleTrigger::kEntered;
  rule.on = "approved";
  rule.actions = "set amount = amount / 0";
  ASSERT_TRUE(engine_->rules().Add(rule).ok());
  Submit("SO-14", "5000.00");

  auto r = approvals_->Approve("SO-14", By("mia"));

  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string::npos, r.status().message().find("division by zero"))
      << r.status().message();
  EXPECT_EQ("pending_approval", StateOf(*engine_, "SO-14"));
  EXPECT_TRUE(approvals_->Decisions("SO-14")->empty());
  EXPECT_EQ(0, (*approvals_->OpenRequests(""))[0].current_step);
}

TEST_P(ApprovalsTest, DecisionInsideAnExplicitTransaction) {
  Submit("SO-15", "5000.00");
  ASSERT_TRUE(engine_->Begin().ok());

  auto r = approvals_->Approve("SO-15", By("mia"));
  ASSERT_TRUE(engine_->Rollback().ok());

  if (GetParam()) {
    // SQLite: a savepoint inside the caller's transaction, rolled back
    // with it.
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  } else {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(Code::kNotAllowed, r.status().code());
  }
  EXPECT_EQ("pending_approval", StateOf(*engine_, "SO-15"));
  EXPECT_TRUE(approvals_->Decisions("SO-15")->empty());
  EXPECT_EQ(1u, approvals_->OpenRequests("")->size());
}

TEST_P(ApprovalsTest, MatricesAreNotChangedInsideAnExplicitTransaction) {
  // A rollback would undo the stored rows but not the loaded matrix.
  ASSERT_TRUE(engine_->Begin().ok());
  Status set = approvals_->SetMatrix(ThreeBands());
  Status removed = approvals_->RemoveMatrix("sales_order");
  ASSERT_TRUE(engine_->Rollback().ok());

  EXPECT_EQ(Code::kNotAllowed, set.code());
  EXPECT_NE(std::string::npos, set.message().find("explicit transaction"))
      << set.message();
  EXPECT_EQ(Code::kNotAllowed, removed.code());
  // The matrix set before still decides: a large order needs approval.
  Submit("SO-15b", "50000.00");
  EXPECT_EQ("pending_approval", StateOf(*engine_, "SO-15b"));
}

TEST_P(ApprovalsTest, RetriedSubmitOpensOneRequest) {
  CreateOrder(*engine_, "SO-16", "5000.00");
  bool fail = true;
  engine_->OnEnter("sales_order", "pending_approval",
                   [&](const CallContext&) {
                     if (fail) throw std::runtime_error("once");
                   });
  EXPECT_THROW((void)engine_->Fire("SO-16", "submit", {}),
               std::runtime_error);
  fail = false;

  ASSERT_TRUE(engine_->Fire("SO-16", "submit", {}).ok());

  auto reqs = approvals_->Requests("SO-16");
  ASSERT_EQ(1u, reqs->size());
  EXPECT_EQ("open", (*reqs)[0].status);
}

TEST_P(ApprovalsTest, RolledBackSubmitThenAnotherWriteLeavesNoRequest) {
  CreateOrder(*engine_, "SO-17", "5000.00");
  engine_->OnEnter("sales_order", "pending_approval",
                   [](const CallContext&) { throw std::runtime_error("no"); });
  EXPECT_THROW((void)engine_->Fire("SO-17", "submit", {}),
               std::runtime_error);

  // The version moves on, as a committed submit would have moved it.
  auto t = engine_->SetAttributes(
      "SO-17", {{"tier", Value::Text("gold")}}, 1);
  ASSERT_TRUE(t.ok()) << t.status().ToString();

  EXPECT_EQ(2, t->version);
  EXPECT_TRUE(approvals_->Requests("SO-17")->empty());
}

TEST_P(ApprovalsTest, FailedAutomaticApprovalUndoesTheSubmit) {
  CreateOrder(*engine_, "SO-18", "10.00");
  engine_->OnEnter("sales_order", "approved",
                   [](const CallContext&) { throw std::runtime_error("no"); });

  EXPECT_THROW((void)engine_->Fire("SO-18", "submit", {}),
               std::runtime_error);

  EXPECT_EQ("draft", StateOf(*engine_, "SO-18"));
  EXPECT_TRUE(approvals_->Requests("SO-18")->empty());
}

TEST_P(ApprovalsTest, RolledBackSubmitLeavesNoRequest) {
  CreateOrder(*engine_, "SO-10", "5000.00");
  engine_->OnEnter("sales_order", "pending_approval",
                   [](const CallContext&) { throw std::runtime_error("no"); });

  EXPECT_THROW((void)engine_->Fire("SO-10", "submit", {}),
               std::runtime_error);

  EXPECT_EQ("draft", StateOf(*engine_, "SO-10"));
  EXPECT_TRUE(approvals_->Requests("SO-10")->empty());
  EXPECT_TRUE(approvals_->OpenRequests("")->empty());
}

TEST_P(ApprovalsTest, LeavingByAnotherEventCancelsTheRequest) {
  Submit("SO-11", "5000.00");

  ASSERT_TRUE(engine_->Fire("SO-11", "cancel", {}).ok());

  auto reqs = approvals_->Requests("SO-11");
  ASSERT_EQ(1u, reqs->size());
  EXPECT_EQ("cancelled", (*reqs)[0].status);
  EXPECT_EQ("cancel", (*reqs)[0].outcome_event);
  EXPECT_FALSE((*reqs)[0].automatic);
}

TEST_P(ApprovalsTest, TeamStepUsesAvailableMembers) {
  auto router = Router::Attach(engine_.get());
  ASSERT_TRUE(router.ok());
  Team t;
  t.name = "finance";
  t.members = {Member{"fay", {}, 0, true, {}}, Member{"gus", {}, 0, true, {}},
               Member{"hal", {}, 0, false, {}}};
  ASSERT_TRUE((*router)->AddTeam(t).ok());
  approvals_.reset();
  approvals_ = Approvals::Attach(engine_.get(), router->get()).value();
  ApprovalMatrix m = ThreeBands();
  m.bands[1].steps[0].approvers.clear();
  m.bands[1].steps[0].team = "finance";
  ASSERT_TRUE(approvals_->SetMatrix(m).ok());
  Submit("SO-12", "5000.00");

  auto absent = approvals_->Approve("SO-12", By("hal"));
  auto fay = approvals_->Approve("SO-12", By("fay"));
  auto gus = approvals_->Approve("SO-12", By("gus"));

  ASSERT_FALSE(absent.ok());
  EXPECT_EQ("transaction \"SO-12\": step 1 (\"manager\"): actor \"hal\" is "
            "not an approver (approvers: fay, gus)",
            absent.status().message());
  ASSERT_TRUE(fay.ok() && gus.ok());
  EXPECT_EQ("open", fay->status);
  EXPECT_EQ("approved", gus->status);
  approvals_.reset();
}

// A restart of a SQLite file sees the open request and can decide it
// without the matrix being set again.
TEST(ApprovalsSqlite, OpenRequestSurvivesARestart) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("crmflow_approvals_restart_" +
                       std::to_string(getpid()) + ".db"))
                         .string();
  std::filesystem::remove(path);
  {
    auto engine = OpenEngine(path);
    auto a = Approvals::Attach(engine.get()).value();
    ASSERT_TRUE(a->SetMatrix(ThreeBands()).ok());
    CreateOrder(*engine, "SO-1", "25000.00");
    ASSERT_TRUE(engine->Fire("SO-1", "submit", {}).ok());
    ASSERT_TRUE(a->Approve("SO-1", By("mia")).ok());
  }

  auto engine = OpenEngine(path);
  auto a = Approvals::Attach(engine.get()).value();
  auto open = a->OpenRequests("");
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(1u, open->size());
  EXPECT_EQ(1, (*open)[0].current_step);
  ASSERT_EQ(2u, (*open)[0].steps.size());
  EXPECT_EQ((std::vector<std::string>{"dan", "dora"}),
            (*open)[0].steps[1].approvers);
  auto r = a->Approve("SO-1", By("dan", 12));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ("approved", StateOf(*engine, "SO-1"));
  a.reset();
  engine.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path + suffix);
  }
}

// The matrix is stored: a restarted engine that only attaches approves a
// small order automatically and records it, opens the manager's request
// for a medium one, and a removed matrix is gone in the next process.
TEST(ApprovalsSqlite, StoredMatrixAndAutomaticApprovalSurviveARestart) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("crmflow_approvals_stored_" +
                       std::to_string(getpid()) + ".db"))
                         .string();
  auto remove = [&] {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path + suffix);
    }
  };
  remove();
  {
    auto engine = OpenEngine(path);
    auto a = Approvals::Attach(engine.get()).value();
    ASSERT_TRUE(a->SetMatrix(ThreeBands()).ok());
    EXPECT_TRUE(Approvals::HasStoredMatrices(engine.get()));
  }
  {
    auto engine = OpenEngine(path);
    auto a = Approvals::Attach(engine.get()).value();
    EXPECT_TRUE(a->Problems().empty());
    auto m = a->Matrix("sales_order");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_EQ(3u, m->matrix().bands.size());
    EXPECT_EQ("amount <= 10000", m->matrix().bands[1].condition);
    EXPECT_EQ(ApprovalMode::kFirst, m->matrix().bands[2].steps[1].mode);
    EXPECT_EQ((std::vector<std::string>{"dan", "dora"}),
              m->matrix().bands[2].steps[1].approvers);

    CreateOrder(*engine, "SO-1", "250.00");
    ASSERT_TRUE(engine->Fire("SO-1", "submit", {}).ok());
    CreateOrder(*engine, "SO-2", "5000.00");
    ASSERT_TRUE(engine->Fire("SO-2", "submit", {}).ok());
    EXPECT_EQ("approved", StateOf(*engine, "SO-1"));
    auto reqs = a->Requests("");
    ASSERT_TRUE(reqs.ok());
    ASSERT_EQ(2u, reqs->size());
    EXPECT_EQ("approved", (*reqs)[0].status);
    EXPECT_TRUE((*reqs)[0].automatic);
    EXPECT_EQ("open", (*reqs)[1].status);
    EXPECT_EQ("medium", (*reqs)[1].band_name);

    ASSERT_TRUE(a->RemoveMatrix("sales_order").ok());
    EXPECT_EQ(Code::kNotFound, a->RemoveMatrix("sales_order").code());
  }
  {
    auto engine = OpenEngine(path);
    EXPECT_FALSE(Approvals::HasStoredMatrices(engine.get()));
    for (const Rule& r : engine->rules().rules()) {
      EXPECT_NE(0u, r.name.rfind("approvals:", 0)) << r.name;
    }
  }
  remove();
}

// An approver of a unanimous step who is also the substitute of the
// other approver casts one vote there, not one for each: the second is
// refused naming transaction, step, actor and the approver it would stand
// for, and the step waits for the other approver.
TEST_P(ApprovalsTest, OneVotePerPersonPerStep) {
  ApprovalMatrix m = ThreeBands();
  m.bands = {{"all", "true", {Step("board", {"ann", "bob"})}}};
  ASSERT_TRUE(approvals_->SetMatrix(m).ok());
  ASSERT_TRUE(approvals_->Delegate("bob", "ann", At(1, 0), At(9, 0)).ok());
  Submit("SO-30", "5.00");

  auto own = approvals_->Approve("SO-30", By("ann", 11));
  auto again = approvals_->Approve("SO-30", By("ann", 12));
  auto pending = approvals_->Pending("ann", At(2, 12));
  auto bob = approvals_->Approve("SO-30", By("bob", 13));

  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_EQ("open", own->status);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(Code::kNotAllowed, again.status().code());
  EXPECT_EQ("transaction \"SO-30\": step 1 (\"board\"): actor \"ann\" "
            "already voted in their own name (decision 1), so cannot also "
            "vote on behalf of \"bob\" (one vote per person per step)",
            again.status().message());
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
  ASSERT_TRUE(bob.ok()) << bob.status().ToString();
  EXPECT_EQ("approved", StateOf(*engine_, "SO-30"));
  EXPECT_EQ(2u, approvals_->Decisions("SO-30")->size());
}

TEST_P(ApprovalsTest, DecisionTimesAreChecked) {
  Submit("SO-31", "5000.00");  // entered pending_approval at day 2, 10:00

  auto early = approvals_->Approve("SO-31", By("mia", 9));
  DecisionOptions late = By("mia");
  late.time = Timestamp{253402300800000000};  // 10000-01-01T00:00:00Z
  auto beyond = approvals_->Reject("SO-31", late);
  auto window = approvals_->Delegate("mia", "sam", At(3, 0),
                                     Timestamp{253402300800000000});
  auto at_open = approvals_->Approve("SO-31", By("mia", 10));

  ASSERT_FALSE(early.ok());
  EXPECT_EQ(Code::kInvalidArgument, early.status().code());
  EXPECT_EQ("transaction \"SO-31\": approve: decision time "
            "2026-03-02T09:00:00.000000Z is before approval request 1 was "
            "opened at 2026-03-02T10:00:00.000000Z (when the transaction "
            "entered the requesting state)",
            early.status().message());
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ("transaction \"SO-31\": reject: decision time "
            "253402300800000000 microseconds since 1970 is outside the "
            "supported range 0001-01-01T00:00:00.000000Z to "
            "9999-12-31T23:59:59.999999Z",
            beyond.status().message());
  ASSERT_FALSE(window.ok());
  EXPECT_EQ(Code::kInvalidArgument, window.status().code());
  ASSERT_TRUE(at_open.ok()) << at_open.status().ToString();
  EXPECT_EQ("approved", StateOf(*engine_, "SO-31"));
  auto d = approvals_->Decisions("SO-31");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(1u, d->size());
}

TEST(ApprovalMatrix, BlankApproversAndConditionsAreRefused) {
  ExprSchema schema;
  schema.attributes = {{"amount", ValueType::kDecimal}};
  ApprovalMatrix blank_approver = ThreeBands();
  blank_approver.bands[1].steps[0].approvers = {"mia", " \t "};
  ApprovalMatrix no_condition = ThreeBands();
  no_condition.bands[2].condition = "";
  ApprovalMatrix blank_condition = ThreeBands();
  blank_condition.bands[0].condition = "  ";

  auto a = CompiledMatrix::Compile(blank_approver, schema);
  auto b = CompiledMatrix::Compile(no_condition, schema);
  auto c = CompiledMatrix::Compile(blank_condition, schema);

  ASSERT_FALSE(a.ok());
  EXPECT_EQ(Code::kInvalidArgument, a.status().code());
  EXPECT_EQ("approval matrix \"sales_order\": band 2 (\"medium\"): step 1 "
            "(\"manager\"): bad approver \" \t \" (expected UTF-8 text, not "
            "blank, without line breaks)",
            a.status().message());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ("approval matrix \"sales_order\": band 3 (\"large\"): no "
            "condition (expected an expression, e.g. \"amount <= 1000\", or "
            "\"true\" for a band that matches everything)",
            b.status().message());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string::npos, c.status().message().find("band 1 (\"small\")"))
      << c.status().message();
}

// Runs `sql` on the file at `path` with a connection of its own.
void ExecOn(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(SQLITE_OK, sqlite3_open(path.c_str(), &db));
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  std::string message = err != nullptr ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(SQLITE_OK, rc) << message;
}

// A file made by the previous release: delegations without AUTOINCREMENT
// (ids 1 and 3 left after a removal) and a band stored with an empty
// condition, which then meant "true".  Attaching keeps rows and ids,
// gives ids that were never used, and the empty condition still matches.
TEST(ApprovalsSqlite, FileOfThePreviousReleaseIsMigrated) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("crmflow_approvals_old_" + std::to_string(getpid()) +
                       ".db"))
                         .string();
  auto remove = [&] {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path + suffix);
    }
  };
  remove();
  { auto engine = OpenEngine(path); }
  ExecOn(path,
         "CREATE TABLE approval_delegations(id INTEGER PRIMARY KEY, actor "
         "TEXT, substitute TEXT, starts_at TEXT, ends_at TEXT, created_at "
         "TEXT);"
         "CREATE INDEX approval_delegations_by_substitute ON "
         "approval_delegations(substitute);"
         "INSERT INTO approval_delegations VALUES "
         "(1, 'mia', 'sam', '2026-03-03T00:00:00.000000Z', "
         "'2026-03-05T00:00:00.000000Z', '2026-03-01T00:00:00.000000Z'), "
         "(3, 'dan', 'sam', '2026-03-03T00:00:00.000000Z', "
         "'2026-03-05T00:00:00.000000Z', '2026-03-01T00:00:00.000000Z');"
         "CREATE TABLE approval_matrices(kind TEXT PRIMARY KEY, "
         "request_state TEXT, approve_event TEXT, reject_event TEXT, "
         "updated_at TEXT);"
         "CREATE TABLE approval_matrix_bands(kind TEXT, position INTEGER, "
         "name TEXT, condition TEXT, PRIMARY KEY (kind, position));"
         "CREATE TABLE approval_matrix_steps(kind TEXT, band INTEGER, "
         "position INTEGER, name TEXT, mode TEXT, approvers TEXT NULL, "
         "team TEXT NULL, PRIMARY KEY (kind, band, position));"
         "INSERT INTO approval_matrices VALUES ('sales_order', "
         "'pending_approval', 'approve', 'reject', "
         "'2026-03-01T00:00:00.000000Z');"
         "INSERT INTO approval_matrix_bands VALUES ('sales_order', 0, "
         "'all', '');"
         "INSERT INTO approval_matrix_steps VALUES ('sales_order', 0, 0, "
         "'manager', 'unanimous', 'mia', NULL);");
  {
    auto engine = OpenEngine(path);
    auto a = Approvals::Attach(engine.get());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE((*a)->Problems().empty());
    auto before = (*a)->Delegations("");
    ASSERT_TRUE(before.ok()) << before.status().ToString();
    ASSERT_EQ(2u, before->size());
    EXPECT_EQ(1, (*before)[0].id);
    EXPECT_EQ(3, (*before)[1].id);
    EXPECT_EQ("dan", (*before)[1].actor);
    EXPECT_EQ(At(3, 0), (*before)[1].starts_at);

    auto d = (*a)->Delegate("dora", "sam", At(3, 0), At(5, 0));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_TRUE((*a)->RemoveDelegation(*d).ok());
    auto e = (*a)->Delegate("dora", "tom", At(3, 0), At(5, 0));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(4, *d);
    EXPECT_EQ(5, *e);

    CreateOrder(*engine, "SO-1", "5.00");
    ASSERT_TRUE(engine->Fire("SO-1", "submit", {}).ok());
    auto open = (*a)->OpenRequests("");
    ASSERT_EQ(1u, open->size());
    EXPECT_EQ("all", (*open)[0].band_name);
  }
  {
    // A second open finds the table rebuilt and changes nothing.
    auto engine = OpenEngine(path);
    auto a = Approvals::Attach(engine.get());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(3u, (*a)->Delegations("")->size());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(SQLITE_OK, sqlite3_open(path.c_str(), &db));
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(SQLITE_OK,
            sqlite3_prepare_v2(db,
                               "SELECT sql FROM sqlite_master WHERE name = "
                               "'approval_delegations'",
                               -1, &s, nullptr));
  ASSERT_EQ(SQLITE_ROW, sqlite3_step(s));
  std::string sql = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  sqlite3_close(db);
  EXPECT_NE(std::string::npos, sql.find("AUTOINCREMENT")) << sql;
  remove();
}

}  // namespace
}  // namespace crmflow
