// calendar.cc: business calendars over CCTZ.
//
// Days are numbered from 1970-01-01 (local civil dates of the calendar's
// zone).  The instant at which the local clock of day D first reads a
// wall-clock second w is, inside a stretch of time with one UTC offset,
// simply D * 86400 + w - offset; only days near a daylight-saving change
// need CCTZ's civil lookup (see ZoneCursor).  That keeps Add and Between at
// a few integer operations per day.

#include "crmflow/calendar.h"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace crmflow {

namespace {

constexpr int64_t kMicros = 1000000;
constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kMaxSearchMicros =
    kMaxCalendarSearchDays * kSecondsPerDay * kMicros;
constexpr int64_t kInfinity = std::numeric_limits<int64_t>::max() / 4;
// A stretch with one offset is trusted for day D only when it began at
// least this long before D's midnight: before the change, the clock may
// have read a later time than after it (by up to the size of the change,
// and offsets stay within +-26 h), so D's midnight could have come first
// in the previous stretch.
constexpr int64_t kStretchMargin = 3 * kSecondsPerDay;

const cctz::civil_day kEpochDay(1970, 1, 1);

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

cctz::time_point<cctz::seconds> ToTimePoint(int64_t seconds) {
  return cctz::time_point<cctz::seconds>(cctz::seconds(seconds));
}

int64_t ToSeconds(const cctz::time_point<cctz::seconds>& tp) {
  return tp.time_since_epoch().count();
}

std::string DurationText(int64_t micros) {
  std::string sign = micros < 0 ? "-" : "";
  if (micros < 0) micros = -micros;
  char buf[64];
  int64_t h = micros / (3600 * kMicros);
  int64_t m = micros / (60 * kMicros) % 60;
  int64_t s = micros / kMicros % 60;
  int64_t f = micros % kMicros;
  if (f != 0) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02lld.%06llds",
                  static_cast<long long>(h), static_cast<long long>(m),
                  static_cast<long long>(s), static_cast<long long>(f));
  } else if (s != 0) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds",
                  static_cast<long long>(h), static_cast<long long>(m),
                  static_cast<long long>(s));
  } else if (m != 0) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(h),
                  static_cast<long long>(m));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldh", static_cast<long long>(h));
  }
  return sign + buf;
}

struct Span {
  int start;  // seconds after local midnight
  int end;
};

// A date whose intervals replace the weekly ones.
struct Override {
  int64_t day;
  int begin;  // index range into Impl::spans
  int end;
};

const char* const kWeekdayNames[7] = {"monday", "tuesday",  "wednesday",
                                      "thursday", "friday", "saturday",
                                      "sunday"};

// Monday = 0; day 0 (1970-01-01) was a Thursday.
int WeekdayOf(int64_t day) {
  int64_t w = (day + 3) % 7;
  return static_cast<int>(w < 0 ? w + 7 : w);
}

}  // namespace

namespace internal {

struct CalendarImpl {
  TimeZone zone;
  cctz::time_zone tz;
  bool always_open = false;
  // True when the zone never changes its offset (UTC, fixed offsets).
  bool fixed_offset = false;
  int fixed_offset_seconds = 0;
  std::vector<Span> spans;
  // Weekday w uses spans[week[w] .. week[w + 1]).
  int week[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<Override> overrides;  // sorted by day

  // Sets [*begin, *end) to the spans of `day`.
  void SpansOf(int64_t day, int* begin, int* end) const {
    if (!overrides.empty() && day >= overrides.front().day &&
        day <= overrides.back().day) {
      auto it = std::lower_bound(
          overrides.begin(), overrides.end(), day,
          [](const Override& o, int64_t d) { return o.day < d; });
      if (it != overrides.end() && it->day == day) {
        *begin = it->begin;
        *end = it->end;
        return;
      }
    }
    int w = WeekdayOf(day);
    *begin = week[w];
    *end = week[w + 1];
  }
};

}  // namespace internal

using Impl = internal::CalendarImpl;

namespace {

// Maps (local day, wall-clock second of that day) to the first instant the
// local clock reads it, in seconds since the epoch.  Keeps the stretch of
// time with one UTC offset it last looked up, so a run of days costs one
// lookup.  Not thread-safe; each call of a calendar method makes its own.
class ZoneCursor {
 public:
  explicit ZoneCursor(const Impl& cal) : cal_(cal) {
    if (cal_.fixed_offset) {
      begin_ = -kInfinity;
      end_ = kInfinity;
      offset_ = cal_.fixed_offset_seconds;
      loaded_ = true;
    }
  }

