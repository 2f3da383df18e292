// timestamp_test.cc: ParseTimestamp, TimestampParser and TimeZone on the
// formats real exports use and on daylight-saving days.  Expected instants
// are epoch seconds worked out by hand from the zone's offset that day.

#include "crmflow/timestamp.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace crmflow {
namespace {

constexpr int64_t kSecond = 1000000;

TimeZone Zone(const char* name) {
  auto zone = TimeZone::Load(name);
  EXPECT_TRUE(zone.ok()) << zone.status().ToString();
  return zone.ok() ? zone.value() : TimeZone();
}

int64_t ParseMicros(std::string_view text, std::string_view format,
                    const TimeZone& zone) {
  auto t = ParseTimestamp(text, format, zone);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? t.value().micros : -1;
}

TEST(ParseTimestamp, DayMonthYearInUtc) {
  TimeZone utc;

  int64_t micros = ParseMicros("29/2/2016 01:16", "%d/%m/%Y %H:%M", utc);

  // 2016-02-29T01:16:00Z.
  EXPECT_EQ(micros, 1456708560 * kSecond);
}

TEST(ParseTimestamp, DayMonthYearInSaoPauloUsesMinusThree) {
  TimeZone sao_paulo = Zone("America/Sao_Paulo");

  int64_t micros =
      ParseMicros("29/2/2016 01:16", "%d/%m/%Y %H:%M", sao_paulo);

  // Summer time ended on 2016-02-21, so 01:16-03:00 is 04:16Z.
  EXPECT_EQ(micros, 1456719360 * kSecond);
}

TEST(ParseTimestamp, TwelveHourClockWithPm) {
  TimeZone utc;

  int64_t micros = ParseMicros("12/31/2017 09:05:00 PM",
                               "%m/%d/%Y %I:%M:%S %p", utc);

  // 21:05:00Z.
  EXPECT_EQ(micros, 1514754300 * kSecond);
}

TEST(ParseTimestamp, TwelveAmIsMidnightAndTwelvePmIsNoon) {
  TimeZone utc;

  int64_t midnight =
      ParseMicros("1/1/2026 12:00 AM", "%m/%d/%Y %I:%M %p", utc);
  int64_t noon = ParseMicros("1/1/2026 12:00 pm", "%m/%d/%Y %I:%M %p", utc);

  // 2026-01-01T00:00:00Z = 1767225600.
  EXPECT_EQ(midnight, 1767225600 * kSecond);
  EXPECT_EQ(noon, (1767225600 + 12 * 3600) * kSecond);
}

TEST(ParseTimestamp, HourWithAmPmReadsLikeTwelveHourClock) {
  TimeZone utc;
  const char kFormat[] = "%Y-%m-%d %H:%M:%S %p";

  int64_t midnight = ParseMicros("2021-12-31 12:00:00 AM", kFormat, utc);
  int64_t one_am = ParseMicros("2021-12-31 01:00:00 AM", kFormat, utc);
  int64_t half_past_noon =
      ParseMicros("2021-12-31 12:30:00 PM", kFormat, utc);
  int64_t one_pm = ParseMicros("2021-12-31 01:00:00 PM", kFormat, utc);

  // 2021-12-31T00:00:00Z = 1640908800.
  EXPECT_EQ(midnight, 1640908800 * kSecond);
  EXPECT_EQ(one_am, (1640908800 + 3600) * kSecond);
  EXPECT_EQ(half_past_noon, (1640908800 + 12 * 3600 + 1800) * kSecond);
  EXPECT_EQ(one_pm, (1640908800 + 13 * 3600) * kSecond);
}

TEST(ParseTimestamp, TwelveHourClockQuarterPastTwelveAm) {
  TimeZone utc;

  int64_t micros =
      ParseMicros("2021-12-31 12:15 am", "%Y-%m-%d %I:%M %p", utc);

  // 00:15 on 2021-12-31: 1640908800 + 900.
  EXPECT_EQ(micros, (1640908800 + 900) * kSecond);
}

TEST(ParseTimestamp, InstantOutsideYearsOneTo9999IsRefused) {
  TimeZone utc;
  const char kExpected[] = " out of range (expected a time in years 1 to "
                           "9999 UTC)";

  // 00:30 at +01:00 on 0001-01-01 is 23:30Z in year 0; 23:30 at -01:00
  // on 9999-12-31 is 00:30Z in year 10000.
  auto early = ParseTimestamp("0001-01-01T00:30:00+01:00", "", utc);
  auto late = ParseTimestamp("9999-12-31T23:30:00-01:00", "iso", utc);
  auto formatted = ParseTimestamp("01/01/0001 00:30 +0100",
                                  "%d/%m/%Y %H:%M %z", utc);

  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), Code::kParseError);
  EXPECT_EQ(early.status().message(),
            std::string("time \"0001-01-01T00:30:00+01:00\"") + kExpected);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().message(),
            std::string("time \"9999-12-31T23:30:00-01:00\"") + kExpected);
  ASSERT_FALSE(formatted.ok());
  EXPECT_EQ(formatted.status().message(),
            std::string("time \"01/01/0001 00:30 +0100\"") + kExpected);
}

