// value.cc: placeholder, being written.
