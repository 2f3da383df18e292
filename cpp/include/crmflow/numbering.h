// numbering.h: human-readable, gap-free transaction numbers per kind.
//
// A kind may have a number format such as "SO-{year}-{n:06}" or
// "CASE-{n:04}".  Engine::Create, given an empty id, issues the next
// number of the kind's counter as the id.  The counter row is read and
// incremented inside the same store transaction as the insert (SQLite:
// BEGIN IMMEDIATE), so numbers are unique and gap-free under concurrent
// writers in several processes, and a failed create gives its number back.
// Counters are integers, never derived from issued text, so "CASE-10000"
// follows "CASE-9999" and survives a restart.
//
// Format fields (anything else is literal; "{{" and "}}" are braces):
//   {n}       the number, no padding
//   {n:0W}    the number zero-padded to at least W digits (1..18); wider
//             numbers are written in full: {n:04} gives 0042, 10000
//   {year}    four-digit year, {yy} two-digit year, {month} {day} two
//             digits, all read at the creation time in the format's zone
// A format has exactly one {n} field.
//
// With yearly_reset each calendar year (in `zone`) has its own counter
// starting at 1; without it one counter runs forever (period 0).
//
// Tables (SQLite; see docs/schema.md): numbering(kind, format,
// yearly_reset, zone) and counters(kind, period, last).  With the memory
// store both live in memory.
//
// Example:
//   NumberingSpec spec{.kind = "case", .format = "CASE-{n:04}"};
//   engine->SetNumbering(spec);
//   engine->SetCounter("case", 9998);   // a legacy import
//   CreateRequest req;
//   req.kind = "case";                   // req.id left empty
//   engine->Create(req);                 // id "CASE-9999"
//
// A Numbering belongs to one Engine and is not thread-safe.

#ifndef CRMFLOW_NUMBERING_H_
#define CRMFLOW_NUMBERING_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crmflow/status.h"
#include "crmflow/store.h"
#include "crmflow/timestamp.h"
#include "crmflow/value.h"

namespace crmflow {

// The numbering of one kind.
struct NumberingSpec {
  std::string kind;
  std::string format;         // e.g. "SO-{year}-{n:06}"
  bool yearly_reset = false;  // one counter per calendar year
  std::string zone = "UTC";   // IANA zone of the date fields and the reset
};

// A parsed number format.
class NumberFormat {
 public:
  // Parses `text`.  Fails with kInvalidArgument "number format "...":
  // column N: ..." for an unknown field, a bad width, a missing or second
  // {n}, or an unmatched brace.
  static StatusOr<NumberFormat> Parse(std::string_view text);

  // Returns the text for number `n` created at civil date year-month-day.
  std::string Format(int64_t n, int year, int month, int day) const;
  const std::string& text() const { return text_; }

 private:
  struct Part {
    enum Kind { kLiteral, kNumber, kYear, kYear2, kMonth, kDay } kind;
    std::string literal;
    int width = 0;
  };
  std::string text_;
  std::vector<Part> parts_;
};

// Per-kind formats and counters, kept in the engine's store.
class Numbering {
 public:
  // `store` must outlive the Numbering.
  explicit Numbering(Store* store);
  ~Numbering();

  // Saves `spec` (replacing the kind's previous one).  Fails with
  // kInvalidArgument for a bad format or zone, kStoreError.
  Status Define(const NumberingSpec& spec);
  // Returns the kind's numbering, or nullopt.
  StatusOr<std::optional<NumberingSpec>> Find(std::string_view kind);
  // Sets the last number issued for `kind` in `period` (0, or the year
  // with yearly_reset): the next one issued is last + 1.  Fails with
  // kInvalidArgument for a negative number.
  Status SetCounter(std::string_view kind, int64_t last, int64_t period);
  // Returns the last number issued (0 when none).
  StatusOr<int64_t> Counter(std::string_view kind, int64_t period);

  // Inside an open store transaction: increments the kind's counter and
  // returns the formatted number, or nullopt when the kind has no
  // numbering.  `taken` says whether an id already exists; taken numbers
  // (legacy imports) are skipped.  With the memory store the increment is
  // undone by Discard unless Keep is called.
  StatusOr<std::optional<std::string>> Next(
      std::string_view kind, Timestamp time,
      const std::function<StatusOr<bool>(const std::string&)>& taken);
  // Keeps (after a commit) or undoes (after a rollback) the last Next.
  void Keep();
  void Discard();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crmflow

#endif  // CRMFLOW_NUMBERING_H_
