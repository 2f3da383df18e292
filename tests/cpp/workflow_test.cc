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

}  // namespace
}  // namespace crmflow
