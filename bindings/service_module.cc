// service_module.cc: placeholder, being written.
#include "engine_handle.h"
void crmflow_register_service(pybind11::module_&) {}
