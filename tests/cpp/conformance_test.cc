// conformance_test.cc: replay, discovery and diffs (conformance.h), on
// small logs whose answers are worked out by hand.

#include "crmflow/conformance.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "crmflow/event_log.h"
#include "crmflow/workflow.h"

namespace crmflow {
namespace {

// new -assign-> assigned -resolve-> resolved -close-> closed.
Workflow Ticket() {
  Workflow wf("ticket", 1);
  EXPECT_TRUE(wf.AddState("new", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("assigned").ok());
  EXPECT_TRUE(wf.AddState("resolved").ok());
  EXPECT_TRUE(wf.AddState("closed", StateRole::kTerminal).ok());
  for (auto [e, s, t] : {std::tuple{"assign", "new", "assigned"},
                         {"resolve", "assigned", "resolved"},
                         {"close", "resolved", "closed"}}) {
    TransitionSpec spec;
    spec.event = e;
    spec.source = s;
    spec.target = t;
    EXPECT_TRUE(wf.AddTransition(spec).ok());
  }
  return wf;
}

// T1 fits, T2 closes before resolving, T3 has an unknown activity, T4 is
// empty.
EventLog Log() {
  EventColumns c;
  auto add = [&](const char* cs, const char* a, int64_t s) {
    c.case_ids.push_back(cs);
    c.activities.push_back(a);
    c.timestamps.push_back(s * 1000000);
  };
  add("T1", "assign", 0);
  add("T1", "resolve", 60);
  add("T1", "close", 120);
  add("T2", "assign", 0);
  add("T2", "close", 30);
  add("T2", "resolve", 90);
  add("T3", "assign", 0);
  add("T3", "escalate", 10);
  c.cases = {"T1", "T2", "T3", "T4"};
  auto log = EventLog::FromColumns(c);
  EXPECT_TRUE(log.ok());
  return std::move(log).value();
}

TEST(Replay, PerCaseFitAndFitness) {
  ReplayOptions o;
  o.milestones = {"closed"};

  auto r = Replay(Log(), Ticket(), o);

  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->cases.size(), 4u);
  EXPECT_TRUE(r->cases[0].fit);
  EXPECT_TRUE(r->cases[0].completed);
  EXPECT_FALSE(r->cases[1].fit);
  EXPECT_EQ(r->cases[1].deviations, 2);  // resync to closed, then resolve
  EXPECT_EQ(r->cases[2].deviations, 2);  // unknown + missing milestone
  EXPECT_EQ(r->cases[3].deviations, 1);  // empty: missing milestone
  EXPECT_EQ(r->fitting_cases, 1);
  EXPECT_DOUBLE_EQ(*r->fitness, 0.25);
  EXPECT_DOUBLE_EQ(*r->event_fitness, 5.0 / 8.0);
  EXPECT_EQ(r->deviations[0].kind, DeviationKind::kNotAllowed);
  EXPECT_EQ(r->deviations[0].state, "assigned");
  EXPECT_EQ(r->deviations[0].position, 1);
  ASSERT_TRUE(r->cases[0].milestone_times[0].has_value());
  EXPECT_EQ(r->cases[0].milestone_times[0]->micros, 120 * 1000000);
}

TEST(Replay, WithoutResyncTheCaseStays) {
  ReplayOptions o;
  o.resync = false;

  auto r = Replay(Log(), Ticket(), o);

  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cases[1].deviations, 1);
  EXPECT_EQ(r->state_names[r->cases[1].final_state], "resolved");
}

TEST(Replay, GuardRefusalIsADeviation) {
  Workflow wf("g", 1);
  ASSERT_TRUE(wf.AddState("new", StateRole::kInitial).ok());
  ASSERT_TRUE(wf.AddState("assigned", StateRole::kTerminal).ok());
  TransitionSpec spec;
  spec.event = "assign";
  spec.source = "new";
  spec.target = "assigned";
  spec.guards = {"never"};
  ASSERT_TRUE(wf.AddTransition(spec).ok());
  ReplayOptions o;
  int calls = 0;
  o.guard = [&](const ReplayGuardContext& c) {
    ++calls;
    EXPECT_EQ(c.guard, "never");
    return false;
  };

  auto r = Replay(Log(), wf, o);

  ASSERT_TRUE(r.ok());
  EXPECT_EQ(calls, 3);  // the first assign of T1, T2 and T3
  EXPECT_EQ(r->deviations[0].kind, DeviationKind::kGuardRefused);
}

TEST(Replay, StateKindAndActivityMap) {
  ReplayOptions o;
  o.activity_kind = ActivityKind::kState;
  o.activity_map = {{"assign", "assigned"}, {"resolve", "resolved"},
                    {"close", "closed"}};

  auto r = Replay(Log(), Ticket(), o);

  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->cases[0].fit);
  EXPECT_EQ(r->cases[2].ignored, 1);  // escalate is not in the map
  EXPECT_TRUE(r->cases[2].fit);
}

