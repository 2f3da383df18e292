// calendar_test.cc: BusinessCalendar on daylight-saving days, holidays,
// half days, midnight, year ends and leap days.  Every expected instant is
// worked out by hand in the comment above it (local time, the zone's offset
// that day, the UTC instant).

#include "crmflow/calendar.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "crmflow/timestamp.h"

namespace crmflow {
namespace {

constexpr int64_t kMinute = 60 * 1000000LL;
constexpr int64_t kHour = 60 * kMinute;

Duration Hours(int64_t h) { return Duration{h * kHour}; }
Duration Minutes(int64_t m) { return Duration{m * kMinute}; }

TimeZone Zone(const char* name) {
  auto zone = TimeZone::Load(name);
  EXPECT_TRUE(zone.ok()) << zone.status().ToString();
  return zone.ok() ? zone.value() : TimeZone();
}

Timestamp Utc(const char* iso) {
  auto t = Timestamp::ParseIso(iso);
  EXPECT_TRUE(t.ok()) << iso << ": " << t.status().ToString();
  return t.ok() ? t.value() : Timestamp{};
}

BusinessCalendar Make(const CalendarSpec& spec) {
  auto cal = BusinessCalendar::Create(spec);
  EXPECT_TRUE(cal.ok()) << cal.status().ToString();
  return cal.ok() ? cal.value() : BusinessCalendar();
}

Timestamp AddOk(const BusinessCalendar& cal, Timestamp t, Duration d) {
  auto r = cal.Add(t, d);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : Timestamp{};
}

std::string RefusedMessage(const CalendarSpec& spec) {
  auto cal = BusinessCalendar::Create(spec);
  EXPECT_FALSE(cal.ok());
  if (cal.ok()) return "";
  EXPECT_EQ(cal.status().code(), Code::kInvalidArgument);
  return cal.status().message();
}

// Berlin, Mon-Fri 09:00-17:00.
BusinessCalendar BerlinOffice() {
  CalendarSpec spec;
  spec.zone = Zone("Europe/Berlin");
  spec.Weekdays({WorkInterval::Hm(9, 0, 17, 0)});
  return Make(spec);
}

TEST(Calendar, C06aSpringForwardWindowIsLocalDaylightTime) {
  CalendarSpec spec;
  spec.zone = Zone("America/New_York");
  spec.EveryDay({WorkInterval::Hm(13, 0, 18, 0)});
  BusinessCalendar cal = Make(spec);

  // 2026-03-08 12:00 EDT (DST began 02:00 EST = 07:00Z) is 16:00Z; the
  // window 13:00-18:00 EDT is 17:00Z-22:00Z; 2 h in: 15:00 EDT = 19:00Z.
  Timestamp due = AddOk(cal, Utc("2026-03-08T16:00:00Z"), Hours(2));
  EXPECT_EQ(due, Utc("2026-03-08T19:00:00Z"));
  EXPECT_EQ(cal.zone().FormatLocal(due), "2026-03-08T15:00:00-04:00");

  // Control, the day before: 12:00 EST = 17:00Z; 15:00 EST = 20:00Z.
  Timestamp control = AddOk(cal, Utc("2026-03-07T17:00:00Z"), Hours(2));
  EXPECT_EQ(control, Utc("2026-03-07T20:00:00Z"));
  EXPECT_EQ(cal.zone().FormatLocal(control), "2026-03-07T15:00:00-05:00");
}

TEST(Calendar, C06bFallBackWeekendInBerlin) {
  BusinessCalendar cal = BerlinOffice();
  // Friday 2026-10-23 15:00 CEST = 13:00Z: Friday 15-17 uses 2 h (14 left),
  // Monday 26th 09-17 CET uses 8 h (6 left), Tuesday 27th 09:00 + 6 h =
  // 15:00 CET = 14:00Z.
  Timestamp opened = Utc("2026-10-23T13:00:00Z");

  Timestamp due = AddOk(cal, opened, Hours(16));

  EXPECT_EQ(due, Utc("2026-10-27T14:00:00Z"));
  EXPECT_EQ(cal.zone().FormatLocal(due), "2026-10-27T15:00:00+01:00");
  EXPECT_EQ(cal.Between(opened, due), Hours(16));
}

TEST(Calendar, ResultOnClosingBoundaryStaysThere) {
  BusinessCalendar cal = BerlinOffice();
  // Friday 2026-02-06 09:00 CET = 08:00Z; + 8 h = 17:00 CET = 16:00Z, not
  // Monday 09:00.
  EXPECT_EQ(AddOk(cal, Utc("2026-02-06T08:00:00Z"), Hours(8)),
            Utc("2026-02-06T16:00:00Z"));
  // Windows are half-open: open at 09:00, closed at 17:00.
  EXPECT_TRUE(cal.IsOpen(Utc("2026-02-06T08:00:00Z")));
  EXPECT_FALSE(cal.IsOpen(Utc("2026-02-06T16:00:00Z")));
  EXPECT_TRUE(cal.IsOpen(Utc("2026-02-06T15:59:59.999999Z")));
}

TEST(Calendar, StartOutsideHoursCountsFromNextOpening) {
  BusinessCalendar cal = BerlinOffice();
  // Saturday 2026-02-07 11:00 CET; the next opening is Monday 9th 09:00 CET
  // = 08:00Z; + 1 h = 09:00Z.
  Timestamp saturday = Utc("2026-02-07T10:00:00Z");
  EXPECT_EQ(AddOk(cal, saturday, Hours(1)), Utc("2026-02-09T09:00:00Z"));
  EXPECT_EQ(cal.NextOpen(saturday).value(), Utc("2026-02-09T08:00:00Z"));
  // Add(t, 0) is t itself, even when closed.
  EXPECT_EQ(AddOk(cal, saturday, Duration{0}), saturday);
  // NextOpen of an open instant is that instant.
  Timestamp monday_ten = Utc("2026-02-09T09:00:00Z");
  EXPECT_EQ(cal.NextOpen(monday_ten).value(), monday_ten);
}

TEST(Calendar, ExactToTheMicrosecondAcrossAWeekend) {
  BusinessCalendar cal = BerlinOffice();
  // Friday 16:59:59.999999 CET + 2 us: 1 us on Friday, 1 us on Monday
  // 09:00 CET (08:00Z).
  Timestamp t = Utc("2026-02-06T15:59:59.999999Z");
  EXPECT_EQ(AddOk(cal, t, Duration{2}), Utc("2026-02-09T08:00:00.000001Z"));
  EXPECT_EQ(cal.Between(t, Utc("2026-02-09T08:00:00.000001Z")), Duration{2});
}

TEST(Calendar, HolidayAndHalfDay) {
  CalendarSpec spec;
  spec.zone = Zone("Europe/Berlin");
  spec.Weekdays({WorkInterval::Hm(9, 0, 12, 0), WorkInterval::Hm(13, 0, 17, 0)})
      .Holiday({2026, 12, 25})
      .Special({2026, 12, 24}, {WorkInterval::Hm(9, 0, 12, 0)});
  BusinessCalendar cal = Make(spec);

  // Thursday 24th (half day) 10:00 CET = 09:00Z + 4 h: 10-12 uses 2 h,
  // Friday 25th holiday, weekend, Monday 28th 09:00 + 2 h = 11:00 CET =
  // 10:00Z.
  EXPECT_EQ(AddOk(cal, Utc("2026-12-24T09:00:00Z"), Hours(4)),
            Utc("2026-12-28T10:00:00Z"));
  // 13:30 CET: open on the 23rd, closed on the half day and the holiday;
  // 12:30 is the lunch break.
  EXPECT_TRUE(cal.IsOpen(Utc("2026-12-23T12:30:00Z")));
  EXPECT_FALSE(cal.IsOpen(Utc("2026-12-24T12:30:00Z")));
  EXPECT_FALSE(cal.IsOpen(Utc("2026-12-25T09:00:00Z")));
  EXPECT_FALSE(cal.IsOpen(Utc("2026-12-23T11:30:00Z")));
  // Whole week Mon 21st 00:00 to Mon 28th 00:00 CET: 3 x 7 h + 3 h.
  EXPECT_EQ(cal.Between(Utc("2026-12-20T23:00:00Z"),
                        Utc("2026-12-27T23:00:00Z")),
            Hours(24));
}

TEST(Calendar, WorkingSaturdayAsSpecialDay) {
  CalendarSpec spec;
  spec.zone = Zone("Europe/Berlin");
  spec.Weekdays({WorkInterval::Hm(9, 0, 17, 0)})
      .Special({2026, 2, 7}, {WorkInterval::Hm(10, 0, 14, 0)});
  BusinessCalendar cal = Make(spec);
  // Friday 6th 16:00 CET + 3 h: 1 h Friday, Saturday 10:00 + 2 h = 12:00
  // CET = 11:00Z.
  EXPECT_EQ(AddOk(cal, Utc("2026-02-06T15:00:00Z"), Hours(3)),
            Utc("2026-02-07T11:00:00Z"));
}

TEST(Calendar, MidnightSpanningShiftGivenAsTwoIntervals) {
  CalendarSpec spec;  // UTC
  spec.Day(Weekday::kMonday, {WorkInterval::Hm(22, 0, 24, 0)})
      .Day(Weekday::kTuesday, {WorkInterval::Hm(0, 0, 6, 0)});
  BusinessCalendar cal = Make(spec);
  // Monday 2026-02-02 23:00 + 3 h: 1 h to midnight, 2 h Tuesday = 02:00.
  EXPECT_EQ(AddOk(cal, Utc("2026-02-02T23:00:00Z"), Hours(3)),
            Utc("2026-02-03T02:00:00Z"));
  // The whole shift is 8 h; midnight itself is open.
  EXPECT_EQ(cal.Between(Utc("2026-02-02T21:00:00Z"),
                        Utc("2026-02-03T07:00:00Z")),
            Hours(8));
  EXPECT_TRUE(cal.IsOpen(Utc("2026-02-03T00:00:00Z")));
  // The two windows touch and are shown as one.
  auto windows = cal.OpenWindows(Utc("2026-02-02T00:00:00Z"),
                                 Utc("2026-02-04T00:00:00Z"));
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].first, Utc("2026-02-02T22:00:00Z"));
  EXPECT_EQ(windows[0].second, Utc("2026-02-03T06:00:00Z"));
  // Ending exactly at 24:00 stays at the boundary, which is also the next
  // opening.
  EXPECT_EQ(AddOk(cal, Utc("2026-02-02T23:00:00Z"), Hours(1)),
            Utc("2026-02-03T00:00:00Z"));
}