  // Makes At() answer for `day`.
  void Prepare(int64_t day) {
    day_ = day;
    if (loaded_ && Trusted(day)) {
      fast_ = true;
      return;
    }
    int64_t midnight = day * kSecondsPerDay - offset_;
    if (!loaded_ || midnight < begin_ || midnight >= end_) {
      Load(midnight);
      if (Trusted(day)) {
        fast_ = true;
        return;
      }
    }
    fast_ = false;
  }

  // Returns the first instant (seconds) at which the clock of the prepared
  // day reads `second` (0..86400; 86400 is the next day's 00:00).
  int64_t At(int second) const {
    if (fast_) return day_ * kSecondsPerDay - offset_ + second;
    cctz::civil_second cs = cctz::civil_second(kEpochDay + day_) + second;
    const cctz::time_zone::civil_lookup cl = cal_.tz.lookup(cs);
    // A skipped time maps to the jump, a repeated one to its first
    // occurrence: both are the first instant the clock reads >= cs.
    return ToSeconds(cl.kind == cctz::time_zone::civil_lookup::SKIPPED
                         ? cl.trans
                         : cl.pre);
  }

  // Returns the local day whose span [At(0), next day's At(0)) holds the
  // instant `seconds`.
  int64_t DayOf(int64_t seconds) {
    if (!loaded_ || seconds < begin_ || seconds >= end_) Load(seconds);
    int64_t day = FloorDiv(seconds + offset_, kSecondsPerDay);
    // Near a change the local date may disagree with the spans: after a
    // fall-back across midnight, the repeated hour belongs to the next day,
    // whose 00:00 was first read before it.
    Prepare(day + 1);
    if (seconds >= At(0)) return day + 1;
    Prepare(day);
    if (seconds < At(0)) return day - 1;
    return day;
  }

 private:
  bool Trusted(int64_t day) const {
    int64_t midnight = day * kSecondsPerDay - offset_;
    return midnight - kStretchMargin >= begin_ &&
           midnight + kSecondsPerDay < end_;
  }

  void Load(int64_t seconds) {
    loaded_ = true;
    auto tp = ToTimePoint(seconds);
    offset_ = cal_.tz.lookup(tp).offset;
    cctz::time_zone::civil_transition tr;
    // prev_transition is strictly before its argument; one second later
    // catches a change at `seconds` itself.
    if (cal_.tz.prev_transition(ToTimePoint(seconds + 1), &tr)) {
      begin_ = ToSeconds(cal_.tz.lookup(tr.to).trans);
    } else {
      begin_ = -kInfinity;
    }
    if (cal_.tz.next_transition(tp, &tr)) {
      end_ = ToSeconds(cal_.tz.lookup(tr.to).trans);
    } else {
      // CCTZ stops listing changes some centuries ahead (2437 for Berlin)
      // while its lookups go on applying the rules: past the last listed
      // change, trust no stretch at all (slow but exact).
      begin_ = seconds;
      end_ = seconds;
    }
  }

