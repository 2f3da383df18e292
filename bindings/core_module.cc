// core_module.cc: placeholder