TEST(Calendar, YearEndWithNewYearHoliday) {
  CalendarSpec spec;  // UTC
  spec.Weekdays({WorkInterval::Hm(9, 0, 17, 0)}).Holiday({2026, 1, 1});
  BusinessCalendar cal = Make(spec);
  // Wednesday 2025-12-31 15:00 + 4 h: 2 h on the 31st, Thursday Jan 1 is a
  // holiday, Friday Jan 2 09:00 + 2 h = 11:00.
  EXPECT_EQ(AddOk(cal, Utc("2025-12-31T15:00:00Z"), Hours(4)),
            Utc("2026-01-02T11:00:00Z"));
  EXPECT_EQ(cal.Between(Utc("2025-12-31T00:00:00Z"),
                        Utc("2026-01-03T00:00:00Z")),
            Hours(16));
}

TEST(Calendar, LeapDay2028) {
  CalendarSpec spec;  // UTC
  spec.Weekdays({WorkInterval::Hm(9, 0, 17, 0)});
  BusinessCalendar cal = Make(spec);
  // Monday 2028-02-28 13:00 + 8 h: 4 h Monday, Tuesday Feb 29 09:00 + 4 h.
  EXPECT_EQ(AddOk(cal, Utc("2028-02-28T13:00:00Z"), Hours(8)),
            Utc("2028-02-29T13:00:00Z"));

  // With Feb 29 a holiday, the rest falls on Wednesday Mar 1.
  spec.Holiday({2028, 2, 29});
  BusinessCalendar closed = Make(spec);
  EXPECT_EQ(AddOk(closed, Utc("2028-02-28T13:00:00Z"), Hours(8)),
            Utc("2028-03-01T13:00:00Z"));

  // 2027 has no Feb 29.
  CalendarSpec bad = spec;
  bad.Holiday({2027, 2, 29});
  EXPECT_EQ(RefusedMessage(bad), "holiday 2027-02-29 is not a valid date");
}

