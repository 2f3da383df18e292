// xes_fuzz.cc: libFuzzer target for the XES reader (xes.h).
//
// The input is an XES document.  It is read as it is, gzip-compressed as
// one member, and compressed as two concatenated members split at a point
// the input picks; the three reads must give equal logs or the same error
// (for malformed XML: an error, as Expat may place it differently when the
// bytes come in other pieces).
// Besides "no crash, no leak, no undefined behaviour" the target checks:
//   - an error is kParseError naming the input, as name:line:column for
//     what is inside the document;
//   - the log's structure holds: case offsets increase, each event belongs
//     to the case whose range holds it, events of a case are in time order,
//     row numbers are distinct;
//   - FromColumns(ToColumns()) gives an equal log (when every activity is
//     non-empty, which FromColumns requires);
//   - the log, written back as XES by this target, reads back equal (row
//     numbers aside: they count events as they appear in the file).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "crmflow/event_log.h"
#include "crmflow/xes.h"
#include "fuzz_util.h"

namespace {

using crmflow::Code;
using crmflow::EventLog;
using crmflow::StatusOr;
using crmflow_fuzz::Check;
using crmflow_fuzz::Fail;

const char kName[] = "fuzz.xes";

std::string Show(const StatusOr<EventLog>& log) {
  if (!log.ok()) return log.status().ToString();
  return std::to_string(log->num_cases()) + " cases, " +
         std::to_string(log->num_events()) + " events";
}

std::string AttributeOf(const EventLog& log, std::string_view name,
                        int64_t e) {
  int i = log.FindAttribute(name);
  return i < 0 ? std::string() : std::string(log.attribute(i, e));
}

// Compares two logs event by event; rows too when `rows` is set.  An
// attribute column missing from one log reads as "" there.
bool SameLog(const EventLog& a, const EventLog& b, bool rows,
             std::string* why) {
  if (a.num_cases() != b.num_cases() || a.num_events() != b.num_events()) {
    *why = "counts";
    return false;
  }
  for (int32_t c = 0; c < a.num_cases(); ++c) {
    if (a.case_id(c) != b.case_id(c) || a.case_size(c) != b.case_size(c)) {
      *why = "case " + std::to_string(c);
      return false;
    }
  }
  std::set<std::string> names;
  for (int i = 0; i < a.num_attributes(); ++i) names.insert(a.attribute_name(i));
  for (int i = 0; i < b.num_attributes(); ++i) names.insert(b.attribute_name(i));
  for (int64_t e = 0; e < a.num_events(); ++e) {
    if (a.case_of(e) != b.case_of(e) ||
        a.activity_name(a.activity(e)) != b.activity_name(b.activity(e)) ||
        a.time(e).micros != b.time(e).micros ||
        a.resource_name(a.resource(e)) != b.resource_name(b.resource(e)) ||
        a.lifecycle(e) != b.lifecycle(e) || (rows && a.row(e) != b.row(e))) {
      *why = "event " + std::to_string(e);
      return false;
    }
    for (const std::string& n : names) {
      if (AttributeOf(a, n, e) != AttributeOf(b, n, e)) {
        *why = "attribute " + n + " of event " + std::to_string(e);
        return false;
      }
    }
  }
  return true;
}

// Expat's verdict on malformed XML may name another position when the
// bytes arrive in other pieces (junk after the root element is seen as
// such or as an invalid token); that it fails is what must agree.
bool IsXmlError(const crmflow::Status& s) {
  return s.message().find("(expected well-formed XES XML)") !=
         std::string::npos;
}

void CheckSame(const StatusOr<EventLog>& a, const StatusOr<EventLog>& b,
               const std::string& what) {
  std::string why;
  if (a.ok() != b.ok() ||
      (!a.ok() && a.status().ToString() != b.status().ToString() &&
       !(IsXmlError(a.status()) && IsXmlError(b.status()))) ||
      (a.ok() && !SameLog(*a, *b, true, &why))) {
    Fail(what + " (" + why + "): " + Show(a) + " vs " + Show(b));
  }
}

void CheckStructure(const EventLog& log) {
  const auto& offsets = log.case_offsets();
  Check(offsets.size() == static_cast<size_t>(log.num_cases()) + 1 &&
            offsets.front() == 0 && offsets.back() == log.num_events(),
        "case offsets do not cover the events");
  std::set<int64_t> rows;
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    Check(log.case_begin(c) <= log.case_end(c), "case offsets decrease");
    Check(log.FindCase(log.case_id(c)) == c, "case id lookup fails");
    Check(!log.case_id(c).empty(), "empty case id");
    for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
      Check(log.case_of(e) == c, "event outside its case's range");
      if (e > log.case_begin(c)) {
        Check(log.time(e - 1).micros <= log.time(e).micros,
              "events of a case out of time order");
      }
      Check(rows.insert(log.row(e)).second, "row number repeated");
      Check(log.activity(e) >= 0 && log.activity(e) < log.activities().size(),
            "activity id out of range");
      Check(log.resource(e) >= -1 && log.resource(e) < log.resources().size(),
            "resource id out of range");
    }
  }
}

