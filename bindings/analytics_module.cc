// analytics_module.cc: the analytics part of the crmflow._core module.
//
// Binds the columnar EventLog (event_log.h, xes.h), the process-mining
// figures (analytics.h) and conformance, discovery and diffs
// (conformance.h).  Like core_module.cc it only converts: columns go out as
// numpy arrays (ints, floats with a separate "missing" mask so that no
// statistic becomes NaN) and lists of names, strings come in as
// factorised codes plus their distinct values, and every Status becomes
// one exception of crmflow._errors.  The GIL is released around reading,
// building and computing; Python guards of a replay take it back.
//
// The module function crmflow_register_analytics is called from the
// PYBIND11_MODULE block of core_module.cc, after the Workflow class is
// registered (discovery returns one).

#include <Python.h>
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "crmflow/analytics.h"
#include "crmflow/conformance.h"
#include "crmflow/event_log.h"
#include "crmflow/status.h"
#include "crmflow/timestamp.h"
#include "crmflow/workflow.h"
#include "crmflow/xes.h"

namespace py = pybind11;

namespace crmflow {
namespace {

// crmflow._errors.BY_CODE and Error, looked up once and leaked on purpose
// (the interpreter may be finalizing when static destructors run).
py::object* errors_by_code = nullptr;
py::object* error_base = nullptr;

// Raises the crmflow._errors class of `status` with its message.
[[noreturn]] void Raise(const Status& status) {
  py::object cls = *error_base;
  py::str key(CodeName(status.code()));
  if (errors_by_code->contains(key)) cls = (*errors_by_code)[key];
  PyErr_SetString(cls.ptr(), status.message().c_str());
  throw py::error_already_set();
}

template <typename T>
T Unwrap(StatusOr<T>&& result) {
  if (!result.ok()) Raise(result.status());
  return std::move(result).value();
}

[[noreturn]] void RaiseInvalid(const std::string& message) {
  Raise(Status(Code::kInvalidArgument, message));
}

using SharedLog = std::shared_ptr<EventLog>;

// Releases the GIL for the lifetime of the object.
class NoGil {
 public:
  NoGil() : state_(PyEval_SaveThread()) {}
  ~NoGil() {
#if PY_VERSION_HEX < 0x030E0000
    // Before Python 3.14, a daemon thread that asks for the GIL back while
    // the interpreter finalizes is ended on the spot (pthread_exit), which
    // a C++ destructor cannot survive: the process would abort at exit.
    // Such a thread waits for the process to end instead, as 3.14 makes
    // it do.
#if PY_VERSION_HEX >= 0x030D0000
    const bool finalizing = Py_IsFinalizing();
#else
    const bool finalizing = _Py_IsFinalizing();
#endif
    while (finalizing) std::this_thread::sleep_for(std::chrono::hours(1));
#endif
    PyEval_RestoreThread(state_);
  }
  NoGil(const NoGil&) = delete;
  NoGil& operator=(const NoGil&) = delete;

 private:
  PyThreadState* state_;
};

// Keeps Python's cyclic garbage collector off for the lifetime of the
// object (when it was on), while a binding makes many container objects.
class PausedGc {
 public:
#if PY_VERSION_HEX >= 0x030A0000
  PausedGc() : was_enabled_(PyGC_Disable() != 0) {}
  ~PausedGc() {
    if (was_enabled_) PyGC_Enable();
  }
#else
  PausedGc() {}
#endif
  PausedGc(const PausedGc&) = delete;
  PausedGc& operator=(const PausedGc&) = delete;

 private:
  [[maybe_unused]] bool was_enabled_ = false;
};

// --- Output columns ---------------------------------------------------------

template <typename T>
py::array_t<T> Array(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

py::array_t<bool> BoolArray(const std::vector<bool>& v) {
  py::array_t<bool> a(static_cast<py::ssize_t>(v.size()));
  bool* out = a.mutable_data();
  for (size_t i = 0; i < v.size(); ++i) out[i] = v[i];
  return a;
}

// An optional float column as (values, missing) arrays; missing values
// hold 0.0, never NaN.
py::tuple Optional(const std::vector<std::optional<double>>& v) {
  std::vector<double> values(v.size(), 0.0);
  std::vector<bool> missing(v.size(), false);
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i]) {
      values[i] = *v[i];
    } else {
      missing[i] = true;
    }
  }
  return py::make_tuple(Array(values), BoolArray(missing));
}

py::list Names(const std::vector<std::string>& v) {
  py::list out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = py::str(v[i]);
  return out;
}

// Adds the columns of a list of duration statistics, prefixed: count,
// mean, median, p90, min, max.
void AddStats(py::dict& d, const std::string& prefix,
              const std::vector<const DurationStats*>& stats) {
  std::vector<int64_t> count;
  std::vector<std::optional<double>> mean, median, p90, min, max;
  for (const DurationStats* s : stats) {
    count.push_back(s->count);
    mean.push_back(s->mean);
    median.push_back(s->median);
    p90.push_back(s->p90);
    min.push_back(s->min);
    max.push_back(s->max);
  }
  d[py::str(prefix + "count")] = Array(count);
  d[py::str(prefix + "mean")] = Optional(mean);
  d[py::str(prefix + "median")] = Optional(median);
  d[py::str(prefix + "p90")] = Optional(p90);
  d[py::str(prefix + "min")] = Optional(min);
  d[py::str(prefix + "max")] = Optional(max);
}

py::dict NameCounts(const std::vector<NameCount>& v) {
  std::vector<std::string> names;
  std::vector<int64_t> counts;
  for (const NameCount& n : v) {
    names.push_back(n.name);
    counts.push_back(n.count);
  }
  py::dict d;
  d["name"] = Names(names);
  d["count"] = Array(counts);
  return d;
}

