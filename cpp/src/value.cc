// value.cc: exact decimals, UTC timestamps and the canonical text forms of
// attribute values (see value.h).
//
// Dates use the proleptic Gregorian calendar through Howard Hinnant's
// days-from-civil arithmetic, so no time-zone database and no libc time
// functions (whose range and thread safety vary) are involved.

#include "crmflow/value.h"

#include <charconv>
#include <cstdlib>
#include <string>

namespace crmflow {
namespace {

constexpr int kMaxScale = 18;
constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;

// 10^n for n in 0..38 as __int128; 10^38 still fits (max is ~1.7e38).
__int128 Pow10(int n) {
  __int128 r = 1;
  for (int i = 0; i < n; ++i) r *= 10;
  return r;
}

// |units| must stay below 10^36 (see value.h).
const __int128 kUnitLimit = Pow10(36);

bool InRange(__int128 v) { return v < kUnitLimit && v > -kUnitLimit; }

std::string Int128ToString(__int128 v) {
  if (v == 0) return "0";
  bool negative = v < 0;
  // Work on the negative side so the most negative value cannot overflow.
  char buf[48];
  int pos = sizeof(buf);
  __int128 n = negative ? v : -v;
  while (n != 0) {
    int digit = static_cast<int>(-(n % 10));
    buf[--pos] = static_cast<char>('0' + digit);
    n /= 10;
  }
  if (negative) buf[--pos] = '-';
  return std::string(buf + pos, sizeof(buf) - pos);
}

// Scales `units` up by 10^places; false on overflow.
bool ScaleUp(__int128 units, int places, __int128* out) {
  __int128 r = units;
  for (int i = 0; i < places; ++i) {
    if (__builtin_mul_overflow(r, static_cast<__int128>(10), &r)) {
      return false;
    }
  }
  *out = r;
  return true;
}

// Howard Hinnant's days_from_civil: days since 1970-01-01.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// The inverse of DaysFromCivil.
void CivilFromDays(int64_t z, int64_t* year, unsigned* month,
                   unsigned* day) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *day = doy - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = y + (*month <= 2);
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at text[*pos]; false when they are not digits.
bool ReadDigits(std::string_view text, size_t* pos, int n, int* out) {
  if (*pos + n > text.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = text[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

bool Expect(std::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

void AppendPadded(std::string* out, int64_t v, int width) {
  char buf[24];
  int pos = sizeof(buf);
  for (int i = 0; i < width || v != 0; ++i) {
    buf[--pos] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out->append(buf + pos, sizeof(buf) - pos);
}

Status TimeError(std::string_view text, std::string_view why) {
  return Status(Code::kParseError, "unparseable timestamp \"" +
                                       std::string(text) + "\" (" +
                                       std::string(why) + ")");
}

}  // namespace

// ---------------------------------------------------------------------------
// Decimal
// ---------------------------------------------------------------------------

Decimal Decimal::FromUnits(__int128 units, int scale) {
  Decimal d;
  d.units_ = units;
  d.scale_ = scale < 0 ? 0 : (scale > kMaxScale ? kMaxScale : scale);
  return d;
}

StatusOr<Decimal> Decimal::Parse(std::string_view text) {
  auto fail = [&]() {
    return Status(Code::kParseError,
                  "unparseable decimal \"" + std::string(text) +
                      "\" (expected digits with an optional sign and "
                      "point, at most 18 decimals)");
  };
  size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    negative = text[pos] == '-';
    ++pos;
  }
  __int128 units = 0;
  int digits = 0;
  int scale = 0;
  bool seen_point = false;
  int total_digits = 0;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (c == '.') {
      if (seen_point) return fail();
      seen_point = true;
      continue;
    }
    if (c < '0' || c > '9') return fail();
    ++total_digits;
    units = units * 10 + (c - '0');
    if (units != 0) ++digits;
    if (seen_point) ++scale;
    if (digits > 36 || scale > kMaxScale) return fail();
  }
  // At least one digit, and a point must be followed by a digit.
  if (total_digits == 0 || (seen_point && scale == 0)) return fail();
  if (!InRange(units)) return fail();
  return FromUnits(negative ? -units : units, scale);
}

std::string Decimal::ToString() const {
  __int128 abs = units_ < 0 ? -units_ : units_;
  std::string digits = Int128ToString(abs);
  if (scale_ > 0 && static_cast<int>(digits.size()) <= scale_) {
    digits.insert(0, scale_ - digits.size() + 1, '0');
  }
  if (scale_ > 0) digits.insert(digits.size() - scale_, 1, '.');
  if (units_ < 0) digits.insert(0, 1, '-');
  return digits;
}

StatusOr<Decimal> Decimal::Add(const Decimal& other) const {
  int scale = scale_ > other.scale_ ? scale_ : other.scale_;
  __int128 a, b, sum;
  if (!ScaleUp(units_, scale - scale_, &a) ||
      !ScaleUp(other.units_, scale - other.scale_, &b) ||
      __builtin_add_overflow(a, b, &sum) || !InRange(sum)) {
    return Status(Code::kInvalidArgument, "decimal overflow in " +
                                              ToString() + " + " +
                                              other.ToString());
  }
  return FromUnits(sum, scale);
}

StatusOr<Decimal> Decimal::Subtract(const Decimal& other) const {
  return Add(FromUnits(-other.units_, other.scale_));
}

StatusOr<Decimal> Decimal::Multiply(const Decimal& other) const {
  __int128 product;
  int scale = scale_ + other.scale_;
  if (scale > kMaxScale ||
      __builtin_mul_overflow(units_, other.units_, &product) ||
      !InRange(product)) {
    return Status(Code::kInvalidArgument,
                  "decimal overflow in " + ToString() + " * " +
                      other.ToString() + " (at most 36 digits and 18 "
                      "decimals)");
  }
  return FromUnits(product, scale);
}

Decimal Decimal::Round(int places) const {
  if (places < 0) places = 0;
  if (places > kMaxScale) places = kMaxScale;
  if (places >= scale_) {
    __int128 scaled;
    // Widening keeps the value; if it would overflow keep the original.
    if (ScaleUp(units_, places - scale_, &scaled) && InRange(scaled)) {
      return FromUnits(scaled, places);
    }
    return *this;
  }
  __int128 divisor = Pow10(scale_ - places);
  __int128 q = units_ / divisor;
  __int128 r = units_ % divisor;
  __int128 abs_r = r < 0 ? -r : r;
  if (abs_r * 2 >= divisor) q += units_ < 0 ? -1 : 1;
  return FromUnits(q, places);
}

int Decimal::Compare(const Decimal& other) const {
  int scale = scale_ > other.scale_ ? scale_ : other.scale_;
  __int128 a, b;
  bool a_ok = ScaleUp(units_, scale - scale_, &a);
  bool b_ok = ScaleUp(other.units_, scale - other.scale_, &b);
  // An overflowing side is larger in magnitude than any in-range value.
  if (!a_ok) return units_ < 0 ? -1 : 1;
  if (!b_ok) return other.units_ < 0 ? 1 : -1;
  return a < b ? -1 : (a > b ? 1 : 0);
}

// ---------------------------------------------------------------------------
// Timestamp
// ---------------------------------------------------------------------------

std::string Timestamp::ToIso() const {
  // Floor division so instants before 1970 format correctly.
  int64_t days = micros / kMicrosPerDay;
  int64_t rem = micros % kMicrosPerDay;
  if (rem < 0) {
    rem += kMicrosPerDay;
    --days;
  }
  int64_t year;
  unsigned month, day;
  CivilFromDays(days, &year, &month, &day);
  int64_t secs = rem / kMicrosPerSecond;
  int64_t frac = rem % kMicrosPerSecond;
  std::string out;
  out.reserve(27);
  AppendPadded(&out, year, 4);
  out.push_back('-');
  AppendPadded(&out, month, 2);
  out.push_back('-');
  AppendPadded(&out, day, 2);
  out.push_back('T');
  AppendPadded(&out, secs / 3600, 2);
  out.push_back(':');
  AppendPadded(&out, secs / 60 % 60, 2);
  out.push_back(':');
  AppendPadded(&out, secs % 60, 2);
  out.push_back('.');
  AppendPadded(&out, frac, 6);
  out.push_back('Z');
  return out;
}

StatusOr<Timestamp> Timestamp::ParseIso(std::string_view text) {
  size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  int micros = 0;
  if (!ReadDigits(text, &pos, 4, &year) || !Expect(text, &pos, '-') ||
      !ReadDigits(text, &pos, 2, &month) || !Expect(text, &pos, '-') ||
      !ReadDigits(text, &pos, 2, &day)) {
    return TimeError(text, "expected YYYY-MM-DD");
  }
  if (pos >= text.size() || (text[pos] != 'T' && text[pos] != ' ')) {
    return TimeError(text, "expected 'T' or ' ' then hh:mm:ss and an offset");
  }
  ++pos;
  if (!ReadDigits(text, &pos, 2, &hour) || !Expect(text, &pos, ':') ||
      !ReadDigits(text, &pos, 2, &minute)) {
    return TimeError(text, "expected hh:mm after the date");
  }
  if (pos < text.size() && text[pos] == ':') {
    ++pos;
    if (!ReadDigits(text, &pos, 2, &second)) {
      return TimeError(text, "expected two digits of seconds");
    }
    if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
      ++pos;
      int n = 0;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
        if (++n > 6) return TimeError(text, "at most 6 fraction digits");
        micros = micros * 10 + (text[pos] - '0');
        ++pos;
      }
      if (n == 0) return TimeError(text, "expected fraction digits");
      for (; n < 6; ++n) micros *= 10;
    }
  }
  int64_t offset_seconds = 0;
  if (pos >= text.size()) {
    return TimeError(text, "no offset: expected Z or +hh:mm");
  }
  char c = text[pos++];
  if (c == 'Z' || c == 'z') {
    // UTC.
  } else if (c == '+' || c == '-') {
    int oh, om = 0;
    if (!ReadDigits(text, &pos, 2, &oh)) {
      return TimeError(text, "expected offset +hh:mm");
    }
    if (pos < text.size()) {
      if (text[pos] == ':') ++pos;
      if (!ReadDigits(text, &pos, 2, &om)) {
        return TimeError(text, "expected offset +hh:mm");
      }
    }
    if (oh > 23 || om > 59) return TimeError(text, "offset out of range");
    offset_seconds = (oh * 3600 + om * 60) * (c == '-' ? -1 : 1);
  } else {
    return TimeError(text, "expected Z or +hh:mm");
  }
  if (pos != text.size()) return TimeError(text, "trailing characters");
  auto t = FromCivilUtc(year, month, day, hour, minute, second, micros);
  if (!t.ok()) return TimeError(text, "date or time out of range");
  Timestamp ts = *t;
  ts.micros -= offset_seconds * kMicrosPerSecond;
  // The offset can carry a civil time in year 1 or 9999 out of the
  // range that ToIso writes back (0001-01-01T00:30+01:00 is in year 0).
  if (!ts.InRange()) {
    return TimeError(text, "instant out of range (expected years 1 to 9999 "
                           "UTC)");
  }
  return ts;
}

StatusOr<Timestamp> Timestamp::FromCivilUtc(int year, int month, int day,
                                            int hour, int minute, int second,
                                            int micros) {
  if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 ||
      day > DaysInMonth(year, month) || hour < 0 || hour > 23 ||
      minute < 0 || minute > 59 || second < 0 || second > 59 ||
      micros < 0 || micros >= kMicrosPerSecond) {
    return Status(Code::kInvalidArgument,
                  "impossible civil time " + std::to_string(year) + "-" +
                      std::to_string(month) + "-" + std::to_string(day) +
                      " " + std::to_string(hour) + ":" +
                      std::to_string(minute) + ":" + std::to_string(second) +
                      " (expected years 0001..9999 and a real date)");
  }
  int64_t days = DaysFromCivil(year, month, day);
  Timestamp t;
  t.micros = days * kMicrosPerDay +
             (static_cast<int64_t>(hour) * 3600 + minute * 60 + second) *
                 kMicrosPerSecond +
             micros;
  return t;
}

// ---------------------------------------------------------------------------
// Value
// ---------------------------------------------------------------------------

const char* ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kNull:
      return "null";
    case ValueType::kText:
      return "text";
    case ValueType::kInteger:
      return "integer";
    case ValueType::kDecimal:
      return "decimal";
    case ValueType::kTimestamp:
      return "timestamp";
    case ValueType::kDuration:
      return "duration";
    case ValueType::kBoolean:
      return "boolean";
  }
  return "unknown";
}

