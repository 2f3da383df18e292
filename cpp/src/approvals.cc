// approvals.cc: approval matrices, requests, decisions and delegation; see
// approvals.h.
//
// Every row lives in SQLite: the engine's own connection for a SQLite
// store (so the rows commit and roll back with the engine's transactions)
// or a private in-memory database for the memory store.  On the private
// database the module keeps its own SAVEPOINT around each decision, and
// the rows the hooks write during someone else's Fire are remembered with
// a witness (the history row the Fire was about to append) so that a
// rolled-back Fire can be undone later.

#include "crmflow/approvals.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "crmflow/routing.h"
#include "crmflow/rules.h"
#include "sqlite_handle.h"
#include "sql_statement.h"

namespace crmflow {
namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out.empty() ? "none" : out;
}

// Approver lists are stored one id per line: ids may hold commas but are
// refused with line breaks.
std::string JoinLines(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += "\n";
    out += s;
  }
  return out;
}

std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    out.emplace_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// A statement whose errors name this module.
class Stmt : public SqlStatement {
 public:
  Stmt(sqlite3* db, const char* sql)
      : SqlStatement(db, sql, "approvals") {}
};

Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  return SqlExec(db, sql, "approvals", what);
}

Status Run(Stmt& stmt, std::string_view what) {
  if (!stmt.ok()) return stmt.Error(what);
  int rc = stmt.Step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return stmt.Error(what);
  return Status::Ok();
}

StatusOr<Timestamp> ParseTime(const std::string& text, std::string_view what) {
  auto t = Timestamp::ParseIso(text);
  if (!t.ok()) {
    return Status(Code::kStoreError, "approvals: " + std::string(what) +
                                         ": bad time " + Quote(text));
  }
  return *t;
}

// The instants a Timestamp supports (value.h): 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999Z.  The engine takes any explicit time as
// given (replays and backdated imports need that), so approvals refuse
// only what cannot be stored as the fixed-width time text: a time outside
// this range (Timestamp::InRange) would be written but never read back.
Status CheckSupported(const std::string& what, Timestamp t) {
  if (t.InRange()) {
    return Status::Ok();
  }
  return Status(Code::kInvalidArgument,
                what + " time " + std::to_string(t.micros) +
                    " microseconds since 1970 is outside the supported "
                    "range " +
                    Timestamp{Timestamp::kMinMicros}.ToIso() + " to " +
                    Timestamp{Timestamp::kMaxMicros}.ToIso());
}

constexpr const char* kSchemaSql =
    "CREATE TABLE IF NOT EXISTS approval_requests(id INTEGER PRIMARY KEY, "
    "transaction_id TEXT, kind TEXT, band INTEGER, band_name TEXT, "
    "status TEXT, current_step INTEGER, steps INTEGER, approve_event TEXT, "
    "reject_event TEXT, opened_at TEXT, closed_at TEXT NULL, "
    "outcome_event TEXT NULL, automatic INTEGER);"
    "CREATE INDEX IF NOT EXISTS approval_requests_by_transaction ON "
    "approval_requests(transaction_id, id);"
    "CREATE INDEX IF NOT EXISTS approval_requests_by_status ON "
    "approval_requests(status, id);"
    "CREATE TABLE IF NOT EXISTS approval_steps(request_id INTEGER, "
    "position INTEGER, name TEXT, mode TEXT, approvers TEXT NULL, "
    "team TEXT NULL, PRIMARY KEY (request_id, position));"
    "CREATE TABLE IF NOT EXISTS approval_decisions(id INTEGER PRIMARY KEY, "
    "request_id INTEGER, transaction_id TEXT, step INTEGER, step_name TEXT, "
    "actor TEXT, on_behalf_of TEXT NULL, decision TEXT, time TEXT, "
    "comment TEXT NULL);"
    "CREATE INDEX IF NOT EXISTS approval_decisions_by_request ON "
    "approval_decisions(request_id, step);"
    // AUTOINCREMENT: a removed delegation's id is never given again, so an
    // id quoted in a log or a decision's review names one window for good.
    "CREATE TABLE IF NOT EXISTS approval_delegations(id INTEGER PRIMARY "
    "KEY AUTOINCREMENT, actor TEXT, substitute TEXT, starts_at TEXT, "
    "ends_at TEXT, created_at TEXT);"
    "CREATE INDEX IF NOT EXISTS approval_delegations_by_substitute ON "
    "approval_delegations(substitute);"
    // The matrices, one row per kind plus its bands and steps in order.
    "CREATE TABLE IF NOT EXISTS approval_matrices(kind TEXT PRIMARY KEY, "
    "request_state TEXT, approve_event TEXT, reject_event TEXT, "
    "updated_at TEXT);"
    "CREATE TABLE IF NOT EXISTS approval_matrix_bands(kind TEXT, "
    "position INTEGER, name TEXT, condition TEXT, "
    "PRIMARY KEY (kind, position));"
    "CREATE TABLE IF NOT EXISTS approval_matrix_steps(kind TEXT, "
    "band INTEGER, position INTEGER, name TEXT, mode TEXT, "
    "approvers TEXT NULL, team TEXT NULL, "
    "PRIMARY KEY (kind, band, position));";

// Files made before delegation ids were kept unique have the table
// without AUTOINCREMENT, which SQLite cannot add in place: the table is
// rebuilt with its rows and ids (the copy sets the counter to the highest
// id).  Older builds read and write the rebuilt table unchanged, so the
// store's schema version stays as it is.
constexpr const char* kMigrateDelegationsSql =
    "CREATE TABLE approval_delegations_rebuilt(id INTEGER PRIMARY KEY "
    "AUTOINCREMENT, actor TEXT, substitute TEXT, starts_at TEXT, "
    "ends_at TEXT, created_at TEXT);"
    "INSERT INTO approval_delegations_rebuilt(id, actor, substitute, "
    "starts_at, ends_at, created_at) SELECT id, actor, substitute, "
    "starts_at, ends_at, created_at FROM approval_delegations ORDER BY id;"
    "DROP TABLE approval_delegations;"
    "ALTER TABLE approval_delegations_rebuilt RENAME TO "
    "approval_delegations;"
    "CREATE INDEX IF NOT EXISTS approval_delegations_by_substitute ON "
    "approval_delegations(substitute);";

// Returns true when approval_delegations was made without AUTOINCREMENT.
StatusOr<bool> DelegationsNeedRebuild(sqlite3* db) {
  SqlStatement s(db,
                 "SELECT sql FROM sqlite_master WHERE type = 'table' AND "
                 "name = 'approval_delegations'",
                 "approvals");
  if (!s.ok()) return s.Error("read schema");
  int rc = s.Step();
  if (rc == SQLITE_DONE) return false;
  if (rc != SQLITE_ROW) return s.Error("read schema");
  std::string sql = s.ColumnText(0);
  std::transform(sql.begin(), sql.end(), sql.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  });
  return sql.find("AUTOINCREMENT") == std::string::npos;
}

std::string MatrixWhere(const ApprovalMatrix& m) {
  return "approval matrix " + Quote(m.kind);
}

std::string BandWhere(const ApprovalMatrix& m, size_t i) {
  return MatrixWhere(m) + ": band " + std::to_string(i + 1) + " (" +
         Quote(m.bands[i].name) + ")";
}

// True when `text` is empty or only spaces, tabs and line breaks.
bool IsBlank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

// A name that is blank after trimming would be an approver nobody can be
// (no actor id is blank) or a label nobody can read: refused like an
// empty one.
Status CheckName(std::string_view where, std::string_view what,
                 std::string_view name) {
  if (IsBlank(name) || !IsValidUtf8(name) ||
      name.find('\n') != std::string_view::npos) {
    return Status(Code::kInvalidArgument,
                  std::string(where) + ": bad " + std::string(what) + " " +
                      Quote(IsValidUtf8(name) ? name : "?") +
                      " (expected UTF-8 text, not blank, without line "
                      "breaks)");
  }
  return Status::Ok();
}

// An actor or team id: a name (above) without spaces around it, since
// actors are matched exactly and " mia" is nobody who can decide.
Status CheckId(std::string_view where, std::string_view what,
               std::string_view id) {
  CRMFLOW_RETURN_IF_ERROR(CheckName(where, what, id));
  const std::string_view space = " \t\r\f\v";
  if (space.find(id.front()) != std::string_view::npos ||
      space.find(id.back()) != std::string_view::npos) {
    return Status(Code::kInvalidArgument,
                  std::string(where) + ": bad " + std::string(what) + " " +
                      Quote(id) + " (expected an id without spaces around it)");
  }
  return Status::Ok();
}