py::dict DfgToPython(const Dfg& dfg) {
  std::vector<std::string> from, to;
  std::vector<int64_t> count;
  std::vector<const DurationStats*> stats;
  for (const DfgEdge& e : dfg.edges) {
    from.push_back(e.from);
    to.push_back(e.to);
    count.push_back(e.count);
    stats.push_back(&e.duration);
  }
  py::dict edges;
  edges["from"] = Names(from);
  edges["to"] = Names(to);
  edges["count"] = Array(count);
  AddStats(edges, "duration_", stats);
  py::dict d;
  d["edges"] = edges;
  d["start"] = NameCounts(dfg.start_activities);
  d["end"] = NameCounts(dfg.end_activities);
  return d;
}

py::dict TimesToPython(const std::vector<ActivityTime>& ts) {
  std::vector<std::string> names;
  std::vector<int64_t> events;
  std::vector<const DurationStats*> stats;
  for (const ActivityTime& t : ts) {
    names.push_back(t.activity);
    events.push_back(t.events);
    stats.push_back(&t.duration);
  }
  py::dict d;
  d["activity"] = Names(names);
  d["events"] = Array(events);
  AddStats(d, "duration_", stats);
  return d;
}

// Codes and distinct values of one interned column.
py::tuple Coded(const std::vector<int32_t>& codes, const StringPool& pool) {
  return py::make_tuple(Array(codes), Names(pool.strings()));
}

// --- Input columns ----------------------------------------------------------

// A factorised string column from Python: int codes (numpy, -1 = missing)
// and the distinct values.
struct CodedInput {
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> codes;
  std::vector<std::string> names;
  bool present = false;
};

CodedInput CodedArg(py::handle codes, py::handle names, const char* what,
                    size_t n) {
  CodedInput c;
  if (codes.is_none()) return c;
  c.present = true;
  c.codes = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::
      ensure(codes);
  if (!c.codes || c.codes.ndim() != 1) {
    RaiseInvalid(std::string("column ") + what +
                 ": expected a one-dimensional array of codes");
  }
  if (static_cast<size_t>(c.codes.shape(0)) != n) {
    RaiseInvalid(std::string("column ") + what + " has " +
                 std::to_string(c.codes.shape(0)) + " values (expected " +
                 std::to_string(n) + ", one per event)");
  }
  try {
    c.names = py::cast<std::vector<std::string>>(names);
  } catch (const py::cast_error&) {
    RaiseInvalid(std::string("column ") + what +
                 ": values must be strings");
  }
  const int64_t* p = c.codes.data();
  const int64_t m = static_cast<int64_t>(c.names.size());
  for (size_t i = 0; i < n; ++i) {
    if (p[i] < -1 || p[i] >= m) {
      RaiseInvalid(std::string("column ") + what + ": code out of range");
    }
  }
  return c;
}

// Builds a log from factorised columns (the path of DataFrames and engine
// history: no Python string per event crosses the boundary twice).
SharedLog FromCodes(py::handle case_codes, py::handle case_names,
                    py::handle activity_codes, py::handle activity_names,
                    py::handle times, py::handle resource_codes,
                    py::handle resource_names, py::handle lifecycle_codes,
                    py::handle lifecycle_names, py::handle rows,
                    py::list attributes, py::handle cases) {
  auto time_arr =
      py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(
          times);
  if (!time_arr || time_arr.ndim() != 1) {
    RaiseInvalid("column time: expected a one-dimensional array of int64 "
                 "microseconds");
  }
  const size_t n = static_cast<size_t>(time_arr.shape(0));
  CodedInput cs = CodedArg(case_codes, case_names, "case", n);
  CodedInput acts = CodedArg(activity_codes, activity_names, "activity", n);
  CodedInput res = CodedArg(resource_codes, resource_names, "resource", n);
  CodedInput lcs = CodedArg(lifecycle_codes, lifecycle_names, "lifecycle", n);
  if (!cs.present || !acts.present) {
    RaiseInvalid("columns case and activity are required");
  }
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> row_arr;
  if (!rows.is_none()) {
    row_arr = py::array_t<int64_t, py::array::c_style |
                                       py::array::forcecast>::ensure(rows);
    if (!row_arr || row_arr.ndim() != 1 ||
        static_cast<size_t>(row_arr.shape(0)) != n) {
      RaiseInvalid("column row: expected one int per event");
    }
  }
  std::vector<std::string> attr_names;
  std::vector<CodedInput> attrs;
  for (auto item : attributes) {
    py::tuple t = py::reinterpret_borrow<py::tuple>(item);
    if (t.size() != 3) RaiseInvalid("attributes: expected (name, codes, "
                                    "values) triples");
    attr_names.push_back(py::cast<std::string>(t[0]));
    attrs.push_back(CodedArg(t[1], t[2],
                             ("attribute " + attr_names.back()).c_str(), n));
  }
  std::vector<std::string> all_cases;
  if (!cases.is_none()) all_cases = py::cast<std::vector<std::string>>(cases);

  // Required values are checked before anything is built, so that the
  // message names the first bad event.
  const int64_t* cp = cs.codes.data();
  const int64_t* ap = acts.codes.data();
  const int64_t* tp = time_arr.data();
  for (size_t i = 0; i < n; ++i) {
    if (cp[i] < 0 || cs.names[cp[i]].empty()) {
      RaiseInvalid("event " + std::to_string(i) + ": missing case id");
    }
    if (ap[i] < 0 || acts.names[ap[i]].empty()) {
      RaiseInvalid("event " + std::to_string(i) + ": missing activity");
    }
    if (tp[i] == std::numeric_limits<int64_t>::min()) {
      RaiseInvalid("event " + std::to_string(i) + ": missing timestamp");
    }
    if (!Timestamp{tp[i]}.InRange()) {
      RaiseInvalid("event " + std::to_string(i) + ": " +
                   TimeOutOfRange(std::to_string(tp[i])));
    }
  }

  auto log = std::make_shared<EventLog>();
  {
    NoGil nogil;
    EventLogBuilder b;
    b.Reserve(static_cast<int64_t>(n));
    std::vector<int> attr_cols;
    for (const std::string& a : attr_names) attr_cols.push_back(b.AddAttribute(a));
    for (const std::string& c : all_cases) b.AddCase(c);
    std::vector<int32_t> case_index(cs.names.size(), -1);
    const int64_t* rp = res.present ? res.codes.data() : nullptr;
    const int64_t* lp = lcs.present ? lcs.codes.data() : nullptr;
    const int64_t* rowp = rows.is_none() ? nullptr : row_arr.data();
    for (size_t i = 0; i < n; ++i) {
      int32_t& ci = case_index[cp[i]];
      if (ci < 0) ci = b.AddCase(cs.names[cp[i]]);
      std::string_view resource;
      if (rp != nullptr && rp[i] >= 0) resource = res.names[rp[i]];
      std::string_view lc;
      if (lp != nullptr && lp[i] >= 0) lc = lcs.names[lp[i]];
      b.AddEvent(ci, acts.names[ap[i]], Timestamp{tp[i]}, resource, lc,
                 rowp != nullptr ? rowp[i] : static_cast<int64_t>(i));
      for (size_t k = 0; k < attrs.size(); ++k) {
        int64_t v = attrs[k].codes.data()[i];
        if (v >= 0) b.SetAttribute(attr_cols[k], attrs[k].names[v]);
      }
    }
    *log = std::move(b).Build();
  }
  return log;
}

