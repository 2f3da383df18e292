// workflow_test.cc: placeholder, being written.
