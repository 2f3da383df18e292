// approvals_module.cc: the approvals part of the crmflow._core module.
//
// Binds crmflow::Approvals (approvals.h) as _core.Approvals and the pure
// chain computation as _core.approval_chain.  Only converts: a matrix is a
// dict of bands and steps, rows come out as dicts with times as int
// microseconds UTC, and every Status (also an ApprovalError thrown from the
// entry hook inside Engine.fire) becomes one exception of crmflow._errors.
// The object refers to its engine weakly; the Python layer keeps the
// router alive.
//
// crmflow_register_approvals is called from PYBIND11_MODULE in
// core_module.cc.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crmflow/approvals.h"
#include "engine_handle.h"

namespace py = pybind11;

namespace crmflow {
namespace {

template <typename T>
T TakeApprovals(StatusOr<T>&& r) {
  if (!r.ok()) crmflow_throw_status(r.status());
  return std::move(r).value();
}

void CheckApprovals(const Status& s) {
  if (!s.ok()) crmflow_throw_status(s);
}

[[noreturn]] void Invalid(const std::string& message) {
  crmflow_throw_status(Status(Code::kInvalidArgument, message));
}

// Releases the GIL while the core works on a SQLite store; Python
// callbacks reached from there take it back.
class ReleaseIf {
 public:
  explicit ReleaseIf(bool release) {
    if (release) state_ = PyEval_SaveThread();
  }
  ~ReleaseIf() {
    if (state_ != nullptr) PyEval_RestoreThread(state_);
  }
  ReleaseIf(const ReleaseIf&) = delete;
  ReleaseIf& operator=(const ReleaseIf&) = delete;

 private:
  PyThreadState* state_ = nullptr;
};

// The engine is held by a weak reference: the Python engine holds the
// approvals object (engine.approvals), and a strong reference back from
// here would be a cycle the garbage collector cannot see.
struct PyApprovals {
  py::weakref engine;
  std::unique_ptr<Approvals> approvals;