// The rule that fires the approve event when the chain is empty: true
// when the first matching band is one without steps.  coalesce(.., false)
// keeps a null condition false, exactly as CompiledMatrix::Chain reads it.
std::string AutomaticCondition(const ApprovalMatrix& m) {
  std::string any;
  for (size_t i = 0; i < m.bands.size(); ++i) {
    if (!m.bands[i].steps.empty()) continue;
    std::string term;
    auto cond = [&](size_t k) {
      const std::string& c = m.bands[k].condition;
      return "coalesce((" + (c.empty() ? std::string("true") : c) +
             "), false)";
    };
    term = cond(i);
    for (size_t k = 0; k < i; ++k) term += " and not " + cond(k);
    any += any.empty() ? "(" + term + ")" : " or (" + term + ")";
  }
  return any;
}

std::string AutomaticRuleName(std::string_view kind) {
  return "approvals:" + std::string(kind) + ":automatic";
}

// Rules on "entered" do not run for a create; when the requesting state
// is the initial one, a second rule on "created" approves empty chains of
// transactions created straight into it.
std::string CreatedRuleName(std::string_view kind) {
  return AutomaticRuleName(kind) + "-on-create";
}

// The automatic-approval rules `m` needs on `wf` (none without an empty
// band).
std::vector<Rule> AutomaticRules(const ApprovalMatrix& m,
                                 const Workflow& wf) {
  std::vector<Rule> out;
  std::string condition = AutomaticCondition(m);
  if (condition.empty()) return out;
  Rule rule;
  rule.name = AutomaticRuleName(m.kind);
  rule.kind = m.kind;
  rule.trigger = RuleTrigger::kEntered;
  rule.on = m.request_state;
  rule.condition = condition;
  rule.actions = "fire " + m.approve_event;
  out.push_back(rule);
  int initial = wf.initial_state();
  if (initial != Workflow::kNoId && wf.StateName(initial) == m.request_state) {
    rule.name = CreatedRuleName(m.kind);
    rule.trigger = RuleTrigger::kCreated;
    rule.on = "";
    out.push_back(std::move(rule));
  }
  return out;
}

bool SameRule(const Rule& a, const Rule& b) {
  return a.name == b.name && a.kind == b.kind && a.trigger == b.trigger &&
         a.on == b.on && a.condition == b.condition &&
         a.actions == b.actions && a.enabled == b.enabled;
}

}  // namespace

const char* ApprovalModeName(ApprovalMode mode) {
  return mode == ApprovalMode::kFirst ? "first" : "unanimous";
}

StatusOr<ApprovalMode> ParseApprovalMode(std::string_view name) {
  if (name == "unanimous") return ApprovalMode::kUnanimous;
  if (name == "first") return ApprovalMode::kFirst;
  return Status(Code::kInvalidArgument, "unknown approval mode " +
                                            Quote(name) +
                                            " (expected unanimous or first)");
}

// --- CompiledMatrix ---

StatusOr<CompiledMatrix> CompiledMatrix::Compile(ApprovalMatrix matrix,
                                                 const ExprSchema& schema) {
  const std::string where = MatrixWhere(matrix);
  CRMFLOW_RETURN_IF_ERROR(CheckName("approval matrix", "kind", matrix.kind));
  if (matrix.bands.empty()) {
    return Status(Code::kInvalidArgument,
                  where + ": no bands (expected at least one)");
  }

  // Names, steps and approvers, then the conditions.
  std::set<std::string> bands;
  std::vector<Expression> conditions;
  for (size_t i = 0; i < matrix.bands.size(); ++i) {
    const ApprovalBand& b = matrix.bands[i];
    CRMFLOW_RETURN_IF_ERROR(
        CheckName(where + ": band " + std::to_string(i + 1), "name", b.name));
    if (!bands.insert(b.name).second) {
      return Status(Code::kInvalidArgument,
                    BandWhere(matrix, i) + ": band name given twice");
    }
    std::set<std::string> steps;
    for (size_t s = 0; s < b.steps.size(); ++s) {
      const ApprovalStep& st = b.steps[s];
      std::string at =
          BandWhere(matrix, i) + ": step " + std::to_string(s + 1);
      CRMFLOW_RETURN_IF_ERROR(CheckName(at, "name", st.name));
      at += " (" + Quote(st.name) + ")";
      if (!steps.insert(st.name).second) {
        return Status(Code::kInvalidArgument, at + ": step name given twice");
      }
      if (st.approvers.empty() == st.team.empty()) {
        return Status(Code::kInvalidArgument,
                      at + ": expected either approvers or a team (got " +
                          (st.team.empty() ? "neither" : "both") + ")");
      }
      if (!st.team.empty()) {
        CRMFLOW_RETURN_IF_ERROR(CheckId(at, "team", st.team));
      }
      std::set<std::string> seen;
      for (const std::string& a : st.approvers) {
        CRMFLOW_RETURN_IF_ERROR(CheckId(at, "approver", a));
        if (!seen.insert(a).second) {
          return Status(Code::kInvalidArgument,
                        at + ": approver " + Quote(a) + " given twice");
        }
      }
    }
    // A band without a condition would silently match everything (and
    // an automatic band so would approve every transaction): the catch-all
    // is written out as "true".
    if (IsBlank(b.condition)) {
      return Status(Code::kInvalidArgument,
                    BandWhere(matrix, i) +
                        ": no condition (expected an expression, e.g. "
                        "\"amount <= 1000\", or \"true\" for a band that "
                        "matches everything)");
    }
    auto e = Expression::ParseCondition(b.condition, schema);
    if (!e.ok()) {
      return Status(e.status().code(),
                    BandWhere(matrix, i) + ": " + e.status().message());
    }
    conditions.push_back(std::move(e).value());
  }

  CompiledMatrix out;
  out.matrix_ = std::make_shared<const ApprovalMatrix>(std::move(matrix));
  out.conditions_ =
      std::make_shared<const std::vector<Expression>>(std::move(conditions));
  return out;
}

StatusOr<CompiledMatrix> CompiledMatrix::ForWorkflow(
    ApprovalMatrix matrix, const Workflow& workflow) {
  const std::string where = MatrixWhere(matrix);
  if (matrix.kind != workflow.name()) {
    return Status(Code::kInvalidArgument,
                  where + ": workflow " + Quote(workflow.name()) +
                      " is of another kind");
  }

  // The attachment: the requesting state and two events leaving it.
  std::vector<std::string> states;
  for (int s = 0; s < workflow.state_count(); ++s) {
    states.push_back(workflow.StateName(s));
  }
  int state = workflow.StateId(matrix.request_state);
  if (state == Workflow::kNoId) {
    return Status(Code::kValidationError,
                  where + ": unknown request state " +
                      Quote(matrix.request_state) + " (states: " +
                      Join(states) + ")");
  }
  if (workflow.Role(state) == StateRole::kTerminal) {
    return Status(Code::kValidationError,
                  where + ": request state " + Quote(matrix.request_state) +
                      " is terminal (an approval could never move on)");
  }
  for (const auto& [what, event] :
       {std::pair<const char*, const std::string*>{"approve event",
                                                   &matrix.approve_event},
        {"reject event", &matrix.reject_event}}) {
    int id = workflow.EventId(*event);
    if (id == Workflow::kNoId) {
      std::vector<std::string> events;
      for (int e = 0; e < workflow.event_count(); ++e) {
        events.push_back(workflow.EventName(e));
      }
      return Status(Code::kValidationError, where + ": unknown " + what +
                                                " " + Quote(*event) +
                                                " (events: " + Join(events) +
                                                ")");
    }
    bool leaves = false;
    for (const Workflow::Transition* t : workflow.Candidates(state, id)) {
      if (t->target != state) leaves = true;
    }
    if (!leaves) {
      return Status(Code::kValidationError,
                    where + ": " + what + " " + Quote(*event) +
                        " does not leave request state " +
                        Quote(matrix.request_state) + " (events leaving it: " +
                        Join(workflow.EventsFrom(state)) + ")");
    }
  }
  if (matrix.approve_event == matrix.reject_event) {
    return Status(Code::kValidationError,
                  where + ": approve and reject events are both " +
                      Quote(matrix.approve_event));
  }
  return Compile(std::move(matrix), SchemaOf(workflow));
}

StatusOr<ApprovalChain> CompiledMatrix::Select(const EvalContext& ctx) const {
  const ApprovalMatrix& m = *matrix_;
  Attributes reads;
  for (size_t i = 0; i < m.bands.size(); ++i) {
    auto hit = (*conditions_)[i].EvaluateCondition(ctx, &reads);
    if (!hit.ok()) {
      return Status(hit.status().code(),
                    BandWhere(m, i) + ": " + hit.status().message());
    }
    if (*hit) {
      ApprovalChain chain;
      chain.band = static_cast<int>(i);
      chain.band_name = m.bands[i].name;
      chain.steps = m.bands[i].steps;
      return chain;
    }
  }
  std::string values = FormatReads(reads);
  return Status(Code::kNotFound, MatrixWhere(m) + ": no band matches (" +
                                     (values.empty() ? "no values read"
                                                     : values) +
                                     ")");
}

