// scheduler.cc: SLA policies, durable timers and escalations (see
// scheduler.h).  The tables live in the engine's SQLite file so that timer
// rows commit with the transitions that arm them; with the memory store a
// private in-memory database holds them.

#include "crmflow/scheduler.h"

#include <sqlite3.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "sqlite_handle.h"
#include "sql_statement.h"

namespace crmflow {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS timers(
  id INTEGER PRIMARY KEY,
  transaction_id TEXT NOT NULL,
  policy TEXT NOT NULL,
  step INTEGER NOT NULL,
  due_at TEXT NOT NULL,
  cycle INTEGER NOT NULL DEFAULT 1,
  state TEXT NOT NULL DEFAULT 'pending',
  fired_at TEXT NULL,
  UNIQUE (transaction_id, policy, step, cycle));
CREATE INDEX IF NOT EXISTS timers_due ON timers(state, due_at);
CREATE TABLE IF NOT EXISTS sla_events(
  id INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  transaction_id TEXT NOT NULL,
  policy TEXT NOT NULL,
  step INTEGER NOT NULL,
  cycle INTEGER NOT NULL,
  kind TEXT NOT NULL,
  share REAL NOT NULL,
  detail TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS sla_events_txn ON sla_events(transaction_id);
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  transaction_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  recipient TEXT NOT NULL,
  subject TEXT NOT NULL,
  body TEXT NOT NULL,
  policy TEXT NOT NULL,
  step INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_txn ON outbox(transaction_id);
)sql";

constexpr char kUpsertTimer[] =
    "INSERT INTO timers(transaction_id, policy, step, due_at, cycle, state) "
    "VALUES(?1, ?2, ?3, ?4, 1, 'pending') "
    "ON CONFLICT(transaction_id, policy, step, cycle) DO UPDATE SET "
    "due_at = excluded.due_at, state = 'pending' "
    "WHERE timers.state IN ('pending', 'cancelled') "
    "AND (timers.state <> 'pending' OR timers.due_at <> excluded.due_at)";
constexpr char kCancelTimer[] =
    "UPDATE timers SET state = 'cancelled' WHERE transaction_id = ?1 AND "
    "policy = ?2 AND step = ?3 AND cycle = 1 AND state = 'pending'";
// The next due timer after the cursor (?2, ?3) in (due_at, id) order.
constexpr char kNextDue[] =
    "SELECT id, transaction_id, policy, step, due_at FROM timers "
    "WHERE state = 'pending' AND due_at <= ?1 AND (due_at, id) > (?2, ?3) "
    "ORDER BY due_at, id LIMIT 1";
// The same timer re-read under the write lock (another process may have
// processed it since NextDue read it).
constexpr char kStillDue[] =
    "SELECT due_at FROM timers WHERE id = ?1 AND state = 'pending' "
    "AND due_at <= ?2";
constexpr char kSetTimerState[] =
    "UPDATE timers SET state = ?2, fired_at = ?3 WHERE id = ?1";
constexpr char kMoveTimer[] = "UPDATE timers SET due_at = ?2 WHERE id = ?1";
constexpr char kInsertEvent[] =
    "INSERT INTO sla_events(time, recorded_at, transaction_id, policy, step, "
    "cycle, kind, share, detail) VALUES(?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8)";
constexpr char kInsertOutbox[] =
    "INSERT INTO outbox(time, transaction_id, channel, recipient, subject, "
    "body, policy, step) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr char kArmIgnore[] =
    "INSERT OR IGNORE INTO timers(transaction_id, policy, step, due_at, "
    "cycle, state) VALUES(?1, ?2, ?3, ?4, 1, 'pending')";

constexpr std::string_view kActor = "crmflow.sla";

// Appends `s` to `out` as a JSON string.
void JsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += "\"";
  return out;
}

// A prepared statement, reset and unbound on every Get.
class Statements {
 public:
  explicit Statements(sqlite3* db) : db_(db) {}
  ~Statements() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  }
  // Returns the statement for `sql` (a string literal: cached by address).
  sqlite3_stmt* Get(const char* sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      sqlite3_reset(it->second);
      sqlite3_clear_bindings(it->second);
      return it->second;
    }
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return nullptr;
    }
    cache_[sql] = stmt;
    return stmt;
  }

 private:
  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

void BindText(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()),
                    SQLITE_TRANSIENT);
}

std::string ColumnText(sqlite3_stmt* s, int i) {
  const unsigned char* p = sqlite3_column_text(s, i);
  return p == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(p),
                                    sqlite3_column_bytes(s, i));
}

Timestamp ColumnTime(sqlite3_stmt* s, int i) {
  auto t = Timestamp::ParseIso(ColumnText(s, i));
  return t.ok() ? *t : Timestamp{};
}

