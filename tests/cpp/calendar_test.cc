// calendar_test.cc: placeholder, being written.
