// sqlite_handle.h: access to the SQLite connection behind a Store, for core
// modules that keep tables of their own (rules, timers, routing) in the same
// file and the same transactions as the engine.  Private to cpp/src.
//
// Such a module creates its tables with CREATE TABLE IF NOT EXISTS when it
// is first used, writes only inside the engine's Begin/Commit (so its rows
// commit or roll back with the transition that caused them), and lists its
// tables in docs/schema.md.

#ifndef CRMFLOW_SRC_SQLITE_HANDLE_H_
#define CRMFLOW_SRC_SQLITE_HANDLE_H_

#include <sqlite3.h>

#include "crmflow/store.h"

namespace crmflow {

// Returns the connection of a store made by OpenSqliteStore, or nullptr for
// any other store (the memory store).  The pointer lives as long as the
// store; use it from the engine's thread only.
sqlite3* SqliteHandle(Store& store);

}  // namespace crmflow

#endif  // CRMFLOW_SRC_SQLITE_HANDLE_H_