// XML text for an attribute value: markup and the blanks that attribute
// value normalisation would turn into spaces are written as references.
std::string Escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\t': out += "&#9;"; break;
      case '\n': out += "&#10;"; break;
      case '\r': out += "&#13;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string ToXes(const EventLog& log) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<log>\n";
  for (int32_t c = 0; c < log.num_cases(); ++c) {
    out += "<trace><string key=\"concept:name\" value=\"" +
           Escape(log.case_id(c)) + "\"/>\n";
    for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
      out += " <event><string key=\"concept:name\" value=\"" +
             Escape(log.activity_name(log.activity(e))) +
             "\"/><date key=\"time:timestamp\" value=\"" +
             log.time(e).ToIso() + "\"/>";
      if (log.resource(e) >= 0) {
        out += "<string key=\"org:resource\" value=\"" +
               Escape(log.resource_name(log.resource(e))) + "\"/>";
      }
      if (log.lifecycle(e) != crmflow::Lifecycle::kNone) {
        out += "<string key=\"lifecycle:transition\" value=\"" +
               std::string(crmflow::LifecycleName(log.lifecycle(e))) + "\"/>";
      }
      for (int i = 0; i < log.num_attributes(); ++i) {
        std::string_view v = log.attribute(i, e);
        if (v.empty()) continue;
        out += "<string key=\"" + Escape(log.attribute_name(i)) +
               "\" value=\"" + Escape(v) + "\"/>";
      }
      out += "</event>\n";
    }
    out += "</trace>\n";
  }
  return out + "</log>\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 65536) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  StatusOr<EventLog> plain = crmflow::ReadXesEventLogFromString(kName, text);
  if (!plain.ok()) {
    const std::string& m = plain.status().message();
    Check(plain.status().code() == Code::kParseError,
          "error is not kParseError: " + plain.status().ToString());
    Check(crmflow_fuzz::HasLineColumn(m, kName) ||
              m.compare(0, sizeof(kName) + 1, std::string(kName) + ": ") == 0,
          "error does not name the input: " + m);
  } else {
    CheckStructure(*plain);
  }

  const bool is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  if (!is_gzip) {
    // Through gzip, in one member and in two.
    CheckSame(plain,
              crmflow::ReadXesEventLogFromString(kName,
                                                 crmflow_fuzz::Gzip(text)),
              "gzip input reads differently");
    size_t cut = size == 0 ? 0 : (data[size - 1] * 131u + size) % (size + 1);
    std::string two = crmflow_fuzz::Gzip(std::string_view(text).substr(0, cut)) +
                      crmflow_fuzz::Gzip(std::string_view(text).substr(cut));
    CheckSame(plain, crmflow::ReadXesEventLogFromString(kName, two),
              "two gzip members read differently");
  }
  if (!plain.ok()) return 0;

  bool named = true;
  for (int32_t a = 0; a < plain->activities().size(); ++a) {
    named &= !plain->activity_name(a).empty();
  }
  if (named) {
    auto again = EventLog::FromColumns(plain->ToColumns());
    if (!again.ok()) {
      Fail("FromColumns(ToColumns()) fails: " + again.status().ToString());
    }
    std::string why;
    Check(SameLog(*plain, *again, true, &why),
          "FromColumns(ToColumns()) differs (" + why + ")");
  }

  std::string xes = ToXes(*plain);
  auto back = crmflow::ReadXesEventLogFromString("back.xes", xes);
  if (!back.ok()) {
    Fail("the log written back does not read: " + back.status().ToString());
  }
  std::string why;
  Check(SameLog(*plain, *back, false, &why),
        "the log written back reads differently (" + why + ")");
  return 0;
}
