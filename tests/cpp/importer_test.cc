// importer_test.cc: placeholder, being written.
