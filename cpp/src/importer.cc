// importer.cc: replays event-log and milestone-table CSV exports through an
// Engine (see importer.h for the contract).
//
// An import runs in two phases.  Reading streams the file and collects,
// per case, the planned events (time, what happened, file order) and the
// parts of the creation request; a row that cannot be used rejects its
// whole case, so nothing of that case is written later.  What is kept is
// compact: an event is a fixed-size record and every text (case id, actor,
// customer, payload) is interned once, so memory grows with the number of
// events and of distinct values, not with the size of the file's text.
// Cases are kept in order of first appearance, which makes the write
// order, and so history seq numbers, deterministic.  Writing then groups
// the events by case, sorts each case's by time (a stable sort: ties keep
// file order), creates the transaction and fires the events inside one
// outer store transaction, recording refused events as deviations.
//
// Source keys, the idempotency mechanism, are
//   "<kind>|<case id>#<p>|<event or status>@<microseconds>"
//                          for the event at position p (0-based, after
//                          sorting), "<kind>|<case id>#<p>" for the steps
//                          inferred after the last event, and
//   "<kind>|<case id>#create"  for the creation row when it is not itself
//                          an event of the file
// They name no file: the same export under another name or path is the
// same data, while another export whose case has other events at the same
// positions gets other keys.
// (when position 0 is the creation, an activity mapped to "create" or a
// status naming the initial state, the creation row takes "#0").  A
// transaction that did not exist before this import cannot have keys yet,
// so only continued cases pay for source look-ups.

#include "crmflow/importer.h"

#include <algorithm>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/breadth_first_search.hpp>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "crmflow/store.h"
#include "crmflow/timestamp.h"
#include "crmflow/value.h"
#include "crmflow/workflow.h"

namespace crmflow {

std::string Reject::ToString() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) +
         ": " + reason;
}

namespace {

// The creation row's event name in the history (store.h); an activity
// mapped to it is the creation itself.
constexpr std::string_view kCreateEvent = "create";

// The most events, and cases, one import can plan (int32_t indexes; a
// milestone row may add several events, hence the margin).
constexpr size_t kMaxPlanned = (size_t{1} << 31) - 1024;

std::string Quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string Lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
  }
  return out;
}

// Interns text: each distinct string is stored once, in blocks that never
// move, and named by a dense index (0, 1, ... in order of first Intern).
// An import keeps case ids, actors, customers and payloads this way, so
// its memory follows the number of distinct values and of events, not the
// size of the file's text.
class StringPool {
 public:
  StringPool() = default;
  StringPool(const StringPool&) = delete;
  StringPool& operator=(const StringPool&) = delete;

  // Returns the index of `s`, adding it when new.  *added tells which.
  int32_t Intern(std::string_view s, bool* added = nullptr) {
    auto it = index_.find(s);
    if (it != index_.end()) {
      if (added != nullptr) *added = false;
      return it->second;
    }
    std::string_view kept = Keep(s);
    int32_t id = static_cast<int32_t>(views_.size());
    views_.push_back(kept);
    index_.emplace(kept, id);
    if (added != nullptr) *added = true;
    return id;
  }
  // Returns the index of `s`, or -1 when it was never interned.
  int32_t Find(std::string_view s) const {
    auto it = index_.find(s);
    return it == index_.end() ? -1 : it->second;
  }
  std::string_view Get(int32_t id) const { return views_[id]; }
  size_t size() const { return views_.size(); }

 private:
  static constexpr size_t kBlock = 1 << 16;

  // Copies `s` into a block; a string longer than a block gets its own.
  std::string_view Keep(std::string_view s) {
    if (s.size() > kBlock / 4) {
      big_.push_back(std::make_unique<char[]>(s.size() + 1));
      std::memcpy(big_.back().get(), s.data(), s.size());
      return std::string_view(big_.back().get(), s.size());
    }
    if (blocks_.empty() || kBlock - used_ < s.size()) {
      blocks_.push_back(std::make_unique<char[]>(kBlock));
      used_ = 0;
    }
    char* at = blocks_.back().get() + used_;
    std::memcpy(at, s.data(), s.size());
    used_ += s.size();
    return std::string_view(at, s.size());
  }

  std::vector<std::unique_ptr<char[]>> blocks_;
  std::vector<std::unique_ptr<char[]>> big_;
  size_t used_ = 0;
  std::vector<std::string_view> views_;
  std::unordered_map<std::string_view, int32_t> index_;
};

// One event of a case as read, before ordering: a fixed-size record (24
// bytes), its texts interned in Context::texts.  File order, the tie-break
// of the replay order, is its position in Context::events.
struct PlannedEvent {
  Timestamp time;
  // Activity logs and milestones: index into Context::event_names.
  // Status logs: the target state id.
  int32_t code = 0;
  int32_t actor = -1;    // Context::texts, -1 for none
  int32_t payload = -1;  // Context::texts, -1 for none
  int32_t case_index = 0;
};

struct CaseData {
  int32_t id = 0;  // Context::case_ids; equal to the case's index
  bool rejected = false;
  bool has_request = false;
  int64_t first_line = 0;
  // The creation request's parts, read from the case's first usable row.
  int32_t customer = -1;  // Context::texts, -1 for none
  int32_t parent = -1;    // Context::texts (prefixed), -1 for none
  // The mapping's attributes of this case start at attributes * count in
  // Context::attribute_values (null where the cell was empty).
  int32_t attributes = -1;
  // Milestone tables: the mapped final status, or kNoId, and the time of
  // creation.
  int final_state = Workflow::kNoId;
  Timestamp created;
  // The case's events, once grouped: Context::order[first_event ...
  // first_event + event_count) index Context::events in replay order.
  uint32_t first_event = 0;
  uint32_t event_count = 0;
};