TEST(ParseTimestamp, NaiveTimeMovedOutOfRangeByTheZoneIsRefused) {
  // zoneinfo gives Tokyo its local mean time, +09:18:59, before 1888, so
  // 0001-01-01 08:00 there is 0000-12-31T22:41:01Z, in year 0.
  TimeZone tokyo = Zone("Asia/Tokyo");

  auto t = ParseTimestamp("0001-01-01 08:00", "", tokyo);

  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(),
            "time \"0001-01-01 08:00\" out of range (expected a time in "
            "years 1 to 9999 UTC)");
}

TEST(ParseTimestamp, FirstAndLastInstantsAreKept) {
  TimeZone utc;

  int64_t first = ParseMicros("0001-01-01T01:00:00+01:00", "", utc);
  int64_t last = ParseMicros("9999-12-31T22:59:59.999999-01:00", "", utc);

  // 0001-01-01T00:00:00Z is 62135596800 s before the epoch;
  // 10000-01-01T00:00:00Z would be 253402300800 s after it.
  EXPECT_EQ(first, -62135596800 * kSecond);
  EXPECT_EQ(last, 253402300800 * kSecond - 1);
  EXPECT_EQ(first, Timestamp::kMinMicros);
  EXPECT_EQ(last, Timestamp::kMaxMicros);
}

TEST(ParseTimestamp, IsoWithOffsetsIgnoresTheZone) {
  TimeZone berlin = Zone("Europe/Berlin");

  int64_t z = ParseMicros("2026-01-15T12:30:45Z", "", berlin);
  int64_t plus = ParseMicros("2026-01-15T13:30:45+01:00", "iso", berlin);
  int64_t compact = ParseMicros("2026-01-15T07:30:45-0500", "", berlin);
  int64_t hours = ParseMicros("2026-01-15 14:30:45+02", "", berlin);

  EXPECT_EQ(z, 1768480245 * kSecond);
  EXPECT_EQ(plus, 1768480245 * kSecond);
  EXPECT_EQ(compact, 1768480245 * kSecond);
  EXPECT_EQ(hours, 1768480245 * kSecond);
}

TEST(ParseTimestamp, IsoFractionKeepsMicroseconds) {
  TimeZone utc;

  int64_t millis = ParseMicros("2026-03-02T09:00:00.120Z", "", utc);
  int64_t nanos = ParseMicros("2026-03-02T09:00:00.123456789Z", "", utc);

  EXPECT_EQ(millis, 1772442000 * kSecond + 120000);
  EXPECT_EQ(nanos, 1772442000 * kSecond + 123456);
}

TEST(ParseTimestamp, NaiveIsoIsReadInTheZone) {
  TimeZone berlin = Zone("Europe/Berlin");

  int64_t micros = ParseMicros("2026-01-15 13:30:45", "", berlin);

  // Berlin is at +01:00 in January: 2026-01-15T12:30:45Z.
  EXPECT_EQ(micros, 1768480245 * kSecond);
}

TEST(ParseTimestamp, CompactDateWithoutSeparators) {
  TimeZone utc;

  int64_t micros = ParseMicros("20170102", "%Y%m%d", utc);

  // 2017-01-02T00:00:00Z = 1483315200.
  EXPECT_EQ(micros, 1483315200 * kSecond);
}

TEST(ParseTimestamp, MonthNameAndOneSpaceMatchingSeveral) {
  TimeZone utc;

  int64_t micros = ParseMicros("15 Jan  2026 12:30", "%d %b %Y %H:%M", utc);

  // 2026-01-15T12:30:00Z = 1768480245 - 45.
  EXPECT_EQ(micros, 1768480200 * kSecond);
}

TEST(ParseTimestamp, SkippedHourInNewYorkIsReadWithTheOffsetBeforeTheGap) {
  TimeZone new_york = Zone("America/New_York");

  int64_t micros = ParseMicros("2026-03-08 02:30", "", new_york);

  // 02:30 does not exist on 2026-03-08; read with the standard-time offset
  // in force before the jump (-05:00) it is 07:30Z, i.e. 03:30 EDT.
  // 2026-03-08T00:00:00Z is 1772928000.
  EXPECT_EQ(micros, (1772928000 + 7 * 3600 + 30 * 60) * kSecond);
}

TEST(ParseTimestamp, HourAfterTheGapInNewYorkIsDaylightTime) {
  TimeZone new_york = Zone("America/New_York");

  int64_t micros = ParseMicros("2026-03-08 03:00", "", new_york);

  // 03:00-04:00 is the transition instant, 07:00Z.
  EXPECT_EQ(micros, 1772953200 * kSecond);
}

