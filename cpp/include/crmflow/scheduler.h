// scheduler.h: SLA policies, durable timers and escalation ladders on top
// of an Engine.
//
// A Scheduler is attached to one Engine.  It holds SLA policies (per kind,
// with an attribute condition such as {priority: "1 - Critical"}), each an
// SlaPolicy (target, calendar, paused / met / start states) plus an
// escalation ladder: steps at shares of the target (0.75, 1.0) whose
// actions fire an event, set an attribute (reassign, raise priority) or
// write a notification into the outbox for other systems to deliver.
//
// Every state change of a transaction of a policy's kind runs an entry
// hook inside the engine's store transaction: the scheduler evaluates the
// SLA clock (SlaClock::Evaluate over the stored history plus the new
// state) and arms, moves or cancels the transaction's timers, so its rows
// commit or roll back with the transition.  Each policy has one timer per
// step and cycle: step 0 is the breach (share 1.0, an sla_events row
// "breach", running the actions of the ladder's steps at share 1.0), steps
// 1..n are the ladder's other steps in order (rows "threshold").  A
// running clock has its unreached steps pending at their projected
// instants; a paused or stopped clock has them cancelled (re-armed when it
// runs again); a step that fired is never touched again.
//
// Tick(now) processes the pending timers with due_at <= now in due order,
// each in its own store transaction: it re-evaluates the clock at now;
// when the step is not reached (the reason has passed: resolved in time,
// paused, policy no longer matching) the timer is moved or cancelled,
// otherwise it is marked fired and its actions run, all committed
// together.  Actions that change the state re-arm timers through the hook;
// Tick goes on until no timer is due.  Timers of a policy the scheduler
// does not know (not added in this process) are left pending.  The unique
// key (transaction_id, policy, step, cycle) makes a step fire once per SLA
// cycle, across restarts and after downtime (a step due many times over
// collapses into one firing).  The SLA clock never restarts (see sla.h: a
// reopen resumes it), so every timer has cycle 1 for now.
//
// Tables (created with CREATE TABLE IF NOT EXISTS in the engine's SQLite
// file; with the memory store, in a private in-memory SQLite database that
// lives as long as the scheduler, outside the engine's transactions):
//
//   timers(id INTEGER PRIMARY KEY, transaction_id TEXT, policy TEXT, step
//          INTEGER, due_at TEXT (ISO UTC), cycle INTEGER, state TEXT
//          (pending, fired, cancelled, failed), fired_at TEXT NULL,
//          UNIQUE (transaction_id, policy, step, cycle)); index on
//          (state, due_at)
//   sla_events(id INTEGER PRIMARY KEY, time TEXT (the instant reached),
//          recorded_at TEXT, transaction_id TEXT, policy TEXT, step
//          INTEGER, cycle INTEGER, kind TEXT (breach, threshold, failed),
//          share REAL, detail TEXT)
//   outbox(id INTEGER PRIMARY KEY, time TEXT, transaction_id TEXT, channel
//          TEXT, recipient TEXT, subject TEXT, body TEXT (JSON), policy
//          TEXT, step INTEGER)
//
// Example:
//
//   auto sched = Scheduler::Attach(*engine).value();
//   ServicePolicy p;
//   p.name = "time_to_own";
//   p.kind = "service_request";
//   p.sla.target = Duration{3600000000LL};
//   p.sla.met_states = {"in_progress", "resolved", "closed"};
//   EscalationStep breach;
//   breach.share = 1.0;
//   breach.actions = {EscalationAction::Notify("email", "supervisor",
//                                              "sla breached"),
//                     EscalationAction::SetAttribute("assignment_group",
//                                                    Value::Text("L2"))};
//   p.escalation = {breach};
//   CRMFLOW_RETURN_IF_ERROR(sched->AddPolicy(p));
//   auto summary = sched->Tick(engine->Now());
//
// A Scheduler is not thread-safe, like its Engine; it must be destroyed
// before the Engine (its hooks are disabled when it goes).

#ifndef CRMFLOW_SCHEDULER_H_
#define CRMFLOW_SCHEDULER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/engine.h"
#include "crmflow/sla.h"
#include "crmflow/status.h"
#include "crmflow/value.h"

namespace crmflow {

// One thing an escalation step does.
struct EscalationAction {
  enum class Kind { kFireEvent, kSetAttribute, kNotify };
  Kind kind = Kind::kNotify;
  // kFireEvent: the event fired on the transaction.
  std::string event;
  // kSetAttribute: the attribute and its new value.
  std::string attribute;
  Value value;
  // kNotify: an outbox row.  A recipient "@name" is read from the
  // transaction's attribute `name`.
  std::string channel;
  std::string recipient;
  std::string subject;

