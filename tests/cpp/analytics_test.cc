// analytics_test.cc: placeholder, being written.
