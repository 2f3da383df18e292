// memory_store.cc: the in-process Store (NewMemoryStore), compact enough for
// millions of transactions and fast enough to be the engine's hot path.
//
// Layout, chosen for size:
//   - kinds, states and events are interned to 32-bit ids, actors to ids of
//     their own pool (so the engine's tables indexed by state ids stay
//     small however many actors there are);
//   - transactions live in a deque (stable addresses, no per-element
//     allocation) indexed by an open-addressing table of 8-byte slots
//     (IdIndex); attributes are packed into one byte string that usually
//     fits the small-string buffer;
//   - history rows are 40-byte structs (payloads and sources, rare, are
//     kept aside).
// Nested Begin/Rollback work through an undo log of small entries; writes
// outside Begin apply immediately and are not logged.  History rows are
// append-only, so a rollback truncates them to their count at Begin rather
// than logging each one, and the id-based path (ApplyHot) logs a record's
// state only at its first change in each Begin level: replaying six events
// on one record then logs one entry instead of six.

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "crmflow/store.h"
#include "store_internal.h"

namespace crmflow {
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return std::hash<std::string_view>()(s);
  }
};

// Interns names to dense ids; id 0 is always "".
class NamePool {
 public:
  NamePool() {
    names_.emplace_back();
    ids_.emplace(std::string(), 0);
  }
  uint32_t Intern(std::string_view name) {
    if (name.empty()) return 0;
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(names_.size());
    names_.emplace_back(name);
    ids_.emplace(std::string(name), id);
    return id;
  }
  // Returns the id of `name`, or nullopt when it was never interned.
  std::optional<uint32_t> Find(std::string_view name) const {
    auto it = ids_.find(name);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  const std::string& Get(uint32_t id) const { return names_[id]; }

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>
      ids_;
};

// A fast non-cryptographic hash of transaction ids: 8 bytes at a time,
// multiply and xor-shift, then a 64-bit finalizer (murmur3's constants) so
// ids differing in their last digit spread over the whole table.
uint64_t HashId(std::string_view s) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = static_cast<uint64_t>(n) * kMul;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

// Maps transaction ids to record indexes.  Open addressing with linear
// probing, at most 7/10 full; a slot holds the record index and 32 bits of
// the id's hash, so a lookup reads the slot array and then only the record
// whose hash bits match.  Against a node-based map this saves the node
// (about 56 bytes per transaction with its bucket) and one cache miss per
// lookup.  The ids themselves live in the records.
class IdIndex {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // Returns the index whose id (given by `id_of(index)`) equals `id`, or
  // kNone.
  template <typename IdOf>
  uint32_t Find(std::string_view id, uint32_t hash, const IdOf& id_of) const {
    if (slots_.empty()) return kNone;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.index == kNone) return kNone;
      if (s.hash == hash && id_of(s.index) == id) return s.index;
    }
  }

  // Adds `index` (whose id is absent) under `hash`.
  void Insert(uint32_t hash, uint32_t index) {
    if ((size_ + 1) * 10 > slots_.size() * 7) Grow();
    Place(Slot{index, hash});
    ++size_;
  }

  // Removes `index`, present under `hash`, shifting the entries after it
  // back so that no probe sequence is broken (no tombstones).
  void Erase(uint32_t hash, uint32_t index) {
    size_t i = hash & mask_;
    while (slots_[i].index != index) i = (i + 1) & mask_;
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; slots_[j].index != kNone;
         j = (j + 1) & mask_) {
      size_t home = slots_[j].hash & mask_;
      // Entry j may fill the hole when its home is not in (hole, j].
      bool movable = hole <= j ? (home <= hole || home > j)
                               : (home <= hole && home > j);
      if (movable) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }

 private:
  struct Slot {
    uint32_t index = kNone;
    uint32_t hash = 0;
  };

  void Place(Slot s) {
    size_t i = s.hash & mask_;
    while (slots_[i].index != kNone) i = (i + 1) & mask_;
    slots_[i] = s;
  }

  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.index != kNone) Place(s);
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

