// xes.cc: the streaming XES reader (Expat over plain or gzip bytes).

#include "crmflow/xes.h"

#include <expat.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "crmflow/timestamp.h"

namespace crmflow {

namespace {

constexpr size_t kChunk = 1 << 16;

// The longest piece of markup read: a start tag with its attribute values,
// an end tag, a comment or a processing instruction.  Expat holds an
// unfinished one whole in memory, so without a bound a file (or a small
// gzip file that inflates to gigabytes) could make it take any amount; the
// CSV reader bounds a record the same way.  Text between tags is streamed
// and not bounded.
constexpr uint64_t kMaxMarkup = uint64_t{256} << 20;

// Raw bytes from a file or from memory.
class RawSource {
 public:
  virtual ~RawSource() = default;
  // Reads up to `n` bytes; returns 0 at the end; -1 on error.
  virtual long Read(char* buf, size_t n) = 0;
};

class FileSource : public RawSource {
 public:
  explicit FileSource(std::FILE* f) : f_(f) {}
  ~FileSource() override { std::fclose(f_); }
  long Read(char* buf, size_t n) override {
    size_t got = std::fread(buf, 1, n, f_);
    if (got == 0 && std::ferror(f_)) return -1;
    return static_cast<long>(got);
  }

 private:
  std::FILE* f_;
};

class MemorySource : public RawSource {
 public:
  explicit MemorySource(const std::string& data) : data_(data) {}
  long Read(char* buf, size_t n) override {
    size_t k = std::min(n, data_.size() - pos_);
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return static_cast<long>(k);
  }

 private:
  const std::string& data_;
  size_t pos_ = 0;
};

// Decoded bytes: the raw bytes, or their inflation when they start with
// the gzip magic 1f 8b (concatenated gzip members are read in turn).
class ByteStream {
 public:
  ByteStream(std::string name, std::unique_ptr<RawSource> raw)
      : name_(std::move(name)), raw_(std::move(raw)), in_(kChunk) {}
  ~ByteStream() {
    if (gzip_) inflateEnd(&z_);
  }

  // Fills `out` with `size` bytes, fewer only at the end; sets *n (0 at
  // the end).
  Status ReadFull(char* out, size_t size, size_t* n) {
    *n = 0;
    while (*n < size) {
      size_t got = 0;
      CRMFLOW_RETURN_IF_ERROR(Read(out + *n, size - *n, &got));
      if (got == 0) break;
      *n += got;
    }
    return Status::Ok();
  }

 private:
  // Fills `out` with up to `size` bytes; sets *n (0 at the end).
  Status Read(char* out, size_t size, size_t* n) {
    *n = 0;
    if (!started_) {
      started_ = true;
      long got = raw_->Read(in_.data(), in_.size());
      if (got < 0) return ReadError();
      in_len_ = static_cast<size_t>(got);
      in_pos_ = 0;
      gzip_ = in_len_ >= 2 && static_cast<unsigned char>(in_[0]) == 0x1f &&
              static_cast<unsigned char>(in_[1]) == 0x8b;
      if (gzip_) {
        std::memset(&z_, 0, sizeof(z_));
        if (inflateInit2(&z_, 15 + 16) != Z_OK) {
          gzip_ = false;
          return Status(Code::kParseError,
                        name_ + ": cannot start gzip decoding (zlib)");
        }
      }
    }
    if (!gzip_) {
      if (in_pos_ < in_len_) {
        size_t k = std::min(size, in_len_ - in_pos_);
        std::memcpy(out, in_.data() + in_pos_, k);
        in_pos_ += k;
        *n = k;
        return Status::Ok();
      }
      long got = raw_->Read(out, size);
      if (got < 0) return ReadError();
      *n = static_cast<size_t>(got);
      return Status::Ok();
    }
    while (*n == 0) {
      if (in_pos_ == in_len_) {
        if (raw_eof_) {
          if (!member_done_) {
            return Status(Code::kParseError,
                          name_ + ": truncated gzip stream (expected the "
                                  "end of the compressed data)");
          }
          return Status::Ok();
        }
        long got = raw_->Read(in_.data(), in_.size());
        if (got < 0) return ReadError();
        if (got == 0) {
          raw_eof_ = true;
          continue;
        }
        in_len_ = static_cast<size_t>(got);
        in_pos_ = 0;
      }
      if (member_done_) {
        // Another gzip member follows.
        inflateReset(&z_);
        member_done_ = false;
      }
      z_.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      z_.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      // uInt bounds one inflate call; ReadFull asks again for the rest.
      uInt room = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
      z_.next_out = reinterpret_cast<Bytef*>(out);
      z_.avail_out = room;
      int rc = inflate(&z_, Z_NO_FLUSH);
      in_pos_ = in_len_ - z_.avail_in;
      *n = room - z_.avail_out;
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return Status(Code::kParseError,
                      name_ + ": corrupt gzip data (" +
                          (z_.msg ? std::string(z_.msg) : "zlib error") +
                          ")");
      }
    }
    return Status::Ok();
  }

