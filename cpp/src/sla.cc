// sla.cc: placeholder, being written.