// --- Conversions of whole logs ------------------------------------------------

py::dict ToColumns(const EventLog& log) {
  const int64_t n = log.num_events();
  py::dict d;
  // The log keeps no per-event case, and no resource, lifecycle or row
  // column when every event has the default: Python gets full arrays,
  // built here.
  d["case"] = py::make_tuple(Array(log.CaseIndexPerEvent()), [&] {
    py::list ids(log.num_cases());
    for (int32_t c = 0; c < log.num_cases(); ++c) ids[c] = py::str(log.case_id(c));
    return ids;
  }());
  d["activity"] = Coded(log.activity_column(), log.activities());
  d["resource"] =
      log.resource_column().empty()
          ? Coded(std::vector<int32_t>(static_cast<size_t>(n), -1),
                  log.resources())
          : Coded(log.resource_column(), log.resources());
  // Lifecycles as their texts, as read.
  std::vector<int32_t> lc(n);
  for (int64_t e = 0; e < n; ++e) lc[e] = log.lifecycle_id(e);
  d["lifecycle"] = Coded(lc, log.lifecycle_names());
  d["time"] = Array(log.time_column());
  d["row"] = [&] {
    if (!log.row_column().empty()) return Array(log.row_column());
    std::vector<int64_t> rows(static_cast<size_t>(n));
    std::iota(rows.begin(), rows.end(), int64_t{0});
    return Array(rows);
  }();
  py::list attrs;
  for (int i = 0; i < log.num_attributes(); ++i) {
    // Values are views into the attribute's pool, so their data pointer
    // identifies the distinct value without hashing the text.
    std::unordered_map<const char*, int32_t> ids;
    std::vector<std::string> names;
    std::vector<int32_t> codes(n, -1);
    for (int64_t e = 0; e < n; ++e) {
      std::string_view v = log.attribute(i, e);
      if (v.data() == nullptr) continue;
      auto [it, fresh] =
          ids.emplace(v.data(), static_cast<int32_t>(names.size()));
      if (fresh) names.emplace_back(v);
      codes[e] = it->second;
    }
    attrs.append(py::make_tuple(log.attribute_name(i), Array(codes),
                                Names(names)));
  }
  d["attributes"] = attrs;
  d["case_sizes"] = [&] {
    std::vector<int64_t> sizes(log.num_cases());
    for (int32_t c = 0; c < log.num_cases(); ++c) sizes[c] = log.case_size(c);
    return Array(sizes);
  }();
  return d;
}

py::list RejectsToPython(const std::vector<EventLogReject>& rejects) {
  py::list out;
  for (const EventLogReject& r : rejects) {
    out.append(py::make_tuple(r.file, r.line, r.column, r.reason));
  }
  return out;
}

OnError OnErrorArg(const std::string& s) {
  if (s == "raise") return OnError::kRaise;
  if (s == "collect") return OnError::kCollect;
  RaiseInvalid("on_error \"" + s + "\" unknown (expected raise or collect)");
}

Period PeriodArg(const std::string& s) {
  if (s == "day") return Period::kDay;
  if (s == "week") return Period::kWeek;
  if (s == "month") return Period::kMonth;
  RaiseInvalid("period \"" + s + "\" unknown (expected day, week or month)");
}

const char* InstanceKindName(InstanceKind k) {
  switch (k) {
    case InstanceKind::kPaired:
      return "paired";
    case InstanceKind::kOpen:
      return "open";
    case InstanceKind::kAtomic:
      return "atomic";
  }
  return "atomic";
}

// --- Measures -----------------------------------------------------------------

