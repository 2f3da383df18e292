// rules_module.cc: the numbering (and, later, rules) part of the
// crmflow._core module.
//
// Binds Engine::SetNumbering, GetNumbering, SetCounter and Counter
// (numbering.h) as module functions taking the Python engine first; the
// Python Engine wraps them as methods.  Only converts: every Status becomes
// one exception of crmflow._errors.
//
// crmflow_register_rules is called from PYBIND11_MODULE in core_module.cc.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "crmflow/numbering.h"
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
}