// The workflow as a Boost graph, for shortest paths to a final status.
struct EdgeProps {
  int transition;
};
using Graph = boost::adjacency_list<boost::vecS, boost::vecS,
                                    boost::directedS, boost::no_property,
                                    EdgeProps>;

// Records, for each vertex, the transition by which BFS first reached it.
class PredecessorRecorder : public boost::default_bfs_visitor {
 public:
  explicit PredecessorRecorder(std::vector<int>* pred) : pred_(pred) {}
  template <typename Edge, typename G>
  void tree_edge(Edge e, const G& g) const {
    (*pred_)[boost::target(e, g)] = g[e].transition;
  }

 private:
  std::vector<int>* pred_;
};

// Everything one import run shares.
struct Context {
  Engine* engine = nullptr;
  const Workflow* workflow = nullptr;
  const CommonMapping* common = nullptr;
  std::string file;      // reader name, used in rejects
  bool statuses = false;  // event log of statuses
  std::optional<TimestampParser> parser;
  ImportSummary summary;
  std::vector<std::string> event_names;
  std::unordered_map<std::string, int> event_index;
  // Cases in order of first appearance; case_ids.Get(i) is cases[i]'s id.
  StringPool case_ids;
  std::vector<CaseData> cases;
  // Actors, customers, parents and payloads.
  StringPool texts;
  // Every planned event in file order (a deque: growing it copies
  // nothing), and after GroupEvents their indexes grouped by case.
  std::deque<PlannedEvent> events;
  std::vector<uint32_t> order;
  // Parsed mapping attributes, common->attributes.size() per case that
  // has a request.
  std::deque<Value> attribute_values;
  int64_t since_commit = 0;

  // Returns the case's event at `position` in replay order.
  const PlannedEvent& EventAt(const CaseData& c, size_t position) const {
    return events[order[c.first_event + position]];
  }
  std::string_view CaseIdOf(const CaseData& c) const {
    return case_ids.Get(c.id);
  }
  std::string TextOf(int32_t id) const {
    return id < 0 ? std::string() : std::string(texts.Get(id));
  }

  int InternEvent(const std::string& name) {
    auto it = event_index.find(name);
    if (it != event_index.end()) return it->second;
    int id = static_cast<int>(event_names.size());
    event_names.push_back(name);
    event_index.emplace(name, id);
    return id;
  }

  bool IsNull(std::string_view cell) const {
    if (cell.empty()) return true;
    for (const auto& n : common->null_values) {
      if (cell == n) return true;
    }
    return false;
  }

  // Records a reject; returns the failure to raise under OnError::kRaise.
  Status AddReject(int64_t line, int column, std::string case_id,
                   std::string reason) {
    Reject r;
    r.file = file;
    r.line = line;
    r.column = column;
    r.case_id = std::move(case_id);
    r.reason = std::move(reason);
    Status raise = common->on_error == OnError::kRaise
                       ? Status(Code::kParseError, r.ToString())
                       : Status::Ok();
    summary.rejects.push_back(std::move(r));
    return raise;
  }
};

// Resolves a column name of the mapping, failing with the header's names.
StatusOr<int> ResolveColumn(const CsvReader& reader, const std::string& name,
                            bool optional) {
  if (name.empty()) {
    if (optional) return -1;
    return Status(Code::kInvalidArgument,
                  reader.name() + ": a required column of the mapping is "
                                  "empty (expected a column name)");
  }
  int index = reader.Column(name);
  if (index < 0) {
    return Status(Code::kInvalidArgument,
                  reader.name() + ": unknown column " + Quote(name) +
                      " in the mapping (expected one of " +
                      JoinNames(reader.header()) + ")");
  }
  return index;
}

// Column indexes shared by both mappings.
struct CommonColumns {
  std::vector<int> case_columns;
  int customer = -1;
  int parent = -1;
  std::vector<int> attributes;
};

StatusOr<CommonColumns> ResolveCommon(const CsvReader& reader,
                                      const CommonMapping& m) {
  CommonColumns c;
  if (m.case_columns.empty()) {
    return Status(Code::kInvalidArgument,
                  reader.name() + ": the mapping names no case column "
                                  "(expected at least one)");
  }
  for (const auto& name : m.case_columns) {
    auto i = ResolveColumn(reader, name, false);
    if (!i.ok()) return i.status();
    c.case_columns.push_back(i.value());
  }
  auto customer = ResolveColumn(reader, m.customer_column, true);
  if (!customer.ok()) return customer.status();
  c.customer = customer.value();
  auto parent = ResolveColumn(reader, m.parent_column, true);
  if (!parent.ok()) return parent.status();
  c.parent = parent.value();
  for (const auto& a : m.attributes) {
    auto i = ResolveColumn(reader, a.column, false);
    if (!i.ok()) return i.status();
    c.attributes.push_back(i.value());
  }
  return c;
}

// Prepares the context; fails for an unknown kind or zone or a bad format.
Status InitContext(Engine& engine, const CsvReader& reader,
                   const CommonMapping& common, Context* ctx) {
  ctx->engine = &engine;
  ctx->common = &common;
  ctx->file = reader.name();
  ctx->summary.file = reader.name();
  ctx->summary.kind = common.kind;
  ctx->workflow = engine.FindWorkflow(common.kind);
  if (ctx->workflow == nullptr) {
    std::vector<std::string> kinds = engine.kinds();
    return Status(Code::kNotFound, "unknown kind " + Quote(common.kind) +
                                       " (expected one of " +
                                       JoinNames(kinds) + ")");
  }
  auto zone = TimeZone::Load(common.time_zone);
  if (!zone.ok()) return zone.status();
  auto parser = TimestampParser::Create(common.time_format, zone.value());
  if (!parser.ok()) return parser.status();
  ctx->parser = std::move(parser.value());
  return Status::Ok();
}

