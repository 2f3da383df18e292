// rules_module.cc: the numbering and rules part of the crmflow._core
// module.
//
// Binds Engine::SetNumbering, GetNumbering, SetCounter and Counter
// (numbering.h) and the engine's RuleSet (rules.h) as module functions
// taking the Python engine first; the Python Engine wraps them as methods.
// Rules cross as dicts, the trace as a dict of columns.  Only converts:
// every Status becomes one exception of crmflow._errors.
//
// crmflow_register_rules is called from PYBIND11_MODULE in core_module.cc.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "crmflow/numbering.h"
#include "crmflow/rules.h"
#include "engine_handle.h"

namespace py = pybind11;

namespace crmflow {
namespace {

void CheckNumbering(const Status& s) {
  if (!s.ok()) crmflow_throw_status(s);
}

py::object SpecToPython(const std::optional<NumberingSpec>& spec) {
  if (!spec) return py::none();
  py::dict d;
  d["kind"] = spec->kind;
  d["format"] = spec->format;
  d["yearly_reset"] = spec->yearly_reset;
  d["zone"] = spec->zone;
  return d;
}

py::dict RuleToDict(const Rule& r) {
  py::dict d;
  d["name"] = r.name;
  d["kind"] = r.kind;
  d["trigger"] = RuleTriggerName(r.trigger);
  d["on"] = r.on;
  d["condition"] = r.condition;
  d["priority"] = r.priority;
  d["enabled"] = r.enabled;
  d["actions"] = r.actions;
  d["position"] = r.position;
  return d;
}

// A ConditionSet whose entries may also be Python callables, called with
// the record (the dict as given) and tested for truth.
struct PyConditionSet {
  ConditionSet native;
  std::vector<int> native_index;  // per entry; -1 for a callable
  std::vector<py::object> callables;  // per entry; None for a text
  bool has_callables = false;
  // The texts as given and their schema: an evaluation error is reported
  // by evaluating the failing text whole again (see EvaluationError).
  std::vector<std::string> texts;
  ExprSchema schema;
};

// The error of native condition `k` on `ctx`, which failed with `operand`
// (whose columns count within the "and" operand the set split it into):
// the whole text evaluated again gives the same error with the columns of
// the text as written (evaluation is deterministic and the split keeps
// its order and short-circuit).  Numbered as the caller listed it.
Status EvaluationError(const PyConditionSet& set, size_t k,
                       const EvalContext& ctx, const Status& operand,
                       size_t row) {
  Status st = operand;
  auto whole = Expression::ParseCondition(set.texts[k], set.schema);
  if (whole.ok()) {
    auto again = whole->EvaluateCondition(ctx);
    if (!again.ok()) st = again.status();
  }
  size_t entry = k;
  for (size_t i = 0; i < set.native_index.size(); ++i) {
    if (set.native_index[i] == static_cast<int>(k)) entry = i;
  }
  return Status(st.code(), "record " + std::to_string(row + 1) +
                               ": condition " + std::to_string(entry + 1) +
                               ": " + st.message());
}

PyConditionSet MakeConditionSet(const py::list& conditions,
                                const py::dict& attributes) {
  ExprSchema schema;
  for (auto item : attributes) {
    auto type = ParseValueType(py::cast<std::string>(item.second));
    if (!type.ok()) crmflow_throw_status(type.status());
    schema.attributes.push_back({py::cast<std::string>(item.first), *type});
  }
  PyConditionSet set;
  std::vector<std::string> texts;
  for (py::handle c : conditions) {
    if (PyUnicode_Check(c.ptr())) {
      set.native_index.push_back(static_cast<int>(texts.size()));
      set.callables.push_back(py::none());
      texts.push_back(py::cast<std::string>(c));
    } else if (PyCallable_Check(c.ptr())) {
      set.native_index.push_back(-1);
      set.callables.push_back(py::reinterpret_borrow<py::object>(c));
      set.has_callables = true;
    } else {
      crmflow_throw_status(Status(
          Code::kInvalidArgument,
          "condition " + std::to_string(set.native_index.size() + 1) +
              ": expected an expression text or a callable (got " +
              std::string(py::str(py::type::of(c).attr("__name__"))) + ")"));
    }
  }
  auto compiled = ConditionSet::Compile(texts, schema);
  if (!compiled.ok()) {
    // Number the conditions as the caller gave them, callables included.
    std::string msg = compiled.status().message();
    size_t colon = msg.find(':');
    int text_no = std::stoi(msg.substr(10, colon - 10));
    for (size_t i = 0; i < set.native_index.size(); ++i) {
      if (set.native_index[i] == text_no - 1) {
        msg = "condition " + std::to_string(i + 1) + msg.substr(colon);
        break;
      }
    }
    crmflow_throw_status(Status(compiled.status().code(), msg));
  }
  set.native = std::move(*compiled);
  set.texts = std::move(texts);
  set.schema = std::move(schema);
  return set;
}

// Calls `visit(record index, matched entries)` for every record of every
// pass, in order.
template <typename Visit>
void EvaluateRecords(const PyConditionSet& set, const py::list& records,
                     int64_t passes, Visit visit) {
  const TimeZone utc;
  std::vector<Attributes> rows;
  rows.reserve(records.size());
  for (py::handle r : records) {
    rows.push_back(crmflow_attributes_from_python(r, utc));
  }
  const size_t n = set.native_index.size();
  std::vector<uint8_t> native(set.native.size());
  std::vector<uint8_t> matched(n);
  // Per operand: 0 not evaluated yet for this record, 1 false, 2 true.
  std::vector<uint8_t> memo(set.native.operand_count());
  // Borrowed: the list holds the records for the whole call.
  std::vector<PyObject*> objects;
  objects.reserve(records.size());
  for (py::handle r : records) objects.push_back(r.ptr());
  const bool has_native = set.native.size() > 0;
  auto one = [&](size_t row) {
    if (has_native) {
      EvalContext ctx;
      ctx.attributes = &rows[row];
      std::fill(memo.begin(), memo.end(), 0);
      for (size_t k = 0; k < native.size(); ++k) {
        auto r = set.native.EvaluateOne(k, ctx, memo.data());
        if (!r.ok()) {
          crmflow_throw_status(
              EvaluationError(set, k, ctx, r.status(), row));
        }
        native[k] = *r ? 1 : 0;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      int k = set.native_index[i];
      if (k >= 0) {
        matched[i] = native[k];
        continue;
      }
      // One vectorcall, as cheap as a call from C++ gets.
      PyObject* r = PyObject_CallOneArg(set.callables[i].ptr(), objects[row]);
      if (r == nullptr) throw py::error_already_set();
      int truth = PyObject_IsTrue(r);
      Py_DECREF(r);
      if (truth < 0) throw py::error_already_set();
      matched[i] = static_cast<uint8_t>(truth);
    }
    visit(row, matched.data());
  };
  for (int64_t p = 0; p < passes; ++p) {
    for (size_t row = 0; row < rows.size(); ++row) one(row);
  }
}

}  // namespace
}  // namespace crmflow

void crmflow_register_rules(py::module_& m) {
  py::class_<crmflow::PyConditionSet>(
      m, "ConditionSet",
      "Conditions evaluated together over records (see rules.h).")
      .def(py::init(&crmflow::MakeConditionSet), py::arg("conditions"),
           py::arg("attributes"))
      .def("__len__",
           [](const crmflow::PyConditionSet& s) {
             return s.native_index.size();
           })
      .def_property_readonly(
          "operand_count",
          [](const crmflow::PyConditionSet& s) {
            return s.native.operand_count();
          })
      .def(
          "count",
          [](const crmflow::PyConditionSet& s, const py::list& records,
             int64_t passes) {
            std::vector<int64_t> counts(s.native_index.size(), 0);
            auto add = [&](size_t, const uint8_t* hit) {
              for (size_t i = 0; i < counts.size(); ++i) counts[i] += hit[i];
            };
            crmflow::EvaluateRecords(s, records, passes, add);
            return counts;
          },
          py::arg("records"), py::arg("passes") = 1,
          "Returns the number of records matched by each condition, over "
          "`passes` passes.")
      .def(
          "matrix",
          [](const crmflow::PyConditionSet& s, const py::list& records) {
            const size_t n = s.native_index.size();
            py::array_t<bool> out(
                {static_cast<py::ssize_t>(records.size()),
                 static_cast<py::ssize_t>(n)});
            bool* data = out.mutable_data();
            crmflow::EvaluateRecords(
                s, records, 1, [&](size_t row, const uint8_t* hit) {
                  for (size_t i = 0; i < n; ++i) data[row * n + i] = hit[i];
                });
            return out;
          },
          py::arg("records"),
          "Returns a records x conditions boolean array.");
  m.def(
      "call_python_n",
      [](py::object fn, py::object arg, int64_t n) {
        // The floor for a Python condition: n bare calls from C++, each
        // result tested for truth as a condition's is.
        for (int64_t i = 0; i < n; ++i) {
          PyObject* r = PyObject_CallOneArg(fn.ptr(), arg.ptr());
          if (r == nullptr) throw py::error_already_set();
          int truth = PyObject_IsTrue(r);
          Py_DECREF(r);
          if (truth < 0) throw py::error_already_set();
        }
      },
      py::arg("fn"), py::arg("arg"), py::arg("n"),
      "Calls fn(arg) n times from C++ and tests each result for truth "
      "(a benchmark baseline).");

  using crmflow::Engine;
  using crmflow::NumberingSpec;
  using crmflow::Status;
  using crmflow::StatusOr;
  m.def(
      "numbering_set",
      [](py::handle engine, const std::string& kind, const std::string& format,
         bool yearly_reset, const std::string& zone) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        NumberingSpec spec{kind, format, yearly_reset, zone};
        Status st;
        {
          py::gil_scoped_release nogil;
          st = e.SetNumbering(spec);
        }
        crmflow::CheckNumbering(st);
      },
      py::arg("engine"), py::arg("kind"), py::arg("format"),
      py::arg("yearly_reset") = false, py::arg("zone") = "UTC",
      "Saves the number format of a kind (see numbering.h).");
  m.def(
      "numbering_get",
      [](py::handle engine, const std::string& kind) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        std::optional<StatusOr<std::optional<NumberingSpec>>> r;
        {
          py::gil_scoped_release nogil;
          r.emplace(e.GetNumbering(kind));
        }
        if (!r->ok()) crmflow_throw_status(r->status());
        return crmflow::SpecToPython(**r);
      },
      py::arg("engine"), py::arg("kind"),
      "Returns the numbering of a kind as a dict, or None.");
  m.def(
      "numbering_set_counter",
      [](py::handle engine, const std::string& kind, int64_t last,
         int64_t period) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        Status st;
        {
          py::gil_scoped_release nogil;
          st = e.SetCounter(kind, last, period);
        }
        crmflow::CheckNumbering(st);
      },
      py::arg("engine"), py::arg("kind"), py::arg("last"),
      py::arg("period") = 0, "Sets the last number issued for a kind.");
  m.def(
      "numbering_counter",
      [](py::handle engine, const std::string& kind, int64_t period) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        std::optional<StatusOr<int64_t>> r;
        {
          py::gil_scoped_release nogil;
          r.emplace(e.Counter(kind, period));
        }
        if (!r->ok()) crmflow_throw_status(r->status());
        return **r;
      },
      py::arg("engine"), py::arg("kind"), py::arg("period") = 0,
      "Returns the last number issued for a kind (0 when none).");

  m.def(
      "rules_add",
      [](py::handle engine, const std::string& name, const std::string& kind,
         const std::string& trigger, const std::string& on,
         const std::string& condition, int priority, bool enabled,
         const std::string& actions) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        auto t = crmflow::ParseRuleTrigger(trigger);
        if (!t.ok()) crmflow_throw_status(t.status());
        crmflow::Rule r;
        r.name = name;
        r.kind = kind;
        r.trigger = *t;
        r.on = on;
        r.condition = condition;
        r.priority = priority;
        r.enabled = enabled;
        r.actions = actions;
        crmflow::CheckNumbering(e.rules().Add(std::move(r)));
      },
      py::arg("engine"), py::arg("name"), py::arg("kind"),
      py::arg("trigger"), py::arg("on"), py::arg("condition"),
      py::arg("priority"), py::arg("enabled"), py::arg("actions"),
      "Adds or replaces a rule (see rules.h).");
  m.def(
      "rules_list",
      [](py::handle engine) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        py::list out;
        for (const crmflow::Rule& r : e.rules().rules()) {
          out.append(crmflow::RuleToDict(r));
        }
        return out;
      },
      py::arg("engine"), "Returns the rules as dicts, in definition order.");
  m.def(
      "rules_set_enabled",
      [](py::handle engine, const std::string& name, bool enabled) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        crmflow::CheckNumbering(e.rules().SetEnabled(name, enabled));
      },
      py::arg("engine"), py::arg("name"), py::arg("enabled"));
  m.def(
      "rules_remove",
      [](py::handle engine, const std::string& name) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        crmflow::CheckNumbering(e.rules().Remove(name));
      },
      py::arg("engine"), py::arg("name"));
  m.def(
      "rules_reload",
      [](py::handle engine) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        crmflow::CheckNumbering(e.rules().Reload());
      },
      py::arg("engine"));
  m.def(
      "rules_trace",
      [](py::handle engine, const std::string& transaction_id) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        py::list seq, time, txn, rule, trigger, outcome, reads, depth;
        for (const crmflow::RuleTraceRow& r :
             e.rules().Trace(transaction_id)) {
          seq.append(r.seq);
          time.append(r.time.micros);
          txn.append(r.transaction_id);
          rule.append(r.rule);
          trigger.append(r.trigger);
          outcome.append(r.outcome);
          reads.append(r.reads);
          depth.append(r.depth);
        }
        py::dict d;
        d["seq"] = seq;
        d["time"] = time;
        d["transaction_id"] = txn;
        d["rule"] = rule;
        d["trigger"] = trigger;
        d["outcome"] = outcome;
        d["reads"] = reads;
        d["depth"] = depth;
        return d;
      },
      py::arg("engine"), py::arg("transaction_id") = "",
      "Returns the rule trace as a dict of columns.");
  m.def(
      "rules_clear_trace",
      [](py::handle engine) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        crmflow_unwrap_engine(engine).rules().ClearTrace();
      },
      py::arg("engine"));
  m.def(
      "rules_check",
      [](py::handle engine, const std::string& condition,
         const crmflow::Transaction& txn) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        Engine& e = crmflow_unwrap_engine(engine);
        const crmflow::Workflow* wf = e.FindWorkflow(txn.kind);
        if (wf == nullptr) {
          crmflow_throw_status(Status(crmflow::Code::kNotFound,
                                      "kind \"" + txn.kind +
                                          "\" has no registered workflow"));
        }
        auto expr = crmflow::Expression::ParseCondition(
            condition, crmflow::SchemaOf(*wf));
        if (!expr.ok()) crmflow_throw_status(expr.status());
        crmflow::EvalContext ctx;
        ctx.attributes = &txn.attributes;
        ctx.txn_id = txn.id;
        ctx.txn_state = txn.state;
        ctx.txn_kind = txn.kind;
        auto r = expr->EvaluateCondition(ctx);
        if (!r.ok()) crmflow_throw_status(r.status());
        return *r;
      },
      py::arg("engine"), py::arg("condition"), py::arg("transaction"),
      "Evaluates a condition on a transaction (for Python rules).");
  m.def(
      "rules_validate",
      [](py::handle engine) {
        crmflow::EngineLock lock = crmflow_lock_engine(engine);
        return crmflow_unwrap_engine(engine).rules().Validate();
      },
      py::arg("engine"),
      "Returns a message per stored rule that no longer compiles.");
}
