// store.h: the persistence interface of the engine and its two
// implementations.
//
// The engine talks to its store only through the narrow Store interface
// below, written so that every implementation can use portable SQL: the
// embedded SQLite store (the default), an in-process memory store for
// throw-away work, and later a PostgreSQL store for many workers.
//
// SQLite schema (plain SQL types; times are TEXT in the fixed-width UTC
// form of Timestamp::ToIso, so text order is time order; money and other
// attribute values are TEXT in their canonical form, see value.h):
//
//   schema_version(version INTEGER)
//   workflows(name TEXT, version INTEGER, definition TEXT, registered_at
//             TEXT, PRIMARY KEY (name, version))
//   transactions(id TEXT PRIMARY KEY, kind TEXT, state TEXT, customer_id
//             TEXT NULL, parent_id TEXT NULL, version INTEGER,
//             workflow_version INTEGER, created_at TEXT, updated_at TEXT,
//             state_entered_at TEXT)
//   attributes(transaction_id TEXT, name TEXT, type TEXT, value TEXT NULL,
//             written_version INTEGER NULL (the transaction version the
//             engine wrote the row at; NULL when written through SQL),
//             PRIMARY KEY (transaction_id, name))
//   history(seq INTEGER PRIMARY KEY, transaction_id TEXT, event TEXT,
//             from_state TEXT NULL, to_state TEXT, time TEXT, actor TEXT
//             NULL, payload TEXT NULL (JSON), internal INTEGER (0/1),
//             workflow_version INTEGER, source TEXT NULL UNIQUE)
//   deviations(id INTEGER PRIMARY KEY, transaction_id TEXT, kind TEXT,
//             position INTEGER, state TEXT, event TEXT, time TEXT, reason
//             TEXT, source TEXT NULL UNIQUE)
//   imports(id INTEGER PRIMARY KEY, file TEXT, kind TEXT, started_at TEXT,
//             cases INTEGER, events_applied INTEGER, deviations INTEGER,
//             rejected INTEGER, skipped INTEGER)
//   customers(id TEXT PRIMARY KEY, name TEXT NULL, email TEXT NULL, phone
//             TEXT NULL, attributes TEXT NULL (JSON object), created_at
//             TEXT, updated_at TEXT, merged_into TEXT NULL (the surviving
//             customer after a merge))
//   identities(id INTEGER PRIMARY KEY, customer_id TEXT, kind TEXT
//             (email, phone, web or source), value TEXT (as given),
//             normalized TEXT, source TEXT NULL (the system it came from),
//             created_at TEXT, UNIQUE (customer_id, kind, normalized))
//   merges(id INTEGER PRIMARY KEY, survivor TEXT, merged TEXT, actor TEXT,
//             time TEXT, details TEXT (JSON: what moved), undone_at TEXT
//             NULL)
//
// The creation of a transaction is the history row with event "create",
// from_state NULL and to_state the initial state, so a transaction's state
// always equals the to_state of its last history row.
//
// Triggers keep the invariants whoever writes (an ORM, the sqlite3 shell):
// history rows cannot be updated or deleted ("history is append-only"),
// transactions cannot be deleted or renamed, and an UPDATE that changes a
// transaction's state is refused unless the new state is the to_state of
// its newest history row (writers append the row first).  An UPDATE of a
// transaction that leaves its version unchanged, and any write of an
// attribute row not stamped by the engine (written_version), adds 1 to the
// transaction's version and sets updated_at, so an engine's cached copy is
// stale and reloaded.  Merges change only by setting undone_at once.
//
// Schema version 1 files are migrated in place when opened (new tables,
// the written_version column, the triggers).
//
// A Store is used by one Engine from one thread at a time; several
// processes may share one SQLite file (WAL mode, busy timeout, BEGIN
// IMMEDIATE for every write transaction).

#ifndef CRMFLOW_STORE_H_
#define CRMFLOW_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/status.h"
#include "crmflow/value.h"