StatusOr<ApprovalChain> CompiledMatrix::Chain(
    const Attributes& attributes) const {
  EvalContext ctx;
  ctx.attributes = &attributes;
  ctx.txn_kind = matrix_->kind;
  return Select(ctx);
}

StatusOr<ApprovalChain> CompiledMatrix::ChainFor(const Transaction& txn) const {
  EvalContext ctx;
  ctx.attributes = &txn.attributes;
  ctx.txn_id = txn.id;
  ctx.txn_state = txn.state;
  ctx.txn_kind = txn.kind;
  return Select(ctx);
}

// --- Approvals ---

struct Approvals::Impl : std::enable_shared_from_this<Approvals::Impl> {
  // A change the hooks made on the private database during a Fire that
  // this object did not start; kept until the Fire is known to have been
  // committed (its history row exists) or rolled back (undone).
  struct Witness {
    int64_t request_id = 0;
    bool opened = false;  // else: closed an open request
    std::string transaction_id;
    int64_t version_before = 0;  // the transaction's, before the Fire
    std::string state;  // opened: the state entered; closed: the one left
  };

  Engine* engine = nullptr;
  Router* router = nullptr;
  sqlite3* db = nullptr;
  bool own_db = false;  // the private database of the memory store
  std::map<std::string, CompiledMatrix, std::less<>> matrices;
  std::set<std::string, std::less<>> hooked;  // kinds with hooks
  // Stored matrices that do not validate: kind -> (request_state, the
  // problem).  Entering that state is refused while they are broken.
  std::map<std::string, std::pair<std::string, std::string>, std::less<>>
      broken;
  std::vector<Witness> witnesses;
  int in_decision = 0;  // > 0 while Decide runs

  ~Impl() {
    if (own_db && db != nullptr) sqlite3_close(db);
  }

  // Opens a write scope on the module's tables: the engine's transaction,
  // plus a savepoint on the private database.
  Status Begin() {
    CRMFLOW_RETURN_IF_ERROR(engine->Begin());
    if (own_db) {
      Status st = Exec(db, "SAVEPOINT approvals", "begin");
      if (!st.ok()) {
        (void)engine->Rollback();
        return st;
      }
    }
    return Status::Ok();
  }
  Status Commit() {
    Status st = engine->Commit();
    if (!st.ok()) {
      if (own_db) {
        (void)Exec(db, "ROLLBACK TO approvals; RELEASE approvals", "undo");
      }
      return st;
    }
    if (own_db) return Exec(db, "RELEASE approvals", "commit");
    return Status::Ok();
  }
  void Rollback() {
    (void)engine->Rollback();
    if (own_db) {
      (void)Exec(db, "ROLLBACK TO approvals; RELEASE approvals", "rollback");
    }
  }

  Status Sync();
  StatusOr<std::vector<ApprovalRequest>> LoadRequests(const char* where,
                                                      std::string_view arg);
  StatusOr<std::vector<std::string>> Resolve(const ApprovalStep& step,
                                             std::string_view txn_id);
  // One decision of a step: who cast it and for whom (the actor itself,
  // or the approver a substitute stood for).
  struct Vote {
    int64_t id = 0;
    std::string actor;
    std::string principal;
  };
  StatusOr<std::vector<Vote>> Decided(int64_t request_id, int step);
  StatusOr<std::vector<Delegation>> LoadDelegations(const char* where,
                                                    std::string_view arg);
  Status OpenRequest(const CallContext& ctx, const CompiledMatrix& m);
  Status CloseOnExit(const CallContext& ctx, const CompiledMatrix& m);
  Status Remember(int64_t request_id, bool opened, const CallContext& ctx);
  void Hook(const std::string& kind);
  // `bad` (optional) collects kind -> problem for rows that do not make
  // a matrix, which are then left out instead of failing the load.
  StatusOr<std::vector<ApprovalMatrix>> LoadStored(
      std::string_view kind,
      std::map<std::string, std::string>* bad = nullptr);
  Status WriteMatrix(const ApprovalMatrix& m, Timestamp now);
  Status DeleteMatrix(std::string_view kind);
  Status SyncRules(std::string_view kind, const std::vector<Rule>& wanted);
  Status Load();
  Status MigrateDelegations();
};

// Rebuilds an old approval_delegations table (see kMigrateDelegationsSql)
// in one store transaction, checking again under the write lock since
// another process opening the same file may have done it meanwhile.
Status Approvals::Impl::MigrateDelegations() {
  auto needed = DelegationsNeedRebuild(db);
  if (!needed.ok()) return needed.status();
  if (!*needed) return Status::Ok();
  CRMFLOW_RETURN_IF_ERROR(Begin());
  needed = DelegationsNeedRebuild(db);
  Status st = needed.status();
  if (st.ok() && *needed) {
    st = Exec(db, kMigrateDelegationsSql, "migrate approval_delegations");
  }
  if (!st.ok()) {
    Rollback();
    return st;
  }
  return Commit();
}

// Undoes the hook rows of Fires that were rolled back.  Runs only outside
// any engine transaction, when every Fire has committed or not.  A Fire
// that committed raised the version; one that was rolled back left it,
// unless later writes raised it again, which the state then betrays: an
// open request whose transaction is elsewhere, or a closed one whose
// transaction is still in the state it left with no newer request.
Status Approvals::Impl::Sync() {
  if (!own_db || witnesses.empty()) return Status::Ok();
  if (engine->store().depth() > 0) return Status::Ok();
  std::vector<Witness> pending;
  pending.swap(witnesses);
  for (size_t k = pending.size(); k-- > 0;) {
    const Witness& w = pending[k];
    auto txn = engine->Get(w.transaction_id);
    if (!txn.ok() && w.version_before == 0 &&
        txn.status().code() == Code::kNotFound) {
      // A create that was rolled back.
      for (const char* sql :
           {"DELETE FROM approval_requests WHERE id = ?1",
            "DELETE FROM approval_steps WHERE request_id = ?1"}) {
        Stmt s(db, sql);
        s.Bind(1, w.request_id);
        CRMFLOW_RETURN_IF_ERROR(Run(s, "undo request"));
      }
      continue;
    }
    if (!txn.ok()) return txn.status();
    bool undone = txn->version == w.version_before;
    if (!undone) {
      Stmt s(db,
             w.opened
                 ? "SELECT count(*) FROM approval_requests WHERE id = ?1 AND "
                   "status = 'open'"
                 : "SELECT count(*) FROM approval_requests WHERE "
                   "transaction_id = ?2 AND id > ?1");
      s.Bind(1, w.request_id);
      if (!w.opened) s.Bind(2, w.transaction_id);
      if (!s.ok() || s.Step() != SQLITE_ROW) {
        return s.Error("read approval_requests");
      }
      bool found = s.ColumnInt(0) > 0;
      undone = w.opened ? found && txn->state != w.state
                        : !found && txn->state == w.state;
    }
    if (!undone) continue;
    if (w.opened) {
      for (const char* sql :
           {"DELETE FROM approval_requests WHERE id = ?1",
            "DELETE FROM approval_steps WHERE request_id = ?1"}) {
        Stmt s(db, sql);
        s.Bind(1, w.request_id);
        CRMFLOW_RETURN_IF_ERROR(Run(s, "undo request"));
      }
    } else {
      Stmt s(db,
             "UPDATE approval_requests SET status = 'open', closed_at = "
             "NULL, outcome_event = NULL, automatic = 0 WHERE id = ?1");
      s.Bind(1, w.request_id);
      CRMFLOW_RETURN_IF_ERROR(Run(s, "undo request"));
    }
  }
  return Status::Ok();
}

Status Approvals::Impl::Remember(int64_t request_id, bool opened,
                                 const CallContext& ctx) {
  if (!own_db || in_decision > 0) return Status::Ok();
  Witness w;
  w.request_id = request_id;
  w.opened = opened;
  w.transaction_id = ctx.txn.id;
  // A create's transaction had no version before.
  w.version_before = ctx.from_state.empty() ? 0 : ctx.txn.version;
  w.state = std::string(opened ? ctx.to_state : ctx.from_state);
  witnesses.push_back(std::move(w));
  return Status::Ok();
}