// Keeps the history non-decreasing in time: exports have rows whose time
// goes backwards (ServiceNow has one); the file order wins.
void AppendChange(std::vector<StateChange>* history, Timestamp at,
                  std::string state) {
  if (!history->empty() && at < history->back().at) at = history->back().at;
  history->push_back(StateChange{at, std::move(state)});
}

std::vector<StateChange> ToChanges(const std::vector<HistoryRow>& rows) {
  std::vector<StateChange> out;
  out.reserve(rows.size());
  for (const HistoryRow& r : rows) AppendChange(&out, r.time, r.to_state);
  return out;
}

}  // namespace

EscalationAction EscalationAction::FireEvent(std::string event) {
  EscalationAction a;
  a.kind = Kind::kFireEvent;
  a.event = std::move(event);
  return a;
}

EscalationAction EscalationAction::SetAttribute(std::string attribute,
                                                Value value) {
  EscalationAction a;
  a.kind = Kind::kSetAttribute;
  a.attribute = std::move(attribute);
  a.value = std::move(value);
  return a;
}

EscalationAction EscalationAction::Notify(std::string channel,
                                          std::string recipient,
                                          std::string subject) {
  EscalationAction a;
  a.kind = Kind::kNotify;
  a.channel = std::move(channel);
  a.recipient = std::move(recipient);
  a.subject = std::move(subject);
  return a;
}