uint32_t Hash32(std::string_view id) {
  return static_cast<uint32_t>(HashId(id));
}

// --- Attribute packing ----------------------------------------------------
// Each attribute: varint name id, one type byte, then the value: text as
// varint length + bytes, integers/durations/timestamps as zigzag varints,
// booleans as one byte, decimals as a scale byte + zigzag 128-bit varint.

void PutVarint(std::string* out, unsigned __int128 v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

unsigned __int128 GetVarint(const std::string& in, size_t* pos) {
  unsigned __int128 v = 0;
  int shift = 0;
  while (*pos < in.size()) {
    auto b = static_cast<unsigned char>(in[(*pos)++]);
    v |= static_cast<unsigned __int128>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) break;
    shift += 7;
  }
  return v;
}

unsigned __int128 ZigZag(__int128 v) {
  return v < 0 ? (static_cast<unsigned __int128>(-(v + 1)) << 1) | 1
               : static_cast<unsigned __int128>(v) << 1;
}

__int128 UnZigZag(unsigned __int128 v) {
  return (v & 1) ? -static_cast<__int128>(v >> 1) - 1
                 : static_cast<__int128>(v >> 1);
}

struct Record {
  std::string id;
  std::string customer_id;
  std::string parent_id;
  std::string attrs;  // packed, see above
  int64_t version = 0;
  int64_t created = 0;
  int64_t updated = 0;
  int64_t entered = 0;
  uint32_t kind = 0;
  uint32_t state = 0;
  int32_t workflow_version = 0;
  // The Begin level (MemoryStore::epoch_) whose undo log already holds
  // this record's state from before its first change in that level; fits
  // in what was padding.
  uint32_t logged = 0;
};

struct Row {
  int64_t time;
  uint32_t txn;  // index into records_
  uint32_t event;
  uint32_t from;
  uint32_t to;
  uint32_t actor;
  uint32_t payload;  // index into payloads_, 0 = none
  uint32_t source;   // index into sources_, 0 = none
  int32_t workflow_version;
  bool internal;
};
static_assert(sizeof(Row) <= 48, "history rows must stay compact");

struct Undo {
  enum Kind : uint8_t {
    kInsert,       // pop the last record
    kUpdateState,  // restore state/version/times of `index`
    kUpdateFull,   // restore `index` from saved_records_.back()
    kDeviation,    // pop the last deviation
    kImport,       // pop the last import
    kWorkflow,     // restore from saved_workflows_.back()
  };
  Kind kind;
  uint32_t index = 0;
  uint32_t state = 0;
  int64_t version = 0;
  int64_t updated = 0;
  int64_t entered = 0;
};

class MemoryStore final : public internal::StoreImpl {
 public:
  MemoryStore() {
    payloads_.emplace_back();
    sources_.emplace_back();
  }

  bool in_process() const override { return true; }

  Status Begin() override {
    if (++epoch_ == 0) {
      // Wrapped after 2^32 Begins: forget every record's level so that no
      // stale one can match a new level (records then log again once).
      for (Record& r : records_) r.logged = 0;
      epoch_ = 1;
    }
    marks_.push_back(Mark{log_.size(), rows_.size(), epoch_});
    return Status::Ok();
  }

  Status Commit() override {
    if (marks_.empty()) {
      return Status(Code::kStoreError, "memory store: commit without begin");
    }
    marks_.pop_back();
    if (marks_.empty()) {
      log_.clear();
      saved_records_.clear();
      saved_workflows_.clear();
    }
    return Status::Ok();
  }

  Status Rollback() override {
    if (marks_.empty()) {
      return Status(Code::kStoreError,
                    "memory store: rollback without begin");
    }
    Mark mark = marks_.back();
    marks_.pop_back();
    while (log_.size() > mark.log) {
      UndoOne(log_.back());
      log_.pop_back();
    }
    TruncateRows(mark.rows);
    return Status::Ok();
  }