TEST(Calendar, NewYorkFallBackDayLasts25Hours) {
  CalendarSpec spec;
  spec.zone = Zone("America/New_York");
  spec.Special({2026, 11, 1}, {WorkInterval::Hm(0, 0, 24, 0)});
  BusinessCalendar cal = Make(spec);
  // 2026-11-01 00:00 EDT = 04:00Z; 2026-11-02 00:00 EST = 05:00Z.
  Timestamp start = Utc("2026-11-01T04:00:00Z");
  Timestamp end = Utc("2026-11-02T05:00:00Z");
  EXPECT_EQ(cal.Between(start, end), Hours(25));
  EXPECT_EQ(AddOk(cal, start, Hours(25)), end);
  // 24 h in is 23:00 EST, still Nov 1.
  Timestamp t24 = AddOk(cal, start, Hours(24));
  EXPECT_EQ(cal.zone().FormatLocal(t24), "2026-11-01T23:00:00-05:00");
  // Asking for more than the day holds runs past the last working day.
  auto refused = cal.Add(start, Hours(26));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "business duration 26h is not reached within 18263 days after "
            "2026-11-01T04:00:00.000000Z");
}

TEST(Calendar, NewYorkSpringForwardDayLasts23Hours) {
  CalendarSpec spec;
  spec.zone = Zone("America/New_York");
  spec.EveryDay({WorkInterval::Hm(0, 0, 24, 0)}).Holiday({2026, 1, 1});
  BusinessCalendar cal = Make(spec);
  ASSERT_FALSE(cal.is_24x7());  // the holiday
  // 2026-03-08 00:00 EST = 05:00Z to 2026-03-09 00:00 EDT = 04:00Z.
  EXPECT_EQ(cal.Between(Utc("2026-03-08T05:00:00Z"),
                        Utc("2026-03-09T04:00:00Z")),
            Hours(23));
}