struct Scheduler::Impl {
  Engine* engine = nullptr;
  sqlite3* db = nullptr;
  sqlite3* own_db = nullptr;  // the private database of a memory store
  std::unique_ptr<Statements> stmts;
  std::vector<ServicePolicy> policies;
  std::vector<SlaClock> clocks;  // shares: those of `steps`
  // Per policy: step 0 the breach (with the actions of the ladder's steps
  // at share 1.0), then the ladder's other steps in order.
  std::vector<std::vector<EscalationStep>> steps;
  std::unordered_map<std::string, size_t> by_name;
  std::vector<std::string> hooked_kinds;
  std::vector<AssignmentNotice> notices;
  // Hooks registered on the engine outlive the scheduler (the engine has
  // no way to drop one), so they check this flag.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  ~Impl() {
    *alive = false;
    stmts.reset();
    if (own_db != nullptr) sqlite3_close(own_db);
  }

  Status StoreError(std::string_view what) const {
    return Status(Code::kStoreError,
                  "scheduler: " + std::string(what) + " (" +
                      sqlite3_errmsg(db) + ")");
  }

  sqlite3_stmt* Prepare(const char* sql) { return stmts->Get(sql); }

  // Runs a statement that returns no rows.
  Status Run(sqlite3_stmt* s, std::string_view what) {
    if (s == nullptr) return StoreError(what);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return StoreError(what);
    return Status::Ok();
  }

  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      return Status(Code::kStoreError, "scheduler: " + msg);
    }
    return Status::Ok();
  }

  // One unit of work over the engine's store and, with a memory store, the
  // private database too.
  Status Begin() {
    CRMFLOW_RETURN_IF_ERROR(engine->Begin());
    if (own_db != nullptr) {
      Status s = Exec("SAVEPOINT crmflow_scheduler");
      if (!s.ok()) {
        (void)engine->Rollback();
        return s;
      }
    }
    return Status::Ok();
  }
  Status Commit() {
    if (own_db != nullptr) {
      CRMFLOW_RETURN_IF_ERROR(Exec("RELEASE crmflow_scheduler"));
    }
    return engine->Commit();
  }
  void Rollback() {
    if (own_db != nullptr) {
      (void)Exec("ROLLBACK TO crmflow_scheduler");
      (void)Exec("RELEASE crmflow_scheduler");
    }
    (void)engine->Rollback();
  }

  static bool Applies(const ServicePolicy& p, std::string_view kind,
                      const Attributes& attrs) {
    if (p.kind != kind) return false;
    for (const auto& [name, want] : p.condition) {
      const Value* v = FindAttribute(attrs, name);
      if (v == nullptr || v->ToText() != want) return false;
    }
    return true;
  }

  // Whether step `step` of an evaluated clock counts as reached: the breach
  // (step 0) only when the SLA was not met on time.
  static bool Reached(const SlaStatus& st, int step) {
    if (!st.thresholds[step].reached) return false;
    return step != 0 || st.state != SlaState::kMet;
  }

  Status CancelStep(std::string_view id, const std::string& policy,
                    int step) {
    sqlite3_stmt* s = Prepare(kCancelTimer);
    if (s == nullptr) return StoreError("cancel timer");
    BindText(s, 1, id);
    BindText(s, 2, policy);
    sqlite3_bind_int(s, 3, step);
    return Run(s, "cancel timer");
  }

  Status ArmStep(std::string_view id, const std::string& policy, int step,
                 Timestamp due) {
    // A due time past the last supported instant (9999-12-31T23:59:59.
    // 999999Z) is never reached: no timer, rather than one whose text
    // does not sort among the others.
    if (due.micros > Timestamp::kMaxMicros) {
      return CancelStep(id, policy, step);
    }
    sqlite3_stmt* s = Prepare(kUpsertTimer);
    if (s == nullptr) return StoreError("arm timer");
    BindText(s, 1, id);
    BindText(s, 2, policy);
    sqlite3_bind_int(s, 3, step);
    BindText(s, 4, due.ToIso());
    return Run(s, "arm timer");
  }

  // Arms, moves or cancels the timers of policy `pi` on `id` after the
  // clock was evaluated (st), or cancels them all when it does not apply.
  Status Arm(std::string_view id, size_t pi, const SlaStatus* st) {
    const ServicePolicy& p = policies[pi];
    int n = static_cast<int>(steps[pi].size());
    for (int step = 0; step < n; ++step) {
      if (st == nullptr) {
        CRMFLOW_RETURN_IF_ERROR(CancelStep(id, p.name, step));
        continue;
      }
      const SlaThreshold& th = st->thresholds[step];
      bool reached = Reached(*st, step);
      if (reached && th.at.has_value()) {
        // Reached but perhaps not fired yet (downtime): the next tick
        // fires it; a fired row is left alone by the upsert.
        CRMFLOW_RETURN_IF_ERROR(ArmStep(id, p.name, step, *th.at));
      } else if (!th.reached && st->state == SlaState::kRunning &&
                 th.at.has_value()) {
        CRMFLOW_RETURN_IF_ERROR(ArmStep(id, p.name, step, *th.at));
      } else {
        CRMFLOW_RETURN_IF_ERROR(CancelStep(id, p.name, step));
      }
    }
    return Status::Ok();
  }

  // Re-arms every policy of `txn`'s kind from `history` at `now`.
  Status ArmAll(const Transaction& txn,
                const std::vector<StateChange>& history, Timestamp now) {
    for (size_t pi = 0; pi < policies.size(); ++pi) {
      const ServicePolicy& p = policies[pi];
      if (p.kind != txn.kind) continue;
      if (!Applies(p, txn.kind, txn.attributes) || history.empty()) {
        CRMFLOW_RETURN_IF_ERROR(Arm(txn.id, pi, nullptr));
        continue;
      }
      auto st = clocks[pi].Evaluate(history, now);
      if (!st.ok()) {
        return Status(st.status().code(), "transaction " + Quote(txn.id) +
                                              ": " + st.status().message());
      }
      CRMFLOW_RETURN_IF_ERROR(Arm(txn.id, pi, &*st));
    }
    return Status::Ok();
  }

  StatusOr<std::vector<StateChange>> LoadHistory(std::string_view id) {
    HistoryQuery q;
    q.transaction_id = std::string(id);
    auto rows = engine->History(q);
    if (!rows.ok()) return rows.status();
    return ToChanges(*rows);
  }

  // Re-arms `id` at `now` inside the caller's unit of work.
  Status SyncLocked(std::string_view id, Timestamp now) {
    auto txn = engine->Get(id);
    if (!txn.ok()) return txn.status();
    auto history = LoadHistory(id);
    if (!history.ok()) return history.status();
    return ArmAll(*txn, *history, now);
  }

  // The entry hook: runs before the engine writes the new state.
  void OnChange(const CallContext& ctx) {
    std::vector<StateChange> history;
    if (ctx.event != "create") {
      auto loaded = LoadHistory(ctx.txn.id);
      if (!loaded.ok()) throw std::runtime_error(loaded.status().message());
      history = std::move(*loaded);
    }
    AppendChange(&history, ctx.time, std::string(ctx.to_state));
    Status s = ArmAll(ctx.txn, history, ctx.time);
    if (!s.ok()) throw std::runtime_error(s.message());
  }

  Status InsertOutbox(Timestamp time, std::string_view id,
                      std::string_view channel, std::string_view recipient,
                      std::string_view subject, const std::string& body,
                      std::string_view policy, int step) {
    sqlite3_stmt* s = Prepare(kInsertOutbox);
    if (s == nullptr) return StoreError("write outbox");
    BindText(s, 1, time.ToIso());
    BindText(s, 2, id);
    BindText(s, 3, channel);
    BindText(s, 4, recipient);
    BindText(s, 5, subject);
    BindText(s, 6, body);
    BindText(s, 7, policy);
    sqlite3_bind_int(s, 8, step);
    return Run(s, "write outbox");
  }

  Status InsertEvent(Timestamp time, Timestamp recorded, std::string_view id,
                     std::string_view policy, int step, std::string_view kind,
                     double share, std::string_view detail) {
    sqlite3_stmt* s = Prepare(kInsertEvent);
    if (s == nullptr) return StoreError("write sla event");
    BindText(s, 1, time.ToIso());
    BindText(s, 2, recorded.ToIso());
    BindText(s, 3, id);
    BindText(s, 4, policy);
    sqlite3_bind_int(s, 5, step);
    BindText(s, 6, kind);
    sqlite3_bind_double(s, 7, share);
    BindText(s, 8, detail);
    return Run(s, "write sla event");
  }

  // Writes the assignment notices for attributes that differ between
  // `before` and `after`.
  Status Notices(const Transaction& before, const Transaction& after,
                 Timestamp now) {
    for (const AssignmentNotice& n : notices) {
      const Value* a = FindAttribute(before.attributes, n.attribute);
      const Value* b = FindAttribute(after.attributes, n.attribute);
      std::string old_text = a == nullptr ? "" : a->ToText();
      std::string new_text = b == nullptr ? "" : b->ToText();
      if (new_text.empty() || old_text == new_text) continue;
      std::string body = "{\"transaction_id\":";
      JsonString(after.id, &body);
      body += ",\"attribute\":";
      JsonString(n.attribute, &body);
      body += ",\"from\":";
      JsonString(old_text, &body);
      body += ",\"to\":";
      JsonString(new_text, &body);
      body += "}";
      CRMFLOW_RETURN_IF_ERROR(InsertOutbox(now, after.id, n.channel,
                                           new_text, n.subject, body,
                                           "assignment", -1));
    }
    return Status::Ok();
  }

  // Changes attributes, writes the notices and re-arms, inside the caller's
  // unit of work.
  StatusOr<Transaction> SetAttributesLocked(std::string_view id,
                                            const Attributes& attrs,
                                            int64_t version, Timestamp now) {
    auto before = engine->Get(id);
    if (!before.ok()) return before.status();
    auto after = engine->SetAttributes(id, attrs, version);
    if (!after.ok()) return after.status();
    CRMFLOW_RETURN_IF_ERROR(Notices(*before, *after, now));
    CRMFLOW_RETURN_IF_ERROR(SyncLocked(id, now));
    return after;
  }

  // Runs the actions of step `step` of policy `pi` on `id`.
  Status RunActions(std::string_view id, size_t pi, int step,
                    const SlaStatus& st, Timestamp now) {
    const ServicePolicy& p = policies[pi];
    const EscalationStep& es = steps[pi][step];
    for (const EscalationAction& a : es.actions) {
      switch (a.kind) {
        case EscalationAction::Kind::kFireEvent: {
          FireOptions fo;
          fo.time = now;
          fo.actor = std::string(kActor);
          auto r = engine->Fire(id, a.event, fo);
          if (!r.ok()) return r.status();
          break;
        }
        case EscalationAction::Kind::kSetAttribute: {
          auto txn = engine->Get(id);
          if (!txn.ok()) return txn.status();
          Attributes attrs = {{a.attribute, a.value}};
          auto r = SetAttributesLocked(id, attrs, txn->version, now);
          if (!r.ok()) return r.status();
          break;
        }
        case EscalationAction::Kind::kNotify: {
          std::string recipient = a.recipient;
          if (!recipient.empty() && recipient[0] == '@') {
            auto txn = engine->Get(id);
            if (!txn.ok()) return txn.status();
            const Value* v =
                FindAttribute(txn->attributes, recipient.substr(1));
            recipient = v == nullptr ? "" : v->ToText();
          }
          std::string body = "{\"transaction_id\":";
          JsonString(id, &body);
          body += ",\"policy\":";
          JsonString(p.name, &body);
          body += ",\"share\":" + std::to_string(es.share);
          body += ",\"state\":";
          JsonString(SlaStateName(st.state), &body);
          body += ",\"due_at\":";
          JsonString(st.due_at ? st.due_at->ToIso() : "", &body);
          body += ",\"remaining_seconds\":" +
                  std::to_string(st.remaining.micros / 1000000);
          body += "}";
          CRMFLOW_RETURN_IF_ERROR(InsertOutbox(now, id, a.channel, recipient,
                                               a.subject, body, p.name,
                                               step));
          break;
        }
      }
    }
    return Status::Ok();
  }

  struct DueTimer {
    int64_t id;
    std::string transaction_id;
    std::string policy;
    int step;
    Timestamp due_at;
  };

  Status SetTimerState(int64_t timer, const char* state,
                       std::optional<Timestamp> fired_at) {
    sqlite3_stmt* s = Prepare(kSetTimerState);
    if (s == nullptr) return StoreError("update timer");
    sqlite3_bind_int64(s, 1, timer);
    sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
    if (fired_at) {
      BindText(s, 3, fired_at->ToIso());
    } else {
      sqlite3_bind_null(s, 3);
    }
    return Run(s, "update timer");
  }

  // Processes one due timer inside the caller's unit of work.  Returns
  // what happened: 'f' fired, 'c' cancelled, 'm' moved.
  StatusOr<char> Process(const DueTimer& t, Timestamp now) {
    auto it = by_name.find(t.policy);
    int n = static_cast<int>(steps[it->second].size());
    if (t.step < 0 || t.step >= n) {
      CRMFLOW_RETURN_IF_ERROR(SetTimerState(t.id, "cancelled", std::nullopt));
      return 'c';
    }
    size_t pi = it->second;
    Transaction txn;
    auto got = engine->Get(t.transaction_id);
    if (!got.ok()) {
      if (got.status().code() != Code::kNotFound) return got.status();
      CRMFLOW_RETURN_IF_ERROR(SetTimerState(t.id, "cancelled", std::nullopt));
      return 'c';
    }
    txn = std::move(*got);
    if (!Applies(policies[pi], txn.kind, txn.attributes)) {
      CRMFLOW_RETURN_IF_ERROR(SetTimerState(t.id, "cancelled", std::nullopt));
      return 'c';
    }
    auto history = LoadHistory(t.transaction_id);
    if (!history.ok()) return history.status();
    if (history->empty()) {
      CRMFLOW_RETURN_IF_ERROR(SetTimerState(t.id, "cancelled", std::nullopt));
      return 'c';
    }
    auto st = clocks[pi].Evaluate(*history, now);
    if (!st.ok()) return st.status();
    const SlaThreshold& th = st->thresholds[t.step];

    // Not reached: the clock moved (a pause) or the reason passed.
    if (!Reached(*st, t.step)) {
      if (!th.reached && st->state == SlaState::kRunning && th.at &&
          now < *th.at) {
        sqlite3_stmt* s = Prepare(kMoveTimer);
        if (s == nullptr) return StoreError("move timer");
        sqlite3_bind_int64(s, 1, t.id);
        BindText(s, 2, th.at->ToIso());
        CRMFLOW_RETURN_IF_ERROR(Run(s, "move timer"));
        return 'm';
      }
      CRMFLOW_RETURN_IF_ERROR(SetTimerState(t.id, "cancelled", std::nullopt));
      return 'c';
    }

    // Reached: mark it fired first, so that the hooks the actions trigger
    // leave it alone, then record and act.
    CRMFLOW_RETURN_IF_ERROR(SetTimerState(t.id, "fired", now));
    Timestamp at = th.at.value_or(t.due_at);
    double share = th.share;
    CRMFLOW_RETURN_IF_ERROR(InsertEvent(at, now, t.transaction_id, t.policy,
                                        t.step,
                                        t.step == 0 ? "breach" : "threshold",
                                        share, st->explanation));
    CRMFLOW_RETURN_IF_ERROR(RunActions(t.transaction_id, pi, t.step, *st,
                                       now));
    return 'f';
  }

  StatusOr<std::optional<DueTimer>> NextDue(Timestamp now,
                                            const std::string& after_due,
                                            int64_t after_id) {
    sqlite3_stmt* s = Prepare(kNextDue);
    if (s == nullptr) return StoreError("read timers");
    BindText(s, 1, now.ToIso());
    BindText(s, 2, after_due);
    sqlite3_bind_int64(s, 3, after_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) return std::optional<DueTimer>();
    if (rc != SQLITE_ROW) return StoreError("read timers");
    DueTimer t{sqlite3_column_int64(s, 0), ColumnText(s, 1),
               ColumnText(s, 2), sqlite3_column_int(s, 3),
               ColumnTime(s, 4)};
    sqlite3_reset(s);
    return std::optional<DueTimer>(std::move(t));
  }

  // Inside the unit of work: returns whether timer `t` is still pending
  // and due at `now`, refreshing its due time.  NextDue reads before the
  // write lock is taken, so a scheduler in another process may have fired,
  // moved or cancelled the timer in between; only this re-read, under the
  // lock, makes a step fire once across processes.
  StatusOr<bool> StillDue(DueTimer* t, Timestamp now) {
    sqlite3_stmt* s = Prepare(kStillDue);
    if (s == nullptr) return StoreError("read timer");
    sqlite3_bind_int64(s, 1, t->id);
    BindText(s, 2, now.ToIso());
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
      sqlite3_reset(s);
      return false;
    }
    if (rc != SQLITE_ROW) {
      Status st = StoreError("read timer");
      sqlite3_reset(s);
      return st;
    }
    t->due_at = ColumnTime(s, 0);
    sqlite3_reset(s);
    return true;
  }
};

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Scheduler::~Scheduler() = default;

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Attach(Engine& engine) {
  auto impl = std::make_unique<Impl>();
  impl->engine = &engine;
  impl->db = SqliteHandle(engine.store());
  if (impl->db == nullptr) {
    if (sqlite3_open_v2(":memory:", &impl->own_db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        nullptr) != SQLITE_OK) {
      return Status(Code::kStoreError,
                    "scheduler: cannot open the in-memory timer database");
    }
    impl->db = impl->own_db;
  }
  impl->stmts = std::make_unique<Statements>(impl->db);

  // The tables commit like any other write of the engine.
  CRMFLOW_RETURN_IF_ERROR(impl->Begin());
  Status s = impl->Exec(kSchema);
  if (!s.ok()) {
    impl->Rollback();
    return s;
  }
  CRMFLOW_RETURN_IF_ERROR(impl->Commit());
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(impl)));
}

