// importer.cc: replays event-log and milestone-table CSV exports through an
// Engine (see importer.h for the contract).
//
// An import runs in two phases.  Reading collects, per case, the planned
// events (time, file line, what happened) and the creation request; a row
// that cannot be used rejects its whole case, so nothing of that case is
// written later.  Cases are kept in order of first appearance, which makes
// the write order, and so history seq numbers, deterministic.  Writing then
// sorts each case's events by time (a stable sort: ties keep file order),
// creates the transaction and fires the events inside one outer store
// transaction, recording refused events as deviations.
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
#include <cstdio>
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

// One event of a case as read, before ordering.
struct PlannedEvent {
  Timestamp time;
  int64_t line = 0;
  // Activity logs and milestones: index into Context::event_names.
  // Status logs: the target state id.
  int code = 0;
  std::string actor;
  std::string payload;
};

struct CaseData {
  std::string id;
  int64_t first_line = 0;
  bool rejected = false;
  bool has_request = false;
  CreateRequest request;
  std::vector<PlannedEvent> events;
  // Milestone tables: the mapped final status, or kNoId.
  int final_state = Workflow::kNoId;
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
  std::vector<CaseData> cases;
  std::unordered_map<std::string, size_t> case_index;
  int64_t since_commit = 0;

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

// Fills the creation request from a case's first row; a bad cell is a
// reject naming its column.
Status FillRequest(Context& ctx, const CommonColumns& cols,
                   const std::vector<std::string>& fields, int64_t line,
                   CaseData* c, bool* rejected) {
  *rejected = false;
  CreateRequest& req = c->request;
  req.kind = ctx.common->kind;
  req.id = c->id;
  if (cols.customer >= 0 && !ctx.IsNull(fields[cols.customer])) {
    req.customer_id = fields[cols.customer];
  }
  if (cols.parent >= 0 && !ctx.IsNull(fields[cols.parent])) {
    req.parent_id = ctx.common->id_prefix + fields[cols.parent];
  }
  for (size_t i = 0; i < ctx.common->attributes.size(); ++i) {
    const ColumnAttribute& a = ctx.common->attributes[i];
    auto v = ParseAttribute(ctx, a, fields[cols.attributes[i]]);
    if (!v.ok()) {
      *rejected = true;
      return ctx.AddReject(line, cols.attributes[i] + 1, c->id,
                           v.status().message());
    }
    if (!v.value().is_null()) SetAttribute(req.attributes, a.attribute,
                                           std::move(v.value()));
  }
  c->has_request = true;
  return Status::Ok();
}

// Returns the case for `id`, creating it.
CaseData& FindCase(Context& ctx, const std::string& id, int64_t line) {
  auto it = ctx.case_index.find(id);
  if (it != ctx.case_index.end()) return ctx.cases[it->second];
  ctx.case_index.emplace(id, ctx.cases.size());
  ctx.cases.emplace_back();
  CaseData& c = ctx.cases.back();
  c.id = id;
  c.first_line = line;
  return c;
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
  std::string key = ctx.common->kind + "|" + c.id + "#" +
                    std::to_string(position);
  if (position < static_cast<int>(c.events.size())) {
    // What happened and when, so that another export with other events at
    // the same positions is not mistaken for this one.
    const PlannedEvent& e = c.events[position];
    key += "|";
    key += ctx.statuses ? ctx.workflow->StateName(e.code)
                        : ctx.event_names[e.code];
    key += "@" + std::to_string(e.time.micros);
  }
  return key;
}

std::string CreationKey(const Context& ctx, const CaseData& c) {
  return ctx.common->kind + "|" + c.id + "#create";
}

// Replays one case; a non-OK status aborts the import.
class CaseReplayer {
 public:
  CaseReplayer(Context& ctx, CaseData& c) : ctx_(ctx), c_(c) {}

