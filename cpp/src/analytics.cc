// analytics.cc: placeholder, being written.