Status Scheduler::AddPolicy(ServicePolicy policy) {
  Impl& m = *impl_;
  if (policy.name.empty()) {
    return Status(Code::kInvalidArgument, "sla policy: name is empty");
  }
  if (policy.kind.empty()) {
    return Status(Code::kInvalidArgument,
                  "sla policy " + Quote(policy.name) + ": kind is empty");
  }
  if (m.by_name.count(policy.name) != 0) {
    return Status(Code::kInvalidArgument,
                  "sla policy " + Quote(policy.name) + ": defined twice");
  }
  SlaPolicy sla = policy.sla;
  if (sla.name.empty()) sla.name = policy.name;
  std::vector<EscalationStep> steps(1);
  for (const EscalationStep& step : policy.escalation) {
    for (const EscalationAction& a : step.actions) {
      bool bad = (a.kind == EscalationAction::Kind::kFireEvent &&
                  a.event.empty()) ||
                 (a.kind == EscalationAction::Kind::kSetAttribute &&
                  a.attribute.empty()) ||
                 (a.kind == EscalationAction::Kind::kNotify &&
                  a.channel.empty());
      if (bad) {
        return Status(Code::kInvalidArgument,
                      "sla policy " + Quote(policy.name) +
                          ": escalation step at share " +
                          std::to_string(step.share) +
                          " has an action without its event, attribute or "
                          "channel");
      }
    }
    if (step.share == 1.0) {
      steps[0].actions.insert(steps[0].actions.end(), step.actions.begin(),
                              step.actions.end());
    } else {
      steps.push_back(step);
    }
  }
  sla.escalation_shares.clear();
  for (const EscalationStep& step : steps) {
    sla.escalation_shares.push_back(step.share);
  }
  auto clock = SlaClock::Create(std::move(sla));
  if (!clock.ok()) return clock.status();
  policy.sla = clock->policy();

  // One hook per kind covers every policy of it.
  bool hooked = false;
  for (const std::string& k : m.hooked_kinds) hooked |= k == policy.kind;
  if (!hooked) {
    m.hooked_kinds.push_back(policy.kind);
    Impl* self = &m;
    std::shared_ptr<bool> alive = m.alive;
    m.engine->OnEnter(policy.kind, "*", [self, alive](const CallContext& c) {
      if (*alive) self->OnChange(c);
    });
  }
  m.by_name[policy.name] = m.policies.size();
  m.policies.push_back(std::move(policy));
  m.clocks.push_back(std::move(*clock));
  m.steps.push_back(std::move(steps));
  return Status::Ok();
}

