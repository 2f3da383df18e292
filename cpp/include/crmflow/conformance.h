// conformance.h: an event log against a designed Workflow.
//
// Three tools for comparing what happened (an EventLog, event_log.h) with
// what was designed (a Workflow, workflow.h):
//
//   Replay         token-free replay: each case starts in the workflow's
//                  initial state and its events are tried in log order;
//                  an event the workflow allows moves the case, one it does
//                  not is a deviation.  Per case: fit or not, final state,
//                  accepted events, the states entered (the "replayed
//                  history"), first time each milestone was reached; per
//                  log: fitness.  With a changed workflow and guards this is
//                  the engine of what-if analysis.
//   Discover       a draft Workflow from the directly-follows graph, with
//                  frequency filtering.
//   DiffWorkflows  the states and edges found in only one of two workflows
//                  (designed vs discovered).
//
// How an event becomes a move.  Every event has an activity; an activity
// map (optional) renames activities first ("" in the map: ignore the
// activity).  With ActivityKind::kEvent the (renamed) activity is the name
// of a workflow event: the case moves along the first candidate transition
// of (current state, event) whose guards pass.  With ActivityKind::kState
// the activity names the state entered (as in a log built by
// EventLog::FromHistory with kToState, or a status-change export): the case
// moves along the first transition from the current state to that state
// whose guards pass; an event naming the current initial state as the
// case's first event is the creation and accepted without a move.  A later
// event naming the state the case is already in, when no transition leads
// from that state to itself, is a repeat: status exports write a row on
// every update of a record, and two statuses mapped to one state read the
// same way.  A repeat is accepted without a move and counted as unchanged
// (ReplayOptions::repeats_unchanged = false makes it a deviation).
//
// Guards.  Transitions may name guards.  Without a guard callback every
// guard passes (the log is the truth: it says the transition happened).
// With one, ReplayOptions::guard decides per transition and event; a
// refusal makes the next candidate be tried, and when none is left the
// event is a deviation of kind kGuardRefused.  Python callables plug in
// here (see bindings/analytics_module.cc).
//
// Deviations never stop a case.  After a deviation the case stays in its
// state, unless ReplayOptions::resync is set (the default): then a kState
// event moves the case to the state it names (when that state exists), and
// a kEvent event moves it to the target of the event's transitions when
// they all share one target, so that one wrong step does not turn every
// later event into a deviation.
//
// Example:
//
//   crmflow::ReplayOptions opts;
//   opts.milestones = {"resolved"};
//   auto result = crmflow::Replay(log, workflow, opts);
//   if (!result.ok()) return result.status();
//   std::cout << "fitness " << result->fitness.value_or(0) << "\n";
//   for (const crmflow::ReplayDeviation& d : result->deviations) { ... }
//
// All functions read their inputs and do not keep references to them; the
// guard callback is called on the calling thread, in log order.

#ifndef CRMFLOW_CONFORMANCE_H_
#define CRMFLOW_CONFORMANCE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crmflow/event_log.h"
#include "crmflow/status.h"
#include "crmflow/value.h"
#include "crmflow/workflow.h"