  // Returns the engine, raising when it is gone or closed.
  py::object live_engine() {
    py::object e = engine();
    if (e.is_none()) {
      Invalid("approvals: the engine was garbage-collected");
    }
    (void)crmflow_unwrap_engine(e);
    return e;
  }
  Approvals& get() {
    (void)live_engine();
    return *approvals;
  }
  bool release() { return crmflow_engine_releases_gil(engine()); }
};

std::string Text(const py::dict& d, const char* key, const std::string& where,
                 bool required) {
  if (!d.contains(key) || d[key].is_none()) {
    if (required) Invalid(where + ": missing " + key);
    return "";
  }
  py::handle v = d[key];
  if (!py::isinstance<py::str>(v)) {
    Invalid(where + ": " + key + " must be str");
  }
  return v.cast<std::string>();
}

ApprovalMatrix MatrixFromDict(const py::dict& d) {
  ApprovalMatrix m;
  m.kind = Text(d, "kind", "approval matrix", true);
  std::string where = "approval matrix \"" + m.kind + "\"";
  m.request_state = Text(d, "request_state", where, false);
  m.approve_event = Text(d, "approve_event", where, false);
  m.reject_event = Text(d, "reject_event", where, false);
  if (!d.contains("bands")) Invalid(where + ": missing bands");
  int i = 0;
  for (py::handle hb : d["bands"]) {
    ++i;
    std::string bw = where + ": band " + std::to_string(i);
    if (!py::isinstance<py::dict>(hb)) Invalid(bw + ": expected a dict");
    py::dict b = py::reinterpret_borrow<py::dict>(hb);
    ApprovalBand band;
    band.name = Text(b, "name", bw, true);
    if (!b.contains("condition") || b["condition"].is_none()) {
      // A band without a condition would match everything: the catch-all
      // is spelled "true".
      Invalid(bw + " (\"" + band.name + "\"): missing condition (expected "
              "an expression, e.g. \"amount <= 1000\", or \"true\" for a "
              "band that matches everything)");
    }
    band.condition = Text(b, "condition", bw, true);
    if (b.contains("steps")) {
      for (py::handle hs : b["steps"]) {
        if (!py::isinstance<py::dict>(hs)) {
          Invalid(bw + ": step: expected a dict");
        }
        py::dict s = py::reinterpret_borrow<py::dict>(hs);
        ApprovalStep step;
        step.name = Text(s, "name", bw, true);
        step.team = Text(s, "team", bw, false);
        if (s.contains("approvers") && !s["approvers"].is_none()) {
          for (py::handle a : s["approvers"]) {
            if (!py::isinstance<py::str>(a)) {
              Invalid(bw + ": step \"" + step.name +
                      "\": approvers must be str");
            }
            step.approvers.push_back(a.cast<std::string>());
          }
        }
        std::string mode = Text(s, "mode", bw, false);
        if (!mode.empty()) {
          auto parsed = ParseApprovalMode(mode);
          if (!parsed.ok()) {
            Invalid(bw + ": step \"" + step.name +
                    "\": " + parsed.status().message());
          }
          step.mode = *parsed;
        }
        band.steps.push_back(std::move(step));
      }
    }
    m.bands.push_back(std::move(band));
  }
  return m;
}

py::dict StepToDict(const ApprovalStep& s) {
  py::dict d;
  d["name"] = s.name;
  d["approvers"] = s.approvers;
  d["team"] = s.team;
  d["mode"] = ApprovalModeName(s.mode);
  return d;
}

py::list StepsToList(const std::vector<ApprovalStep>& steps) {
  py::list out;
  for (const ApprovalStep& s : steps) out.append(StepToDict(s));
  return out;
}

py::dict MatrixToDict(const ApprovalMatrix& m) {
  py::list bands;
  for (const ApprovalBand& b : m.bands) {
    py::dict d;
    d["name"] = b.name;
    d["condition"] = b.condition;
    d["steps"] = StepsToList(b.steps);
    bands.append(d);
  }
  py::dict d;
  d["kind"] = m.kind;
  d["request_state"] = m.request_state;
  d["approve_event"] = m.approve_event;
  d["reject_event"] = m.reject_event;
  d["bands"] = bands;
  return d;
}

py::object OptMicros(const std::optional<Timestamp>& t) {
  if (!t) return py::none();
  return py::int_(t->micros);
}

py::dict RequestToDict(const ApprovalRequest& r) {
  py::dict d;
  d["id"] = r.id;
  d["transaction_id"] = r.transaction_id;
  d["kind"] = r.kind;
  d["band"] = r.band_name;
  d["status"] = r.status;
  d["current_step"] = r.current_step;
  d["step_name"] = r.current_step < static_cast<int>(r.steps.size())
                       ? py::object(py::str(r.steps[r.current_step].name))
                       : py::object(py::none());
  d["steps"] = StepsToList(r.steps);
  d["opened_at"] = r.opened_at.micros;
  d["closed_at"] = OptMicros(r.closed_at);
  d["outcome_event"] = r.outcome_event;
  d["automatic"] = r.automatic;
  return d;
}

py::dict DecisionToDict(const ApprovalDecision& x) {
  py::dict d;
  d["id"] = x.id;
  d["request_id"] = x.request_id;
  d["transaction_id"] = x.transaction_id;
  d["step"] = x.step;
  d["step_name"] = x.step_name;
  d["actor"] = x.actor;
  d["on_behalf_of"] = x.on_behalf_of;
  d["decision"] = x.decision;
  d["time"] = x.time.micros;
  d["comment"] = x.comment;
  return d;
}

py::dict DelegationToDict(const Delegation& x) {
  py::dict d;
  d["id"] = x.id;
  d["actor"] = x.actor;
  d["substitute"] = x.substitute;
  d["starts_at"] = x.starts_at.micros;
  d["ends_at"] = x.ends_at.micros;
  d["created_at"] = x.created_at.micros;
  return d;
}

py::dict PendingToDict(const PendingStep& p) {
  py::dict d;
  d["request_id"] = p.request_id;
  d["transaction_id"] = p.transaction_id;
  d["kind"] = p.kind;
  d["step"] = p.step;
  d["step_name"] = p.step_name;
  d["mode"] = p.mode;
  d["actor"] = p.actor;
  d["on_behalf_of"] = p.on_behalf_of;
  d["opened_at"] = p.opened_at.micros;
  return d;
}

py::dict ResultToDict(const DecisionResult& r) {
  py::dict d;
  d["decision_id"] = r.decision_id;
  d["request_id"] = r.request_id;
  d["status"] = r.status;
  d["current_step"] = r.current_step;
  d["fired_event"] = r.fired_event;
  d["state"] = r.state;
  d["on_behalf_of"] = r.on_behalf_of;
  return d;
}

// Converts one attribute for a chain computed without an engine: the
// Python types the engine accepts, read as that engine reads them (naive
// datetimes as UTC).  Returns the value and its declared type (nullopt for
// None, so a condition on a missing value type-checks and reads null).
std::pair<Value, std::optional<ValueType>> ChainValue(py::handle v,
                                                      const std::string& name) {
  static const TimeZone& utc = *new TimeZone();  // never destroyed
  if (v.is_none()) return {Value(), std::nullopt};
  if (PyBool_Check(v.ptr())) {
    return {Value::Bool(v.ptr() == Py_True), ValueType::kBoolean};
  }
  if (PyLong_Check(v.ptr())) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (overflow != 0) {
      Invalid("attribute \"" + name + "\": integer out of 64-bit range");
    }
    return {Value::Integer(x), ValueType::kInteger};
  }
  if (PyUnicode_Check(v.ptr())) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(v.ptr(), &size);
    if (data == nullptr) {
      PyErr_Clear();
      Invalid("attribute \"" + name + "\": text is not valid UTF-8");
    }
    return {Value::Text(std::string(data, static_cast<size_t>(size))),
            ValueType::kText};
  }
  if (PyFloat_Check(v.ptr())) {
    Invalid("attribute \"" + name +
            "\": binary floats are refused (use decimal.Decimal or int)");
  }
  py::object decimal = py::module_::import("decimal").attr("Decimal");
  if (py::isinstance(v, decimal)) {
    std::string text = py::str(py::module_::import("builtins")
                                   .attr("format")(v, "f"));
    auto d = Decimal::Parse(text);
    if (!d.ok()) {
      Invalid("attribute \"" + name + "\": decimal " + text +
              " not representable (at most 18 decimal places)");
    }
    return {Value::Dec(*d), ValueType::kDecimal};
  }
  py::object datetime = py::module_::import("datetime");
  if (py::isinstance(v, datetime.attr("datetime"))) {
    return {Value::Time(crmflow_time_from_python(v, utc, name.c_str())),
            ValueType::kTimestamp};
  }
  if (py::isinstance(v, datetime.attr("timedelta"))) {
    py::object us = v.attr("__floordiv__")(
        datetime.attr("timedelta")(py::arg("microseconds") = 1));
    return {Value::Span(Duration{us.cast<int64_t>()}), ValueType::kDuration};
  }
  Invalid("attribute \"" + name + "\": unsupported type " +
          std::string(Py_TYPE(v.ptr())->tp_name) +
          " (expected str, int, bool, Decimal, datetime, timedelta or None)");
}

