// event_log.h: a columnar, immutable event log for process mining.
//
// An EventLog holds the events of many cases (orders, tickets, service
// requests) in contiguous column vectors, one entry per event: the activity
// id, the timestamp (UTC microseconds), the resource id (or none), the
// lifecycle transition (its text as read, "start", "schedule", "Suspend",
// or none; its kind none / start / complete / other follows from the
// text), the original row number, and any number of optional text
// attribute columns.  The case of an event is not stored per event: cases
// are contiguous, so one offset per case says where each begins.
// Activities, resources, lifecycle texts and attribute values are
// interned: each distinct string is stored once and events refer to it by
// a small integer id, so memory grows with the number of events kept, not
// with the size of the input text.
//
// Memory holds only what the log has: the resource, lifecycle and row
// columns stay empty while every event has the default (no resource, no
// lifecycle, row == position), and columns are sized exactly, without
// growth slack.  A log of activity and time only takes 12 bytes per event,
// plus an offset and the interned id per case; a lifecycle column adds one
// byte per event (four once a log has over 255 distinct lifecycle texts).
//
// Cases keep their string ids in order of first appearance and may have
// zero events (the empty traces of an XES file).  The events of a case are
// contiguous and sorted by (timestamp, original row) with a stable sort:
// ties keep the order of the input file, sub-second precision is kept.
// This order is a contract the analytics rely on.
//
// Sources: a CSV file (through crmflow::CsvReader, with a column mapping, a
// time format and zone, and an error policy), an engine's history rows, or
// plain columns in memory (for the Python binding).  An XES reader lives in
// xes.h.  A log is exported back to columns (ToColumns) or to CSV text
// (WriteEventLogCsv).
//
// Example:
//
//   crmflow::CsvEventLogOptions opts;
//   opts.case_column = "case_id";
//   opts.activity_column = "activity";
//   opts.timestamp_column = "timestamp";
//   opts.resource_column = "agent";
//   auto loaded = crmflow::ReadCsvEventLog("tickets.csv.gz", opts);
//   if (!loaded.ok()) return loaded.status();  // file:line:column: ...
//   const crmflow::EventLog& log = loaded->log;
//   for (int32_t c = 0; c < log.num_cases(); ++c) {
//     for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
//       use(log.case_id(c), log.activity_name(log.activity(e)),
//           log.time(e));
//     }
//   }
//
// An EventLog is immutable after construction and safe to read from many
// threads.  Limits: fewer than 2^31 cases and distinct strings per pool,
// fewer than 2^32 events.

#ifndef CRMFLOW_EVENT_LOG_H_
#define CRMFLOW_EVENT_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/csv.h"
#include "crmflow/status.h"
#include "crmflow/store.h"
#include "crmflow/value.h"

namespace crmflow {

// The lifecycle transition of an event (XES lifecycle:transition).
enum class Lifecycle : uint8_t {
  kNone = 0,   // no lifecycle given (an atomic event)
  kStart,      // "start" (any letter case)
  kComplete,   // "complete" (any letter case)
  kOther,      // any other non-empty value ("schedule", "suspend", ...)
};

// Returns the lifecycle of `text`: "" -> kNone, "start" -> kStart,
// "complete" -> kComplete (letter case ignored, surrounding blanks
// ignored), anything else -> kOther.
Lifecycle ParseLifecycle(std::string_view text);
// Returns "", "start", "complete" or "other".
const char* LifecycleName(Lifecycle lifecycle);

// A set of distinct strings, each with a dense id 0, 1, 2 ... in order of
// first insertion.  Lookups by string_view do not allocate.
class StringPool {
 public:
  // Returns the id of `s`, inserting it when new.
  int32_t Intern(std::string_view s);
  // Returns the id of `s`, or -1 when absent.
  int32_t Find(std::string_view s) const;
  // Returns the string with id `id`.  Requires 0 <= id < size().
  const std::string& Get(int32_t id) const { return strings_[id]; }
  int32_t size() const { return static_cast<int32_t>(strings_.size()); }
  // All strings, indexed by id.
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  void Grow();
  std::vector<std::string> strings_;
  std::vector<uint64_t> hashes_;  // per id
  std::vector<int32_t> table_;    // open addressing: ids, -1 = free
};

// A set of distinct strings with dense ids 0, 1, 2 ... in order of first
// insertion, like StringPool, but stored back to back in one character
// buffer with one end offset per string: about 8 bytes per string plus its
// text and the hash table, where a std::string per entry costs 32 bytes
// before any text (more once the text outgrows the short-string buffer).
// For the many short ids of a log's cases.  Lookups by string_view do not
// allocate; Get() views the buffer, valid until the next Intern.
class CompactStringPool {
 public:
  // Returns the id of `s`, inserting it when new.
  int32_t Intern(std::string_view s);
  // Returns the id of `s`, or -1 when absent.
  int32_t Find(std::string_view s) const;
  // Returns the string with id `id`.  Requires 0 <= id < size().
  std::string_view Get(int32_t id) const {
    const uint64_t begin = id == 0 ? 0 : ends_[id - 1];
    return std::string_view(chars_.data() + begin, ends_[id] - begin);
  }
  int32_t size() const { return static_cast<int32_t>(ends_.size()); }
  // Releases the growth slack of the buffers (after the last Intern).
  void ShrinkToFit();

