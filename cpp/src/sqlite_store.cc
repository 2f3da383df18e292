// sqlite_store.cc: the embedded SQLite Store (OpenSqliteStore), the
// default persistence of the engine.
//
// Choices, and why:
//   - WAL journal with synchronous=NORMAL: readers never block the writer
//     and a commit costs no fsync (durability to the last checkpoint on a
//     power cut, never corruption);
//   - every write transaction starts with BEGIN IMMEDIATE so the write lock
//     is taken up front: a transaction never fails half-way because another
//     process wrote first, and SQLITE_BUSY can only happen at BEGIN, where
//     retrying is safe (nothing has been done yet);
//   - nested Begin calls are SAVEPOINTs, so a failed Fire inside a batch
//     undoes only itself;
//   - every statement is prepared once and cached (SQL parsing would cost
//     more than the writes);
//   - the schema is portable SQL with times and values as canonical TEXT;
//   - the database is the user's CRM data, written by SQL tools too, so the
//     engine's invariants are triggers (see kTriggers) that hold whoever
//     writes: the history is append-only, a state changes only after its
//     history row, and a write through SQL bumps the transaction's version
//     so that every engine's cached copy is seen as stale.

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "crmflow/store.h"
#include "sqlite_handle.h"
#include "store_internal.h"

