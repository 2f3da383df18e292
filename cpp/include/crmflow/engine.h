// engine.h: creates CRM transactions and fires events on them.
//
// An Engine owns a Store and the registered Workflows (one per kind).  It is
// the only writer of transaction state: every accepted transition updates
// the transaction and appends a history row inside one store transaction,
// and a refused or failed call (event not allowed, guard refusal, callback
// exception, store failure) leaves nothing behind, in memory or on disk.
//
// Firing an event on a transaction in state S:
//   1. the candidates for (S, event) are tried in declaration order; for
//      each, its guards run left to right and stop at the first refusal;
//      the first candidate whose guards all pass wins;
//   2. for an external transition: exit hooks of S, the transition's
//      actions, entry hooks of the target; for an internal one: only the
//      actions;
//   3. the new state, version + 1 and the history row are written.
// Hooks and actions run before the write, inside the store transaction, so
// an exception thrown by one rolls everything back.  Exceptions thrown by
// callbacks propagate out of Fire/Create unchanged after the rollback.
//
// Example:
//
//   auto engine = crmflow::Engine::Open({.path = "crm.db"}).value();
//   engine->Register(std::move(workflow), definition_json);
//   crmflow::CreateRequest req;
//   req.kind = "sales_order";
//   req.id = "SO-1";
//   engine->Create(req);
//   auto r = engine->Fire("SO-1", "submit", {});
//   if (!r.ok()) std::cerr << r.status().ToString() << "\n";
//
// An Engine is not thread-safe: use one per thread, or serialize calls.
// Several engines (in several processes) may share one SQLite file.

#ifndef CRMFLOW_ENGINE_H_
#define CRMFLOW_ENGINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/numbering.h"
#include "crmflow/rules.h"
#include "crmflow/status.h"
#include "crmflow/store.h"
#include "crmflow/value.h"
#include "crmflow/workflow.h"

