// engine.cc: placeholder, being written.
