// expr_test.cc: placeholder, being written.
