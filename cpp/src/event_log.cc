// event_log.cc: the columnar event log, its builder, the CSV reader and
// writer.

#include "crmflow/event_log.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <numeric>
#include <utility>

#include "crmflow/timestamp.h"

namespace crmflow {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Applies the permutation `order` (new position -> old position) to `v`,
// which is empty (an optional column holding only defaults: left empty)
// or has one entry per position.  The result is allocated at its exact
// size and the input freed at once, so no two copies outlive the call.
template <typename T>
void Permute(std::vector<T>* v, const std::vector<uint32_t>& order) {
  if (v->empty()) return;
  std::vector<T> out(order.size());
  for (size_t i = 0; i < order.size(); ++i) out[i] = (*v)[order[i]];
  v->swap(out);
}

// Releases the growth slack of a column (a no-op when there is none).
template <typename T>
void Trim(std::vector<T>* v) {
  if (v->capacity() != v->size()) v->shrink_to_fit();
}

// Makes an optional column hold one entry per event so far (`events`),
// each `fill`, before its first non-default value is appended.  Room is
// reserved like the always-present columns (`capacity`), so that the
// column grows with them.
template <typename T>
void Materialise(std::vector<T>* v, size_t events, size_t capacity, T fill) {
  v->reserve(capacity);
  v->assign(events, fill);
}

}  // namespace

Lifecycle ParseLifecycle(std::string_view text) {
  text = TrimBlanks(text);
  if (text.empty()) return Lifecycle::kNone;
  if (EqualsIgnoreCase(text, "start")) return Lifecycle::kStart;
  if (EqualsIgnoreCase(text, "complete")) return Lifecycle::kComplete;
  return Lifecycle::kOther;
}

const char* LifecycleName(Lifecycle lifecycle) {
  switch (lifecycle) {
    case Lifecycle::kNone:
      return "";
    case Lifecycle::kStart:
      return "start";
    case Lifecycle::kComplete:
      return "complete";
    case Lifecycle::kOther:
      return "other";
  }
  return "";
}

// ---------------------------------------------------------------------------
// StringPool
// ---------------------------------------------------------------------------

