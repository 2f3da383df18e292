// service_module.cc: the service-desk part of the crmflow._core module.
//
// Binds business calendars (calendar.h) and the SLA scheduler
// (scheduler.h).  Like core_module.cc it only converts: times cross as
// int microseconds since the epoch UTC (the Python layer makes aware
// datetimes of them), durations as int microseconds, tables go out as
// columnar dicts of lists, and every Status becomes one exception of
// crmflow._errors through crmflow_throw_status.  The GIL is released
// around ticks, syncs and status scans on a SQLite store; Python hooks
// that a fired event runs take it back.
//
// crmflow_register_service is called from PYBIND11_MODULE in
// core_module.cc.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crmflow/calendar.h"
#include "crmflow/scheduler.h"
#include "crmflow/sla.h"
#include "crmflow/status.h"
#include "engine_handle.h"

namespace py = pybind11;

namespace crmflow {
namespace {

template <typename T>
T Unwrap(StatusOr<T>&& result) {
  if (!result.ok()) crmflow_throw_status(result.status());
  return std::move(result).value();
}

void Check(const Status& status) {
  if (!status.ok()) crmflow_throw_status(status);
}

[[noreturn]] void RaiseInvalid(const std::string& message) {
  crmflow_throw_status(Status(Code::kInvalidArgument, message));
}

// Releases the GIL when `release` is true.
class MaybeNoGil {
 public:
  explicit MaybeNoGil(bool release) {
    if (release) release_.emplace();
  }

 private:
  std::optional<py::gil_scoped_release> release_;
};

// --- Calendars --------------------------------------------------------------

constexpr const char* kDayKeys[7] = {"mon", "tue", "wed", "thu",
                                     "fri", "sat", "sun"};

// Reads "09:00-12:00 13:00-17:00" or a list of such strings.
std::vector<WorkInterval> Intervals(py::handle value, const std::string& what) {
  std::string text;
  if (py::isinstance<py::str>(value)) {
    text = value.cast<std::string>();
  } else {
    for (py::handle item : value) {
      if (!py::isinstance<py::str>(item)) {
        RaiseInvalid(what + ": intervals must be strings like \"09:00-17:00\"");
      }
      text += item.cast<std::string>() + " ";
    }
  }
  auto parsed = ParseWorkIntervals(text);
  if (!parsed.ok()) RaiseInvalid(what + ": " + parsed.status().message());
  return std::move(*parsed);
}

CivilDate Date(const std::string& text, const std::string& what) {
  CivilDate d;
  char extra = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%d%c", &d.year, &d.month, &d.day,
                  &extra) != 3) {
    RaiseInvalid(what + ": date \"" + text + "\" is not YYYY-MM-DD");
  }
  return d;
}

// Builds a calendar from (zone, weekly, holidays, special days); weekly
// keys are mon..sun (or monday..sunday).
BusinessCalendar MakeCalendar(const std::string& zone, const py::dict& weekly,
                              const std::vector<std::string>& holidays,
                              const py::dict& special) {
  CalendarSpec spec;
  spec.zone = Unwrap(TimeZone::Load(zone));
  for (auto [key, value] : weekly) {
    std::string name = py::str(key).cast<std::string>();
    int day = -1;
    for (int i = 0; i < 7; ++i) {
      if (name == kDayKeys[i] ||
          name == WeekdayName(static_cast<Weekday>(i))) {
        day = i;
      }
    }
    if (day < 0) {
      RaiseInvalid("calendar: unknown weekday \"" + name +
                   "\" (expected mon, tue, wed, thu, fri, sat or sun)");
    }
    spec.Day(static_cast<Weekday>(day),
             Intervals(value, "calendar: " + name));
  }
  for (const std::string& h : holidays) {
    spec.Holiday(Date(h, "calendar: holiday"));
  }
  for (auto [key, value] : special) {
    std::string date = py::str(key).cast<std::string>();
    spec.Special(Date(date, "calendar: special day"),
                 Intervals(value, "calendar: special day " + date));
  }
  return Unwrap(BusinessCalendar::Create(spec));
}

// --- Scheduler --------------------------------------------------------------