 private:
  void Grow();
  std::vector<char> chars_;     // all strings, back to back
  std::vector<uint64_t> ends_;  // per id: end of its text in chars_
  std::vector<int32_t> table_;  // open addressing: ids, -1 = free
};

// The events of a log as plain parallel columns, one entry per event (the
// input of EventLog::FromColumns and the output of EventLog::ToColumns).
struct EventColumns {
  std::vector<std::string> case_ids;    // required, non-empty values
  std::vector<std::string> activities;  // required, non-empty values
  std::vector<int64_t> timestamps;      // required, UTC microseconds
  // Optional: empty vector, or one entry per event ("" = no resource).
  std::vector<std::string> resources;
  // Optional: empty vector, or one entry per event: the lifecycle text,
  // kept as given ("" or blanks = none; its kind is ParseLifecycle's).
  std::vector<std::string> lifecycles;
  // Optional: original row numbers; empty means 0, 1, 2 ... in input order.
  std::vector<int64_t> rows;
  // Text attribute columns: names and, for each, one value per event.
  std::vector<std::string> attribute_names;
  std::vector<std::vector<std::string>> attribute_values;
  // Every case id in log order, including cases without events.  Input:
  // optional (cases named here come first, in this order; cases that only
  // appear in case_ids follow in order of first appearance).  Output:
  // always filled.
  std::vector<std::string> cases;
};

// An immutable columnar event log (see the file comment).  Build one with
// EventLogBuilder, ReadCsvEventLog, EventLog::FromHistory,
// EventLog::FromColumns or ReadXesEventLog (xes.h).
class EventLog {
 public:
  // An empty log: no cases, no events.
  EventLog() : case_offsets_(1, 0) {}

  // Builds a log from an engine's history (HistoryRow in store.h).
  // Case = transaction_id; resource = actor ("" = none); lifecycle none;
  // row = the row's index in `rows`.  The activity is the state entered
  // (to_state) with kToState -- the default, so that "time in activity"
  // reads as time spent in a state and the creation row counts as entering
  // the initial state -- or the event name with kEvent.  Internal rows are
  // kept unless `include_internal` is false.  Never fails: rows with an
  // empty activity are kept with activity "" (the engine never writes
  // them).
  enum class HistoryActivity { kToState, kEvent };
  static EventLog FromHistory(const std::vector<HistoryRow>& rows,
                              HistoryActivity activity =
                                  HistoryActivity::kToState,
                              bool include_internal = true);

  // Builds a log from columns in memory.  Fails with kInvalidArgument when
  // a column's length differs from case_ids' ("column resources has 3
  // values (expected 4, one per event)"), for an empty case id or
  // activity ("event 7 of case A: empty activity"), or for a time outside
  // years 1 to 9999 UTC (see TimeOutOfRange in timestamp.h).
  static StatusOr<EventLog> FromColumns(const EventColumns& columns);

  // Returns the events as columns, in log order (by case, then time), with
  // `cases` listing every case.  FromColumns(ToColumns()) gives an equal
  // log.
  EventColumns ToColumns() const;