namespace crmflow {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workflows(
  name TEXT NOT NULL, version INTEGER NOT NULL, definition TEXT,
  registered_at TEXT, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS transactions(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,
  customer_id TEXT NULL, parent_id TEXT NULL, version INTEGER NOT NULL,
  workflow_version INTEGER NOT NULL, created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL, state_entered_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attributes(
  transaction_id TEXT NOT NULL REFERENCES transactions(id),
  name TEXT NOT NULL, type TEXT NOT NULL, value TEXT NULL,
  written_version INTEGER NULL, PRIMARY KEY (transaction_id, name));
CREATE TABLE IF NOT EXISTS history(
  seq INTEGER PRIMARY KEY,
  transaction_id TEXT NOT NULL REFERENCES transactions(id),
  event TEXT NOT NULL, from_state TEXT NULL, to_state TEXT NOT NULL,
  time TEXT NOT NULL, actor TEXT NULL, payload TEXT NULL,
  internal INTEGER NOT NULL DEFAULT 0, workflow_version INTEGER NOT NULL,
  source TEXT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS history_source ON history(source)
  WHERE source IS NOT NULL;
CREATE INDEX IF NOT EXISTS history_txn ON history(transaction_id, seq);
CREATE INDEX IF NOT EXISTS history_time ON history(time);
CREATE TABLE IF NOT EXISTS deviations(
  id INTEGER PRIMARY KEY, transaction_id TEXT NOT NULL, kind TEXT NOT NULL,
  position INTEGER NOT NULL, state TEXT NOT NULL, event TEXT NOT NULL,
  time TEXT NOT NULL, reason TEXT NOT NULL, source TEXT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS deviations_source ON deviations(source)
  WHERE source IS NOT NULL;
CREATE TABLE IF NOT EXISTS imports(
  id INTEGER PRIMARY KEY, file TEXT, kind TEXT, started_at TEXT,
  cases INTEGER, events_applied INTEGER, deviations INTEGER,
  rejected INTEGER, skipped INTEGER);
CREATE TABLE IF NOT EXISTS customers(
  id TEXT PRIMARY KEY, name TEXT NULL, email TEXT NULL, phone TEXT NULL,
  attributes TEXT NULL
    CHECK (attributes IS NULL OR json_valid(attributes)),
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  merged_into TEXT NULL REFERENCES customers(id));
CREATE TABLE IF NOT EXISTS merges(
  id INTEGER PRIMARY KEY,
  survivor TEXT NOT NULL REFERENCES customers(id),
  merged TEXT NOT NULL REFERENCES customers(id),
  actor TEXT NOT NULL, time TEXT NOT NULL,
  details TEXT NOT NULL CHECK (json_valid(details)),
  undone_at TEXT NULL);
CREATE TABLE IF NOT EXISTS identities(
  id INTEGER PRIMARY KEY,
  customer_id TEXT NOT NULL REFERENCES customers(id),
  kind TEXT NOT NULL CHECK (kind IN ('email', 'phone', 'web', 'source')),
  value TEXT NOT NULL, normalized TEXT NOT NULL, source TEXT NULL,
  created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transactions_customer ON transactions(customer_id);
CREATE INDEX IF NOT EXISTS customers_merged ON customers(merged_into)
  WHERE merged_into IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS identities_unique
  ON identities(customer_id, kind, normalized);
CREATE INDEX IF NOT EXISTS identities_lookup ON identities(kind, normalized);
)sql";

// The changes from schema version 1 to 2 that CREATE ... IF NOT EXISTS
// cannot make (columns of existing tables).
constexpr const char* kMigrate1To2 = R"sql(
ALTER TABLE attributes ADD COLUMN written_version INTEGER NULL;
)sql";

// The invariants every writer must keep, as triggers (created after the
// migration, since they name columns version 1 lacks).  The engine stamps
// the attribute rows it writes with the transaction's new version
// (written_version); a row written through SQL leaves it NULL or unchanged,
// which is what tells the two apart without a per-connection flag (a
// trigger cannot see one).  SQL writes set updated_at to the wall clock.
constexpr const char* kTriggers = R"sql(
CREATE TRIGGER IF NOT EXISTS history_no_update BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS history_no_delete BEFORE DELETE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS transactions_state_by_transition
BEFORE UPDATE OF state ON transactions
WHEN NEW.state IS NOT OLD.state AND NEW.state IS NOT (
  SELECT h.to_state FROM history h WHERE h.transaction_id = NEW.id
  ORDER BY h.seq DESC LIMIT 1)
BEGIN
  SELECT RAISE(ABORT, 'transactions.state changes only through a transition');
END;
CREATE TRIGGER IF NOT EXISTS transactions_id_fixed
BEFORE UPDATE OF id ON transactions WHEN NEW.id IS NOT OLD.id
BEGIN SELECT RAISE(ABORT, 'transactions.id cannot change'); END;
CREATE TRIGGER IF NOT EXISTS transactions_no_delete
BEFORE DELETE ON transactions
BEGIN SELECT RAISE(ABORT, 'transactions are kept with their history'); END;
CREATE TRIGGER IF NOT EXISTS transactions_sql_write
AFTER UPDATE ON transactions WHEN NEW.version IS OLD.version
BEGIN
  UPDATE transactions SET version = OLD.version + 1,
    updated_at = CASE WHEN NEW.updated_at IS OLD.updated_at
      THEN strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
      ELSE NEW.updated_at END
  WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS attributes_sql_insert
AFTER INSERT ON attributes WHEN NEW.written_version IS NULL
BEGIN
  UPDATE transactions SET version = version + 1,
    updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
  WHERE id = NEW.transaction_id;
END;
CREATE TRIGGER IF NOT EXISTS attributes_sql_update
AFTER UPDATE ON attributes
WHEN NEW.written_version IS NULL OR NEW.written_version IS OLD.written_version
BEGIN
  UPDATE transactions SET version = version + 1,
    updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
  WHERE id IN (OLD.transaction_id, NEW.transaction_id);
END;
CREATE TRIGGER IF NOT EXISTS attributes_sql_delete
AFTER DELETE ON attributes
BEGIN
  UPDATE transactions SET version = version + 1,
    updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
  WHERE id = OLD.transaction_id;
END;
CREATE TRIGGER IF NOT EXISTS merges_no_delete BEFORE DELETE ON merges
BEGIN SELECT RAISE(ABORT, 'merges are kept (undo one instead)'); END;
CREATE TRIGGER IF NOT EXISTS merges_only_undo BEFORE UPDATE ON merges
WHEN NEW.id IS NOT OLD.id OR NEW.survivor IS NOT OLD.survivor
  OR NEW.merged IS NOT OLD.merged OR NEW.actor IS NOT OLD.actor
  OR NEW.time IS NOT OLD.time OR NEW.details IS NOT OLD.details
  OR OLD.undone_at IS NOT NULL
BEGIN
  SELECT RAISE(ABORT, 'merges change only by setting undone_at once');
END;
)sql";

// The cached statements, by purpose.
enum Stmt {
  kBegin,
  kCommit,
  kRollback,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kLoadTxn,
  kLoadAttrs,
  kLoadVersion,
  kInsertTxn,
  kInsertAttr,
  kUpsertAttr,
  kDeleteStaleAttrs,
  kSetVersion,
  kUpdateTxn,
  kUpdateState,
  kInsertHistory,
  kHasSource,
  kInsertDeviation,
  kInsertImport,
  kSaveWorkflow,
  kLoadWorkflows,
  kQueryDeviations,
  kQueryImports,
  kQueryTxns,
  kStmtCount,
};

const char* StmtSql(Stmt s) {
  switch (s) {
    case kBegin:
      return "BEGIN IMMEDIATE";
    case kCommit:
      return "COMMIT";
    case kRollback:
      return "ROLLBACK";
    case kSavepoint:
      return "SAVEPOINT crmflow_sp";
    case kRelease:
      return "RELEASE crmflow_sp";
    case kRollbackTo:
      return "ROLLBACK TO crmflow_sp";
    case kLoadTxn:
      return "SELECT id, kind, state, customer_id, parent_id, version, "
             "workflow_version, created_at, updated_at, state_entered_at "
             "FROM transactions WHERE id = ?1";
    case kLoadAttrs:
      return "SELECT name, type, value FROM attributes "
             "WHERE transaction_id = ?1 ORDER BY rowid";
    case kLoadVersion:
      return "SELECT version FROM transactions WHERE id = ?1";
    case kInsertTxn:
      return "INSERT INTO transactions(id, kind, state, customer_id, "
             "parent_id, version, workflow_version, created_at, updated_at, "
             "state_entered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
             "?10)";
    case kInsertAttr:
      return "INSERT INTO attributes(transaction_id, name, type, value, "
             "written_version) VALUES (?1, ?2, ?3, ?4, ?5)";
    case kUpsertAttr:
      return "INSERT INTO attributes(transaction_id, name, type, value, "
             "written_version) VALUES (?1, ?2, ?3, ?4, ?5) "
             "ON CONFLICT(transaction_id, name) DO UPDATE SET "
             "type = excluded.type, value = excluded.value, "
             "written_version = excluded.written_version";
    case kDeleteStaleAttrs:
      return "DELETE FROM attributes WHERE transaction_id = ?1 AND "
             "written_version IS NOT ?2";
    case kSetVersion:
      return "UPDATE transactions SET version = ?2, updated_at = ?3 "
             "WHERE id = ?1";
    case kUpdateTxn:
      return "UPDATE transactions SET state = ?2, version = ?3, "
             "created_at = ?4, updated_at = ?5, state_entered_at = ?6 "
             "WHERE id = ?1 AND version = ?7";
    case kUpdateState:
      return "UPDATE transactions SET state = ?2, version = ?3, "
             "updated_at = ?4, state_entered_at = ?5 "
             "WHERE id = ?1 AND version = ?6";
    case kInsertHistory:
      return "INSERT INTO history(transaction_id, event, from_state, "
             "to_state, time, actor, payload, internal, workflow_version, "
             "source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    case kHasSource:
      return "SELECT EXISTS(SELECT 1 FROM history WHERE source = ?1) OR "
             "EXISTS(SELECT 1 FROM deviations WHERE source = ?1)";
    case kInsertDeviation:
      return "INSERT INTO deviations(transaction_id, kind, position, state, "
             "event, time, reason, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
             "?7, ?8)";
    case kInsertImport:
      return "INSERT INTO imports(file, kind, started_at, cases, "
             "events_applied, deviations, rejected, skipped) VALUES (?1, ?2, "
             "?3, ?4, ?5, ?6, ?7, ?8)";
    case kSaveWorkflow:
      // Registering a stored version again (every open does) keeps its
      // row, registration time included; only a new definition replaces
      // it.
      return "INSERT INTO workflows(name, version, definition, "
             "registered_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(name, "
             "version) DO UPDATE SET definition = excluded.definition, "
             "registered_at = excluded.registered_at WHERE definition IS "
             "NOT excluded.definition";
    case kLoadWorkflows:
      return "SELECT name, version, definition FROM workflows "
             "ORDER BY name, version";
    case kQueryDeviations:
      return "SELECT id, transaction_id, kind, position, state, event, time, "
             "reason, source FROM deviations WHERE ?1 = '' OR kind = ?1 "
             "ORDER BY id";
    case kQueryImports:
      return "SELECT id, file, kind, started_at, cases, events_applied, "
             "deviations, rejected, skipped FROM imports ORDER BY id";
    case kQueryTxns:
      return "SELECT id, kind, state, customer_id, parent_id, version, "
             "workflow_version, created_at, updated_at, state_entered_at "
             "FROM transactions WHERE (?1 = '' OR kind = ?1) AND "
             "(?2 = '' OR state = ?2) ORDER BY id";
    case kStmtCount:
      break;
  }
  return "";
}

// Resets a statement when the scope ends, whatever the outcome, so no
// statement keeps a read transaction open.
class Scoped {
 public:
  explicit Scoped(sqlite3_stmt* s) : s_(s) {}
  ~Scoped() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_;
};

// Binds text that outlives the statement's step (SQLITE_STATIC: no copy).
void BindText(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()),
                    SQLITE_STATIC);
}
// Binds "" as NULL: optional columns are NULL when absent.
void BindTextOrNull(sqlite3_stmt* s, int i, std::string_view v) {
  if (v.empty()) {
    sqlite3_bind_null(s, i);
  } else {
    BindText(s, i, v);
  }
}

std::string ColumnText(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  if (p == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(p),
                     sqlite3_column_bytes(s, i));
}

void ColumnTextInto(sqlite3_stmt* s, int i, std::string* out) {
  const auto* p = sqlite3_column_text(s, i);
  if (p == nullptr) {
    out->clear();
  } else {
    out->assign(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s, i));
  }
}