  const Impl& cal_;
  bool loaded_ = false;
  bool fast_ = false;
  int64_t day_ = 0;
  int64_t begin_ = 0;
  int64_t end_ = 0;
  int offset_ = 0;
};

// Visits the windows of `day` in order as UTC microsecond pairs; stops when
// `fn` returns true, and then returns true.
template <typename Fn>
bool ForEachWindow(const Impl& cal, ZoneCursor& zc,
                   int64_t day, Fn&& fn) {
  int begin = 0;
  int end = 0;
  cal.SpansOf(day, &begin, &end);
  if (begin == end) return false;
  zc.Prepare(day);
  for (int i = begin; i < end; ++i) {
    int64_t s = zc.At(cal.spans[i].start) * kMicros;
    int64_t e = zc.At(cal.spans[i].end) * kMicros;
    if (s < e && fn(s, e)) return true;
  }
  return false;
}

std::string TwoDigits(int v) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%02d", v);
  return buf;
}

std::string FormatSeconds(int seconds) {
  std::string out = TwoDigits(seconds / 3600) + ":" +
                    TwoDigits(seconds / 60 % 60);
  if (seconds % 60 != 0) {
    // Appended in two steps: ":" + a temporary trips a false -Wrestrict
    // in GCC 12.
    out += ':';
    out += TwoDigits(seconds % 60);
  }
  return out;
}

Status Invalid(std::string message) {
  return Status(Code::kInvalidArgument, std::move(message));
}

// Checks, sorts and merges the intervals of one day (`where` names it),
// appending them to `spans`.
Status AddDaySpans(const std::string& where,
                   const std::vector<WorkInterval>& intervals,
                   std::vector<Span>* spans) {
  std::vector<WorkInterval> sorted = intervals;
  for (const WorkInterval& iv : sorted) {
    if (iv.start_seconds < 0 || iv.end_seconds > 86400 ||
        iv.start_seconds >= 86400 || iv.end_seconds < 0) {
      return Invalid(where + ": interval " + FormatWorkInterval(iv) +
                     " is out of range (expected times from 00:00 to 24:00)");
    }
    if (iv.start_seconds >= iv.end_seconds) {
      return Invalid(where + ": interval " + FormatWorkInterval(iv) +
                     (iv.start_seconds == iv.end_seconds ? " is empty"
                                                         : " is inverted") +
                     " (expected start before end; split an interval across "
                     "midnight into one ending at 24:00 and one starting at "
                     "00:00)");
    }
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const WorkInterval& a, const WorkInterval& b) {
              return a.start_seconds < b.start_seconds;
            });
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0 && sorted[i].start_seconds < sorted[i - 1].end_seconds) {
      return Invalid(where + ": intervals " +
                     FormatWorkInterval(sorted[i - 1]) + " and " +
                     FormatWorkInterval(sorted[i]) + " overlap");
    }
    if (i > 0 && sorted[i].start_seconds == sorted[i - 1].end_seconds) {
      spans->back().end = sorted[i].end_seconds;  // touching: one stretch
    } else {
      spans->push_back(Span{sorted[i].start_seconds, sorted[i].end_seconds});
    }
  }
  return Status::Ok();
}

bool ValidDate(const CivilDate& d) {
  if (d.year < 1 || d.year > 9999 || d.month < 1 || d.month > 12 ||
      d.day < 1 || d.day > 31) {
    return false;
  }
  cctz::civil_day c(d.year, d.month, d.day);
  return c.year() == d.year && c.month() == d.month && c.day() == d.day;
}

int64_t DayNumber(const CivilDate& d) {
  return cctz::civil_day(d.year, d.month, d.day) - kEpochDay;
}

bool ParseClock(std::string_view text, int* seconds) {
  int parts[3] = {0, 0, 0};
  int n = 0;
  size_t p = 0;
  while (n < 3) {
    int digits = 0;
    int v = 0;
    while (p < text.size() && text[p] >= '0' && text[p] <= '9' &&
           digits < 2) {
      v = v * 10 + (text[p] - '0');
      ++p;
      ++digits;
    }
    if (digits == 0 || (n > 0 && digits != 2)) return false;
    parts[n++] = v;
    if (p == text.size()) break;
    if (text[p] != ':') return false;
    ++p;
  }
  if (p != text.size() || n < 2) return false;
  if (parts[1] > 59 || parts[2] > 59) return false;
  *seconds = parts[0] * 3600 + parts[1] * 60 + parts[2];
  return *seconds <= 86400;
}

}  // namespace