TEST(ParseTimestamp, RepeatedHourInBerlinResolvesToTheEarlierInstant) {
  TimeZone berlin = Zone("Europe/Berlin");

  int64_t micros = ParseMicros("2026-10-25 02:30", "", berlin);

  // 02:30 happens at +02:00 (00:30Z) and again at +01:00 (01:30Z).
  EXPECT_EQ(micros, 1792888200 * kSecond);
}

TEST(ParseTimestamp, RepeatedHourInNewYorkResolvesToTheEarlierInstant) {
  TimeZone new_york = Zone("America/New_York");

  int64_t micros = ParseMicros("2026-11-01 01:30", "", new_york);

  // 01:30-04:00 is 05:30Z, 01:30-05:00 is 06:30Z.
  EXPECT_EQ(micros, 1793511000 * kSecond);
}

TEST(ParseTimestamp, ErrorNamesTheTextAndTheFormat) {
  TimeZone utc;

  auto impossible = ParseTimestamp("31/2/2016 01:16", "%d/%m/%Y %H:%M", utc);
  auto garbage = ParseTimestamp("yesterday", "", utc);

  ASSERT_FALSE(impossible.ok());
  EXPECT_EQ(impossible.status().code(), Code::kParseError);
  EXPECT_EQ(impossible.status().message(),
            "unparseable time \"31/2/2016 01:16\" (expected %d/%m/%Y %H:%M)");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().message(),
            "unparseable time \"yesterday\" (expected ISO 8601)");
}

TEST(ParseTimestamp, TrailingTextIsRefused) {
  TimeZone utc;

  auto t = ParseTimestamp("2026-01-15T12:30:45Zjunk", "", utc);

  EXPECT_FALSE(t.ok());
}

TEST(TimestampParser, UnknownFieldIsInvalidArgument) {
  auto parser = TimestampParser::Create("%d.%m.%Q", TimeZone());

  ASSERT_FALSE(parser.ok());
  EXPECT_EQ(parser.status().code(), Code::kInvalidArgument);
  EXPECT_NE(parser.status().message().find("%Q"), std::string::npos);
}

TEST(TimestampParser, ReusesItsFormatAndZone) {
  auto parser =
      TimestampParser::Create("%d.%m.%Y %H:%M", Zone("Europe/Berlin"));
  ASSERT_TRUE(parser.ok());

  auto winter = parser->Parse("15.01.2026 13:30");
  auto summer = parser->Parse("15.07.2026 13:30");

  ASSERT_TRUE(winter.ok());
  ASSERT_TRUE(summer.ok());
  // 12:30Z in January; 11:30Z in July (+02:00): 181 days later.
  EXPECT_EQ(winter->micros, 1768480200 * kSecond);
  EXPECT_EQ(summer->micros,
            (1768480200 + 181 * 86400 - 3600) * kSecond);
}

TEST(TimeZone, UnknownNameIsInvalidArgument) {
  auto zone = TimeZone::Load("Mars/Olympus_Mons");

  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.status().code(), Code::kInvalidArgument);
  EXPECT_NE(zone.status().message().find("Mars/Olympus_Mons"),
            std::string::npos);
}

TEST(TimeZone, FromCivilRefusesImpossibleDates) {
  TimeZone utc;

  auto t = utc.FromCivil(2026, 2, 29, 0, 0, 0, 0);

  EXPECT_FALSE(t.ok());
}

TEST(TimeZone, OffsetAtFollowsDaylightSaving) {
  TimeZone berlin = Zone("Europe/Berlin");

  int before = berlin.OffsetAt(Timestamp{1792888200 * kSecond});  // 00:30Z
  int after = berlin.OffsetAt(Timestamp{1792891800 * kSecond});   // 01:30Z

  EXPECT_EQ(before, 7200);
  EXPECT_EQ(after, 3600);
}

TEST(TimeZone, FormatLocalShowsOffsetAndFractionOnlyWhenNonZero) {
  TimeZone berlin = Zone("Europe/Berlin");

  std::string whole = berlin.FormatLocal(Timestamp{1768480245 * kSecond});
  std::string fraction =
      berlin.FormatLocal(Timestamp{1768480245 * kSecond + 120000});
  std::string repeated = berlin.FormatLocal(Timestamp{1792891800 * kSecond});

  EXPECT_EQ(whole, "2026-01-15T13:30:45+01:00");
  EXPECT_EQ(fraction, "2026-01-15T13:30:45.120000+01:00");
  // The second 02:30 of 2026-10-25.
  EXPECT_EQ(repeated, "2026-10-25T02:30:00+01:00");
}

TEST(TimeZone, FormatLocalBeforeTheEpoch) {
  TimeZone utc;

  std::string text = utc.FormatLocal(Timestamp{-1});

  EXPECT_EQ(text, "1969-12-31T23:59:59.999999+00:00");
}

}  // namespace
}  // namespace crmflow
