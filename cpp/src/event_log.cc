// event_log.cc: placeholder, being written.
