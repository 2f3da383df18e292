// csv.cc: the streaming CSV reader of csv.h.
//
// Bytes come from a Source (a plain file, a gzip file through zlib, or a
// string) into buffer_ in large chunks; a record is parsed from buffer_ at
// pos_, and when it runs past the end of the buffer the consumed prefix is
// dropped, more bytes are appended and the record is parsed again from its
// start.  Records are small next to a chunk, so the re-parse is rare, and
// memory stays bounded by the longest record rather than the file size.

#include "crmflow/csv.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "crmflow/value.h"

namespace crmflow {

// Where the bytes come from: one of a plain file, a gzip file or a string
// (a tagged class rather than a hierarchy, since Source is private to
// CsvReader).  Read returns 0 at the end and on failure; status() tells
// which.
class CsvReader::Source {
 public:
  static std::unique_ptr<Source> Plain(std::FILE* file, std::string path) {
    auto s = std::unique_ptr<Source>(new Source(std::move(path)));
    s->file_ = file;
    return s;
  }
  static std::unique_ptr<Source> Gzip(gzFile gz, std::string path) {
    auto s = std::unique_ptr<Source>(new Source(std::move(path)));
    s->gz_ = gz;
    return s;
  }
  static std::unique_ptr<Source> Text(std::string text) {
    auto s = std::unique_ptr<Source>(new Source(""));
    s->text_ = std::move(text);
    return s;
  }
  ~Source() {
    if (file_ != nullptr) std::fclose(file_);
    if (gz_ != nullptr) gzclose(gz_);
  }

  size_t Read(char* dst, size_t n) {
    if (file_ != nullptr) return ReadPlain(dst, n);
    if (gz_ != nullptr) return ReadGzip(dst, n);
    size_t got = std::min(n, text_.size() - text_pos_);
    std::memcpy(dst, text_.data() + text_pos_, got);
    text_pos_ += got;
    return got;
  }
  const Status& status() const { return status_; }
  // Ends the input with `status` (a limit the reader enforces).
  void Fail(Status status) { status_ = std::move(status); }

 private:
  explicit Source(std::string path) : path_(std::move(path)) {}

  size_t ReadPlain(char* dst, size_t n) {
    size_t got = std::fread(dst, 1, n, file_);
    if (got == 0 && std::ferror(file_)) {
      status_ = Status(Code::kParseError,
                       path_ + ": read failed (" + std::strerror(errno) + ")");
    }
    return got;
  }