  int depth() const override { return static_cast<int>(marks_.size()); }

  StatusOr<bool> LoadTransaction(std::string_view id,
                                 Transaction* out) override {
    const Record* rec = Find(id);
    if (rec == nullptr) return false;
    out->id = rec->id;
    out->kind = names_.Get(rec->kind);
    out->state = names_.Get(rec->state);
    out->customer_id = rec->customer_id;
    out->parent_id = rec->parent_id;
    Unpack(rec->attrs, &out->attributes);
    out->version = rec->version;
    out->workflow_version = rec->workflow_version;
    out->created_at.micros = rec->created;
    out->updated_at.micros = rec->updated;
    out->state_entered_at.micros = rec->entered;
    return true;
  }

  StatusOr<std::optional<int64_t>> LoadVersion(std::string_view id) override {
    const Record* rec = Find(id);
    if (rec == nullptr) return std::optional<int64_t>();
    return std::optional<int64_t>(rec->version);
  }

  Status InsertTransaction(const Transaction& txn) override {
    if (Find(txn.id) != nullptr) {
      return Status(Code::kAlreadyExists,
                    "transaction \"" + txn.id + "\" already exists");
    }
    Record rec;
    rec.id = txn.id;
    rec.customer_id = txn.customer_id;
    rec.parent_id = txn.parent_id;
    rec.attrs = Pack(txn.attributes);
    rec.version = txn.version;
    rec.created = txn.created_at.micros;
    rec.updated = txn.updated_at.micros;
    rec.entered = txn.state_entered_at.micros;
    rec.kind = names_.Intern(txn.kind);
    rec.state = names_.Intern(txn.state);
    rec.workflow_version = txn.workflow_version;
    records_.push_back(std::move(rec));
    uint32_t index = static_cast<uint32_t>(records_.size() - 1);
    try {
      index_.Insert(Hash32(txn.id), index);
    } catch (...) {
      records_.pop_back();
      throw;
    }
    Log(Undo{Undo::kInsert, index});
    return Status::Ok();
  }

  Status UpdateTransaction(const Transaction& txn,
                           int64_t expected_version) override {
    uint32_t index;
    CRMFLOW_RETURN_IF_ERROR(CheckVersion(txn.id, expected_version, &index));
    Record& rec = records_[index];
    if (!marks_.empty()) {
      saved_records_.push_back(rec);
      Log(Undo{Undo::kUpdateFull, index});
    }
    rec.attrs = Pack(txn.attributes);
    rec.state = names_.Intern(txn.state);
    rec.version = txn.version;
    rec.created = txn.created_at.micros;
    rec.updated = txn.updated_at.micros;
    rec.entered = txn.state_entered_at.micros;
    return Status::Ok();
  }

  StatusOr<int64_t> ApplyTransition(const Transaction& txn,
                                    int64_t expected_version,
                                    const HistoryRow& row) override {
    uint32_t index;
    CRMFLOW_RETURN_IF_ERROR(CheckVersion(txn.id, expected_version, &index));
    if (!row.source.empty() && source_set_.count(row.source) != 0) {
      return SourceExists(row.source);
    }
    Record& rec = records_[index];
    uint32_t old_state = rec.state;
    Log(Undo{Undo::kUpdateState, index, rec.state, rec.version, rec.updated,
             rec.entered});
    // The new state is usually a name already seen; compare before hashing.
    rec.state = names_.Get(old_state) == txn.state
                    ? old_state
                    : names_.Intern(txn.state);
    rec.version = txn.version;
    rec.updated = txn.updated_at.micros;
    rec.entered = txn.state_entered_at.micros;
    uint32_t from = names_.Get(old_state) == row.from_state
                        ? old_state
                        : names_.Intern(row.from_state);
    uint32_t to = names_.Get(rec.state) == row.to_state
                      ? rec.state
                      : names_.Intern(row.to_state);
    return PushRow(row, index, from, to);
  }