std::optional<Timestamp> OptTime(py::handle obj, py::handle engine,
                                 const char* what) {
  if (obj.is_none()) return std::nullopt;
  return crmflow_time_from_python(obj, crmflow_engine_zone(engine), what);
}

py::dict Decide(PyApprovals& a, bool approve, const std::string& txn_id,
                const std::string& actor, py::object time,
                const std::string& comment, const std::string& on_behalf_of) {
  Approvals& ap = a.get();
  DecisionOptions o;
  o.actor = actor;
  o.time = OptTime(time, a.live_engine(), "time");
  o.comment = comment;
  o.on_behalf_of = on_behalf_of;
  std::optional<StatusOr<DecisionResult>> r;
  {
    ReleaseIf nogil(a.release());
    r.emplace(approve ? ap.Approve(txn_id, o) : ap.Reject(txn_id, o));
  }
  return ResultToDict(TakeApprovals(std::move(*r)));
}

template <typename T, typename F>
py::list Rows(StatusOr<std::vector<T>>&& rows, F to_dict) {
  py::list out;
  for (const T& row : TakeApprovals(std::move(rows))) out.append(to_dict(row));
  return out;
}

}  // namespace
}  // namespace crmflow

void crmflow_register_approvals(pybind11::module_& m) {
  using namespace crmflow;

  // The entry hook reports through an exception (hooks return nothing);
  // it reaches Python as the exception of its status code.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ApprovalError& e) {
      try {
        crmflow_throw_status(e.status());
      } catch (py::error_already_set& err) {
        err.restore();
      }
    }
  });

  py::class_<PyApprovals>(m, "Approvals")
      .def(py::init([](py::object engine, py::object router) {
             EngineLock lock = crmflow_lock_engine(engine);
             auto a = std::make_unique<PyApprovals>();
             Router* r = nullptr;
             if (!router.is_none()) r = crmflow_unwrap_router(router);
             a->approvals = TakeApprovals(
                 Approvals::Attach(&crmflow_unwrap_engine(engine), r));
             a->engine = py::weakref(engine);
             return a;
           }),
           py::arg("engine"), py::arg("router") = py::none())
      .def(
          "set_router",
          [](PyApprovals& a, py::object router) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            Router* r = nullptr;
            if (!router.is_none()) r = crmflow_unwrap_router(router);
            a.get().set_router(r);
          },
          py::arg("router"))
      .def(
          "set_matrix",
          [](PyApprovals& a, py::dict matrix) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            CheckApprovals(a.get().SetMatrix(MatrixFromDict(matrix)));
          },
          py::arg("matrix"))
      .def(
          "matrix",
          [](PyApprovals& a, const std::string& kind) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            return MatrixToDict(TakeApprovals(a.get().Matrix(kind)).matrix());
          },
          py::arg("kind"))
      .def(
          "remove_matrix",
          [](PyApprovals& a, const std::string& kind) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            CheckApprovals(a.get().RemoveMatrix(kind));
          },
          py::arg("kind"))
      .def("stored_matrices",
           [](PyApprovals& a) {
             EngineLock lock = crmflow_lock_engine(a.live_engine());
             py::list out;
             for (const ApprovalMatrix& mx :
                  TakeApprovals(a.get().StoredMatrices())) {
               out.append(MatrixToDict(mx));
             }
             return out;
           })
      .def("reload",
           [](PyApprovals& a) {
             EngineLock lock = crmflow_lock_engine(a.live_engine());
             CheckApprovals(a.get().Reload());
           })
      .def("problems",
           [](PyApprovals& a) {
             EngineLock lock = crmflow_lock_engine(a.live_engine());
             return a.get().Problems();
           })
      .def(
          "approve",
          [](PyApprovals& a, const std::string& txn_id,
             const std::string& actor, py::object time,
             const std::string& comment, const std::string& on_behalf_of) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            return Decide(a, true, txn_id, actor, time, comment,
                          on_behalf_of);
          },
          py::arg("txn_id"), py::arg("actor"), py::arg("time") = py::none(),
          py::arg("comment") = "", py::arg("on_behalf_of") = "")
      .def(
          "reject",
          [](PyApprovals& a, const std::string& txn_id,
             const std::string& actor, py::object time,
             const std::string& comment, const std::string& on_behalf_of) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            return Decide(a, false, txn_id, actor, time, comment,
                          on_behalf_of);
          },
          py::arg("txn_id"), py::arg("actor"), py::arg("time") = py::none(),
          py::arg("comment") = "", py::arg("on_behalf_of") = "")
      .def(
          "delegate",
          [](PyApprovals& a, const std::string& actor,
             const std::string& substitute, py::object start,
             py::object end) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            Approvals& ap = a.get();
            const TimeZone& zone = crmflow_engine_zone(a.live_engine());
            Timestamp s = crmflow_time_from_python(start, zone, "start");
            Timestamp e = crmflow_time_from_python(end, zone, "end");
            return TakeApprovals(ap.Delegate(actor, substitute, s, e));
          },
          py::arg("actor"), py::arg("substitute"), py::arg("start"),
          py::arg("end"))
      .def(
          "remove_delegation",
          [](PyApprovals& a, int64_t id) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            CheckApprovals(a.get().RemoveDelegation(id));
          },
          py::arg("id"))
      .def(
          "delegations",
          [](PyApprovals& a, const std::string& actor) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            return Rows(a.get().Delegations(actor), DelegationToDict);
          },
          py::arg("actor") = "")
      .def(
          "open_requests",
          [](PyApprovals& a, const std::string& kind) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            return Rows(a.get().OpenRequests(kind), RequestToDict);
          },
          py::arg("kind") = "")
      .def(
          "requests",
          [](PyApprovals& a, const std::string& txn_id) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            return Rows(a.get().Requests(txn_id), RequestToDict);
          },
          py::arg("txn_id") = "")
      .def(
          "decisions",
          [](PyApprovals& a, const std::string& txn_id) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            return Rows(a.get().Decisions(txn_id), DecisionToDict);
          },
          py::arg("txn_id") = "")
      .def(
          "pending",
          [](PyApprovals& a, const std::string& actor, py::object at) {
            EngineLock lock = crmflow_lock_engine(a.live_engine());
            Approvals& ap = a.get();
            return Rows(ap.Pending(actor, OptTime(at, a.live_engine(), "at")),
                        PendingToDict);
          },
          py::arg("actor"), py::arg("at") = py::none());

  m.def(
      "approvals_stored",
      [](py::object engine) {
        EngineLock lock = crmflow_lock_engine(engine);
        return Approvals::HasStoredMatrices(&crmflow_unwrap_engine(engine));
      },
      py::arg("engine"));
  m.def(
      "approval_chain",
      [](py::dict matrix, py::dict attributes, py::object types) {
        ApprovalMatrix mx = MatrixFromDict(matrix);
        ExprSchema schema;
        Attributes attrs;
        for (auto item : attributes) {
          if (!PyUnicode_Check(item.first.ptr())) {
            Invalid("attributes: names must be str");
          }
          std::string name = item.first.cast<std::string>();
          auto [value, type] = ChainValue(item.second, name);
          schema.attributes.push_back({name, type});
          SetAttribute(attrs, name, std::move(value));
        }
        // Declared types win over the values' own (an int amount of a
        // decimal attribute reads as a decimal, as in the engine).
        if (!types.is_none()) {
          for (auto item : py::reinterpret_borrow<py::dict>(types)) {
            std::string name = item.first.cast<std::string>();
            ValueType t =
                TakeApprovals(ParseValueType(item.second.cast<std::string>()));
            bool found = false;
            for (ExprField& f : schema.attributes) {
              if (f.name == name) {
                f.type = t;
                found = true;
              }
            }
            if (!found) schema.attributes.push_back({name, t});
          }
        }
        auto compiled = TakeApprovals(
            CompiledMatrix::Compile(std::move(mx), schema));
        ApprovalChain chain = TakeApprovals(compiled.Chain(attrs));
        py::dict d;
        d["band"] = chain.band_name;
        d["index"] = chain.band;
        d["steps"] = StepsToList(chain.steps);
        return d;
      },
      py::arg("matrix"), py::arg("attributes"), py::arg("types") = py::none());
}