namespace crmflow {

// The current schema version written to schema_version.
inline constexpr int kSchemaVersion = 2;

// One CRM transaction (an order, a request, ...).
struct Transaction {
  std::string id;
  std::string kind;
  std::string state;
  std::string customer_id;  // "" when none
  std::string parent_id;    // id of a linked transaction, "" when none
  Attributes attributes;
  int64_t version = 0;      // 1 after create, +1 on every accepted write
  int workflow_version = 0;
  Timestamp created_at;
  Timestamp updated_at;
  Timestamp state_entered_at;
};

// One accepted transition (or the creation row).
struct HistoryRow {
  int64_t seq = 0;  // assigned by the store, increasing
  std::string transaction_id;
  std::string event;
  std::string from_state;  // "" for the creation row
  std::string to_state;
  Timestamp time;
  std::string actor;    // "" when none
  std::string payload;  // JSON text, "" when none
  bool internal = false;
  int workflow_version = 0;
  std::string source;  // import key for idempotent re-import, "" when none
};

// An event the workflow did not allow, recorded during an import.
struct Deviation {
  int64_t id = 0;
  std::string transaction_id;
  std::string kind;
  int position = 0;  // 0-based position of the event within its case
  std::string state;
  std::string event;
  Timestamp time;
  std::string reason;
  std::string source;
};

// A summary row of one import run.
struct ImportRecord {
  int64_t id = 0;
  std::string file;
  std::string kind;
  Timestamp started_at;
  int64_t cases = 0;
  int64_t events_applied = 0;
  int64_t deviations = 0;
  int64_t rejected = 0;
  int64_t skipped = 0;
};

// A stored workflow definition (the text is whatever the registrant gave,
// JSON from the Python layer).
struct StoredWorkflow {
  std::string name;
  int version = 0;
  std::string definition;
};

// Filters for QueryHistory; unset fields match everything.  Time bounds are
// half-open: from <= time < to.
struct HistoryQuery {
  std::string transaction_id;
  std::string kind;
  std::optional<Timestamp> from;
  std::optional<Timestamp> to;
};

class Store {
 public:
  virtual ~Store() = default;

  // Starts a write transaction (BEGIN IMMEDIATE when none is open, a
  // SAVEPOINT when nested).  Every Begin is matched by Commit or Rollback.
  virtual Status Begin() = 0;
  virtual Status Commit() = 0;
  // Undoes everything since the matching Begin.  Never fails silently: a
  // failed rollback returns kStoreError.
  virtual Status Rollback() = 0;
  // Returns the nesting depth of open Begin calls.
  virtual int depth() const = 0;

  // Reads a transaction with its attributes.  Returns false when absent.
  virtual StatusOr<bool> LoadTransaction(std::string_view id,
                                         Transaction* out) = 0;
  // Returns the stored version of `id`, or nullopt when absent.
  virtual StatusOr<std::optional<int64_t>> LoadVersion(
      std::string_view id) = 0;
  // Inserts a new transaction and its attributes.  Fails with kAlreadyExists
  // naming the id when it exists.
  virtual Status InsertTransaction(const Transaction& txn) = 0;
  // Writes state, attributes, version and times of `txn` if the stored
  // version equals `expected_version`; otherwise fails with
  // kConcurrentUpdate naming the id and both versions.
  virtual Status UpdateTransaction(const Transaction& txn,
                                   int64_t expected_version) = 0;
  // Appends a history row and returns its seq.  Fails with kAlreadyExists
  // when a row with the same non-empty source exists.
  virtual StatusOr<int64_t> AppendHistory(const HistoryRow& row) = 0;
  // Returns true when a history row or deviation with this source exists.
  virtual StatusOr<bool> HasSource(std::string_view source) = 0;
  virtual Status AppendDeviation(const Deviation& deviation) = 0;
  virtual StatusOr<int64_t> AppendImport(const ImportRecord& record) = 0;

  // Rows ordered by (time, seq) when a time bound is given, else by seq.
  virtual StatusOr<std::vector<HistoryRow>> QueryHistory(
      const HistoryQuery& query) = 0;
  // Transactions of `kind` ("" = all), optionally in `state`, ordered by id.
  virtual StatusOr<std::vector<Transaction>> QueryTransactions(
      std::string_view kind, std::string_view state) = 0;
  virtual StatusOr<std::vector<Deviation>> QueryDeviations(
      std::string_view kind) = 0;
  virtual StatusOr<std::vector<ImportRecord>> QueryImports() = 0;

  virtual Status SaveWorkflow(const StoredWorkflow& wf) = 0;
  // Every stored definition, ordered by (name, version).
  virtual StatusOr<std::vector<StoredWorkflow>> LoadWorkflows() = 0;
};

// Options for the SQLite store.
struct SqliteOptions {
  // Milliseconds a writer waits for another's lock before retrying.
  int busy_timeout_ms = 10000;
  // How many times a write transaction is retried after SQLITE_BUSY.
  int busy_retries = 50;
  // The name of a registered SQLite VFS to open the file through; "" (the
  // default) uses SQLite's default VFS.  For a VFS that wraps the default
  // one, e.g. to inject I/O failures in tests (tests/cpp/fault_test.cc).
  std::string vfs;
};

// Opens (creating when absent) the SQLite file at `path`, or an in-memory
// SQLite database for ":memory:".  Creates the schema, or checks the stored
// schema_version: migrates an older file in place, and fails with
// kStoreError naming the file and both versions when it is newer than
// kSchemaVersion.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                 const SqliteOptions& options);

// Returns a store that keeps everything in this process's memory, compactly
// (names interned), and loses it on close.  Nested Begin/Rollback work as in
// SQLite.
std::unique_ptr<Store> NewMemoryStore();

}  // namespace crmflow

#endif  // CRMFLOW_STORE_H_