  bool FindHot(std::string_view id, Hot* out) override {
    Record* rec = Find(id);
    if (rec == nullptr) return false;
    out->index = last_;
    out->record = rec;
    out->kind = rec->kind;
    out->state = rec->state;
    out->version = rec->version;
    return true;
  }

  void ReserveHistory(size_t n) override {
    if (rows_.capacity() - rows_.size() < n) rows_.reserve(rows_.size() + n);
  }

  uint32_t InternName(std::string_view name) override {
    return names_.Intern(name);
  }

  int64_t ApplyHot(const Hot& hot, const HotTransition& t) override {
    // Everything that may throw comes first, so a failure changes nothing
    // a reader can see (interned names and capacity are invisible).
    uint32_t actor = t.actor.empty() ? 0 : actor_names_.Intern(t.actor);
    Record& rec = hot.record != nullptr ? *static_cast<Record*>(hot.record)
                                        : records_[hot.index];
    // The innermost level's number, not epoch_: after a nested Commit or
    // Rollback the record must log again for the enclosing level.
    const uint32_t level = marks_.empty() ? 0 : marks_.back().epoch;
    const bool log = level != 0 && rec.logged != level;
    if (log) Reserve(&log_, 1);
    Reserve(&rows_, 1);
    uint32_t payload = 0;
    if (!t.payload.empty()) {
      payload = static_cast<uint32_t>(payloads_.size());
      payloads_.emplace_back(t.payload);
    }
    if (log) {
      log_.push_back(Undo{Undo::kUpdateState, hot.index, rec.state,
                          rec.version, rec.updated, rec.entered});
      rec.logged = level;
    }
    Row r;
    r.time = t.time.micros;
    r.txn = hot.index;
    r.event = t.event;
    r.from = rec.state;
    r.to = t.to_state;
    r.actor = actor;
    r.payload = payload;
    r.source = 0;
    r.workflow_version = t.workflow_version;
    r.internal = t.internal;
    rec.state = t.to_state;
    rec.version = hot.version + 1;
    rec.updated = t.time.micros;
    if (t.external) rec.entered = t.time.micros;
    rows_.push_back(r);
    return static_cast<int64_t>(rows_.size());
  }

  StatusOr<int64_t> AppendHistory(const HistoryRow& row) override {
    const Record* rec = Find(row.transaction_id);
    if (rec == nullptr) {
      return Status(Code::kNotFound, "history row for unknown transaction \"" +
                                         row.transaction_id + "\"");
    }
    if (!row.source.empty() && source_set_.count(row.source) != 0) {
      return SourceExists(row.source);
    }
    uint32_t index = last_;  // set by Find
    return PushRow(row, index, names_.Intern(row.from_state),
                   names_.Intern(row.to_state));
  }

  StatusOr<bool> HasSource(std::string_view source) override {
    return source_set_.find(source) != source_set_.end();
  }

  Status AppendDeviation(const Deviation& deviation) override {
    if (!deviation.source.empty()) {
      if (source_set_.count(deviation.source) != 0) {
        return SourceExists(deviation.source);
      }
      source_set_.insert(deviation.source);
    }
    deviations_.push_back(deviation);
    deviations_.back().id = static_cast<int64_t>(deviations_.size());
    Log(Undo{Undo::kDeviation});
    return Status::Ok();
  }

  StatusOr<int64_t> AppendImport(const ImportRecord& record) override {
    imports_.push_back(record);
    imports_.back().id = static_cast<int64_t>(imports_.size());
    Log(Undo{Undo::kImport});
    return imports_.back().id;
  }

