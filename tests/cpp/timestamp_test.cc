// timestamp_test.cc: placeholder, being written.
