// csv.h: a streaming reader for the CSV files real CRM exports come as.
//
// Handles RFC 4180 quoting (delimiters, CR, LF and doubled quotes inside
// quoted fields), a UTF-8 byte-order mark (dropped, never part of the first
// header name), LF or CRLF line ends, the delimiters ',' ';' tab and '|'
// (sniffed from the header line when not given), and gzip input (detected
// by its magic bytes, read through zlib).  Fields must be valid UTF-8.
//
// Each record knows the physical line it starts on (1-based, the header is
// line 1), so errors can name file:line:column.
//
// Example:
//
//   auto r = crmflow::CsvReader::Open("orders.csv.gz", {});
//   if (!r.ok()) return r.status();
//   std::vector<std::string> fields;
//   while (true) {
//     auto more = r.value()->Next(&fields);
//     if (!more.ok()) return more.status();   // names file:line:column
//     if (!more.value()) break;
//     ...
//   }
//
// A reader is not thread-safe.

#ifndef CRMFLOW_CSV_H_
#define CRMFLOW_CSV_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/status.h"

namespace crmflow {

struct CsvOptions {
  // 0 sniffs the delimiter from the header line (the most frequent of
  // , ; tab | outside quotes); default 0.
  char delimiter = 0;
  // true: the first record is the header; default true.
  bool header = true;
};

class CsvReader {
 public:
  // Opens a file (plain or gzip).  Fails with kNotFound / kParseError
  // naming the path.
  static StatusOr<std::unique_ptr<CsvReader>> Open(const std::string& path,
                                                   const CsvOptions& options);
  // Reads from memory; `name` is used in messages.
  static StatusOr<std::unique_ptr<CsvReader>> FromString(
      std::string name, std::string text, const CsvOptions& options);
  ~CsvReader();

  // The header names (empty when options.header is false).
  const std::vector<std::string>& header() const { return header_; }
  // Returns the index of `name` in the header, or -1.
  int Column(std::string_view name) const;
  char delimiter() const { return delimiter_; }
  const std::string& name() const { return name_; }

  // Reads the next record into *fields.  Returns false at the end.  Fails
  // with kParseError naming name:line:column for an unterminated quote,
  // invalid UTF-8, or a record whose field count differs from the header.
  StatusOr<bool> Next(std::vector<std::string>* fields);
  // The line the last record returned by Next started on.
  int64_t line() const { return record_line_; }

 private:
  class Source;  // plain or gzip bytes
  CsvReader(std::string name, std::unique_ptr<Source> source,
            const CsvOptions& options);
  Status Init();
  bool Fill();

  std::string name_;
  std::unique_ptr<Source> source_;
  CsvOptions options_;
  char delimiter_ = ',';
  std::vector<std::string> header_;
  std::string buffer_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_ = 1;         // physical line at pos_
  int64_t record_line_ = 0;  // line where the last record started
};

}  // namespace crmflow

#endif  // CRMFLOW_CSV_H_
