// csv.cc: placeholder, being written.