namespace crmflow {

// What a guard, hook or action sees.  References are valid only during the
// call.
struct CallContext {
  const Transaction& txn;    // the transaction before the transition
  const Workflow& workflow;
  std::string_view event;
  std::string_view from_state;
  std::string_view to_state;
  Timestamp time;
  std::string_view actor;
  std::string_view payload;  // JSON text or ""
};

// Returns true to allow; on false may set *reason (shown to the caller).
using GuardFn = std::function<bool(const CallContext&, std::string* reason)>;
// Hooks and actions.  May throw; see the file comment.
using HookFn = std::function<void(const CallContext&)>;
// Returns the current time; injected so replays and tests never depend on
// the wall clock.
using ClockFn = std::function<Timestamp()>;

struct EngineOptions {
  // "" keeps everything in memory (NewMemoryStore); ":memory:" is an
  // in-memory SQLite database; anything else is a SQLite file path.
  std::string path;
  // Default: the system clock.
  ClockFn clock;
  SqliteOptions sqlite;
};

struct CreateRequest {
  std::string kind;
  std::string id;           // unique across kinds; "" issues the kind's
                            // next number (see SetNumbering)
  std::string customer_id;  // optional
  std::string parent_id;    // optional link; its customer is inherited
                            // when customer_id is empty
  Attributes attributes;    // checked against the declared attributes
  std::optional<Timestamp> time;  // default: the clock
  std::string actor;
  std::string source;  // import key; "" for none
};

struct FireOptions {
  std::optional<Timestamp> time;  // default: the clock
  std::string actor;
  std::string payload;  // JSON text, stored verbatim
  // When set, the call fails with kConcurrentUpdate unless the stored
  // version equals it (a write from a stale copy).
  std::optional<int64_t> expected_version;
  std::string source;  // import key; "" for none
};

// What an accepted Fire returns.  Kept small on purpose: Fire is the hot
// path, so it copies neither the attributes nor the history row; call Get or
// History for those.
//
// `state` and `version` describe the transaction when the call ends, as Get
// would read it: when rules run by the transition fire further events on it
// (an automatic approval, a follow-up step), that is the state the last of
// them entered, not the one this transition entered.  `seq` and `internal`
// describe this call's own transition.
struct FireResult {
  // The transaction's state after the call: a view of the registered
  // workflow's state name (no copy), valid until that kind is registered
  // again or the engine is destroyed.  Copy it to keep it longer.
  std::string_view state;
  int64_t version = 0;  // the transaction's version after the call
  int64_t seq = 0;      // the history row of this call's own transition
  bool internal = false;  // whether that transition was internal
};

// One event of a batch replay.
struct ReplayEvent {
  std::string transaction_id;
  std::string event;
  Timestamp time;
  std::string actor;
  std::string payload;
  std::string source;
};

// The same by reference, for callers that hold the text elsewhere (the
// Python binding points into the str objects): the views must stay valid
// until Replay returns.
struct ReplayEventRef {
  std::string_view transaction_id;
  std::string_view event;
  Timestamp time;
  std::string_view actor;
  std::string_view payload;
  std::string_view source;
};

// The same as columns, for callers that hold each field as an array (the
// Python binding, numpy or Arrow data): event i is (ids[i], events[i],
// times[i], ...).  ids, events and times have one entry per event; an empty
// actors, payloads or sources span means "" for every event, otherwise it
// has one entry per event too.  Views must stay valid until Replay returns.
// Costs 40 bytes per event instead of ReplayEventRef's 104, and repeated
// texts are best passed as the same view (same pointer): the engine then
// recognises a case's next event without comparing its id.
struct ReplayColumns {
  std::span<const std::string_view> ids;
  std::span<const std::string_view> events;
  std::span<const int64_t> times;  // Timestamp::micros
  std::span<const std::string_view> actors;
  std::span<const std::string_view> payloads;
  std::span<const std::string_view> sources;
};

struct ReplayOptions {
  // Commit after this many events; 0 = one transaction for the whole batch.
  int64_t commit_every = 0;
  // true: an event not allowed (or refused by a guard) is recorded as a
  // deviation and the batch goes on; false: the batch stops with the error
  // and the uncommitted part is rolled back.
  bool record_deviations = true;
};

struct ReplaySummary {
  int64_t applied = 0;
  int64_t deviations = 0;
  int64_t skipped = 0;  // source already present (re-import)
};

// Lifecycle figures of one kind, computed from the history.
struct KindReport {
  struct TransitionStat {
    std::string from_state;
    std::string to_state;
    std::string event;
    int64_t count = 0;
    // Time spent in from_state before this transition, in seconds.
    double median_seconds = 0;
    double p90_seconds = 0;
  };
  std::string kind;
  int64_t transactions = 0;
  std::map<std::string, int64_t> by_state;  // current state -> count
  std::map<std::string, int64_t> reached;   // state -> cases ever in it
  std::vector<TransitionStat> transitions;  // ordered by count desc, names
  int64_t deviations = 0;
};

class Engine {
 public:
  // Opens the store named by options.path.  Fails with kStoreError naming
  // the path.
  static StatusOr<std::unique_ptr<Engine>> Open(EngineOptions options);
  ~Engine();

  // Registers `workflow` for its kind (workflow.name()).  Fails with
  // kValidationError listing the problems, or kAlreadyExists when a
  // different version... of the same kind is registered: re-registering the
  // same kind replaces it only with a higher version.  `definition` (JSON)
  // is saved in the workflows table.
  Status Register(Workflow workflow, std::string definition);
  // Returns the workflow of `kind`, or nullptr.
  const Workflow* FindWorkflow(std::string_view kind) const;
  std::vector<std::string> kinds() const;
  StatusOr<std::vector<StoredWorkflow>> StoredWorkflows();

  // Callbacks by name; registering a name twice replaces it.  A transition
  // naming an unregistered guard or action fails at Fire with kNotFound.
  void RegisterGuard(std::string name, GuardFn fn);
  void RegisterAction(std::string name, HookFn fn);
  // Hooks run on entering / leaving `state` of `kind`; "*" matches any
  // state.  Several hooks run in registration order.
  void OnEnter(std::string kind, std::string state, HookFn fn);
  void OnExit(std::string kind, std::string state, HookFn fn);
  // Drops every callback (used before the binding's interpreter goes).
  void ClearCallbacks();

