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

// Fire's result is the transaction when the call ends: the automatic
// approve that the rule fires moves it from "submitted" (where submit led)
// to "approved", at version 4 (create, the total set by the created rule,
// submit, approve).  Create returns it with the rule's total already set.
void ExpectFollowUpInResult(Engine& engine) {
  ASSERT_TRUE(engine.rules()
                  .Add(MakeRule("total", RuleTrigger::kCreated, "", "",
                                "set total = line1 + line2", 10))
                  .ok());
  ASSERT_TRUE(engine.rules()
                  .Add(MakeRule("auto-approve", RuleTrigger::kEntered,
                                "submitted", "total <= 0.30",
                                "fire approve"))
                  .ok());
  CreateRequest req;
  req.kind = "sales_order";
  req.id = "SO-9";
  req.attributes = {{"line1", Value::Dec(Dec("0.10"))},
                    {"line2", Value::Dec(Dec("0.20"))}};

  auto created = engine.Create(req);
  auto fired = engine.Fire("SO-9", "submit", {});

  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(2, created->version);
  const Value* total = FindAttribute(created->attributes, "total");
  ASSERT_NE(nullptr, total);
  EXPECT_EQ("0.30", total->decimal().ToString());
  ASSERT_TRUE(fired.ok()) << fired.status().ToString();
  EXPECT_EQ("approved", fired->state);
  EXPECT_EQ(4, fired->version);
  Transaction stored = engine.Get("SO-9").value();
  EXPECT_EQ(stored.state, fired->state);
  EXPECT_EQ(stored.version, fired->version);
  // seq is submit's own row: the approve row follows it.
  HistoryQuery q;
  q.transaction_id = "SO-9";
  auto rows = engine.History(q).value();
  ASSERT_EQ(3u, rows.size());
  EXPECT_EQ("submit", rows[1].event);
  EXPECT_EQ(rows[1].seq, fired->seq);
  EXPECT_EQ("approve", rows[2].event);
}

TEST(Rules, FireReturnsTheStateAfterFollowUpsInMemory) {
  auto engine = OpenEngine("");
  ExpectFollowUpInResult(*engine);
}

TEST_F(RulesFileTest, FireReturnsTheStateAfterFollowUpsInSqlite) {
  auto engine = OpenEngine(path_);
  ExpectFollowUpInResult(*engine);
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

  EXPECT_EQ(
      "rule \"x\": unknown event \"sumbit\" of kind \"sales_order\" "
      "(known: submit, approve)",
      st.message());
  EXPECT_EQ("rule \"y\": action 1: unknown attribute \"nope\" of kind "
            "\"sales_order\"",
            engine->rules()
                .Add(MakeRule("y", RuleTrigger::kCreated, "", "",
                              "set nope = 1"))
                .message());
  EXPECT_EQ("rule \"z\": condition on kind \"sales_order\": column 1: "
            "unknown name \"totl\" (known: line1, line2, total, tax, team, "
            "count)",
            engine->rules()
                .Add(MakeRule("z", RuleTrigger::kCreated, "", "totl > 1", ""))
                .message());
  EXPECT_EQ("rule \"s\": unknown state \"sent\" of kind \"sales_order\" "
            "(known: draft, submitted, approved)",
            engine->rules()
                .Add(MakeRule("s", RuleTrigger::kEntered, "sent", "", ""))
                .message());
  EXPECT_EQ("rule \"c\": unknown attribute \"totl\" of kind "
            "\"sales_order\" (known: line1, line2, total, tax, team, count)",
            engine->rules()
                .Add(MakeRule("c", RuleTrigger::kChanged, "totl", "", ""))
                .message());
  // Nothing refused was stored.
  EXPECT_TRUE(engine->rules().rules().empty());
}