const char* WeekdayName(Weekday day) {
  return kWeekdayNames[static_cast<int>(day)];
}

std::string FormatWorkInterval(const WorkInterval& interval) {
  return FormatSeconds(interval.start_seconds) + "-" +
         FormatSeconds(interval.end_seconds);
}

std::string FormatCivilDate(const CivilDate& date) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d", date.year, date.month,
                date.day);
  return buf;
}

StatusOr<std::vector<WorkInterval>> ParseWorkIntervals(std::string_view text) {
  std::vector<WorkInterval> out;
  size_t p = 0;
  while (p < text.size()) {
    while (p < text.size() &&
           (text[p] == ' ' || text[p] == ',' || text[p] == '\t')) {
      ++p;
    }
    if (p == text.size()) break;
    size_t q = p;
    while (q < text.size() && text[q] != ' ' && text[q] != ',' &&
           text[q] != '\t') {
      ++q;
    }
    std::string_view part = text.substr(p, q - p);
    size_t dash = part.find('-');
    WorkInterval iv;
    if (dash == std::string_view::npos ||
        !ParseClock(part.substr(0, dash), &iv.start_seconds) ||
        !ParseClock(part.substr(dash + 1), &iv.end_seconds)) {
      return Invalid("unreadable interval \"" + std::string(part) +
                     "\" (expected hh:mm-hh:mm such as 09:00-17:00)");
    }
    out.push_back(iv);
    p = q;
  }
  return out;
}

CalendarSpec& CalendarSpec::Day(Weekday day,
                                std::vector<WorkInterval> intervals) {
  weekly[static_cast<int>(day)] = std::move(intervals);
  return *this;
}

CalendarSpec& CalendarSpec::Weekdays(
    const std::vector<WorkInterval>& intervals) {
  for (int d = 0; d < 5; ++d) weekly[d] = intervals;
  return *this;
}

CalendarSpec& CalendarSpec::EveryDay(
    const std::vector<WorkInterval>& intervals) {
  for (int d = 0; d < 7; ++d) weekly[d] = intervals;
  return *this;
}

CalendarSpec& CalendarSpec::Holiday(CivilDate date) {
  holidays.push_back(date);
  return *this;
}

CalendarSpec& CalendarSpec::Special(CivilDate date,
                                    std::vector<WorkInterval> intervals) {
  special_days.push_back(SpecialDay{date, std::move(intervals)});
  return *this;
}

BusinessCalendar::BusinessCalendar() : BusinessCalendar(TwentyFourSeven()) {}

BusinessCalendar::BusinessCalendar(std::shared_ptr<const Impl> impl)
    : impl_(std::move(impl)) {}

BusinessCalendar BusinessCalendar::TwentyFourSeven(const TimeZone& zone) {
  auto impl = std::make_shared<Impl>();
  impl->zone = zone;
  impl->tz = cctz::utc_time_zone();
  impl->always_open = true;
  impl->fixed_offset = true;
  return BusinessCalendar(std::move(impl));
}