const std::vector<ServicePolicy>& Scheduler::policies() const {
  return impl_->policies;
}

void Scheduler::NotifyOnAssignment(AssignmentNotice notice) {
  impl_->notices.push_back(std::move(notice));
}

Status Scheduler::Sync(std::string_view id) {
  Impl& m = *impl_;
  CRMFLOW_RETURN_IF_ERROR(m.Begin());
  Status s = m.SyncLocked(id, m.engine->Now());
  if (!s.ok()) {
    m.Rollback();
    return s;
  }
  return m.Commit();
}

StatusOr<int64_t> Scheduler::SyncAll() {
  Impl& m = *impl_;
  Timestamp now = m.engine->Now();
  int64_t visited = 0;
  CRMFLOW_RETURN_IF_ERROR(m.Begin());
  for (const std::string& kind : m.hooked_kinds) {
    auto txns = m.engine->List(kind, "");
    HistoryQuery q;
    q.kind = kind;
    auto rows = txns.ok() ? m.engine->History(q)
                          : StatusOr<std::vector<HistoryRow>>(txns.status());
    if (!rows.ok()) {
      m.Rollback();
      return rows.status();
    }
    std::unordered_map<std::string, std::vector<StateChange>> by_txn;
    for (const HistoryRow& r : *rows) {
      AppendChange(&by_txn[r.transaction_id], r.time, r.to_state);
    }
    for (const Transaction& t : *txns) {
      Status s = m.ArmAll(t, by_txn[t.id], now);
      if (!s.ok()) {
        m.Rollback();
        return s;
      }
      ++visited;
    }
  }
  CRMFLOW_RETURN_IF_ERROR(m.Commit());
  return visited;
}