namespace {

uint64_t HashText(std::string_view s) {
  // libstdc++'s string hash (Murmur-style, 8 bytes at a time), then a
  // final mix so that the low bits (the slot) depend on every byte.
  uint64_t h = std::hash<std::string_view>()(s);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace

void StringPool::Grow() {
  size_t capacity = table_.empty() ? 16 : table_.size() * 2;
  table_.assign(capacity, -1);
  const size_t mask = capacity - 1;
  for (size_t id = 0; id < strings_.size(); ++id) {
    size_t slot = hashes_[id] & mask;
    while (table_[slot] >= 0) slot = (slot + 1) & mask;
    table_[slot] = static_cast<int32_t>(id);
  }
}

int32_t StringPool::Intern(std::string_view s) {
  if ((strings_.size() + 1) * 2 > table_.size()) Grow();
  const uint64_t h = HashText(s);
  const size_t mask = table_.size() - 1;
  size_t slot = h & mask;
  while (true) {
    int32_t id = table_[slot];
    if (id < 0) break;
    if (hashes_[id] == h && strings_[id] == s) return id;
    slot = (slot + 1) & mask;
  }
  int32_t id = static_cast<int32_t>(strings_.size());
  strings_.emplace_back(s);
  hashes_.push_back(h);
  table_[slot] = id;
  return id;
}

int32_t StringPool::Find(std::string_view s) const {
  if (table_.empty()) return -1;
  const uint64_t h = HashText(s);
  const size_t mask = table_.size() - 1;
  for (size_t slot = h & mask;; slot = (slot + 1) & mask) {
    int32_t id = table_[slot];
    if (id < 0) return -1;
    if (hashes_[id] == h && strings_[id] == s) return id;
  }
}

// ---------------------------------------------------------------------------
// CompactStringPool
// ---------------------------------------------------------------------------

// No hash is stored per string: Grow() hashes the texts again (a few
// passes over short strings in all), and a probe compares the text, which
// a differing length rejects at once.
void CompactStringPool::Grow() {
  size_t capacity = table_.empty() ? 16 : table_.size() * 2;
  table_.assign(capacity, -1);
  const size_t mask = capacity - 1;
  for (int32_t id = 0; id < size(); ++id) {
    size_t slot = HashText(Get(id)) & mask;
    while (table_[slot] >= 0) slot = (slot + 1) & mask;
    table_[slot] = id;
  }
}

int32_t CompactStringPool::Intern(std::string_view s) {
  if ((ends_.size() + 1) * 2 > table_.size()) Grow();
  const size_t mask = table_.size() - 1;
  size_t slot = HashText(s) & mask;
  while (true) {
    int32_t id = table_[slot];
    if (id < 0) break;
    if (Get(id) == s) return id;
    slot = (slot + 1) & mask;
  }
  int32_t id = size();
  chars_.insert(chars_.end(), s.begin(), s.end());
  ends_.push_back(chars_.size());
  table_[slot] = id;
  return id;
}

int32_t CompactStringPool::Find(std::string_view s) const {
  if (table_.empty()) return -1;
  const size_t mask = table_.size() - 1;
  for (size_t slot = HashText(s) & mask;; slot = (slot + 1) & mask) {
    int32_t id = table_[slot];
    if (id < 0) return -1;
    if (Get(id) == s) return id;
  }
}

void CompactStringPool::ShrinkToFit() {
  chars_.shrink_to_fit();
  ends_.shrink_to_fit();
}

// ---------------------------------------------------------------------------
// EventLogBuilder
// ---------------------------------------------------------------------------

EventLogBuilder::EventLogBuilder() { log_.case_offsets_.clear(); }

void EventLogBuilder::Reserve(int64_t events) {
  if (events <= 0) return;
  const size_t n = static_cast<size_t>(events);
  log_.cases_.reserve(n);
  log_.activities_.reserve(n);
  log_.times_.reserve(n);
}

int EventLogBuilder::AddAttribute(std::string_view name) {
  int existing = log_.FindAttribute(name);
  if (existing >= 0) return existing;
  EventLog::Attribute a;
  a.name = std::string(name);
  a.values.assign(log_.times_.size(), -1);
  log_.attributes_.push_back(std::move(a));
  return static_cast<int>(log_.attributes_.size()) - 1;
}

int32_t EventLogBuilder::AddCase(std::string_view id) {
  // Exports usually list a case's rows together: skip the hash lookup
  // when the case repeats.
  if (last_case_ >= 0 && log_.case_ids_.Get(last_case_) == id) {
    return last_case_;
  }
  last_case_ = log_.case_ids_.Intern(id);
  return last_case_;
}

uint32_t EventLogBuilder::LifecycleCode(std::string_view text) {
  // Blank text is no lifecycle, as ParseLifecycle reads it.
  if (TrimBlanks(text).empty()) return 0;
  const int32_t id = log_.lifecycle_names_.Intern(text);
  if (static_cast<size_t>(id) == log_.lifecycle_kinds_.size()) {
    log_.lifecycle_kinds_.push_back(ParseLifecycle(text));
  }
  return static_cast<uint32_t>(id) + 1;
}

void EventLogBuilder::AddEvent(int32_t case_index, std::string_view activity,
                               Timestamp time, std::string_view resource,
                               std::string_view lifecycle, int64_t row) {
  // The optional columns are materialised at their first non-default
  // value; until then they are empty (see EventLog::resource_column).
  const size_t e = log_.times_.size();
  log_.cases_.push_back(case_index);
  log_.activities_.push_back(log_.activity_names_.Intern(activity));
  log_.times_.push_back(time.micros);
  const size_t capacity = log_.times_.capacity();
  if (!resource.empty() || !log_.resources_.empty()) {
    if (log_.resources_.size() < e) {
      Materialise<int32_t>(&log_.resources_, e, capacity, -1);
    }
    log_.resources_.push_back(
        resource.empty() ? -1 : log_.resource_names_.Intern(resource));
  }
  const uint32_t code = lifecycle.empty() ? 0 : LifecycleCode(lifecycle);
  std::vector<uint8_t>& narrow = log_.lifecycles_;
  std::vector<uint32_t>& wide = log_.wide_lifecycles_;
  if (code > 0xFF && wide.empty()) {
    // The 256th distinct text: the codes no longer fit a byte.  An earlier
    // event had a lifecycle, so the byte column holds e codes.
    std::vector<uint32_t> codes;
    codes.reserve(capacity);
    codes.assign(narrow.begin(), narrow.end());
    wide.swap(codes);
    std::vector<uint8_t>().swap(narrow);
  }
  if (!wide.empty()) {
    wide.push_back(code);
  } else if (code != 0 || !narrow.empty()) {
    if (narrow.size() < e) Materialise<uint8_t>(&narrow, e, capacity, 0);
    narrow.push_back(static_cast<uint8_t>(code));
  }
  if (row != static_cast<int64_t>(e) || !log_.rows_.empty()) {
    if (log_.rows_.size() < e) {
      Materialise<int64_t>(&log_.rows_, e, capacity, 0);
      std::iota(log_.rows_.begin(), log_.rows_.end(), int64_t{0});
    }
    log_.rows_.push_back(row);
  }
}

void EventLogBuilder::SetAttribute(int column, std::string_view value) {
  EventLog::Attribute& a = log_.attributes_[column];
  size_t e = log_.times_.size() - 1;
  if (a.values.size() <= e) a.values.resize(e + 1, -1);
  a.values[e] = a.pool.Intern(value);
}

EventLog EventLogBuilder::Build() && {
  EventLog log = std::move(log_);
  log_ = EventLog();
  log_.case_offsets_.clear();
  last_case_ = -1;
  const size_t n = log.times_.size();
  for (auto& a : log.attributes_) a.values.resize(n, -1);
  log.case_ids_.ShrinkToFit();
  const size_t num_cases = static_cast<size_t>(log.case_ids_.size());

  // Counting sort by case (stable), then a stable sort of each case by
  // (time, row).
  std::vector<int64_t> offsets(num_cases + 1, 0);
  for (int32_t c : log.cases_) ++offsets[c + 1];
  for (size_t c = 0; c < num_cases; ++c) offsets[c + 1] += offsets[c];
  bool grouped = true;
  for (size_t i = 1; i < n && grouped; ++i) {
    grouped = log.cases_[i - 1] <= log.cases_[i];
  }
  std::vector<uint32_t> order;
  if (!grouped) {
    order.resize(n);
    std::vector<int64_t> next(offsets.begin(), offsets.end() - 1);
    for (size_t i = 0; i < n; ++i) {
      order[next[log.cases_[i]]++] = static_cast<uint32_t>(i);
    }
  }
  // Grouped by now (or `order` says how): the per-event case is known
  // from the offsets from here on.
  std::vector<int32_t>().swap(log.cases_);
  const std::vector<int64_t>& times = log.times_;
  const int64_t* rows = log.rows_.empty() ? nullptr : log.rows_.data();
  auto at = [&](int64_t pos) -> uint32_t {
    return order.empty() ? static_cast<uint32_t>(pos) : order[pos];
  };
  // Without a row column an event's row is its input position.
  auto less = [&](uint32_t a, uint32_t b) {
    if (times[a] != times[b]) return times[a] < times[b];
    return rows != nullptr ? rows[a] < rows[b] : a < b;
  };
  for (size_t c = 0; c < num_cases; ++c) {
    bool sorted = true;
    for (int64_t p = offsets[c] + 1; p < offsets[c + 1] && sorted; ++p) {
      sorted = !less(at(p), at(p - 1));
    }
    if (sorted) continue;
    if (order.empty()) {
      order.resize(n);
      std::iota(order.begin(), order.end(), 0u);
    }
    std::stable_sort(order.begin() + offsets[c], order.begin() + offsets[c + 1],
                     less);
  }
  if (!order.empty()) {
    // One column at a time, each copied at its exact size; the row column
    // becomes explicit when the input had none (an event's row is its
    // input position: where `order` takes it from).
    Permute(&log.activities_, order);
    Permute(&log.times_, order);
    Permute(&log.resources_, order);
    Permute(&log.lifecycles_, order);
    Permute(&log.wide_lifecycles_, order);
    if (log.rows_.empty()) {
      log.rows_.assign(order.begin(), order.end());
    } else {
      Permute(&log.rows_, order);
    }
    for (auto& a : log.attributes_) Permute(&a.values, order);
  }
  std::vector<uint32_t>().swap(order);
  // Explicit rows that ended up 0, 1, 2 ... say nothing the default does
  // not.
  bool identity = true;
  for (size_t e = 0; e < log.rows_.size() && identity; ++e) {
    identity = log.rows_[e] == static_cast<int64_t>(e);
  }
  if (identity) std::vector<int64_t>().swap(log.rows_);
  Trim(&log.activities_);
  Trim(&log.times_);
  Trim(&log.resources_);
  Trim(&log.lifecycles_);
  Trim(&log.wide_lifecycles_);
  Trim(&log.rows_);
  for (auto& a : log.attributes_) Trim(&a.values);
  log.case_offsets_ = std::move(offsets);
  return log;
}

// ---------------------------------------------------------------------------
// EventLog
// ---------------------------------------------------------------------------

int32_t EventLog::case_of(int64_t e) const {
  // The last case beginning at or before e; empty cases before it share
  // its offset and are skipped by upper_bound.
  auto it = std::upper_bound(case_offsets_.begin(), case_offsets_.end(), e);
  return static_cast<int32_t>(it - case_offsets_.begin()) - 1;
}

std::vector<int32_t> EventLog::CaseIndexPerEvent() const {
  std::vector<int32_t> out(static_cast<size_t>(num_events()));
  for (int32_t c = 0; c < num_cases(); ++c) {
    std::fill(out.begin() + case_begin(c), out.begin() + case_end(c), c);
  }
  return out;
}

int EventLog::FindAttribute(std::string_view name) const {
  for (size_t i = 0; i < attributes_.size(); ++i) {
    if (attributes_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

EventLog EventLog::FromHistory(const std::vector<HistoryRow>& rows,
                               HistoryActivity activity,
                               bool include_internal) {
  EventLogBuilder b;
  b.Reserve(static_cast<int64_t>(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    const HistoryRow& r = rows[i];
    if (r.internal && !include_internal) continue;
    int32_t c = b.AddCase(r.transaction_id);
    b.AddEvent(c,
               activity == HistoryActivity::kToState ? r.to_state : r.event,
               r.time, r.actor, Lifecycle::kNone, static_cast<int64_t>(i));
  }
  return std::move(b).Build();
}

StatusOr<EventLog> EventLog::FromColumns(const EventColumns& columns) {
  const size_t n = columns.case_ids.size();
  auto check = [n](const char* name, size_t size,
                   bool optional) -> Status {
    if (size == n || (optional && size == 0)) return Status::Ok();
    return Status(Code::kInvalidArgument,
                  std::string("column ") + name + " has " +
                      std::to_string(size) + " values (expected " +
                      std::to_string(n) + ", one per event)");
  };
  CRMFLOW_RETURN_IF_ERROR(check("activities", columns.activities.size(),
                                false));
  CRMFLOW_RETURN_IF_ERROR(check("timestamps", columns.timestamps.size(),
                                false));
  CRMFLOW_RETURN_IF_ERROR(check("resources", columns.resources.size(), true));
  CRMFLOW_RETURN_IF_ERROR(check("lifecycles", columns.lifecycles.size(),
                                true));
  CRMFLOW_RETURN_IF_ERROR(check("rows", columns.rows.size(), true));
  if (columns.attribute_values.size() != columns.attribute_names.size()) {
    return Status(Code::kInvalidArgument,
                  "attribute_values has " +
                      std::to_string(columns.attribute_values.size()) +
                      " columns (expected " +
                      std::to_string(columns.attribute_names.size()) +
                      ", one per attribute name)");
  }
  for (size_t i = 0; i < columns.attribute_names.size(); ++i) {
    if (columns.attribute_values[i].size() != n) {
      return Status(Code::kInvalidArgument,
                    "attribute column " + columns.attribute_names[i] +
                        " has " +
                        std::to_string(columns.attribute_values[i].size()) +
                        " values (expected " + std::to_string(n) +
                        ", one per event)");
    }
  }
  if (n >= (uint64_t{1} << 32)) {
    return Status(Code::kInvalidArgument,
                  "too many events (expected fewer than 2^32)");
  }
  EventLogBuilder b;
  b.Reserve(static_cast<int64_t>(n));
  std::vector<int> attr(columns.attribute_names.size());
  for (size_t i = 0; i < attr.size(); ++i) {
    attr[i] = b.AddAttribute(columns.attribute_names[i]);
  }
  for (const std::string& c : columns.cases) {
    if (c.empty()) {
      return Status(Code::kInvalidArgument, "empty case id in cases");
    }
    b.AddCase(c);
  }
  for (size_t e = 0; e < n; ++e) {
    if (columns.case_ids[e].empty()) {
      return Status(Code::kInvalidArgument,
                    "event " + std::to_string(e) + ": empty case id");
    }
    if (columns.activities[e].empty()) {
      return Status(Code::kInvalidArgument,
                    "event " + std::to_string(e) + " of case " +
                        columns.case_ids[e] + ": empty activity");
    }
    if (!Timestamp{columns.timestamps[e]}.InRange()) {
      return Status(Code::kInvalidArgument,
                    "event " + std::to_string(e) + " of case " +
                        columns.case_ids[e] + ": " +
                        TimeOutOfRange(
                            std::to_string(columns.timestamps[e])));
    }
    int32_t c = b.AddCase(columns.case_ids[e]);
    b.AddEvent(c, columns.activities[e], Timestamp{columns.timestamps[e]},
               columns.resources.empty() ? std::string_view()
                                         : columns.resources[e],
               columns.lifecycles.empty()
                   ? std::string_view()
                   : std::string_view(columns.lifecycles[e]),
               columns.rows.empty() ? static_cast<int64_t>(e)
                                    : columns.rows[e]);
    for (size_t i = 0; i < attr.size(); ++i) {
      const std::string& v = columns.attribute_values[i][e];
      if (!v.empty()) b.SetAttribute(attr[i], v);
    }
  }
  return std::move(b).Build();
}

EventColumns EventLog::ToColumns() const {
  EventColumns out;
  const int64_t n = num_events();
  out.case_ids.reserve(n);
  out.activities.reserve(n);
  out.resources.reserve(n);
  out.lifecycles.reserve(n);
  out.timestamps = times_;
  out.rows.reserve(n);
  for (int32_t c = 0; c < num_cases(); ++c) {
    for (int64_t e = case_begin(c); e < case_end(c); ++e) {
      out.case_ids.emplace_back(case_id(c));
    }
  }
  // Every column is filled, the optional ones with their defaults.
  for (int64_t e = 0; e < n; ++e) {
    out.activities.push_back(activity_name(activities_[e]));
    out.resources.emplace_back(resource_name(resource(e)));
    out.lifecycles.emplace_back(lifecycle_text(e));
    out.rows.push_back(row(e));
  }
  for (int i = 0; i < num_attributes(); ++i) {
    out.attribute_names.push_back(attributes_[i].name);
    std::vector<std::string> values;
    values.reserve(n);
    for (int64_t e = 0; e < n; ++e) values.emplace_back(attribute(i, e));
    out.attribute_values.push_back(std::move(values));
  }
  out.cases.reserve(num_cases());
  for (int32_t c = 0; c < num_cases(); ++c) out.cases.emplace_back(case_id(c));
  return out;
}

// ---------------------------------------------------------------------------
// CSV reading
// ---------------------------------------------------------------------------

namespace {

// Splits a CsvReader message "name:line:column: reason" into a reject.
EventLogReject RejectFromMessage(const std::string& file, int64_t line,
                                 const std::string& message) {
  EventLogReject r{file, line, 0, message};
  if (message.compare(0, file.size(), file) == 0 &&
      message.size() > file.size() && message[file.size()] == ':') {
    size_t p = file.size() + 1;
    size_t q = message.find(':', p);
    size_t s = q == std::string::npos ? q : message.find(':', q + 1);
    if (s != std::string::npos) {
      try {
        r.line = std::stoll(message.substr(p, q - p));
        r.column = std::stoi(message.substr(q + 1, s - q - 1));
        size_t t = s + 1;
        while (t < message.size() && message[t] == ' ') ++t;
        r.reason = message.substr(t);
      } catch (...) {
        r = EventLogReject{file, line, 0, message};
      }
    }
  }
  return r;
}

StatusOr<LoadedEventLog> ReadCsv(CsvReader* reader,
                                 const CsvEventLogOptions& options) {
  const std::string& file = reader->name();
  auto find = [&](const std::string& name, bool required,
                  int* index) -> Status {
    *index = -1;
    if (name.empty() && !required) return Status::Ok();
    *index = reader->Column(name);
    if (*index >= 0) return Status::Ok();
    std::string names;
    for (const std::string& h : reader->header()) {
      if (!names.empty()) names += ", ";
      names += h;
    }
    return Status(Code::kInvalidArgument,
                  file + ": column \"" + name +
                      "\" not in the header (expected one of " + names +
                      ")");
  };
  int case_col, activity_col, time_col, resource_col, lifecycle_col;
  CRMFLOW_RETURN_IF_ERROR(find(options.case_column, true, &case_col));
  CRMFLOW_RETURN_IF_ERROR(find(options.activity_column, true, &activity_col));
  CRMFLOW_RETURN_IF_ERROR(find(options.timestamp_column, true, &time_col));
  CRMFLOW_RETURN_IF_ERROR(
      find(options.resource_column, false, &resource_col));
  CRMFLOW_RETURN_IF_ERROR(
      find(options.lifecycle_column, false, &lifecycle_col));
  std::vector<int> attr_cols(options.attribute_columns.size());
  for (size_t i = 0; i < attr_cols.size(); ++i) {
    CRMFLOW_RETURN_IF_ERROR(
        find(options.attribute_columns[i], true, &attr_cols[i]));
  }
  auto zone = TimeZone::Load(options.time_zone);
  if (!zone.ok()) return zone.status();
  auto parser = TimestampParser::Create(options.time_format, zone.value());
  if (!parser.ok()) return parser.status();

  LoadedEventLog out;
  EventLogBuilder b;
  std::vector<int> attr(attr_cols.size());
  for (size_t i = 0; i < attr.size(); ++i) {
    attr[i] = b.AddAttribute(options.attribute_columns[i]);
  }
  const bool collect = options.on_error == OnError::kCollect;
  // Whether a cell holds no value: empty, or one of the null values.
  const std::vector<std::string>& nulls = options.null_values;
  auto missing = [&nulls](const std::string& v) {
    if (v.empty()) return true;
    for (const std::string& n : nulls) {
      if (v == n) return true;
    }
    return false;
  };
  // How a missing required value is named in a reject.
  auto absent = [](const std::string& v) {
    return v.empty() ? std::string("empty")
                     : "missing (null value \"" + v + "\")";
  };
  std::vector<std::string> fields;
  std::string last_error;
  int64_t record = 0;
  while (true) {
    auto more = reader->Next(&fields);
    if (!more.ok()) {
      // Field-count and UTF-8 errors skip the record; anything that
      // repeats (an unterminated quote, an I/O failure) is fatal.
      if (!collect || more.status().code() != Code::kParseError ||
          more.status().message() == last_error) {
        return more.status();
      }
      last_error = more.status().message();
      out.rejects.push_back(
          RejectFromMessage(file, reader->line(), last_error));
      ++record;
      continue;
    }
    last_error.clear();
    if (!more.value()) break;
    const int64_t line = reader->line();
    auto reject = [&](int column, std::string reason) -> Status {
      if (!collect) {
        return Status(Code::kParseError, file + ":" + std::to_string(line) +
                                             ":" + std::to_string(column) +
                                             ": " + reason);
      }
      out.rejects.push_back(
          EventLogReject{file, line, column, std::move(reason)});
      return Status::Ok();
    };
    const std::string& case_id = fields[case_col];
    const std::string& activity = fields[activity_col];
    if (missing(case_id)) {
      CRMFLOW_RETURN_IF_ERROR(
          reject(case_col + 1, absent(case_id) +
                                   " case id (expected a value in column " +
                                   options.case_column + ")"));
      ++record;
      continue;
    }
    if (missing(activity)) {
      CRMFLOW_RETURN_IF_ERROR(reject(
          activity_col + 1, absent(activity) + " activity in case " +
                                case_id + " (expected a value in column " +
                                options.activity_column + ")"));
      ++record;
      continue;
    }
    if (!nulls.empty() && missing(fields[time_col])) {
      CRMFLOW_RETURN_IF_ERROR(reject(
          time_col + 1, absent(fields[time_col]) + " time in case " +
                            case_id + " (expected a value in column " +
                            options.timestamp_column + ")"));
      ++record;
      continue;
    }
    auto t = parser->Parse(fields[time_col]);
    if (!t.ok()) {
      CRMFLOW_RETURN_IF_ERROR(reject(time_col + 1, t.status().message()));
      ++record;
      continue;
    }
    int32_t c = b.AddCase(case_id);
    auto optional = [&](int col) {
      return col < 0 || missing(fields[col]) ? std::string_view()
                                             : std::string_view(fields[col]);
    };
    b.AddEvent(c, activity, t.value(), optional(resource_col),
               optional(lifecycle_col), record);
    for (size_t i = 0; i < attr.size(); ++i) {
      const std::string& v = fields[attr_cols[i]];
      if (!missing(v)) b.SetAttribute(attr[i], v);
    }
    ++record;
    if (b.num_events() >= (int64_t{1} << 32) - 1) {
      return Status(Code::kInvalidArgument,
                    file + ":" + std::to_string(line) +
                        ": too many events (expected fewer than 2^32)");
    }
  }
  out.log = std::move(b).Build();
  return out;
}

}  // namespace

StatusOr<LoadedEventLog> ReadCsvEventLog(const std::string& path,
                                         const CsvEventLogOptions& options) {
  CsvOptions csv = options.csv;
  csv.header = true;
  auto reader = CsvReader::Open(path, csv);
  if (!reader.ok()) return reader.status();
  return ReadCsv(reader.value().get(), options);
}

StatusOr<LoadedEventLog> ReadCsvEventLogFromString(
    std::string name, std::string text, const CsvEventLogOptions& options) {
  CsvOptions csv = options.csv;
  csv.header = true;
  auto reader = CsvReader::FromString(std::move(name), std::move(text), csv);
  if (!reader.ok()) return reader.status();
  return ReadCsv(reader.value().get(), options);
}

// ---------------------------------------------------------------------------
// CSV writing
// ---------------------------------------------------------------------------

namespace {

void AppendField(std::string* out, std::string_view field, char delimiter) {
  bool quote = false;
  for (char ch : field) {
    if (ch == delimiter || ch == '"' || ch == '\n' || ch == '\r') {
      quote = true;
      break;
    }
  }
  if (!quote) {
    out->append(field);
    return;
  }
  out->push_back('"');
  for (char ch : field) {
    if (ch == '"') out->push_back('"');
    out->push_back(ch);
  }
  out->push_back('"');
}

}  // namespace

std::string EventLogToCsv(const EventLog& log, char delimiter) {
  std::string out;
  const char* fixed[] = {"case_id", "activity", "timestamp", "resource",
                         "lifecycle"};
  for (int i = 0; i < 5; ++i) {
    if (i > 0) out.push_back(delimiter);
    out.append(fixed[i]);
  }
  for (int i = 0; i < log.num_attributes(); ++i) {
    out.push_back(delimiter);
    // An attribute named like a fixed column (XES may have one) is written
    // apart, or a reader would take the first of two equal names.
    const std::string& name = log.attribute_name(i);
    const bool taken = std::find(std::begin(fixed), std::end(fixed), name) !=
                       std::end(fixed);
    AppendField(&out, taken ? "attribute:" + name : name, delimiter);
  }
  out.push_back('\n');
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
      AppendField(&out, log.case_id(c), delimiter);
      out.push_back(delimiter);
      AppendField(&out, log.activity_name(log.activity(e)), delimiter);
      out.push_back(delimiter);
      out.append(log.time(e).ToIso());
      out.push_back(delimiter);
      AppendField(&out, log.resource_name(log.resource(e)), delimiter);
      out.push_back(delimiter);
      AppendField(&out, log.lifecycle_text(e), delimiter);
      for (int i = 0; i < log.num_attributes(); ++i) {
        out.push_back(delimiter);
        AppendField(&out, log.attribute(i, e), delimiter);
      }
      out.push_back('\n');
    }
  }
  return out;
}

Status WriteEventLogCsv(const EventLog& log, const std::string& path,
                        char delimiter) {
  std::string text = EventLogToCsv(log, delimiter);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return Status(Code::kInvalidArgument,
                  path + ": cannot open for writing");
  }
  size_t written = std::fwrite(text.data(), 1, text.size(), f);
  bool ok = written == text.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return Status(Code::kInvalidArgument, path + ": write failed");
  return Status::Ok();
}

}  // namespace crmflow