// Builds the case id of a row; on failure returns the 0-based column of
// the empty cell through *bad_column.
std::string CaseId(const Context& ctx, const CommonColumns& cols,
                   const std::vector<std::string>& fields, int* bad_column) {
  std::string id = ctx.common->id_prefix;
  *bad_column = -1;
  for (size_t i = 0; i < cols.case_columns.size(); ++i) {
    const std::string& cell = fields[cols.case_columns[i]];
    if (ctx.IsNull(cell)) {
      *bad_column = cols.case_columns[i];
      return "";
    }
    if (i > 0) id += ':';
    id += cell;
  }
  return id;
}

// Reads every record of `reader`, counting rows and building each one's
// case id.  A row with an empty part of its case id is rejected here; every
// other row goes to `row(line, id, fields)`, whose failure (a reject under
// OnError::kRaise, a store error) stops the reading.
template <typename RowFn>
Status ReadRows(Context& ctx, CsvReader& reader, const CommonColumns& cols,
                RowFn row) {
  std::vector<std::string> fields;
  while (true) {
    auto more = reader.Next(&fields);
    if (!more.ok()) return more.status();
    if (!more.value()) return Status::Ok();
    ++ctx.summary.rows;
    const int64_t line = reader.line();
    // Events and cases are named by 32-bit indexes.
    if (ctx.events.size() >= kMaxPlanned || ctx.cases.size() >= kMaxPlanned) {
      return Status(Code::kInvalidArgument,
                    reader.name() + ":" + std::to_string(line) +
                        ": too many events or cases for one import "
                        "(expected about 2 billion at most; split the file)");
    }
    int bad_col = -1;
    std::string id = CaseId(ctx, cols, fields, &bad_col);
    if (bad_col >= 0) {
      CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
          line, bad_col + 1, "",
          "empty case id in column " + Quote(reader.header()[bad_col])));
      continue;
    }
    CRMFLOW_RETURN_IF_ERROR(row(line, id, fields));
  }
}

// Reads one attribute cell into its declared type.
StatusOr<Value> ParseAttribute(const Context& ctx, const ColumnAttribute& a,
                               const std::string& cell) {
  if (ctx.IsNull(cell)) return Value();
  auto bad = [&](const std::string& expected) {
    return Status(Code::kParseError,
                  "invalid " + std::string(ValueTypeName(a.type)) + " " +
                      Quote(cell) + " for attribute " + Quote(a.attribute) +
                      " (expected " + expected + ")");
  };
  switch (a.type) {
    case ValueType::kNull:
      return Value();
    case ValueType::kText:
      return Value::Text(cell);
    case ValueType::kInteger: {
      int64_t v = 0;
      const char* end = cell.data() + cell.size();
      auto r = std::from_chars(cell.data() + (cell[0] == '+' ? 1 : 0), end, v);
      if (r.ec != std::errc() || r.ptr != end) return bad("an integer");
      return Value::Integer(v);
    }
    case ValueType::kDecimal: {
      auto d = Decimal::Parse(cell);
      if (!d.ok()) return bad("a decimal number such as 12.30");
      return Value::Dec(d.value());
    }
    case ValueType::kBoolean: {
      std::string l = Lowered(cell);
      if (l == "true" || l == "1" || l == "yes") return Value::Bool(true);
      if (l == "false" || l == "0" || l == "no") return Value::Bool(false);
      return bad("true, false, 1, 0, yes or no");
    }
    case ValueType::kTimestamp: {
      auto t = ctx.parser->Parse(cell);
      if (!t.ok()) return t.status();
      return Value::Time(t.value());
    }
    case ValueType::kDuration: {
      auto v = Value::FromText(ValueType::kDuration, cell);
      if (!v.ok()) return bad("microseconds");
      return v.value();
    }
  }
  return bad("a known type");
}

// Reads the creation request's parts from a case's first usable row; a
// bad cell is a reject naming its column.
Status FillRequest(Context& ctx, const CommonColumns& cols,
                   const std::vector<std::string>& fields, int64_t line,
                   CaseData* c, bool* rejected) {
  *rejected = false;
  const size_t count = ctx.common->attributes.size();
  std::vector<Value> values(count);
  for (size_t i = 0; i < count; ++i) {
    const ColumnAttribute& a = ctx.common->attributes[i];
    auto v = ParseAttribute(ctx, a, fields[cols.attributes[i]]);
    if (!v.ok()) {
      *rejected = true;
      return ctx.AddReject(line, cols.attributes[i] + 1,
                           std::string(ctx.CaseIdOf(*c)),
                           v.status().message());
    }
    values[i] = std::move(v.value());
  }
  if (cols.customer >= 0 && !ctx.IsNull(fields[cols.customer])) {
    c->customer = ctx.texts.Intern(fields[cols.customer]);
  }
  if (cols.parent >= 0 && !ctx.IsNull(fields[cols.parent])) {
    c->parent = ctx.texts.Intern(ctx.common->id_prefix + fields[cols.parent]);
  }
  if (count > 0) {
    c->attributes = static_cast<int32_t>(ctx.attribute_values.size() / count);
    for (Value& v : values) ctx.attribute_values.push_back(std::move(v));
  }
  c->has_request = true;
  return Status::Ok();
}