  size_t ReadGzip(char* dst, size_t n) {
    if (n > static_cast<size_t>(INT_MAX)) n = INT_MAX;
    int got = gzread(gz_, dst, static_cast<unsigned>(n));
    int err = Z_OK;
    const char* msg = gzerror(gz_, &err);
    if (got < 0 || (got == 0 && err != Z_OK)) {
      // Z_BUF_ERROR at the end means the stream was cut short.
      std::string why = err == Z_BUF_ERROR ? std::string("truncated gzip data")
                                           : std::string(msg ? msg : "");
      status_ = Status(Code::kParseError,
                       path_ + ": corrupt gzip data (" + why + ")");
      return 0;
    }
    return static_cast<size_t>(got);
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  gzFile gz_ = nullptr;
  std::string text_;
  size_t text_pos_ = 0;
  Status status_;
};

namespace {

// Bytes read per Fill; large enough that the per-call overhead vanishes.
constexpr size_t kChunk = 1 << 18;

// The longest record (or header) read.  No exported table has one near
// this; without a bound, input with no line break (a gzip "bomb" inflates
// gigabytes from kilobytes) would fill memory before any error.
constexpr size_t kMaxRecord = size_t{256} << 20;

// The 1-based column, in characters, of byte `at` on a line starting at
// byte `line_start`: continuation bytes of UTF-8 sequences do not count.
int CharColumn(const char* data, size_t line_start, size_t at) {
  int col = 1;
  for (size_t i = line_start; i < at; ++i) {
    if ((static_cast<unsigned char>(data[i]) & 0xC0) != 0x80) ++col;
  }
  return col;
}

bool AllAscii(const char* p, size_t n) {
  unsigned char acc = 0;
  for (size_t i = 0; i < n; ++i) acc |= static_cast<unsigned char>(p[i]);
  return acc < 0x80;
}

std::string DelimiterName(char d) {
  if (d == '\t') return "tab";
  return std::string("\"") + d + "\"";
}

}  // namespace

CsvReader::CsvReader(std::string name, std::unique_ptr<Source> source,
                     const CsvOptions& options)
    : name_(std::move(name)), source_(std::move(source)), options_(options) {}

CsvReader::~CsvReader() = default;

StatusOr<std::unique_ptr<CsvReader>> CsvReader::Open(
    const std::string& path, const CsvOptions& options) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    int err = errno;
    return Status(err == ENOENT ? Code::kNotFound : Code::kParseError,
                  path + ": cannot open (" + std::strerror(err) + ")");
  }
  unsigned char magic[2] = {0, 0};
  size_t got = std::fread(magic, 1, 2, file);
  std::unique_ptr<Source> source;
  if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    std::fclose(file);
    gzFile gz = gzopen(path.c_str(), "rb");
    if (gz == nullptr) {
      return Status(Code::kParseError, path + ": cannot open gzip stream");
    }
    gzbuffer(gz, 1 << 17);
    source = Source::Gzip(gz, path);
  } else {
    std::rewind(file);
    source = Source::Plain(file, path);
  }
  std::unique_ptr<CsvReader> reader(
      new CsvReader(path, std::move(source), options));
  CRMFLOW_RETURN_IF_ERROR(reader->Init());
  return reader;
}

StatusOr<std::unique_ptr<CsvReader>> CsvReader::FromString(
    std::string name, std::string text, const CsvOptions& options) {
  std::unique_ptr<CsvReader> reader(new CsvReader(
      std::move(name), Source::Text(std::move(text)),
      options));
  CRMFLOW_RETURN_IF_ERROR(reader->Init());
  return reader;
}