  // --- Cases ---------------------------------------------------------------
  int32_t num_cases() const {
    return static_cast<int32_t>(case_ids_.size());
  }
  // Returns the string id of case `c`.  Requires 0 <= c < num_cases().
  // A view into the log, valid while the log lives.
  std::string_view case_id(int32_t c) const { return case_ids_.Get(c); }
  // Returns the index of the case with id `id`, or -1.
  int32_t FindCase(std::string_view id) const { return case_ids_.Find(id); }
  // Events of case c are [case_begin(c), case_end(c)).
  int64_t case_begin(int32_t c) const { return case_offsets_[c]; }
  int64_t case_end(int32_t c) const { return case_offsets_[c + 1]; }
  int64_t case_size(int32_t c) const { return case_end(c) - case_begin(c); }

  // --- Events --------------------------------------------------------------
  int64_t num_events() const { return static_cast<int64_t>(times_.size()); }
  // Per-event accessors.  Require 0 <= e < num_events().
  //
  // The case whose [case_begin, case_end) holds e: a binary search over
  // the case offsets, O(log num_cases()).  Scans over all events should
  // loop over cases and their ranges instead.
  int32_t case_of(int64_t e) const;
  int32_t activity(int64_t e) const { return activities_[e]; }
  Timestamp time(int64_t e) const { return Timestamp{times_[e]}; }
  // The resource id, -1 when the event has none.
  int32_t resource(int64_t e) const {
    return resources_.empty() ? -1 : resources_[e];
  }
  // The lifecycle kind (ParseLifecycle of the text), kNone when the event
  // has no lifecycle text.
  Lifecycle lifecycle(int64_t e) const {
    const int32_t id = lifecycle_id(e);
    return id < 0 ? Lifecycle::kNone : lifecycle_kinds_[id];
  }
  // The id of the event's lifecycle text in lifecycle_names(), -1 when it
  // has none.
  int32_t lifecycle_id(int64_t e) const {
    if (!lifecycles_.empty()) return static_cast<int32_t>(lifecycles_[e]) - 1;
    if (!wide_lifecycles_.empty()) {
      return static_cast<int32_t>(wide_lifecycles_[e]) - 1;
    }
    return -1;
  }
  // The lifecycle text as read ("schedule", "Start"), "" when none.  A view
  // into the log, valid while the log lives.
  std::string_view lifecycle_text(int64_t e) const {
    const int32_t id = lifecycle_id(e);
    return id < 0 ? std::string_view()
                  : std::string_view(lifecycle_names_.Get(id));
  }
  // The original row number (the input position when the source gave
  // none).
  int64_t row(int64_t e) const { return rows_.empty() ? e : rows_[e]; }

  // Whole columns, indexed by event (for fast scans).  The activity and
  // time columns always hold num_events() entries.  The resource and row
  // columns are empty when every event has the default (resource -1,
  // row(e) == e), and hold num_events() entries otherwise: test empty()
  // before indexing them, or use the per-event accessors, which apply the
  // defaults.  Lifecycles are read through lifecycle_id() and its
  // neighbours, whose column width depends on the log.
  const std::vector<int32_t>& activity_column() const { return activities_; }
  const std::vector<int64_t>& time_column() const { return times_; }
  const std::vector<int32_t>& resource_column() const { return resources_; }
  const std::vector<int64_t>& row_column() const { return rows_; }
  // Returns the bytes allocated for the lifecycle column: 0 when no event
  // has a lifecycle, else one per event while the log has at most 255
  // distinct lifecycle texts and four per event beyond.
  size_t lifecycle_column_bytes() const {
    return lifecycles_.capacity() * sizeof(uint8_t) +
           wide_lifecycles_.capacity() * sizeof(uint32_t);
  }
  // num_cases() + 1 offsets into the event columns: case c holds events
  // [case_offsets()[c], case_offsets()[c + 1]).
  const std::vector<int64_t>& case_offsets() const { return case_offsets_; }
  // Returns the case index of every event (what case_of gives), built
  // from the offsets; num_events() entries.
  std::vector<int32_t> CaseIndexPerEvent() const;