  Status ReadError() const {
    return Status(Code::kParseError, name_ + ": read error");
  }

  std::string name_;
  std::unique_ptr<RawSource> raw_;
  std::vector<char> in_;
  size_t in_len_ = 0;
  size_t in_pos_ = 0;
  bool started_ = false;
  bool gzip_ = false;
  bool raw_eof_ = false;
  bool member_done_ = false;
  z_stream z_;
};

struct TransparentHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return std::hash<std::string_view>()(s);
  }
};

std::string_view LocalName(const char* name) {
  std::string_view s(name);
  size_t colon = s.rfind(':');
  return colon == std::string_view::npos ? s : s.substr(colon + 1);
}

bool IsAttributeElement(std::string_view n) {
  return n == "string" || n == "date" || n == "int" || n == "float" ||
         n == "boolean" || n == "id";
}

struct PendingEvent {
  std::string activity;
  bool has_activity = false;
  int64_t activity_line = 0, activity_column = 0;
  std::string time_text;
  bool has_time = false;
  int64_t time_line = 0, time_column = 0;
  std::string resource;
  std::string lifecycle;
  int64_t line = 0, column = 0;  // where <event> starts
  int64_t row = 0;
  std::vector<std::pair<int, std::string>> attrs;
  size_t num_attrs = 0;

  void Reset() {
    activity.clear();
    has_activity = false;
    time_text.clear();
    has_time = false;
    resource.clear();
    lifecycle.clear();
    num_attrs = 0;
  }
};

class XesParser {
 public:
  explicit XesParser(std::string name)
      : name_(std::move(name)),
        time_parser_(TimestampParser::Create("iso", TimeZone()).value()) {
    parser_ = XML_ParserCreate(nullptr);
    XML_SetUserData(parser_, this);
    XML_SetElementHandler(parser_, &XesParser::Start, &XesParser::End);
    // Everything else (text, comments, declarations) reaches the default
    // handler, so that every finished piece of markup moves settled_;
    // the Expand variant keeps internal entities expanded.
    XML_SetDefaultHandlerExpand(parser_, &XesParser::Default);
  }
  ~XesParser() { XML_ParserFree(parser_); }

  StatusOr<EventLog> Parse(ByteStream* in) {
    while (true) {
      // What Expat holds unfinished: the bytes after the last piece it
      // reported.  A finished piece is measured by the handlers.
      uint64_t pending = fed_ - settled_;
      if (pending > kMaxMarkup) return TooLong(Where(), Unfinished());
      // Offer at least as much again as is pending: Expat scans an
      // unfinished piece from its start on every call (newer versions
      // wait until its data has doubled), so a long one is scanned
      // O(log size) times and every call really tries to finish it, which
      // keeps `pending` exact.  Expat then holds at most twice the bound,
      // as the CSV reader does.
      size_t want = static_cast<size_t>(std::max<uint64_t>(kChunk, pending));
      void* buf = XML_GetBuffer(parser_, static_cast<int>(want));
      if (buf == nullptr) {
        return Status(Code::kParseError,
                      Where() + ": out of memory for the XML parser (" +
                          std::to_string(want) + " bytes)");
      }
      size_t n = 0;
      CRMFLOW_RETURN_IF_ERROR(
          in->ReadFull(static_cast<char*>(buf), want, &n));
      bool final = n == 0;
      fed_ += n;
      if (XML_ParseBuffer(parser_, static_cast<int>(n), final) ==
          XML_STATUS_ERROR) {
        if (!error_.ok()) return error_;
        return Status(Code::kParseError,
                      Where() + ": " +
                          XML_ErrorString(XML_GetErrorCode(parser_)) +
                          " (expected well-formed XES XML)");
      }
      KeepHead(static_cast<const char*>(buf), n);
      if (final) break;
    }
    if (!seen_log_) {
      return Status(Code::kParseError,
                    name_ + ": no <log> element (expected an XES document)");
    }
    return std::move(builder_).Build();
  }