  StatusOr<std::vector<HistoryRow>> QueryHistory(
      const HistoryQuery& query) override {
    std::optional<uint32_t> txn, kind;
    if (!query.transaction_id.empty()) {
      uint32_t i = FindIndex(query.transaction_id);
      if (i == IdIndex::kNone) return std::vector<HistoryRow>();
      txn = i;
    }
    if (!query.kind.empty()) {
      kind = names_.Find(query.kind);
      if (!kind) return std::vector<HistoryRow>();
    }
    std::vector<size_t> picked;
    for (size_t i = 0; i < rows_.size(); ++i) {
      const Row& r = rows_[i];
      if (txn && r.txn != *txn) continue;
      if (kind && records_[r.txn].kind != *kind) continue;
      if (query.from && r.time < query.from->micros) continue;
      if (query.to && r.time >= query.to->micros) continue;
      picked.push_back(i);
    }
    if (query.from || query.to) {
      // Seq order is the index order, so a stable sort gives (time, seq).
      std::stable_sort(picked.begin(), picked.end(), [&](size_t a, size_t b) {
        return rows_[a].time < rows_[b].time;
      });
    }
    std::vector<HistoryRow> out;
    out.reserve(picked.size());
    for (size_t i : picked) out.push_back(ToHistoryRow(i));
    return out;
  }

  StatusOr<std::vector<Transaction>> QueryTransactions(
      std::string_view kind, std::string_view state) override {
    std::vector<const Record*> picked;
    std::optional<uint32_t> kind_id, state_id;
    if (!kind.empty()) {
      kind_id = names_.Find(kind);
      if (!kind_id) return std::vector<Transaction>();
    }
    if (!state.empty()) {
      state_id = names_.Find(state);
      if (!state_id) return std::vector<Transaction>();
    }
    for (const Record& r : records_) {
      if (kind_id && r.kind != *kind_id) continue;
      if (state_id && r.state != *state_id) continue;
      picked.push_back(&r);
    }
    std::sort(picked.begin(), picked.end(),
              [](const Record* a, const Record* b) { return a->id < b->id; });
    std::vector<Transaction> out(picked.size());
    for (size_t i = 0; i < picked.size(); ++i) {
      (void)LoadTransaction(picked[i]->id, &out[i]);
    }
    return out;
  }

  StatusOr<std::vector<Deviation>> QueryDeviations(
      std::string_view kind) override {
    std::vector<Deviation> out;
    for (const Deviation& d : deviations_) {
      if (kind.empty() || d.kind == kind) out.push_back(d);
    }
    return out;
  }

  StatusOr<std::vector<ImportRecord>> QueryImports() override {
    return imports_;
  }

  Status SaveWorkflow(const StoredWorkflow& wf) override {
    auto key = std::make_pair(wf.name, wf.version);
    auto it = workflows_.find(key);
    if (!marks_.empty()) {
      std::optional<std::string> old;
      if (it != workflows_.end()) old = it->second;
      saved_workflows_.emplace_back(key, std::move(old));
      Log(Undo{Undo::kWorkflow});
    }
    workflows_[key] = wf.definition;
    return Status::Ok();
  }

  StatusOr<std::vector<StoredWorkflow>> LoadWorkflows() override {
    std::vector<StoredWorkflow> out;
    for (const auto& [key, def] : workflows_) {
      out.push_back(StoredWorkflow{key.first, key.second, def});
    }
    return out;
  }

 private:
  // Finds a record, remembering the last hit: the engine loads and then
  // writes the same transaction, so the second lookup skips the hash.
  Record* Find(std::string_view id) {
    // By pointer: indexing the deque costs more than the compare.
    if (last_rec_ != nullptr && last_rec_->id == id) return last_rec_;
    uint32_t i = FindIndex(id);
    if (i == IdIndex::kNone) return nullptr;
    last_ = i;
    last_rec_ = &records_[i];
    return last_rec_;
  }

  uint32_t FindIndex(std::string_view id) const {
    return index_.Find(id, Hash32(id), [this](uint32_t i) -> std::string_view {
      return records_[i].id;
    });
  }

  Status CheckVersion(const std::string& id, int64_t expected,
                      uint32_t* index) {
    Record* rec = Find(id);
    if (rec == nullptr) {
      return Status(Code::kNotFound, "transaction \"" + id + "\" not found");
    }
    if (rec->version != expected) {
      return Status(Code::kConcurrentUpdate,
                    "transaction \"" + id + "\": stale version " +
                        std::to_string(expected) + " (stored version " +
                        std::to_string(rec->version) + ")");
    }
    *index = last_;
    return Status::Ok();
  }