StatusOr<std::vector<ApprovalRequest>> Approvals::Impl::LoadRequests(
    const char* where, std::string_view arg) {
  std::string sql =
      "SELECT id, transaction_id, kind, band, band_name, status, "
      "current_step, opened_at, closed_at, outcome_event, automatic FROM "
      "approval_requests ";
  sql += where;
  sql += " ORDER BY id";
  Stmt s(db, sql.c_str());
  if (s.ok() && sql.find("?1") != std::string::npos) s.Bind(1, arg);
  auto out = ReadRows<ApprovalRequest>(
      s, "read approval_requests",
      [](SqlStatement& row) -> StatusOr<ApprovalRequest> {
        ApprovalRequest r;
        r.id = row.ColumnInt(0);
        r.transaction_id = row.ColumnText(1);
        r.kind = row.ColumnText(2);
        r.band = static_cast<int>(row.ColumnInt(3));
        r.band_name = row.ColumnText(4);
        r.status = row.ColumnText(5);
        r.current_step = static_cast<int>(row.ColumnInt(6));
        auto opened = ParseTime(row.ColumnText(7), "approval_requests");
        if (!opened.ok()) return opened.status();
        r.opened_at = *opened;
        if (!row.ColumnIsNull(8)) {
          auto closed = ParseTime(row.ColumnText(8), "approval_requests");
          if (!closed.ok()) return closed.status();
          r.closed_at = *closed;
        }
        r.outcome_event = row.ColumnText(9);
        r.automatic = row.ColumnInt(10) != 0;
        return r;
      });
  if (!out.ok()) return out.status();

  // The steps of each request, in chain order.
  for (ApprovalRequest& r : *out) {
    Stmt st(db,
            "SELECT name, mode, approvers, team FROM approval_steps WHERE "
            "request_id = ?1 ORDER BY position");
    if (st.ok()) st.Bind(1, r.id);
    auto steps = ReadRows<ApprovalStep>(
        st, "read approval_steps", [](SqlStatement& row) {
          ApprovalStep step;
          step.name = row.ColumnText(0);
          auto mode = ParseApprovalMode(row.ColumnText(1));
          step.mode = mode.ok() ? *mode : ApprovalMode::kUnanimous;
          step.approvers = SplitLines(row.ColumnText(2));
          step.team = row.ColumnText(3);
          return step;
        });
    if (!steps.ok()) return steps.status();
    r.steps = std::move(steps).value();
  }
  return out;
}

StatusOr<std::vector<std::string>> Approvals::Impl::Resolve(
    const ApprovalStep& step, std::string_view txn_id) {
  if (step.team.empty()) return step.approvers;
  if (router == nullptr) {
    return Status(Code::kInvalidArgument,
                  "transaction " + Quote(txn_id) + ": step " +
                      Quote(step.name) + " names team " + Quote(step.team) +
                      " but no router is attached");
  }
  auto team = router->GetTeam(step.team);
  if (!team.ok()) {
    return Status(team.status().code(), "transaction " + Quote(txn_id) +
                                            ": step " + Quote(step.name) +
                                            ": " + team.status().message());
  }
  std::vector<std::string> out;
  for (const Member& m : team->members) {
    if (m.available) out.push_back(m.id);
  }
  return out;
}

// Returns the decisions of step `step` of the request, in order.
StatusOr<std::vector<Approvals::Impl::Vote>> Approvals::Impl::Decided(
    int64_t request_id, int step) {
  Stmt s(db,
         "SELECT id, actor, coalesce(on_behalf_of, actor) FROM "
         "approval_decisions WHERE request_id = ?1 AND step = ?2 ORDER BY id");
  if (s.ok()) {
    s.Bind(1, request_id);
    s.Bind(2, step);
  }
  return ReadRows<Vote>(s, "read approval_decisions", [](SqlStatement& row) {
    return Vote{row.ColumnInt(0), row.ColumnText(1), row.ColumnText(2)};
  });
}

StatusOr<std::vector<Delegation>> Approvals::Impl::LoadDelegations(
    const char* where, std::string_view arg) {
  std::string sql =
      "SELECT id, actor, substitute, starts_at, ends_at, created_at FROM "
      "approval_delegations ";
  sql += where;
  sql += " ORDER BY id";
  Stmt s(db, sql.c_str());
  if (s.ok() && sql.find("?1") != std::string::npos) s.Bind(1, arg);
  return ReadRows<Delegation>(
      s, "read approval_delegations",
      [](SqlStatement& row) -> StatusOr<Delegation> {
        Delegation d;
        d.id = row.ColumnInt(0);
        d.actor = row.ColumnText(1);
        d.substitute = row.ColumnText(2);
        auto a = ParseTime(row.ColumnText(3), "approval_delegations");
        auto b = ParseTime(row.ColumnText(4), "approval_delegations");
        auto c = ParseTime(row.ColumnText(5), "approval_delegations");
        if (!a.ok()) return a.status();
        if (!b.ok()) return b.status();
        if (!c.ok()) return c.status();
        d.starts_at = *a;
        d.ends_at = *b;
        d.created_at = *c;
        return d;
      });
}

