// calendar.cc: placeholder, being written.