 private:
  std::string Where() const {
    return name_ + ":" +
           std::to_string(XML_GetCurrentLineNumber(parser_)) + ":" +
           std::to_string(XML_GetCurrentColumnNumber(parser_) + 1);
  }
  std::string At(int64_t line, int64_t column) const {
    return name_ + ":" + std::to_string(line) + ":" + std::to_string(column);
  }
  void Fail(Status s) {
    if (error_.ok()) error_ = std::move(s);
    XML_StopParser(parser_, XML_FALSE);
  }

  // Notes that Expat has finished the piece it is reporting; returns its
  // size in bytes.  The end of an empty element's end tag is reported at
  // its start, hence the max.
  uint64_t Settle() {
    int64_t count = XML_GetCurrentByteCount(parser_);
    int64_t end = static_cast<int64_t>(XML_GetCurrentByteIndex(parser_)) +
                  count;
    if (end > 0 && static_cast<uint64_t>(end) > settled_) settled_ = end;
    return count > 0 ? static_cast<uint64_t>(count) : 0;
  }

  // Keeps the first bytes of the unfinished piece, for naming it in
  // Unfinished (Expat does not show them).  `data` holds the last `n`
  // bytes fed, still in Expat's buffer until the next XML_GetBuffer.
  void KeepHead(const char* data, size_t n) {
    constexpr size_t kHead = 64;
    uint64_t start = fed_ - n;
    if (settled_ >= start) {
      size_t from = static_cast<size_t>(settled_ - start);
      head_.assign(data + from, std::min(kHead, n - from));
    } else if (head_.size() < kHead) {
      head_.append(data, std::min(kHead - head_.size(), n));
    }
  }

  // A name cut to 40 bytes (at a character boundary) for a message.
  static std::string Shorten(std::string_view name) {
    if (name.size() <= 40) return std::string(name);
    size_t keep = 40;
    while (keep > 0 &&
           (static_cast<unsigned char>(name[keep]) & 0xC0) == 0x80) {
      --keep;
    }
    return std::string(name.substr(0, keep)) + "...";
  }

  // Names a piece of markup from its first bytes.
  static std::string Describe(std::string_view h) {
    if (h.starts_with("<!--")) return "comment";
    if (h.starts_with("<?")) return "processing instruction";
    if (h.starts_with("<!")) return "declaration";
    if (!h.starts_with("<")) return "markup";
    bool end_tag = h.starts_with("</");
    std::string_view rest = h.substr(end_tag ? 2 : 1);
    std::string_view tag = rest.substr(0, rest.find_first_of(" \t\r\n/>"));
    return std::string(end_tag ? "end tag </" : "element <") + Shorten(tag) +
           ">";
  }

  // The unfinished piece, named from head_.
  std::string Unfinished() const { return Describe(head_); }

  // The error for a piece over kMaxMarkup: `where` it starts (for an
  // unfinished one, where Expat's position rests after a call that
  // finished nothing), `what` it is.
  static Status TooLong(const std::string& where, const std::string& what) {
    return Status(Code::kParseError,
                  where + ": " + what +
                      " longer than 256 MiB (expected a tag with its "
                      "attribute values, or a comment, under 256 MiB)");
  }

