// approvals.h: approval matrices, approval chains, decisions and
// delegation on top of an Engine.
//
// An approval matrix belongs to one kind and says who must approve a
// transaction before it may go on.  It is data: an ordered list of bands,
// each with a condition (an expression of expr.h over the kind's
// attributes, e.g. "amount <= 1000") and the chain of steps it requires.
// The first band whose condition holds wins.  A chain may be empty
// (approved automatically), one step ("manager") or several ("manager"
// then "director").  A step names its approvers, either a list of actor
// ids or a routing team (routing.h) whose available members approve, and
// its mode:
//
//   kUnanimous  every approver must approve; the step completes with the
//               last approval
//   kFirst      the first response decides the step
//
// A rejection at any step, in either mode, rejects the whole request.
//
// The matrix also names how it attaches to the workflow: the state that
// requests approval (e.g. "pending_approval"), the event fired when the
// chain completes (e.g. "approve") and the event fired on rejection (e.g.
// "reject"; its transition in the workflow names the state the
// transaction returns to).  Both events must leave the requesting state.
//
// Life of a request:
//   1. A transaction enters the requesting state (by any Fire, or by a
//      Create when it is the initial state): an entry
//      hook computes the chain from its attributes at that moment and
//      opens a request, in the same store transaction.  No band matching
//      refuses the transition (kNotAllowed, thrown as ApprovalError from
//      the hook, so the Fire rolls back and the exception propagates).
//   2. An empty chain fires the approve event at once, in the same store
//      transaction (through a rule of the engine's RuleSet named
//      "approvals:<kind>:automatic", see rules.h, which fires after the
//      transition is written, plus "approvals:<kind>:automatic-on-create"
//      on "created" when the requesting state is the initial one); the
//      request is recorded as automatic.
//   3. Approve / Reject record a decision and, when it completes the last
//      step or rejects, fire the approve or reject event.  The decision,
//      the request's new state and the fired event are one store
//      transaction: a fire that fails (guard, hook, rule) leaves nothing.
//   4. Leaving the requesting state any other way (the approve event
//      fired directly on the engine, a "cancel" event) closes the request
//      as "cancelled", naming the event.
//   5. Entering the requesting state again opens a fresh request; the
//      old ones stay in the history.
//
// Delegation: Delegate(actor, substitute, start, end) lets the substitute
// decide for the actor during [start, end).  Such a decision is recorded
// with actor = the substitute and on_behalf_of = the actor.  One actor's
// windows may not overlap; an empty or inverted window and delegating to
// oneself are refused.  Delegation ids are never given again, even after
// a removal.
//
// One person, one vote per step: whoever has decided a step, in their own
// name or on behalf of an approver, cannot decide it again in any
// capacity.  Without this an approver who is also the substitute of the
// other approver of a unanimous step would complete it alone.
//
// Decision times: a decision may not be dated before its request was
// opened (the time the transaction entered the requesting state).  Like
// the engine, approvals take any explicit time otherwise (replays and
// backdated imports need that), within the instants a Timestamp supports
// (years 0001 to 9999).
//
// Tables (created with CREATE TABLE IF NOT EXISTS in the engine's SQLite
// file and written in the engine's transactions; listed in
// docs/approvals.md):
//   approval_requests(id, transaction_id, kind, band, band_name, status
//       (open, approved, rejected, cancelled), current_step, steps,
//       opened_at, closed_at, outcome_event, automatic)
//   approval_steps(request_id, position, name, mode, approvers, team)
//   approval_decisions(id, request_id, transaction_id, step, step_name,
//       actor, on_behalf_of, decision, time, comment)
//   approval_delegations(id AUTOINCREMENT, actor, substitute, starts_at,
//       ends_at, created_at); a file made before ids were kept unique is
//       rebuilt in place when approvals attach, keeping rows and ids
// With the memory store the same tables live in a private in-memory
// SQLite database owned by the Approvals object.  Changes made there by
// the entry and exit hooks during an engine Fire that is later rolled
// back are undone the next time the Approvals object is used (each is
// checked against the transaction's history); decisions and delegations
// on the memory store are refused inside an explicit Engine::Begin.
// Matrices are stored too, as normalised rows, so every program opening
// the file sees the same ones:
//   approval_matrices(kind, request_state, approve_event, reject_event,
//       updated_at)
//   approval_matrix_bands(kind, position, name, condition)
//   approval_matrix_steps(kind, band, position, name, mode, approvers,
//       team)
// Attach loads them and validates each against its kind's registered
// workflow.  One that no longer validates (or whose kind is not
// registered) is kept but not active: Problems() names kind, band and
// problem, and entering its requesting state is refused with that
// message, so no transaction slips past an approval that cannot be
// computed.  Reload() reads them again (after registering a workflow).
//
// A program must Attach after opening an engine whose file holds
// matrices: the automatic-approval rule is stored with the engine's rules
// and would otherwise approve empty chains without recording a request.
// (The Python engine attaches by itself when the file holds matrices.)
//
// Example:
//
//   auto approvals = crmflow::Approvals::Attach(engine.get()).value();
//   crmflow::ApprovalMatrix m;
//   m.kind = "sales_order";
//   m.request_state = "pending_approval";
//   m.approve_event = "approve";
//   m.reject_event = "reject";
//   m.bands = {
//       {"small", "amount <= 1000", {}},
//       {"medium", "amount <= 10000", {{"manager", {"mia"}}}},
//       {"large", "true",
//        {{"manager", {"mia"}},
//         {"director", {"dan", "dora"}, "", crmflow::ApprovalMode::kFirst}}},
//   };
//   CRMFLOW_RETURN_IF_ERROR(approvals->SetMatrix(m));
//   engine->Fire("SO-1", "submit", {});      // opens a request
//   approvals->Approve("SO-1", {.actor = "mia"});
//
// An Approvals object is not thread-safe; use it from its engine's thread.
// It must be destroyed before its Engine (and its Router); its hooks do
// nothing once it is gone.

