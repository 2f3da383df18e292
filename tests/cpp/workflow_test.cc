// workflow_test.cc: declaring workflows, candidate order, each kind of
// validation problem and the DOT export.

#include "crmflow/workflow.h"

#include <gtest/gtest.h>

namespace crmflow {
namespace {

bool Has(const std::vector<Problem>& problems, Problem::Kind kind,
         std::string_view state, std::string_view event = "") {
  for (const Problem& p : problems) {
    if (p.kind == kind && p.state == state && p.event == event) return true;
  }
  return false;
}

Workflow Orders() {
  Workflow wf("sales_order", 1);
  EXPECT_TRUE(wf.AddState("created", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("approved").ok());
  EXPECT_TRUE(wf.AddState("closed", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddTransition({"submit", "created", "approved"}).ok());
  EXPECT_TRUE(wf.AddTransition({"cancel", "created", "closed"}).ok());
  EXPECT_TRUE(wf.AddTransition({"close", "approved", "closed"}).ok());
  return wf;
}

TEST(Workflow, ValidGraphHasNoProblems) {
  Workflow wf = Orders();

  auto problems = wf.Validate();

  EXPECT_TRUE(problems.empty());
  EXPECT_TRUE(wf.CheckValid().ok());
}

TEST(Workflow, LookupsAndCandidates) {
  Workflow wf = Orders();

  int created = wf.StateId("created");
  int submit = wf.EventId("submit");

  EXPECT_EQ(created, 0);
  EXPECT_EQ(submit, 0);
  EXPECT_EQ(wf.StateId("nope"), Workflow::kNoId);
  EXPECT_EQ(wf.initial_state(), 0);
  ASSERT_EQ(wf.Candidates(created, submit).size(), 1u);
  EXPECT_EQ(wf.Candidates(created, submit)[0]->target, wf.StateId("approved"));
  EXPECT_TRUE(wf.Candidates(created, wf.EventId("close")).empty());
  EXPECT_EQ(wf.EventsFrom(created),
            (std::vector<std::string>{"submit", "cancel"}));
}

TEST(Workflow, RefusesBadDeclarations) {
  Workflow wf = Orders();

  EXPECT_EQ(wf.AddState("created").code(), Code::kAlreadyExists);
  EXPECT_EQ(wf.AddState("").code(), Code::kInvalidArgument);
  EXPECT_EQ(wf.AddTransition({"", "created", "closed"}).code(),
            Code::kInvalidArgument);
  TransitionSpec internal{"note", "created", "closed"};
  internal.internal = true;
  EXPECT_EQ(wf.AddTransition(internal).code(), Code::kInvalidArgument);
  EXPECT_TRUE(wf.AddAttribute({"amount", ValueType::kDecimal, true}).ok());
  EXPECT_EQ(wf.AddAttribute({"amount"}).code(), Code::kAlreadyExists);
}

TEST(Workflow, ReportsMissingInitialAndTerminal) {
  Workflow wf("w", 1);
  ASSERT_TRUE(wf.AddState("a").ok());

  auto problems = wf.Validate();

  EXPECT_TRUE(Has(problems, Problem::Kind::kNoInitialState, ""));
  EXPECT_TRUE(Has(problems, Problem::Kind::kNoTerminalState, ""));
  EXPECT_EQ(wf.CheckValid().code(), Code::kValidationError);
}

TEST(Workflow, ReportsSeveralInitialStates) {
  Workflow wf = Orders();
  ASSERT_TRUE(wf.AddState("draft", StateRole::kInitial).ok());
  ASSERT_TRUE(wf.AddTransition({"finish", "draft", "closed"}).ok());

  auto problems = wf.Validate();

  EXPECT_TRUE(Has(problems, Problem::Kind::kSeveralInitialStates, "draft"));
}

TEST(Workflow, ReportsUnreachableState) {
  Workflow wf = Orders();
  ASSERT_TRUE(wf.AddState("archived", StateRole::kTerminal).ok());

  auto problems = wf.Validate();

  ASSERT_TRUE(Has(problems, Problem::Kind::kUnreachableState, "archived"));
  EXPECT_EQ(problems[0].message,
            "state \"archived\" is unreachable from initial state "
            "\"created\"");
}

TEST(Workflow, ReportsDeadEnd) {
  Workflow wf = Orders();
  ASSERT_TRUE(wf.AddState("limbo").ok());
  ASSERT_TRUE(wf.AddTransition({"park", "approved", "limbo"}).ok());

  auto problems = wf.Validate();

  EXPECT_TRUE(Has(problems, Problem::Kind::kDeadEnd, "limbo"));
  EXPECT_FALSE(Has(problems, Problem::Kind::kDeadEnd, "approved"));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].message.find("\"limbo\""), std::string::npos);
}

TEST(Workflow, ReportsAmbiguousUnguardedEvent) {
  Workflow wf = Orders();
  ASSERT_TRUE(wf.AddTransition({"submit", "created", "closed"}).ok());

  auto problems = wf.Validate();

  EXPECT_TRUE(
      Has(problems, Problem::Kind::kAmbiguousTransition, "created", "submit"));
  ASSERT_EQ(problems.size(), 1u);
  // A guarded earlier candidate makes a second one legitimate.
  Workflow ok = Orders();
  TransitionSpec first{"escalate", "created", "approved", {"is_p1"}};
  ASSERT_TRUE(ok.AddTransition(first).ok());
  ASSERT_TRUE(ok.AddTransition({"escalate", "created", "closed"}).ok());
  EXPECT_TRUE(ok.Validate().empty());
}

TEST(Workflow, ReportsUndeclaredStateNames) {
  Workflow wf = Orders();
  ASSERT_TRUE(wf.AddTransition({"ship", "approved", "shiped"}).ok());

  auto problems = wf.Validate();

  ASSERT_TRUE(Has(problems, Problem::Kind::kUnknownName, "shiped", "ship"));
  EXPECT_EQ(problems.size(), 1u);
}

TEST(Workflow, TransitionsDeclaredBeforeStatesResolve) {
  Workflow wf("w", 1);
  ASSERT_TRUE(wf.AddTransition({"go", "a", "b"}).ok());
  ASSERT_TRUE(wf.AddState("a", StateRole::kInitial).ok());
  ASSERT_TRUE(wf.AddState("b", StateRole::kTerminal).ok());

  auto problems = wf.Validate();

  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(wf.transitions()[0].target, 1);
}

TEST(Workflow, TerminalWithExitIsInformational) {
  Workflow wf = Orders();
  ASSERT_TRUE(wf.AddTransition({"reopen", "closed", "approved"}).ok());

  auto problems = wf.Validate();

  EXPECT_TRUE(Has(problems, Problem::Kind::kTerminalHasExit, "closed"));
  EXPECT_TRUE(wf.CheckValid().ok());
}

TEST(Workflow, CopyIsIndependent) {
  Workflow wf = Orders();
  Workflow copy(wf);

  ASSERT_TRUE(copy.AddState("extra", StateRole::kTerminal).ok());

  EXPECT_EQ(wf.state_count(), 3);
  EXPECT_EQ(copy.state_count(), 4);
  EXPECT_EQ(copy.StateId("approved"), 1);
  Workflow assigned("x", 9);
  assigned = wf;
  EXPECT_EQ(assigned.name(), "sales_order");
  EXPECT_EQ(assigned.Candidates(0, 0).size(), 1u);
}

TEST(Workflow, DotEscapesNames) {
  Workflow wf("q\"uote", 1);
  ASSERT_TRUE(wf.AddState("a\"b", StateRole::kInitial).ok());
  ASSERT_TRUE(wf.AddState("end", StateRole::kTerminal).ok());
  ASSERT_TRUE(wf.AddTransition({"go", "a\"b", "end"}).ok());

  std::string dot = wf.ToDot();

  EXPECT_NE(dot.find("digraph \"q\\\"uote\""), std::string::npos);
  EXPECT_NE(dot.find("\"a\\\"b\" -> \"end\" [label=\"go\"]"),
            std::string::npos);
}

// Guard overlap: two "approve" transitions from "created" with the given
// guards, over attributes of every analysed type.
std::vector<Problem> GuardProblems(std::vector<std::string> first,
                                   std::vector<std::string> second) {
  Workflow wf = Orders();
  EXPECT_TRUE(wf.AddAttribute({"amount", ValueType::kDecimal}).ok());
  EXPECT_TRUE(wf.AddAttribute({"qty", ValueType::kInteger}).ok());
  EXPECT_TRUE(wf.AddAttribute({"tier", ValueType::kText}).ok());
  EXPECT_TRUE(wf.AddAttribute({"vip", ValueType::kBoolean}).ok());
  EXPECT_TRUE(wf.AddAttribute({"due", ValueType::kTimestamp}).ok());
  EXPECT_TRUE(wf.AddTransition({"approve", "created", "approved",
                                std::move(first)}).ok());
  EXPECT_TRUE(wf.AddTransition({"approve", "created", "closed",
                                std::move(second)}).ok());
  return wf.Validate();
}

// Returns the message of the only guard problem, "" when there is none.
std::string GuardMessage(const std::vector<Problem>& problems,
                         Problem::Kind kind) {
  std::string out;
  int count = 0;
  for (const Problem& p : problems) {
    if (p.kind == Problem::Kind::kOverlappingGuards ||
        p.kind == Problem::Kind::kUnprovenExclusive ||
        p.kind == Problem::Kind::kInvalidGuard) {
      ++count;
      if (p.kind == kind) out = p.message;
    }
  }
  return count == 1 ? out : "";
}

bool Overlaps(const std::string& a, const std::string& b,
              const std::string& witness) {
  std::string m = GuardMessage(GuardProblems({"expr: " + a}, {"expr: " + b}),
                               Problem::Kind::kOverlappingGuards);
  return m.find("e.g. " + witness + " (") != std::string::npos;
}

bool Exclusive(const std::string& a, const std::string& b) {
  for (const Problem& p : GuardProblems({"expr: " + a}, {"expr: " + b})) {
    if (p.kind == Problem::Kind::kOverlappingGuards ||
        p.kind == Problem::Kind::kUnprovenExclusive) {
      return false;
    }
  }
  return true;
}

TEST(WorkflowGuards, TouchingClosedBoundsOverlapAtTheBound) {
  auto problems = GuardProblems({"expr: amount <= 1000"},
                                {"expr: amount >= 1000"});

  std::string m = GuardMessage(problems, Problem::Kind::kOverlappingGuards);

  EXPECT_EQ(m,
            "state \"created\": event \"approve\": guards of transition #4 "
            "to \"approved\" (expr: amount <= 1000) and transition #5 to "
            "\"closed\" (expr: amount >= 1000) can both hold, e.g. amount = "
            "1000 (the first declared wins)");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].severity, Problem::Severity::kWarning);
  EXPECT_EQ(problems[0].state, "created");
  EXPECT_EQ(problems[0].event, "approve");
}