  // The handlers refuse a finished piece over the bound (the unfinished
  // one is Parse's), and do nothing once parsing has failed: Expat may
  // still report an empty element's end after its start was refused.
  static void Start(void* self, const XML_Char* name, const XML_Char** atts) {
    auto* p = static_cast<XesParser*>(self);
    if (!p->error_.ok()) return;
    if (p->Settle() > kMaxMarkup) {
      p->Fail(TooLong(p->Where(), "element <" + Shorten(name) + ">"));
      return;
    }
    p->OnStart(name, atts);
  }
  static void End(void* self, const XML_Char* name) {
    auto* p = static_cast<XesParser*>(self);
    if (!p->error_.ok()) return;
    if (p->Settle() > kMaxMarkup) {
      p->Fail(TooLong(p->Where(), "end tag </" + Shorten(name) + ">"));
      return;
    }
    p->OnEnd(name);
  }
  // Text, comments, declarations.  Text never starts with '<' and comes in
  // pieces of any size, so only markup is measured.
  static void Default(void* self, const XML_Char* text, int len) {
    auto* p = static_cast<XesParser*>(self);
    if (!p->error_.ok()) return;
    if (p->Settle() > kMaxMarkup && len > 0 && text[0] == '<') {
      std::string_view head(text, std::min(len, 64));
      p->Fail(TooLong(p->Where(), Describe(head)));
    }
  }

  void OnStart(const char* raw_name, const char** atts) {
    ++depth_;
    std::string_view n = LocalName(raw_name);
    if (depth_ == 1) {
      if (n == "log") seen_log_ = true;
      return;
    }
    if (!seen_log_) return;
    if (depth_ == 2 && n == "trace") {
      trace_depth_ = depth_;
      trace_name_.clear();
      has_trace_name_ = false;
      trace_line_ = XML_GetCurrentLineNumber(parser_);
      trace_column_ = XML_GetCurrentColumnNumber(parser_) + 1;
      num_pending_ = 0;
      return;
    }
    if (trace_depth_ > 0 && event_depth_ < 0 && depth_ == trace_depth_ + 1) {
      if (n == "event") {
        event_depth_ = depth_;
        if (num_pending_ == pending_.size()) pending_.emplace_back();
        PendingEvent& ev = pending_[num_pending_++];
        ev.Reset();
        ev.line = XML_GetCurrentLineNumber(parser_);
        ev.column = XML_GetCurrentColumnNumber(parser_) + 1;
        ev.row = next_row_++;
        return;
      }
      if (IsAttributeElement(n)) {
        const char* key = nullptr;
        const char* value = nullptr;
        KeyValue(atts, &key, &value);
        if (key != nullptr && std::strcmp(key, "concept:name") == 0 &&
            value != nullptr) {
          trace_name_ = value;
          has_trace_name_ = true;
          trace_name_line_ = XML_GetCurrentLineNumber(parser_);
          trace_name_column_ = XML_GetCurrentColumnNumber(parser_) + 1;
        }
      }
      return;
    }
    if (event_depth_ > 0 && depth_ == event_depth_ + 1 &&
        IsAttributeElement(n)) {
      const char* key = nullptr;
      const char* value = nullptr;
      KeyValue(atts, &key, &value);
      if (key == nullptr) {
        Fail(Status(Code::kParseError, Where() +
                                           ": attribute without key "
                                           "(expected key=\"...\")"));
        return;
      }
      if (value == nullptr) value = "";
      PendingEvent& ev = pending_[num_pending_ - 1];
      std::string_view k(key);
      if (k == "concept:name") {
        ev.activity = value;
        ev.has_activity = true;
        ev.activity_line = XML_GetCurrentLineNumber(parser_);
        ev.activity_column = XML_GetCurrentColumnNumber(parser_) + 1;
      } else if (k == "time:timestamp") {
        ev.time_text = value;
        ev.has_time = true;
        ev.time_line = XML_GetCurrentLineNumber(parser_);
        ev.time_column = XML_GetCurrentColumnNumber(parser_) + 1;
      } else if (k == "org:resource") {
        ev.resource = value;
      } else if (k == "lifecycle:transition") {
        ev.lifecycle = value;
      } else {
        int column;
        auto it = columns_.find(k);
        if (it != columns_.end()) {
          column = it->second;
        } else {
          column = builder_.AddAttribute(k);
          columns_.emplace(std::string(k), column);
        }
        if (ev.num_attrs == ev.attrs.size()) ev.attrs.emplace_back();
        ev.attrs[ev.num_attrs].first = column;
        ev.attrs[ev.num_attrs].second.assign(value);
        ++ev.num_attrs;
      }
    }
  }

