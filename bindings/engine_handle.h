// engine_handle.h: what the extra binding files (analytics, service desk)
// need from core_module.cc, the file that owns the Python Engine class.
//
// Each extra file defines one registration function, declared here and
// called at the end of PYBIND11_MODULE in core_module.cc, and reaches the
// C++ Engine behind a Python crmflow._core.Engine through these functions.

#ifndef CRMFLOW_BINDINGS_ENGINE_HANDLE_H_
#define CRMFLOW_BINDINGS_ENGINE_HANDLE_H_

#include <pybind11/pybind11.h>

#include "crmflow/engine.h"
#include "crmflow/status.h"
#include "crmflow/timestamp.h"

// Returns the C++ engine of `engine` (a crmflow._core.Engine or subclass).
// Raises InvalidArgumentError when it is closed or not an engine.  The
// reference is valid while the Python object is alive and open.
crmflow::Engine& crmflow_unwrap_engine(pybind11::handle engine);

// Returns the zone in which `engine` reads naive datetimes.
const crmflow::TimeZone& crmflow_engine_zone(pybind11::handle engine);

// Returns true when calls on `engine` should release the GIL (a SQLite
// store; the memory store is faster with the GIL kept).
bool crmflow_engine_releases_gil(pybind11::handle engine);

// Raises the crmflow._errors class for `status` (never returns).
[[noreturn]] void crmflow_throw_status(const crmflow::Status& status);

// Converts a Python time argument (int microseconds UTC, aware or naive
// datetime read in `zone`); `what` names the argument in errors.
crmflow::Timestamp crmflow_time_from_python(pybind11::handle value,
                                            const crmflow::TimeZone& zone,
                                            const char* what);

// Registration functions of the extra binding files.
void crmflow_register_analytics(pybind11::module_& m);
void crmflow_register_service(pybind11::module_& m);
void crmflow_register_routing(pybind11::module_& m);
void crmflow_register_rules(pybind11::module_& m);

#endif  // CRMFLOW_BINDINGS_ENGINE_HANDLE_H_
