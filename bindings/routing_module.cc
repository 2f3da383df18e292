// routing_module.cc: placeholder, being written.
#include "engine_handle.h"
void crmflow_register_routing(pybind11::module_&) {}