  void OnEnd(const char* /*name*/) {
    if (depth_ == event_depth_) {
      event_depth_ = -1;
      PendingEvent& ev = pending_[num_pending_ - 1];
      if (!ev.has_activity) {
        Fail(Status(Code::kParseError,
                    At(ev.line, ev.column) +
                        ": event without concept:name (expected a string "
                        "attribute with key concept:name)"));
      } else if (!ev.has_time) {
        Fail(Status(Code::kParseError,
                    At(ev.line, ev.column) + ": event " + ev.activity +
                        " without time:timestamp (expected a date "
                        "attribute with key time:timestamp)"));
      }
    } else if (depth_ == trace_depth_) {
      trace_depth_ = -1;
      FinishTrace();
    }
    --depth_;
  }

  // Adds the trace's events; the trace name may come after them, so the
  // checks that name the case are made here, as the CSV reader makes them
  // (empty case id, empty activity).
  void FinishTrace() {
    if (!has_trace_name_) {
      Fail(Status(Code::kParseError,
                  At(trace_line_, trace_column_) +
                      ": trace without concept:name (expected a string "
                      "attribute with key concept:name)"));
      return;
    }
    if (trace_name_.empty()) {
      Fail(Status(Code::kParseError,
                  At(trace_name_line_, trace_name_column_) +
                      ": empty case id (expected a value in the trace's "
                      "concept:name)"));
      return;
    }
    int32_t c = builder_.AddCase(trace_name_);
    for (size_t i = 0; i < num_pending_; ++i) {
      PendingEvent& ev = pending_[i];
      if (ev.activity.empty()) {
        Fail(Status(Code::kParseError,
                    At(ev.activity_line, ev.activity_column) +
                        ": empty activity in case " + trace_name_ +
                        " (expected a value in the event's concept:name)"));
        return;
      }
      auto t = time_parser_.Parse(ev.time_text);
      if (!t.ok()) {
        Fail(Status(Code::kParseError, At(ev.time_line, ev.time_column) +
                                           ": trace " + trace_name_ + ": " +
                                           t.status().message()));
        return;
      }
      builder_.AddEvent(c, ev.activity, t.value(), ev.resource, ev.lifecycle,
                        ev.row);
      for (size_t k = 0; k < ev.num_attrs; ++k) {
        builder_.SetAttribute(ev.attrs[k].first, ev.attrs[k].second);
      }
    }
    num_pending_ = 0;
  }

  static void KeyValue(const char** atts, const char** key,
                       const char** value) {
    for (int i = 0; atts[i] != nullptr; i += 2) {
      if (std::strcmp(atts[i], "key") == 0) *key = atts[i + 1];
      if (std::strcmp(atts[i], "value") == 0) *value = atts[i + 1];
    }
  }

  std::string name_;
  TimestampParser time_parser_;
  XML_Parser parser_;
  Status error_;
  EventLogBuilder builder_;
  std::unordered_map<std::string, int, TransparentHash, std::equal_to<>>
      columns_;
  int depth_ = 0;
  bool seen_log_ = false;
  int trace_depth_ = -1;
  int event_depth_ = -1;
  std::string trace_name_;
  bool has_trace_name_ = false;
  int64_t trace_line_ = 0, trace_column_ = 0;  // where <trace> starts
  int64_t trace_name_line_ = 0, trace_name_column_ = 0;
  std::vector<PendingEvent> pending_;
  size_t num_pending_ = 0;
  int64_t next_row_ = 0;
  // Bytes given to Expat, and the end of the last piece it reported.
  uint64_t fed_ = 0;
  uint64_t settled_ = 0;
  std::string head_;  // the first bytes after settled_
};

}  // namespace

StatusOr<EventLog> ReadXesEventLog(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return Status(Code::kNotFound,
                  path + ": cannot open (expected a readable XES file)");
  }
  ByteStream in(path, std::make_unique<FileSource>(f));
  XesParser parser(path);
  return parser.Parse(&in);
}

StatusOr<EventLog> ReadXesEventLogFromString(const std::string& name,
                                             const std::string& data) {
  ByteStream in(name, std::make_unique<MemorySource>(data));
  XesParser parser(name);
  return parser.Parse(&in);
}

}  // namespace crmflow