StatusOr<BusinessCalendar> BusinessCalendar::Create(const CalendarSpec& spec) {
  auto impl = std::make_shared<Impl>();
  impl->zone = spec.zone;
  const std::string& name = spec.zone.name();
  if (name == "UTC" || name == "Etc/UTC" || name == "Z") {
    impl->tz = cctz::utc_time_zone();
  } else if (!cctz::load_time_zone(name, &impl->tz)) {
    return Invalid("unknown time zone \"" + name +
                   "\" (expected an IANA name such as Europe/Berlin)");
  }
  cctz::time_zone::civil_transition tr;
  if (!impl->tz.next_transition(
          cctz::time_point<cctz::seconds>::min(), &tr)) {
    impl->fixed_offset = true;
    impl->fixed_offset_seconds =
        impl->tz.lookup(ToTimePoint(0)).offset;
  }

  bool any_time = false;
  bool all_day_every_day = true;
  for (int d = 0; d < 7; ++d) {
    impl->week[d] = static_cast<int>(impl->spans.size());
    CRMFLOW_RETURN_IF_ERROR(
        AddDaySpans(kWeekdayNames[d], spec.weekly[d], &impl->spans));
    int n = static_cast<int>(impl->spans.size()) - impl->week[d];
    if (n > 0) any_time = true;
    if (!(n == 1 && impl->spans.back().start == 0 &&
          impl->spans.back().end == 86400)) {
      all_day_every_day = false;
    }
  }
  impl->week[7] = static_cast<int>(impl->spans.size());

  for (const CivilDate& h : spec.holidays) {
    if (!ValidDate(h)) {
      return Invalid("holiday " + FormatCivilDate(h) +
                     " is not a valid date");
    }
    impl->overrides.push_back(Override{DayNumber(h), 0, 0});
  }
  std::sort(impl->overrides.begin(), impl->overrides.end(),
            [](const Override& a, const Override& b) { return a.day < b.day; });
  impl->overrides.erase(
      std::unique(impl->overrides.begin(), impl->overrides.end(),
                  [](const Override& a, const Override& b) {
                    return a.day == b.day;
                  }),
      impl->overrides.end());
  size_t holiday_count = impl->overrides.size();
  for (const SpecialDay& sd : spec.special_days) {
    std::string where = "special day " + FormatCivilDate(sd.date);
    if (!ValidDate(sd.date)) return Invalid(where + " is not a valid date");
    int64_t day = DayNumber(sd.date);
    auto holiday_end = impl->overrides.begin() + holiday_count;
    if (std::binary_search(
            impl->overrides.begin(), holiday_end, Override{day, 0, 0},
            [](const Override& a, const Override& b) {
              return a.day < b.day;
            })) {
      return Invalid(where + " is also listed as a holiday");
    }
    for (size_t i = holiday_count; i < impl->overrides.size(); ++i) {
      if (impl->overrides[i].day == day) {
        return Invalid(where + " is given twice");
      }
    }
    int begin = static_cast<int>(impl->spans.size());
    CRMFLOW_RETURN_IF_ERROR(AddDaySpans(where, sd.intervals, &impl->spans));
    int end = static_cast<int>(impl->spans.size());
    if (end > begin) any_time = true;
    impl->overrides.push_back(Override{day, begin, end});
  }
  std::sort(impl->overrides.begin(), impl->overrides.end(),
            [](const Override& a, const Override& b) { return a.day < b.day; });

  if (!any_time) {
    return Invalid(
        "calendar has no working time (expected weekly intervals or a "
        "special day with intervals)");
  }
  impl->always_open = all_day_every_day && impl->overrides.empty();
  return BusinessCalendar(std::move(impl));
}

bool BusinessCalendar::is_24x7() const { return impl_->always_open; }

const TimeZone& BusinessCalendar::zone() const { return impl_->zone; }

StatusOr<Timestamp> BusinessCalendar::Add(Timestamp start,
                                          Duration business) const {
  if (business.micros < 0) {
    return Invalid("negative business duration " +
                   DurationText(business.micros) + " (expected >= 0)");
  }
  if (business.micros == 0) return start;
  const Impl& cal = *impl_;
  auto too_far = [&]() {
    return Invalid("business duration " + DurationText(business.micros) +
                   " is not reached within " +
                   std::to_string(kMaxCalendarSearchDays) + " days after " +
                   start.ToIso());
  };
  if (cal.always_open) {
    if (business.micros > kMaxSearchMicros) return too_far();
    return Timestamp{start.micros + business.micros};
  }
  ZoneCursor zc(cal);
  int64_t first = zc.DayOf(FloorDiv(start.micros, kMicros));
  int64_t remaining = business.micros;
  int64_t result = 0;
  for (int64_t day = first; day <= first + kMaxCalendarSearchDays; ++day) {
    bool done = ForEachWindow(cal, zc, day, [&](int64_t s, int64_t e) {
      if (e <= start.micros) return false;
      if (s < start.micros) s = start.micros;
      // `<=`: a result on a closing boundary stays there.
      if (remaining <= e - s) {
        result = s + remaining;
        return true;
      }
      remaining -= e - s;
      return false;
    });
    if (done) return Timestamp{result};
  }
  return too_far();
}