class SqliteStore final : public internal::StoreImpl {
 public:
  SqliteStore(sqlite3* db, std::string path, SqliteOptions options)
      : db_(db), path_(std::move(path)), options_(options) {
    stmts_.fill(nullptr);
  }

  ~SqliteStore() override {
    if (depth_ > 0 && !sqlite3_get_autocommit(db_)) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    for (sqlite3_stmt* s : stmts_) sqlite3_finalize(s);
    for (auto& [sql, s] : dynamic_) sqlite3_finalize(s);
    sqlite3_close_v2(db_);
  }

  // Sets pragmas and creates or checks the schema.
  Status Init() {
    sqlite3_busy_timeout(db_, options_.busy_timeout_ms);
    sqlite3_extended_result_codes(db_, 1);
    CRMFLOW_RETURN_IF_ERROR(ExecRetry("PRAGMA journal_mode=WAL"));
    CRMFLOW_RETURN_IF_ERROR(ExecRetry("PRAGMA synchronous=NORMAL"));
    CRMFLOW_RETURN_IF_ERROR(ExecRetry("PRAGMA foreign_keys=ON"));
    CRMFLOW_RETURN_IF_ERROR(Begin());
    Status st = CreateSchema();
    if (!st.ok()) {
      (void)Rollback();
      return st;
    }
    return Commit();
  }

  bool in_process() const override { return false; }