// Converts an attribute value given to the desk (set_attributes, an
// escalation's "set"): the types Engine.create and Engine.set_attributes
// take, so that decimal, timestamp and duration attributes can be changed
// through the desk too.  Naive datetimes are refused: the desk has no zone
// of its own to read them in.
Value ToValue(py::handle v, const std::string& what) {
  if (v.is_none()) return Value();
  if (py::isinstance<py::bool_>(v)) return Value::Bool(v.cast<bool>());
  if (py::isinstance<py::int_>(v)) return Value::Integer(v.cast<int64_t>());
  if (py::isinstance<py::str>(v)) return Value::Text(v.cast<std::string>());
  if (py::isinstance<py::float_>(v)) {
    RaiseInvalid(what + ": binary floats are refused (use decimal.Decimal "
                 "for money or int)");
  }
  if (py::isinstance(v, py::module_::import("decimal").attr("Decimal"))) {
    // format(d, "f") writes 1E+2 as 100, which the core's parser reads.
    std::string text = py::str(
        py::module_::import("builtins").attr("format")(v, "f"));
    auto d = Decimal::Parse(text);
    if (!d.ok()) {
      RaiseInvalid(what + ": decimal " + text + " not representable "
                   "(expected a finite value with at most 18 decimal "
                   "places)");
    }
    return Value::Dec(d.value());
  }
  py::module_ dt = py::module_::import("datetime");
  py::object micro = dt.attr("timedelta")(py::arg("microseconds") = 1);
  if (py::isinstance(v, dt.attr("datetime"))) {
    if (v.attr("utcoffset")().is_none()) {
      RaiseInvalid(what + ": naive datetime (expected an aware one)");
    }
    py::object epoch = dt.attr("datetime")(
        1970, 1, 1, py::arg("tzinfo") = dt.attr("timezone").attr("utc"));
    py::object us = v.attr("__sub__")(epoch).attr("__floordiv__")(micro);
    return Value::Time(Timestamp{us.cast<int64_t>()});
  }
  if (py::isinstance(v, dt.attr("timedelta"))) {
    py::object us = v.attr("__floordiv__")(micro);
    return Value::Span(Duration{us.cast<int64_t>()});
  }
  RaiseInvalid(what + ": value must be str, int, bool, Decimal, aware "
               "datetime, timedelta or None");
}

EscalationAction ToAction(const py::dict& d, const std::string& what) {
  auto get = [&](const char* key) -> std::string {
    return d.contains(key) ? py::str(d[key]).cast<std::string>() : "";
  };
  std::string type = get("type");
  if (type == "fire") return EscalationAction::FireEvent(get("event"));
  if (type == "set") {
    return EscalationAction::SetAttribute(
        get("attribute"),
        ToValue(d.contains("value") ? py::handle(d["value"]) : py::none(),
                what));
  }
  if (type == "notify") {
    return EscalationAction::Notify(get("channel"), get("recipient"),
                                    get("subject"));
  }
  RaiseInvalid(what + ": unknown action type \"" + type +
               "\" (expected fire, set or notify)");
}

py::object OptTime(const std::optional<Timestamp>& t) {
  return t ? py::object(py::int_(t->micros)) : py::object(py::none());
}

py::dict StatusToPython(const PolicyStatus& ps) {
  const SlaStatus& s = ps.status;
  py::dict d;
  d["policy"] = ps.policy;
  d["transaction_id"] = ps.transaction_id;
  d["state"] = SlaStateName(s.state);
  d["started_at"] = OptTime(s.started_at);
  d["counted"] = s.counted.micros;
  d["paused"] = s.paused.micros;
  d["stopped"] = s.stopped.micros;
  d["remaining"] = s.remaining.micros;
  d["due_at"] = OptTime(s.due_at);
  d["due_projected"] = s.due_projected;
  d["breached_at"] = OptTime(s.breached_at);
  d["met_at"] = OptTime(s.met_at);
  d["current_state"] = s.current_state;
  d["explanation"] = s.explanation;
  py::list th;
  for (const SlaThreshold& t : s.thresholds) {
    py::dict x;
    x["share"] = t.share;
    x["reached"] = t.reached;
    x["at"] = OptTime(t.at);
    th.append(x);
  }
  d["thresholds"] = th;
  return d;
}

// Columns of statuses (no thresholds or segments): one list per field.
py::dict StatusColumns(const std::vector<PolicyStatus>& v) {
  py::list policy, id, state, counted, paused, stopped, remaining, due,
      breached, met, current, started;
  for (const PolicyStatus& ps : v) {
    const SlaStatus& s = ps.status;
    policy.append(ps.policy);
    id.append(ps.transaction_id);
    state.append(SlaStateName(s.state));
    started.append(OptTime(s.started_at));
    counted.append(s.counted.micros);
    paused.append(s.paused.micros);
    stopped.append(s.stopped.micros);
    remaining.append(s.remaining.micros);
    due.append(OptTime(s.due_at));
    breached.append(OptTime(s.breached_at));
    met.append(OptTime(s.met_at));
    current.append(s.current_state);
  }
  py::dict d;
  d["transaction_id"] = id;
  d["policy"] = policy;
  d["state"] = state;
  d["current_state"] = current;
  d["started_at"] = started;
  d["counted"] = counted;
  d["paused"] = paused;
  d["stopped"] = stopped;
  d["remaining"] = remaining;
  d["due_at"] = due;
  d["breached_at"] = breached;
  d["met_at"] = met;
  return d;
}