TEST(Rules, ValidateReportsWhatAddWouldRefuse) {
  auto engine = OpenEngine("");
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("late", RuleTrigger::kEntered, "submitted",
                                "tax > 1", "fire approve"))
                  .ok());
  ASSERT_TRUE(engine->rules().Validate().empty());
  // Version 2 drops the state "submitted" and the attribute "tax".
  Workflow v2("sales_order", 2);
  ASSERT_TRUE(v2.AddState("draft", StateRole::kInitial).ok());
  ASSERT_TRUE(v2.AddState("approved", StateRole::kTerminal).ok());
  ASSERT_TRUE(v2.AddTransition({"approve", "draft", "approved"}).ok());
  ASSERT_TRUE(v2.AddAttribute({"total", ValueType::kDecimal, false}).ok());
  ASSERT_TRUE(engine->Register(std::move(v2), "{}").ok());

  std::vector<std::string> problems = engine->rules().Validate();
  Status again = engine->rules().Add(engine->rules().rules()[0]);

  ASSERT_EQ(1u, problems.size());
  EXPECT_EQ("rule \"late\": unknown state \"submitted\" of kind "
            "\"sales_order\" (known: draft, approved)",
            problems[0]);
  EXPECT_EQ(problems[0], again.message());
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

TEST(ConditionSet, SharesOperandsAndMatchesEachConditionAlone) {
  ExprSchema schema;
  schema.attributes = {{"amount", ValueType::kDecimal},
                       {"tier", ValueType::kText}};
  std::vector<std::string> texts = {
      "amount > 100 and tier == 'gold'", "amount > 500 and tier == 'gold'",
      "tier == 'gold' or amount > 900", "", "amount / 0 > 1 and false"};
  auto set = ConditionSet::Compile(
      {texts[0], texts[1], texts[2], texts[3]}, schema);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  Attributes rec = {{"amount", Value::Dec(Dec("300.50"))},
                    {"tier", Value::Text("gold")}};
  EvalContext ctx;
  ctx.attributes = &rec;

  uint8_t hit[4];
  ASSERT_TRUE(set->Evaluate(ctx, hit).ok());
  auto bad = ConditionSet::Compile({texts[0], texts[4]}, schema);
  uint8_t two[2];

  // amount > 100, amount > 500, tier == 'gold' (shared), the "or" whole.
  EXPECT_EQ(4u, set->operand_count());
  EXPECT_EQ(1, hit[0]);  // 300.50 > 100 and gold
  EXPECT_EQ(0, hit[1]);  // 300.50 <= 500
  EXPECT_EQ(1, hit[2]);
  EXPECT_EQ(1, hit[3]);  // "" always holds
  ASSERT_TRUE(bad.ok());
  Status st = bad->Evaluate(ctx, two);
  EXPECT_EQ("condition 2: column 8: division by zero", st.message());
  EXPECT_EQ("condition 2: column 1: unknown name \"amout\" (known: amount, "
            "tier)",
            ConditionSet::Compile({"tier == 'x'", "amout > 1"}, schema)
                .status()
                .message());
}

TEST(ConditionSet, DefaultConstructedIsEmpty) {
  // An empty set has no conditions (its offsets hold just the leading 0).
  ConditionSet empty;
  EXPECT_EQ(0u, empty.size());
  EXPECT_EQ(0u, empty.operand_count());
}

TEST(Rules, TraceRendersTheValuesEachConditionRead) {
  auto engine = OpenEngine("");
  CreateOrder(*engine, "SO-1", "600", "0");
  // Both read line1 > 100 (shared); only the second reaches line2.
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("a", RuleTrigger::kEvent, "submit",
                                "line1 > 100 and line1 > 1000", ""))
                  .ok());
  ASSERT_TRUE(engine->rules()
                  .Add(MakeRule("b", RuleTrigger::kEvent, "submit",
                                "line1 > 100 and line2 == 0", ""))
                  .ok());

  ASSERT_TRUE(engine->Fire("SO-1", "submit", {}).ok());
  auto trace = engine->rules().Trace("SO-1");

  ASSERT_EQ(2u, trace.size());
  EXPECT_EQ("not matched", trace[0].outcome);
  EXPECT_EQ("line1=600", trace[0].reads);
  EXPECT_EQ("fired", trace[1].outcome);
  EXPECT_EQ("line1=600, line2=0", trace[1].reads);
  EXPECT_EQ("event submit", trace[1].trigger);
  EXPECT_LT(trace[0].seq, trace[1].seq);
}