// Builds the creation request of a case from what FillRequest kept.  The
// attribute values are moved out: each case is created once.
CreateRequest MakeRequest(Context& ctx, const CaseData& c) {
  CreateRequest req;
  req.kind = ctx.common->kind;
  req.id = std::string(ctx.CaseIdOf(c));
  req.customer_id = ctx.TextOf(c.customer);
  req.parent_id = ctx.TextOf(c.parent);
  const size_t count = ctx.common->attributes.size();
  if (c.attributes >= 0) {
    for (size_t i = 0; i < count; ++i) {
      Value& v = ctx.attribute_values[c.attributes * count + i];
      if (!v.is_null()) {
        SetAttribute(req.attributes, ctx.common->attributes[i].attribute,
                     std::move(v));
      }
    }
  }
  return req;
}

// Returns the case for `id`, creating it.
CaseData& FindCase(Context& ctx, std::string_view id, int64_t line) {
  bool added = false;
  int32_t index = ctx.case_ids.Intern(id, &added);
  if (!added) return ctx.cases[index];
  ctx.cases.emplace_back();
  CaseData& c = ctx.cases.back();
  c.id = index;
  c.first_line = line;
  return c;
}

// Groups the planned events by case (a counting sort, so each case keeps
// file order) and orders each case's events by time, ties in file order.
void GroupEvents(Context& ctx) {
  std::vector<uint32_t> start(ctx.cases.size() + 1, 0);
  for (const PlannedEvent& e : ctx.events) ++start[e.case_index + 1];
  for (size_t i = 0; i < ctx.cases.size(); ++i) {
    start[i + 1] += start[i];
    ctx.cases[i].first_event = start[i];
    ctx.cases[i].event_count = start[i + 1] - start[i];
  }
  ctx.order.assign(ctx.events.size(), 0);
  for (size_t i = 0; i < ctx.events.size(); ++i) {
    ctx.order[start[ctx.events[i].case_index]++] = static_cast<uint32_t>(i);
  }
  for (const CaseData& c : ctx.cases) {
    auto first = ctx.order.begin() + c.first_event;
    std::stable_sort(first, first + c.event_count,
                     [&](uint32_t a, uint32_t b) {
                       return ctx.events[a].time < ctx.events[b].time;
                     });
  }
}

// Chooses the event that takes `from` to `to`: the first declared
// transition between them, preferring one that is also the first candidate
// of its (state, event) so the engine picks that very transition.
const Workflow::Transition* TransitionBetween(const Workflow& wf, int from,
                                              int to) {
  const Workflow::Transition* first = nullptr;
  for (const auto& t : wf.transitions()) {
    if (t.source != from || t.target != to) continue;
    if (first == nullptr) first = &t;
    const auto& candidates = wf.Candidates(from, t.event);
    if (!candidates.empty() && candidates.front() == &t) return &t;
  }
  return first;
}

bool IsDeviationCode(Code code) {
  return code == Code::kNotAllowed || code == Code::kGuardRefused ||
         code == Code::kNotFound;
}

std::string Key(const Context& ctx, const CaseData& c, int position) {
  std::string key = ctx.common->kind + "|";
  key += ctx.CaseIdOf(c);
  key += "#" + std::to_string(position);
  if (position < static_cast<int>(c.event_count)) {
    // What happened and when, so that another export with other events at
    // the same positions is not mistaken for this one.
    const PlannedEvent& e = ctx.EventAt(c, position);
    key += "|";
    key += ctx.statuses ? ctx.workflow->StateName(e.code)
                        : ctx.event_names[e.code];
    key += "@" + std::to_string(e.time.micros);
  }
  return key;
}

std::string CreationKey(const Context& ctx, const CaseData& c) {
  std::string key = ctx.common->kind + "|";
  key += ctx.CaseIdOf(c);
  key += "#create";
  return key;
}

// Replays one case; a non-OK status aborts the import.
class CaseReplayer {
 public:
  CaseReplayer(Context& ctx, CaseData& c)
      : ctx_(ctx), c_(c), id_(ctx.CaseIdOf(c)) {}

  // Creates or continues the transaction; false when the case is rejected
  // (already counted).
  // `creation_first`: the case's position 0 is the creation itself (an
  // activity mapped to "create", a status naming the initial state), whose
  // row then takes the key of position 0.
  StatusOr<bool> Start(Timestamp time, const std::string& actor,
                       bool creation_first) {
    creation_key_ = creation_first ? Key(ctx_, c_, 0) : CreationKey(ctx_, c_);
    Engine& engine = *ctx_.engine;
    auto version = engine.store().LoadVersion(id_);
    if (!version.ok()) return version.status();
    const Workflow& wf = *ctx_.workflow;
    if (version.value().has_value()) {
      auto txn = engine.Get(id_);
      if (!txn.ok()) return txn.status();
      if (txn->kind != ctx_.common->kind) {
        CRMFLOW_RETURN_IF_ERROR(ctx_.AddReject(
            c_.first_line, 0, id_,
            "transaction " + Quote(id_) + " exists with kind " +
                Quote(txn->kind) + " (expected " +
                Quote(ctx_.common->kind) + ")"));
        return false;
      }
      // Replaying what is already stored must retrace the states the case
      // went through, so that an unchanged status row is seen as such.
      HistoryQuery query;
      query.transaction_id = id_;
      auto history = engine.History(query);
      if (!history.ok()) return history.status();
      state_ = wf.StateId(txn->state);
      for (const HistoryRow& row : history.value()) {
        if (row.source.empty()) continue;
        if (row.source == creation_key_) state_ = wf.StateId(row.to_state);
        known_.emplace(row.source, wf.StateId(row.to_state));
      }
      check_sources_ = true;
      // The creation row itself counts as already imported too, so that a
      // re-import reports every stored row as skipped.
      if (known_.count(creation_key_) != 0) ++ctx_.summary.skipped;
      return true;
    }
    CreateRequest req = MakeRequest(ctx_, c_);
    req.time = time;
    req.actor = actor;
    req.source = creation_key_;
    auto txn = engine.Create(req);
    if (!txn.ok()) {
      if (txn.status().code() == Code::kInvalidArgument ||
          txn.status().code() == Code::kNotFound) {
        // A bad attribute set or an unknown parent: nothing was written.
        CRMFLOW_RETURN_IF_ERROR(ctx_.AddReject(c_.first_line, 0, id_,
                                               txn.status().message()));
        return false;
      }
      return txn.status();
    }
    state_ = wf.StateId(txn->state);
    ++ctx_.summary.created;
    ++ctx_.since_commit;
    return true;
  }

