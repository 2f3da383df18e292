// expr.cc: placeholder, being written.
