// rules_test.cc: expression guards, the rule agenda (order, chains,
// unchanged writes, loops and rollback), storage and case C18's decimals.

#include "crmflow/rules.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "crmflow/engine.h"

namespace crmflow {
namespace {

Timestamp At(int day, int hour) {
  return Timestamp::FromCivilUtc(2026, 3, day, hour, 0, 0, 0).value();
}

Decimal Dec(const char* text) { return Decimal::Parse(text).value(); }

Workflow SalesOrder() {
  Workflow wf("sales_order", 1);
  EXPECT_TRUE(wf.AddState("draft", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("submitted").ok());
  EXPECT_TRUE(wf.AddState("approved", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddTransition({"submit", "draft", "submitted"}).ok());
  EXPECT_TRUE(wf.AddTransition({"approve", "submitted", "approved",
                                {"expr: total <= 1000"}})
                  .ok());
  for (const char* a : {"line1", "line2", "total", "tax"}) {
    EXPECT_TRUE(wf.AddAttribute({a, ValueType::kDecimal, false}).ok());
  }
  EXPECT_TRUE(wf.AddAttribute({"team", ValueType::kText, false}).ok());
  EXPECT_TRUE(wf.AddAttribute({"count", ValueType::kInteger, false}).ok());
  return wf;
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

void CreateOrder(Engine& engine, const std::string& id, const char* l1,
                 const char* l2) {
  CreateRequest req;
  req.kind = "sales_order";
  req.id = id;
  req.attributes = {{"line1", Value::Dec(Dec(l1))},
                    {"line2", Value::Dec(Dec(l2))}};
  auto r = engine.Create(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

Rule MakeRule(std::string name, RuleTrigger trigger, std::string on,
              std::string condition, std::string actions, int priority = 0) {
  Rule r;
  r.name = std::move(name);
  r.kind = "sales_order";
  r.trigger = trigger;
  r.on = std::move(on);
  r.condition = std::move(condition);
  r.actions = std::move(actions);
  r.priority = priority;
  return r;
}

std::string Text(Engine& engine, const std::string& id, const char* attr) {
  auto txn = engine.Get(id).value();
  const Value* v = FindAttribute(txn.attributes, attr);
  if (v == nullptr || v->is_null()) return "null";
  return v->type() == ValueType::kDecimal ? v->decimal().ToString()
                                          : v->text();
}

class RulesFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("rules_test_" + std::to_string(getpid()) + ".db"))
                .string();
    std::filesystem::remove(path_);
  }
  void TearDown() override {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::filesystem::remove(path_ + suffix);
    }
  }
  std::string path_;
};

TEST(ExpressionGuard, RefusesWithTheDecisiveValues) {
  auto engine = OpenEngine("");
  CreateOrder(*engine, "SO-1", "1000.00", "200.00");
  ASSERT_TRUE(engine->SetAttributes("SO-1",
                                    {{"total", Value::Dec(Dec("1200.00"))}},
                                    1)
                  .ok());
  ASSERT_TRUE(engine->Fire("SO-1", "submit", {}).ok());

  auto r = engine->Fire("SO-1", "approve", {});

  EXPECT_EQ(Code::kGuardRefused, r.status().code());
  EXPECT_EQ("guard \"expr: total <= 1000\" refused event \"approve\" on "
            "transaction \"SO-1\": total <= 1000 is false (total=1200.00)",
            r.status().message());
  EXPECT_EQ("submitted", engine->Get("SO-1").value().state);
}

TEST(ExpressionGuard, BadExpressionRefusesTheWorkflow) {
  auto engine = Engine::Open({}).value();
  Workflow wf("w", 1);
  ASSERT_TRUE(wf.AddState("a", StateRole::kInitial).ok());
  ASSERT_TRUE(wf.AddState("b", StateRole::kTerminal).ok());
  ASSERT_TRUE(wf.AddTransition({"go", "a", "b", {"expr: amout > 1"}}).ok());

  Status st = engine->Register(std::move(wf), "{}");

  EXPECT_EQ(Code::kValidationError, st.code());
  EXPECT_NE(std::string::npos, st.message().find("unknown name \"amout\""))
      << st.message();
}

TEST(Rules, C18TotalFromDecimalsAutoApproves) {
  auto engine = OpenEngine("");
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("total", RuleTrigger::kCreated, "", "",
                                "set total = line1 + line2", 10))
                  .ok());
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("auto-approve", RuleTrigger::kEntered,
                                "submitted", "total <= 0.30",
                                "fire approve"))
                  .ok());
  CreateOrder(*engine, "SO-9", "0.10", "0.20");

  ASSERT_TRUE(engine->Fire("SO-9", "submit", {}).ok());

  EXPECT_EQ("0.30", Text(*engine, "SO-9", "total"));
  EXPECT_EQ("approved", engine->Get("SO-9").value().state);
}

TEST(Rules, RoundsHalfUp) {
  auto engine = OpenEngine("");
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("tax", RuleTrigger::kCreated, "", "",
                                "set tax = round(line1, 2)"))
                  .ok());

  CreateOrder(*engine, "SO-1", "2.675", "0");

  EXPECT_EQ("2.68", Text(*engine, "SO-1", "tax"));
}

TEST(Rules, PriorityOrderAndShadowing) {
  auto engine = OpenEngine("");
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("low", RuleTrigger::kCreated, "", "",
                                "assign team = 'low'", 1))
                  .ok());
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("high", RuleTrigger::kCreated, "", "",
                                "assign team = 'high'", 5))
                  .ok());

  CreateOrder(*engine, "SO-1", "1", "2");

  EXPECT_EQ("high", Text(*engine, "SO-1", "team"));
  std::vector<std::string> outcomes;
  for (const auto& row : engine->rules().Trace("SO-1")) {
    outcomes.push_back(row.rule + " " + row.outcome);
  }
  EXPECT_EQ((std::vector<std::string>{"high fired", "low shadowed"}),
            outcomes);
}