namespace crmflow {

// What the activity of an event names in the workflow.
enum class ActivityKind {
  kEvent,  // a workflow event (the transition fired)
  kState,  // the state entered
};

// What a guard callback sees.  References are valid during the call only.
struct ReplayGuardContext {
  int32_t case_index = 0;  // in the log
  int64_t event = 0;       // event index in the log
  const Workflow::Transition& transition;
  const std::string& guard;  // the guard's name
};

// Returns true when the guard lets the transition happen.  May throw; the
// exception propagates out of Replay (no partial result is returned).
using ReplayGuardFn = std::function<bool(const ReplayGuardContext&)>;

// Options of Replay.
struct ReplayOptions {
  // How activities name workflow elements; default kEvent.
  ActivityKind activity_kind = ActivityKind::kEvent;
  // Renames activities before matching: (activity, name) pairs; a name ""
  // ignores the activity.  Empty: identity.
  std::vector<std::pair<std::string, std::string>> activity_map;
  // true (default): activities absent from a non-empty activity_map are
  // ignored; false: they are replayed under their own name.
  bool ignore_unmapped = true;
  // true (default): events with lifecycle start or other are not replayed
  // (counted as ignored), so a start/complete pair is one step.
  bool complete_only = true;
  // States each case must reach (a deviation kMissingMilestone per state
  // not reached).  Each must be a state of the workflow.
  std::vector<std::string> milestones;
  // true (default): resynchronise after a deviation (see the file comment).
  bool resync = true;
  // kState only.  true (default): an event naming the current state with
  // no transition from it to itself is a repeat, accepted and counted as
  // unchanged; false: it is a deviation kNotAllowed.
  bool repeats_unchanged = true;
  // Decides guards; empty (default): every guard passes.
  ReplayGuardFn guard;
};

// The kinds of deviation.
enum class DeviationKind {
  kNotAllowed,        // no transition for the event in the current state
  kUnknownActivity,   // the event or state does not exist in the workflow
  kGuardRefused,      // candidates exist but every one was refused
  kMissingMilestone,  // a milestone state was never reached
};

// Returns "not_allowed", "unknown_activity", "guard_refused" or
// "missing_milestone".
const char* DeviationKindName(DeviationKind kind);

// One deviation.
struct ReplayDeviation {
  int32_t case_index = 0;
  // Event index in the log, -1 for kMissingMilestone.
  int64_t event = -1;
  // 0-based position among the case's events, -1 for kMissingMilestone.
  int64_t position = -1;
  DeviationKind kind = DeviationKind::kNotAllowed;
  std::string state;     // the case's state at the event (or the milestone)
  std::string activity;  // the activity after mapping ("" for milestones)
};

// One accepted move: the case entered `state` (for the creation, the
// initial state) at the event's time.
struct ReplayStep {
  int32_t case_index = 0;
  int64_t event = 0;  // event index in the log
  int32_t state = 0;  // workflow state id
  int32_t transition = -1;  // Workflow::Transition::index, -1: creation or
                            // resynchronisation
  bool resync = false;      // entered by resynchronisation, not a move
};

// The outcome of one case.
struct CaseReplay {
  int32_t final_state = 0;  // workflow state id
  int64_t events = 0;       // events replayed (not ignored)
  int64_t accepted = 0;     // of those, accepted
  int64_t unchanged = 0;    // of the accepted, repeats of the state (kState)
  int64_t ignored = 0;      // events not replayed
  int64_t deviations = 0;   // including missing milestones
  bool fit = true;          // deviations == 0
  bool completed = false;   // final state is terminal
  // Per milestone (ReplayOptions::milestones order): the time the case
  // first entered it, empty when never.
  std::vector<std::optional<Timestamp>> milestone_times;
};

// The outcome of a replay.
struct ReplayResult {
  std::vector<CaseReplay> cases;           // indexed like the log
  std::vector<ReplayDeviation> deviations;  // by case, then position
  std::vector<ReplayStep> steps;            // by case, then event
  int64_t fitting_cases = 0;
  int64_t events = 0;    // replayed, over all cases
  int64_t accepted = 0;  // accepted, over all cases
  int64_t unchanged = 0;  // of those, repeats of the state, over all cases
  // fitting cases / cases; empty when the log has no cases.
  std::optional<double> fitness;
  // accepted events / replayed events; empty when none was replayed.
  std::optional<double> event_fitness;
  std::vector<std::string> state_names;  // workflow state names by id
};

// Replays `log` against `workflow` (see the file comment).  Fails with
// kInvalidArgument when the workflow has no initial state or an activity
// map entry is duplicated, and with kNotFound naming a milestone that is
// not a state (`unknown milestone "shipped" (expected one of ...)`).  Time:
// linear in events times candidates; memory: one ReplayStep per accepted
// event.
StatusOr<ReplayResult> Replay(const EventLog& log, const Workflow& workflow,
                              const ReplayOptions& options = {});

// Options of Discover.
struct DiscoveryOptions {
  // Name of the draft workflow and its version.
  std::string name = "discovered";
  int version = 1;
  // Activities occurring fewer times are left out; default 1 (keep all).
  int64_t min_activity_count = 1;
  // Directly-follows edges with a lower count are left out; default 1.
  int64_t min_edge_count = 1;
  // Start and end activities with a lower case count are not linked to
  // the synthetic start state / made terminal; default 1.
  int64_t min_start_count = 1;
  int64_t min_end_count = 1;
  // Name of the synthetic initial state; must not be an activity.
  std::string start_state = "start";
};

// Returns a draft workflow: one state per kept activity plus the initial
// state `start_state`; for each kept start activity A a transition with
// event A from the start state to A, and for each kept edge A -> B a
// transition with event B from A to B; kept end activities are terminal
// (when none is kept, the most frequent end activity is).  States not
// reachable from the start state after filtering are dropped.  Events are
// named after the state they enter, so replaying the same log with either
// ActivityKind gives the same answer.  Fails with kInvalidArgument when the
// log has no events or when `start_state` is an activity of the log.
StatusOr<Workflow> Discover(const EventLog& log,
                            const DiscoveryOptions& options = {});

// What DiffWorkflows compares.
enum class DiffBasis {
  // States by name, edges as (source state, target state) pairs.
  kStates,
  // Events by name, edges as "event E can be directly followed by event
  // F" (the target of an E transition is the source of an F transition),
  // plus "E can come first" (E leaves the initial state).  This compares
  // a designed workflow whose events are activities with a discovered one.
  kEvents,
};

// One edge of a diff.
struct DiffEdge {
  std::string from;  // "" for "can come first" edges under kEvents
  std::string to;
  bool operator==(const DiffEdge& o) const {
    return from == o.from && to == o.to;
  }
};

// The differences between two workflows; every list is sorted.
struct WorkflowDiff {
  std::vector<std::string> nodes_only_in_a;
  std::vector<std::string> nodes_only_in_b;
  std::vector<std::string> nodes_in_both;
  std::vector<DiffEdge> edges_only_in_a;
  std::vector<DiffEdge> edges_only_in_b;
  std::vector<DiffEdge> edges_in_both;
};

// Compares workflow `a` (say, designed) with `b` (say, discovered).  Under
// kEvents the synthetic start state of a discovered workflow plays the
// role of the initial state, so its events count as "can come first".
// Never fails.
WorkflowDiff DiffWorkflows(const Workflow& a, const Workflow& b,
                           DiffBasis basis = DiffBasis::kStates);

}  // namespace crmflow

#endif  // CRMFLOW_CONFORMANCE_H_
