// memory_store.cc: placeholder, being written.