TEST(WorkflowGuards, OpenBoundsAreExclusive) {
  EXPECT_TRUE(Exclusive("amount <= 1000", "amount > 1000"));
  EXPECT_TRUE(Exclusive("amount < 1000", "amount >= 1000"));
  EXPECT_TRUE(Exclusive("1000 > amount", "amount >= 1000"));
  // Dense decimals: a point strictly between two open bounds.
  EXPECT_TRUE(
      Overlaps("amount < 1000.01", "amount > 1000", "amount = 1000.001"));
  // Integers are discrete: nothing lies strictly between 5 and 6.
  EXPECT_TRUE(Exclusive("qty > 5 and qty < 6", "qty >= 0"));
  EXPECT_TRUE(Overlaps("qty > 5", "qty < 7", "qty = 6"));
  EXPECT_TRUE(Exclusive("qty > 5.5", "qty < 6"));
}

TEST(WorkflowGuards, DecimalsCompareByValue) {
  EXPECT_TRUE(Overlaps("amount == 0.1", "amount == 0.10", "amount = 0.1"));
  EXPECT_TRUE(Exclusive("amount == 0.1", "amount == 0.11"));
  EXPECT_TRUE(Exclusive("amount in [0.1, 0.2]", "amount not in [0.10, 0.20]"));
  EXPECT_TRUE(Overlaps("qty == 3", "qty >= 3.0", "qty = 3"));
}

