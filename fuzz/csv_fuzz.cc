// csv_fuzz.cc: libFuzzer target for the CSV reader (csv.h).
//
// The first input byte picks the options (bits 0-2 the delimiter: sniffed,
// one of , ; tab |, or an unusable one; bit 3 no header) and the second
// way of reading (bits 5-6); the rest is the file.  The file is read from
// memory (CsvReader::FromString) and, as the bits say, one more way, and
// the two must agree record for record and error for error:
//   0: from a plain file (CsvReader::Open);
//   1, 3: from the same bytes gzip-compressed in a file (the gzip path;
//      bit 4 picks the compression level);
//   2: from memory after enough blank lines that the input straddles the
//      reader's 256 KiB refill boundary (its line numbers shift by the
//      number of blank lines, which carry no record).
// Besides that: an error is kParseError or kInvalidArgument naming the
// input as name:line:column (read errors aside); records have the header's
// field count, start on increasing lines and are valid UTF-8; and the
// records, written back as CSV with every field quoted, read back equal.
//
// When the input itself is gzip data, only the file readers see it as
// such; the target then only checks that they fail or read cleanly.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "crmflow/csv.h"
#include "crmflow/value.h"
#include "fuzz_util.h"

namespace {

using crmflow::Code;
using crmflow::CsvOptions;
using crmflow::CsvReader;
using crmflow::Status;
using crmflow_fuzz::Check;
using crmflow_fuzz::Fail;

// What one read produced: the header, the records with their lines, and
// the error that ended it (OK at a clean end).
struct Outcome {
  bool opened = false;
  char delimiter = 0;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> records;
  std::vector<int64_t> lines;
  Status error;
};

Outcome Drain(crmflow::StatusOr<std::unique_ptr<CsvReader>> reader) {
  Outcome out;
  if (!reader.ok()) {
    out.error = reader.status();
    return out;
  }
  out.opened = true;
  out.delimiter = (*reader)->delimiter();
  out.header = (*reader)->header();
  std::vector<std::string> fields;
  // A reader that returns records forever would hang the fuzzer; every
  // record consumes at least one byte.
  for (int guard = 0; guard < 1000000; ++guard) {
    auto more = (*reader)->Next(&fields);
    if (!more.ok()) {
      out.error = more.status();
      return out;
    }
    if (!*more) return out;
    out.records.push_back(fields);
    out.lines.push_back((*reader)->line());
  }
  Fail("reader did not stop");
}

std::string Show(const Outcome& o) {
  std::string s = o.opened ? "opened" : "not opened";
  s += ", " + std::to_string(o.records.size()) + " records, " +
       o.error.ToString();
  return s;
}

void CheckSame(const Outcome& a, const Outcome& b, const std::string& what,
               int64_t line_shift = 0) {
  bool same = a.opened == b.opened && a.header == b.header &&
              a.records == b.records &&
              a.error.code() == b.error.code() &&
              a.lines.size() == b.lines.size();
  for (size_t i = 0; same && i < a.lines.size(); ++i) {
    same = a.lines[i] + line_shift == b.lines[i];
  }
  if (!same) Fail(what + ": " + Show(a) + " vs " + Show(b));
}

// The message with its first ":line:" moved by `shift` lines.
std::string ShiftLine(const std::string& message, const std::string& name,
                      int64_t shift) {
  if (message.compare(0, name.size() + 1, name + ":") != 0) return message;
  size_t i = name.size() + 1;
  long line = crmflow_fuzz::ReadNumber(message, &i);
  if (line < 0) return message;
  return name + ":" + std::to_string(line + shift) + message.substr(i);
}

std::string ReplaceAll(std::string s, const std::string& from,
                       const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos;
       at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

void CheckOutcome(const Outcome& o, const std::string& name, bool header,
                  size_t input_lines) {
  if (!o.error.ok()) {
    const std::string& m = o.error.message();
    Check(o.error.code() == Code::kParseError ||
              o.error.code() == Code::kInvalidArgument,
          "unexpected error code: " + o.error.ToString());
    Check(m.compare(0, name.size() + 2, name + ": ") == 0 ||
              crmflow_fuzz::HasLineColumn(m, name),
          "error does not name the input: " + m);
    if (crmflow_fuzz::HasLineColumn(m, name)) {
      size_t i = name.size() + 1;
      long line = crmflow_fuzz::ReadNumber(m, &i);
      Check(static_cast<size_t>(line) <= input_lines + 1,
            "error line past the end: " + m);
    }
  }
  if (!o.opened) return;
  int64_t last = header ? 1 : 0;
  for (size_t r = 0; r < o.records.size(); ++r) {
    if (header) {
      Check(o.records[r].size() == o.header.size(),
            "record with the wrong field count");
    }
    Check(o.lines[r] > last, "record lines do not increase");
    last = o.lines[r];
    for (const std::string& f : o.records[r]) {
      Check(crmflow::IsValidUtf8(f), "field is not valid UTF-8");
    }
  }
  for (const std::string& f : o.header) {
    Check(crmflow::IsValidUtf8(f), "header name is not valid UTF-8");
  }
}

std::string Quoted(const std::vector<std::string>& fields, char delimiter) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out.push_back(delimiter);
    out.push_back('"');
    for (char c : fields[i]) {
      if (c == '"') out.push_back('"');
      out.push_back(c);
    }
    out.push_back('"');
  }
  return out + "\r\n";
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) Fail("cannot write " + path);
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) !=
                            bytes.size()) {
    Fail("short write to " + path);
  }
  std::fclose(f);
}