// A scheduler bound to a Python engine; every call checks that the engine
// is still open and the same one (a closed engine's C++ object is gone).
// Every call holds the engine's lock (crmflow_lock_engine) for its
// duration: the scheduler shares the engine's store, and its hooks run
// inside other threads' fires on that engine.
class PyScheduler {
 public:
  explicit PyScheduler(py::object engine) : engine_obj_(std::move(engine)) {
    EngineLock lock = Lock();
    engine_ = &crmflow_unwrap_engine(engine_obj_);
    sched_ = Unwrap(Scheduler::Attach(*engine_));
  }

  ~PyScheduler() {
    // Detaching touches the engine, which another thread may be using.
    try {
      EngineLock lock = Lock();
      sched_.reset();
    } catch (...) {
      sched_.reset();
    }
  }
  PyScheduler(const PyScheduler&) = delete;
  PyScheduler& operator=(const PyScheduler&) = delete;

  EngineLock Lock() { return crmflow_lock_engine(engine_obj_); }

  Scheduler& Get() {
    Engine& e = crmflow_unwrap_engine(engine_obj_);
    if (&e != engine_) RaiseInvalid("scheduler: its engine was reopened");
    return *sched_;
  }
  bool ReleasesGil() { return crmflow_engine_releases_gil(engine_obj_); }
  Timestamp Time(py::handle v, const char* what) {
    return crmflow_time_from_python(v, crmflow_engine_zone(engine_obj_),
                                    what);
  }
  std::optional<Timestamp> OptTimeArg(py::handle v, const char* what) {
    if (v.is_none()) return std::nullopt;
    return Time(v, what);
  }

  void AddPolicy(const std::string& name, const std::string& kind,
                 const std::map<std::string, std::string>& condition,
                 int64_t target, std::optional<BusinessCalendar> calendar,
                 std::vector<std::string> paused,
                 std::vector<std::string> met, std::string start_state,
                 const py::list& escalation) {
    EngineLock lock = Lock();
    ServicePolicy p;
    p.name = name;
    p.kind = kind;
    p.condition = condition;
    p.sla.target = Duration{target};
    if (calendar) p.sla.calendar = *calendar;
    p.sla.paused_states = std::move(paused);
    p.sla.met_states = std::move(met);
    p.sla.start_state = std::move(start_state);
    for (py::handle item : escalation) {
      auto tup = item.cast<py::tuple>();
      EscalationStep step;
      step.share = tup[0].cast<double>();
      for (py::handle a : tup[1]) {
        step.actions.push_back(ToAction(a.cast<py::dict>(),
                                        "sla policy \"" + name + "\""));
      }
      p.escalation.push_back(std::move(step));
    }
    Check(Get().AddPolicy(std::move(p)));
  }

  py::dict Tick(py::handle now) {
    EngineLock lock = Lock();
    Timestamp t = Time(now, "now");
    Scheduler& s = Get();
    StatusOr<TickSummary> r = Status(Code::kStoreError, "not run");
    {
      MaybeNoGil nogil(ReleasesGil());
      r = s.Tick(t);
    }
    TickSummary sum = Unwrap(std::move(r));
    py::dict d;
    d["fired"] = sum.fired;
    d["cancelled"] = sum.cancelled;
    d["moved"] = sum.moved;
    d["failed"] = sum.failed;
    return d;
  }

  int64_t SyncAll() {
    EngineLock lock = Lock();
    Scheduler& s = Get();
    StatusOr<int64_t> r = Status(Code::kStoreError, "not run");
    {
      MaybeNoGil nogil(ReleasesGil());
      r = s.SyncAll();
    }
    return Unwrap(std::move(r));
  }

  py::list StatusOf(const std::string& id, py::handle now) {
    EngineLock lock = Lock();
    auto r = Get().StatusOf(id, OptTimeArg(now, "now"));
    py::list out;
    for (const PolicyStatus& ps : Unwrap(std::move(r))) {
      out.append(StatusToPython(ps));
    }
    return out;
  }