// The entry hook's work: a fresh request with the chain of this moment.
Status Approvals::Impl::OpenRequest(const CallContext& ctx,
                                    const CompiledMatrix& m) {
  // The chain is read with the state being entered, as the request sees
  // the transaction.
  Transaction probe;
  probe.id = ctx.txn.id;
  probe.kind = ctx.txn.kind;
  probe.state = std::string(ctx.to_state);
  probe.attributes = ctx.txn.attributes;
  auto chain = m.ChainFor(probe);
  if (!chain.ok()) {
    return Status(chain.status().code() == Code::kNotFound
                      ? Code::kNotAllowed
                      : chain.status().code(),
                  "transaction " + Quote(ctx.txn.id) + ": entering " +
                      Quote(ctx.to_state) + ": " + chain.status().message());
  }

  // A request still open here was opened by a Fire that was rolled back
  // (memory store, not yet synced) or survives a path that skipped the
  // exit hook: the new one supersedes it.
  auto open = LoadRequests("WHERE transaction_id = ?1 AND +status = 'open'",
                           ctx.txn.id);
  if (!open.ok()) return open.status();
  for (const ApprovalRequest& r : *open) {
    auto stale = std::find_if(witnesses.begin(), witnesses.end(),
                              [&](const Witness& w) {
                                return w.opened && w.request_id == r.id;
                              });
    if (stale != witnesses.end()) {
      witnesses.erase(stale);
      for (const char* sql :
           {"DELETE FROM approval_requests WHERE id = ?1",
            "DELETE FROM approval_steps WHERE request_id = ?1"}) {
        Stmt s(db, sql);
        s.Bind(1, r.id);
        CRMFLOW_RETURN_IF_ERROR(Run(s, "write approval_requests"));
      }
      continue;
    }
    Stmt s(db,
           "UPDATE approval_requests SET status = 'cancelled', closed_at = "
           "?2, outcome_event = ?3 WHERE id = ?1");
    s.Bind(1, r.id);
    s.Bind(2, ctx.time.ToIso());
    s.Bind(3, ctx.event);
    CRMFLOW_RETURN_IF_ERROR(Run(s, "write approval_requests"));
    CRMFLOW_RETURN_IF_ERROR(Remember(r.id, false, ctx));
  }

  const ApprovalMatrix& mx = m.matrix();
  Stmt ins(db,
           "INSERT INTO approval_requests(transaction_id, kind, band, "
           "band_name, status, current_step, steps, approve_event, "
           "reject_event, opened_at, automatic) VALUES (?1, ?2, ?3, ?4, "
           "'open', 0, ?5, ?6, ?7, ?8, ?9)");
  ins.Bind(1, ctx.txn.id);
  ins.Bind(2, ctx.txn.kind);
  ins.Bind(3, chain->band);
  ins.Bind(4, chain->band_name);
  ins.Bind(5, static_cast<int64_t>(chain->steps.size()));
  ins.Bind(6, mx.approve_event);
  ins.Bind(7, mx.reject_event);
  ins.Bind(8, ctx.time.ToIso());
  ins.Bind(9, chain->steps.empty() ? 1 : 0);
  CRMFLOW_RETURN_IF_ERROR(Run(ins, "write approval_requests"));
  int64_t id = sqlite3_last_insert_rowid(db);
  for (size_t i = 0; i < chain->steps.size(); ++i) {
    const ApprovalStep& st = chain->steps[i];
    Stmt s(db,
           "INSERT INTO approval_steps(request_id, position, name, mode, "
           "approvers, team) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    s.Bind(1, id);
    s.Bind(2, static_cast<int64_t>(i));
    s.Bind(3, st.name);
    s.Bind(4, ApprovalModeName(st.mode));
    s.BindTextOrNull(5, JoinLines(st.approvers));
    s.BindTextOrNull(6, st.team);
    CRMFLOW_RETURN_IF_ERROR(Run(s, "write approval_steps"));
  }
  return Remember(id, true, ctx);
}

// The exit hook's work: a request still open when the transaction leaves
// the requesting state was not closed by a decision.
Status Approvals::Impl::CloseOnExit(const CallContext& ctx,
                                    const CompiledMatrix& m) {
  auto open = LoadRequests("WHERE transaction_id = ?1 AND +status = 'open'",
                           ctx.txn.id);
  if (!open.ok()) return open.status();
  for (const ApprovalRequest& r : *open) {
    bool automatic =
        r.steps.empty() && ctx.event == m.matrix().approve_event;
    Stmt s(db,
           "UPDATE approval_requests SET status = ?2, closed_at = ?3, "
           "outcome_event = ?4, automatic = ?5 WHERE id = ?1");
    s.Bind(1, r.id);
    s.Bind(2, automatic ? "approved" : "cancelled");
    s.Bind(3, ctx.time.ToIso());
    s.Bind(4, ctx.event);
    s.Bind(5, automatic ? 1 : 0);
    CRMFLOW_RETURN_IF_ERROR(Run(s, "write approval_requests"));
    CRMFLOW_RETURN_IF_ERROR(Remember(r.id, false, ctx));
  }
  return Status::Ok();
}

Approvals::Approvals(Engine* engine, Router* router)
    : impl_(std::make_shared<Impl>()) {
  impl_->engine = engine;
  impl_->router = router;
}

Approvals::~Approvals() = default;

void Approvals::set_router(Router* router) { impl_->router = router; }

StatusOr<std::unique_ptr<Approvals>> Approvals::Attach(Engine* engine,
                                                       Router* router) {
  std::unique_ptr<Approvals> a(new Approvals(engine, router));
  Impl& im = *a->impl_;
  im.db = SqliteHandle(engine->store());
  if (im.db == nullptr) {
    if (sqlite3_open(":memory:", &im.db) != SQLITE_OK) {
      std::string msg = im.db != nullptr ? sqlite3_errmsg(im.db) : "no memory";
      sqlite3_close(im.db);
      im.db = nullptr;
      return Status(Code::kStoreError,
                    "approvals: open private database: " + msg);
    }
    im.own_db = true;
  }
  CRMFLOW_RETURN_IF_ERROR(Exec(im.db, kSchemaSql, "create tables"));
  CRMFLOW_RETURN_IF_ERROR(im.MigrateDelegations());
  CRMFLOW_RETURN_IF_ERROR(im.Load());
  return a;
}

// Matrices are loaded into the module as well as stored, and a rollback of
// the caller's transaction would undo only the stored rows: changing them
// inside an explicit transaction is refused.
static Status RefuseInsideTransaction(Engine& engine, std::string_view what,
                                      std::string_view kind) {
  if (engine.store().depth() == 0) return Status::Ok();
  return Status(Code::kNotAllowed,
                std::string(what) + " \"" + std::string(kind) +
                    "\": approval matrices cannot be changed inside an "
                    "explicit transaction (commit or roll back first)");
}

Status Approvals::SetMatrix(ApprovalMatrix matrix) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(
      RefuseInsideTransaction(*im.engine, "set approval matrix", matrix.kind));
  const Workflow* wf = im.engine->FindWorkflow(matrix.kind);
  if (wf == nullptr) {
    std::vector<std::string> kinds = im.engine->kinds();
    return Status(Code::kNotFound, MatrixWhere(matrix) +
                                       ": kind not registered (kinds: " +
                                       Join(kinds) + ")");
  }
  auto compiled = CompiledMatrix::ForWorkflow(std::move(matrix), *wf);
  if (!compiled.ok()) return compiled.status();
  const ApprovalMatrix& m = compiled->matrix();

  // Teams must exist when a router is attached; without one they fail at
  // decision time, with a message saying so.
  if (im.router != nullptr) {
    for (size_t i = 0; i < m.bands.size(); ++i) {
      for (const ApprovalStep& st : m.bands[i].steps) {
        if (st.team.empty()) continue;
        auto t = im.router->GetTeam(st.team);
        if (!t.ok()) {
          return Status(Code::kInvalidArgument, BandWhere(m, i) + ": step " +
                                                    Quote(st.name) + ": " +
                                                    t.status().message());
        }
      }
    }
  }

  // The matrix's rows and its automatic-approval rules (which fire after
  // the entering transition is written) change in one store transaction.
  std::vector<Rule> wanted = AutomaticRules(m, *wf);
  CRMFLOW_RETURN_IF_ERROR(im.Begin());
  Status st = im.DeleteMatrix(m.kind);
  if (st.ok()) st = im.WriteMatrix(m, im.engine->Now());
  if (st.ok()) st = im.SyncRules(m.kind, wanted);
  if (st.ok()) st = im.Commit();
  else im.Rollback();
  if (!st.ok()) {
    (void)im.engine->rules().Reload();  // as the store has them
    return Status(st.code(), MatrixWhere(m) + ": " + st.message());
  }
  im.Hook(m.kind);
  im.broken.erase(m.kind);
  std::string kind = m.kind;
  im.matrices.insert_or_assign(std::move(kind), std::move(compiled).value());
  return Status::Ok();
}

// One pair of hooks per kind; they look the current matrix up, so a
// replaced matrix (even with another state) needs no new hooks.
void Approvals::Impl::Hook(const std::string& kind) {
  if (!hooked.insert(kind).second) return;
  std::weak_ptr<Impl> weak = shared_from_this();
  engine->OnEnter(kind, "*", [weak](const CallContext& ctx) {
    std::shared_ptr<Impl> self = weak.lock();
    if (!self) return;
    auto it = self->matrices.find(ctx.txn.kind);
    if (it == self->matrices.end()) {
      // A stored matrix that no longer validates still guards its state.
      auto bad = self->broken.find(ctx.txn.kind);
      if (bad != self->broken.end() && bad->second.first == ctx.to_state) {
        throw ApprovalError(Status(
            Code::kValidationError,
            "transaction " + Quote(ctx.txn.id) + ": entering " +
                Quote(ctx.to_state) + ": stored " + bad->second.second));
      }
      return;
    }
    if (it->second.matrix().request_state != ctx.to_state) return;
    Status st = self->OpenRequest(ctx, it->second);
    if (!st.ok()) throw ApprovalError(std::move(st));
  });
  engine->OnExit(kind, "*", [weak](const CallContext& ctx) {
    std::shared_ptr<Impl> self = weak.lock();
    if (!self) return;
    auto it = self->matrices.find(ctx.txn.kind);
    if (it == self->matrices.end() ||
        it->second.matrix().request_state != ctx.from_state) {
      return;
    }
    Status st = self->CloseOnExit(ctx, it->second);
    if (!st.ok()) throw ApprovalError(std::move(st));
  });
}

Status Approvals::Impl::DeleteMatrix(std::string_view kind) {
  for (const char* sql :
       {"DELETE FROM approval_matrices WHERE kind = ?1",
        "DELETE FROM approval_matrix_bands WHERE kind = ?1",
        "DELETE FROM approval_matrix_steps WHERE kind = ?1"}) {
    Stmt s(db, sql);
    s.Bind(1, kind);
    CRMFLOW_RETURN_IF_ERROR(Run(s, "write approval_matrices"));
  }
  return Status::Ok();
}