StatusOr<TickSummary> Scheduler::Tick(Timestamp now) {
  Impl& m = *impl_;
  TickSummary summary;
  // Passes over the due timers in due order.  Timers of a policy this
  // scheduler does not know stay pending for one that does (a `crmflow
  // run` started without them must not cancel them).  Actions can arm
  // timers that are due already, behind the cursor: another pass takes
  // them, until a pass processes nothing.
  std::string after_due;
  int64_t after_id = 0;
  int64_t processed = 0;
  for (;;) {
    auto next = m.NextDue(now, after_due, after_id);
    if (!next.ok()) return next.status();
    if (!next->has_value()) {
      if (processed == 0) break;
      processed = 0;
      after_due.clear();
      after_id = 0;
      continue;
    }
    Impl::DueTimer& t = **next;
    after_due = t.due_at.ToIso();
    after_id = t.id;
    if (m.by_name.count(t.policy) == 0) continue;

    // Each timer in its own unit of work: its action and its mark commit
    // together or not at all.
    CRMFLOW_RETURN_IF_ERROR(m.Begin());
    auto due = m.StillDue(&t, now);
    if (!due.ok() || !*due) {
      m.Rollback();
      if (!due.ok()) return due.status();
      continue;
    }
    ++processed;
    auto outcome = m.Process(t, now);
    if (outcome.ok()) {
      Status c = m.Commit();
      if (!c.ok()) {
        m.Rollback();
        return c;
      }
      if (*outcome == 'f') ++summary.fired;
      if (*outcome == 'c') ++summary.cancelled;
      if (*outcome == 'm') ++summary.moved;
      continue;
    }
    if (outcome.status().code() == Code::kStoreError) {
      m.Rollback();
      return outcome.status();
    }

    // The action was refused (event not allowed, bad attribute): undo it,
    // keep the refusal and never retry this step.
    std::string detail = outcome.status().ToString();
    m.Rollback();
    CRMFLOW_RETURN_IF_ERROR(m.Begin());
    Status s = m.SetTimerState(t.id, "failed", now);
    if (s.ok()) {
      s = m.InsertEvent(t.due_at, now, t.transaction_id, t.policy, t.step,
                        "failed", 0, detail);
    }
    if (!s.ok()) {
      m.Rollback();
      return s;
    }
    CRMFLOW_RETURN_IF_ERROR(m.Commit());
    ++summary.failed;
  }
  return summary;
}

