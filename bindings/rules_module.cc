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

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

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

}  // namespace
}  // namespace crmflow

void crmflow_register_rules(py::module_& m) {
  using crmflow::Engine;
  using crmflow::NumberingSpec;
  using crmflow::Status;
  using crmflow::StatusOr;
  m.def(
      "numbering_set",
      [](py::handle engine, const std::string& kind, const std::string& format,
         bool yearly_reset, const std::string& zone) {
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
        Engine& e = crmflow_unwrap_engine(engine);
        crmflow::CheckNumbering(e.rules().SetEnabled(name, enabled));
      },
      py::arg("engine"), py::arg("name"), py::arg("enabled"));
  m.def(
      "rules_remove",
      [](py::handle engine, const std::string& name) {
        Engine& e = crmflow_unwrap_engine(engine);
        crmflow::CheckNumbering(e.rules().Remove(name));
      },
      py::arg("engine"), py::arg("name"));
  m.def(
      "rules_reload",
      [](py::handle engine) {
        Engine& e = crmflow_unwrap_engine(engine);
        crmflow::CheckNumbering(e.rules().Reload());
      },
      py::arg("engine"));
  m.def(
      "rules_trace",
      [](py::handle engine, const std::string& transaction_id) {
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
        crmflow_unwrap_engine(engine).rules().ClearTrace();
      },
      py::arg("engine"));
  m.def(
      "rules_check",
      [](py::handle engine, const std::string& condition,
         const crmflow::Transaction& txn) {
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
        return crmflow_unwrap_engine(engine).rules().Validate();
      },
      py::arg("engine"),
      "Returns a message per stored rule that no longer compiles.");
}