  // --- Interned names ------------------------------------------------------
  const StringPool& activities() const { return activity_names_; }
  const StringPool& resources() const { return resource_names_; }
  // Returns the name of activity id `a` / resource id `r` ("" for -1).
  const std::string& activity_name(int32_t a) const {
    return activity_names_.Get(a);
  }
  std::string_view resource_name(int32_t r) const {
    return r < 0 ? std::string_view() : std::string_view(
                                            resource_names_.Get(r));
  }
  // Returns the id of an activity name, or -1.
  int32_t FindActivity(std::string_view name) const {
    return activity_names_.Find(name);
  }
  // The distinct lifecycle texts, as read (letter case and blanks kept,
  // so "Start" and "start" are two), in order of first appearance.
  const StringPool& lifecycle_names() const { return lifecycle_names_; }
  // Returns the kind of lifecycle text id `id` (never kNone).  Requires
  // 0 <= id < lifecycle_names().size().
  Lifecycle lifecycle_kind(int32_t id) const { return lifecycle_kinds_[id]; }

  // --- Attributes ----------------------------------------------------------
  int num_attributes() const { return static_cast<int>(attributes_.size()); }
  // Returns the name of attribute column `i`.  Requires 0 <= i <
  // num_attributes().
  const std::string& attribute_name(int i) const {
    return attributes_[i].name;
  }
  // Returns the index of the attribute column `name`, or -1.
  int FindAttribute(std::string_view name) const;
  // Returns the text of attribute `i` of event `e`; "" when the event has
  // none.
  std::string_view attribute(int i, int64_t e) const {
    int32_t v = attributes_[i].values[e];
    return v < 0 ? std::string_view()
                 : std::string_view(attributes_[i].pool.Get(v));
  }

 private:
  friend class EventLogBuilder;
  struct Attribute {
    std::string name;
    StringPool pool;
    std::vector<int32_t> values;  // per event; -1 = absent
  };

  CompactStringPool case_ids_;
  std::vector<int64_t> case_offsets_;
  // The case of each event, in input order: used by EventLogBuilder to
  // group events, always empty in a built log (case_offsets_ says it).
  std::vector<int32_t> cases_;
  std::vector<int32_t> activities_;
  std::vector<int64_t> times_;
  // Optional columns: empty = every event has the default (see
  // resource_column()).
  std::vector<int32_t> resources_;
  // Lifecycle codes: 0 = none, k = lifecycle_names_ id k - 1.  One byte
  // per event (lifecycles_) while the log has at most 255 distinct texts,
  // four (wide_lifecycles_) beyond; both empty when no event has one.
  std::vector<uint8_t> lifecycles_;
  std::vector<uint32_t> wide_lifecycles_;
  std::vector<int64_t> rows_;
  StringPool activity_names_;
  StringPool resource_names_;
  StringPool lifecycle_names_;
  std::vector<Lifecycle> lifecycle_kinds_;  // per lifecycle_names_ id
  std::vector<Attribute> attributes_;
};

// Assembles an EventLog from events in any order (the readers use it).
// Events are appended in input order; Build() groups them by case and
// sorts each case by (timestamp, row) with a stable sort.
//
//   EventLogBuilder b;
//   int comment = b.AddAttribute("comment");
//   int32_t c = b.AddCase("SR-1");
//   b.AddEvent(c, "Opened", t, "alice", Lifecycle::kNone, 0);
//   b.SetAttribute(comment, "printer jam");
//   EventLog log = std::move(b).Build();
class EventLogBuilder {
 public:
  EventLogBuilder();
  // Reserves room for `events` events (a hint: more may be added).  Readers
  // that know the count call it so that the columns are allocated once, at
  // their final size.
  void Reserve(int64_t events);
  // Declares an attribute column (or returns the index of an existing one
  // with this name).
  int AddAttribute(std::string_view name);
  // Returns the index of case `id`, adding it (with no events yet) when
  // new.  Case order is the order of first AddCase.
  int32_t AddCase(std::string_view id);
  // Appends an event of case `case_index` (from AddCase).  `resource` ""
  // means none.  `lifecycle` is the lifecycle text, kept as given ("" or
  // blanks mean none; the kind is ParseLifecycle's).  `row` is the
  // original row number (the tie-breaker after the timestamp).
  void AddEvent(int32_t case_index, std::string_view activity, Timestamp time,
                std::string_view resource, std::string_view lifecycle,
                int64_t row);
  // Same, with the lifecycle given by its kind, kept as the text
  // LifecycleName(lifecycle).
  void AddEvent(int32_t case_index, std::string_view activity, Timestamp time,
                std::string_view resource, Lifecycle lifecycle, int64_t row) {
    AddEvent(case_index, activity, time, resource,
             std::string_view(LifecycleName(lifecycle)), row);
  }
  // Sets attribute `column` (from AddAttribute) of the last added event.
  // Requires at least one AddEvent.
  void SetAttribute(int column, std::string_view value);
  // Number of events added so far.
  int64_t num_events() const { return log_.num_events(); }
  // Returns the log; the builder is left empty.  The columns of the log
  // are trimmed to their size (no growth slack), the optional columns
  // that hold only defaults are dropped.
  EventLog Build() &&;