  // Returns a kFireEvent action.
  static EscalationAction FireEvent(std::string event);
  // Returns a kSetAttribute action.
  static EscalationAction SetAttribute(std::string attribute, Value value);
  // Returns a kNotify action.
  static EscalationAction Notify(std::string channel, std::string recipient,
                                 std::string subject);
};

// A rung of an escalation ladder: at `share` of the target, run `actions`
// in order (all or nothing).
struct EscalationStep {
  double share = 1.0;
  std::vector<EscalationAction> actions;
};

// An SLA policy of a kind.
struct ServicePolicy {
  // Unique among the scheduler's policies; also sla.name when that is
  // empty.
  std::string name;
  // The kind it applies to.
  std::string kind;
  // Attribute equality: the policy applies to a transaction whose
  // attributes have these values (compared as Value::ToText).  Empty:
  // every transaction of the kind.
  std::map<std::string, std::string> condition;
  // Target, calendar and states (its escalation_shares are ignored: the
  // ladder below gives them).
  SlaPolicy sla;
  // The ladder, any order of shares.
  std::vector<EscalationStep> escalation;
};

// When the scheduler changes `attribute` (an escalation's reassignment, or
// Scheduler::SetAttributes), it writes an outbox row to the new value:
// channel `channel`, recipient the new value, subject `subject`.  This is
// the only notice for the new assignee, so an escalation that reassigns
// needs no notification of its own.
struct AssignmentNotice {
  std::string attribute = "assignment_group";
  std::string channel = "group";
  std::string subject = "assigned";
};

// The status of one policy on one transaction.
struct PolicyStatus {
  std::string policy;
  std::string transaction_id;
  SlaStatus status;
};

// A row of the timers table.
struct TimerRow {
  int64_t id = 0;
  std::string transaction_id;
  std::string policy;
  int step = 0;
  Timestamp due_at;
  int cycle = 1;
  std::string state;  // pending, fired, cancelled, failed
  std::optional<Timestamp> fired_at;
};

// A row of the sla_events table.
struct SlaEventRow {
  int64_t id = 0;
  Timestamp time;         // the instant the threshold was reached
  Timestamp recorded_at;  // the tick that recorded it
  std::string transaction_id;
  std::string policy;
  int step = 0;
  int cycle = 1;
  std::string kind;  // breach, threshold, failed
  double share = 0;
  std::string detail;
};

// A row of the outbox table.
struct OutboxRow {
  int64_t id = 0;
  Timestamp time;
  std::string transaction_id;
  std::string channel;
  std::string recipient;
  std::string subject;
  std::string body;  // JSON object
  std::string policy;
  int step = 0;  // -1 for an assignment notice
};

// A timer for ArmTimers, the bulk path (imports, benchmarks).
struct TimerSpec {
  std::string transaction_id;
  std::string policy;
  int step = 0;
  Timestamp due_at;
};

// What a Tick did.
struct TickSummary {
  int64_t fired = 0;      // timers fired (their actions ran)
  int64_t cancelled = 0;  // due timers whose reason had passed
  int64_t moved = 0;      // due timers re-armed later (clock moved)
  int64_t failed = 0;     // timers whose actions failed (rolled back)
};

class Scheduler {
 public:
  // Attaches a scheduler to `engine`, creating its tables.  Fails with
  // kStoreError when they cannot be created.  `engine` must outlive it.
  static StatusOr<std::unique_ptr<Scheduler>> Attach(Engine& engine);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Adds a policy.  Fails with kInvalidArgument naming it for an empty or
  // duplicate name, an empty kind, an SLA the clock refuses (target not
  // positive, state both paused and met) or a share not positive and
  // finite.  Transactions already stored are armed by Sync, not here.
  Status AddPolicy(ServicePolicy policy);
  // Returns the policies in the order added.
  const std::vector<ServicePolicy>& policies() const;

  // Adds an assignment notice (see AssignmentNotice).
  void NotifyOnAssignment(AssignmentNotice notice);

  // Re-evaluates `id` at the engine's clock and re-arms its timers (after
  // an import or a policy change).  Fails with kNotFound for an unknown id.
  Status Sync(std::string_view id);
  // The same for every transaction of the policies' kinds, in one store
  // transaction; returns how many transactions were visited.
  StatusOr<int64_t> SyncAll();

  // Processes the timers due at `now` (see the file comment).  Fails with
  // kStoreError when the store fails; the timers processed before stay.
  StatusOr<TickSummary> Tick(Timestamp now);

  // Returns the status of every policy that applies to `id`, at `now`
  // (default: the engine's clock).  Fails with kNotFound for an unknown id.
  StatusOr<std::vector<PolicyStatus>> StatusOf(
      std::string_view id, std::optional<Timestamp> now = std::nullopt);
  // Returns the statuses of every transaction of `kind` ("" = all kinds
  // with policies), ordered by transaction id and policy, reading the
  // history once.
  StatusOr<std::vector<PolicyStatus>> StatusAll(
      std::string_view kind, std::optional<Timestamp> now = std::nullopt);

  // Changes attributes through the engine and writes the assignment
  // notices for the attributes that changed; then re-arms the timers (a
  // raised priority may select another policy).
  StatusOr<Transaction> SetAttributes(std::string_view id,
                                      const Attributes& attributes,
                                      int64_t expected_version);

  // Inserts timers as pending in one transaction, ignoring those whose key
  // exists; returns how many were inserted.  The policies and
  // transactions are checked when the timers come due.
  StatusOr<int64_t> ArmTimers(const std::vector<TimerSpec>& timers);

  // Reads the tables; `transaction_id` "" means all rows.  Ordered by id.
  StatusOr<std::vector<TimerRow>> Timers(std::string_view transaction_id);
  StatusOr<std::vector<SlaEventRow>> Events(std::string_view transaction_id);
  StatusOr<std::vector<OutboxRow>> Outbox(std::string_view transaction_id);
  // Returns how many timers are pending.
  StatusOr<int64_t> PendingCount();

 private:
  struct Impl;
  explicit Scheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace crmflow

#endif  // CRMFLOW_SCHEDULER_H_