  py::dict StatusAll(const std::string& kind, py::handle now) {
    EngineLock lock = Lock();
    std::optional<Timestamp> at = OptTimeArg(now, "now");
    Scheduler& s = Get();
    StatusOr<std::vector<PolicyStatus>> r =
        Status(Code::kStoreError, "not run");
    {
      MaybeNoGil nogil(ReleasesGil());
      r = s.StatusAll(kind, at);
    }
    return StatusColumns(Unwrap(std::move(r)));
  }

  py::dict SetAttributes(const std::string& id, const py::dict& attrs,
                         int64_t expected_version) {
    EngineLock lock = Lock();
    Attributes a;
    for (auto [k, v] : attrs) {
      std::string name = py::str(k).cast<std::string>();
      a.emplace_back(name, ToValue(v, "attribute \"" + name + "\""));
    }
    Transaction t = Unwrap(Get().SetAttributes(id, a, expected_version));
    py::dict d;
    d["id"] = t.id;
    d["version"] = t.version;
    return d;
  }

  int64_t ArmTimers(const std::vector<std::string>& ids,
                    const std::vector<std::string>& policies,
                    const std::vector<int>& steps,
                    const std::vector<int64_t>& due) {
    EngineLock lock = Lock();
    size_t n = ids.size();
    if (policies.size() != n || steps.size() != n || due.size() != n) {
      RaiseInvalid("arm_timers: columns differ in length");
    }
    std::vector<TimerSpec> specs(n);
    for (size_t i = 0; i < n; ++i) {
      specs[i] = TimerSpec{ids[i], policies[i], steps[i], Timestamp{due[i]}};
    }
    Scheduler& s = Get();
    StatusOr<int64_t> r = Status(Code::kStoreError, "not run");
    {
      MaybeNoGil nogil(ReleasesGil());
      r = s.ArmTimers(specs);
    }
    return Unwrap(std::move(r));
  }

  py::dict Timers(const std::string& id) {
    EngineLock lock = Lock();
    auto rows = Unwrap(Get().Timers(id));
    py::list tid, txn, policy, step, due, cycle, state, fired;
    for (const TimerRow& r : rows) {
      tid.append(r.id);
      txn.append(r.transaction_id);
      policy.append(r.policy);
      step.append(r.step);
      due.append(r.due_at.micros);
      cycle.append(r.cycle);
      state.append(r.state);
      fired.append(OptTime(r.fired_at));
    }
    py::dict d;
    d["id"] = tid;
    d["transaction_id"] = txn;
    d["policy"] = policy;
    d["step"] = step;
    d["due_at"] = due;
    d["cycle"] = cycle;
    d["state"] = state;
    d["fired_at"] = fired;
    return d;
  }

  py::dict Events(const std::string& id) {
    EngineLock lock = Lock();
    auto rows = Unwrap(Get().Events(id));
    py::list eid, time, rec, txn, policy, step, cycle, kind, share, detail;
    for (const SlaEventRow& r : rows) {
      eid.append(r.id);
      time.append(r.time.micros);
      rec.append(r.recorded_at.micros);
      txn.append(r.transaction_id);
      policy.append(r.policy);
      step.append(r.step);
      cycle.append(r.cycle);
      kind.append(r.kind);
      share.append(r.share);
      detail.append(r.detail);
    }
    py::dict d;
    d["id"] = eid;
    d["time"] = time;
    d["recorded_at"] = rec;
    d["transaction_id"] = txn;
    d["policy"] = policy;
    d["step"] = step;
    d["cycle"] = cycle;
    d["kind"] = kind;
    d["share"] = share;
    d["detail"] = detail;
    return d;
  }

  py::dict Outbox(const std::string& id) {
    EngineLock lock = Lock();
    auto rows = Unwrap(Get().Outbox(id));
    py::list oid, time, txn, channel, recipient, subject, body, policy, step;
    for (const OutboxRow& r : rows) {
      oid.append(r.id);
      time.append(r.time.micros);
      txn.append(r.transaction_id);
      channel.append(r.channel);
      recipient.append(r.recipient);
      subject.append(r.subject);
      body.append(r.body);
      policy.append(r.policy);
      step.append(r.step);
    }
    py::dict d;
    d["id"] = oid;
    d["time"] = time;
    d["transaction_id"] = txn;
    d["channel"] = channel;
    d["recipient"] = recipient;
    d["subject"] = subject;
    d["body"] = body;
    d["policy"] = policy;
    d["step"] = step;
    return d;
  }