Status Approvals::Impl::WriteMatrix(const ApprovalMatrix& m, Timestamp now) {
  Stmt head(db,
            "INSERT INTO approval_matrices(kind, request_state, "
            "approve_event, reject_event, updated_at) VALUES (?1, ?2, ?3, "
            "?4, ?5)");
  head.Bind(1, m.kind);
  head.Bind(2, m.request_state);
  head.Bind(3, m.approve_event);
  head.Bind(4, m.reject_event);
  head.Bind(5, now.ToIso());
  CRMFLOW_RETURN_IF_ERROR(Run(head, "write approval_matrices"));
  for (size_t i = 0; i < m.bands.size(); ++i) {
    const ApprovalBand& b = m.bands[i];
    Stmt s(db,
           "INSERT INTO approval_matrix_bands(kind, position, name, "
           "condition) VALUES (?1, ?2, ?3, ?4)");
    s.Bind(1, m.kind);
    s.Bind(2, static_cast<int64_t>(i));
    s.Bind(3, b.name);
    s.Bind(4, b.condition);
    CRMFLOW_RETURN_IF_ERROR(Run(s, "write approval_matrix_bands"));
    for (size_t k = 0; k < b.steps.size(); ++k) {
      const ApprovalStep& st = b.steps[k];
      Stmt t(db,
             "INSERT INTO approval_matrix_steps(kind, band, position, name, "
             "mode, approvers, team) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      t.Bind(1, m.kind);
      t.Bind(2, static_cast<int64_t>(i));
      t.Bind(3, static_cast<int64_t>(k));
      t.Bind(4, st.name);
      t.Bind(5, ApprovalModeName(st.mode));
      t.BindTextOrNull(6, JoinLines(st.approvers));
      t.BindTextOrNull(7, st.team);
      CRMFLOW_RETURN_IF_ERROR(Run(t, "write approval_matrix_steps"));
    }
  }
  return Status::Ok();
}

// Makes the kind's automatic-approval rules exactly `wanted`, writing
// only what differs (opening an engine changes nothing when all is well).
Status Approvals::Impl::SyncRules(std::string_view kind,
                                  const std::vector<Rule>& wanted) {
  for (const std::string& name :
       {AutomaticRuleName(kind), CreatedRuleName(kind)}) {
    const Rule* want = nullptr;
    for (const Rule& r : wanted) {
      if (r.name == name) want = &r;
    }
    const Rule* have = nullptr;
    for (const Rule& r : engine->rules().rules()) {
      if (r.name == name) have = &r;
    }
    if (want == nullptr) {
      if (have != nullptr) {
        CRMFLOW_RETURN_IF_ERROR(engine->rules().Remove(name));
      }
    } else if (have == nullptr || !SameRule(*have, *want)) {
      Status st = engine->rules().Add(*want);
      if (!st.ok()) {
        return Status(st.code(), "automatic approval rule: " + st.message());
      }
    }
  }
  return Status::Ok();
}

StatusOr<std::vector<ApprovalMatrix>> Approvals::Impl::LoadStored(
    std::string_view kind, std::map<std::string, std::string>* bad) {
  Stmt head(db,
            "SELECT kind, request_state, approve_event, reject_event FROM "
            "approval_matrices WHERE ?1 = '' OR kind = ?1 ORDER BY kind");
  if (head.ok()) head.Bind(1, kind);
  auto out = ReadRows<ApprovalMatrix>(
      head, "read approval_matrices", [](SqlStatement& row) {
        ApprovalMatrix m;
        m.kind = row.ColumnText(0);
        m.request_state = row.ColumnText(1);
        m.approve_event = row.ColumnText(2);
        m.reject_event = row.ColumnText(3);
        return m;
      });
  if (!out.ok()) return out.status();

  // One stored step, before it is checked against its matrix.
  struct StepRow {
    int64_t band = 0;
    ApprovalStep step;
    std::string mode;
  };
  std::vector<ApprovalMatrix> good;
  for (ApprovalMatrix& m : *out) {
    Stmt b(db,
           "SELECT name, condition FROM approval_matrix_bands WHERE kind = ?1 "
           "ORDER BY position");
    if (b.ok()) b.Bind(1, m.kind);
    auto bands = ReadRows<ApprovalBand>(
        b, "read approval_matrix_bands", [](SqlStatement& row) {
          // Earlier releases stored "" for "true"; it keeps that meaning.
          std::string condition = row.ColumnText(1);
          if (IsBlank(condition)) condition = "true";
          return ApprovalBand{row.ColumnText(0), std::move(condition), {}};
        });
    if (!bands.ok()) return bands.status();
    m.bands = std::move(bands).value();
    Stmt t(db,
           "SELECT band, name, mode, approvers, team FROM "
           "approval_matrix_steps WHERE kind = ?1 ORDER BY band, position");
    if (t.ok()) t.Bind(1, m.kind);
    auto steps = ReadRows<StepRow>(
        t, "read approval_matrix_steps", [](SqlStatement& row) {
          StepRow r;
          r.band = row.ColumnInt(0);
          r.step.name = row.ColumnText(1);
          r.mode = row.ColumnText(2);
          if (!row.ColumnIsNull(3)) {
            r.step.approvers = SplitLines(row.ColumnText(3));
          }
          if (!row.ColumnIsNull(4)) r.step.team = row.ColumnText(4);
          return r;
        });
    if (!steps.ok()) return steps.status();
    std::string problem;
    for (StepRow& r : *steps) {
      if (r.band < 0 || r.band >= static_cast<int64_t>(m.bands.size())) {
        problem = MatrixWhere(m) + ": approval_matrix_steps names band " +
                  std::to_string(r.band + 1) + ", which is not stored";
        break;
      }
      auto mode = ParseApprovalMode(r.mode);
      if (!mode.ok()) {
        problem = BandWhere(m, static_cast<size_t>(r.band)) + ": step " +
                  Quote(r.step.name) + ": " + mode.status().message();
        break;
      }
      r.step.mode = *mode;
      m.bands[static_cast<size_t>(r.band)].steps.push_back(std::move(r.step));
    }
    if (!problem.empty()) {
      if (bad == nullptr) return Status(Code::kStoreError, problem);
      (*bad)[m.kind] = problem;
      continue;
    }
    good.push_back(std::move(m));
  }
  return good;
}

// Activates the stored matrices that validate; the others go to `broken`.
Status Approvals::Impl::Load() {
  std::map<std::string, std::string> bad;
  auto stored = LoadStored("", &bad);
  if (!stored.ok()) return stored.status();
  matrices.clear();
  broken.clear();
  if (!bad.empty()) {
    // The requesting state is in the head row, which was read.
    Stmt s(db, "SELECT kind, request_state FROM approval_matrices");
    while (s.ok() && s.Step() == SQLITE_ROW) {
      auto it = bad.find(s.ColumnText(0));
      if (it == bad.end()) continue;
      Hook(it->first);
      broken[it->first] = {s.ColumnText(1), it->second};
    }
  }
  for (ApprovalMatrix& m : *stored) {
    std::string kind = m.kind, state = m.request_state;
    Hook(kind);
    const Workflow* wf = engine->FindWorkflow(kind);
    if (wf == nullptr) {
      broken[kind] = {state, MatrixWhere(m) + ": kind not registered"};
      continue;
    }
    std::vector<Rule> wanted = AutomaticRules(m, *wf);
    auto compiled = CompiledMatrix::ForWorkflow(std::move(m), *wf);
    if (!compiled.ok()) {
      broken[kind] = {state, compiled.status().message()};
      continue;
    }
    // Only when the engine is not inside someone's transaction: a reload
    // there must not write.
    if (engine->store().depth() == 0) {
      Status st = SyncRules(kind, wanted);
      if (!st.ok()) {
        broken[kind] = {state, MatrixWhere(compiled->matrix()) + ": " +
                                   st.message()};
        continue;
      }
    }
    matrices.insert_or_assign(kind, std::move(compiled).value());
  }
  return Status::Ok();
}

Status Approvals::Reload() { return impl_->Load(); }

std::vector<std::string> Approvals::Problems() const {
  std::vector<std::string> out;
  for (const auto& [kind, bad] : impl_->broken) out.push_back(bad.second);
  return out;
}

StatusOr<std::vector<ApprovalMatrix>> Approvals::StoredMatrices() {
  std::map<std::string, std::string> bad;  // listed by Problems()
  return impl_->LoadStored("", &bad);
}

Status Approvals::RemoveMatrix(std::string_view kind) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(
      RefuseInsideTransaction(*im.engine, "remove approval matrix", kind));
  std::map<std::string, std::string> bad;
  auto stored = im.LoadStored(kind, &bad);
  if (!stored.ok()) return stored.status();
  if (stored->empty() && bad.empty() &&
      im.matrices.find(kind) == im.matrices.end()) {
    std::vector<std::string> kinds;
    auto all = im.LoadStored("", &bad);
    if (all.ok()) {
      for (const ApprovalMatrix& m : *all) kinds.push_back(m.kind);
    }
    return Status(Code::kNotFound, "no approval matrix for kind " +
                                       Quote(kind) + " (matrices: " +
                                       Join(kinds) + ")");
  }
  CRMFLOW_RETURN_IF_ERROR(im.Begin());
  Status st = im.DeleteMatrix(kind);
  if (st.ok()) st = im.SyncRules(kind, {});
  if (st.ok()) st = im.Commit();
  else im.Rollback();
  if (!st.ok()) {
    (void)im.engine->rules().Reload();
    return st;
  }
  auto it = im.matrices.find(kind);
  if (it != im.matrices.end()) im.matrices.erase(it);
  auto was_broken = im.broken.find(kind);
  if (was_broken != im.broken.end()) im.broken.erase(was_broken);
  return Status::Ok();
}

bool Approvals::HasStoredMatrices(Engine* engine) {
  sqlite3* db = SqliteHandle(engine->store());
  if (db == nullptr) return false;
  Stmt s(db,
         "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
         "'approval_matrices'");
  if (!s.ok() || s.Step() != SQLITE_ROW) return false;
  Stmt n(db, "SELECT 1 FROM approval_matrices LIMIT 1");
  return n.ok() && n.Step() == SQLITE_ROW;
}

StatusOr<CompiledMatrix> Approvals::Matrix(std::string_view kind) const {
  auto it = impl_->matrices.find(kind);
  if (it == impl_->matrices.end()) {
    std::vector<std::string> kinds;
    for (const auto& [k, m] : impl_->matrices) kinds.push_back(k);
    return Status(Code::kNotFound, "no approval matrix for kind " +
                                       Quote(kind) + " (matrices: " +
                                       Join(kinds) + ")");
  }
  return it->second;
}

