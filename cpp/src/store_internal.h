// store_internal.h: the private extension of Store shared by the engine and
// the two built-in stores (not installed, not part of the public API).
//
// The public Store interface writes whole transactions, which is what
// importers and other stores need.  Firing an event only changes the
// state, the version and two times, so the engine uses this narrower call
// on its hot path: the SQLite store skips rewriting attribute rows and the
// memory store skips copying them into its undo log.

#ifndef CRMFLOW_SRC_STORE_INTERNAL_H_
#define CRMFLOW_SRC_STORE_INTERNAL_H_

#include <cstdint>

#include "crmflow/store.h"

namespace crmflow::internal {

class StoreImpl : public Store {
 public:
  // True when LoadTransaction is an in-process lookup, so the engine keeps
  // no cache of its own (the store is the cache).
  virtual bool in_process() const = 0;

  // Writes state, version, updated_at and state_entered_at of `txn` (not
  // its attributes, kind or links) if the stored version equals
  // `expected_version`, then appends `row`; returns the row's seq.  Fails
  // like UpdateTransaction and AppendHistory.  Must run inside Begin.
  virtual StatusOr<int64_t> ApplyTransition(const Transaction& txn,
                                            int64_t expected_version,
                                            const HistoryRow& row) = 0;
};

}  // namespace crmflow::internal

#endif  // CRMFLOW_SRC_STORE_INTERNAL_H_
