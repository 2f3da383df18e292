// sqlite_store.cc: placeholder, being written.