  // Makes room for `n` more elements, growing geometrically as push_back
  // would, so that the pushes after it cannot throw.
  template <typename T>
  static void Reserve(std::vector<T>* v, size_t n) {
    if (v->capacity() - v->size() >= n) return;
    v->reserve(std::max(v->size() + n, v->capacity() * 2));
  }

  static Status SourceExists(const std::string& source) {
    return Status(Code::kAlreadyExists,
                  "source \"" + source + "\" already recorded");
  }

  void Log(Undo u) {
    if (!marks_.empty()) log_.push_back(u);
  }

  int64_t PushRow(const HistoryRow& row, uint32_t index, uint32_t from,
                  uint32_t to) {
    Row r;
    r.time = row.time.micros;
    r.txn = index;
    r.event = names_.Intern(row.event);
    r.from = from;
    r.to = to;
    r.actor = actor_names_.Intern(row.actor);
    r.payload = 0;
    if (!row.payload.empty()) {
      r.payload = static_cast<uint32_t>(payloads_.size());
      payloads_.push_back(row.payload);
    }
    r.source = 0;
    if (!row.source.empty()) {
      r.source = static_cast<uint32_t>(sources_.size());
      sources_.push_back(row.source);
      source_set_.insert(row.source);
    }
    r.workflow_version = row.workflow_version;
    r.internal = row.internal;
    rows_.push_back(r);
    return static_cast<int64_t>(rows_.size());
  }

  HistoryRow ToHistoryRow(size_t i) const {
    const Row& r = rows_[i];
    HistoryRow h;
    h.seq = static_cast<int64_t>(i + 1);
    h.transaction_id = records_[r.txn].id;
    h.event = names_.Get(r.event);
    h.from_state = names_.Get(r.from);
    h.to_state = names_.Get(r.to);
    h.time.micros = r.time;
    h.actor = actor_names_.Get(r.actor);
    h.payload = payloads_[r.payload];
    h.internal = r.internal;
    h.workflow_version = r.workflow_version;
    h.source = sources_[r.source];
    return h;
  }

  // Drops the rows after the first `n`, with their payloads and sources.
  void TruncateRows(size_t n) {
    while (rows_.size() > n) {
      const Row& r = rows_.back();
      if (r.source != 0) {
        source_set_.erase(sources_.back());
        sources_.pop_back();
      }
      if (r.payload != 0) payloads_.pop_back();
      rows_.pop_back();
    }
  }

  void UndoOne(const Undo& u) {
    switch (u.kind) {
      case Undo::kInsert:
        index_.Erase(Hash32(records_.back().id),
                     static_cast<uint32_t>(records_.size() - 1));
        records_.pop_back();
        last_ = UINT32_MAX;
        last_rec_ = nullptr;
        break;
      case Undo::kUpdateState: {
        Record& rec = records_[u.index];
        rec.state = u.state;
        rec.version = u.version;
        rec.updated = u.updated;
        rec.entered = u.entered;
        break;
      }
      case Undo::kUpdateFull: {
        // The id stays: the index's key points at it.
        Record& rec = records_[u.index];
        Record& old = saved_records_.back();
        rec.attrs = std::move(old.attrs);
        rec.state = old.state;
        rec.version = old.version;
        rec.created = old.created;
        rec.updated = old.updated;
        rec.entered = old.entered;
        saved_records_.pop_back();
        break;
      }
      case Undo::kDeviation:
        if (!deviations_.back().source.empty()) {
          source_set_.erase(deviations_.back().source);
        }
        deviations_.pop_back();
        break;
      case Undo::kImport:
        imports_.pop_back();
        break;
      case Undo::kWorkflow: {
        auto& [key, old] = saved_workflows_.back();
        if (old) {
          workflows_[key] = std::move(*old);
        } else {
          workflows_.erase(key);
        }
        saved_workflows_.pop_back();
        break;
      }
    }
  }