StatusOr<std::vector<PolicyStatus>> Scheduler::StatusOf(
    std::string_view id, std::optional<Timestamp> now) {
  Impl& m = *impl_;
  Timestamp at = now.value_or(m.engine->Now());
  auto txn = m.engine->Get(id);
  if (!txn.ok()) return txn.status();
  auto history = m.LoadHistory(id);
  if (!history.ok()) return history.status();
  std::vector<PolicyStatus> out;
  for (size_t pi = 0; pi < m.policies.size(); ++pi) {
    if (!Impl::Applies(m.policies[pi], txn->kind, txn->attributes)) continue;
    auto st = m.clocks[pi].Evaluate(*history, at);
    if (!st.ok()) return st.status();
    out.push_back(PolicyStatus{m.policies[pi].name, txn->id, std::move(*st)});
  }
  return out;
}

StatusOr<std::vector<PolicyStatus>> Scheduler::StatusAll(
    std::string_view kind, std::optional<Timestamp> now) {
  Impl& m = *impl_;
  Timestamp at = now.value_or(m.engine->Now());
  std::vector<PolicyStatus> out;
  for (const std::string& k : m.hooked_kinds) {
    if (!kind.empty() && k != kind) continue;
    auto txns = m.engine->List(k, "");
    if (!txns.ok()) return txns.status();
    HistoryQuery q;
    q.kind = k;
    auto rows = m.engine->History(q);
    if (!rows.ok()) return rows.status();
    std::unordered_map<std::string, std::vector<StateChange>> by_txn;
    for (const HistoryRow& r : *rows) {
      AppendChange(&by_txn[r.transaction_id], r.time, r.to_state);
    }
    for (const Transaction& t : *txns) {
      const std::vector<StateChange>& h = by_txn[t.id];
      if (h.empty()) continue;
      for (size_t pi = 0; pi < m.policies.size(); ++pi) {
        if (!Impl::Applies(m.policies[pi], t.kind, t.attributes)) continue;
        auto st = m.clocks[pi].Evaluate(h, at);
        if (!st.ok()) {
          return Status(st.status().code(), "transaction " + Quote(t.id) +
                                                ": " + st.status().message());
        }
        out.push_back(PolicyStatus{m.policies[pi].name, t.id, std::move(*st)});
      }
    }
  }
  return out;
}

StatusOr<Transaction> Scheduler::SetAttributes(std::string_view id,
                                               const Attributes& attributes,
                                               int64_t expected_version) {
  Impl& m = *impl_;
  CRMFLOW_RETURN_IF_ERROR(m.Begin());
  auto r =
      m.SetAttributesLocked(id, attributes, expected_version, m.engine->Now());
  if (!r.ok()) {
    m.Rollback();
    return r.status();
  }
  CRMFLOW_RETURN_IF_ERROR(m.Commit());
  return r;
}

