// store_test.cc: placeholder, being written.
