// engine_test.cc: placeholder, being written.
