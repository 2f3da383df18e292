// store_internal.h: the private extension of Store shared by the engine and
// the two built-in stores (not installed, not part of the public API).
//
// The public Store interface writes whole transactions, which is what
// importers and other stores need.  Firing an event only changes the
// state, the version and two times, so the engine uses this narrower call
// on its hot path: the SQLite store skips rewriting attribute rows and the
// memory store skips copying them into its undo log.
//
// The in-process store also offers a narrower path still (FindHot,
// ApplyHot): the engine reads a record's kind, state and version as name
// ids and writes an accepted transition by ids, so a fire that runs no
// callback builds no Transaction or HistoryRow and copies no string.

#ifndef CRMFLOW_SRC_STORE_INTERNAL_H_
#define CRMFLOW_SRC_STORE_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

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

  // --- The id-based path of in-process stores (others keep the defaults,
  // which make the engine take the general path). ---

  // The fields of a stored transaction a fire needs, names as ids of
  // InternName.  `index` is valid until the next insert or rollback.
  struct Hot {
    uint32_t index = 0;
    void* record = nullptr;  // the store's own record, same validity
    uint32_t kind = 0;
    uint32_t state = 0;
    int64_t version = 0;
  };
  // An accepted transition of the record found as `Hot`.
  struct HotTransition {
    uint32_t to_state = 0;  // name id
    uint32_t event = 0;     // name id
    Timestamp time;
    bool external = true;   // false: state_entered_at stays
    bool internal = false;  // the history row's flag
    int workflow_version = 0;
    std::string_view actor;
    std::string_view payload;
  };
  // Finds `id`; returns false when absent (or unsupported).
  virtual bool FindHot(std::string_view id, Hot* out) {
    (void)id;
    (void)out;
    return false;
  }
  // Returns the id of a kind, state or event name, interning it; ids are
  // never reused, and 0 is "".
  virtual uint32_t InternName(std::string_view name) {
    (void)name;
    return 0;
  }
  // Makes room for `n` more history rows, so that a batch of that many
  // transitions grows the history once instead of copying it as it
  // doubles.  A hint: may do nothing.
  virtual void ReserveHistory(size_t n) { (void)n; }
  // Writes the transition (state, version + 1, updated_at, entered_at when
  // external) and its history row, logged for Rollback inside Begin; `hot`
  // must come from FindHot with nothing written since.  Returns the row's
  // seq.  Does not check the version or sources: the engine calls it only
  // where the general path would have accepted the same write.  Throws
  // only std::bad_alloc, before changing anything.
  virtual int64_t ApplyHot(const Hot& hot, const HotTransition& t) {
    (void)hot;
    (void)t;
    return 0;
  }
};

}  // namespace crmflow::internal

#endif  // CRMFLOW_SRC_STORE_INTERNAL_H_