StatusOr<ValueType> ParseValueType(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(ValueType::kBoolean); ++i) {
    auto t = static_cast<ValueType>(i);
    if (name == ValueTypeName(t)) return t;
  }
  return Status(Code::kInvalidArgument,
                "unknown value type \"" + std::string(name) +
                    "\" (expected null, text, integer, decimal, timestamp, "
                    "duration, boolean)");
}

std::string Value::ToText() const {
  switch (type()) {
    case ValueType::kNull:
      return "";
    case ValueType::kText:
      return text();
    case ValueType::kInteger:
      return std::to_string(integer());
    case ValueType::kDecimal:
      return decimal().ToString();
    case ValueType::kTimestamp:
      return timestamp().ToIso();
    case ValueType::kDuration:
      return std::to_string(duration().micros);
    case ValueType::kBoolean:
      return boolean() ? "true" : "false";
  }
  return "";
}

StatusOr<Value> Value::FromText(ValueType type, std::string_view text) {
  auto parse_int = [&](int64_t* out) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, *out);
    return !text.empty() && ec == std::errc() && ptr == end;
  };
  switch (type) {
    case ValueType::kNull:
      return Value();
    case ValueType::kText:
      return Text(std::string(text));
    case ValueType::kInteger: {
      int64_t v;
      if (!parse_int(&v)) break;
      return Integer(v);
    }
    case ValueType::kDecimal: {
      auto d = Decimal::Parse(text);
      if (!d.ok()) return d.status();
      return Dec(*d);
    }
    case ValueType::kTimestamp: {
      auto t = Timestamp::ParseIso(text);
      if (!t.ok()) return t.status();
      return Time(*t);
    }
    case ValueType::kDuration: {
      int64_t v;
      if (!parse_int(&v)) break;
      return Span(Duration{v});
    }
    case ValueType::kBoolean:
      if (text == "true") return Bool(true);
      if (text == "false") return Bool(false);
      break;
  }
  return Status(Code::kParseError, "unparseable " +
                                       std::string(ValueTypeName(type)) +
                                       " \"" + std::string(text) + "\"");
}

bool Value::operator==(const Value& o) const { return data_ == o.data_; }

const Value* FindAttribute(const Attributes& attrs, std::string_view name) {
  for (const auto& [n, v] : attrs) {
    if (n == name) return &v;
  }
  return nullptr;
}

void SetAttribute(Attributes& attrs, std::string_view name, Value value) {
  for (auto& [n, v] : attrs) {
    if (n == name) {
      v = std::move(value);
      return;
    }
  }
  attrs.emplace_back(std::string(name), std::move(value));
}

size_t FirstInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // continuation byte, overlong lead or above U+10FFFF
    }
    if (i + len > n) return i;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

bool IsValidUtf8(std::string_view text) {
  return FirstInvalidUtf8(text) == std::string_view::npos;
}

}  // namespace crmflow