  // True when the effect of `position` is already stored.
  StatusOr<bool> AlreadyImported(int position) {
    if (!check_sources_) return false;
    std::string key = Key(ctx_, c_, position);
    auto it = known_.find(key);
    if (it != known_.end()) {
      state_ = it->second;
      ++ctx_.summary.skipped;
      return true;
    }
    // Not in this case's history: a recorded deviation, or new.
    auto has = ctx_.engine->store().HasSource(key);
    if (!has.ok()) return has.status();
    if (has.value()) ++ctx_.summary.skipped;
    return has.value();
  }

  // Fires `event`; a refusal becomes a deviation.  *fired tells which.
  Status Fire(int position, const std::string& event, Timestamp time,
              const std::string& actor, const std::string& payload,
              bool* fired) {
    *fired = false;
    FireOptions options;
    options.time = time;
    options.actor = actor;
    options.payload = payload;
    options.source = Key(ctx_, c_, position);
    auto r = ctx_.engine->Fire(id_, event, options);
    if (r.ok()) {
      state_ = ctx_.workflow->StateId(r->state);
      ++ctx_.summary.events_applied;
      ++ctx_.since_commit;
      *fired = true;
      return Status::Ok();
    }
    if (!IsDeviationCode(r.status().code())) return r.status();
    return Deviate(position, event, time, r.status().message());
  }

  Status Deviate(int position, const std::string& event, Timestamp time,
                 std::string reason) {
    Deviation d;
    d.transaction_id = id_;
    d.kind = ctx_.common->kind;
    d.position = position;
    d.state = state_ >= 0 ? ctx_.workflow->StateName(state_) : "";
    d.event = event;
    d.time = time;
    d.reason = std::move(reason);
    d.source = Key(ctx_, c_, position);
    CRMFLOW_RETURN_IF_ERROR(ctx_.engine->RecordDeviation(d));
    ++ctx_.summary.deviations;
    ++ctx_.since_commit;
    return Status::Ok();
  }

  // Moves to `target` by the first declared transition, or deviates.
  Status MoveTo(int position, int target, Timestamp time,
                const std::string& actor, const std::string& payload) {
    const Workflow& wf = *ctx_.workflow;
    const std::string& target_name = wf.StateName(target);
    const Workflow::Transition* t =
        state_ >= 0 ? TransitionBetween(wf, state_, target) : nullptr;
    if (t == nullptr) {
      std::string from = state_ >= 0 ? wf.StateName(state_) : "";
      return Deviate(position, target_name, time,
                     "no transition from " + Quote(from) + " to " +
                         Quote(target_name));
    }
    bool fired = false;
    return Fire(position, wf.EventName(t->event), time, actor, payload,
                &fired);
  }

  int state() const { return state_; }

 private:
  Context& ctx_;
  CaseData& c_;
  const std::string id_;
  int state_ = Workflow::kNoId;
  bool check_sources_ = false;
  std::string creation_key_;
  // Source key -> state reached, from the stored history of a continued
  // case.
  std::unordered_map<std::string, int> known_;
};

// Replays an event-log case.
Status ReplayEventCase(Context& ctx, CaseData& c) {
  CaseReplayer replayer(ctx, c);
  const PlannedEvent& first = ctx.EventAt(c, 0);
  const bool creation_first =
      ctx.statuses ? first.code == ctx.workflow->initial_state()
                   : ctx.event_names[first.code] == kCreateEvent;
  auto started =
      replayer.Start(first.time, ctx.TextOf(first.actor), creation_first);
  if (!started.ok()) return started.status();
  if (!started.value()) return Status::Ok();
  ++ctx.summary.cases;
  for (size_t i = 0; i < c.event_count; ++i) {
    const PlannedEvent& e = ctx.EventAt(c, i);
    int position = static_cast<int>(i);
    if (i == 0 && creation_first) continue;  // the creation row itself
    if (ctx.statuses) {
      auto done = replayer.AlreadyImported(position);
      if (!done.ok()) return done.status();
      if (done.value()) continue;
      if (e.code == replayer.state()) {
        ++ctx.summary.unchanged;
        continue;
      }
      CRMFLOW_RETURN_IF_ERROR(
          replayer.MoveTo(position, e.code, e.time, ctx.TextOf(e.actor),
                          ctx.TextOf(e.payload)));
      continue;
    }
    const std::string& event = ctx.event_names[e.code];
    auto done = replayer.AlreadyImported(position);
    if (!done.ok()) return done.status();
    if (done.value()) continue;
    bool fired = false;
    CRMFLOW_RETURN_IF_ERROR(
        replayer.Fire(position, event, e.time, ctx.TextOf(e.actor),
                      ctx.TextOf(e.payload), &fired));
  }
  return Status::Ok();
}