#ifndef CRMFLOW_APPROVALS_H_
#define CRMFLOW_APPROVALS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/engine.h"
#include "crmflow/expr.h"
#include "crmflow/status.h"
#include "crmflow/value.h"
#include "crmflow/workflow.h"

namespace crmflow {

class Router;

// How a step's approvers decide it.
enum class ApprovalMode {
  kUnanimous = 0,  // all approvers must approve
  kFirst,          // the first response decides
};

// Returns "unanimous" or "first".
const char* ApprovalModeName(ApprovalMode mode);
// Parses "unanimous" or "first"; fails with kInvalidArgument naming the
// text.
StatusOr<ApprovalMode> ParseApprovalMode(std::string_view name);

// One step of a chain.  Exactly one of `approvers` and `team` is given.
struct ApprovalStep {
  std::string name;                    // e.g. "manager"; required
  std::vector<std::string> approvers;  // actor ids, unique, not blank
  std::string team;  // a Router team; its available members approve
  ApprovalMode mode = ApprovalMode::kUnanimous;
};

// One band of a matrix.
struct ApprovalBand {
  std::string name;       // unique within the matrix; required
  // An expression of expr.h; required, "true" matches everything (a
  // blank one is refused: it would silently catch every transaction).
  std::string condition;
  std::vector<ApprovalStep> steps;  // empty: approved automatically
};

// The approval matrix of one kind.
struct ApprovalMatrix {
  std::string kind;
  std::string request_state;  // entering it opens a request
  std::string approve_event;  // fired when the chain completes
  std::string reject_event;   // fired on a rejection
  std::vector<ApprovalBand> bands;  // first match wins
};

// The chain a matrix gives one set of attributes.
struct ApprovalChain {
  int band = -1;  // index into bands
  std::string band_name;
  std::vector<ApprovalStep> steps;
};

// A matrix whose conditions are parsed.  Immutable; copies share the
// parsed expressions.
class CompiledMatrix {
 public:
  // Checks `matrix` on its own (names, modes, approvers) and parses its
  // conditions against `schema`.  Fails with kInvalidArgument or
  // kParseError, the message naming the matrix, the band and the column,
  // e.g. `approval matrix "sales_order": band 2 ("medium"): column 1:
  // unknown name "amout" (known: amount, tier)`.
  static StatusOr<CompiledMatrix> Compile(ApprovalMatrix matrix,
                                          const ExprSchema& schema);
  // As Compile with the schema of `workflow`'s attributes, and checks the
  // attachment: the state and both events exist and both events leave
  // the requesting state (kValidationError naming what is wrong and what
  // exists).
  static StatusOr<CompiledMatrix> ForWorkflow(ApprovalMatrix matrix,
                                              const Workflow& workflow);