Duration BusinessCalendar::Between(Timestamp a, Timestamp b) const {
  if (b.micros == a.micros) return Duration{0};
  if (b.micros < a.micros) return Duration{-Between(b, a).micros};
  const Impl& cal = *impl_;
  if (cal.always_open) return Duration{b.micros - a.micros};
  ZoneCursor zc(cal);
  int64_t first = zc.DayOf(FloorDiv(a.micros, kMicros));
  int64_t last = zc.DayOf(FloorDiv(b.micros - 1, kMicros));
  int64_t total = 0;
  for (int64_t day = first; day <= last; ++day) {
    ForEachWindow(cal, zc, day, [&](int64_t s, int64_t e) {
      if (s >= b.micros) return true;
      s = std::max(s, a.micros);
      e = std::min(e, b.micros);
      if (e > s) total += e - s;
      return false;
    });
  }
  return Duration{total};
}

bool BusinessCalendar::IsOpen(Timestamp t) const {
  const Impl& cal = *impl_;
  if (cal.always_open) return true;
  ZoneCursor zc(cal);
  int64_t day = zc.DayOf(FloorDiv(t.micros, kMicros));
  return ForEachWindow(cal, zc, day, [&](int64_t s, int64_t e) {
    return s <= t.micros && t.micros < e;
  });
}

StatusOr<Timestamp> BusinessCalendar::NextOpen(Timestamp t) const {
  const Impl& cal = *impl_;
  if (cal.always_open) return t;
  ZoneCursor zc(cal);
  int64_t first = zc.DayOf(FloorDiv(t.micros, kMicros));
  int64_t result = 0;
  for (int64_t day = first; day <= first + kMaxCalendarSearchDays; ++day) {
    if (ForEachWindow(cal, zc, day, [&](int64_t s, int64_t e) {
          if (e <= t.micros) return false;
          result = std::max(s, t.micros);
          return true;
        })) {
      return Timestamp{result};
    }
  }
  return Invalid("calendar does not open within " +
                 std::to_string(kMaxCalendarSearchDays) + " days after " +
                 t.ToIso());
}

std::vector<std::pair<Timestamp, Timestamp>> BusinessCalendar::OpenWindows(
    Timestamp a, Timestamp b) const {
  std::vector<std::pair<Timestamp, Timestamp>> out;
  if (b.micros <= a.micros) return out;
  const Impl& cal = *impl_;
  if (cal.always_open) {
    out.emplace_back(a, b);
    return out;
  }
  ZoneCursor zc(cal);
  int64_t first = zc.DayOf(FloorDiv(a.micros, kMicros));
  int64_t last = zc.DayOf(FloorDiv(b.micros - 1, kMicros));
  for (int64_t day = first; day <= last; ++day) {
    ForEachWindow(cal, zc, day, [&](int64_t s, int64_t e) {
      if (s >= b.micros) return true;
      s = std::max(s, a.micros);
      e = std::min(e, b.micros);
      if (e <= s) return false;
      if (!out.empty() && out.back().second.micros == s) {
        out.back().second = Timestamp{e};
      } else {
        out.emplace_back(Timestamp{s}, Timestamp{e});
      }
      return false;
    });
  }
  return out;
}

}  // namespace crmflow