// Returns, for each state, the transition by which a breadth-first search
// from `from` first reached it (-1 when unreached): following them back
// from a target gives a shortest path.
std::vector<int> BfsPredecessors(const Graph& g, int from) {
  std::vector<int> pred(boost::num_vertices(g), -1);
  boost::breadth_first_search(g, boost::vertex(from, g),
                              boost::visitor(PredecessorRecorder(&pred)));
  return pred;
}

// Replays a milestone-table case.
Status ReplayMilestoneCase(Context& ctx, const Graph& graph, CaseData& c) {
  const Timestamp created = c.created;
  CaseReplayer replayer(ctx, c);
  auto started = replayer.Start(created, "", false);
  if (!started.ok()) return started.status();
  if (!started.value()) return Status::Ok();
  ++ctx.summary.cases;
  Timestamp last = created;
  int position = 0;
  for (size_t i = 0; i < c.event_count; ++i) {
    const PlannedEvent& e = ctx.EventAt(c, i);
    if (last < e.time) last = e.time;
    auto done = replayer.AlreadyImported(position);
    if (!done.ok()) return done.status();
    if (!done.value()) {
      bool fired = false;
      CRMFLOW_RETURN_IF_ERROR(replayer.Fire(position, ctx.event_names[e.code],
                                            e.time, "", "", &fired));
    }
    ++position;
  }
  const Workflow& wf = *ctx.workflow;
  int target = c.final_state;
  if (target == Workflow::kNoId || target == replayer.state() ||
      replayer.state() < 0) {
    return Status::Ok();
  }
  std::vector<int> pred = BfsPredecessors(graph, replayer.state());
  if (pred[target] < 0) {
    auto done = replayer.AlreadyImported(position);
    if (!done.ok()) return done.status();
    if (done.value()) return Status::Ok();
    return replayer.Deviate(position, wf.StateName(target), last,
                            "no path from " +
                                Quote(wf.StateName(replayer.state())) +
                                " to final status " +
                                Quote(wf.StateName(target)));
  }
  std::vector<const Workflow::Transition*> path;
  for (int v = target; v != replayer.state();) {
    const Workflow::Transition& t = wf.transitions()[pred[v]];
    path.push_back(&t);
    v = t.source;
  }
  std::reverse(path.begin(), path.end());
  for (const Workflow::Transition* t : path) {
    auto done = replayer.AlreadyImported(position);
    if (!done.ok()) return done.status();
    if (!done.value()) {
      bool fired = false;
      CRMFLOW_RETURN_IF_ERROR(replayer.Fire(position, wf.EventName(t->event),
                                            last, "", "{\"inferred\":true}",
                                            &fired));
      if (fired) ++ctx.summary.inferred;
      // A refused step leaves the case where it is; the rest of the path
      // would start from the wrong state.
      if (!fired) break;
    }
    ++position;
  }
  return Status::Ok();
}

Graph BuildGraph(const Workflow& wf) {
  Graph g(wf.state_count());
  for (const auto& t : wf.transitions()) {
    if (t.source < 0 || t.target < 0 || t.source == t.target) continue;
    boost::add_edge(t.source, t.target, EdgeProps{t.index}, g);
  }
  return g;
}

// Phase two for both shapes: writes every case in one outer transaction.
template <typename ReplayFn>
StatusOr<ImportSummary> WriteCases(Context& ctx, ReplayFn replay) {
  Engine& engine = *ctx.engine;
  GroupEvents(ctx);
  Timestamp started_at = engine.Now();
  CRMFLOW_RETURN_IF_ERROR(engine.Begin());
  auto fail = [&](Status st) -> Status {
    Status rb = engine.Rollback();
    if (!rb.ok()) {
      return Status(st.code(), st.message() + " (and the rollback failed: " +
                                   rb.message() + ")");
    }
    return st;
  };
  try {
    for (CaseData& c : ctx.cases) {
      if (c.rejected || !c.has_request) continue;
      Status st = replay(c);
      if (!st.ok()) return fail(st);
      if (ctx.common->commit_every > 0 &&
          ctx.since_commit >= ctx.common->commit_every) {
        Status commit = engine.Commit();
        if (!commit.ok()) return fail(commit);
        Status begin = engine.Begin();
        if (!begin.ok()) return begin;
        ctx.since_commit = 0;
      }
    }
    ImportRecord record;
    record.file = ctx.file;
    record.kind = ctx.common->kind;
    record.started_at = started_at;
    record.cases = ctx.summary.cases;
    record.events_applied = ctx.summary.events_applied;
    record.deviations = ctx.summary.deviations;
    record.rejected = static_cast<int64_t>(ctx.summary.rejects.size());
    record.skipped = ctx.summary.skipped;
    auto id = engine.store().AppendImport(record);
    if (!id.ok()) return fail(id.status());
    Status commit = engine.Commit();
    if (!commit.ok()) return fail(commit);
  } catch (...) {
    // A callback threw: undo everything, then let the caller see it.
    (void)engine.Rollback();
    throw;
  }
  return std::move(ctx.summary);
}

// Looks up `value` in a name map.
const std::string* MapLookup(
    const std::vector<std::pair<std::string, std::string>>& map,
    const std::string& value) {
  for (const auto& [from, to] : map) {
    if (from == value) return &to;
  }
  return nullptr;
}

std::string MapKeys(
    const std::vector<std::pair<std::string, std::string>>& map) {
  std::vector<std::string> keys;
  for (const auto& kv : map) keys.push_back(kv.first);
  return JoinNames(keys);
}