StatusOr<DecisionResult> Approvals::Approve(std::string_view txn_id,
                                            const DecisionOptions& options) {
  return Decide(txn_id, options, true);
}

StatusOr<DecisionResult> Approvals::Reject(std::string_view txn_id,
                                           const DecisionOptions& options) {
  return Decide(txn_id, options, false);
}

StatusOr<DecisionResult> Approvals::Decide(std::string_view txn_id,
                                           const DecisionOptions& options,
                                           bool approve) {
  Impl& im = *impl_;
  const char* verb = approve ? "approve" : "reject";
  std::string where = "transaction " + Quote(txn_id);
  if (options.actor.empty() || !IsValidUtf8(options.actor)) {
    return Status(Code::kInvalidArgument,
                  where + ": " + verb + ": bad actor (expected non-empty "
                  "UTF-8 text)");
  }
  if (!IsValidUtf8(options.comment) || !IsValidUtf8(options.on_behalf_of)) {
    return Status(Code::kInvalidArgument,
                  where + ": " + verb + ": comment and on_behalf_of must be "
                  "UTF-8 text");
  }
  CRMFLOW_RETURN_IF_ERROR(im.Sync());
  if (im.own_db && im.engine->store().depth() > 0) {
    return Status(Code::kNotAllowed,
                  where + ": " + verb + ": decisions on the memory store "
                  "cannot be made inside an explicit transaction");
  }
  Timestamp time = options.time ? *options.time : im.engine->Now();
  CRMFLOW_RETURN_IF_ERROR(CheckSupported(where + ": " + verb + ": decision",
                                         time));

  CRMFLOW_RETURN_IF_ERROR(im.Begin());
  DecisionResult result;
  auto body = [&]() -> Status {
    // Read under the write lock: another process may have decided (and
    // moved the transaction on) while this one waited for it, and the
    // messages below must tell the state as it is now.
    auto txn = im.engine->Get(txn_id);
    if (!txn.ok()) return txn.status();

    // The open request and its current step.
    auto open = im.LoadRequests(
        "WHERE transaction_id = ?1 AND +status = 'open'", txn_id);
    if (!open.ok()) return open.status();
    if (open->empty()) {
      return Status(Code::kNotFound, where + " in state " +
                                         Quote(txn->state) +
                                         ": no open approval request");
    }
    const ApprovalRequest& req = open->back();
    // A decision cannot predate its request: the audit trail would show
    // an approval given before anyone asked for it.
    if (time < req.opened_at) {
      return Status(Code::kInvalidArgument,
                    where + ": " + verb + ": decision time " + time.ToIso() +
                        " is before approval request " +
                        std::to_string(req.id) + " was opened at " +
                        req.opened_at.ToIso() + " (when the transaction "
                        "entered the requesting state)");
    }
    if (req.current_step >= static_cast<int>(req.steps.size())) {
      return Status(Code::kNotAllowed,
                    where + ": approval request " + std::to_string(req.id) +
                        " has no step waiting (automatic approval pending)");
    }
    const ApprovalStep& step = req.steps[req.current_step];
    std::string step_where = where + ": step " +
                             std::to_string(req.current_step + 1) + " (" +
                             Quote(step.name) + ")";
    auto approvers = im.Resolve(step, txn_id);
    if (!approvers.ok()) return approvers.status();
    auto decided = im.Decided(req.id, req.current_step);
    if (!decided.ok()) return decided.status();
    auto has = [](const std::vector<std::string>& v, const std::string& s) {
      return std::find(v.begin(), v.end(), s) != v.end();
    };
    auto decided_for = [&](const std::string& principal) {
      return std::any_of(
          decided->begin(), decided->end(),
          [&](const Impl::Vote& v) { return v.principal == principal; });
    };

    // Who the actor decides for: itself when it is an approver, else an
    // approver who delegated to it for this moment.
    std::vector<std::string> principals;  // candidates, in order
    if (options.on_behalf_of.empty() && has(*approvers, options.actor)) {
      principals.push_back(options.actor);
    }
    auto delegations = im.LoadDelegations("WHERE substitute = ?1",
                                          options.actor);
    if (!delegations.ok()) return delegations.status();
    for (const std::string& a : *approvers) {
      if (!options.on_behalf_of.empty() && a != options.on_behalf_of) {
        continue;
      }
      for (const Delegation& d : *delegations) {
        if (d.actor == a && !(time < d.starts_at) && time < d.ends_at) {
          principals.push_back(a);
          break;
        }
      }
    }
    if (principals.empty()) {
      std::string why = options.on_behalf_of.empty()
                            ? "is not an approver"
                            : "is not a substitute of approver " +
                                  Quote(options.on_behalf_of) + " at " +
                                  time.ToIso();
      if (options.on_behalf_of.empty() && !delegations->empty()) {
        why += " nor the substitute of one at " + time.ToIso();
      }
      return Status(Code::kNotAllowed, step_where + ": actor " +
                                           Quote(options.actor) + " " + why +
                                           " (approvers: " +
                                           Join(*approvers) + ")");
    }
    std::string principal;
    for (const std::string& p : principals) {
      if (!decided_for(p)) {
        principal = p;
        break;
      }
    }
    if (principal.empty()) {
      return Status(Code::kAlreadyExists,
                    step_where + ": actor " + Quote(options.actor) +
                        " already decided" +
                        (principals.front() == options.actor
                             ? std::string()
                             : " for " + Quote(principals.front())));
    }
    result.on_behalf_of = principal == options.actor ? "" : principal;
    // One person, one vote per step: an approver who is also the
    // substitute of another approver of the step would otherwise complete
    // a unanimous step alone.  Whoever cast a vote here, in their own name
    // or for someone, casts no other.
    for (const Impl::Vote& v : *decided) {
      if (v.actor != options.actor) continue;
      std::string before = v.principal == v.actor
                               ? std::string("in their own name")
                               : "on behalf of " + Quote(v.principal);
      std::string now = result.on_behalf_of.empty()
                            ? std::string("in their own name")
                            : "on behalf of " + Quote(result.on_behalf_of);
      return Status(Code::kNotAllowed,
                    step_where + ": actor " + Quote(options.actor) +
                        " already voted " + before + " (decision " +
                        std::to_string(v.id) + "), so cannot also vote " +
                        now + " (one vote per person per step)");
    }

    // The decision row.
    Stmt ins(im.db,
             "INSERT INTO approval_decisions(request_id, transaction_id, "
             "step, step_name, actor, on_behalf_of, decision, time, comment) "
             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    ins.Bind(1, req.id);
    ins.Bind(2, txn_id);
    ins.Bind(3, req.current_step);
    ins.Bind(4, step.name);
    ins.Bind(5, options.actor);
    ins.BindTextOrNull(6, result.on_behalf_of);
    ins.Bind(7, verb);
    ins.Bind(8, time.ToIso());
    ins.BindTextOrNull(9, options.comment);
    CRMFLOW_RETURN_IF_ERROR(Run(ins, "write approval_decisions"));
    result.decision_id = sqlite3_last_insert_rowid(im.db);
    result.request_id = req.id;

    // What it does to the request: a rejection ends it; an approval
    // completes the step in first mode, or when every approver has.
    int next = req.current_step;
    std::string status = "open";
    std::string event;
    if (!approve) {
      status = "rejected";
      Stmt ev(im.db, "SELECT reject_event FROM approval_requests WHERE "
                     "id = ?1");
      ev.Bind(1, req.id);
      if (!ev.ok() || ev.Step() != SQLITE_ROW) {
        return ev.Error("read approval_requests");
      }
      event = ev.ColumnText(0);
    } else {
      bool complete = step.mode == ApprovalMode::kFirst;
      if (!complete) {
        decided->push_back(
            Impl::Vote{result.decision_id, options.actor, principal});
        complete = std::all_of(
            approvers->begin(), approvers->end(),
            [&](const std::string& a) { return decided_for(a); });
      }
      if (complete) ++next;
      if (next == static_cast<int>(req.steps.size())) {
        status = "approved";
        Stmt ev(im.db, "SELECT approve_event FROM approval_requests WHERE "
                       "id = ?1");
        ev.Bind(1, req.id);
        if (!ev.ok() || ev.Step() != SQLITE_ROW) {
          return ev.Error("read approval_requests");
        }
        event = ev.ColumnText(0);
      }
    }
    Stmt up(im.db,
            "UPDATE approval_requests SET status = ?2, current_step = ?3, "
            "closed_at = ?4, outcome_event = ?5 WHERE id = ?1");
    up.Bind(1, req.id);
    up.Bind(2, status);
    up.Bind(3, next);
    if (event.empty()) {
      up.BindTextOrNull(4, "");
    } else {
      up.Bind(4, time.ToIso());
    }
    up.BindTextOrNull(5, event);
    CRMFLOW_RETURN_IF_ERROR(Run(up, "write approval_requests"));
    result.status = status;
    result.current_step = next;
    result.fired_event = event;
    result.state = txn->state;

    // The event, in the same transaction: its failure undoes the decision.
    if (!event.empty()) {
      FireOptions fo;
      fo.time = time;
      fo.actor = options.actor;
      auto fired = im.engine->Fire(txn_id, event, fo);
      if (!fired.ok()) {
        return Status(fired.status().code(),
                      step_where + ": " + verb + " by " +
                          Quote(options.actor) + ": " +
                          fired.status().message());
      }
      result.state = std::string(fired->state);
    }
    return Status::Ok();
  };

  Status st;
  ++im.in_decision;
  try {
    st = body();
  } catch (...) {
    --im.in_decision;
    im.Rollback();
    throw;
  }
  --im.in_decision;
  if (!st.ok()) {
    im.Rollback();
    return st;
  }
  CRMFLOW_RETURN_IF_ERROR(im.Commit());
  return result;
}

StatusOr<int64_t> Approvals::Delegate(std::string_view actor,
                                      std::string_view substitute,
                                      Timestamp start, Timestamp end) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(CheckId("delegation", "actor", actor));
  CRMFLOW_RETURN_IF_ERROR(CheckId("delegation", "substitute", substitute));
  std::string where = "delegation of " + Quote(actor) + " to " +
                      Quote(substitute);
  if (actor == substitute) {
    return Status(Code::kInvalidArgument,
                  where + ": an actor cannot delegate to itself");
  }
  CRMFLOW_RETURN_IF_ERROR(CheckSupported(where + ": start", start));
  CRMFLOW_RETURN_IF_ERROR(CheckSupported(where + ": end", end));
  if (!(start < end)) {
    return Status(Code::kInvalidArgument,
                  where + ": window ends at " + end.ToIso() +
                      ", not after its start " + start.ToIso());
  }
  CRMFLOW_RETURN_IF_ERROR(im.Sync());
  if (im.own_db && im.engine->store().depth() > 0) {
    return Status(Code::kNotAllowed,
                  where + ": delegations on the memory store cannot be made "
                  "inside an explicit transaction");
  }
  auto existing = im.LoadDelegations("WHERE actor = ?1", actor);
  if (!existing.ok()) return existing.status();
  for (const Delegation& d : *existing) {
    if (d.starts_at < end && start < d.ends_at) {
      return Status(Code::kAlreadyExists,
                    where + ": window " + start.ToIso() + " to " +
                        end.ToIso() + " overlaps delegation " +
                        std::to_string(d.id) + " to " + Quote(d.substitute) +
                        " (" + d.starts_at.ToIso() + " to " +
                        d.ends_at.ToIso() + ")");
    }
  }
  CRMFLOW_RETURN_IF_ERROR(im.Begin());
  Stmt s(im.db,
         "INSERT INTO approval_delegations(actor, substitute, starts_at, "
         "ends_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)");
  s.Bind(1, actor);
  s.Bind(2, substitute);
  s.Bind(3, start.ToIso());
  s.Bind(4, end.ToIso());
  s.Bind(5, im.engine->Now().ToIso());
  Status st = Run(s, "write approval_delegations");
  if (!st.ok()) {
    im.Rollback();
    return st;
  }
  int64_t id = sqlite3_last_insert_rowid(im.db);
  CRMFLOW_RETURN_IF_ERROR(im.Commit());
  return id;
}