TEST(WorkflowGuards, AndOrNot) {
  EXPECT_TRUE(Exclusive("amount > 100 and tier == 'gold'",
                        "amount > 100 and tier == 'silver'"));
  EXPECT_TRUE(Overlaps("amount > 100 and tier == 'gold'",
                       "amount < 50 or tier == 'gold'",
                       "amount = 101, tier = 'gold'"));
  // not (amount < 5) also holds for a null amount, as the evaluator says.
  EXPECT_TRUE(Overlaps("not (amount < 5)", "amount == null", "amount = null"));
  EXPECT_TRUE(Exclusive("not (amount < 5 or tier == 'gold')",
                        "tier == 'gold'"));
  EXPECT_TRUE(Exclusive("vip", "not vip"));
  EXPECT_TRUE(Overlaps("vip or qty > 1", "not vip", "qty = 2, vip = false"));
  // x != 5 holds for a null x; x == 5 does not.
  EXPECT_TRUE(Overlaps("qty != 5", "qty == null", "qty = null"));
  EXPECT_TRUE(Exclusive("qty == 5", "qty == null"));
}

TEST(WorkflowGuards, InListsAndTextCase) {
  EXPECT_TRUE(Exclusive("tier in ['gold', 'silver']", "tier == 'bronze'"));
  EXPECT_TRUE(Overlaps("tier in ['gold', 'silver']",
                       "tier in ['bronze', 'silver']", "tier = 'silver'"));
  EXPECT_TRUE(Exclusive("tier in ['gold', 'silver']",
                        "tier not in ['gold', 'silver']"));
  // Text compares exactly: 'Gold' is not 'gold'.
  EXPECT_TRUE(Exclusive("tier == 'Gold'", "tier == 'gold'"));
  EXPECT_TRUE(Overlaps("tier != 'gold'", "tier != 'silver'",
                       "tier = 'other'"));
  EXPECT_TRUE(Overlaps("tier not in ['gold', null]", "tier != 'other'",
                       "tier = 'other1'"));
}

