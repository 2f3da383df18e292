// scheduler.cc: placeholder, being written.