py::dict InstancesToPython(const InstanceAnalysis& a) {
  const size_t n = a.instances.size();
  std::vector<int32_t> cases(n), acts(n), res(n), kinds(n);
  std::vector<int64_t> start(n), end(n);
  std::vector<std::optional<double>> duration(n);
  std::vector<bool> open(n);
  for (size_t i = 0; i < n; ++i) {
    const ActivityInstance& x = a.instances[i];
    cases[i] = x.case_index;
    acts[i] = x.activity;
    res[i] = x.resource;
    kinds[i] = static_cast<int32_t>(x.kind);
    start[i] = x.start.micros;
    end[i] = x.end ? x.end->micros : 0;
    open[i] = !x.end.has_value();
    duration[i] = x.duration();
  }
  py::dict inst;
  inst["case"] = Array(cases);
  inst["activity"] = Array(acts);
  inst["resource"] = Array(res);
  inst["kind"] = Array(kinds);
  inst["start"] = Array(start);
  inst["end"] = py::make_tuple(Array(end), BoolArray(open));
  inst["duration"] = Optional(duration);
  py::list kind_names;
  for (auto k : {InstanceKind::kPaired, InstanceKind::kOpen,
                 InstanceKind::kAtomic}) {
    kind_names.append(InstanceKindName(k));
  }
  inst["kind_names"] = kind_names;

  std::vector<std::string> names;
  std::vector<int64_t> instances, open_count;
  std::vector<const DurationStats*> stats;
  for (const ActivityServiceTime& s : a.service_times) {
    names.push_back(s.activity);
    instances.push_back(s.instances);
    open_count.push_back(s.open);
    stats.push_back(&s.duration);
  }
  py::dict service;
  service["activity"] = Names(names);
  service["instances"] = Array(instances);
  service["open"] = Array(open_count);
  AddStats(service, "duration_", stats);

  py::dict d;
  d["instances"] = inst;
  d["service_times"] = service;
  d["case_complete"] = BoolArray(a.case_complete);
  d["dfg"] = DfgToPython(a.dfg);
  return d;
}

py::dict ReplayToPython(const ReplayResult& r, size_t milestones) {
  const size_t nc = r.cases.size();
  std::vector<int32_t> final_state(nc);
  std::vector<int64_t> events(nc), accepted(nc), unchanged(nc), ignored(nc),
      deviations(nc);
  std::vector<bool> fit(nc), completed(nc);
  std::vector<std::vector<int64_t>> ms_time(milestones,
                                            std::vector<int64_t>(nc, 0));
  std::vector<std::vector<bool>> ms_missing(milestones,
                                            std::vector<bool>(nc, true));
  for (size_t c = 0; c < nc; ++c) {
    const CaseReplay& x = r.cases[c];
    final_state[c] = x.final_state;
    events[c] = x.events;
    accepted[c] = x.accepted;
    unchanged[c] = x.unchanged;
    ignored[c] = x.ignored;
    deviations[c] = x.deviations;
    fit[c] = x.fit;
    completed[c] = x.completed;
    for (size_t k = 0; k < milestones; ++k) {
      if (x.milestone_times[k]) {
        ms_time[k][c] = x.milestone_times[k]->micros;
        ms_missing[k][c] = false;
      }
    }
  }
  py::dict cases;
  cases["final_state"] = Array(final_state);
  cases["events"] = Array(events);
  cases["accepted"] = Array(accepted);
  cases["unchanged"] = Array(unchanged);
  cases["ignored"] = Array(ignored);
  cases["deviations"] = Array(deviations);
  cases["fit"] = BoolArray(fit);
  cases["completed"] = BoolArray(completed);
  py::list ms;
  for (size_t k = 0; k < milestones; ++k) {
    ms.append(py::make_tuple(Array(ms_time[k]), BoolArray(ms_missing[k])));
  }
  cases["milestones"] = ms;

  const size_t nd = r.deviations.size();
  std::vector<int32_t> dcase(nd);
  std::vector<int64_t> devent(nd), dpos(nd);
  std::vector<std::string> dkind(nd), dstate(nd), dact(nd);
  for (size_t i = 0; i < nd; ++i) {
    const ReplayDeviation& d = r.deviations[i];
    dcase[i] = d.case_index;
    devent[i] = d.event;
    dpos[i] = d.position;
    dkind[i] = DeviationKindName(d.kind);
    dstate[i] = d.state;
    dact[i] = d.activity;
  }
  py::dict devs;
  devs["case"] = Array(dcase);
  devs["event"] = Array(devent);
  devs["position"] = Array(dpos);
  devs["kind"] = Names(dkind);
  devs["state"] = Names(dstate);
  devs["activity"] = Names(dact);

  const size_t ns = r.steps.size();
  std::vector<int32_t> scase(ns), sstate(ns), strans(ns);
  std::vector<int64_t> sevent(ns);
  std::vector<bool> sresync(ns);
  for (size_t i = 0; i < ns; ++i) {
    const ReplayStep& s = r.steps[i];
    scase[i] = s.case_index;
    sevent[i] = s.event;
    sstate[i] = s.state;
    strans[i] = s.transition;
    sresync[i] = s.resync;
  }
  py::dict steps;
  steps["case"] = Array(scase);
  steps["event"] = Array(sevent);
  steps["state"] = Array(sstate);
  steps["transition"] = Array(strans);
  steps["resync"] = BoolArray(sresync);

  py::dict d;
  d["cases"] = cases;
  d["deviations"] = devs;
  d["steps"] = steps;
  d["state_names"] = Names(r.state_names);
  d["fitting_cases"] = r.fitting_cases;
  d["events"] = r.events;
  d["accepted"] = r.accepted;
  d["unchanged"] = r.unchanged;
  d["fitness"] = r.fitness ? py::object(py::float_(*r.fitness)) : py::none();
  d["event_fitness"] = r.event_fitness
                           ? py::object(py::float_(*r.event_fitness))
                           : py::none();
  return d;
}

