// workflow.h: a named, versioned state graph for one kind of CRM
// transaction (sales order, service request, complaint, ...).
//
// States are vertices and transitions are edges of a Boost.Graph
// adjacency_list.  A transition has an event name, a source, a target, an
// ordered list of guard names and an ordered list of action names.  For a
// given state and event the candidate transitions are tried in the order
// they were added; the first whose guards all pass (evaluated left to right,
// stopping at the first refusal) wins.
//
// A transition whose source equals its target is external by default: the
// engine runs the exit hooks, the actions, then the entry hooks, and resets
// the state's entered-at time.  An internal transition (internal = true,
// source == target) runs only its actions: no hooks, and the entered-at time
// stays.
//
// Example:
//
//   crmflow::Workflow wf("service_request", 1);
//   wf.AddState("new", crmflow::StateRole::kInitial);
//   wf.AddState("in_progress");
//   wf.AddState("closed", crmflow::StateRole::kTerminal);
//   wf.AddTransition({"start", "new", "in_progress"});
//   wf.AddTransition({"close", "in_progress", "closed"});
//   for (const auto& p : wf.Validate()) std::cerr << p.message << "\n";
//
// A Workflow is immutable once registered with an Engine; concurrent reads
// from several threads are safe, mutation is not.

#ifndef CRMFLOW_WORKFLOW_H_
#define CRMFLOW_WORKFLOW_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/status.h"
#include "crmflow/value.h"

namespace crmflow {

enum class StateRole { kNormal = 0, kInitial, kTerminal };

// A transition as declared.
struct TransitionSpec {
  std::string event;
  std::string source;
  std::string target;
  std::vector<std::string> guards;   // names of registered guards, in order
  std::vector<std::string> actions;  // names of registered actions, in order
  bool internal = false;             // only valid when source == target
};

// A declared attribute of the kind's transactions.
struct AttributeSpec {
  std::string name;
  ValueType type = ValueType::kText;
  bool required = false;  // must be given at create
};

// One problem found by Validate().
struct Problem {
  enum class Kind {
    kNoInitialState,
    kSeveralInitialStates,
    kNoTerminalState,
    kUnreachableState,     // not reachable from the initial state
    kDeadEnd,              // no terminal state reachable from it
    kAmbiguousTransition,  // same event leaves one state twice, no guards
    kUnknownName,          // a transition names an undeclared state
    kTerminalHasExit,      // informational: a terminal state with exits
    // Two transitions on one event from one state whose guards can both
    // pass (the message gives values that pass both); the first declared
    // wins for those values.
    kOverlappingGuards,
    // Two guarded transitions on one event from one state that the
    // analysis cannot prove exclusive: a guard is not an expression or
    // uses something it does not model (a function call, arithmetic).
    kUnprovenExclusive,
    kInvalidGuard,  // an "expr:" guard that does not parse or type-check
  };
  // How much a problem matters.  The engine refuses to register a
  // workflow with errors; warnings and notes are for the author.
  enum class Severity {
    kError,    // the workflow cannot run as declared
    kWarning,  // well defined but probably not meant (ambiguity, overlap)
    kInfo,     // worth a look (unproven exclusivity, terminal exits)
  };
  Kind kind;
  std::string state;  // the state concerned, or ""
  std::string event;  // the event concerned, or ""
  // A full sentence-free message, e.g.
  // `state "archived" is unreachable from initial state "created"`.
  std::string message;
  Severity severity = Severity::kError;  // ProblemSeverity(kind)
};

// Returns the severity of a kind of problem: kAmbiguousTransition and
// kOverlappingGuards are warnings, kTerminalHasExit and kUnprovenExclusive
// notes, everything else errors.
Problem::Severity ProblemSeverity(Problem::Kind kind);
// Returns the snake_case name of a kind ("overlapping_guards") and of a
// severity ("error", "warning", "info").
const char* ProblemKindName(Problem::Kind kind);
const char* ProblemSeverityName(Problem::Severity severity);

class Workflow {
 public:
  // Interned ids: states and events are numbered 0..n-1 in declaration
  // order.  kNoId marks an unknown name.
  static constexpr int kNoId = -1;

  // One transition after interning.
  struct Transition {
    int index;  // position in declaration order
    int event;
    int source;
    int target;
    std::vector<std::string> guards;
    std::vector<std::string> actions;
    bool internal;
  };

  Workflow(std::string name, int version);
  ~Workflow();
  Workflow(Workflow&&) noexcept;
  Workflow& operator=(Workflow&&) noexcept;
  // Copies the declarations; the derived graph is rebuilt lazily.
  Workflow(const Workflow&);
  Workflow& operator=(const Workflow&);

  const std::string& name() const { return name_; }
  int version() const { return version_; }

  // Adds a state.  Fails with kAlreadyExists for a duplicate name and
  // kInvalidArgument for an empty or non-UTF-8 name.
  Status AddState(std::string name, StateRole role = StateRole::kNormal);
  // Adds a transition; the states need not exist yet (Validate() reports
  // unknown names) but the event name must be non-empty.  Fails with
  // kInvalidArgument for internal == true with source != target.
  Status AddTransition(TransitionSpec spec);
  // Declares an attribute.  Fails with kAlreadyExists for a duplicate.
  Status AddAttribute(AttributeSpec spec);

  // Returns every problem found, in a stable order; empty means valid.
  // Uses breadth-first search from the initial state for reachability and
  // over the reversed graph from the terminal states for dead ends.  The
  // guards of every two guarded candidates of one (state, event) are
  // compared (guard_overlap.h): "expr:" guards are analysed, other guards
  // cannot be and give kUnprovenExclusive notes.
  std::vector<Problem> Validate() const;
  // Returns OK or kValidationError whose message lists every error and
  // warning (not the notes), separated by "; ".
  Status CheckValid() const;

  // Lookups.  Names are case-sensitive.
  int StateId(std::string_view name) const;
  int EventId(std::string_view name) const;
  const std::string& StateName(int id) const;
  const std::string& EventName(int id) const;
  StateRole Role(int state) const;
  int initial_state() const;  // kNoId when there is none
  int state_count() const;
  int event_count() const;
  const std::vector<AttributeSpec>& attributes() const { return attributes_; }
  const AttributeSpec* FindAttributeSpec(std::string_view name) const;

  // Returns the transitions for (state, event) in declaration order; empty
  // when the event is not allowed there.  The reference stays valid for the
  // workflow's lifetime.
  const std::vector<const Transition*>& Candidates(int state, int event) const;
  // Returns the distinct event names leaving `state`, in declaration order.
  std::vector<std::string> EventsFrom(int state) const;
  // All transitions in declaration order.
  const std::vector<Transition>& transitions() const { return transitions_; }

  // Returns the graph in Graphviz DOT, names escaped.
  std::string ToDot() const;

 private:
  struct Graph;  // the Boost.Graph adjacency_list and its indexes
  void Reindex() const;
  // Appends the guard problems (invalid, overlapping, unproven) through
  // `add(kind, state, event, message)`.
  template <typename Add>
  void CheckGuards(const Add& add) const;

  std::string name_;
  int version_;
  std::vector<std::string> state_names_;
  std::vector<StateRole> roles_;
  std::vector<std::string> event_names_;
  std::vector<TransitionSpec> specs_;
  std::vector<AttributeSpec> attributes_;
  // Derived, rebuilt lazily after a mutation.
  mutable std::vector<Transition> transitions_;
  mutable std::unique_ptr<Graph> graph_;
  mutable bool dirty_ = true;
};

}  // namespace crmflow

#endif  // CRMFLOW_WORKFLOW_H_
