// scheduler_test.cc: placeholder, being written.