py::dict DiffToPython(const WorkflowDiff& d) {
  auto edges = [](const std::vector<DiffEdge>& v) {
    py::list out;
    for (const DiffEdge& e : v) out.append(py::make_tuple(e.from, e.to));
    return out;
  };
  py::dict out;
  out["nodes_only_in_a"] = Names(d.nodes_only_in_a);
  out["nodes_only_in_b"] = Names(d.nodes_only_in_b);
  out["nodes_in_both"] = Names(d.nodes_in_both);
  out["edges_only_in_a"] = edges(d.edges_only_in_a);
  out["edges_only_in_b"] = edges(d.edges_only_in_b);
  out["edges_in_both"] = edges(d.edges_in_both);
  return out;
}

// Runs `f` on the log without the GIL and returns its result.
template <typename F>
auto Compute(const EventLog& log, F f) {
  NoGil nogil;
  return f(log);
}

// A str of a case id.  Ids are nearly always ASCII, and then copied into
// a new str without a pass of the UTF-8 decoder.
PyObject* CaseIdString(std::string_view id) {
  unsigned char high = 0;
  for (unsigned char ch : id) high |= ch;
  if (high >= 0x80) return PyUnicode_FromStringAndSize(id.data(), id.size());
  PyObject* s = PyUnicode_New(static_cast<Py_ssize_t>(id.size()), 127);
  if (s != nullptr && !id.empty()) {
    std::memcpy(PyUnicode_DATA(s), id.data(), id.size());
  }
  return s;
}

// The variants as numpy arrays: "variant" (object: tuples of activity
// names), "length", "count", "example_case" (object: case ids), in
// VariantIds' order.
//
// Making 68k tuples and case ids (at 1 M events) costs more than finding
// and ordering the variants.  With a second core, the finding and the
// ordering run on another thread while this one makes each variant's
// objects as soon as the variant is found.
py::dict VariantsToPython(const EventLog& log) {
  VariantTable groups;
  std::vector<int32_t> order;
  std::atomic<size_t> found{0};
  std::atomic<bool> finished{false};
  std::exception_ptr failure;
  std::thread worker;
  if (WorkerThreads() > 1 && log.num_cases() >= 4096) {
    // Reserved here, before the worker starts, so that reading
    // example_case below never races with its growth.
    groups.example_case.reserve(static_cast<size_t>(log.num_cases()) + 1);
    try {
      worker = std::thread([&] {
        try {
          GroupVariantsInOrder(log, &groups, [&](size_t k) {
            found.store(k, std::memory_order_release);
          });
          order = OrderVariants(log, groups);
        } catch (...) {
          failure = std::current_exception();
        }
        finished.store(true, std::memory_order_release);
      });
    } catch (const std::system_error&) {
      // No thread to be had: everything on this one, below.
    }
  }
  struct Join {  // also on the way out of an exception
    std::thread& t;
    ~Join() {
      if (t.joinable()) {
        NoGil nogil;
        t.join();
      }
    }
  } join{worker};
  if (!worker.joinable()) {
    groups = Compute(log, GroupVariants);
    found.store(groups.count.size());
    finished.store(true);
  }
  // One str per distinct activity, shared by every tuple: the sequences
  // cost a reference each, not a string each.
  const int32_t num_activities = log.activities().size();
  std::vector<py::str> names;
  names.reserve(num_activities);
  for (int32_t a = 0; a < num_activities; ++a) {
    names.emplace_back(log.activity_name(a));
  }
  const int32_t* act = log.activity_column().data();
  const int32_t* example_case = groups.example_case.data();
  // Owned references, released on an error; moved into the arrays below.
  std::vector<PyObject*> seq, example;
  std::vector<int64_t> length;  // read here, where the reads are in order
  seq.reserve(static_cast<size_t>(log.num_cases()) + 1);
  example.reserve(static_cast<size_t>(log.num_cases()) + 1);
  length.reserve(static_cast<size_t>(log.num_cases()) + 1);
  struct Release {
    std::vector<PyObject*>& a;
    std::vector<PyObject*>& b;
    bool armed = true;
    ~Release() {
      if (!armed) return;
      for (PyObject* o : a) Py_XDECREF(o);
      for (PyObject* o : b) Py_XDECREF(o);
    }
  } release{seq, example};
  {
    // Tens of thousands of new tuples would start the cyclic collector
    // over and over, and each pass walks every tuple made so far; none of
    // them can be part of a cycle.
    PausedGc paused_gc;
    // The variants come in the order of their first cases, so the reads
    // of offsets, activities and case ids run through the log in order.
    size_t made = 0;
    while (true) {
      const size_t k = found.load(std::memory_order_acquire);
      if (made == k) {
        if (finished.load(std::memory_order_acquire) &&
            found.load(std::memory_order_acquire) == made) {
          break;
        }
        // Nothing to make yet.  The GIL is kept: released and taken back
        // this often, a daemon thread would almost surely be waiting for
        // it when the interpreter finalizes, and be ended there (see
        // NoGil).  The wait is short: the worker publishes every 2,048
        // cases.
        std::this_thread::yield();
        continue;
      }
      for (; made < k; ++made) {
        const int32_t c = example_case[made];
        const int64_t b = log.case_begin(c), e = log.case_end(c);
        length.push_back(e - b);
        PyObject* tuple = PyTuple_New(e - b);
        if (tuple == nullptr) throw py::error_already_set();
        for (int64_t i = b; i < e; ++i) {
          PyObject* name = names[act[i]].ptr();
          Py_INCREF(name);
          PyTuple_SET_ITEM(tuple, i - b, name);
        }
        // A tuple of str cannot be part of a reference cycle: taken off
        // the collector's lists here (as CPython itself does lazily), the
        // first collection after the call does not walk them all.
        PyObject_GC_UnTrack(tuple);
        seq.push_back(tuple);
        PyObject* s = CaseIdString(log.case_id(c));
        if (s == nullptr) throw py::error_already_set();
        example.push_back(s);
      }
    }
  }
  if (worker.joinable()) {
    NoGil nogil;
    worker.join();
  } else {
    NoGil nogil;
    order = OrderVariants(log, groups);
  }
  if (failure) std::rethrow_exception(failure);
  const size_t n = groups.count.size();
  // Object arrays rather than lists: pandas takes them as they are, where
  // a list of 68k tuples costs a pass to convert.
  py::object empty = py::module_::import("numpy").attr("empty");
  py::array seqs = empty(n, py::arg("dtype") = "object");
  py::array examples = empty(n, py::arg("dtype") = "object");
  PyObject** seq_slots = static_cast<PyObject**>(seqs.mutable_data());
  PyObject** example_slots = static_cast<PyObject**>(examples.mutable_data());
  std::vector<int64_t> lengths(n), counts(n);
  for (size_t i = 0; i < n; ++i) {
    const int32_t g = order[i];
    Py_XDECREF(seq_slots[i]);  // the None numpy put there
    seq_slots[i] = seq[g];
    Py_XDECREF(example_slots[i]);
    example_slots[i] = example[g];
    lengths[i] = length[g];
    counts[i] = groups.count[g];
  }
  release.armed = false;
  py::dict d;
  d["variant"] = seqs;
  d["length"] = Array(lengths);
  d["count"] = Array(counts);
  d["example_case"] = examples;
  return d;
}

}  // namespace
}  // namespace crmflow