std::string TempDir() {
  if (access("/dev/shm", W_OK) == 0) return "/dev/shm";
  return "/tmp";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  const uint8_t flags = data[0];
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  static const char kDelimiters[8] = {0, ',', ';', '\t', '|', 0, 'x', '"'};
  CsvOptions options;
  options.delimiter = kDelimiters[flags & 7];
  options.header = (flags & 8) == 0;

  static const std::string dir = TempDir();
  static const std::string path =
      dir + "/crmflow-csv-fuzz-" + std::to_string(getpid()) + ".csv";
  static const std::string gz_path = path + ".gz";

  size_t input_lines = 1;
  for (char c : text) input_lines += c == '\n' || c == '\r';

  Outcome mem = Drain(CsvReader::FromString(path, text, options));
  CheckOutcome(mem, path, options.header, input_lines);

  // Bits 5 and 6 pick the second way of reading (each costs a few
  // 256 KiB buffers, so one per input keeps the runs fast).
  const int mode = (flags >> 5) & 3;
  const bool is_gzip = text.size() >= 2 &&
                       static_cast<unsigned char>(text[0]) == 0x1f &&
                       static_cast<unsigned char>(text[1]) == 0x8b;
  if (is_gzip || mode == 0) {
    WriteFile(path, text);
    Outcome plain = Drain(CsvReader::Open(path, options));
    std::remove(path.c_str());
    if (is_gzip) {
      // The file reader inflates it; the result must still be clean.
      CheckOutcome(plain, path, options.header, SIZE_MAX / 2);
      return 0;
    }
    CheckSame(mem, plain, "plain file differs from memory");
    Check(mem.error.message() == plain.error.message(),
          "messages differ: " + mem.error.message() + " vs " +
              plain.error.message());
  } else if (mode == 1 || mode == 3) {
    WriteFile(gz_path, crmflow_fuzz::Gzip(text, flags & 16 ? 1 : 9));
    Outcome gz = Drain(CsvReader::Open(gz_path, options));
    std::remove(gz_path.c_str());
    CheckSame(mem, gz, "gzip file differs from memory");
    Check(ReplaceAll(gz.error.message(), gz_path, path) ==
              mem.error.message(),
          "gzip messages differ: " + mem.error.message() + " vs " +
              gz.error.message());
  } else if (mem.opened) {
    // Straddle the refill boundary: the last byte of the padding sits a
    // few bytes before it (how many comes from the input), so the records
    // are cut at every point as the fuzzer varies the input.
    const size_t chunk = 1 << 18;
    std::string bom;
    std::string body = text;
    if (body.compare(0, 3, "\xEF\xBB\xBF") == 0) {
      bom = body.substr(0, 3);
      body = body.substr(3);
    }
    size_t before = 1 + ((flags >> 7) * 7 + body.size()) % 64;
    size_t pad = chunk - bom.size() - before;
    std::string padded = bom + std::string(pad, '\n') + body;
    CsvOptions fixed = options;
    fixed.delimiter = mem.delimiter;  // the padding has nothing to sniff
    Outcome shifted = Drain(CsvReader::FromString(path, padded, fixed));
    CheckSame(mem, shifted, "reading across the refill boundary differs",
              static_cast<int64_t>(pad));
    Check(ShiftLine(mem.error.message(), path, static_cast<int64_t>(pad)) ==
              shifted.error.message(),
          "refill messages differ: " + mem.error.message() + " vs " +
              shifted.error.message());
  }

  // Write the records back, every field quoted, and read them again.
  if (mem.opened && mem.error.ok()) {
    std::string out;
    if (options.header) out += Quoted(mem.header, mem.delimiter);
    for (const auto& r : mem.records) out += Quoted(r, mem.delimiter);
    CsvOptions fixed = options;
    fixed.delimiter = mem.delimiter;
    Outcome again = Drain(CsvReader::FromString("again", out, fixed));
    if (!options.header || !mem.header.empty() || !mem.records.empty()) {
      Check(again.opened && again.error.ok(),
            "records written back do not read: " + Show(again));
      Check(again.header == mem.header && again.records == mem.records,
            "records written back read differently");
    }
  }
  return 0;
}