// Checks that a status map names states of the workflow.
Status CheckStatusMap(
    const Workflow& wf,
    const std::vector<std::pair<std::string, std::string>>& map) {
  for (const auto& [status, state] : map) {
    if (wf.StateId(state) == Workflow::kNoId) {
      return Status(Code::kInvalidArgument,
                    "status " + Quote(status) + " maps to unknown state " +
                        Quote(state) + " of kind " + Quote(wf.name()));
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<ImportSummary> ImportEventLog(Engine& engine, CsvReader& reader,
                                       const EventLogMapping& mapping) {
  Context ctx;
  CRMFLOW_RETURN_IF_ERROR(InitContext(engine, reader, mapping.common, &ctx));
  const Workflow& wf = *ctx.workflow;
  auto common_cols = ResolveCommon(reader, mapping.common);
  if (!common_cols.ok()) return common_cols.status();
  const CommonColumns& cols = common_cols.value();
  auto activity_col = ResolveColumn(reader, mapping.activity_column, false);
  if (!activity_col.ok()) return activity_col.status();
  auto time_col = ResolveColumn(reader, mapping.time_column, false);
  if (!time_col.ok()) return time_col.status();
  auto actor_col = ResolveColumn(reader, mapping.actor_column, true);
  if (!actor_col.ok()) return actor_col.status();
  std::vector<int> payload_cols;
  for (const auto& name : mapping.payload_columns) {
    auto i = ResolveColumn(reader, name, false);
    if (!i.ok()) return i.status();
    payload_cols.push_back(i.value());
  }
  ctx.statuses = !mapping.status_map.empty();
  CRMFLOW_RETURN_IF_ERROR(CheckStatusMap(wf, mapping.status_map));
  for (const auto& [activity, event] : mapping.activity_map) {
    if (!event.empty() && event != kCreateEvent &&
        wf.EventId(event) == Workflow::kNoId) {
      return Status(Code::kInvalidArgument,
                    "activity " + Quote(activity) + " maps to unknown event " +
                        Quote(event) + " of kind " + Quote(wf.name()));
    }
  }
  const int a_col = activity_col.value();
  const int t_col = time_col.value();
  const int actor = actor_col.value();

  // Phase one: read and plan.
  std::string payload;
  CRMFLOW_RETURN_IF_ERROR(ReadRows(
      ctx, reader, cols,
      [&](int64_t line, const std::string& id,
          const std::vector<std::string>& fields) -> Status {
        const std::string& value = fields[a_col];
        int code = 0;
        if (ctx.IsNull(value)) {
          CaseData& c = FindCase(ctx, id, line);
          c.rejected = true;
          CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
              line, a_col + 1, id,
              std::string("empty ") + (ctx.statuses ? "status" : "activity") +
                  " in column " + Quote(mapping.activity_column)));
          return Status::Ok();
        }
        if (ctx.statuses) {
          const std::string* state = MapLookup(mapping.status_map, value);
          if (state == nullptr) {
            CaseData& c = FindCase(ctx, id, line);
            c.rejected = true;
            CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
                line, a_col + 1, id,
                "unknown status " + Quote(value) + " (expected " +
                    MapKeys(mapping.status_map) + ")"));
            return Status::Ok();
          }
          code = wf.StateId(*state);
        } else if (!mapping.activity_map.empty()) {
          const std::string* event = MapLookup(mapping.activity_map, value);
          if (event == nullptr) {
            CaseData& c = FindCase(ctx, id, line);
            c.rejected = true;
            CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
                line, a_col + 1, id,
                "unknown activity " + Quote(value) + " (expected " +
                    MapKeys(mapping.activity_map) + ")"));
            return Status::Ok();
          }
          if (event->empty()) {
            ++ctx.summary.ignored;
            return Status::Ok();
          }
          code = ctx.InternEvent(*event);
        } else {
          code = ctx.InternEvent(value);
        }
        CaseData& c = FindCase(ctx, id, line);
        const std::string& time_text = fields[t_col];
        if (ctx.IsNull(time_text)) {
          c.rejected = true;
          CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
              line, t_col + 1, id,
              "empty time in column " + Quote(mapping.time_column)));
          return Status::Ok();
        }
        auto time = ctx.parser->Parse(time_text);
        if (!time.ok()) {
          c.rejected = true;
          CRMFLOW_RETURN_IF_ERROR(
              ctx.AddReject(line, t_col + 1, id, time.status().message()));
          return Status::Ok();
        }
        if (c.rejected) {
          ++ctx.summary.in_rejected_cases;
          return Status::Ok();
        }
        if (!c.has_request) {
          bool rejected = false;
          CRMFLOW_RETURN_IF_ERROR(
              FillRequest(ctx, cols, fields, line, &c, &rejected));
          if (rejected) {
            c.rejected = true;
            return Status::Ok();
          }
        }
        PlannedEvent e;
        e.time = time.value();
        e.code = code;
        e.case_index = c.id;
        if (actor >= 0 && !ctx.IsNull(fields[actor])) {
          e.actor = ctx.texts.Intern(fields[actor]);
        }
        if (!payload_cols.empty()) {
          payload = "{";
          for (size_t i = 0; i < payload_cols.size(); ++i) {
            if (i > 0) payload += ',';
            AppendJsonString(&payload, mapping.payload_columns[i]);
            payload += ':';
            const std::string& cell = fields[payload_cols[i]];
            if (ctx.IsNull(cell)) {
              payload += "null";
            } else {
              AppendJsonString(&payload, cell);
            }
          }
          payload += '}';
          e.payload = ctx.texts.Intern(payload);
        }
        ctx.events.push_back(e);
        return Status::Ok();
      }));

  // Rows planned before a later row rejected their case are not imported
  // either; count them so that every row is accounted for.
  for (const PlannedEvent& e : ctx.events) {
    if (ctx.cases[e.case_index].rejected) ++ctx.summary.in_rejected_cases;
  }

  // Phase two: write.
  return WriteCases(ctx, [&](CaseData& c) { return ReplayEventCase(ctx, c); });
}