TEST(Calendar, WindowsInsideTheChangedHour) {
  CalendarSpec spec;
  spec.zone = Zone("America/New_York");
  // Spring forward: 02:30-03:30 on 2026-03-08 opens at the jump, 03:00 EDT
  // (07:00Z), so lasts 30 min.  Fall back: 01:00-02:00 on 2026-11-01 runs
  // from 01:00 EDT (05:00Z) to 02:00 EST (07:00Z), 2 h.
  spec.Special({2026, 3, 8}, {WorkInterval::Hm(2, 30, 3, 30)})
      .Special({2026, 11, 1}, {WorkInterval::Hm(1, 0, 2, 0)});
  BusinessCalendar cal = Make(spec);
  EXPECT_EQ(cal.NextOpen(Utc("2026-03-08T00:00:00Z")).value(),
            Utc("2026-03-08T07:00:00Z"));
  EXPECT_EQ(cal.Between(Utc("2026-03-08T00:00:00Z"),
                        Utc("2026-03-09T00:00:00Z")),
            Minutes(30));
  EXPECT_EQ(cal.NextOpen(Utc("2026-10-31T00:00:00Z")).value(),
            Utc("2026-11-01T05:00:00Z"));
  EXPECT_EQ(cal.Between(Utc("2026-11-01T00:00:00Z"),
                        Utc("2026-11-02T00:00:00Z")),
            Hours(2));
  EXPECT_TRUE(cal.IsOpen(Utc("2026-11-01T06:30:00Z")));  // 01:30 EST
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm), for
// an independent weekday.
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// Checks IsOpen against the local wall clock read through
// TimeZone::FormatLocal (a code path of its own), every quarter hour from
// `from` for `days` days, and Between against the open quarter hours.  The
// windows avoid ending inside a repeated hour, where "the first instant the
// clock reads the end" and "the clock shows a time inside the window"
// differ by design.
void CheckAgainstWallClock(const char* zone_name, const char* from,
                           int days) {
  CalendarSpec spec;
  spec.zone = Zone(zone_name);
  spec.Weekdays({WorkInterval::Hm(8, 0, 12, 0),
                 WorkInterval::Hm(13, 30, 17, 15)})
      .Day(Weekday::kSaturday, {WorkInterval::Hm(0, 0, 24, 0)})
      .Day(Weekday::kSunday, {WorkInterval::Hm(1, 0, 4, 0)});
  BusinessCalendar cal = Make(spec);
  const int64_t step = 15 * kMinute;
  Timestamp begin = Utc(from);
  Timestamp end{begin.micros + days * 24 * kHour};
  int64_t open_steps = 0;
  for (int64_t t = begin.micros; t < end.micros; t += step) {
    std::string local = spec.zone.FormatLocal(Timestamp{t});
    int year = std::stoi(local.substr(0, 4));
    int month = std::stoi(local.substr(5, 2));
    int day = std::stoi(local.substr(8, 2));
    int tod = std::stoi(local.substr(11, 2)) * 60 +
              std::stoi(local.substr(14, 2));
    int64_t wd = (DaysFromCivil(year, month, day) + 3) % 7;  // Monday 0
    if (wd < 0) wd += 7;
    bool expected = wd < 5   ? (tod >= 480 && tod < 720) ||
                                   (tod >= 810 && tod < 1035)
                    : wd == 5 ? true
                              : tod >= 60 && tod < 240;
    ASSERT_EQ(cal.IsOpen(Timestamp{t}), expected) << zone_name << " " << local;
    if (expected) ++open_steps;
  }
  EXPECT_EQ(cal.Between(begin, end).micros, open_steps * step) << zone_name;
}

