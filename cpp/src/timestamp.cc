// timestamp.cc: placeholder, being written.
