// numbering.cc: number formats and the counters behind them (see
// numbering.h).
//
// With SQLite the spec and the counters are rows read and written through
// the store's connection inside the caller's write transaction, so another
// process's create waits for BEGIN IMMEDIATE and then sees the committed
// counter.  With the memory store they are maps, and the last increment is
// remembered so that a failed create can give its number back.

#include "crmflow/numbering.h"

#include <sqlite3.h>

#include <cstdio>

#include "sqlite_handle.h"
#include "sql_statement.h"

namespace crmflow {
namespace {

// Built in steps: "\"" + a temporary trips a false -Wrestrict in GCC 12
// (as in calendar.cc).
std::string Quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

constexpr const char* kSchemaSql =
    "CREATE TABLE IF NOT EXISTS numbering ("
    " kind TEXT PRIMARY KEY,"
    " format TEXT NOT NULL,"
    " yearly_reset INTEGER NOT NULL,"
    " zone TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS counters ("
    " kind TEXT NOT NULL,"
    " period INTEGER NOT NULL,"
    " last INTEGER NOT NULL,"
    " PRIMARY KEY (kind, period));";

// A statement whose errors name this module.
class Stmt : public SqlStatement {
 public:
  Stmt(sqlite3* db, const char* sql)
      : SqlStatement(db, sql, "numbering") {}
};

// Civil date of a day count since 1970-01-01 (proleptic Gregorian).
void CivilFromDays(int64_t z, int* y, int* m, int* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *y = static_cast<int>(yoe + era * 400 + (*m <= 2 ? 1 : 0));
}

std::string Pad(int64_t v, int width) {
  std::string digits = std::to_string(v);
  if (static_cast<int>(digits.size()) < width) {
    digits.insert(0, static_cast<size_t>(width) - digits.size(), '0');
  }
  return digits;
}

}  // namespace

StatusOr<NumberFormat> NumberFormat::Parse(std::string_view text) {
  NumberFormat f;
  f.text_ = std::string(text);
  auto fail = [&](size_t pos, const std::string& what) {
    return Status(Code::kInvalidArgument, "number format " + Quote(text) +
                                              ": column " +
                                              std::to_string(pos + 1) + ": " +
                                              what);
  };
  std::string literal;
  int numbers = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literal += '}';
        ++i;
        continue;
      }
      return fail(i, "unmatched \"}\" (write \"}}\" for a brace)");
    }
    if (c != '{') {
      literal += c;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      literal += '{';
      ++i;
      continue;
    }
    size_t close = text.find('}', i);
    if (close == std::string_view::npos) {
      return fail(i, "unmatched \"{\" (write \"{{\" for a brace)");
    }
    std::string_view field = text.substr(i + 1, close - i - 1);
    Part part;
    if (field == "n") {
      part.kind = Part::kNumber;
    } else if (field.substr(0, 2) == "n:") {
      std::string_view w = field.substr(2);
      int width = 0;
      bool digits = !w.empty() && w.size() <= 2;
      for (char d : w) {
        if (d < '0' || d > '9') digits = false;
        width = width * 10 + (d - '0');
      }
      if (!digits || width < 1 || width > 18) {
        return fail(i, "bad width in {" + std::string(field) +
                           "} (expected {n:0W} with W from 1 to 18)");
      }
      part.kind = Part::kNumber;
      part.width = width;
    } else if (field == "year") {
      part.kind = Part::kYear;
    } else if (field == "yy") {
      part.kind = Part::kYear2;
    } else if (field == "month") {
      part.kind = Part::kMonth;
    } else if (field == "day") {
      part.kind = Part::kDay;
    } else {
      return fail(i, "unknown field {" + std::string(field) +
                         "} (expected n, n:0W, year, yy, month or day)");
    }
    if (part.kind == Part::kNumber && ++numbers > 1) {
      return fail(i, "second {n} field (expected exactly one)");
    }
    if (!literal.empty()) {
      f.parts_.push_back(Part{Part::kLiteral, std::move(literal), 0});
      literal.clear();
    }
    f.parts_.push_back(std::move(part));
    i = close;
  }
  if (!literal.empty()) f.parts_.push_back(Part{Part::kLiteral, literal, 0});
  if (numbers == 0) return fail(text.size(), "no {n} field");
  return f;
}

std::string NumberFormat::Format(int64_t n, int year, int month,
                                 int day) const {
  std::string out;
  for (const Part& p : parts_) {
    switch (p.kind) {
      case Part::kLiteral: out += p.literal; break;
      case Part::kNumber: out += Pad(n, p.width); break;
      case Part::kYear: out += Pad(year, 4); break;
      case Part::kYear2: out += Pad(year % 100, 2); break;
      case Part::kMonth: out += Pad(month, 2); break;
      case Part::kDay: out += Pad(day, 2); break;
    }
  }
  return out;
}

