// calendar.h: business calendars, exact to the microsecond.
//
// A BusinessCalendar says when a service desk is at work: an IANA time
// zone, weekly working hours with any number of intervals per day
// (Mon-Fri 09:00-12:00 and 13:00-17:00; an interval may end at 24:00),
// holidays (whole days closed) and special days (a date with its own
// intervals: a half day on Dec 24, a working Saturday).  24x7 is the
// calendar that is always open, where business time is elapsed time.
//
// Intervals are wall-clock times of the calendar's zone, converted to UTC
// day by day, so a 13:00-18:00 window on the day daylight saving starts is
// 13:00-18:00 local daylight time, and a 00:00-24:00 window on a fall-back
// day lasts 25 hours.  A window of date D runs from the first instant the
// local clock of D reads its start to the first instant it reads its end:
//   * a wall-clock time skipped when the clocks jump forward maps to the
//     instant of the jump (a 02:30-03:30 window in New York on 2026-03-08
//     is 03:00-03:30 EDT, 30 minutes; 02:00-03:00 vanishes that day);
//   * a time repeated when they fall back maps to its first occurrence.
// (This differs on purpose from TimeZone::FromCivil, which reads a skipped
// time with the offset before the gap: a window must never turn inverted.)
// An interval that crosses midnight is given as two intervals, one ending
// at 24:00 and one starting at 00:00 the next day; they touch and count as
// one stretch of working time.
//
// Business time is the measure of the set of open instants, in
// microseconds.  Every window is half-open, [start, end): at 17:00 sharp a
// 09:00-17:00 desk is closed.
//
// Example:
//
//   CalendarSpec spec;
//   spec.zone = TimeZone::Load("Europe/Berlin").value();
//   spec.Weekdays({{9 * 3600, 12 * 3600}, {13 * 3600, 17 * 3600}})
//       .Holiday({2026, 12, 25})
//       .Special({2026, 12, 24}, {{9 * 3600, 12 * 3600}});
//   StatusOr<BusinessCalendar> cal = BusinessCalendar::Create(spec);
//   if (!cal.ok()) return cal.status();   // e.g. overlapping intervals
//   StatusOr<Timestamp> due = cal->Add(opened, Duration{16 * 3600000000LL});
//   Duration used = cal->Between(opened, now);
//
// Performance: Add and Between visit each local day they span once, with
// a handful of integer operations per day (the zone's offset is looked up
// once per run of days without a daylight-saving change), so they cost
// O(days spanned), not O(minutes).

#ifndef CRMFLOW_CALENDAR_H_
#define CRMFLOW_CALENDAR_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/status.h"
#include "crmflow/timestamp.h"
#include "crmflow/value.h"

namespace crmflow {

namespace internal {
struct CalendarImpl;
}  // namespace internal

// Add, NextOpen and the SLA clocks look at most this many days (50 years)
// ahead; a result further away is refused rather than searched for.
inline constexpr int64_t kMaxCalendarSearchDays = 18263;

// Days of the week in ISO order (Monday first), used as indexes.
enum class Weekday {
  kMonday = 0,
  kTuesday,
  kWednesday,
  kThursday,
  kFriday,
  kSaturday,
  kSunday
};

// Returns "monday" ... "sunday".
const char* WeekdayName(Weekday day);

// A wall-clock interval [start, end) of one day, in seconds after local
// midnight: 0 <= start < end <= 86400 (86400 is 24:00).
struct WorkInterval {
  int start_seconds = 0;
  int end_seconds = 0;

  // Returns the interval hh:mm-hh:mm, e.g. Hm(9, 0, 17, 30); Hm(22, 0,
  // 24, 0) ends at midnight.  No range check here (Create checks).
  static constexpr WorkInterval Hm(int start_hour, int start_minute,
                                   int end_hour, int end_minute) {
    return WorkInterval{start_hour * 3600 + start_minute * 60,
                        end_hour * 3600 + end_minute * 60};
  }
  bool operator==(const WorkInterval& o) const {
    return start_seconds == o.start_seconds && end_seconds == o.end_seconds;
  }
};

// Parses "09:00-12:00 13:00-17:00" (also comma-separated; hh:mm or
// hh:mm:ss; "24:00" allowed as an end).  The empty text gives no
// intervals.  Fails with kInvalidArgument quoting the bad part.  Ranges
// and overlaps are checked by BusinessCalendar::Create, not here.
StatusOr<std::vector<WorkInterval>> ParseWorkIntervals(std::string_view text);

// Formats an interval as "09:00-17:00" (seconds shown only when non-zero).
std::string FormatWorkInterval(const WorkInterval& interval);

// A date of the proleptic Gregorian calendar.
struct CivilDate {
  int year = 1970;
  int month = 1;
  int day = 1;
  bool operator==(const CivilDate& o) const {
    return year == o.year && month == o.month && day == o.day;
  }
};

// Formats a date as "2026-12-24".
std::string FormatCivilDate(const CivilDate& date);

// A date with its own intervals replacing the weekly ones; no intervals
// means closed all day (the same as a holiday).
struct SpecialDay {
  CivilDate date;
  std::vector<WorkInterval> intervals;
};

// The description of a calendar; BusinessCalendar::Create checks it.
// The chaining setters return *this.
struct CalendarSpec {
  // The zone the intervals are read in.
  TimeZone zone;
  // Weekly intervals, indexed by Weekday; in any order, touching ones are
  // merged, overlapping ones refused.
  std::array<std::vector<WorkInterval>, 7> weekly;
  // Whole days closed.  Listing a date twice is harmless.
  std::vector<CivilDate> holidays;
  // Dates with their own intervals.  A date may appear once, and not also
  // among the holidays.
  std::vector<SpecialDay> special_days;

