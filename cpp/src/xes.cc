// xes.cc: placeholder, being written.