TEST(Replay, RepeatedStatusRowsAreUnchanged) {
  // A status export: S1 writes "new" twice (creation, then an update of
  // another field), "assigned" three times, then "resolved" and
  // "closed".  "assigned" and "in progress" both map to assigned.
  EventColumns c;
  int64_t t = 0;
  for (const char* a : {"new", "new", "assigned", "assigned", "in progress",
                        "resolved", "closed"}) {
    c.case_ids.push_back("S1");
    c.activities.push_back(a);
    c.timestamps.push_back(60000000 * t++);
  }
  auto log = EventLog::FromColumns(c);
  ASSERT_TRUE(log.ok());
  ReplayOptions o;
  o.activity_kind = ActivityKind::kState;
  o.activity_map = {{"new", "new"}, {"assigned", "assigned"},
                    {"in progress", "assigned"}, {"resolved", "resolved"},
                    {"closed", "closed"}};

  auto r = Replay(*log, Ticket(), o);
  o.repeats_unchanged = false;
  auto strict = Replay(*log, Ticket(), o);

  // Creation, 3 moves, 3 repeats; the steps are the 4 states entered.
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->cases[0].fit);
  EXPECT_EQ(r->cases[0].events, 7);
  EXPECT_EQ(r->cases[0].accepted, 7);
  EXPECT_EQ(r->cases[0].unchanged, 3);
  EXPECT_EQ(r->unchanged, 3);
  EXPECT_EQ(r->steps.size(), 4u);
  EXPECT_EQ(r->cases[0].final_state, Ticket().StateId("closed"));
  // Strictly, each repeat is a deviation in the state it repeats.
  ASSERT_TRUE(strict.ok());
  ASSERT_EQ(strict->deviations.size(), 3u);
  EXPECT_EQ(strict->deviations[0].state, "new");
  EXPECT_EQ(strict->deviations[0].position, 1);
  EXPECT_EQ(strict->deviations[2].state, "assigned");
  EXPECT_EQ(strict->deviations[2].position, 4);
  EXPECT_EQ(strict->cases[0].unchanged, 0);
}

TEST(Replay, Errors) {
  ReplayOptions o;
  o.milestones = {"shipped"};
  EXPECT_EQ(Replay(Log(), Ticket(), o).status().code(), Code::kNotFound);
  EXPECT_EQ(Replay(Log(), Workflow("empty", 1)).status().code(),
            Code::kInvalidArgument);
  ReplayOptions dup;
  dup.activity_map = {{"a", "x"}, {"a", "y"}};
  EXPECT_EQ(Replay(Log(), Ticket(), dup).status().code(),
            Code::kInvalidArgument);
}

TEST(Replay, EmptyLogHasNoFitness) {
  auto r = Replay(EventLog(), Ticket());

  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->fitness.has_value());
  EXPECT_FALSE(r->event_fitness.has_value());
}

TEST(Discover, FiltersAndValidates) {
  DiscoveryOptions o;
  o.min_edge_count = 2;

  auto wf = Discover(Log(), o);

  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  EXPECT_EQ(wf->StateName(wf->initial_state()), "start");
  ASSERT_EQ(wf->transitions().size(), 1u);  // start -> assign only
  auto full = Discover(Log());
  ASSERT_TRUE(full.ok());
  auto r = Replay(Log(), *full);
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(*r->event_fitness, 1.0);
}

TEST(Discover, RefusesEmptyLogAndClashingStart) {
  EXPECT_EQ(Discover(EventLog()).status().code(), Code::kInvalidArgument);
  DiscoveryOptions o;
  o.start_state = "assign";
  EXPECT_EQ(Discover(Log(), o).status().code(), Code::kInvalidArgument);
}

TEST(DiffWorkflows, EventsBasis) {
  auto draft = Discover(Log());
  ASSERT_TRUE(draft.ok());

  WorkflowDiff d = DiffWorkflows(Ticket(), *draft, DiffBasis::kEvents);

  EXPECT_TRUE(d.edges_only_in_a.empty());
  auto has = [&](const std::vector<DiffEdge>& v, const char* f,
                 const char* t) {
    for (const DiffEdge& e : v) {
      if (e.from == f && e.to == t) return true;
    }
    return false;
  };
  EXPECT_TRUE(has(d.edges_only_in_b, "assign", "close"));
  EXPECT_TRUE(has(d.edges_in_both, "", "assign"));
  EXPECT_EQ(d.nodes_only_in_b, std::vector<std::string>{"escalate"});
}

TEST(DiffWorkflows, StatesBasis) {
  WorkflowDiff d = DiffWorkflows(Ticket(), Ticket());

  EXPECT_TRUE(d.nodes_only_in_a.empty());
  EXPECT_TRUE(d.edges_only_in_b.empty());
  EXPECT_EQ(d.edges_in_both.size(), 3u);
}

}  // namespace
}  // namespace crmflow
