// importer.h: replaying real CRM exports through an Engine.
//
// Two shapes of export are understood:
//
//  * an event log: one row per event, with a case id, an activity or status,
//    a time and optionally an actor and other columns.  Activities map to
//    workflow events (activity_map); statuses map to workflow states
//    (status_map), and the importer fires the first declared transition
//    from the current state to that state; a status equal to the current
//    state is an update without transition (counted as unchanged).  The
//    first row of a case creates the transaction (its activity or status
//    must lead to or be the initial state, or a create_activity names it).
//
//  * a milestone table: one row per transaction, one timestamp column per
//    milestone (each mapped to one or more events fired in order), and a
//    final status column mapped to a state.  Milestones are replayed in
//    time order; if the final state differs from the mapped status, the
//    shortest path of transitions to it (breadth-first search on the
//    workflow graph) is fired at the last known time with payload
//    {"inferred":true}; when none exists it is a deviation.
//
// Contract for ordering: the events of a case are replayed by (instant, row
// in file); ties keep file order.  Events the workflow does not allow are
// recorded as deviations (case, position, state, event) and the case goes
// on.  Rows that cannot be parsed (empty or unparseable required fields,
// unknown status) are rejected with file:line:column and the reason; their
// whole case is left out (nothing half-applied), unless on_error is kRaise,
// in which case the first one fails the import and nothing is written.
//
// Every history row and deviation written carries a source key derived
// from the case and the event's position, so importing the same file again
// adds nothing (counted as skipped).  The whole import is one store
// transaction: an I/O or store failure leaves the database as it was.
//
// Memory: the file is streamed; what an import keeps until it writes is
// about 28 bytes per event plus a small record per case, every text (case
// id, actor, customer, payload) stored once however often it repeats, so
// it grows with the events and distinct values, not with the file's text
// (2M events: about 45 bytes per event in all).

#ifndef CRMFLOW_IMPORTER_H_
#define CRMFLOW_IMPORTER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "crmflow/csv.h"
#include "crmflow/engine.h"
#include "crmflow/status.h"

namespace crmflow {

// Copies a column's text into an attribute of a declared type.  Empty cells
// (and cells equal to one of the mapping's null_values) give null.
struct ColumnAttribute {
  std::string column;
  std::string attribute;
  ValueType type = ValueType::kText;
};

enum class OnError { kCollect = 0, kRaise };

struct CommonMapping {
  std::string kind;
  // Case id: the named columns' values joined with ":".
  std::vector<std::string> case_columns;
  std::string customer_column;  // optional
  std::string parent_column;    // optional link to another transaction
  std::string id_prefix;        // prepended to the case id
  std::vector<ColumnAttribute> attributes;  // set at create (first row)
  std::string time_format;      // see timestamp.h; "" = ISO
  std::string time_zone = "UTC";  // for values without offset
  std::vector<std::string> null_values;  // e.g. "?", "NA"
  CsvOptions csv;
  OnError on_error = OnError::kCollect;
  // Commit granularity inside the import; 0 = one transaction.
  int64_t commit_every = 0;
};

struct EventLogMapping {
  CommonMapping common;
  std::string activity_column;  // activity or status column
  std::string time_column;
  std::string actor_column;     // optional
  // Columns copied into each event's JSON payload (text values).
  std::vector<std::string> payload_columns;
  // activity value -> event name.  Empty map: the value is the event name.
  // An activity mapped to "" is ignored (counted as ignored).
  std::vector<std::pair<std::string, std::string>> activity_map;
  // status value -> state name.  When non-empty the column holds statuses.
  std::vector<std::pair<std::string, std::string>> status_map;
};

struct Milestone {
  std::string column;
  std::vector<std::string> events;  // fired in this order at that time
};

struct MilestoneMapping {
  CommonMapping common;
  std::string created_column;       // time of creation (required)
  std::vector<Milestone> milestones;
  std::string status_column;        // optional final status
  std::vector<std::pair<std::string, std::string>> status_map;
};

// A row that could not be used.
struct Reject {
  std::string file;
  int64_t line = 0;
  int column = 0;  // 1-based, 0 when the whole row is concerned
  std::string case_id;
  std::string reason;
  // Returns "file:line:column: reason".
  std::string ToString() const;
};

struct ImportSummary {
  std::string file;
  std::string kind;
  int64_t rows = 0;
  int64_t cases = 0;           // cases imported (created or continued)
  int64_t created = 0;
  int64_t events_applied = 0;  // transitions written, creation rows not
  int64_t deviations = 0;
  int64_t unchanged = 0;       // status rows that repeat the state
  int64_t ignored = 0;         // activities mapped to ""
  int64_t skipped = 0;  // rows already stored: creations, events, deviations
  int64_t inferred = 0;        // events fired to reach a final status
  // Event logs: rows read without fault that belong to a case another row
  // rejected (a rejected row rejects its whole case), so not imported.
  int64_t in_rejected_cases = 0;
  std::vector<Reject> rejects;
};

// Imports an event-log CSV (plain or gzip) at `path`.
StatusOr<ImportSummary> ImportEventLog(Engine& engine, const std::string& path,
                                       const EventLogMapping& mapping);
// Imports a milestone-table CSV at `path`.
StatusOr<ImportSummary> ImportMilestones(Engine& engine,
                                         const std::string& path,
                                         const MilestoneMapping& mapping);

// The same, reading an already opened reader (tests, in-memory data).
StatusOr<ImportSummary> ImportEventLog(Engine& engine, CsvReader& reader,
                                       const EventLogMapping& mapping);
StatusOr<ImportSummary> ImportMilestones(Engine& engine, CsvReader& reader,
                                         const MilestoneMapping& mapping);

}  // namespace crmflow

#endif  // CRMFLOW_IMPORTER_H_