  // Returns the chain for `attributes` (the first band whose condition
  // holds; null reads count as false), or kNotFound naming the values
  // read when no band matches, or an evaluation error (kInvalidArgument)
  // naming the band.
  StatusOr<ApprovalChain> Chain(const Attributes& attributes) const;
  // As Chain, also passing the transaction's id, state and kind to the
  // conditions (txn.id, txn.state, txn.kind).
  StatusOr<ApprovalChain> ChainFor(const Transaction& txn) const;

  const ApprovalMatrix& matrix() const { return *matrix_; }

 private:
  StatusOr<ApprovalChain> Select(const EvalContext& ctx) const;

  std::shared_ptr<const ApprovalMatrix> matrix_;
  std::shared_ptr<const std::vector<Expression>> conditions_;
};

// Thrown by the entry hook (inside Engine::Fire) when a request cannot be
// opened; the Fire has rolled back when it reaches the caller.
class ApprovalError : public std::runtime_error {
 public:
  explicit ApprovalError(Status status)
      : std::runtime_error(status.ToString()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

// One approval request as stored.
struct ApprovalRequest {
  int64_t id = 0;  // increasing
  std::string transaction_id;
  std::string kind;
  int band = -1;
  std::string band_name;
  std::string status;  // "open", "approved", "rejected" or "cancelled"
  int current_step = 0;  // index of the step waiting; == steps when done
  std::vector<ApprovalStep> steps;
  Timestamp opened_at;
  std::optional<Timestamp> closed_at;
  std::string outcome_event;  // the event that closed it; "" while open
  bool automatic = false;     // closed by an empty chain
};

// One decision as stored.
struct ApprovalDecision {
  int64_t id = 0;  // increasing
  int64_t request_id = 0;
  std::string transaction_id;
  int step = 0;
  std::string step_name;
  std::string actor;         // who decided
  std::string on_behalf_of;  // the approver a substitute stood for; ""
  std::string decision;      // "approve" or "reject"
  Timestamp time;
  std::string comment;
};

// One delegation window [starts_at, ends_at).
struct Delegation {
  int64_t id = 0;
  std::string actor;
  std::string substitute;
  Timestamp starts_at;
  Timestamp ends_at;
  Timestamp created_at;
};

// One step waiting for one actor.
struct PendingStep {
  int64_t request_id = 0;
  std::string transaction_id;
  std::string kind;
  int step = 0;
  std::string step_name;
  std::string mode;
  std::string actor;         // the actor asked
  std::string on_behalf_of;  // the approver it would stand for; ""
  Timestamp opened_at;
};

// Options of one Approve or Reject call.
struct DecisionOptions {
  std::string actor;  // required
  // The approver the actor decides for, as a substitute; "" picks the
  // actor itself when it is an approver of the step, else the first
  // approver (in step order) who delegated to it and has not decided.
  std::string on_behalf_of;
  // Default: the engine's clock.  Not before the request was opened.
  std::optional<Timestamp> time;
  std::string comment;
};

// What one decision did.
struct DecisionResult {
  int64_t decision_id = 0;
  int64_t request_id = 0;
  std::string status;        // the request's status afterwards
  int current_step = 0;      // afterwards
  std::string fired_event;   // "" when the chain goes on
  std::string state;         // the transaction's state afterwards
  std::string on_behalf_of;  // as recorded
};

class Approvals {
 public:
  // Attaches to `engine` (not owned; must outlive the object), creating
  // the tables when absent and loading the stored matrices (see the file
  // comment; one that does not validate is reported by Problems(), not
  // by a failure here).  `router` (optional, not owned, must outlive
  // the object) resolves team approvers; without one a step naming a team
  // fails when it is used.  Fails with kStoreError naming the table.
  static StatusOr<std::unique_ptr<Approvals>> Attach(Engine* engine,
                                                     Router* router = nullptr);
  ~Approvals();

  // Sets (nullptr: clears) the router that resolves team approvers; not
  // owned, must outlive the object.
  void set_router(Router* router);

  // Validates `matrix` against its kind's registered workflow (see
  // CompiledMatrix::ForWorkflow), stores it with its automatic-approval
  // rules in one store transaction and installs it, replacing the kind's
  // previous matrix; requests already open keep their chains.  Fails with
  // kNotFound (kind not registered), kValidationError, kParseError,
  // kInvalidArgument (a team unknown to the router), kStoreError.
  Status SetMatrix(ApprovalMatrix matrix);
  // Returns the kind's matrix, or kNotFound.
  StatusOr<CompiledMatrix> Matrix(std::string_view kind) const;
  // Removes the kind's matrix (stored rows, automatic-approval rules);
  // open requests stay open and keep their chains.  Fails with kNotFound
  // (naming the kinds that have one) or kStoreError.
  Status RemoveMatrix(std::string_view kind);
  // Returns the stored matrices, by kind, valid or not; rows that do not
  // make a matrix (an unknown mode) are left out (Problems() names them).
  StatusOr<std::vector<ApprovalMatrix>> StoredMatrices();
  // Reads the stored matrices again and validates them against the
  // registered workflows (see the file comment).  Fails with kStoreError.
  Status Reload();
  // Returns one message per stored matrix that does not validate, e.g.
  // `approval matrix "sales_order": band 2 ("medium"): column 1: unknown
  // name "amout" (known: amount, tier)`; empty when all are fine.
  std::vector<std::string> Problems() const;
  // Returns true when the engine's SQLite file holds a stored matrix
  // (false for the memory store and a file without approvals).
  static bool HasStoredMatrices(Engine* engine);

  // Record a decision on the open request of `txn_id`.  Fail with
  // kNotFound (unknown transaction, no open request; the state named is
  // the one read under the write lock, after any other process's
  // decision), kNotAllowed (the actor is not an approver of the current
  // step, nor a substitute of one; or the actor already voted at this
  // step in another capacity: names transaction, step, actor and the
  // approver), kAlreadyExists (the approver already decided this step),
  // kInvalidArgument (empty actor, non-UTF-8 text, a time before the
  // request was opened or outside years 0001 to 9999, naming both times),
  // or whatever the fired event fails with; Engine exceptions from
  // callbacks propagate.  Nothing is written on failure.
  StatusOr<DecisionResult> Approve(std::string_view txn_id,
                                   const DecisionOptions& options);
  StatusOr<DecisionResult> Reject(std::string_view txn_id,
                                  const DecisionOptions& options);

  // Lets `substitute` decide for `actor` during [start, end).  Returns the
  // delegation's id, never one given before.  Fails with kInvalidArgument
  // (empty names, self delegation, end <= start, a time outside years
  // 0001 to 9999) or kAlreadyExists (overlaps another window of `actor`,
  // naming it).
  StatusOr<int64_t> Delegate(std::string_view actor,
                             std::string_view substitute, Timestamp start,
                             Timestamp end);
  // Removes delegation `id`; fails with kNotFound.
  Status RemoveDelegation(int64_t id);
  // Returns the delegations, by id; `actor` "" for all.
  StatusOr<std::vector<Delegation>> Delegations(std::string_view actor);

  // Returns the open requests, by id; `kind` "" for all.
  StatusOr<std::vector<ApprovalRequest>> OpenRequests(std::string_view kind);
  // Returns every request of `txn_id` ("" for all), by id.
  StatusOr<std::vector<ApprovalRequest>> Requests(std::string_view txn_id);
  // Returns the decisions of `txn_id` ("" for all), by id.
  StatusOr<std::vector<ApprovalDecision>> Decisions(std::string_view txn_id);
  // Returns the current steps `actor` may decide at `at` (default: the
  // engine's clock): as an approver who has not decided, and as a
  // substitute of such an approver.  By request id.
  StatusOr<std::vector<PendingStep>> Pending(std::string_view actor,
                                             std::optional<Timestamp> at);

 private:
  Approvals(Engine* engine, Router* router);
  struct Impl;
  StatusOr<DecisionResult> Decide(std::string_view txn_id,
                                  const DecisionOptions& options,
                                  bool approve);

  std::shared_ptr<Impl> impl_;
};

}  // namespace crmflow

#endif  // CRMFLOW_APPROVALS_H_
