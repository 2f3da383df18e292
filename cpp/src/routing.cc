// routing.cc: placeholder, being written.
