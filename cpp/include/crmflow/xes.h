// xes.h: a streaming reader for XES event logs (IEEE 1849), plain or gzip.
//
// ReadXesEventLog turns an XES file into an EventLog (event_log.h).  The
// input is read in chunks (gzip detected by its magic bytes and inflated
// through zlib) and parsed with Expat, so memory grows with the events
// kept, not with the size of the file.  What is read:
//
//   trace  concept:name          -> the case id (required, non-empty)
//   event  concept:name          -> the activity (required, non-empty)
//          time:timestamp        -> the timestamp (required; ISO 8601 with
//                                   offset, values without one are UTC)
//          org:resource          -> the resource (optional)
//          lifecycle:transition  -> the lifecycle (optional)
//          any other string, int, float, date, boolean or id attribute
//                                -> a text attribute column named by its
//                                   key, holding the value as written
//
// Traces without events become cases with zero events.  Attributes nested
// inside attributes, lists, containers, <global> defaults and trace
// attributes other than concept:name are ignored, and so are events
// outside any trace.  Traces sharing a
// concept:name are merged into one case.  The row number of an event is
// its 0-based position in the file.
//
// Example:
//
//   auto log = crmflow::ReadXesEventLog("helpdesk.xes.gz");
//   if (!log.ok()) return log.status();  // "helpdesk.xes.gz:12:5: ..."
//   std::cout << log->num_cases() << " cases\n";

#ifndef CRMFLOW_XES_H_
#define CRMFLOW_XES_H_

#include <string>

#include "crmflow/event_log.h"
#include "crmflow/status.h"

namespace crmflow {

// Reads the XES file at `path` (plain or gzip).  Fails with kNotFound
// naming the path when it cannot be opened, and with kParseError
// `path:line:column: what (expected ...)` for malformed XML (Expat's
// message), a broken gzip stream, a trace or event without concept:name
// or with an empty one (named at the attribute, in the CSV reader's words:
// `empty case id`, `empty activity in case X`), an event without
// time:timestamp, an unparseable timestamp or one outside years 1 to 9999
// UTC, or a piece of markup (a tag with its attribute values, a comment)
// over 256 MiB, which is refused where it starts rather than held in
// memory whole.
StatusOr<EventLog> ReadXesEventLog(const std::string& path);

// Same, from XES text in memory (plain, or gzip bytes); `name` stands for
// the file in messages.
StatusOr<EventLog> ReadXesEventLogFromString(const std::string& name,
                                             const std::string& data);

}  // namespace crmflow

#endif  // CRMFLOW_XES_H_