TEST(Calendar, IsOpenMatchesTheLocalWallClockInManyZones) {
  // Two years each, with New York, Berlin and Sydney changing at 02:00 or
  // 03:00 on Sundays, Sao Paulo (then) at midnight, Kolkata never.
  CheckAgainstWallClock("America/New_York", "2017-01-01T00:00:00Z", 731);
  CheckAgainstWallClock("Europe/Berlin", "2017-01-01T00:00:00Z", 731);
  CheckAgainstWallClock("Australia/Sydney", "2017-01-01T00:00:00Z", 731);
  CheckAgainstWallClock("America/Sao_Paulo", "2017-01-01T00:00:00Z", 731);
  CheckAgainstWallClock("Asia/Kolkata", "2017-01-01T00:00:00Z", 60);
  // Beyond the changes CCTZ lists explicitly (the slow, exact path).
  CheckAgainstWallClock("Europe/Berlin", "2600-03-15T00:00:00Z", 240);
}

TEST(Calendar, BetweenAgreesWithAddOverASweep) {
  CalendarSpec spec;
  spec.zone = Zone("Europe/Berlin");
  spec.Weekdays({WorkInterval::Hm(9, 0, 12, 0), WorkInterval::Hm(13, 0, 17, 0)})
      .Holiday({2026, 10, 28})
      .Special({2026, 10, 30}, {WorkInterval::Hm(9, 0, 11, 30)});
  BusinessCalendar cal = Make(spec);
  const Duration spans[] = {Duration{1}, Minutes(30), Hours(8), Hours(16),
                            Hours(45)};
  // Start instants every 37 min 0.123456 s for three weeks across the end
  // of summer time (2026-10-25).
  Timestamp first = Utc("2026-10-16T00:00:00Z");
  int checked = 0;
  for (int64_t t = first.micros; t < first.micros + 21 * 24 * kHour;
       t += 37 * kMinute + 123456) {
    for (Duration d : spans) {
      Timestamp a{t};
      Timestamp r = AddOk(cal, a, d);
      ASSERT_EQ(cal.Between(a, r), d) << a.ToIso() << " + " << d.micros;
      // r is the earliest such instant.
      ASSERT_LT(cal.Between(a, Timestamp{r.micros - 1}).micros, d.micros)
          << a.ToIso();
      // Antisymmetric.
      ASSERT_EQ(cal.Between(r, a).micros, -d.micros);
      ++checked;
    }
  }
  EXPECT_GT(checked, 4000);
}