 private:
  py::object engine_obj_;
  Engine* engine_ = nullptr;
  std::unique_ptr<Scheduler> sched_;
};

}  // namespace
}  // namespace crmflow

void crmflow_register_service(pybind11::module_& m) {
  using crmflow::BusinessCalendar;
  using crmflow::Duration;
  using crmflow::PyScheduler;
  using crmflow::Timestamp;

  py::class_<BusinessCalendar>(m, "Calendar")
      .def(py::init(&crmflow::MakeCalendar), py::arg("zone"),
           py::arg("weekly"), py::arg("holidays"), py::arg("special"))
      .def_static("twenty_four_seven",
                  [](const std::string& zone) {
                    return BusinessCalendar::TwentyFourSeven(crmflow::Unwrap(
                        crmflow::TimeZone::Load(zone)));
                  })
      .def_property_readonly("is_24x7", &BusinessCalendar::is_24x7)
      .def_property_readonly(
          "zone", [](const BusinessCalendar& c) { return c.zone().name(); })
      .def("add",
           [](const BusinessCalendar& c, int64_t start, int64_t business) {
             return crmflow::Unwrap(c.Add(Timestamp{start},
                                          Duration{business}))
                 .micros;
           })
      .def("add_many",
           [](const BusinessCalendar& c, py::array_t<int64_t> starts,
              int64_t business) {
             auto in = starts.unchecked<1>();
             py::array_t<int64_t> out(in.shape(0));
             auto o = out.mutable_unchecked<1>();
             crmflow::Status failure;
             {
               py::gil_scoped_release release;
               for (py::ssize_t i = 0; i < in.shape(0); ++i) {
                 auto r = c.Add(Timestamp{in(i)}, Duration{business});
                 if (!r.ok()) {
                   failure = r.status();
                   break;
                 }
                 o(i) = r->micros;
               }
             }
             crmflow::Check(failure);
             return out;
           })
      .def("between",
           [](const BusinessCalendar& c, int64_t a, int64_t b) {
             return c.Between(Timestamp{a}, Timestamp{b}).micros;
           })
      .def("is_open", [](const BusinessCalendar& c, int64_t t) {
        return c.IsOpen(Timestamp{t});
      })
      .def("next_open", [](const BusinessCalendar& c, int64_t t) {
        return crmflow::Unwrap(c.NextOpen(Timestamp{t})).micros;
      });

  py::class_<PyScheduler>(m, "Scheduler")
      .def(py::init<py::object>(), py::arg("engine"))
      .def("add_policy", &PyScheduler::AddPolicy, py::arg("name"),
           py::arg("kind"), py::arg("condition"), py::arg("target"),
           py::arg("calendar"), py::arg("paused_states"),
           py::arg("met_states"), py::arg("start_state"),
           py::arg("escalation"))
      .def("notify_on_assignment",
           [](PyScheduler& s, const std::string& attribute,
              const std::string& channel, const std::string& subject) {
             crmflow::EngineLock lock = s.Lock();
             s.Get().NotifyOnAssignment(
                 crmflow::AssignmentNotice{attribute, channel, subject});
           },
           py::arg("attribute"), py::arg("channel"), py::arg("subject"))
      .def("sync",
           [](PyScheduler& s, const std::string& id) {
             crmflow::EngineLock lock = s.Lock();
             crmflow::Check(s.Get().Sync(id));
           })
      .def("sync_all", &PyScheduler::SyncAll)
      .def("tick", &PyScheduler::Tick, py::arg("now"))
      .def("status", &PyScheduler::StatusOf, py::arg("id"),
           py::arg("now") = py::none())
      .def("status_all", &PyScheduler::StatusAll, py::arg("kind"),
           py::arg("now") = py::none())
      .def("set_attributes", &PyScheduler::SetAttributes, py::arg("id"),
           py::arg("attributes"), py::arg("expected_version"))
      .def("arm_timers", &PyScheduler::ArmTimers, py::arg("transaction_ids"),
           py::arg("policies"), py::arg("steps"), py::arg("due_at"))
      .def("timers", &PyScheduler::Timers, py::arg("id") = "")
      .def("events", &PyScheduler::Events, py::arg("id") = "")
      .def("outbox", &PyScheduler::Outbox, py::arg("id") = "")
      .def("pending_count", [](PyScheduler& s) {
        crmflow::EngineLock lock = s.Lock();
        return crmflow::Unwrap(s.Get().PendingCount());
      });
}