Status Approvals::RemoveDelegation(int64_t id) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(im.Sync());
  CRMFLOW_RETURN_IF_ERROR(im.Begin());
  Stmt s(im.db, "DELETE FROM approval_delegations WHERE id = ?1");
  s.Bind(1, id);
  Status st = Run(s, "write approval_delegations");
  if (st.ok() && sqlite3_changes(im.db) == 0) {
    st = Status(Code::kNotFound,
                "delegation " + std::to_string(id) + " not found");
  }
  if (!st.ok()) {
    im.Rollback();
    return st;
  }
  return im.Commit();
}

StatusOr<std::vector<Delegation>> Approvals::Delegations(
    std::string_view actor) {
  CRMFLOW_RETURN_IF_ERROR(impl_->Sync());
  if (actor.empty()) return impl_->LoadDelegations("", "");
  return impl_->LoadDelegations("WHERE actor = ?1", actor);
}

StatusOr<std::vector<ApprovalRequest>> Approvals::OpenRequests(
    std::string_view kind) {
  CRMFLOW_RETURN_IF_ERROR(impl_->Sync());
  if (kind.empty()) return impl_->LoadRequests("WHERE status = 'open'", "");
  return impl_->LoadRequests("WHERE status = 'open' AND kind = ?1", kind);
}

StatusOr<std::vector<ApprovalRequest>> Approvals::Requests(
    std::string_view txn_id) {
  CRMFLOW_RETURN_IF_ERROR(impl_->Sync());
  if (txn_id.empty()) return impl_->LoadRequests("", "");
  return impl_->LoadRequests("WHERE transaction_id = ?1", txn_id);
}

StatusOr<std::vector<ApprovalDecision>> Approvals::Decisions(
    std::string_view txn_id) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(im.Sync());
  std::string sql =
      "SELECT id, request_id, transaction_id, step, step_name, actor, "
      "on_behalf_of, decision, time, comment FROM approval_decisions ";
  if (!txn_id.empty()) sql += "WHERE transaction_id = ?1 ";
  sql += "ORDER BY id";
  Stmt s(im.db, sql.c_str());
  if (s.ok() && !txn_id.empty()) s.Bind(1, txn_id);
  return ReadRows<ApprovalDecision>(
      s, "read approval_decisions",
      [](SqlStatement& row) -> StatusOr<ApprovalDecision> {
        ApprovalDecision d;
        d.id = row.ColumnInt(0);
        d.request_id = row.ColumnInt(1);
        d.transaction_id = row.ColumnText(2);
        d.step = static_cast<int>(row.ColumnInt(3));
        d.step_name = row.ColumnText(4);
        d.actor = row.ColumnText(5);
        d.on_behalf_of = row.ColumnText(6);
        d.decision = row.ColumnText(7);
        auto t = ParseTime(row.ColumnText(8), "approval_decisions");
        if (!t.ok()) return t.status();
        d.time = *t;
        d.comment = row.ColumnText(9);
        return d;
      });
}

StatusOr<std::vector<PendingStep>> Approvals::Pending(
    std::string_view actor, std::optional<Timestamp> at) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(im.Sync());
  Timestamp time = at ? *at : im.engine->Now();
  auto open = im.LoadRequests("WHERE status = 'open'", "");
  if (!open.ok()) return open.status();
  auto delegations = im.LoadDelegations("WHERE substitute = ?1", actor);
  if (!delegations.ok()) return delegations.status();
  std::vector<PendingStep> out;
  for (const ApprovalRequest& r : *open) {
    if (r.current_step >= static_cast<int>(r.steps.size())) continue;
    const ApprovalStep& step = r.steps[r.current_step];
    auto approvers = im.Resolve(step, r.transaction_id);
    if (!approvers.ok()) continue;  // a team that is gone waits for nobody
    auto decided = im.Decided(r.id, r.current_step);
    if (!decided.ok()) return decided.status();
    // Who voted at this step votes no more there (see Decide).
    if (std::any_of(decided->begin(), decided->end(),
                    [&](const Impl::Vote& v) { return v.actor == actor; })) {
      continue;
    }
    auto waiting = [&](const std::string& a) {
      return std::find(approvers->begin(), approvers->end(), a) !=
                 approvers->end() &&
             std::none_of(
                 decided->begin(), decided->end(),
                 [&](const Impl::Vote& v) { return v.principal == a; });
    };
    auto add = [&](std::string on_behalf_of) {
      PendingStep p;
      p.request_id = r.id;
      p.transaction_id = r.transaction_id;
      p.kind = r.kind;
      p.step = r.current_step;
      p.step_name = step.name;
      p.mode = ApprovalModeName(step.mode);
      p.actor = std::string(actor);
      p.on_behalf_of = std::move(on_behalf_of);
      p.opened_at = r.opened_at;
      out.push_back(std::move(p));
    };
    if (waiting(std::string(actor))) add("");
    for (const std::string& a : *approvers) {
      if (a == actor || !waiting(a)) continue;
      for (const Delegation& d : *delegations) {
        if (d.actor == a && !(time < d.starts_at) && time < d.ends_at) {
          add(a);
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace crmflow
