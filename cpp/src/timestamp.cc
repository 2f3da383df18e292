// timestamp.cc: parsing export timestamps into UTC instants with CCTZ.
//
// The format language of timestamp.h is interpreted directly (no strptime:
// its behaviour depends on the C locale and it accepts too much).  Civil
// times without an offset go through cctz::time_zone::lookup, whose
// SKIPPED/REPEATED answers give the two candidate instants of a wall-clock
// time around a daylight-saving change; the one computed with the offset in
// force before the change is taken (see timestamp.h).

#include "crmflow/timestamp.h"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace crmflow {

struct TimeZone::Impl {
  std::string name;
  cctz::time_zone tz;
};

namespace {

constexpr int64_t kMicrosPerSecond = 1000000;

// Seconds since the epoch of a UTC civil time; no time-zone lookup needed.
int64_t UtcSeconds(const cctz::civil_second& cs) {
  return cs - cctz::civil_second(1970, 1, 1, 0, 0, 0);
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Fields read from a text; unset ones keep their defaults.
struct Parsed {
  int year = 1970;
  int month = 1;
  int day = 1;
  int hour = 0;
  int minute = 0;
  int second = 0;
  int micros = 0;
  int pm = -1;            // -1: no %p, 0: AM, 1: PM
  bool twelve_hour = false;
  bool has_offset = false;
  int offset_seconds = 0;  // east of UTC
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

// Reads between min_digits and max_digits digits at text[*pos].
bool ReadInt(std::string_view text, size_t* pos, int min_digits,
             int max_digits, int* out) {
  int value = 0;
  int n = 0;
  size_t p = *pos;
  while (p < text.size() && n < max_digits && IsDigit(text[p])) {
    value = value * 10 + (text[p] - '0');
    ++p;
    ++n;
  }
  if (n < min_digits) return false;
  *out = value;
  *pos = p;
  return true;
}

// Reads 1-9 fraction digits, keeping microseconds (the rest truncated).
bool ReadFraction(std::string_view text, size_t* pos, int* micros) {
  size_t p = *pos;
  int value = 0;
  int n = 0;
  while (p < text.size() && IsDigit(text[p])) {
    if (n >= 9) return false;
    if (n < 6) value = value * 10 + (text[p] - '0');
    ++p;
    ++n;
  }
  if (n == 0) return false;
  for (int i = n; i < 6; ++i) value *= 10;
  *micros = value;
  *pos = p;
  return true;
}

// Reads Z, +hh:mm, +hhmm or +hh (also '-', and 'z').
bool ReadOffset(std::string_view text, size_t* pos, int* seconds) {
  size_t p = *pos;
  if (p >= text.size()) return false;
  if (text[p] == 'Z' || text[p] == 'z') {
    *seconds = 0;
    *pos = p + 1;
    return true;
  }
  if (text[p] != '+' && text[p] != '-') return false;
  int sign = text[p] == '-' ? -1 : 1;
  ++p;
  int hh = 0;
  int mm = 0;
  if (!ReadInt(text, &p, 2, 2, &hh)) return false;
  if (p < text.size() && text[p] == ':') {
    ++p;
    if (!ReadInt(text, &p, 2, 2, &mm)) return false;
  } else if (p + 1 < text.size() && IsDigit(text[p])) {
    if (!ReadInt(text, &p, 2, 2, &mm)) return false;
  }
  if (hh > 23 || mm > 59) return false;
  *seconds = sign * (hh * 3600 + mm * 60);
  *pos = p;
  return true;
}

constexpr const char* kMonthNames[12] = {
    "january", "february", "march",     "april",   "may",      "june",
    "july",    "august",   "september", "october", "november", "december"};

// Reads a month name: its first three letters, or the whole name, in any
// case.
bool ReadMonthName(std::string_view text, size_t* pos, int* month) {
  if (*pos + 3 > text.size()) return false;
  for (int m = 0; m < 12; ++m) {
    std::string_view full = kMonthNames[m];
    bool match = true;
    for (int i = 0; i < 3; ++i) {
      if (Lower(text[*pos + i]) != full[i]) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    size_t p = *pos + 3;
    size_t i = 3;
    while (i < full.size() && p < text.size() && Lower(text[p]) == full[i]) {
      ++p;
      ++i;
    }
    // A partial longer name ("Sept") keeps only the abbreviation.
    *pos = (i == full.size()) ? p : *pos + 3;
    *month = m + 1;
    return true;
  }
  return false;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// Checks that `format` only uses known fields.
Status CheckFormat(std::string_view format) {
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') continue;
    if (i + 1 >= format.size()) {
      return Status(Code::kInvalidArgument,
                    "time format \"" + std::string(format) +
                        "\" ends with a lone % (expected a field such as %Y)");
    }
    char f = format[++i];
    switch (f) {
      case 'Y': case 'm': case 'd': case 'H': case 'I': case 'p':
      case 'M': case 'S': case 'f': case 'z': case 'b': case '%':
        break;
      default:
        return Status(Code::kInvalidArgument,
                      "unknown field %" + std::string(1, f) +
                          " in time format \"" + std::string(format) +
                          "\" (expected %Y %m %d %H %I %p %M %S %f %z %b %%)");
    }
  }
  return Status::Ok();
}

// Applies `format` to `text`; false when they do not match.
bool ParseWithFormat(std::string_view text, std::string_view format,
                     Parsed* out) {
  size_t p = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    char c = format[i];
    if (c == ' ') {
      if (p >= text.size() || !IsSpace(text[p])) return false;
      while (p < text.size() && IsSpace(text[p])) ++p;
      continue;
    }
    if (c != '%') {
      if (p >= text.size() || text[p] != c) return false;
      ++p;
      continue;
    }
    char f = format[++i];
    bool ok = true;
    switch (f) {
      case 'Y':
        ok = ReadInt(text, &p, 4, 4, &out->year);
        break;
      case 'm':
        ok = ReadInt(text, &p, 1, 2, &out->month);
        break;
      case 'd':
        ok = ReadInt(text, &p, 1, 2, &out->day);
        break;
      case 'H':
        ok = ReadInt(text, &p, 1, 2, &out->hour);
        break;
      case 'I':
        ok = ReadInt(text, &p, 1, 2, &out->hour);
        out->twelve_hour = true;
        break;
      case 'M':
        ok = ReadInt(text, &p, 1, 2, &out->minute);
        break;
      case 'S':
        ok = ReadInt(text, &p, 1, 2, &out->second);
        break;
      case 'f':
        ok = ReadFraction(text, &p, &out->micros);
        break;
      case 'z':
        ok = ReadOffset(text, &p, &out->offset_seconds);
        out->has_offset = true;
        break;
      case 'b':
        ok = ReadMonthName(text, &p, &out->month);
        break;
      case 'p': {
        if (p + 2 > text.size() || Lower(text[p + 1]) != 'm') return false;
        char a = Lower(text[p]);
        if (a != 'a' && a != 'p') return false;
        out->pm = a == 'p' ? 1 : 0;
        p += 2;
        break;
      }
      case '%':
        ok = p < text.size() && text[p] == '%';
        ++p;
        break;
      default:
        return false;  // CheckFormat refuses these earlier
    }
    if (!ok) return false;
  }
  if (p != text.size()) return false;
  if (out->twelve_hour) {
    if (out->hour < 1 || out->hour > 12) return false;
    if (out->pm == 1 && out->hour != 12) out->hour += 12;
    if (out->pm == 0 && out->hour == 12) out->hour = 0;
  } else if (out->pm == 1 && out->hour < 12) {
    // "%H %p" with a 1-12 hour, as some exports write it: read as %I,
    // so 12 PM stays noon and 12 AM is midnight.
    out->hour += 12;
  } else if (out->pm == 0 && out->hour == 12) {
    out->hour = 0;
  }
  return true;
}

// ISO 8601: date, then optionally 'T' or ' ' and hh:mm[:ss[.f]], then an
// optional offset.
bool ParseIsoText(std::string_view text, Parsed* out) {
  size_t p = 0;
  if (!ReadInt(text, &p, 4, 4, &out->year)) return false;
  if (p >= text.size() || text[p] != '-') return false;
  ++p;
  if (!ReadInt(text, &p, 2, 2, &out->month)) return false;
  if (p >= text.size() || text[p] != '-') return false;
  ++p;
  if (!ReadInt(text, &p, 2, 2, &out->day)) return false;
  if (p == text.size()) return true;
  if (text[p] != 'T' && text[p] != 't' && text[p] != ' ') return false;
  ++p;
  if (!ReadInt(text, &p, 2, 2, &out->hour)) return false;
  if (p >= text.size() || text[p] != ':') return false;
  ++p;
  if (!ReadInt(text, &p, 2, 2, &out->minute)) return false;
  if (p < text.size() && text[p] == ':') {
    ++p;
    if (!ReadInt(text, &p, 2, 2, &out->second)) return false;
    if (p < text.size() && (text[p] == '.' || text[p] == ',')) {
      ++p;
      if (!ReadFraction(text, &p, &out->micros)) return false;
    }
  }
  if (p == text.size()) return true;
  if (!ReadOffset(text, &p, &out->offset_seconds)) return false;
  out->has_offset = true;
  return p == text.size();
}

// Checks the ranges of a civil time; cctz would silently normalize them.
bool ValidCivil(int year, int month, int day, int hour, int minute,
                int second, int micros) {
  if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 ||
      hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 ||
      second > 59 || micros < 0 || micros >= kMicrosPerSecond) {
    return false;
  }
  cctz::civil_day d(year, month, day);
  return d.day() == day && d.month() == month;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && (IsSpace(s.back()) || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool IsIsoFormat(std::string_view format) {
  return format.empty() || format == "iso" || format == "ISO";
}

StatusOr<Timestamp> ParseChecked(std::string_view raw, std::string_view format,
                                 const TimeZone& zone) {
  std::string_view text = Trim(raw);
  Parsed parsed;
  bool iso = IsIsoFormat(format);
  bool ok = iso ? ParseIsoText(text, &parsed)
                : ParseWithFormat(text, format, &parsed);
  if (ok) {
    ok = ValidCivil(parsed.year, parsed.month, parsed.day, parsed.hour,
                    parsed.minute, parsed.second, parsed.micros);
  }
  if (!ok) {
    return Status(Code::kParseError,
                  "unparseable time \"" + std::string(raw) + "\" (expected " +
                      (iso ? std::string("ISO 8601") : std::string(format)) +
                      ")");
  }
  Timestamp t;
  if (parsed.has_offset) {
    int64_t secs = UtcSeconds(cctz::civil_second(
                       parsed.year, parsed.month, parsed.day, parsed.hour,
                       parsed.minute, parsed.second)) -
                   parsed.offset_seconds;
    t = Timestamp{secs * kMicrosPerSecond + parsed.micros};
  } else {
    auto local = zone.FromCivil(parsed.year, parsed.month, parsed.day,
                                parsed.hour, parsed.minute, parsed.second,
                                parsed.micros);
    if (!local.ok()) return local.status();
    t = local.value();
  }

  // The civil time was in years 1 to 9999, but an offset or the zone can
  // move its instant out of them, where ToIso would write a year no
  // reader takes back.
  if (!t.InRange()) {
    return Status(Code::kParseError,
                  TimeOutOfRange("\"" + std::string(raw) + "\""));
  }
  return t;
}

}  // namespace

TimeZone::TimeZone() {
  // Shared by every default-constructed TimeZone, so TimeZone() never
  // allocates; leaked on purpose to avoid destruction-order problems.
  static const auto* utc = new std::shared_ptr<const Impl>(
      std::make_shared<Impl>(Impl{"UTC", cctz::utc_time_zone()}));
  impl_ = *utc;
}

StatusOr<TimeZone> TimeZone::Load(std::string_view name) {
  TimeZone zone;
  if (name == "UTC" || name == "Etc/UTC" || name == "Z") {
    if (name != "UTC") {
      zone.impl_ = std::make_shared<Impl>(
          Impl{std::string(name), cctz::utc_time_zone()});
    }
    return zone;
  }
  cctz::time_zone tz;
  // load_time_zone answers UTC for a name it cannot find, so its result
  // must be checked.
  if (name.empty() || !cctz::load_time_zone(std::string(name), &tz)) {
    return Status(Code::kInvalidArgument,
                  "unknown time zone \"" + std::string(name) +
                      "\" (expected an IANA name such as Europe/Berlin)");
  }
  zone.impl_ = std::make_shared<Impl>(Impl{std::string(name), tz});
  return zone;
}

const std::string& TimeZone::name() const { return impl_->name; }

StatusOr<Timestamp> TimeZone::FromCivil(int year, int month, int day,
                                        int hour, int minute, int second,
                                        int micros) const {
  if (!ValidCivil(year, month, day, hour, minute, second, micros)) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%06d",
                  year, month, day, hour, minute, second, micros);
    return Status(Code::kInvalidArgument,
                  std::string("impossible civil time ") + buf +
                      " (expected a valid date and time of day)");
  }
  cctz::civil_second cs(year, month, day, hour, minute, second);
  const cctz::time_zone::civil_lookup cl = impl_->tz.lookup(cs);
  // `pre` reads the wall clock with the offset in force before the change:
  // for a repeated time that is its first occurrence, for a skipped one the
  // instant the clock would show had it not jumped (02:30 EST -> 03:30 EDT),
  // as Python's zoneinfo does with fold=0.
  auto tp = cl.pre;
  int64_t secs = tp.time_since_epoch().count();
  return Timestamp{secs * kMicrosPerSecond + micros};
}

int TimeZone::OffsetAt(Timestamp t) const {
  int64_t secs = FloorDiv(t.micros, kMicrosPerSecond);
  auto tp = std::chrono::time_point_cast<cctz::seconds>(
      std::chrono::system_clock::from_time_t(0)) +
            cctz::seconds(secs);
  return impl_->tz.lookup(tp).offset;
}

std::string TimeZone::FormatLocal(Timestamp t) const {
  int64_t secs = FloorDiv(t.micros, kMicrosPerSecond);
  int micros = static_cast<int>(t.micros - secs * kMicrosPerSecond);
  auto tp = std::chrono::time_point_cast<cctz::seconds>(
      std::chrono::system_clock::from_time_t(0)) +
            cctz::seconds(secs);
  const auto al = impl_->tz.lookup(tp);
  int offset = al.offset;
  char sign = offset < 0 ? '-' : '+';
  if (offset < 0) offset = -offset;
  char buf[64];
  int n = std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d",
                        static_cast<int>(al.cs.year()), al.cs.month(),
                        al.cs.day(), al.cs.hour(), al.cs.minute(),
                        al.cs.second());
  std::string out(buf, n);
  if (micros != 0) {
    n = std::snprintf(buf, sizeof(buf), ".%06d", micros);
    out.append(buf, n);
  }
  n = std::snprintf(buf, sizeof(buf), "%c%02d:%02d", sign, offset / 3600,
                    (offset % 3600) / 60);
  out.append(buf, n);
  return out;
}

std::string TimeOutOfRange(std::string_view what) {
  return "time " + std::string(what) +
         " out of range (expected a time in years 1 to 9999 UTC)";
}

StatusOr<Timestamp> ParseTimestamp(std::string_view text,
                                   std::string_view format,
                                   const TimeZone& zone) {
  if (!IsIsoFormat(format)) CRMFLOW_RETURN_IF_ERROR(CheckFormat(format));
  return ParseChecked(text, format, zone);
}

StatusOr<TimestampParser> TimestampParser::Create(std::string_view format,
                                                  const TimeZone& zone) {
  if (!IsIsoFormat(format)) CRMFLOW_RETURN_IF_ERROR(CheckFormat(format));
  TimestampParser parser;
  parser.format_ = std::string(format);
  parser.zone_ = zone;
  return parser;
}

StatusOr<Timestamp> TimestampParser::Parse(std::string_view text) const {
  // The format was checked by Create; interpreting it again per value is
  // a few comparisons per character, cheaper than a compiled program's
  // indirections for formats this short.
  return ParseChecked(text, format_, zone_);
}

}  // namespace crmflow