  // Sets the intervals of one weekday.
  CalendarSpec& Day(Weekday day, std::vector<WorkInterval> intervals);
  // Sets Monday to Friday to `intervals`.
  CalendarSpec& Weekdays(const std::vector<WorkInterval>& intervals);
  // Sets all seven days to `intervals`.
  CalendarSpec& EveryDay(const std::vector<WorkInterval>& intervals);
  // Adds a holiday.
  CalendarSpec& Holiday(CivilDate date);
  // Adds a special day.
  CalendarSpec& Special(CivilDate date, std::vector<WorkInterval> intervals);
};

// A validated business calendar.  Immutable; copies share their state, so
// copying is cheap, and every method is safe to call from several threads
// at once.  A default-constructed calendar is 24x7 in UTC.
class BusinessCalendar {
 public:
  // Returns the 24x7 calendar in UTC.
  BusinessCalendar();

  // Returns the calendar that is always open; `zone` only serves to show
  // instants (explanations of SLA clocks).  Business time is elapsed time.
  static BusinessCalendar TwentyFourSeven(const TimeZone& zone = TimeZone());

  // Checks `spec` and builds the calendar.  Fails with kInvalidArgument,
  // naming the weekday or date and the interval, for: an interval out of
  // 00:00-24:00, empty or inverted ("monday: interval 17:00-09:00 is
  // inverted ..."); two overlapping intervals of a day; an impossible date;
  // a date given twice as a special day or both as holiday and special day;
  // a calendar with no working time at all.  A spec that is open 00:00-24:00
  // every day with no holidays or special days gives the 24x7 calendar.
  static StatusOr<BusinessCalendar> Create(const CalendarSpec& spec);

  // Returns true for the always-open calendar.
  bool is_24x7() const;
  // Returns the calendar's time zone.
  const TimeZone& zone() const;

  // Returns the earliest instant r >= start with Between(start, r) ==
  // business: the instant when `business` of working time has elapsed
  // since `start`.  Consequences: starting outside hours, the count begins
  // at the next opening; a result that falls exactly on a closing boundary
  // is that boundary (17:00, not the next morning's 09:00); Add(t, 0) is t
  // itself, open or not (use NextOpen for the next opening).  Fails with
  // kInvalidArgument for a negative duration, and when the result would lie
  // more than kMaxCalendarSearchDays after `start`.
  StatusOr<Timestamp> Add(Timestamp start, Duration business) const;

  // Returns the business time in [a, b).  Antisymmetric: for b < a it is
  // -Between(b, a), so Between(a, b) + Between(b, c) == Between(a, c) for
  // any a, b, c; zero when a == b.  Never fails; costs O(days in between).
  Duration Between(Timestamp a, Timestamp b) const;

  // Returns true when `t` lies in a working window.
  bool IsOpen(Timestamp t) const;

  // Returns t when the calendar is open at t, else the start of the next
  // window.  Fails with kInvalidArgument when there is none within
  // kMaxCalendarSearchDays.
  StatusOr<Timestamp> NextOpen(Timestamp t) const;

  // Returns the working windows that intersect [a, b), clipped to it, in
  // order; touching windows (across midnight) are joined.  Empty when
  // b <= a.  For explanations and for timers that need to know when the
  // clock stops counting.
  std::vector<std::pair<Timestamp, Timestamp>> OpenWindows(Timestamp a,
                                                           Timestamp b) const;

 private:
  explicit BusinessCalendar(
      std::shared_ptr<const internal::CalendarImpl> impl);
  std::shared_ptr<const internal::CalendarImpl> impl_;
};

}  // namespace crmflow

#endif  // CRMFLOW_CALENDAR_H_
