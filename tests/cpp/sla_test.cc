// sla_test.cc: placeholder, being written.