struct Numbering::Impl {
  Store* store;
  sqlite3* db;  // nullptr for the memory store
  // The memory store's rows.
  std::map<std::string, NumberingSpec, std::less<>> specs;
  std::map<std::pair<std::string, int64_t>, int64_t> counters;
  // The memory store's last increment, for Discard.
  std::optional<std::pair<std::pair<std::string, int64_t>, int64_t>> pending;
  // Parsed formats and zones by text.
  std::map<std::string, NumberFormat, std::less<>> formats;
  std::map<std::string, TimeZone, std::less<>> zones;

  Status EnsureSchema() {
    if (db == nullptr) return Status::Ok();
    char* err = nullptr;
    if (sqlite3_exec(db, kSchemaSql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      return Status(Code::kStoreError,
                    "numbering: create tables failed (" + msg + ")");
    }
    return Status::Ok();
  }

  StatusOr<const NumberFormat*> FormatOf(const std::string& text) {
    auto it = formats.find(text);
    if (it == formats.end()) {
      auto parsed = NumberFormat::Parse(text);
      if (!parsed.ok()) return parsed.status();
      it = formats.emplace(text, std::move(*parsed)).first;
    }
    return &it->second;
  }

  StatusOr<const TimeZone*> ZoneOf(const std::string& name) {
    auto it = zones.find(name);
    if (it == zones.end()) {
      auto zone = TimeZone::Load(name);
      if (!zone.ok()) return zone.status();
      it = zones.emplace(name, std::move(*zone)).first;
    }
    return &it->second;
  }

  // Reads the counter inside the open transaction.
  StatusOr<int64_t> Read(std::string_view kind, int64_t period) {
    if (db == nullptr) {
      auto it = counters.find({std::string(kind), period});
      return it == counters.end() ? 0 : it->second;
    }
    Stmt s(db, "SELECT last FROM counters WHERE kind = ?1 AND period = ?2");
    if (!s.ok()) return s.Error("read counter");
    s.Bind(1, kind);
    s.Bind(2, period);
    int rc = s.Step();
    if (rc == SQLITE_ROW) return s.ColumnInt(0);
    if (rc == SQLITE_DONE) return 0;
    return s.Error("read counter");
  }

  Status Write(std::string_view kind, int64_t period, int64_t last) {
    if (db == nullptr) {
      counters[{std::string(kind), period}] = last;
      return Status::Ok();
    }
    Stmt s(db,
           "INSERT INTO counters (kind, period, last) VALUES (?1, ?2, ?3) "
           "ON CONFLICT (kind, period) DO UPDATE SET last = excluded.last");
    if (!s.ok()) return s.Error("write counter");
    s.Bind(1, kind);
    s.Bind(2, period);
    s.Bind(3, last);
    if (s.Step() != SQLITE_DONE) return s.Error("write counter");
    return Status::Ok();
  }
};

Numbering::Numbering(Store* store) : impl_(std::make_unique<Impl>()) {
  impl_->store = store;
  impl_->db = SqliteHandle(*store);
}

Numbering::~Numbering() = default;

Status Numbering::Define(const NumberingSpec& spec) {
  if (spec.kind.empty()) {
    return Status(Code::kInvalidArgument, "numbering: empty kind");
  }
  auto format = impl_->FormatOf(spec.format);
  if (!format.ok()) return format.status();
  auto zone = impl_->ZoneOf(spec.zone);
  if (!zone.ok()) return zone.status();
  if (impl_->db == nullptr) {
    impl_->specs[spec.kind] = spec;
    return Status::Ok();
  }
  CRMFLOW_RETURN_IF_ERROR(impl_->store->Begin());
  Status st = impl_->EnsureSchema();
  if (st.ok()) {
    Stmt s(impl_->db,
           "INSERT OR REPLACE INTO numbering (kind, format, yearly_reset, "
           "zone) VALUES (?1, ?2, ?3, ?4)");
    if (!s.ok()) {
      st = s.Error("save format");
    } else {
      s.Bind(1, spec.kind);
      s.Bind(2, spec.format);
      s.Bind(3, int64_t{spec.yearly_reset ? 1 : 0});
      s.Bind(4, spec.zone);
      if (s.Step() != SQLITE_DONE) st = s.Error("save format");
    }
  }
  if (!st.ok()) {
    (void)impl_->store->Rollback();
    return st;
  }
  return impl_->store->Commit();
}

StatusOr<std::optional<NumberingSpec>> Numbering::Find(
    std::string_view kind) {
  if (impl_->db == nullptr) {
    auto it = impl_->specs.find(kind);
    if (it == impl_->specs.end()) return std::optional<NumberingSpec>();
    return std::optional<NumberingSpec>(it->second);
  }
  // The table may not exist yet in a file no one numbered.
  Stmt probe(impl_->db,
             "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
             "name = 'numbering'");
  if (!probe.ok()) return probe.Error("read format");
  int rc = probe.Step();
  if (rc == SQLITE_DONE) return std::optional<NumberingSpec>();
  if (rc != SQLITE_ROW) return probe.Error("read format");
  Stmt s(impl_->db,
         "SELECT format, yearly_reset, zone FROM numbering WHERE kind = ?1");
  if (!s.ok()) return s.Error("read format");
  s.Bind(1, kind);
  rc = s.Step();
  if (rc == SQLITE_DONE) return std::optional<NumberingSpec>();
  if (rc != SQLITE_ROW) return s.Error("read format");
  NumberingSpec spec;
  spec.kind = std::string(kind);
  spec.format = s.ColumnText(0);
  spec.yearly_reset = s.ColumnInt(1) != 0;
  spec.zone = s.ColumnText(2);
  return std::optional<NumberingSpec>(std::move(spec));
}

Status Numbering::SetCounter(std::string_view kind, int64_t last,
                             int64_t period) {
  if (last < 0) {
    return Status(Code::kInvalidArgument,
                  "numbering of kind " + Quote(kind) + ": negative counter " +
                      std::to_string(last) + " (expected 0 or more)");
  }
  if (impl_->db == nullptr) return impl_->Write(kind, period, last);
  CRMFLOW_RETURN_IF_ERROR(impl_->store->Begin());
  Status st = impl_->EnsureSchema();
  if (st.ok()) st = impl_->Write(kind, period, last);
  if (!st.ok()) {
    (void)impl_->store->Rollback();
    return st;
  }
  return impl_->store->Commit();
}

StatusOr<int64_t> Numbering::Counter(std::string_view kind, int64_t period) {
  if (impl_->db == nullptr) return impl_->Read(kind, period);
  CRMFLOW_RETURN_IF_ERROR(impl_->store->Begin());
  Status st = impl_->EnsureSchema();
  // A StatusOr is never made from an OK status (status.h asserts it).
  StatusOr<int64_t> v = st.ok() ? impl_->Read(kind, period)
                                : StatusOr<int64_t>(st);
  st = impl_->store->Commit();
  if (!v.ok()) return v.status();
  if (!st.ok()) return st;
  return v;
}

StatusOr<std::optional<std::string>> Numbering::Next(
    std::string_view kind, Timestamp time,
    const std::function<StatusOr<bool>(const std::string&)>& taken) {
  impl_->pending.reset();
  auto spec = Find(kind);
  if (!spec.ok()) return spec.status();
  if (!spec->has_value()) return std::optional<std::string>();
  const NumberingSpec& s = **spec;
  auto format = impl_->FormatOf(s.format);
  if (!format.ok()) return format.status();
  auto zone = impl_->ZoneOf(s.zone);
  if (!zone.ok()) return zone.status();

  // The creation date in the format's zone decides the date fields and,
  // with a yearly reset, the counter.
  int64_t local = time.micros + int64_t{(*zone)->OffsetAt(time)} * 1000000;
  int64_t days = local >= 0 ? local / 86400000000LL
                            : -((-local + 86400000000LL - 1) / 86400000000LL);
  int year, month, day;
  CivilFromDays(days, &year, &month, &day);
  int64_t period = s.yearly_reset ? year : 0;

  auto last = impl_->Read(kind, period);
  if (!last.ok()) return last.status();
  int64_t n = *last;
  std::string id;
  // Skip numbers whose id exists already (imported before the counter was
  // seeded); bounded so a wrong seed fails instead of spinning.
  for (int tries = 0;; ++tries) {
    ++n;
    id = (*format)->Format(n, year, month, day);
    auto t = taken(id);
    if (!t.ok()) return t.status();
    if (!*t) break;
    if (tries >= 1000) {
      return Status(Code::kAlreadyExists,
                    "numbering of kind " + Quote(kind) +
                        ": 1000 numbers after " + std::to_string(*last) +
                        " already taken (seed the counter with set_counter)");
    }
  }
  CRMFLOW_RETURN_IF_ERROR(impl_->Write(kind, period, n));
  if (impl_->db == nullptr) {
    impl_->pending.emplace(std::make_pair(std::string(kind), period), *last);
  }
  return std::optional<std::string>(std::move(id));
}

void Numbering::Keep() { impl_->pending.reset(); }

void Numbering::Discard() {
  if (!impl_->pending) return;
  impl_->counters[impl_->pending->first] = impl_->pending->second;
  impl_->pending.reset();
}

}  // namespace crmflow
