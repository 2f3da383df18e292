// value_test.cc: placeholder, being written.