 private:
  // Returns the code of lifecycle text `text` (see EventLog::lifecycles_),
  // interning it when new; 0 for none.
  uint32_t LifecycleCode(std::string_view text);

  EventLog log_;
  int32_t last_case_ = -1;  // the case of the last AddCase
};

// How a reader treats a bad row.
enum class OnError {
  kRaise,    // fail the whole load with the row's error
  kCollect,  // skip the row and list it in the rejects
};

// A row a reader skipped under OnError::kCollect.
struct EventLogReject {
  std::string file;
  int64_t line = 0;    // physical line the record starts on (1-based)
  int column = 0;      // 1-based field number in the record; 0: whole row
  std::string reason;  // e.g. `unparseable time "x" (expected ISO 8601)`
};

// A loaded log plus the rows that were rejected (empty under kRaise).
struct LoadedEventLog {
  EventLog log;
  std::vector<EventLogReject> rejects;
};

// Column mapping and parsing options for ReadCsvEventLog.
struct CsvEventLogOptions {
  std::string case_column = "case_id";      // required
  std::string activity_column = "activity";  // required
  std::string timestamp_column = "timestamp";  // required
  std::string resource_column;   // "" = none
  std::string lifecycle_column;  // "" = none
  // Columns kept as text attributes (in this order).
  std::vector<std::string> attribute_columns;
  // Time format (see timestamp.h; "iso" = ISO 8601) and the IANA zone for
  // values without offset.
  std::string time_format = "iso";
  std::string time_zone = "UTC";
  OnError on_error = OnError::kRaise;
  // Cells equal to one of these (e.g. "?", "NA", "NULL") read as empty: a
  // missing value in an optional column, a bad row in a required one.
  // Empty cells are always missing.
  std::vector<std::string> null_values;
  CsvOptions csv;  // delimiter (0 = sniff); header must be true
};

// Reads a CSV event log (plain or gzip) through CsvReader.  The row number
// of an event is its 0-based data record index.  A bad row (empty case id
// or activity, unparseable time or one outside years 1 to 9999 UTC, wrong
// field count) fails the load with
// kParseError `file:line:column: what (expected ...)` under kRaise, or is
// skipped and listed in `rejects` under kCollect; rows are never dropped
// silently.  Fails with kNotFound naming the file when it does not exist,
// with kInvalidArgument for a mapped column missing from the header, an
// unknown time format or zone.  Memory: proportional to the events kept.
StatusOr<LoadedEventLog> ReadCsvEventLog(const std::string& path,
                                         const CsvEventLogOptions& options);
// Same, from text in memory; `name` stands for the file in messages.
StatusOr<LoadedEventLog> ReadCsvEventLogFromString(
    std::string name, std::string text, const CsvEventLogOptions& options);

// Returns the log as CSV text: header case_id, activity, timestamp,
// resource, lifecycle (the text as read), then the attribute columns;
// timestamps as
// Timestamp::ToIso (UTC, microseconds); fields quoted (RFC 4180) when they
// hold the delimiter, a quote, CR or LF.  Cases without events cannot be
// represented and are left out.  Requires `delimiter` to be one of
// , ; tab |.
std::string EventLogToCsv(const EventLog& log, char delimiter = ',');
// Writes EventLogToCsv to `path`; fails with kInvalidArgument naming the
// path when it cannot be written.
Status WriteEventLogCsv(const EventLog& log, const std::string& path,
                        char delimiter = ',');

}  // namespace crmflow

#endif  // CRMFLOW_EVENT_LOG_H_