int CsvReader::Column(std::string_view name) const {
  for (size_t i = 0; i < header_.size(); ++i) {
    if (header_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

bool CsvReader::Fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  if (buffer_.size() >= kMaxRecord) {
    source_->Fail(Status(Code::kParseError,
                         name_ + ":" + std::to_string(line_) +
                             ": record longer than 256 MiB (expected line "
                             "breaks between records)"));
    eof_ = true;
    return false;
  }
  // Read at least as much as is pending so that a record longer than a
  // chunk is re-parsed only O(log size) times.
  size_t want = std::max(kChunk, buffer_.size());
  size_t old = buffer_.size();
  buffer_.resize(old + want);
  size_t got = source_->Read(&buffer_[old], want);
  buffer_.resize(old + got);
  if (got == 0) eof_ = true;
  return got > 0;
}

Status CsvReader::Init() {
  // Enough bytes to see a byte-order mark.
  while (!eof_ && buffer_.size() - pos_ < 3) Fill();
  if (!source_->status().ok()) return source_->status();
  if (buffer_.size() - pos_ >= 3 &&
      std::memcmp(buffer_.data() + pos_, "\xEF\xBB\xBF", 3) == 0) {
    pos_ += 3;
  }
  delimiter_ = options_.delimiter;
  if (delimiter_ == 0) {
    // Count the candidates on the first line, outside quotes; fill until
    // that line is complete.
    size_t scanned = pos_;
    bool quoted = false;
    size_t counts[4] = {0, 0, 0, 0};
    const char kCandidates[4] = {',', ';', '\t', '|'};
    while (true) {
      const char* b = buffer_.data();
      size_t n = buffer_.size();
      size_t p = scanned;
      bool done = false;
      for (; p < n; ++p) {
        char c = b[p];
        if (c == '"') {
          quoted = !quoted;
        } else if (!quoted && (c == '\n' || c == '\r')) {
          done = true;
          break;
        } else if (!quoted) {
          for (int k = 0; k < 4; ++k) {
            if (c == kCandidates[k]) ++counts[k];
          }
        }
      }
      if (done || eof_) break;
      // Fill may move bytes; keep the scan position relative to pos_.
      size_t rel = p - pos_;
      Fill();
      if (!source_->status().ok()) return source_->status();
      scanned = pos_ + rel;
    }
    delimiter_ = ',';
    size_t best = 0;
    for (int k = 0; k < 4; ++k) {
      if (counts[k] > best) {
        best = counts[k];
        delimiter_ = kCandidates[k];
      }
    }
  }
  if (delimiter_ == '"' || delimiter_ == '\n' || delimiter_ == '\r') {
    return Status(Code::kInvalidArgument,
                  name_ + ": delimiter " + DelimiterName(delimiter_) +
                      " cannot be used (expected , ; tab or |)");
  }
  if (!options_.header) return Status::Ok();
  // Read into a separate vector: Next checks field counts against
  // header_, which must stay empty until the header is complete (a header
  // cut by a refill is parsed twice).
  std::vector<std::string> names;
  auto more = Next(&names);
  if (!more.ok()) return more.status();
  if (!more.value()) {
    return Status(Code::kParseError,
                  name_ + ":1:1: empty file (expected a header line)");
  }
  header_ = std::move(names);
  record_line_ = 0;
  return Status::Ok();
}

StatusOr<bool> CsvReader::Next(std::vector<std::string>* fields) {
  const char delim = delimiter_;
  while (true) {
    const char* b = buffer_.data();
    const size_t n = buffer_.size();
    size_t p = pos_;
    int64_t line = line_;
    // Blank lines carry no record.
    while (p < n && (b[p] == '\n' || b[p] == '\r')) {
      if (b[p] == '\r' && p + 1 == n && !eof_) break;
      if (b[p] == '\r' && p + 1 < n && b[p + 1] == '\n') ++p;
      ++p;
      ++line;
    }
    pos_ = p;
    line_ = line;
    if (p == n) {
      if (eof_) {
        if (!source_->status().ok()) return source_->status();
        return false;
      }
      Fill();
      if (!source_->status().ok()) return source_->status();
      continue;
    }
    if (b[p] == '\r' && p + 1 == n) {
      Fill();
      if (!source_->status().ok()) return source_->status();
      continue;
    }

    const size_t record_start = p;
    size_t line_start = p;
    size_t nf = 0;
    bool need_more = false;
    // Where the field past the header's count starts, for the message.
    size_t extra_field_at = 0;
    int64_t extra_field_line = 0;
    size_t extra_field_line_start = 0;
    const size_t expected = header_.size();
    while (true) {
      if (nf == fields->size()) fields->emplace_back();
      std::string& field = (*fields)[nf];
      const size_t field_start = p;
      if (expected != 0 && nf == expected) {
        extra_field_at = field_start;
        extra_field_line = line;
        extra_field_line_start = line_start;
      }
      ++nf;
      if (p < n && b[p] == '"') {
        field.clear();
        size_t q = p + 1;
        while (true) {
          const void* hit = std::memchr(b + q, '"', n - q);
          if (hit == nullptr) {
            if (!eof_) {
              need_more = true;
              break;
            }
            return Status(Code::kParseError,
                          name_ + ":" + std::to_string(line) + ":" +
                              std::to_string(CharColumn(b, line_start,
                                                        field_start)) +
                              ": unterminated quoted field " +
                              std::to_string(nf) +
                              " (expected a closing \" before the end of "
                              "the input)");
          }
          size_t close = static_cast<const char*>(hit) - b;
          // Newlines inside the quotes are physical lines too.
          for (const char* s = b + q;;) {
            const void* nl = std::memchr(s, '\n', (b + close) - s);
            if (nl == nullptr) break;
            ++line;
            s = static_cast<const char*>(nl) + 1;
            line_start = s - b;
          }
          field.append(b + q, close - q);
          if (close + 1 == n && !eof_) {
            need_more = true;
            break;
          }
          if (close + 1 < n && b[close + 1] == '"') {
            field.push_back('"');
            q = close + 2;
            continue;
          }
          p = close + 1;
          break;
        }
        if (need_more) break;
        // Text after the closing quote is kept, as spreadsheets do, rather
        // than failing the whole file on `"a" ,`.
        size_t s = p;
        while (p < n && b[p] != delim && b[p] != '\n' && b[p] != '\r') ++p;
        if (p == n && !eof_) {
          need_more = true;
          break;
        }
        field.append(b + s, p - s);
      } else {
        while (p < n && b[p] != delim && b[p] != '\n' && b[p] != '\r') ++p;
        if (p == n && !eof_) {
          need_more = true;
          break;
        }
        field.assign(b + field_start, p - field_start);
      }
      if (p == n) break;  // end of input ends the record
      char c = b[p];
      if (c == delim) {
        ++p;
        continue;
      }
      if (c == '\r') {
        if (p + 1 == n && !eof_) {
          need_more = true;
          break;
        }
        if (p + 1 < n && b[p + 1] == '\n') ++p;
      }
      ++p;  // the line end
      ++line;
      break;
    }
    if (need_more) {
      Fill();
      if (!source_->status().ok()) return source_->status();
      continue;
    }

    // Whole-record check; only a record with non-ASCII bytes pays for a
    // full validation, and only a failing one for finding the field.
    const size_t record_end = p;
    const int64_t start_line = line_;
    pos_ = p;
    line_ = line;
    record_line_ = start_line;
    fields->resize(nf);
    if (!AllAscii(b + record_start, record_end - record_start) &&
        !IsValidUtf8(std::string_view(b + record_start,
                                      record_end - record_start))) {
      for (size_t i = 0; i < nf; ++i) {
        if (IsValidUtf8((*fields)[i])) continue;
        // Locate the field's first line for the message.
        int64_t l = start_line;
        size_t ls = record_start;
        size_t f = 0;
        size_t at = record_start;
        bool quoted = false;
        for (size_t k = record_start; k < record_end && f < i; ++k) {
          char ch = b[k];
          if (ch == '"') quoted = !quoted;
          if (ch == '\n') {
            ++l;
            ls = k + 1;
          }
          if (!quoted && ch == delim) {
            ++f;
            at = k + 1;
          }
        }
        return Status(Code::kParseError,
                      name_ + ":" + std::to_string(l) + ":" +
                          std::to_string(CharColumn(b, ls, at)) +
                          ": invalid UTF-8 in field " + std::to_string(i + 1) +
                          " (expected UTF-8 text)");
      }
    }
    if (expected != 0 && nf != expected) {
      int64_t l = extra_field_line;
      size_t ls = extra_field_line_start;
      size_t at = extra_field_at;
      if (nf < expected) {
        // Point at the end of the record, where the missing fields were
        // due.
        at = record_end;
        while (at > record_start &&
               (b[at - 1] == '\n' || b[at - 1] == '\r')) {
          --at;
        }
        l = start_line + std::count(b + record_start, b + at, '\n');
        ls = at;
        while (ls > record_start && b[ls - 1] != '\n') --ls;
      }
      return Status(Code::kParseError,
                    name_ + ":" + std::to_string(l) + ":" +
                        std::to_string(CharColumn(b, ls, at)) +
                        ": record has " + std::to_string(nf) +
                        " fields (expected " + std::to_string(expected) +
                        ", as in the header; delimiter " +
                        DelimiterName(delim) + ")");
    }
    return true;
  }
}

}  // namespace crmflow