TEST(WorkflowGuards, Timestamps) {
  EXPECT_TRUE(Exclusive("due < @2026-02-02", "due >= @2026-02-02"));
  EXPECT_TRUE(Overlaps("due <= @2026-02-02", "due >= @2026-02-02",
                       "due = @2026-02-02T00:00:00Z"));
}

TEST(WorkflowGuards, UnanalysableGuardsAreUnprovenNotes) {
  auto calls = GuardProblems({"expr: lower(tier) == 'gold'"},
                             {"expr: tier == 'silver'"});
  auto python = GuardProblems({"is_vip"}, {"expr: amount > 5"});
  auto arithmetic = GuardProblems({"expr: amount + qty > 5"},
                                  {"expr: amount < 0"});

  std::string m = GuardMessage(calls, Problem::Kind::kUnprovenExclusive);
  EXPECT_NE(m.find("cannot prove transition #4 to \"approved\" (expr: "
                   "lower(tier) == 'gold') and transition #5"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("(cannot analyse lower(tier) == 'gold')"),
            std::string::npos)
      << m;
  EXPECT_NE(GuardMessage(python, Problem::Kind::kUnprovenExclusive)
                .find("(cannot analyse guard \"is_vip\")"),
            std::string::npos);
  EXPECT_NE(GuardMessage(arithmetic, Problem::Kind::kUnprovenExclusive),
            "");
  EXPECT_EQ(ProblemSeverity(Problem::Kind::kUnprovenExclusive),
            Problem::Severity::kInfo);
  // Notes do not make a workflow invalid.
  Workflow wf = Orders();
  ASSERT_TRUE(wf.AddTransition({"approve", "created", "approved", {"a"}}).ok());
  ASSERT_TRUE(wf.AddTransition({"approve", "created", "closed", {"b"}}).ok());
  EXPECT_TRUE(wf.CheckValid().ok());
}

TEST(WorkflowGuards, TooManyAlternativesTogetherAreNotAnalysed) {
  // Two guards of 20 alternatives each make 400 together: past the bound,
  // so the pair is a note, found at once instead of after minutes.
  auto any_of = [](int from) {
    std::string text = "expr: qty == " + std::to_string(from);
    for (int k = from + 1; k < from + 20; ++k) {
      text += " or qty == " + std::to_string(k);
    }
    return text;
  };
  auto problems = GuardProblems({any_of(0), any_of(0)},
                                {any_of(100), any_of(100)});

  std::string m = GuardMessage(problems, Problem::Kind::kUnprovenExclusive);
  EXPECT_NE(m.find("(cannot analyse guards with more than 256 alternatives "
                   "together)"),
            std::string::npos)
      << m;
}

TEST(WorkflowGuards, ExclusiveDespiteAnOpaquePart) {
  // The analysed parts already contradict each other.
  EXPECT_TRUE(Exclusive("amount > 10 and contains(tier, 'g')",
                        "amount < 5"));
}

TEST(WorkflowGuards, IdenticalOpaqueGuardsOverlap) {
  auto problems = GuardProblems({"is_vip"}, {"is_vip"});

  EXPECT_NE(GuardMessage(problems, Problem::Kind::kOverlappingGuards)
                .find("e.g. whenever they pass"),
            std::string::npos);
}

TEST(WorkflowGuards, InvalidGuardIsAnError) {
  auto problems = GuardProblems({"expr: amout > 5"}, {"expr: amount < 5"});

  std::string m = GuardMessage(problems, Problem::Kind::kInvalidGuard);

  EXPECT_NE(m.find("guard \"expr: amout > 5\": column 1: unknown name "
                   "\"amout\""),
            std::string::npos)
      << m;
  EXPECT_EQ(ProblemSeverity(Problem::Kind::kInvalidGuard),
            Problem::Severity::kError);
}

TEST(WorkflowGuards, LaterUnguardedFallbackIsFine) {
  auto problems = GuardProblems({"expr: amount <= 1000"}, {});

  EXPECT_TRUE(problems.empty());
}

}  // namespace
}  // namespace crmflow