  // Creates or continues the transaction; false when the case is rejected
  // (already counted).
  // `creation_first`: the case's position 0 is the creation itself (an
  // activity mapped to "create", a status naming the initial state), whose
  // row then takes the key of position 0.
  StatusOr<bool> Start(Timestamp time, const std::string& actor,
                       bool creation_first) {
    creation_key_ = creation_first ? Key(ctx_, c_, 0) : CreationKey(ctx_, c_);
    Engine& engine = *ctx_.engine;
    auto version = engine.store().LoadVersion(c_.id);
    if (!version.ok()) return version.status();
    const Workflow& wf = *ctx_.workflow;
    if (version.value().has_value()) {
      auto txn = engine.Get(c_.id);
      if (!txn.ok()) return txn.status();
      if (txn->kind != ctx_.common->kind) {
        CRMFLOW_RETURN_IF_ERROR(ctx_.AddReject(
            c_.first_line, 0, c_.id,
            "transaction " + Quote(c_.id) + " exists with kind " +
                Quote(txn->kind) + " (expected " +
                Quote(ctx_.common->kind) + ")"));
        return false;
      }
      // Replaying what is already stored must retrace the states the case
      // went through, so that an unchanged status row is seen as such.
      HistoryQuery query;
      query.transaction_id = c_.id;
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
    CreateRequest req = c_.request;
    req.time = time;
    req.actor = actor;
    req.source = creation_key_;
    auto txn = engine.Create(req);
    if (!txn.ok()) {
      if (txn.status().code() == Code::kInvalidArgument ||
          txn.status().code() == Code::kNotFound) {
        // A bad attribute set or an unknown parent: nothing was written.
        CRMFLOW_RETURN_IF_ERROR(ctx_.AddReject(c_.first_line, 0, c_.id,
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
    auto r = ctx_.engine->Fire(c_.id, event, options);
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
    d.transaction_id = c_.id;
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
  int state_ = Workflow::kNoId;
  bool check_sources_ = false;
  std::string creation_key_;
  // Source key -> state reached, from the stored history of a continued
  // case.
  std::unordered_map<std::string, int> known_;
};

void SortEvents(CaseData& c) {
  std::stable_sort(c.events.begin(), c.events.end(),
                   [](const PlannedEvent& a, const PlannedEvent& b) {
                     return a.time < b.time;
                   });
}

// Replays an event-log case.
Status ReplayEventCase(Context& ctx, CaseData& c) {
  SortEvents(c);
  CaseReplayer replayer(ctx, c);
  const PlannedEvent& first = c.events.front();
  const bool creation_first =
      ctx.statuses ? first.code == ctx.workflow->initial_state()
                   : ctx.event_names[first.code] == kCreateEvent;
  auto started = replayer.Start(first.time, first.actor, creation_first);
  if (!started.ok()) return started.status();
  if (!started.value()) return Status::Ok();
  ++ctx.summary.cases;
  for (size_t i = 0; i < c.events.size(); ++i) {
    const PlannedEvent& e = c.events[i];
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
          replayer.MoveTo(position, e.code, e.time, e.actor, e.payload));
      continue;
    }
    const std::string& event = ctx.event_names[e.code];
    auto done = replayer.AlreadyImported(position);
    if (!done.ok()) return done.status();
    if (done.value()) continue;
    bool fired = false;
    CRMFLOW_RETURN_IF_ERROR(
        replayer.Fire(position, event, e.time, e.actor, e.payload, &fired));
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
Status ReplayMilestoneCase(Context& ctx, const Graph& graph, CaseData& c,
                           Timestamp created) {
  SortEvents(c);
  CaseReplayer replayer(ctx, c);
  auto started = replayer.Start(created, c.request.actor, false);
  if (!started.ok()) return started.status();
  if (!started.value()) return Status::Ok();
  ++ctx.summary.cases;
  Timestamp last = created;
  int position = 0;
  for (const PlannedEvent& e : c.events) {
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
  std::vector<std::string> fields;
  while (true) {
    auto more = reader.Next(&fields);
    if (!more.ok()) return more.status();
    if (!more.value()) break;
    ++ctx.summary.rows;
    const int64_t line = reader.line();
    int bad_col = -1;
    std::string id = CaseId(ctx, cols, fields, &bad_col);
    if (bad_col >= 0) {
      CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
          line, bad_col + 1, "",
          "empty case id in column " + Quote(reader.header()[bad_col])));
      continue;
    }
    const std::string& value = fields[a_col];
    int code = 0;
    if (ctx.IsNull(value)) {
      CaseData& c = FindCase(ctx, id, line);
      c.rejected = true;
      CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
          line, a_col + 1, id,
          std::string("empty ") + (ctx.statuses ? "status" : "activity") +
              " in column " + Quote(mapping.activity_column)));
      continue;
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
        continue;
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
        continue;
      }
      if (event->empty()) {
        ++ctx.summary.ignored;
        continue;
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
      continue;
    }
    auto time = ctx.parser->Parse(time_text);
    if (!time.ok()) {
      c.rejected = true;
      CRMFLOW_RETURN_IF_ERROR(
          ctx.AddReject(line, t_col + 1, id, time.status().message()));
      continue;
    }
    if (c.rejected) continue;
    if (!c.has_request) {
      bool rejected = false;
      CRMFLOW_RETURN_IF_ERROR(
          FillRequest(ctx, cols, fields, line, &c, &rejected));
      if (rejected) {
        c.rejected = true;
        continue;
      }
    }
    PlannedEvent e;
    e.time = time.value();
    e.line = line;
    e.code = code;
    if (actor >= 0 && !ctx.IsNull(fields[actor])) e.actor = fields[actor];
    if (!payload_cols.empty()) {
      e.payload = "{";
      for (size_t i = 0; i < payload_cols.size(); ++i) {
        if (i > 0) e.payload += ',';
        AppendJsonString(&e.payload, mapping.payload_columns[i]);
        e.payload += ':';
        const std::string& cell = fields[payload_cols[i]];
        if (ctx.IsNull(cell)) {
          e.payload += "null";
        } else {
          AppendJsonString(&e.payload, cell);
        }
      }
      e.payload += '}';
    }
    c.events.push_back(std::move(e));
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
  std::vector<Timestamp> created_at;  // by case index

  std::vector<std::string> fields;
  while (true) {
    auto more = reader.Next(&fields);
    if (!more.ok()) return more.status();
    if (!more.value()) break;
    ++ctx.summary.rows;
    const int64_t line = reader.line();
    int bad_col = -1;
    std::string id = CaseId(ctx, cols, fields, &bad_col);
    if (bad_col >= 0) {
      CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
          line, bad_col + 1, "",
          "empty case id in column " + Quote(reader.header()[bad_col])));
      continue;
    }
    auto it = ctx.case_index.find(id);
    if (it != ctx.case_index.end()) {
      CRMFLOW_RETURN_IF_ERROR(ctx.AddReject(
          line, cols.case_columns[0] + 1, id,
          "duplicate case " + Quote(id) + " (first seen on line " +
              std::to_string(ctx.cases[it->second].first_line) + ")"));
      continue;
    }
    CaseData& c = FindCase(ctx, id, line);
    created_at.push_back(Timestamp{});
    auto reject = [&](int col, std::string reason) {
      c.rejected = true;
      return ctx.AddReject(line, col + 1, id, std::move(reason));
    };
    const std::string& created_text = fields[c_col];
    if (ctx.IsNull(created_text)) {
      CRMFLOW_RETURN_IF_ERROR(reject(
          c_col, "empty time in column " + Quote(mapping.created_column)));
      continue;
    }
    auto created = ctx.parser->Parse(created_text);
    if (!created.ok()) {
      CRMFLOW_RETURN_IF_ERROR(reject(c_col, created.status().message()));
      continue;
    }
    created_at.back() = created.value();
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
        e.line = line;
        e.code = event;
        c.events.push_back(std::move(e));
      }
    }
    if (bad) continue;
    if (s_col >= 0 && !ctx.IsNull(fields[s_col])) {
      const std::string* state = MapLookup(mapping.status_map, fields[s_col]);
      if (state == nullptr) {
        CRMFLOW_RETURN_IF_ERROR(reject(
            s_col, "unknown status " + Quote(fields[s_col]) + " (expected " +
                       MapKeys(mapping.status_map) + ")"));
        continue;
      }
      c.final_state = wf.StateId(*state);
    }
    bool rejected = false;
    CRMFLOW_RETURN_IF_ERROR(
        FillRequest(ctx, cols, fields, line, &c, &rejected));
    if (rejected) c.rejected = true;
  }

  Graph graph = BuildGraph(wf);
  return WriteCases(ctx, [&](CaseData& c) {
    size_t index = &c - ctx.cases.data();
    return ReplayMilestoneCase(ctx, graph, c, created_at[index]);
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
