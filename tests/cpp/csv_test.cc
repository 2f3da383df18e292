// csv_test.cc: placeholder, being written.
