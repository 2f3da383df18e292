// rules.h: business rules and expression guards, run by the engine inside
// the store transaction of the change that triggered them.
//
// A rule belongs to one kind and has a trigger, a condition (an expression
// of expr.h), a priority, an enabled flag and actions:
//
//   trigger   kCreated          the transaction was created
//             kEvent  (on=E)    event E was fired ("" = any event)
//             kEntered (on=S)   state S was entered ("" = any state)
//             kLeft   (on=S)    state S was left
//             kChanged (on=A)   attribute A changed value ("" = any)
//   actions   one per line of Rule::actions:
//             set NAME = EXPR          write an attribute
//             assign team = EXPR       the same, for team or assignee
//             fire EVENT               fire an event on this transaction
//             create KIND [with A = EXPR; B = EXPR]
//                                      create a linked transaction (its
//                                      parent is this one; its id is the
//                                      kind's next number, or
//                                      "<this id>/<rule name>")
//             notify CHANNEL [with recipient = EXPR; subject = EXPR;
//                                   body = EXPR]
//                                      write a row to the outbox table
//
// The agenda: the enabled rules of the kind whose trigger matches are
// evaluated in order of priority (highest first), then definition order.
// Each one whose condition holds runs its actions in order.  A rule whose
// set/assign names an attribute already written by a higher rule of the
// same agenda is "shadowed" and runs nothing.  Actions go through the
// engine (Fire, SetAttributes, Create), so they trigger rules in turn: the
// chain runs to a fixed point, depth first.  Writing an unchanged value is
// not a change and triggers nothing.  A chain deeper than
// RuleLimits::max_depth or longer than max_firings fails with
// kInvalidArgument naming the rules on the path ("rule loop: a -> b ->
// a"); the caller's store transaction then rolls the whole chain back.
//
// Expression guards: a transition guard named "expr: CONDITION" (e.g.
// "expr: amount <= 1000") is the condition itself, checked against the
// kind's attributes when the workflow is registered.  Its refusal reason
// names the values that decided: `amount <= 1000 is false (amount=1200)`.
//
// Every evaluation appends a RuleTraceRow (in memory, bounded): which
// rules matched, fired, were shadowed or did not match, with the values
// read.  Rules are rows of the "rules" table (SQLite) so every engine on
// the file sees the same ones; an engine loads them when opened and on
// Reload.
//
// A RuleSet belongs to one Engine and is not thread-safe.

#ifndef CRMFLOW_RULES_H_
#define CRMFLOW_RULES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/expr.h"
#include "crmflow/status.h"
#include "crmflow/store.h"
#include "crmflow/value.h"
#include "crmflow/workflow.h"

namespace crmflow {

class Engine;

enum class RuleTrigger { kCreated, kEvent, kEntered, kLeft, kChanged };

// Returns "created", "event", "entered", "left" or "changed".
const char* RuleTriggerName(RuleTrigger trigger);
// Parses a trigger name; fails with kInvalidArgument naming it.
StatusOr<RuleTrigger> ParseRuleTrigger(std::string_view name);

// One rule, as stored.
struct Rule {
  std::string name;       // unique
  std::string kind;       // the kind it watches
  RuleTrigger trigger = RuleTrigger::kEvent;
  std::string on;         // event, state or attribute; "" = any
  std::string condition;  // an expression; "" = always
  int priority = 0;       // higher runs first
  bool enabled = true;
  std::string actions;    // one action per line (see the file comment)
  int64_t position = 0;   // definition order, set by RuleSet::Add
};

// Bounds of one chain.
struct RuleLimits {
  int max_depth = 16;      // nested rule actions
  int max_firings = 1000;  // rules fired by one outer call
};

// One evaluation of one rule.
struct RuleTraceRow {
  int64_t seq = 0;
  Timestamp time;
  std::string transaction_id;
  std::string rule;
  std::string trigger;  // e.g. "event approve", "created"
  // "fired", "not matched", "shadowed" or "error".
  std::string outcome;
  std::string reads;  // FormatReads of the condition's values
  int depth = 0;      // 0 for the outer change
};

// Returns true when `guard` names an expression guard ("expr: ...").
bool IsExpressionGuard(std::string_view guard);

// Returns the schema of expressions over `workflow`'s attributes.
ExprSchema SchemaOf(const Workflow& workflow);

// Parses the condition of expression guard `guard` over `workflow`.
// Fails with kValidationError naming the workflow, the guard and the
// column.
StatusOr<Expression> ParseExpressionGuard(std::string_view guard,
                                          const Workflow& workflow);

// Evaluates an expression guard on `txn`; on false sets *reason to
// "CONDITION is false (values read)".  An evaluation error refuses too,
// with the error as the reason.
bool CheckExpressionGuard(const Expression& condition, const Transaction& txn,
                          std::string* reason);

// The rules of an engine.
class RuleSet {
 public:
  // `engine` and `store` must outlive the RuleSet; `changed` is called
  // when the set of rules changes (the engine drops its fast tables).
  RuleSet(Engine* engine, Store* store, std::function<void()> changed);
  ~RuleSet();

  // Adds `rule`, replacing one of the same name (which keeps its
  // position).  Fails with kInvalidArgument (bad name, trigger target,
  // condition or action; the kind must be registered), kStoreError.
  Status Add(Rule rule);
  // Enables or disables rule `name`; fails with kNotFound.
  Status SetEnabled(std::string_view name, bool enabled);
  // Removes rule `name`; fails with kNotFound.
  Status Remove(std::string_view name);
  // Returns every rule in definition order.
  const std::vector<Rule>& rules() const;
  // Reads the rules from the store again.
  Status Reload();
  // Forgets compiled expressions (a workflow was registered).
  void Invalidate();

  // Returns one message per stored rule that no longer compiles against
  // the registered workflows (unknown kind, state, event or attribute, a
  // type error), e.g. after a workflow changed; empty when all are fine.
  std::vector<std::string> Validate();

  // Returns true when `kind` has an enabled rule.
  bool HasRules(std::string_view kind) const;

  // Hooks called by the engine inside the store transaction, after the
  // change was written.  A failure must roll the transaction back.
  Status AfterCreate(const Transaction& txn, Timestamp time);
  Status AfterFire(const Transaction& txn, std::string_view event,
                   std::string_view from_state, bool external,
                   Timestamp time);
  Status AfterSetAttributes(const Transaction& before,
                            const Transaction& after, Timestamp time);

  // Returns the trace, oldest first (the last 100000 rows at most),
  // optionally of one transaction.
  std::vector<RuleTraceRow> Trace(std::string_view transaction_id) const;
  void ClearTrace();

  RuleLimits& limits();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crmflow

#endif  // CRMFLOW_RULES_H_