  std::string Pack(const Attributes& attrs) {
    std::string out;
    for (const auto& [name, v] : attrs) {
      PutVarint(&out, attr_names_.Intern(name));
      out.push_back(static_cast<char>(v.type()));
      switch (v.type()) {
        case ValueType::kNull:
          break;
        case ValueType::kText:
          PutVarint(&out, v.text().size());
          out += v.text();
          break;
        case ValueType::kInteger:
          PutVarint(&out, ZigZag(v.integer()));
          break;
        case ValueType::kDecimal:
          out.push_back(static_cast<char>(v.decimal().scale()));
          PutVarint(&out, ZigZag(v.decimal().units()));
          break;
        case ValueType::kTimestamp:
          PutVarint(&out, ZigZag(v.timestamp().micros));
          break;
        case ValueType::kDuration:
          PutVarint(&out, ZigZag(v.duration().micros));
          break;
        case ValueType::kBoolean:
          out.push_back(v.boolean() ? 1 : 0);
          break;
      }
    }
    return out;
  }

  void Unpack(const std::string& in, Attributes* out) const {
    if (in.empty()) {
      out->clear();
      return;
    }
    size_t pos = 0;
    size_t n = 0;
    while (pos < in.size()) {
      auto name = static_cast<uint32_t>(GetVarint(in, &pos));
      auto type = static_cast<ValueType>(in[pos++]);
      Value v;
      switch (type) {
        case ValueType::kNull:
          break;
        case ValueType::kText: {
          auto len = static_cast<size_t>(GetVarint(in, &pos));
          v = Value::Text(in.substr(pos, len));
          pos += len;
          break;
        }
        case ValueType::kInteger:
          v = Value::Integer(static_cast<int64_t>(UnZigZag(GetVarint(in, &pos))));
          break;
        case ValueType::kDecimal: {
          int scale = in[pos++];
          v = Value::Dec(Decimal::FromUnits(UnZigZag(GetVarint(in, &pos)),
                                            scale));
          break;
        }
        case ValueType::kTimestamp:
          v = Value::Time(
              Timestamp{static_cast<int64_t>(UnZigZag(GetVarint(in, &pos)))});
          break;
        case ValueType::kDuration:
          v = Value::Span(
              Duration{static_cast<int64_t>(UnZigZag(GetVarint(in, &pos)))});
          break;
        case ValueType::kBoolean:
          v = Value::Bool(in[pos++] != 0);
          break;
      }
      // Reuse the caller's entries (and their string buffers) when present.
      if (n < out->size()) {
        (*out)[n].first = attr_names_.Get(name);
        (*out)[n].second = std::move(v);
      } else {
        out->emplace_back(attr_names_.Get(name), std::move(v));
      }
      ++n;
    }
    out->resize(n);
  }

  NamePool names_;        // kinds, states, events
  NamePool actor_names_;  // actors
  NamePool attr_names_;   // attribute names
  std::deque<Record> records_;
  IdIndex index_;
  uint32_t last_ = UINT32_MAX;
  Record* last_rec_ = nullptr;  // &records_[last_]
  std::vector<Row> rows_;
  std::vector<std::string> payloads_;
  std::vector<std::string> sources_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> source_set_;
  std::vector<Deviation> deviations_;
  std::vector<ImportRecord> imports_;
  std::map<std::pair<std::string, int>, std::string> workflows_;

  // One per open Begin: the log and row counts to roll back to, and the
  // level's number (see Record::logged).
  struct Mark {
    size_t log;
    size_t rows;
    uint32_t epoch;
  };
  std::vector<Mark> marks_;
  uint32_t epoch_ = 0;  // the last level number issued; only grows
  std::vector<Undo> log_;
  std::vector<Record> saved_records_;
  std::vector<std::pair<std::pair<std::string, int>,
                        std::optional<std::string>>>
      saved_workflows_;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore() {
  return std::make_unique<MemoryStore>();
}

}  // namespace crmflow