TEST(Rules, LoopFailsNamingItAndRollsBack) {
  auto engine = OpenEngine("");
  CreateOrder(*engine, "SO-1", "1", "2");
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("ping", RuleTrigger::kChanged, "line1", "",
                                "set line2 = line2 + 1"))
                  .ok());
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("pong", RuleTrigger::kChanged, "line2", "",
                                "set line1 = line1 + 1"))
                  .ok());

  auto r = engine->SetAttributes("SO-1", {{"line1", Value::Dec(Dec("5"))}},
                                 1);

  EXPECT_EQ(Code::kInvalidArgument, r.status().code());
  EXPECT_NE(std::string::npos,
            r.status().message().find("rule loop on transaction \"SO-1\": "
                                      "ping -> pong -> ping"))
      << r.status().message();
  EXPECT_EQ("1", Text(*engine, "SO-1", "line1"));
  EXPECT_EQ(1, engine->Get("SO-1").value().version);
}

TEST(Rules, UnchangedValueDoesNotRetrigger) {
  auto engine = OpenEngine("");
  CreateOrder(*engine, "SO-1", "1", "2");
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("sum", RuleTrigger::kChanged, "", "",
                                "set total = line1 + line2"))
                  .ok());

  auto r = engine->SetAttributes("SO-1", {{"line1", Value::Dec(Dec("3"))}},
                                 1);

  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ("5", Text(*engine, "SO-1", "total"));
  // line1's write, then total's, whose own "changed" agenda writes the
  // same total again: no third version.
  EXPECT_EQ(3, engine->Get("SO-1").value().version);
}

TEST(Rules, DisabledRuleDoesNotRunAndFastPathReturns) {
  auto engine = OpenEngine("");
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("team", RuleTrigger::kEvent, "submit", "",
                                "assign team = 'sales'"))
                  .ok());
  ASSERT_TRUE(engine->rules().SetEnabled("team", false).ok());
  CreateOrder(*engine, "SO-1", "1", "2");

  ASSERT_TRUE(engine->Fire("SO-1", "submit", {}).ok());

  EXPECT_EQ("null", Text(*engine, "SO-1", "team"));
}

TEST(Rules, RejectsUnknownNames) {
  auto engine = OpenEngine("");

  Status st = engine->rules().Add(
      MakeRule("x", RuleTrigger::kEvent, "sumbit", "", "fire approve"));

  EXPECT_EQ("rule \"x\": unknown event \"sumbit\" of kind \"sales_order\"",
            st.message());
  EXPECT_FALSE(engine->rules()
                   .Add(MakeRule("y", RuleTrigger::kCreated, "", "",
                                 "set nope = 1"))
                   .ok());
  EXPECT_FALSE(engine->rules()
                   .Add(MakeRule("z", RuleTrigger::kCreated, "", "totl > 1",
                                 ""))
                   .ok());
}

TEST_F(RulesFileTest, RulesAndDecimalsSurviveAReopen) {
  {
    auto engine = OpenEngine(path_);
    ASSERT_TRUE(engine->rules()
                    .Add(MakeRule("total", RuleTrigger::kCreated, "", "",
                                  "set total = line1 + line2"))
                    .ok());
    CreateOrder(*engine, "SO-10", "12345678901234567.89", "0");
  }
  auto engine = OpenEngine(path_);
  CreateOrder(*engine, "SO-11", "0.01", "0.02");

  ASSERT_EQ(1u, engine->rules().rules().size());
  EXPECT_EQ("12345678901234567.89", Text(*engine, "SO-10", "total"));
  EXPECT_EQ("0.03", Text(*engine, "SO-11", "total"));
}

TEST_F(RulesFileTest, FailingActionRollsBackTheTransition) {
  auto engine = OpenEngine(path_);
  // "approve" is refused by its guard (total > 1000): the rule's fire
  // fails, so the submit that triggered it is undone.
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("auto", RuleTrigger::kEvent, "submit", "",
                                "assign team = 'x'\nfire approve"))
                  .ok());
  CreateOrder(*engine, "SO-1", "1", "2");
  ASSERT_TRUE(engine->SetAttributes("SO-1",
                                    {{"total", Value::Dec(Dec("5000"))}}, 1)
                  .ok());

  auto r = engine->Fire("SO-1", "submit", {});

  EXPECT_EQ(Code::kGuardRefused, r.status().code());
  auto txn = engine->Get("SO-1").value();
  EXPECT_EQ("draft", txn.state);
  EXPECT_EQ(2, txn.version);
  EXPECT_EQ("null", Text(*engine, "SO-1", "team"));
}

TEST_F(RulesFileTest, CreateAndNotifyActions) {
  auto engine = OpenEngine(path_);
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("follow-up", RuleTrigger::kEvent, "submit",
                                "", "create sales_order with line1 = line1"
                                    "\nnotify email with recipient = "
                                    "'ops@example.test'; subject = txn.id"))
                  .ok());
  CreateOrder(*engine, "SO-1", "7", "2");

  ASSERT_TRUE(engine->Fire("SO-1", "submit", {}).ok());

  auto child = engine->Get("SO-1/follow-up");
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_EQ("SO-1", child->parent_id);
  EXPECT_EQ("7", Text(*engine, "SO-1/follow-up", "line1"));
}

}  // namespace
}  // namespace crmflow
