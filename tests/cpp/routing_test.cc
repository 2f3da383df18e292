// routing_test.cc: placeholder, being written.