TEST(ConditionSet, AgreesWithEachConditionEvaluatedAlone) {
  // A differential check: the set's shared operands and direct
  // comparisons against the general evaluator, on values around the
  // literals, nulls, integers in a decimal attribute and wrong types.
  ExprSchema schema;
  schema.attributes = {{"amount", ValueType::kDecimal},
                       {"qty", ValueType::kInteger},
                       {"tier", ValueType::kText},
                       {"vip", ValueType::kBoolean},
                       {"due", ValueType::kTimestamp}};
  std::vector<std::string> texts;
  for (const char* op : {"==", "!=", "<", "<=", ">", ">="}) {
    std::string o = op;
    texts.push_back("amount " + o + " 10.5");
    texts.push_back("amount " + o + " 10");
    texts.push_back("qty " + o + " 3");
    texts.push_back("qty " + o + " 2.5");
    texts.push_back("tier " + o + " 'gold'");
    texts.push_back("due " + o + " @2026-03-01");
    texts.push_back("amount " + o + " 10 and tier " + o + " 'gold'");
  }
  texts.push_back("vip == true");
  texts.push_back("vip != false and qty > 1");
  auto set = ConditionSet::Compile(texts, schema);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  std::vector<Value> amounts = {Value(), Value::Dec(Dec("10.5")),
                                Value::Dec(Dec("10.50")),
                                Value::Dec(Dec("10.499")), Value::Integer(10),
                                Value::Integer(11)};
  std::vector<Value> qtys = {Value(), Value::Integer(2), Value::Integer(3),
                             Value::Integer(4)};
  std::vector<Value> tiers = {Value(), Value::Text("gold"),
                              Value::Text("Gold"), Value::Text("silver")};
  std::vector<Value> dues = {Value(), Value::Time(At(1, 0)),
                             Value::Time(At(1, 1))};
  Timestamp march1 = Timestamp::FromCivilUtc(2026, 3, 1, 0, 0, 0, 0).value();
  dues.push_back(Value::Time(march1));
  int checked = 0;
  for (const Value& a : amounts) {
    for (const Value& q : qtys) {
      for (const Value& t : tiers) {
        for (const Value& d : dues) {
          Attributes rec;
          // Out of schema order, so the lookup hint misses sometimes.
          if (!d.is_null()) rec.emplace_back("due", d);
          if (!a.is_null()) rec.emplace_back("amount", a);
          if (!q.is_null()) rec.emplace_back("qty", q);
          if (!t.is_null()) rec.emplace_back("tier", t);
          rec.emplace_back("vip", Value::Bool(q.is_null()));
          EvalContext ctx;
          ctx.attributes = &rec;
          std::vector<uint8_t> hit(set->size());
          ASSERT_TRUE(set->Evaluate(ctx, hit.data()).ok());
          for (size_t i = 0; i < texts.size(); ++i) {
            auto alone = Expression::ParseCondition(texts[i], schema);
            auto want = alone->EvaluateCondition(ctx);
            ASSERT_TRUE(want.ok());
            ASSERT_EQ(*want ? 1 : 0, hit[i]) << texts[i];
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(6 * 4 * 4 * 4 * 44, checked);
  // A text where a decimal is declared fails as the evaluator does.
  Attributes wrong = {{"amount", Value::Text("x")}};
  EvalContext ctx;
  ctx.attributes = &wrong;
  std::vector<uint8_t> hit(set->size());
  EXPECT_EQ("condition 1: column 1: amount holds text \"x\" (declared "
            "decimal)",
            set->Evaluate(ctx, hit.data()).message());
}

}  // namespace
}  // namespace crmflow