StatusOr<int64_t> Scheduler::ArmTimers(const std::vector<TimerSpec>& timers) {
  Impl& m = *impl_;
  int64_t inserted = 0;
  CRMFLOW_RETURN_IF_ERROR(m.Begin());
  for (const TimerSpec& t : timers) {
    sqlite3_stmt* s = m.Prepare(kArmIgnore);
    if (s == nullptr) {
      m.Rollback();
      return m.StoreError("arm timers");
    }
    BindText(s, 1, t.transaction_id);
    BindText(s, 2, t.policy);
    sqlite3_bind_int(s, 3, t.step);
    BindText(s, 4, t.due_at.ToIso());
    Status st = m.Run(s, "arm timers");
    if (!st.ok()) {
      m.Rollback();
      return st;
    }
    inserted += sqlite3_changes(m.db);
  }
  CRMFLOW_RETURN_IF_ERROR(m.Commit());
  return inserted;
}

namespace {

// Reads `select` + an optional "WHERE transaction_id = ?1" + the order by
// id, one Row per row made by `fn` from the C statement.
template <typename Row, typename Fn>
StatusOr<std::vector<Row>> ReadByTransaction(sqlite3* db,
                                             const char* select,
                                             std::string_view id, Fn fn) {
  std::string sql = select;
  if (!id.empty()) sql += " WHERE transaction_id = ?1";
  sql += " ORDER BY id";
  SqlStatement s(db, sql.c_str(), "scheduler");
  if (s.ok() && !id.empty()) s.Bind(1, id);
  return ReadRows<Row>(
      s, "read", [&fn](SqlStatement& row) { return fn(row.get()); });
}

}  // namespace

StatusOr<std::vector<TimerRow>> Scheduler::Timers(
    std::string_view transaction_id) {
  return ReadByTransaction<TimerRow>(
      impl_->db,
      "SELECT id, transaction_id, policy, step, due_at, cycle, state, "
      "fired_at FROM timers",
      transaction_id, [](sqlite3_stmt* s) {
        TimerRow r;
        r.id = sqlite3_column_int64(s, 0);
        r.transaction_id = ColumnText(s, 1);
        r.policy = ColumnText(s, 2);
        r.step = sqlite3_column_int(s, 3);
        r.due_at = ColumnTime(s, 4);
        r.cycle = sqlite3_column_int(s, 5);
        r.state = ColumnText(s, 6);
        if (sqlite3_column_type(s, 7) != SQLITE_NULL) {
          r.fired_at = ColumnTime(s, 7);
        }
        return r;
      });
}

StatusOr<std::vector<SlaEventRow>> Scheduler::Events(
    std::string_view transaction_id) {
  return ReadByTransaction<SlaEventRow>(
      impl_->db,
      "SELECT id, time, recorded_at, transaction_id, policy, step, cycle, "
      "kind, share, detail FROM sla_events",
      transaction_id, [](sqlite3_stmt* s) {
        SlaEventRow r;
        r.id = sqlite3_column_int64(s, 0);
        r.time = ColumnTime(s, 1);
        r.recorded_at = ColumnTime(s, 2);
        r.transaction_id = ColumnText(s, 3);
        r.policy = ColumnText(s, 4);
        r.step = sqlite3_column_int(s, 5);
        r.cycle = sqlite3_column_int(s, 6);
        r.kind = ColumnText(s, 7);
        r.share = sqlite3_column_double(s, 8);
        r.detail = ColumnText(s, 9);
        return r;
      });
}

StatusOr<std::vector<OutboxRow>> Scheduler::Outbox(
    std::string_view transaction_id) {
  return ReadByTransaction<OutboxRow>(
      impl_->db,
      "SELECT id, time, transaction_id, channel, recipient, subject, body, "
      "policy, step FROM outbox",
      transaction_id, [](sqlite3_stmt* s) {
        OutboxRow r;
        r.id = sqlite3_column_int64(s, 0);
        r.time = ColumnTime(s, 1);
        r.transaction_id = ColumnText(s, 2);
        r.channel = ColumnText(s, 3);
        r.recipient = ColumnText(s, 4);
        r.subject = ColumnText(s, 5);
        r.body = ColumnText(s, 6);
        r.policy = ColumnText(s, 7);
        r.step = sqlite3_column_int(s, 8);
        return r;
      });
}

StatusOr<int64_t> Scheduler::PendingCount() {
  sqlite3_stmt* s = impl_->Prepare(
      "SELECT count(*) FROM timers WHERE state = 'pending'");
  if (s == nullptr || sqlite3_step(s) != SQLITE_ROW) {
    return impl_->StoreError("count timers");
  }
  int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  return n;
}

}  // namespace crmflow