TEST(Calendar, BetweenIsAdditive) {
  BusinessCalendar cal = BerlinOffice();
  Timestamp a = Utc("2026-10-22T10:17:00Z");
  Timestamp b = Utc("2026-10-26T07:00:00Z");
  Timestamp c = Utc("2026-10-24T12:00:00Z");
  EXPECT_EQ(cal.Between(a, b).micros,
            cal.Between(a, c).micros + cal.Between(c, b).micros);
  EXPECT_EQ(cal.Between(a, a), Duration{0});
  // Thursday 12:17-17:00 CEST and Friday 8 h; nothing at the weekend or
  // before Monday 09:00 CET.
  EXPECT_EQ(cal.Between(a, b), Duration{Hours(12).micros + 43 * kMinute});
}

TEST(Calendar, TwentyFourSevenIsElapsedTime) {
  BusinessCalendar cal = BusinessCalendar::TwentyFourSeven();
  EXPECT_TRUE(cal.is_24x7());
  Timestamp t = Utc("2026-03-08T05:30:00Z");
  EXPECT_EQ(AddOk(cal, t, Hours(30)), Utc("2026-03-09T11:30:00Z"));
  EXPECT_EQ(cal.Between(t, Utc("2026-03-09T11:30:00Z")), Hours(30));
  EXPECT_TRUE(cal.IsOpen(t));

  // 00:00-24:00 every day with nothing else is the same calendar.
  CalendarSpec spec;
  spec.zone = Zone("America/New_York");
  spec.EveryDay({WorkInterval::Hm(0, 0, 24, 0)});
  EXPECT_TRUE(Make(spec).is_24x7());
}