void crmflow_register_analytics(pybind11::module_& m) {
  using namespace crmflow;
  py::module_ errors = py::module_::import("crmflow._errors");
  errors_by_code = new py::object(errors.attr("BY_CODE"));
  error_base = new py::object(errors.attr("Error"));

  m.def("worker_threads", &WorkerThreads,
        "Threads the scans of a large event log use.");
  m.def(
      "set_worker_threads",
      [](int threads) {
        if (threads < 0 || threads > 64) {
          RaiseInvalid("threads " + std::to_string(threads) +
                       " out of range (expected 1 to 64, or 0 for the "
                       "default)");
        }
        SetWorkerThreads(threads);
      },
      py::arg("threads"),
      "Sets the threads the scans of a large event log use (0: the "
      "default, CRMFLOW_THREADS or the machine's cores up to 8).");

  m.def(
      "parse_times",
      [](const std::vector<std::string>& texts, const std::string& format,
         const std::string& zone) {
        // The CSV reader's parser, for texts that come from elsewhere (a
        // DataFrame): one reading of a time whatever its source.
        TimeZone z = Unwrap(TimeZone::Load(zone));
        TimestampParser parser = Unwrap(
            TimestampParser::Create(format.empty() ? "iso" : format, z));
        py::array_t<int64_t> out(static_cast<py::ssize_t>(texts.size()));
        int64_t* o = out.mutable_data();
        std::vector<std::pair<int64_t, std::string>> bad;
        {
          NoGil nogil;
          for (size_t i = 0; i < texts.size(); ++i) {
            auto t = parser.Parse(texts[i]);
            if (t.ok()) {
              o[i] = t->micros;
            } else {
              o[i] = std::numeric_limits<int64_t>::min();
              bad.emplace_back(static_cast<int64_t>(i), t.status().message());
            }
          }
        }
        return py::make_tuple(out, bad);
      },
      py::arg("texts"), py::arg("format"), py::arg("zone"),
      "Parses texts as EventLog.read_csv does: (int64 microseconds UTC, "
      "INT64_MIN where a text fails; [(index, reason)] of the failures).");
  m.def(
      "localize_times",
      [](py::array_t<int64_t, py::array::c_style | py::array::forcecast> wall,
         const std::string& zone) {
        // Wall-clock microseconds (a naive datetime64) read in `zone` by
        // the CSV reader's rule for repeated and skipped hours.
        TimeZone z = Unwrap(TimeZone::Load(zone));
        const py::ssize_t n = wall.size();
        py::array_t<int64_t> out(n);
        const int64_t* in = wall.data();
        int64_t* o = out.mutable_data();
        constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
        constexpr int64_t kDay = int64_t{86400} * 1000000;
        {
          NoGil nogil;
          for (py::ssize_t i = 0; i < n; ++i) {
            const int64_t w = in[i];
            o[i] = kNone;
            // Two days of slack either side cover every zone's offset.
            if (w == kNone || w < Timestamp::kMinMicros - 2 * kDay ||
                w > Timestamp::kMaxMicros + 2 * kDay) {
              continue;
            }
            const int64_t days = w >= 0 ? w / kDay : -((-w + kDay - 1) / kDay);
            const int64_t rem = w - days * kDay;
            const std::chrono::year_month_day ymd{
                std::chrono::sys_days{std::chrono::days{days}}};
            auto t = z.FromCivil(
                static_cast<int>(ymd.year()),
                static_cast<int>(static_cast<unsigned>(ymd.month())),
                static_cast<int>(static_cast<unsigned>(ymd.day())),
                static_cast<int>(rem / 3600000000),
                static_cast<int>(rem / 60000000 % 60),
                static_cast<int>(rem / 1000000 % 60),
                static_cast<int>(rem % 1000000));
            if (t.ok() && t->InRange()) o[i] = t->micros;
          }
        }
        return out;
      },
      py::arg("wall"), py::arg("zone"),
      "Reads wall-clock int64 microseconds in an IANA zone as UTC (INT64_MIN "
      "where missing or outside years 1 to 9999 UTC).");

  py::class_<EventLog, std::shared_ptr<EventLog>>(m, "EventLog")
      .def_static(
          "read_csv",
          [](const std::string& path, const std::string& case_column,
             const std::string& activity_column,
             const std::string& time_column,
             const std::string& resource_column,
             const std::string& lifecycle_column,
             std::vector<std::string> attribute_columns,
             const std::string& time_format, const std::string& time_zone,
             const std::string& on_error, const std::string& delimiter,
             std::vector<std::string> null_values) {
            CsvEventLogOptions o;
            o.case_column = case_column;
            o.activity_column = activity_column;
            o.timestamp_column = time_column;
            o.resource_column = resource_column;
            o.lifecycle_column = lifecycle_column;
            o.attribute_columns = std::move(attribute_columns);
            o.time_format = time_format.empty() ? "iso" : time_format;
            o.time_zone = time_zone;
            o.on_error = OnErrorArg(on_error);
            o.null_values = std::move(null_values);
            if (delimiter.size() > 1) {
              RaiseInvalid("delimiter \"" + delimiter +
                           "\" must be one character");
            }
            o.csv.delimiter = delimiter.empty() ? 0 : delimiter[0];
            std::optional<StatusOr<LoadedEventLog>> r;
            {
              NoGil nogil;
              r.emplace(ReadCsvEventLog(path, o));
            }
            LoadedEventLog loaded = Unwrap(std::move(*r));
            auto log = std::make_shared<EventLog>(std::move(loaded.log));
            return py::make_tuple(log, RejectsToPython(loaded.rejects));
          },
          py::arg("path"), py::arg("case"), py::arg("activity"),
          py::arg("time"), py::arg("resource") = "",
          py::arg("lifecycle") = "",
          py::arg("attributes") = std::vector<std::string>(),
          py::arg("time_format") = "", py::arg("time_zone") = "UTC",
          py::arg("on_error") = "raise", py::arg("delimiter") = "",
          py::arg("null_values") = std::vector<std::string>())
      .def_static("read_xes",
                  [](const std::string& path) {
                    std::optional<StatusOr<EventLog>> r;
                    {
                      NoGil nogil;
                      r.emplace(ReadXesEventLog(path));
                    }
                    return std::make_shared<EventLog>(Unwrap(std::move(*r)));
                  },
                  py::arg("path"))
      .def_static("from_codes",
                  [](py::handle case_codes, py::handle case_names,
                     py::handle activity_codes, py::handle activity_names,
                     py::handle times, py::handle resource_codes,
                     py::handle resource_names, py::handle lifecycle_codes,
                     py::handle lifecycle_names, py::handle rows,
                     py::list attributes, py::handle cases) {
                    return FromCodes(case_codes, case_names, activity_codes,
                                     activity_names, times, resource_codes,
                                     resource_names, lifecycle_codes,
                                     lifecycle_names, rows, attributes,
                                     cases);
                  },
                  py::arg("case_codes"), py::arg("case_names"),
                  py::arg("activity_codes"), py::arg("activity_names"),
                  py::arg("times"), py::arg("resource_codes") = py::none(),
                  py::arg("resource_names") = py::none(),
                  py::arg("lifecycle_codes") = py::none(),
                  py::arg("lifecycle_names") = py::none(),
                  py::arg("rows") = py::none(),
                  py::arg("attributes") = py::list(),
                  py::arg("cases") = py::none())
      .def_property_readonly("num_cases", &EventLog::num_cases)
      .def_property_readonly("num_events", &EventLog::num_events)
      .def("to_columns", [](const EventLog& log) { return ToColumns(log); })
      .def("to_csv",
           [](const EventLog& log, const std::string& path,
              const std::string& delimiter) {
             if (delimiter.size() != 1) {
               RaiseInvalid("delimiter \"" + delimiter +
                            "\" must be one character");
             }
             Status st;
             {
               NoGil nogil;
               st = WriteEventLogCsv(log, path, delimiter[0]);
             }
             if (!st.ok()) Raise(st);
           },
           py::arg("path"), py::arg("delimiter") = ",")
      .def("dfg",
           [](const EventLog& log) {
             return DfgToPython(Compute(log, DirectlyFollows));
           })
      .def("follows",
           [](const EventLog& log) {
             // Both figures from one gathering of the gaps (see
             // DirectlyFollowsAndTimes): {"dfg": ..., "time_in_activity":
             // ...}, each as dfg() and time_in_activity() return it.
             FollowsAnalysis f = Compute(log, DirectlyFollowsAndTimes);
             py::dict d;
             d["dfg"] = DfgToPython(f.dfg);
             d["time_in_activity"] = TimesToPython(f.time_in_activity);
             return d;
           })
      .def("variants", &VariantsToPython)
      .def("time_in_activity",
           [](const EventLog& log) {
             return TimesToPython(Compute(log, TimeInActivity));
           })
      .def("case_durations",
           [](const EventLog& log) {
             auto cd = Compute(log, ComputeCaseDurations);
             py::dict d;
             d["per_case"] = Optional(cd.per_case);
             AddStats(d, "", {&cd.duration});
             d["cases"] = cd.cases;
             return d;
           })
      .def("activity_instances",
           [](const EventLog& log) {
             return InstancesToPython(Compute(log, ActivityInstances));
           })
      .def("funnel",
           [](const EventLog& log, const std::vector<std::string>& ms) {
             std::optional<StatusOr<FunnelResult>> r;
             {
               NoGil nogil;
               r.emplace(Funnel(log, ms));
             }
             FunnelResult f = Unwrap(std::move(*r));
             std::vector<std::string> names;
             std::vector<int64_t> cases;
             std::vector<double> conv, prev;
             for (const FunnelStep& s : f.steps) {
               names.push_back(s.milestone);
               cases.push_back(s.cases);
               conv.push_back(s.conversion);
               prev.push_back(s.from_previous);
             }
             py::dict d;
             d["milestone"] = Names(names);
             d["cases"] = Array(cases);
             d["conversion"] = Array(conv);
             d["from_previous"] = Array(prev);
             d["total_cases"] = f.total_cases;
             return d;
           },
           py::arg("milestones"))
      .def("rework",
           [](const EventLog& log) {
             auto rw = Compute(log, Rework);
             std::vector<std::string> names;
             std::vector<int64_t> cases, reps;
             for (const ReworkEntry& e : rw.activities) {
               names.push_back(e.activity);
               cases.push_back(e.cases);
               reps.push_back(e.repetitions);
             }
             py::dict d;
             d["activity"] = Names(names);
             d["cases"] = Array(cases);
             d["repetitions"] = Array(reps);
             d["cases_with_rework"] = rw.cases_with_rework;
             return d;
           })
      .def("handovers",
           [](const EventLog& log) {
             auto hs = Compute(log, HandOvers);
             std::vector<std::string> from, to;
             std::vector<int64_t> count;
             for (const HandOver& h : hs) {
               from.push_back(h.from);
               to.push_back(h.to);
               count.push_back(h.count);
             }
             py::dict d;
             d["from"] = Names(from);
             d["to"] = Names(to);
             d["count"] = Array(count);
             return d;
           })
      .def("throughput",
           [](const EventLog& log, const std::string& period) {
             Period p = PeriodArg(period);
             std::vector<PeriodCount> pcs;
             {
               NoGil nogil;
               pcs = ArrivalsAndThroughput(log, p);
             }
             std::vector<int64_t> start, arr, comp;
             for (const PeriodCount& pc : pcs) {
               start.push_back(pc.start.micros);
               arr.push_back(pc.arrivals);
               comp.push_back(pc.completions);
             }
             py::dict d;
             d["period"] = Array(start);
             d["arrivals"] = Array(arr);
             d["completions"] = Array(comp);
             return d;
           },
           py::arg("period"))
      .def(
          "replay",
          [](const EventLog& log, const Workflow& workflow,
             const std::string& activity_kind,
             std::vector<std::pair<std::string, std::string>> activity_map,
             bool ignore_unmapped, bool complete_only,
             std::vector<std::string> milestones, bool resync,
             py::object guard, bool repeats_unchanged) {
            ReplayOptions o;
            if (activity_kind == "event") {
              o.activity_kind = ActivityKind::kEvent;
            } else if (activity_kind == "state") {
              o.activity_kind = ActivityKind::kState;
            } else {
              RaiseInvalid("activity_kind \"" + activity_kind +
                           "\" unknown (expected event or state)");
            }
            o.activity_map = std::move(activity_map);
            o.ignore_unmapped = ignore_unmapped;
            o.complete_only = complete_only;
            o.milestones = std::move(milestones);
            o.resync = resync;
            o.repeats_unchanged = repeats_unchanged;
            if (!guard.is_none()) {
              // The callable sees (case index, event index, transition
              // index, guard name) and takes the GIL back per call.
              o.guard = [&guard](const ReplayGuardContext& c) {
                py::gil_scoped_acquire gil;
                py::object r = guard(c.case_index, c.event,
                                     c.transition.index, c.guard);
                return static_cast<bool>(py::bool_(r));
              };
            }
            std::optional<StatusOr<ReplayResult>> r;
            {
              NoGil nogil;
              r.emplace(Replay(log, workflow, o));
            }
            return ReplayToPython(Unwrap(std::move(*r)), o.milestones.size());
          },
          py::arg("workflow"), py::arg("activity_kind") = "event",
          py::arg("activity_map") =
              std::vector<std::pair<std::string, std::string>>(),
          py::arg("ignore_unmapped") = true, py::arg("complete_only") = true,
          py::arg("milestones") = std::vector<std::string>(),
          py::arg("resync") = true, py::arg("guard") = py::none(),
          py::arg("repeats_unchanged") = true)
      .def(
          "discover",
          [](const EventLog& log, const std::string& name, int version,
             int64_t min_activity_count, int64_t min_edge_count,
             int64_t min_start_count, int64_t min_end_count,
             const std::string& start_state) {
            DiscoveryOptions o;
            o.name = name;
            o.version = version;
            o.min_activity_count = min_activity_count;
            o.min_edge_count = min_edge_count;
            o.min_start_count = min_start_count;
            o.min_end_count = min_end_count;
            o.start_state = start_state;
            std::optional<StatusOr<Workflow>> r;
            {
              NoGil nogil;
              r.emplace(Discover(log, o));
            }
            return Unwrap(std::move(*r));
          },
          py::arg("name") = "discovered", py::arg("version") = 1,
          py::arg("min_activity_count") = 1, py::arg("min_edge_count") = 1,
          py::arg("min_start_count") = 1, py::arg("min_end_count") = 1,
          py::arg("start_state") = "start");

  m.def(
      "diff_workflows",
      [](const Workflow& a, const Workflow& b, const std::string& basis) {
        DiffBasis db;
        if (basis == "states") {
          db = DiffBasis::kStates;
        } else if (basis == "events") {
          db = DiffBasis::kEvents;
        } else {
          RaiseInvalid("basis \"" + basis +
                       "\" unknown (expected states or events)");
        }
        return DiffToPython(DiffWorkflows(a, b, db));
      },
      py::arg("a"), py::arg("b"), py::arg("basis") = "states");
}
