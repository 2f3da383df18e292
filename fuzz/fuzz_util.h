// fuzz_util.h: helpers shared by the libFuzzer targets in this folder.
//
// A target that finds a broken invariant calls Fail, which prints what was
// expected and aborts: libFuzzer then saves the input as a crash, the same
// way it does for a sanitizer report.

#ifndef CRMFLOW_FUZZ_FUZZ_UTIL_H_
#define CRMFLOW_FUZZ_FUZZ_UTIL_H_

#include <zlib.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "crmflow/status.h"

namespace crmflow_fuzz {

[[noreturn]] inline void Fail(const std::string& what) {
  std::fprintf(stderr, "invariant broken: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void Check(bool ok, const std::string& what) {
  if (!ok) Fail(what);
}

// Reads a run of decimal digits at `*i`; returns -1 when there is none.
inline long ReadNumber(std::string_view s, size_t* i) {
  size_t start = *i;
  long v = 0;
  while (*i < s.size() && std::isdigit(static_cast<unsigned char>(s[*i]))) {
    if (v < 100000000) v = v * 10 + (s[*i] - '0');
    ++*i;
  }
  return *i == start ? -1 : v;
}

// True when `message` starts with `prefix` followed by "L:C: " with a
// positive line and column (the file:line:column form of status.h).
inline bool HasLineColumn(std::string_view message, std::string_view prefix) {
  if (message.substr(0, prefix.size()) != prefix) return false;
  size_t i = prefix.size();
  if (i >= message.size() || message[i] != ':') return false;
  ++i;
  long line = ReadNumber(message, &i);
  if (line < 1 || i >= message.size() || message[i] != ':') return false;
  ++i;
  long column = ReadNumber(message, &i);
  return column >= 1 && message.substr(i, 2) == ": ";
}

// Compresses `data` as one gzip member (what gzip(1) writes).
inline std::string Gzip(std::string_view data, int level = 6) {
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    Fail("deflateInit2 failed");
  }
  std::string out(deflateBound(&z, data.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  Check(rc == Z_STREAM_END, "deflate did not finish");
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

inline std::string Describe(const crmflow::Status& s) { return s.ToString(); }

}  // namespace crmflow_fuzz

#endif  // CRMFLOW_FUZZ_FUZZ_UTIL_H_
