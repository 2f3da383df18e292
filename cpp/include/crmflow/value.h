// value.h: typed attribute values shared by the engine, the store and the
// readers.
//
// A transaction's attributes are named Values.  A Value is null or one of:
// text (UTF-8), 64-bit integer, exact Decimal (money), Timestamp (UTC
// instant with microseconds), Duration (signed microseconds) or boolean.
// Money is never a binary float: Decimal keeps an integer of units and a
// scale, so 0.10 + 0.20 == 0.30 exactly.
//
// Every value has one canonical text form, used by the store (plain TEXT
// columns any SQL tool can read) and by the binding:
//   integer   "42"                       decimal  "12.30" (scale kept)
//   timestamp "2026-01-15T21:30:45.000000Z" (always UTC, fixed width, so
//             text order equals time order)
//   duration  "5400000000" (microseconds)  boolean  "true" / "false"

#ifndef CRMFLOW_VALUE_H_
#define CRMFLOW_VALUE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "crmflow/status.h"

namespace crmflow {

// An exact decimal number: units_ * 10^-scale_, scale 0..18, |units| below
// 10^36.  Arithmetic that would overflow fails instead of wrapping.
class Decimal {
 public:
  Decimal() = default;
  // Returns units * 10^-scale.  Requires 0 <= scale <= 18.
  static Decimal FromUnits(__int128 units, int scale);
  static Decimal FromInteger(int64_t v) { return FromUnits(v, 0); }

  // Parses "-12.30", "+5", "0.001", "1e3" is refused.  Fails with
  // kParseError naming the text.
  static StatusOr<Decimal> Parse(std::string_view text);

  // Returns the canonical text with the scale kept ("12.30", "-0.05").
  std::string ToString() const;

  __int128 units() const { return units_; }
  int scale() const { return scale_; }

  // Exact arithmetic; the result scale is the larger scale (add, subtract)
  // or the sum of scales (multiply).  Fails with kInvalidArgument on
  // overflow.
  StatusOr<Decimal> Add(const Decimal& other) const;
  StatusOr<Decimal> Subtract(const Decimal& other) const;
  StatusOr<Decimal> Multiply(const Decimal& other) const;

  // Returns this rounded to `places` decimal places, half away from zero
  // (2.675 -> 2.68, -2.675 -> -2.68).
  Decimal Round(int places) const;

  // Numeric comparison regardless of scale: 0.3 == 0.30.
  int Compare(const Decimal& other) const;
  bool operator==(const Decimal& o) const { return Compare(o) == 0; }
  bool operator<(const Decimal& o) const { return Compare(o) < 0; }

 private:
  __int128 units_ = 0;
  int scale_ = 0;
};

// A UTC instant in microseconds since 1970-01-01T00:00:00Z.  The supported
// range is years 0001 to 9999.
struct Timestamp {
  // The first and the last supported instant: 0001-01-01T00:00:00Z and
  // 9999-12-31T23:59:59.999999Z.
  static constexpr int64_t kMinMicros = -62135596800LL * 1000000;
  static constexpr int64_t kMaxMicros = 253402300800LL * 1000000 - 1;

  int64_t micros = 0;

  // Returns true when the instant lies in years 1 to 9999 UTC, the range
  // ToIso writes as four-digit years and ParseIso reads back.  Readers of
  // external data refuse instants outside it (an offset can carry a time
  // written in year 1 or 9999 across the boundary).
  bool InRange() const {
    return micros >= kMinMicros && micros <= kMaxMicros;
  }

  bool operator==(const Timestamp& o) const { return micros == o.micros; }
  bool operator<(const Timestamp& o) const { return micros < o.micros; }

  // Returns "YYYY-MM-DDTHH:MM:SS.ffffffZ".
  std::string ToIso() const;
  // Parses ISO 8601 with a 'Z' or +hh:mm / -hh:mm offset, optional
  // fraction (up to 6 digits) and 'T' or ' ' between date and time.  A
  // value without offset is refused with kParseError (use
  // ParseTimestamp in timestamp.h to interpret naive values in a zone).
  static StatusOr<Timestamp> ParseIso(std::string_view text);
  // Returns the instant of the given UTC civil time; fails outside
  // 0001..9999 or for an impossible date.
  static StatusOr<Timestamp> FromCivilUtc(int year, int month, int day,
                                          int hour, int minute, int second,
                                          int micros);
};

// A signed span of time in microseconds.
struct Duration {
  int64_t micros = 0;
  bool operator==(const Duration& o) const { return micros == o.micros; }
};

enum class ValueType {
  kNull = 0,
  kText,
  kInteger,
  kDecimal,
  kTimestamp,
  kDuration,
  kBoolean,
};

// Returns "null", "text", "integer", "decimal", "timestamp", "duration" or
// "boolean".
const char* ValueTypeName(ValueType type);
// Parses one of the names above; fails with kInvalidArgument.
StatusOr<ValueType> ParseValueType(std::string_view name);

class Value {
 public:
  Value() = default;  // null
  static Value Text(std::string v) { return Value(std::move(v)); }
  static Value Integer(int64_t v) { return Value(v); }
  static Value Dec(Decimal v) { return Value(v); }
  static Value Time(Timestamp v) { return Value(v); }
  static Value Span(Duration v) { return Value(v); }
  static Value Bool(bool v) { return Value(v); }

  ValueType type() const { return static_cast<ValueType>(data_.index()); }
  bool is_null() const { return type() == ValueType::kNull; }

  // Accessors; calling the wrong one is a bug and asserts.
  const std::string& text() const { return std::get<std::string>(data_); }
  int64_t integer() const { return std::get<int64_t>(data_); }
  const Decimal& decimal() const { return std::get<Decimal>(data_); }
  Timestamp timestamp() const { return std::get<Timestamp>(data_); }
  Duration duration() const { return std::get<Duration>(data_); }
  bool boolean() const { return std::get<bool>(data_); }

  // Returns the canonical text (see the file comment); "" for null.
  std::string ToText() const;
  // Parses canonical text of the given type; kNull ignores `text`.
  static StatusOr<Value> FromText(ValueType type, std::string_view text);

  bool operator==(const Value& o) const;

 private:
  template <typename T>
  explicit Value(T v) : data_(std::move(v)) {}
  // The index order matches ValueType.
  std::variant<std::monostate, std::string, int64_t, Decimal, Timestamp,
               Duration, bool>
      data_;
};

// Named values in insertion order; names are unique.
using Attributes = std::vector<std::pair<std::string, Value>>;

// Returns a pointer to the value named `name`, or nullptr.
const Value* FindAttribute(const Attributes& attrs, std::string_view name);
// Sets `name` to `value`, replacing an existing entry or appending.
void SetAttribute(Attributes& attrs, std::string_view name, Value value);

// Returns true when `text` is valid UTF-8 (no overlongs, no surrogates).
bool IsValidUtf8(std::string_view text);
// Returns the byte offset of the first invalid UTF-8 sequence in `text`, or
// std::string_view::npos when it is all valid.
size_t FirstInvalidUtf8(std::string_view text);

}  // namespace crmflow

#endif  // CRMFLOW_VALUE_H_
