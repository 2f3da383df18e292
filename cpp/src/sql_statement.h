// sql_statement.h: a prepared SQLite statement that finalizes itself, and
// a one-shot Exec, for the core modules that keep tables of their own in
// the engine's file (numbering, routing, approvals, scheduler).  Private to
// cpp/src.  ReadRows runs a query to its end, one struct per row.
//
// Errors are kStoreError "<module>: <what>: <SQLite's message>", where
// `module` names the module and `what` the step that failed, so that a
// full disk during an assignment reads "routing: save assignment: database
// or disk is full".

#ifndef CRMFLOW_SRC_SQL_STATEMENT_H_
#define CRMFLOW_SRC_SQL_STATEMENT_H_

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "crmflow/status.h"

namespace crmflow {

class SqlStatement {
 public:
  // Prepares `sql` on `db`; check ok() before binding.  `module` must be a
  // string literal (it is kept, not copied).
  SqlStatement(sqlite3* db, const char* sql, const char* module)
      : db_(db), module_(module) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~SqlStatement() { sqlite3_finalize(stmt_); }
  SqlStatement(const SqlStatement&) = delete;
  SqlStatement& operator=(const SqlStatement&) = delete;

  // Returns true when the statement was prepared.
  bool ok() const { return rc_ == SQLITE_OK; }

  // Binds parameter `i` (1-based); text is copied by SQLite.
  void Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  // Binds NULL for empty text (optional columns).
  void BindTextOrNull(int i, std::string_view v) {
    if (v.empty()) {
      sqlite3_bind_null(stmt_, i);
    } else {
      Bind(i, v);
    }
  }

  // Returns SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }

  // Column `i` (0-based) of the current row; NULL reads as "" or 0.
  std::string ColumnText(int i) {
    const unsigned char* t = sqlite3_column_text(stmt_, i);
    return t == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(t));
  }
  int64_t ColumnInt(int i) { return sqlite3_column_int64(stmt_, i); }
  bool ColumnIsNull(int i) {
    return sqlite3_column_type(stmt_, i) == SQLITE_NULL;
  }
  double ColumnDouble(int i) { return sqlite3_column_double(stmt_, i); }

  // The prepared statement, for readers written against the C API.
  sqlite3_stmt* get() const { return stmt_; }

  // Returns the connection's last error as a kStoreError for step `what`.
  Status Error(std::string_view what) const {
    return Status(Code::kStoreError, std::string(module_) + ": " +
                                         std::string(what) + ": " +
                                         sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_;
  const char* module_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// Steps `stmt` (prepared, parameters bound) to its end and returns one
// Row per result row, made by `fn(stmt)` while the row is current.  `fn`
// returns a Row, or a StatusOr<Row> whose error ends the read and is
// returned as it is (a stored value that does not parse, say).  A
// statement that did not prepare or a failing step gives stmt.Error(what).
template <typename Row, typename Fn>
StatusOr<std::vector<Row>> ReadRows(SqlStatement& stmt, std::string_view what,
                                    Fn&& fn) {
  if (!stmt.ok()) return stmt.Error(what);
  std::vector<Row> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    if constexpr (std::is_same_v<std::decay_t<decltype(fn(stmt))>, Row>) {
      out.push_back(fn(stmt));
    } else {
      auto row = fn(stmt);
      if (!row.ok()) return row.status();
      out.push_back(std::move(row).value());
    }
  }
  if (rc != SQLITE_DONE) return stmt.Error(what);
  return out;
}

// Runs `sql` (one or more statements without parameters) on `db`.
inline Status SqlExec(sqlite3* db, const char* sql, const char* module,
                      std::string_view what) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) == SQLITE_OK) {
    return Status::Ok();
  }
  std::string message = std::string(module) + ": " + std::string(what) +
                        ": " + (err != nullptr ? err : "unknown error");
  sqlite3_free(err);
  return Status(Code::kStoreError, message);
}

}  // namespace crmflow

#endif  // CRMFLOW_SRC_SQL_STATEMENT_H_