StatusOr<ImportSummary> ImportMilestones(Engine& engine, CsvReader& reader,
                                         const MilestoneMapping& mapping) {
  Context ctx;
  CRMFLOW_RETURN_IF_ERROR(InitContext(engine, reader, mapping.common, &ctx));
  const Workflow& wf = *ctx.workflow;
  auto common_cols = ResolveCommon(reader, mapping.common);
  if (!common_cols.ok()) return common_cols.status();
  const CommonColumns& cols = common_cols.value();
  auto created_col = ResolveColumn(reader, mapping.created_column, false);
  if (!created_col.ok()) return created_col.status();
  auto status_col = ResolveColumn(reader, mapping.status_column, true);
  if (!status_col.ok()) return status_col.status();
  std::vector<int> milestone_cols;
  std::vector<std::vector<int>> milestone_events;
  for (const Milestone& m : mapping.milestones) {
    auto i = ResolveColumn(reader, m.column, false);
    if (!i.ok()) return i.status();
    milestone_cols.push_back(i.value());
    std::vector<int> events;
    for (const auto& e : m.events) {
      if (wf.EventId(e) == Workflow::kNoId) {
        return Status(Code::kInvalidArgument,
                      "milestone " + Quote(m.column) + " names unknown event " +
                          Quote(e) + " of kind " + Quote(wf.name()));
      }
      events.push_back(ctx.InternEvent(e));
    }
    milestone_events.push_back(std::move(events));
  }
  CRMFLOW_RETURN_IF_ERROR(CheckStatusMap(wf, mapping.status_map));
  if (status_col.value() >= 0 && mapping.status_map.empty()) {
    return Status(Code::kInvalidArgument,
                  "status column " + Quote(mapping.status_column) +
                      " is given without a status_map (expected status "
                      "value -> state pairs)");
  }
  const int c_col = created_col.value();
  const int s_col = status_col.value();
  CRMFLOW_RETURN_IF_ERROR(ReadRows(
      ctx, reader, cols,
      [&](int64_t line, const std::string& id,
          const std::vector<std::string>& fields) -> Status {
        int32_t seen = ctx.case_ids.Find(id);
        if (seen >= 0) {
          CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
              line, cols.case_columns[0] + 1, id,
              "duplicate case " + Quote(id) + " (first seen on line " +
                  std::to_string(ctx.cases[seen].first_line) + ")"));
          return Status::Ok();
        }
        CaseData& c = FindCase(ctx, id, line);
        auto reject = [&](int col, std::string reason) {
          c.rejected = true;
          return ctx.AddReject(line, col + 1, id, std::move(reason));
        };
        const std::string& created_text = fields[c_col];
        if (ctx.IsNull(created_text)) {
          CRMFLOW_RETURN_IF_ERROR(reject(
              c_col, "empty time in column " + Quote(mapping.created_column)));
          return Status::Ok();
        }
        auto created = ctx.parser->Parse(created_text);
        if (!created.ok()) {
          CRMFLOW_RETURN_IF_ERROR(reject(c_col, created.status().message()));
          return Status::Ok();
        }
        c.created = created.value();
        bool bad = false;
        for (size_t m = 0; m < milestone_cols.size() && !bad; ++m) {
          const std::string& cell = fields[milestone_cols[m]];
          if (ctx.IsNull(cell)) continue;  // milestone not reached
          auto t = ctx.parser->Parse(cell);
          if (!t.ok()) {
            CRMFLOW_RETURN_IF_ERROR(
                reject(milestone_cols[m], t.status().message()));
            bad = true;
            break;
          }
          for (int event : milestone_events[m]) {
            PlannedEvent e;
            e.time = t.value();
            e.code = event;
            e.case_index = c.id;
            ctx.events.push_back(e);
          }
        }
        if (bad) return Status::Ok();
        if (s_col >= 0 && !ctx.IsNull(fields[s_col])) {
          const std::string& status = fields[s_col];
          const std::string* state = MapLookup(mapping.status_map, status);
          if (state == nullptr) {
            CRMFLOW_RETURN_IF_ERROR(reject(
                s_col, "unknown status " + Quote(status) + " (expected " +
                           MapKeys(mapping.status_map) + ")"));
            return Status::Ok();
          }
          c.final_state = wf.StateId(*state);
        }
        bool rejected = false;
        CRMFLOW_RETURN_IF_ERROR(
            FillRequest(ctx, cols, fields, line, &c, &rejected));
        if (rejected) c.rejected = true;
        return Status::Ok();
      }));

  Graph graph = BuildGraph(wf);
  return WriteCases(ctx, [&](CaseData& c) {
    return ReplayMilestoneCase(ctx, graph, c);
  });
}

StatusOr<ImportSummary> ImportEventLog(Engine& engine, const std::string& path,
                                       const EventLogMapping& mapping) {
  auto reader = CsvReader::Open(path, mapping.common.csv);
  if (!reader.ok()) return reader.status();
  return ImportEventLog(engine, *reader.value(), mapping);
}

StatusOr<ImportSummary> ImportMilestones(Engine& engine,
                                         const std::string& path,
                                         const MilestoneMapping& mapping) {
  auto reader = CsvReader::Open(path, mapping.common.csv);
  if (!reader.ok()) return reader.status();
  return ImportMilestones(engine, *reader.value(), mapping);
}

}  // namespace crmflow