  Status Begin() override {
    if (depth_ == 0) {
      // BUSY can only come from BEGIN IMMEDIATE itself (the busy handler
      // already waited busy_timeout_ms); nothing has been done yet, so a
      // retry is safe.
      for (int attempt = 0;; ++attempt) {
        sqlite3_stmt* s = nullptr;
        CRMFLOW_RETURN_IF_ERROR(Get(kBegin, &s));
        Scoped scope(s);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) break;
        if ((rc & 0xFF) != SQLITE_BUSY && (rc & 0xFF) != SQLITE_LOCKED) {
          return Error("begin immediate", rc);
        }
        if (attempt >= options_.busy_retries) {
          return Status(Code::kStoreError,
                        "sqlite \"" + path_ + "\": database busy after " +
                            std::to_string(attempt + 1) +
                            " attempts (expected the lock within " +
                            std::to_string(options_.busy_timeout_ms) +
                            " ms)");
        }
      }
    } else {
      // SQLite rolls a whole transaction back on its own after some I/O
      // errors (a full disk while spilling the cache).  A savepoint then
      // would open a transaction of its own, committed by its RELEASE:
      // the caller's later writes would land one by one, outside the
      // batch it thinks it is in.
      if (sqlite3_get_autocommit(db_)) return Aborted("savepoint");
      CRMFLOW_RETURN_IF_ERROR(Run(kSavepoint, "savepoint"));
    }
    ++depth_;
    return Status::Ok();
  }

  Status Commit() override {
    if (depth_ == 0) {
      return Status(Code::kStoreError,
                    "sqlite \"" + path_ + "\": commit without begin");
    }
    if (depth_ > 1) {
      if (sqlite3_get_autocommit(db_)) {
        --depth_;
        return Aborted("release savepoint");
      }
      CRMFLOW_RETURN_IF_ERROR(Run(kRelease, "release savepoint"));
      --depth_;
      return Status::Ok();
    }
    if (sqlite3_get_autocommit(db_)) {
      depth_ = 0;
      return Aborted("commit");
    }
    Status st = Run(kCommit, "commit");
    if (!st.ok()) {
      // Never leave a half-open transaction behind a failed commit.
      if (!sqlite3_get_autocommit(db_)) (void)Run(kRollback, "rollback");
    }
    depth_ = 0;
    return st;
  }

  Status Rollback() override {
    if (depth_ == 0) {
      return Status(Code::kStoreError,
                    "sqlite \"" + path_ + "\": rollback without begin");
    }
    if (depth_ > 1) {
      --depth_;
      if (sqlite3_get_autocommit(db_)) return Status::Ok();
      CRMFLOW_RETURN_IF_ERROR(Run(kRollbackTo, "rollback to savepoint"));
      return Run(kRelease, "release savepoint");
    }
    depth_ = 0;
    // SQLite may already have rolled back on its own (e.g. disk full).
    if (sqlite3_get_autocommit(db_)) return Status::Ok();
    return Run(kRollback, "rollback");
  }

  int depth() const override { return depth_; }

  StatusOr<bool> LoadTransaction(std::string_view id,
                                 Transaction* out) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kLoadTxn, &s));
    {
      Scoped scope(s);
      BindText(s, 1, id);
      int rc = StepRetry(s);
      if (rc == SQLITE_DONE) return false;
      if (rc != SQLITE_ROW) return Error("load transaction", rc);
      CRMFLOW_RETURN_IF_ERROR(ReadTxnRow(s, out));
    }
    CRMFLOW_RETURN_IF_ERROR(LoadAttributes(id, &out->attributes));
    return true;
  }

  StatusOr<std::optional<int64_t>> LoadVersion(std::string_view id) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kLoadVersion, &s));
    Scoped scope(s);
    BindText(s, 1, id);
    int rc = StepRetry(s);
    if (rc == SQLITE_DONE) return std::optional<int64_t>();
    if (rc != SQLITE_ROW) return Error("load version", rc);
    return std::optional<int64_t>(sqlite3_column_int64(s, 0));
  }

  Status InsertTransaction(const Transaction& txn) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kInsertTxn, &s));
    {
      Scoped scope(s);
      std::string created = txn.created_at.ToIso();
      std::string updated = txn.updated_at.ToIso();
      std::string entered = txn.state_entered_at.ToIso();
      BindText(s, 1, txn.id);
      BindText(s, 2, txn.kind);
      BindText(s, 3, txn.state);
      BindTextOrNull(s, 4, txn.customer_id);
      BindTextOrNull(s, 5, txn.parent_id);
      sqlite3_bind_int64(s, 6, txn.version);
      sqlite3_bind_int64(s, 7, txn.workflow_version);
      BindText(s, 8, created);
      BindText(s, 9, updated);
      BindText(s, 10, entered);
      int rc = StepRetry(s);
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status(Code::kAlreadyExists,
                      "transaction \"" + txn.id + "\" already exists");
      }
      if (rc != SQLITE_DONE) return Error("insert transaction", rc);
    }
    return InsertAttributes(txn);
  }

  Status UpdateTransaction(const Transaction& txn,
                           int64_t expected_version) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kUpdateTxn, &s));
    {
      Scoped scope(s);
      std::string created = txn.created_at.ToIso();
      std::string updated = txn.updated_at.ToIso();
      std::string entered = txn.state_entered_at.ToIso();
      BindText(s, 1, txn.id);
      BindText(s, 2, txn.state);
      sqlite3_bind_int64(s, 3, txn.version);
      BindText(s, 4, created);
      BindText(s, 5, updated);
      BindText(s, 6, entered);
      sqlite3_bind_int64(s, 7, expected_version);
      int rc = StepRetry(s);
      if (rc != SQLITE_DONE) return Error("update transaction", rc);
      if (sqlite3_changes(db_) == 0) {
        return UpdateMissed(txn.id, expected_version);
      }
    }
    // Rows are upserted stamped with the new version (so the attribute
    // triggers know the engine wrote them); whatever carries another stamp
    // is no longer in `txn` and goes.
    CRMFLOW_RETURN_IF_ERROR(WriteAttributes(txn, kUpsertAttr));
    sqlite3_stmt* d;
    CRMFLOW_RETURN_IF_ERROR(Get(kDeleteStaleAttrs, &d));
    int deleted = 0;
    {
      Scoped scope(d);
      BindText(d, 1, txn.id);
      sqlite3_bind_int64(d, 2, txn.version);
      int rc = StepRetry(d);
      if (rc != SQLITE_DONE) return Error("delete attributes", rc);
      deleted = sqlite3_changes(db_);
    }
    if (deleted == 0) return Status::Ok();

    // The delete trigger counted each row as a SQL write: put the version
    // the engine chose back (the write lock is held, nobody saw it).
    sqlite3_stmt* v;
    CRMFLOW_RETURN_IF_ERROR(Get(kSetVersion, &v));
    Scoped scope(v);
    std::string updated = txn.updated_at.ToIso();
    BindText(v, 1, txn.id);
    sqlite3_bind_int64(v, 2, txn.version);
    BindText(v, 3, updated);
    int rc = StepRetry(v);
    if (rc != SQLITE_DONE) return Error("update transaction", rc);
    return Status::Ok();
  }

  StatusOr<int64_t> ApplyTransition(const Transaction& txn,
                                    int64_t expected_version,
                                    const HistoryRow& row) override {
    // The history row goes first: the state trigger accepts a new state
    // only when it is the to_state of the newest history row.  On a stale
    // version the row is already written; the caller's Rollback (this
    // runs inside Begin) removes it with everything else.
    auto seq = AppendHistory(row);
    if (!seq.ok()) {
      if (seq.status().code() == Code::kNotFound) {
        return UpdateMissed(txn.id, expected_version);
      }
      return seq.status();
    }
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kUpdateState, &s));
    std::string updated = txn.updated_at.ToIso();
    std::string entered = txn.state_entered_at.ToIso();
    Scoped scope(s);
    BindText(s, 1, txn.id);
    BindText(s, 2, txn.state);
    sqlite3_bind_int64(s, 3, txn.version);
    BindText(s, 4, updated);
    BindText(s, 5, entered);
    sqlite3_bind_int64(s, 6, expected_version);
    int rc = StepRetry(s);
    if (rc != SQLITE_DONE) return Error("update transaction", rc);
    if (sqlite3_changes(db_) == 0) {
      return UpdateMissed(txn.id, expected_version);
    }
    return seq;
  }

  StatusOr<int64_t> AppendHistory(const HistoryRow& row) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kInsertHistory, &s));
    Scoped scope(s);
    std::string time = row.time.ToIso();
    BindText(s, 1, row.transaction_id);
    BindText(s, 2, row.event);
    BindTextOrNull(s, 3, row.from_state);
    BindText(s, 4, row.to_state);
    BindText(s, 5, time);
    BindTextOrNull(s, 6, row.actor);
    BindTextOrNull(s, 7, row.payload);
    sqlite3_bind_int(s, 8, row.internal ? 1 : 0);
    sqlite3_bind_int(s, 9, row.workflow_version);
    BindTextOrNull(s, 10, row.source);
    int rc = StepRetry(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
      return Status(Code::kAlreadyExists,
                    "source \"" + row.source + "\" already recorded");
    }
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return Status(Code::kNotFound, "history row for unknown transaction \"" +
                                         row.transaction_id + "\"");
    }
    if (rc != SQLITE_DONE) return Error("append history", rc);
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
  }

  StatusOr<bool> HasSource(std::string_view source) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kHasSource, &s));
    Scoped scope(s);
    BindText(s, 1, source);
    int rc = StepRetry(s);
    if (rc != SQLITE_ROW) return Error("look up source", rc);
    return sqlite3_column_int(s, 0) != 0;
  }

  Status AppendDeviation(const Deviation& d) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kInsertDeviation, &s));
    Scoped scope(s);
    std::string time = d.time.ToIso();
    BindText(s, 1, d.transaction_id);
    BindText(s, 2, d.kind);
    sqlite3_bind_int(s, 3, d.position);
    BindText(s, 4, d.state);
    BindText(s, 5, d.event);
    BindText(s, 6, time);
    BindText(s, 7, d.reason);
    BindTextOrNull(s, 8, d.source);
    int rc = StepRetry(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
      return Status(Code::kAlreadyExists,
                    "source \"" + d.source + "\" already recorded");
    }
    if (rc != SQLITE_DONE) return Error("append deviation", rc);
    return Status::Ok();
  }

  StatusOr<int64_t> AppendImport(const ImportRecord& r) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kInsertImport, &s));
    Scoped scope(s);
    std::string started = r.started_at.ToIso();
    BindText(s, 1, r.file);
    BindText(s, 2, r.kind);
    BindText(s, 3, started);
    sqlite3_bind_int64(s, 4, r.cases);
    sqlite3_bind_int64(s, 5, r.events_applied);
    sqlite3_bind_int64(s, 6, r.deviations);
    sqlite3_bind_int64(s, 7, r.rejected);
    sqlite3_bind_int64(s, 8, r.skipped);
    int rc = StepRetry(s);
    if (rc != SQLITE_DONE) return Error("append import", rc);
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
  }

  StatusOr<std::vector<HistoryRow>> QueryHistory(
      const HistoryQuery& q) override {
    bool timed = q.from.has_value() || q.to.has_value();
    std::string sql =
        "SELECT h.seq, h.transaction_id, h.event, h.from_state, h.to_state, "
        "h.time, h.actor, h.payload, h.internal, h.workflow_version, "
        "h.source FROM history h";
    if (!q.kind.empty()) {
      sql += " JOIN transactions t ON t.id = h.transaction_id";
    }
    sql += " WHERE 1";
    if (!q.transaction_id.empty()) sql += " AND h.transaction_id = :id";
    if (!q.kind.empty()) sql += " AND t.kind = :kind";
    if (q.from) sql += " AND h.time >= :from";
    if (q.to) sql += " AND h.time < :to";
    sql += timed ? " ORDER BY h.time, h.seq" : " ORDER BY h.seq";
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(GetDynamic(sql, &s));
    Scoped scope(s);
    std::string from = q.from ? q.from->ToIso() : "";
    std::string to = q.to ? q.to->ToIso() : "";
    auto bind = [&](const char* name, std::string_view v) {
      int i = sqlite3_bind_parameter_index(s, name);
      if (i > 0) BindText(s, i, v);
    };
    bind(":id", q.transaction_id);
    bind(":kind", q.kind);
    bind(":from", from);
    bind(":to", to);
    std::vector<HistoryRow> out;
    int rc;
    while ((rc = StepRetry(s)) == SQLITE_ROW) {
      HistoryRow h;
      h.seq = sqlite3_column_int64(s, 0);
      h.transaction_id = ColumnText(s, 1);
      h.event = ColumnText(s, 2);
      h.from_state = ColumnText(s, 3);
      h.to_state = ColumnText(s, 4);
      CRMFLOW_RETURN_IF_ERROR(ReadTime(s, 5, &h.time));
      h.actor = ColumnText(s, 6);
      h.payload = ColumnText(s, 7);
      h.internal = sqlite3_column_int(s, 8) != 0;
      h.workflow_version = sqlite3_column_int(s, 9);
      h.source = ColumnText(s, 10);
      out.push_back(std::move(h));
    }
    if (rc != SQLITE_DONE) return Error("query history", rc);
    return out;
  }

  StatusOr<std::vector<Transaction>> QueryTransactions(
      std::string_view kind, std::string_view state) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kQueryTxns, &s));
    std::vector<Transaction> out;
    {
      Scoped scope(s);
      BindText(s, 1, kind);
      BindText(s, 2, state);
      int rc;
      while ((rc = StepRetry(s)) == SQLITE_ROW) {
        out.emplace_back();
        CRMFLOW_RETURN_IF_ERROR(ReadTxnRow(s, &out.back()));
      }
      if (rc != SQLITE_DONE) return Error("query transactions", rc);
    }
    for (Transaction& t : out) {
      CRMFLOW_RETURN_IF_ERROR(LoadAttributes(t.id, &t.attributes));
    }
    return out;
  }

  StatusOr<std::vector<Deviation>> QueryDeviations(
      std::string_view kind) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kQueryDeviations, &s));
    Scoped scope(s);
    BindText(s, 1, kind);
    std::vector<Deviation> out;
    int rc;
    while ((rc = StepRetry(s)) == SQLITE_ROW) {
      Deviation d;
      d.id = sqlite3_column_int64(s, 0);
      d.transaction_id = ColumnText(s, 1);
      d.kind = ColumnText(s, 2);
      d.position = sqlite3_column_int(s, 3);
      d.state = ColumnText(s, 4);
      d.event = ColumnText(s, 5);
      CRMFLOW_RETURN_IF_ERROR(ReadTime(s, 6, &d.time));
      d.reason = ColumnText(s, 7);
      d.source = ColumnText(s, 8);
      out.push_back(std::move(d));
    }
    if (rc != SQLITE_DONE) return Error("query deviations", rc);
    return out;
  }

  StatusOr<std::vector<ImportRecord>> QueryImports() override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kQueryImports, &s));
    Scoped scope(s);
    std::vector<ImportRecord> out;
    int rc;
    while ((rc = StepRetry(s)) == SQLITE_ROW) {
      ImportRecord r;
      r.id = sqlite3_column_int64(s, 0);
      r.file = ColumnText(s, 1);
      r.kind = ColumnText(s, 2);
      CRMFLOW_RETURN_IF_ERROR(ReadTime(s, 3, &r.started_at));
      r.cases = sqlite3_column_int64(s, 4);
      r.events_applied = sqlite3_column_int64(s, 5);
      r.deviations = sqlite3_column_int64(s, 6);
      r.rejected = sqlite3_column_int64(s, 7);
      r.skipped = sqlite3_column_int64(s, 8);
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return Error("query imports", rc);
    return out;
  }

  Status SaveWorkflow(const StoredWorkflow& wf) override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kSaveWorkflow, &s));
    Scoped scope(s);
    Timestamp now{std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()};
    std::string registered = now.ToIso();
    BindText(s, 1, wf.name);
    sqlite3_bind_int(s, 2, wf.version);
    BindText(s, 3, wf.definition);
    BindText(s, 4, registered);
    int rc = StepRetry(s);
    if (rc != SQLITE_DONE) return Error("save workflow", rc);
    return Status::Ok();
  }

  StatusOr<std::vector<StoredWorkflow>> LoadWorkflows() override {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kLoadWorkflows, &s));
    Scoped scope(s);
    std::vector<StoredWorkflow> out;
    int rc;
    while ((rc = StepRetry(s)) == SQLITE_ROW) {
      out.push_back(StoredWorkflow{ColumnText(s, 0), sqlite3_column_int(s, 1),
                                   ColumnText(s, 2)});
    }
    if (rc != SQLITE_DONE) return Error("load workflows", rc);
    return out;
  }

 private:
  Status Error(const char* what, int rc) const {
    return Status(Code::kStoreError, "sqlite \"" + path_ + "\": " + what +
                                         " failed (" + sqlite3_errstr(rc) +
                                         ": " + sqlite3_errmsg(db_) + ")");
  }

  // The error for `what` inside a transaction SQLite has already rolled
  // back after an earlier failure.
  Status Aborted(const char* what) const {
    return Status(Code::kStoreError,
                  "sqlite \"" + path_ + "\": " + what +
                      " failed (the transaction was rolled back after an "
                      "earlier error; roll back and retry)");
  }

  Status Get(Stmt which, sqlite3_stmt** out) {
    sqlite3_stmt*& s = stmts_[which];
    if (s == nullptr) {
      int rc = sqlite3_prepare_v3(db_, StmtSql(which), -1,
                                  SQLITE_PREPARE_PERSISTENT, &s, nullptr);
      if (rc != SQLITE_OK) {
        s = nullptr;
        return Error("prepare", rc);
      }
    }
    *out = s;
    return Status::Ok();
  }

  Status GetDynamic(const std::string& sql, sqlite3_stmt** out) {
    auto it = dynamic_.find(sql);
    if (it == dynamic_.end()) {
      sqlite3_stmt* s = nullptr;
      int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1,
                                  SQLITE_PREPARE_PERSISTENT, &s, nullptr);
      if (rc != SQLITE_OK) return Error("prepare", rc);
      it = dynamic_.emplace(sql, s).first;
    }
    *out = it->second;
    return Status::Ok();
  }

  // Steps `s`; outside a transaction (autocommit reads and writes) a BUSY
  // is retried a bounded number of times.  Inside one it is returned: the
  // transaction may be half done and only the caller can decide.
  int StepRetry(sqlite3_stmt* s) {
    for (int attempt = 0;; ++attempt) {
      int rc = sqlite3_step(s);
      if ((rc & 0xFF) != SQLITE_BUSY || depth_ > 0 ||
          attempt >= options_.busy_retries) {
        return rc;
      }
      sqlite3_reset(s);
    }
  }

  Status Run(Stmt which, const char* what) {
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(which, &s));
    Scoped scope(s);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) return Error(what, rc);
    return Status::Ok();
  }

  Status ExecRetry(const char* sql) {
    for (int attempt = 0;; ++attempt) {
      int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) return Status::Ok();
      if ((rc & 0xFF) != SQLITE_BUSY || attempt >= options_.busy_retries) {
        return Error(sql, rc);
      }
    }
  }

  Status CreateSchema() {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, kSchema, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : "";
      sqlite3_free(err);
      return Status(Code::kStoreError, "sqlite \"" + path_ +
                                           "\": create schema failed (" +
                                           msg + ")");
    }
    sqlite3_stmt* s = nullptr;
    rc = sqlite3_prepare_v2(db_, "SELECT max(version) FROM schema_version",
                            -1, &s, nullptr);
    if (rc != SQLITE_OK) return Error("read schema version", rc);
    rc = sqlite3_step(s);
    bool empty = sqlite3_column_type(s, 0) == SQLITE_NULL;
    int64_t version = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) return Error("read schema version", rc);
    if (empty) {
      std::string sql = "INSERT INTO schema_version(version) VALUES (" +
                        std::to_string(kSchemaVersion) + ")";
      rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) return Error("write schema version", rc);
    } else if (version > kSchemaVersion) {
      return Status(Code::kStoreError,
                    "sqlite \"" + path_ + "\": schema version " +
                        std::to_string(version) +
                        " is newer than this build (expected at most " +
                        std::to_string(kSchemaVersion) + ")");
    } else if (version < kSchemaVersion) {
      CRMFLOW_RETURN_IF_ERROR(Migrate(version));
    }
    return ExecScript(kTriggers, "create triggers");
  }

  // Upgrades a file of schema `from` in place (inside Init's transaction,
  // so a failure leaves it as it was).  The new tables already exist.
  Status Migrate(int64_t from) {
    if (from < 1) {
      return Status(Code::kStoreError,
                    "sqlite \"" + path_ + "\": schema version " +
                        std::to_string(from) + " unknown (expected 1 to " +
                        std::to_string(kSchemaVersion) + ")");
    }
    if (from == 1) {
      CRMFLOW_RETURN_IF_ERROR(ExecScript(kMigrate1To2, "migrate 1 to 2"));
    }
    std::string sql = "UPDATE schema_version SET version = " +
                      std::to_string(kSchemaVersion);
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return Error("write schema version", rc);
    return Status::Ok();
  }

  // Runs a script of statements; `what` names it in the error.
  Status ExecScript(const char* sql, const char* what) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return Status::Ok();
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Status(Code::kStoreError,
                  "sqlite \"" + path_ + "\": " + what + " failed (" + msg +
                      ")");
  }

  Status ReadTime(sqlite3_stmt* s, int col, Timestamp* out) const {
    const auto* p = sqlite3_column_text(s, col);
    std::string_view text =
        p ? std::string_view(reinterpret_cast<const char*>(p),
                             sqlite3_column_bytes(s, col))
          : std::string_view();
    auto t = Timestamp::ParseIso(text);
    if (!t.ok()) {
      return Status(Code::kStoreError, "sqlite \"" + path_ +
                                           "\": stored time unreadable (" +
                                           t.status().message() + ")");
    }
    *out = *t;
    return Status::Ok();
  }

  Status ReadTxnRow(sqlite3_stmt* s, Transaction* out) {
    ColumnTextInto(s, 0, &out->id);
    ColumnTextInto(s, 1, &out->kind);
    ColumnTextInto(s, 2, &out->state);
    ColumnTextInto(s, 3, &out->customer_id);
    ColumnTextInto(s, 4, &out->parent_id);
    out->version = sqlite3_column_int64(s, 5);
    out->workflow_version = sqlite3_column_int(s, 6);
    CRMFLOW_RETURN_IF_ERROR(ReadTime(s, 7, &out->created_at));
    CRMFLOW_RETURN_IF_ERROR(ReadTime(s, 8, &out->updated_at));
    return ReadTime(s, 9, &out->state_entered_at);
  }

  Status LoadAttributes(std::string_view id, Attributes* out) {
    out->clear();
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(kLoadAttrs, &s));
    Scoped scope(s);
    BindText(s, 1, id);
    int rc;
    while ((rc = StepRetry(s)) == SQLITE_ROW) {
      std::string name = ColumnText(s, 0);
      std::string type_name = ColumnText(s, 1);
      auto type = ParseValueType(type_name);
      if (!type.ok()) {
        return Status(Code::kStoreError,
                      "sqlite \"" + path_ + "\": transaction \"" +
                          std::string(id) + "\" attribute \"" + name +
                          "\": " + type.status().message());
      }
      Value v;
      if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
        auto parsed = Value::FromText(*type, ColumnText(s, 2));
        if (!parsed.ok()) {
          return Status(Code::kStoreError,
                        "sqlite \"" + path_ + "\": transaction \"" +
                            std::string(id) + "\" attribute \"" + name +
                            "\": " + parsed.status().message());
        }
        v = std::move(*parsed);
      }
      out->emplace_back(std::move(name), std::move(v));
    }
    if (rc != SQLITE_DONE) return Error("load attributes", rc);
    return Status::Ok();
  }

  Status InsertAttributes(const Transaction& txn) {
    return WriteAttributes(txn, kInsertAttr);
  }

  // Writes the attributes of `txn` with `which` (kInsertAttr or
  // kUpsertAttr), stamped with txn.version.
  Status WriteAttributes(const Transaction& txn, Stmt which) {
    if (txn.attributes.empty()) return Status::Ok();
    sqlite3_stmt* s = nullptr;
    CRMFLOW_RETURN_IF_ERROR(Get(which, &s));
    for (const auto& [name, v] : txn.attributes) {
      Scoped scope(s);
      std::string text = v.ToText();
      BindText(s, 1, txn.id);
      BindText(s, 2, name);
      BindText(s, 3, ValueTypeName(v.type()));
      if (v.is_null()) {
        sqlite3_bind_null(s, 4);
      } else {
        BindText(s, 4, text);
      }
      sqlite3_bind_int64(s, 5, txn.version);
      int rc = StepRetry(s);
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status(Code::kInvalidArgument,
                      "transaction \"" + txn.id + "\": attribute \"" + name +
                          "\" given twice");
      }
      if (rc != SQLITE_DONE) return Error("insert attribute", rc);
    }
    return Status::Ok();
  }

  // Explains an UPDATE that matched no row: absent id or stale version.
  Status UpdateMissed(const std::string& id, int64_t expected) {
    auto v = LoadVersion(id);
    if (!v.ok()) return v.status();
    if (!v->has_value()) {
      return Status(Code::kNotFound, "transaction \"" + id + "\" not found");
    }
    return Status(Code::kConcurrentUpdate,
                  "transaction \"" + id + "\": stale version " +
                      std::to_string(expected) + " (stored version " +
                      std::to_string(**v) + ")");
  }

 public:
  // The connection, for modules that keep tables of their own (see
  // sqlite_handle.h).
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_;
  std::string path_;
  SqliteOptions options_;
  int depth_ = 0;
  std::array<sqlite3_stmt*, kStmtCount> stmts_;
  std::unordered_map<std::string, sqlite3_stmt*> dynamic_;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(
    const std::string& path, const SqliteOptions& options) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      options.vfs.empty() ? nullptr : options.vfs.c_str());
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status(Code::kStoreError,
                  "sqlite \"" + path + "\": open failed (" + msg + ")");
  }
  auto store = std::make_unique<SqliteStore>(db, path, options);
  CRMFLOW_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

sqlite3* SqliteHandle(Store& store) {
  auto* sqlite = dynamic_cast<SqliteStore*>(&store);
  return sqlite == nullptr ? nullptr : sqlite->handle();
}

}  // namespace crmflow
