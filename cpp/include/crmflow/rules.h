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
// read.  The values are rendered when Trace() is called, from a snapshot
// of the transaction the agenda read, so tracing costs no formatting on
// the path of each change.  Rules are rows of the "rules" table (SQLite)
// so every engine on the file sees the same ones; an engine loads them
// when opened and on Reload.
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

// Many conditions evaluated together on one record, e.g. every rule of an
// agenda or a batch of records checked from Python.  Each condition is
// split into its top-level "and" operands (Expression::Conjuncts); equal
// operands are compiled once and evaluated at most once per record, so
// fifty rules that all test "tier == 'gold'" read the tier once.  Operands
// run in source order with short-circuit, so results and errors are those
// of evaluating each condition alone.
//
// Example:
//   auto set = ConditionSet::Compile({"amount > 0 and tier == 'gold'",
//                                     "amount > 20 and tier == 'gold'"},
//                                    schema);
//   std::vector<uint8_t> hit(set->size());
//   Status st = set->Evaluate(ctx, hit.data());
//
// Immutable once compiled; copies share it and any number of threads may
// evaluate it at once.
class ConditionSet {
 public:
  ConditionSet();
  ~ConditionSet();
  ConditionSet(const ConditionSet&);
  ConditionSet& operator=(const ConditionSet&);

  // Compiles `conditions` against `schema`; "" always holds.  Fails with
  // kParseError "condition N: column C: ..." (N from 1).
  static StatusOr<ConditionSet> Compile(
      const std::vector<std::string>& conditions, const ExprSchema& schema);

  // Returns the number of conditions.
  size_t size() const;
  // Returns the number of distinct operands compiled.
  size_t operand_count() const;

  // Sets matched[i] to 1 when condition i holds on `ctx`, else 0.
  // `matched` has size() entries.  Fails with kInvalidArgument
  // "condition N: column C: ..." at the first condition whose evaluation
  // fails (C counts within the failing operand).  An operand of the form
  // "attribute op literal" is compared directly (SimpleComparison).  Does
  // not allocate for up to 256 distinct operands.
  Status Evaluate(const EvalContext& ctx, uint8_t* matched) const;
  // Evaluates condition i alone, reusing and filling `memo`
  // (operand_count() entries, all 0 for a fresh record: 1 records a false
  // operand, 2 a true one).  Fails as EvaluateCondition of the operand
  // does (columns count within the operand).
  StatusOr<bool> EvaluateOne(size_t i, const EvalContext& ctx,
                             uint8_t* memo) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

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
