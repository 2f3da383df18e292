// timestamp.h: turning the timestamps of real exports into UTC instants.
//
// Exports write times in many ways: ISO 8601 with or without offset,
// "29/2/2016 01:16", "12/31/2017 09:05:00 PM", "20170102".  ParseTimestamp
// reads one of them given a format, and interprets a value without an
// offset as wall-clock time in a given IANA zone (through the CCTZ library
// and the system's zoneinfo).  A wall-clock time that occurs twice (the
// hour repeated when daylight saving ends) resolves to its first
// occurrence; one that does not exist (the hour skipped when it starts) is
// read with the offset in force before the change, so 02:30 on a
// spring-forward day in New York is 07:30Z, shown as 03:30 daylight time,
// as Python's zoneinfo does with fold=0.
//
// Formats use strftime-like fields:
//   %Y year (4 digits)   %m month 1-12 (1 or 2 digits)   %d day 1-31
//   %H hour 0-23         %I hour 1-12   %p AM/PM         %M minute
//   %S second            %f fraction, 1-9 digits (kept to microseconds)
//   %z Z, +hh:mm, +hhmm or +hh     %b month name (Jan ...)   %% percent
// any other character must match itself; one space matches one or more.
// With %p, an %H hour of 1 to 12 reads as %I does (12 AM is midnight,
// 12 PM noon), as some exports write it.
// The format "" or "iso" accepts ISO 8601: date, 'T' or ' ', time with
// optional seconds and fraction, optional offset.

#ifndef CRMFLOW_TIMESTAMP_H_
#define CRMFLOW_TIMESTAMP_H_

#include <memory>
#include <string>
#include <string_view>

#include "crmflow/status.h"
#include "crmflow/value.h"

namespace crmflow {

// An IANA time zone ("Europe/Berlin", "UTC").  Copyable and cheap.
class TimeZone {
 public:
  // Returns UTC.
  TimeZone();
  // Loads `name`; fails with kInvalidArgument naming it when unknown.
  static StatusOr<TimeZone> Load(std::string_view name);

  const std::string& name() const;
  // Returns the instant of a wall-clock time in this zone (see the file
  // comment for skipped and repeated times).
  StatusOr<Timestamp> FromCivil(int year, int month, int day, int hour,
                                int minute, int second, int micros) const;
  // Returns the UTC offset in seconds at `t`.
  int OffsetAt(Timestamp t) const;
  // Formats `t` as local ISO 8601 with offset, "2026-01-15T22:30:45+01:00"
  // (fraction shown only when non-zero).
  std::string FormatLocal(Timestamp t) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Returns the reason given for an instant outside Timestamp::InRange:
// `time WHAT out of range (expected a time in years 1 to 9999 UTC)`, where
// `what` names the value (the quoted text read, or the microseconds).
std::string TimeOutOfRange(std::string_view what);

// Parses `text` with `format`; values without offset are read in `zone`.
// Fails with kParseError: `unparseable time "31/2/2016" (expected
// %d/%m/%Y %H:%M)`, or TimeOutOfRange for a value whose instant is
// outside years 1 to 9999 UTC ("0001-01-01T00:30:00+01:00" is in year 0);
// the caller adds file:line:column.
StatusOr<Timestamp> ParseTimestamp(std::string_view text,
                                   std::string_view format,
                                   const TimeZone& zone);

// Parses once, then reuses the compiled format (for readers).
class TimestampParser {
 public:
  // Fails with kInvalidArgument for an unknown field in `format`.
  static StatusOr<TimestampParser> Create(std::string_view format,
                                          const TimeZone& zone);
  StatusOr<Timestamp> Parse(std::string_view text) const;
  const std::string& format() const { return format_; }

 private:
  std::string format_;
  TimeZone zone_;
};

}  // namespace crmflow

#endif  // CRMFLOW_TIMESTAMP_H_
