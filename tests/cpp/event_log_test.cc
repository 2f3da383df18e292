// event_log_test.cc: placeholder, being written.
