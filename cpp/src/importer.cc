// importer.cc: placeholder, being written.
