// workflow.cc: placeholder, being written.