  // Creates a transaction in its kind's initial state and writes the
  // creation history row; returns the transaction when the call ends
  // (rules on "created" may have moved it on).  Fails with kNotFound
  // (unknown kind), kAlreadyExists (id taken), kInvalidArgument (undeclared
  // or mistyped attribute, missing required one, non-UTF-8 text).
  StatusOr<Transaction> Create(const CreateRequest& request);

  // Fires `event` on transaction `id`; see FireResult for what the result
  // describes when rules fire further events.  Fails with kNotFound
  // (unknown id), kNotAllowed (message names the transaction, its state,
  // the event and the events allowed there), kGuardRefused (names the guard
  // and its reason), kConcurrentUpdate, kStoreError.
  StatusOr<FireResult> Fire(std::string_view id, std::string_view event,
                            const FireOptions& options);

  // Returns the events that could be fired on `id` now (ignoring guards).
  StatusOr<std::vector<std::string>> AllowedEvents(std::string_view id);

  // Changes attributes (not the state) if the stored version equals
  // expected_version; bumps the version.  Returns the transaction when the
  // call ends (rules on "changed" may have changed it further).
  StatusOr<Transaction> SetAttributes(std::string_view id,
                                      const Attributes& attributes,
                                      int64_t expected_version);

  StatusOr<Transaction> Get(std::string_view id);
  StatusOr<std::vector<Transaction>> List(std::string_view kind,
                                          std::string_view state);
  StatusOr<std::vector<HistoryRow>> History(const HistoryQuery& query);
  StatusOr<std::vector<Deviation>> Deviations(std::string_view kind);

  // Records a deviation (used by importers and Replay).
  Status RecordDeviation(const Deviation& deviation);

  // Fires a batch of events in order; see ReplayOptions.
  StatusOr<ReplaySummary> Replay(const std::vector<ReplayEvent>& events,
                                 const ReplayOptions& options);
  StatusOr<ReplaySummary> Replay(std::span<const ReplayEventRef> events,
                                 const ReplayOptions& options);
  // Fails with kInvalidArgument when the columns differ in length.
  StatusOr<ReplaySummary> Replay(const ReplayColumns& events,
                                 const ReplayOptions& options);

  // Explicit outer transaction: everything between Begin and Commit is one
  // store transaction (grouped commits); Rollback undoes all of it.
  Status Begin();
  Status Commit();
  Status Rollback();

  // Numbering (numbering.h): Create with an empty id issues the kind's
  // next number.  SetNumbering saves the format in the store (so another
  // engine on the same file, or this one reopened, uses it); SetCounter
  // seeds the last number issued (period: 0, or the year with
  // yearly_reset); Counter reads it.  Fail with kInvalidArgument (bad
  // format, zone or number) or kStoreError.
  Status SetNumbering(const NumberingSpec& spec);
  StatusOr<std::optional<NumberingSpec>> GetNumbering(std::string_view kind);
  Status SetCounter(std::string_view kind, int64_t last, int64_t period = 0);
  StatusOr<int64_t> Counter(std::string_view kind, int64_t period = 0);

  // Rules (rules.h): stored in the store, loaded by Open; their agenda
  // runs inside the store transaction of the Create, Fire or SetAttributes
  // that triggered it, so a failing rule rolls the whole change back.
  // Kinds with enabled rules never take the memory store's fast path.
  RuleSet& rules() { return *rules_; }

  // Lifecycle report per registered kind that has transactions.
  StatusOr<std::vector<KindReport>> Report();

  Store& store() { return *store_; }
  Timestamp Now() const;

 private:
  Engine(std::unique_ptr<Store> store, ClockFn clock);
  struct Callbacks;

  std::unique_ptr<Store> store_;
  ClockFn clock_;
  std::map<std::string, Workflow, std::less<>> workflows_;
  std::unique_ptr<Callbacks> callbacks_;
  // Per-kind formats and counters; used by Create only, so the fast path
  // of Fire is unaffected.
  std::unique_ptr<Numbering> numbering_;
  // Rules and their agenda; hooked into Create, Fire and SetAttributes.
  std::unique_ptr<RuleSet> rules_;
};

}  // namespace crmflow

#endif  // CRMFLOW_ENGINE_H_