TEST(Calendar, RefusesBadCalendarsWithTheirMessages) {
  CalendarSpec none;
  EXPECT_EQ(RefusedMessage(none),
            "calendar has no working time (expected weekly intervals or a "
            "special day with intervals)");

  CalendarSpec closed_special;
  closed_special.Special({2026, 5, 1}, {});
  EXPECT_EQ(RefusedMessage(closed_special),
            "calendar has no working time (expected weekly intervals or a "
            "special day with intervals)");

  CalendarSpec overlap;
  overlap.Day(Weekday::kMonday,
              {WorkInterval::Hm(11, 0, 13, 0), WorkInterval::Hm(9, 0, 12, 0)});
  EXPECT_EQ(RefusedMessage(overlap),
            "monday: intervals 09:00-12:00 and 11:00-13:00 overlap");

  CalendarSpec inverted;
  inverted.Day(Weekday::kTuesday, {WorkInterval::Hm(17, 0, 9, 0)});
  EXPECT_EQ(RefusedMessage(inverted),
            "tuesday: interval 17:00-09:00 is inverted (expected start before "
            "end; split an interval across midnight into one ending at 24:00 "
            "and one starting at 00:00)");

  CalendarSpec out_of_range;
  out_of_range.Weekdays({WorkInterval::Hm(9, 0, 25, 0)});
  EXPECT_EQ(RefusedMessage(out_of_range),
            "monday: interval 09:00-25:00 is out of range (expected times "
            "from 00:00 to 24:00)");

  CalendarSpec special_overlap;
  special_overlap.Weekdays({WorkInterval::Hm(9, 0, 17, 0)})
      .Special({2026, 12, 24}, {WorkInterval::Hm(9, 0, 12, 0),
                                WorkInterval::Hm(11, 0, 12, 30)});
  EXPECT_EQ(RefusedMessage(special_overlap),
            "special day 2026-12-24: intervals 09:00-12:00 and 11:00-12:30 "
            "overlap");

  CalendarSpec twice;
  twice.Weekdays({WorkInterval::Hm(9, 0, 17, 0)})
      .Special({2026, 12, 24}, {WorkInterval::Hm(9, 0, 12, 0)})
      .Special({2026, 12, 24}, {WorkInterval::Hm(9, 0, 11, 0)});
  EXPECT_EQ(RefusedMessage(twice), "special day 2026-12-24 is given twice");

  CalendarSpec both;
  both.Weekdays({WorkInterval::Hm(9, 0, 17, 0)})
      .Holiday({2026, 12, 24})
      .Special({2026, 12, 24}, {WorkInterval::Hm(9, 0, 12, 0)});
  EXPECT_EQ(RefusedMessage(both),
            "special day 2026-12-24 is also listed as a holiday");
}

TEST(Calendar, RefusesNegativeDurations) {
  BusinessCalendar cal = BerlinOffice();
  auto r = cal.Add(Utc("2026-02-06T08:00:00Z"), Duration{-kHour});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "negative business duration -1h (expected >= 0)");
  auto r24 = BusinessCalendar().Add(Timestamp{}, Duration{-1});
  EXPECT_FALSE(r24.ok());
}

TEST(Calendar, BoundedSearch) {
  // 60 years of 24x7 time is refused like any result past 50 years.
  BusinessCalendar always;
  EXPECT_FALSE(always.Add(Timestamp{}, Hours(60 * 8766)).ok());
  // An office open 8 h a week holds 50 x 52 x 8 = 20,800 h in 50 years.
  CalendarSpec spec;
  spec.Day(Weekday::kMonday, {WorkInterval::Hm(9, 0, 17, 0)});
  BusinessCalendar cal = Make(spec);
  EXPECT_TRUE(cal.Add(Utc("2026-01-01T00:00:00Z"), Hours(20000)).ok());
  EXPECT_FALSE(cal.Add(Utc("2026-01-01T00:00:00Z"), Hours(21000)).ok());
}

TEST(Calendar, ParsesIntervalText) {
  auto parsed = ParseWorkIntervals("09:00-12:00, 13:00-17:30 22:00-24:00");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  std::vector<WorkInterval> expected = {WorkInterval::Hm(9, 0, 12, 0),
                                        WorkInterval::Hm(13, 0, 17, 30),
                                        WorkInterval::Hm(22, 0, 24, 0)};
  EXPECT_EQ(parsed.value(), expected);
  auto bad = ParseWorkIntervals("9-17");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "unreadable interval \"9-17\" (expected hh:mm-hh:mm such as "
            "09:00-17:00)");
  EXPECT_EQ(FormatWorkInterval(WorkInterval{9 * 3600 + 5, 17 * 3600}),
            "09:00:05-17:00");
}

}  // namespace
}  // namespace crmflow
