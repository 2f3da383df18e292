// expr.cc: the rule expression language (see expr.h).
//
// Text is lexed into tokens, parsed by precedence climbing into a flat
// vector of nodes (chains of "and", "or", "+"/"-" and "*"/"/" become one
// n-ary node, so a long sum is not a deep tree) and type-checked while the
// nodes are built.  Evaluation walks the nodes recursively over a small
// value type (Val) that points at the caller's text instead of copying it;
// the recursion depth is bounded by kMaxExprDepth.

#include "crmflow/expr.h"

#include <re2/re2.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace crmflow {
namespace {

constexpr int64_t kMicrosPerMilli = 1000;
constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerMinute = 60 * kMicrosPerSecond;
constexpr int64_t kMicrosPerHour = 60 * kMicrosPerMinute;
constexpr int64_t kMicrosPerDay = 24 * kMicrosPerHour;
constexpr int64_t kMicrosPerWeek = 7 * kMicrosPerDay;
// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z (value.h's range).
// The smallest scale of a quotient.
constexpr int kDivScale = 6;
constexpr int kMaxScale = 18;

// ---------------------------------------------------------------------------
// Types and values
// ---------------------------------------------------------------------------

// A static type: a ValueType, or kAny for a dynamic name.
enum class T : uint8_t {
  kNull = 0,
  kText,
  kInteger,
  kDecimal,
  kTimestamp,
  kDuration,
  kBoolean,
  kAny,
};

T FromValueType(ValueType v) { return static_cast<T>(v); }

const char* TypeName(T t) {
  if (t == T::kAny) return "dynamic";
  return ValueTypeName(static_cast<ValueType>(t));
}

bool IsNum(T t) { return t == T::kInteger || t == T::kDecimal; }

// A value during evaluation.  Text points at the context's attributes, a
// literal or text owned by the evaluation; nothing here allocates.
struct Val {
  // Text as a pointer and a length, so that the union stays trivial.
  struct Str {
    const char* data;
    size_t size;
  };

  std::string_view S() const { return std::string_view(str.data, str.size); }
  Decimal D() const { return Decimal::FromUnits(units, scale); }

  T type = T::kNull;  // never kAny
  int32_t scale = 0;  // decimal
  union {
    int64_t i = 0;  // integer, timestamp or duration micros
    bool b;
    __int128 units;  // decimal
    Str str;
  };
};
static_assert(sizeof(Val) == 32, "Val is copied on every node");

Val NullVal() { return Val(); }
Val BoolVal(bool b) {
  Val v;
  v.type = T::kBoolean;
  v.b = b;
  return v;
}
Val IntVal(int64_t i) {
  Val v;
  v.type = T::kInteger;
  v.i = i;
  return v;
}
Val DecVal(Decimal d) {
  Val v;
  v.type = T::kDecimal;
  v.units = d.units();
  v.scale = d.scale();
  return v;
}
Val TimeVal(int64_t micros) {
  Val v;
  v.type = T::kTimestamp;
  v.i = micros;
  return v;
}
Val DurVal(int64_t micros) {
  Val v;
  v.type = T::kDuration;
  v.i = micros;
  return v;
}
Val TextVal(std::string_view s) {
  Val v;
  v.type = T::kText;
  v.str = {s.data(), s.size()};
  return v;
}

void SetBool(Val* out, bool b) {
  out->type = T::kBoolean;
  out->b = b;
}
void SetText(Val* out, std::string_view s) {
  out->type = T::kText;
  out->str = {s.data(), s.size()};
}

Decimal AsDecimal(const Val& v) {
  return v.type == T::kDecimal ? v.D() : Decimal::FromInteger(v.i);
}

void SetFromValue(const Value& value, Val* out) {
  out->type = FromValueType(value.type());
  switch (value.type()) {
    case ValueType::kNull:
      return;
    case ValueType::kText:
      out->str = {value.text().data(), value.text().size()};
      return;
    case ValueType::kInteger:
      out->i = value.integer();
      return;
    case ValueType::kDecimal:
      out->units = value.decimal().units();
      out->scale = value.decimal().scale();
      return;
    case ValueType::kTimestamp:
      out->i = value.timestamp().micros;
      return;
    case ValueType::kDuration:
      out->i = value.duration().micros;
      return;
    case ValueType::kBoolean:
      out->b = value.boolean();
      return;
  }
}

Val FromValue(const Value& value) {
  Val v;
  SetFromValue(value, &v);
  return v;
}

Value ToValue(const Val& v) {
  switch (v.type) {
    case T::kText:
      return Value::Text(std::string(v.S()));
    case T::kInteger:
      return Value::Integer(v.i);
    case T::kDecimal:
      return Value::Dec(v.D());
    case T::kTimestamp:
      return Value::Time(Timestamp{v.i});
    case T::kDuration:
      return Value::Span(Duration{v.i});
    case T::kBoolean:
      return Value::Bool(v.b);
    default:
      return Value();
  }
}

// ---------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------

// FirstInvalidUtf8 (value.h) finds the first byte that is not UTF-8.

// Decodes one code point at s[*i] leniently (an invalid byte decodes as
// itself) and advances *i.
uint32_t DecodeUtf8(std::string_view s, size_t* i) {
  auto c = static_cast<unsigned char>(s[*i]);
  int len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  if (len == 1 || *i + len > s.size()) {
    ++*i;
    return c;
  }
  uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    auto cc = static_cast<unsigned char>(s[*i + k]);
    if ((cc & 0xC0) != 0x80) {
      ++*i;
      return c;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  *i += len;
  return cp;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int64_t CodePointCount(std::string_view s) {
  int64_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

// True for ranges where upper case is the even code point and lower case
// the following odd one.
bool EvenUpperRange(uint32_t c) {
  return (c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) ||
         (c >= 0x14A && c <= 0x177) || (c >= 0x460 && c <= 0x481) ||
         (c >= 0x48A && c <= 0x4BF) || (c >= 0x1E00 && c <= 0x1E95) ||
         (c >= 0x1EA0 && c <= 0x1EFF);
}

// True for ranges where upper case is the odd code point.
bool OddUpperRange(uint32_t c) {
  return (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
}

uint32_t LowerCodePoint(uint32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c == 0x130) return 'i';
  if (EvenUpperRange(c)) return c % 2 == 0 ? c + 1 : c;
  if (OddUpperRange(c)) return c % 2 == 1 ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if (c >= 0x531 && c <= 0x556) return c + 48;
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
  return c;
}

uint32_t UpperCodePoint(uint32_t c) {
  if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 32 : c;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0x131) return 'I';
  if (EvenUpperRange(c)) return c % 2 == 1 ? c - 1 : c;
  if (OddUpperRange(c)) return c % 2 == 0 ? c - 1 : c;
  if (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  if (c >= 0x561 && c <= 0x586) return c - 48;
  if (c >= 0xFF41 && c <= 0xFF5A) return c - 32;
  return c;
}

std::string MapCase(std::string_view s, bool upper) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = DecodeUtf8(s, &i);
    AppendUtf8(upper ? UpperCodePoint(cp) : LowerCodePoint(cp), &out);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Rendering (error messages and traces)
// ---------------------------------------------------------------------------

// Returns `s` in double quotes with " and \ escaped, shortened to about
// `max_points` code points.
std::string Quote(std::string_view s, int max_points = 40) {
  std::string out = "\"";
  size_t i = 0;
  int points = 0;
  while (i < s.size()) {
    if (++points > max_points) {
      out += "...";
      break;
    }
    size_t start = i;
    uint32_t cp = DecodeUtf8(s, &i);
    if (cp == '"' || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp < 0x20) {
      out += "\\u00";
      out.push_back("0123456789abcdef"[cp >> 4]);
      out.push_back("0123456789abcdef"[cp & 15]);
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out.push_back('"');
  return out;
}

std::string RenderVal(const Val& v) {
  switch (v.type) {
    case T::kNull:
      return "null";
    case T::kText:
      return Quote(v.S());
    case T::kInteger:
      return std::to_string(v.i);
    case T::kDecimal:
      return v.D().ToString();
    case T::kTimestamp:
      return "@" + Timestamp{v.i}.ToIso();
    case T::kDuration:
      return FormatDuration(Duration{v.i});
    case T::kBoolean:
      return v.b ? "true" : "false";
    default:
      return "?";
  }
}

// "text \"abc\"", "integer 5", "null".
std::string DescribeVal(const Val& v) {
  if (v.type == T::kNull) return "null";
  return std::string(TypeName(v.type)) + " " + RenderVal(v);
}

// ---------------------------------------------------------------------------
// Operator typing, shared by the checker (static types) and evaluation
// (the types of actual values).
// ---------------------------------------------------------------------------

bool AcceptsLeft(char op, T t) {
  switch (op) {
    case '+':
    case '-':
      return IsNum(t) || t == T::kDuration || t == T::kTimestamp;
    default:  // * and /
      return IsNum(t) || t == T::kDuration;
  }
}

bool AcceptsRight(char op, T t) {
  switch (op) {
    case '+':
    case '-':
      return IsNum(t) || t == T::kDuration || t == T::kTimestamp;
    case '*':
      return IsNum(t) || t == T::kDuration;
    default:  // /
      return IsNum(t);
  }
}

const char* ExpectedLeft(char op) {
  return op == '+' || op == '-' ? "a number, a duration or a timestamp"
                                : "a number or a duration";
}

const char* ExpectedRight(char op, T left) {
  if (left == T::kNull || left == T::kAny) {
    switch (op) {
      case '+':
      case '-':
        return "a number, a duration or a timestamp";
      case '*':
        return "a number or a duration";
      default:
        return "a number";
    }
  }
  switch (op) {
    case '+':
      if (IsNum(left)) return "a number";
      if (left == T::kTimestamp) return "a duration";
      return "a duration or a timestamp";
    case '-':
      if (IsNum(left)) return "a number";
      if (left == T::kTimestamp) return "a duration or a timestamp";
      return "a duration";
    case '*':
      if (IsNum(left)) return "a number or a duration";
      return "a number";
    default:
      return "a number";
  }
}

// The outcome of typing `l op r`.
struct ArithType {
  bool ok = true;
  bool blame_right = false;  // which side is wrong when !ok
  T result = T::kNull;
};

ArithType TypeArith(char op, T l, T r) {
  ArithType out;
  auto fail = [&](bool right) {
    out.ok = false;
    out.blame_right = right;
    return out;
  };
  bool l_open = l == T::kNull || l == T::kAny;
  bool r_open = r == T::kNull || r == T::kAny;
  if (!l_open && !AcceptsLeft(op, l)) return fail(false);
  if (!r_open && !AcceptsRight(op, r)) return fail(true);
  if (l == T::kNull || r == T::kNull) {
    out.result = T::kNull;
    return out;
  }
  if (l_open || r_open) {
    out.result = T::kAny;
    return out;
  }
  switch (op) {
    case '+':
      if (IsNum(l) && IsNum(r)) {
        out.result = l == T::kInteger && r == T::kInteger ? T::kInteger
                                                          : T::kDecimal;
      } else if (l == T::kTimestamp && r == T::kDuration) {
        out.result = T::kTimestamp;
      } else if (l == T::kDuration && r == T::kTimestamp) {
        out.result = T::kTimestamp;
      } else if (l == T::kDuration && r == T::kDuration) {
        out.result = T::kDuration;
      } else {
        return fail(true);
      }
      return out;
    case '-':
      if (IsNum(l) && IsNum(r)) {
        out.result = l == T::kInteger && r == T::kInteger ? T::kInteger
                                                          : T::kDecimal;
      } else if (l == T::kTimestamp && r == T::kDuration) {
        out.result = T::kTimestamp;
      } else if (l == T::kTimestamp && r == T::kTimestamp) {
        out.result = T::kDuration;
      } else if (l == T::kDuration && r == T::kDuration) {
        out.result = T::kDuration;
      } else {
        return fail(true);
      }
      return out;
    case '*':
      if (IsNum(l) && IsNum(r)) {
        out.result = l == T::kInteger && r == T::kInteger ? T::kInteger
                                                          : T::kDecimal;
      } else if ((l == T::kDuration && IsNum(r)) ||
                 (IsNum(l) && r == T::kDuration)) {
        out.result = T::kDuration;
      } else {
        return fail(true);
      }
      return out;
    default:  // '/'
      if (IsNum(l) && IsNum(r)) {
        out.result = T::kDecimal;
      } else if (l == T::kDuration && IsNum(r)) {
        out.result = T::kDuration;
      } else {
        return fail(true);
      }
      return out;
  }
}

// Equality of two short names without a call to memcmp.
inline bool SameKey(const std::string& a, const std::string& b) {
  size_t n = a.size();
  if (n != b.size()) return false;
  const char* x = a.data();
  const char* y = b.data();
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) return false;
  }
  return true;
}

// Comparison operators.
enum class Cmp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

const char* CmpName(Cmp c) {
  static const char* const kNames[] = {"==", "!=", "<", "<=", ">", ">="};
  return kNames[static_cast<int>(c)];
}

// Type families for comparison: numbers compare with numbers.
int Family(T t) { return t == T::kDecimal ? static_cast<int>(T::kInteger)
                                          : static_cast<int>(t); }

// Returns "" when `l cmp r` is well typed, else the error text.
std::string TypeCompare(Cmp cmp, T l, T r) {
  bool ordering = cmp != Cmp::kEq && cmp != Cmp::kNe;
  if (l == T::kAny || r == T::kAny) {
    T known = l == T::kAny ? r : l;
    if (ordering && known == T::kBoolean) {
      return std::string("cannot order boolean values with \"") +
             CmpName(cmp) + "\" (only == and !=)";
    }
    if (ordering && known == T::kNull) {
      return std::string("cannot compare with null using \"") +
             CmpName(cmp) + "\" (use == null or != null)";
    }
    return "";
  }
  if (l == T::kNull || r == T::kNull) {
    if (!ordering) return "";
    return std::string("cannot compare with null using \"") + CmpName(cmp) +
           "\" (use == null or != null)";
  }
  if (Family(l) != Family(r)) {
    return std::string("cannot compare ") + TypeName(l) + " with " +
           TypeName(r);
  }
  if (ordering && l == T::kBoolean) {
    return std::string("cannot order boolean values with \"") +
           CmpName(cmp) + "\" (only == and !=)";
  }
  return "";
}

// Three-way comparison of x * 10^-sx with y * 10^-sy, without the
// overflow checks when the side scaled up is small (the usual case).
int CompareUnits(__int128 x, int sx, __int128 y, int sy) {
  static constexpr int64_t kPow10[] = {1,
                                       10,
                                       100,
                                       1000,
                                       10000,
                                       100000,
                                       1000000,
                                       10000000,
                                       100000000,
                                       1000000000,
                                       10000000000,
                                       100000000000,
                                       1000000000000,
                                       10000000000000,
                                       100000000000000,
                                       1000000000000000,
                                       10000000000000000,
                                       100000000000000000,
                                       1000000000000000000};
  constexpr __int128 kSmall = kPow10[18];
  if (sx < sy && x < kSmall && x > -kSmall) {
    x *= kPow10[sy - sx];
  } else if (sy < sx && y < kSmall && y > -kSmall) {
    y *= kPow10[sx - sy];
  } else if (sx != sy) {
    return Decimal::FromUnits(x, sx).Compare(Decimal::FromUnits(y, sy));
  }
  return x < y ? -1 : (x > y ? 1 : 0);
}

// Three-way comparison of two non-null values of one family.
int CompareVals(const Val& a, const Val& b) {
  switch (a.type) {
    case T::kInteger:
      if (b.type == T::kInteger) return a.i < b.i ? -1 : (a.i > b.i ? 1 : 0);
      return CompareUnits(a.i, 0, b.units, b.scale);
    case T::kDecimal:
      if (b.type == T::kInteger) {
        return CompareUnits(a.units, a.scale, b.i, 0);
      }
      return CompareUnits(a.units, a.scale, b.units, b.scale);
    case T::kText: {
      int c = a.S().compare(b.S());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case T::kTimestamp:
    case T::kDuration:
      return a.i < b.i ? -1 : (a.i > b.i ? 1 : 0);
    case T::kBoolean:
      return a.b == b.b ? 0 : (a.b ? 1 : -1);
    default:
      return 0;
  }
}

// a / b rounded half away from zero to `scale` places; false on overflow.
// b must not be zero.
bool DivideDecimal(const Decimal& a, const Decimal& b, int scale,
                   Decimal* out) {
  using U = unsigned __int128;
  static const U kLimit = [] {
    U r = 1;
    for (int i = 0; i < 36; ++i) r *= 10;
    return r;
  }();
  __int128 ua = a.units();
  __int128 ub = b.units();
  bool negative = (ua < 0) != (ub < 0);
  U na = ua < 0 ? -static_cast<U>(ua) : static_cast<U>(ua);
  U nb = ub < 0 ? -static_cast<U>(ub) : static_cast<U>(ub);
  // quotient = na * 10^e / nb with e = scale + b.scale - a.scale.
  int e = scale + b.scale() - a.scale();
  for (; e < 0; ++e) {
    nb *= 10;
    if (nb >= kLimit * 10) return false;
  }
  U q = na / nb;
  U r = na % nb;
  if (q >= kLimit) return false;
  for (int k = 0; k < e; ++k) {
    r *= 10;
    q = q * 10 + r / nb;
    r %= nb;
    if (q >= kLimit) return false;
  }
  if (r * 2 >= nb) ++q;
  if (q >= kLimit) return false;
  __int128 units = static_cast<__int128>(q);
  *out = Decimal::FromUnits(negative ? -units : units, scale);
  return true;
}

// Converts a decimal to an int64 after rounding to 0 places.
bool DecimalToInt64(const Decimal& d, int64_t* out) {
  __int128 u = d.Round(0).units();
  if (u > INT64_MAX || u < INT64_MIN) return false;
  *out = static_cast<int64_t>(u);
  return true;
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

enum class Op : uint8_t {
  kLit,
  kName,
  kNot,
  kNeg,
  kAnd,
  kOr,
  kArith,
  kCmp,
  kIn,
  kCall,
};

enum class Scope : uint8_t {
  kAttr,
  kCustomer,
  kPayload,
  kTxnId,
  kTxnState,
  kTxnKind,
};

enum class Fn : uint8_t {
  kLower,
  kUpper,
  kLen,
  kContains,
  kStartsWith,
  kEndsWith,
  kMatches,
  kRound,
  kAbs,
  kMin,
  kMax,
  kCoalesce,
  kDays,
  kHours,
  kMinutes,
  kSeconds,
};

struct FnInfo {
  const char* name;
  Fn fn;
  int min_args;
  int max_args;  // -1: any number
};

// Sorted by name, for the "known:" list.
constexpr FnInfo kFunctions[] = {
    {"abs", Fn::kAbs, 1, 1},
    {"coalesce", Fn::kCoalesce, 1, -1},
    {"contains", Fn::kContains, 2, 2},
    {"days", Fn::kDays, 1, 1},
    {"ends_with", Fn::kEndsWith, 2, 2},
    {"hours", Fn::kHours, 1, 1},
    {"len", Fn::kLen, 1, 1},
    {"lower", Fn::kLower, 1, 1},
    {"matches", Fn::kMatches, 2, 2},
    {"max", Fn::kMax, 1, -1},
    {"min", Fn::kMin, 1, -1},
    {"minutes", Fn::kMinutes, 1, 1},
    {"round", Fn::kRound, 1, 2},
    {"seconds", Fn::kSeconds, 1, 1},
    {"starts_with", Fn::kStartsWith, 2, 2},
    {"upper", Fn::kUpper, 1, 1},
};

const char* FnName(Fn fn) {
  for (const FnInfo& f : kFunctions) {
    if (f.fn == fn) return f.name;
  }
  return "?";
}

// One child of a node; `op` and `offset` describe the operator in front of
// it in a chain ("+" before the second operand of a sum).
struct Kid {
  int32_t node;
  char op;
  int32_t offset;
};

struct Node {
  Op op = Op::kLit;
  T type = T::kNull;      // static type
  uint8_t sub = 0;        // Cmp, Fn or Scope; 1 for "not in"
  int32_t kid_begin = 0;  // children in Impl::kids
  int32_t kid_count = 0;
  int32_t offset = 0;     // the operator or token, for errors
  int32_t begin = 0;      // source span, for error messages
  int32_t end = 0;
  Val lit;                // kLit
  int32_t key = -1;       // kName: index into Impl::keys
  int32_t hint = -1;      // kName: declared position in the schema
  int32_t name_id = -1;   // kName: index into Impl::names
  T declared = T::kAny;   // kName: declared type
  int32_t regex = -1;     // kCall matches: index into Impl::regexes
};

}  // namespace

namespace internal {

// The parsed form shared by copies of an Expression.
struct ExprImpl {
  std::string text;
  bool multiline = false;
  std::vector<Node> nodes;
  std::vector<Kid> kids;
  int32_t root = -1;
  std::deque<std::string> keys;      // name keys and text literals
  std::vector<std::string> names;    // canonical names read
  std::vector<std::unique_ptr<RE2>> regexes;
  // Set when the whole expression is "name op literal" with a declared
  // name and a non-null literal, the usual shape of a rule's operand:
  // EvaluateCondition then compares directly (FastCompare) instead of
  // walking the tree.
  int32_t simple_name = -1;
  int32_t simple_lit = -1;

  // Returns "column C" or "line L, column C" for a byte offset.
  std::string Where(size_t offset) const {
    if (offset > text.size()) offset = text.size();
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < offset; ++i) {
      if (text[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    int64_t col =
        CodePointCount(std::string_view(text).substr(
            line_start, offset - line_start)) + 1;
    std::string out;
    if (multiline) out = "line " + std::to_string(line) + ", ";
    return out + "column " + std::to_string(col);
  }

  Status Error(Code code, size_t offset, const std::string& msg) const {
    return Status(code, Where(offset) + ": " + msg);
  }

  // The source of node n, shortened.
  std::string Source(int32_t n) const {
    const Node& node = nodes[n];
    std::string_view src =
        std::string_view(text).substr(node.begin, node.end - node.begin);
    if (CodePointCount(src) > 40) {
      size_t i = 0;
      for (int k = 0; k < 37 && i < src.size(); ++k) DecodeUtf8(src, &i);
      return std::string(src.substr(0, i)) + "...";
    }
    return std::string(src);
  }

  // "text \"abc\"" for a literal, "decimal amount" for anything else.
  std::string Describe(int32_t n) const {
    const Node& node = nodes[n];
    if (node.op == Op::kLit) return DescribeVal(node.lit);
    return std::string(TypeName(node.type)) + " " + Source(n);
  }
};

}  // namespace internal

namespace {

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

enum class Tok : uint8_t {
  kEnd,
  kInt,
  kDec,
  kText,
  kTime,
  kDur,
  kIdent,
  kAnd,
  kOr,
  kNot,
  kIn,
  kTrue,
  kFalse,
  kNull,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
};

struct Token {
  Tok kind = Tok::kEnd;
  int32_t offset = 0;
  int32_t length = 0;
  int64_t i = 0;  // integer; timestamp or duration micros
  Decimal d;
  std::string text;  // decoded text literal
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(const internal::ExprImpl& impl) : impl_(impl), s_(impl.text) {}

  Status Run(std::vector<Token>* out) {
    size_t pos = 0;
    while (true) {
      while (pos < s_.size() && (s_[pos] == ' ' || s_[pos] == '\t' ||
                                 s_[pos] == '\n' || s_[pos] == '\r')) {
        ++pos;
      }
      if (static_cast<int>(out->size()) >= kMaxExprTokens) {
        return Err(pos, "expression too long (more than " +
                            std::to_string(kMaxExprTokens) + " tokens)");
      }
      Token tok;
      tok.offset = static_cast<int32_t>(pos);
      if (pos >= s_.size()) {
        tok.kind = Tok::kEnd;
        out->push_back(std::move(tok));
        return Status::Ok();
      }
      CRMFLOW_RETURN_IF_ERROR(Next(&pos, &tok));
      tok.length = static_cast<int32_t>(pos) - tok.offset;
      out->push_back(std::move(tok));
    }
  }

 private:
  Status Err(size_t offset, const std::string& msg) const {
    return impl_.Error(Code::kParseError, offset, msg);
  }

  Status Next(size_t* pos, Token* tok) {
    size_t p = *pos;
    char c = s_[p];
    if (IsDigit(c)) return Number(pos, tok);
    if (IsIdentStart(c)) {
      while (p < s_.size() && IsIdentChar(s_[p])) ++p;
      std::string_view word = s_.substr(*pos, p - *pos);
      tok->kind = Tok::kIdent;
      if (word == "and") tok->kind = Tok::kAnd;
      if (word == "or") tok->kind = Tok::kOr;
      if (word == "not") tok->kind = Tok::kNot;
      if (word == "in") tok->kind = Tok::kIn;
      if (word == "true") tok->kind = Tok::kTrue;
      if (word == "false") tok->kind = Tok::kFalse;
      if (word == "null") tok->kind = Tok::kNull;
      tok->text = std::string(word);
      *pos = p;
      return Status::Ok();
    }
    if (c == '\'' || c == '"') return Text(pos, tok);
    if (c == '@') return Time(pos, tok);
    char n = p + 1 < s_.size() ? s_[p + 1] : '\0';
    auto one = [&](Tok k) {
      tok->kind = k;
      *pos = p + 1;
      return Status::Ok();
    };
    auto two = [&](Tok k) {
      tok->kind = k;
      *pos = p + 2;
      return Status::Ok();
    };
    switch (c) {
      case '(':
        return one(Tok::kLParen);
      case ')':
        return one(Tok::kRParen);
      case '[':
        return one(Tok::kLBracket);
      case ']':
        return one(Tok::kRBracket);
      case ',':
        return one(Tok::kComma);
      case '.':
        return one(Tok::kDot);
      case '+':
        return one(Tok::kPlus);
      case '-':
        return one(Tok::kMinus);
      case '*':
        return one(Tok::kStar);
      case '/':
        return one(Tok::kSlash);
      case '=':
        if (n == '=') return two(Tok::kEq);
        return Err(p, "expected \"==\" (got \"=\")");
      case '!':
        if (n == '=') return two(Tok::kNe);
        return Err(p, "unexpected \"!\" (use not)");
      case '<':
        if (n == '=') return two(Tok::kLe);
        if (n == '>') return Err(p, "unexpected \"<>\" (use !=)");
        return one(Tok::kLt);
      case '>':
        if (n == '=') return two(Tok::kGe);
        return one(Tok::kGt);
      case '&':
        return Err(p, "unexpected \"&\" (use and)");
      case '|':
        return Err(p, "unexpected \"|\" (use or)");
      default:
        break;
    }
    size_t i = p;
    uint32_t cp = DecodeUtf8(s_, &i);
    if (cp < 0x20 || cp == 0x7F) {
      char buf[8];
      static const char kHex[] = "0123456789ABCDEF";
      buf[0] = kHex[(cp >> 4) & 15];
      buf[1] = kHex[cp & 15];
      buf[2] = '\0';
      return Err(p, std::string("unexpected control character U+00") + buf);
    }
    return Err(p, "unexpected character \"" +
                      std::string(s_.substr(p, i - p)) + "\"");
  }

  Status Number(size_t* pos, Token* tok) {
    size_t start = *pos;
    size_t p = start;
    while (p < s_.size() && IsDigit(s_[p])) ++p;
    bool is_decimal = false;
    if (p < s_.size() && s_[p] == '.') {
      if (p + 1 >= s_.size() || !IsDigit(s_[p + 1])) {
        return Err(p + 1, "expected a digit after \".\" in a number");
      }
      is_decimal = true;
      ++p;
      while (p < s_.size() && IsDigit(s_[p])) ++p;
    }
    std::string_view digits = s_.substr(start, p - start);
    if (p < s_.size() && IsIdentStart(s_[p])) {
      if (is_decimal) {
        return Err(start,
                   "a duration takes whole numbers (e.g. 1h30m, not 1.5h)");
      }
      return Duration(pos, tok);
    }
    *pos = p;
    if (is_decimal) {
      auto d = Decimal::Parse(digits);
      if (!d.ok()) {
        return Err(start, "decimal " + std::string(digits) +
                              " is out of range (at most 36 digits and 18 "
                              "decimals)");
      }
      tok->kind = Tok::kDec;
      tok->d = *d;
      return Status::Ok();
    }
    int64_t v = 0;
    for (char c : digits) {
      if (__builtin_mul_overflow(v, int64_t{10}, &v) ||
          __builtin_add_overflow(v, int64_t{c - '0'}, &v)) {
        return Err(start, "integer " + std::string(digits) +
                              " is too large (at most 9223372036854775807; "
                              "write a decimal such as " +
                              std::string(digits) + ".0)");
      }
    }
    tok->kind = Tok::kInt;
    tok->i = v;
    return Status::Ok();
  }

  Status Duration(size_t* pos, Token* tok) {
    struct Unit {
      const char* name;
      int64_t micros;
    };
    static constexpr Unit kUnits[] = {
        {"w", kMicrosPerWeek},   {"d", kMicrosPerDay},
        {"h", kMicrosPerHour},   {"m", kMicrosPerMinute},
        {"s", kMicrosPerSecond}, {"ms", kMicrosPerMilli},
        {"us", 1},
    };
    constexpr int kNumUnits = sizeof(kUnits) / sizeof(kUnits[0]);
    size_t p = *pos;
    int64_t total = 0;
    int last_unit = -1;
    while (p < s_.size() && IsDigit(s_[p])) {
      size_t num_start = p;
      int64_t n = 0;
      bool overflow = false;
      while (p < s_.size() && IsDigit(s_[p])) {
        overflow |= __builtin_mul_overflow(n, int64_t{10}, &n) ||
                    __builtin_add_overflow(n, int64_t{s_[p] - '0'}, &n);
        ++p;
      }
      size_t unit_start = p;
      while (p < s_.size() && IsIdentChar(s_[p]) && !IsDigit(s_[p])) ++p;
      std::string_view unit = s_.substr(unit_start, p - unit_start);
      if (unit.empty()) {
        return Err(unit_start, "expected a unit after " +
                                   std::string(s_.substr(num_start,
                                                         p - num_start)) +
                                   " in a duration (d, h, m, s, ms)");
      }
      int u = -1;
      for (int k = 0; k < kNumUnits; ++k) {
        if (unit == kUnits[k].name) u = k;
      }
      if (u < 0) {
        return Err(unit_start, "unknown duration unit \"" +
                                   std::string(unit) +
                                   "\" (expected w, d, h, m, s, ms or us)");
      }
      if (u <= last_unit) {
        return Err(num_start,
                   "duration units must go from largest to smallest, each "
                   "once (e.g. 1d12h)");
      }
      last_unit = u;
      int64_t part;
      if (overflow || __builtin_mul_overflow(n, kUnits[u].micros, &part) ||
          __builtin_add_overflow(total, part, &total)) {
        return Err(*pos, "duration " +
                             std::string(s_.substr(*pos, p - *pos)) +
                             " is too large");
      }
    }
    if (p < s_.size() && s_[p] == '.') {
      return Err(*pos, "a duration takes whole numbers (e.g. 1h30m, not "
                       "1.5h)");
    }
    tok->kind = Tok::kDur;
    tok->i = total;
    *pos = p;
    return Status::Ok();
  }

  Status Text(size_t* pos, Token* tok) {
    size_t start = *pos;
    char quote = s_[start];
    size_t p = start + 1;
    std::string out;
    while (true) {
      if (p >= s_.size()) {
        return Err(start, std::string("unterminated text (expected a "
                                      "closing ") +
                              quote + ")");
      }
      char c = s_[p];
      if (c == quote) {
        ++p;
        break;
      }
      if (c != '\\') {
        out.push_back(c);
        ++p;
        continue;
      }
      size_t esc = p;
      char e = p + 1 < s_.size() ? s_[p + 1] : '\0';
      p += 2;
      switch (e) {
        case '\\':
          out.push_back('\\');
          continue;
        case '\'':
          out.push_back('\'');
          continue;
        case '"':
          out.push_back('"');
          continue;
        case 'n':
          out.push_back('\n');
          continue;
        case 'r':
          out.push_back('\r');
          continue;
        case 't':
          out.push_back('\t');
          continue;
        case 'u':
          break;
        default: {
          size_t i = esc + 1;
          if (i < s_.size()) DecodeUtf8(s_, &i);
          return Err(esc, "unknown escape \"" +
                              std::string(s_.substr(esc, i - esc)) +
                              "\" (expected \\\\, \\', \\\", \\n, \\r, \\t "
                              "or \\uXXXX)");
        }
      }
      uint32_t cp = 0;
      bool ok = true;
      if (p < s_.size() && s_[p] == '{') {
        ++p;
        int n = 0;
        while (p < s_.size() && HexValue(s_[p]) >= 0 && n < 7) {
          cp = cp * 16 + HexValue(s_[p]);
          ++p;
          ++n;
        }
        ok = n >= 1 && n <= 6 && p < s_.size() && s_[p] == '}';
        if (ok) ++p;
      } else {
        for (int n = 0; n < 4; ++n) {
          if (p >= s_.size() || HexValue(s_[p]) < 0) {
            ok = false;
            break;
          }
          cp = cp * 16 + HexValue(s_[p]);
          ++p;
        }
      }
      if (!ok) {
        return Err(esc, "expected \\uXXXX or \\u{X...} with hex digits");
      }
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return Err(esc, "escape \\u names no Unicode character (surrogate "
                        "or above 10FFFF)");
      }
      AppendUtf8(cp, &out);
    }
    tok->kind = Tok::kText;
    tok->text = std::move(out);
    *pos = p;
    return Status::Ok();
  }

  Status Time(size_t* pos, Token* tok) {
    static const char kShape[] =
        "expected @YYYY-MM-DD or @YYYY-MM-DDThh:mm[:ss[.ffffff]] with Z or "
        "an offset";
    size_t start = *pos;
    size_t p = start + 1;
    // YYYY-MM-DD
    for (int k = 0; k < 10; ++k, ++p) {
      bool dash = k == 4 || k == 7;
      if (p >= s_.size() || (dash ? s_[p] != '-' : !IsDigit(s_[p]))) {
        return Err(start, kShape);
      }
    }
    std::string iso(s_.substr(start + 1, 10));
    if (p < s_.size() && (s_[p] == 'T' || s_[p] == 't')) {
      ++p;
      size_t time_start = p;
      while (p < s_.size() &&
             (IsDigit(s_[p]) || s_[p] == ':' || s_[p] == '.')) {
        ++p;
      }
      iso += "T" + std::string(s_.substr(time_start, p - time_start));
      if (p < s_.size() && (s_[p] == 'Z' || s_[p] == 'z')) {
        ++p;
        iso += "Z";
      } else if (p + 6 <= s_.size() && (s_[p] == '+' || s_[p] == '-') &&
                 IsDigit(s_[p + 1]) && IsDigit(s_[p + 2]) &&
                 s_[p + 3] == ':' && IsDigit(s_[p + 4]) &&
                 IsDigit(s_[p + 5])) {
        iso += std::string(s_.substr(p, 6));
        p += 6;
      } else {
        return Err(start,
                   "a time needs Z or an offset such as +01:00 (e.g. "
                   "@2026-02-02T09:00:00Z)");
      }
    } else {
      iso += "T00:00:00Z";
    }
    if (p < s_.size() && IsIdentChar(s_[p])) return Err(start, kShape);
    auto t = Timestamp::ParseIso(iso);
    if (!t.ok()) {
      std::string shown(s_.substr(start, p - start));
      // Well-shaped but impossible ("@2026-02-30") or malformed time.
      return Err(start, "invalid timestamp " + Quote(shown) + " (" +
                            kShape + ", a real date and time)");
    }
    tok->kind = Tok::kTime;
    tok->i = t->micros;
    *pos = p;
    return Status::Ok();
  }

  const internal::ExprImpl& impl_;
  std::string_view s_;
};

// ---------------------------------------------------------------------------
// Parser and type checker
// ---------------------------------------------------------------------------

class Parser {
 public:
  Parser(internal::ExprImpl* impl, const ExprSchema& schema)
      : impl_(*impl), schema_(schema) {}

  Status Run() {
    CRMFLOW_RETURN_IF_ERROR(Lexer(impl_).Run(&toks_));
    auto root = ParseExpr(1);
    if (!root.ok()) return root.status();
    if (Peek().kind != Tok::kEnd) {
      return Err(Peek().offset,
                 "expected an operator or end of text (got " +
                     DescribeTok(Peek()) + ")");
    }
    impl_.root = *root;
    return Status::Ok();
  }

 private:
  const Token& Peek(int ahead = 0) const {
    size_t i = pos_ + ahead;
    return i < toks_.size() ? toks_[i] : toks_.back();
  }
  const Token& Take() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }

  Status Err(size_t offset, const std::string& msg) const {
    return impl_.Error(Code::kParseError, offset, msg);
  }

  std::string DescribeTok(const Token& t) const {
    std::string_view src =
        std::string_view(impl_.text).substr(t.offset, t.length);
    switch (t.kind) {
      case Tok::kEnd:
        return "end of text";
      case Tok::kText:
        return "text " + Quote(t.text);
      case Tok::kInt:
      case Tok::kDec:
        return "number " + std::string(src);
      case Tok::kTime:
        return "timestamp " + std::string(src);
      case Tok::kDur:
        return "duration " + std::string(src);
      case Tok::kIdent:
        return "name " + std::string(src);
      default:
        return Quote(src);
    }
  }

  int32_t AddNode(Node node, const std::vector<Kid>& kids) {
    node.kid_begin = static_cast<int32_t>(impl_.kids.size());
    node.kid_count = static_cast<int32_t>(kids.size());
    impl_.kids.insert(impl_.kids.end(), kids.begin(), kids.end());
    impl_.nodes.push_back(std::move(node));
    return static_cast<int32_t>(impl_.nodes.size()) - 1;
  }

  const Node& N(int32_t n) const { return impl_.nodes[n]; }

  // Binary precedence of the token at the cursor; 0 when none.
  int BinaryPrec() const {
    switch (Peek().kind) {
      case Tok::kOr:
        return 1;
      case Tok::kAnd:
        return 2;
      case Tok::kEq:
      case Tok::kNe:
      case Tok::kLt:
      case Tok::kLe:
      case Tok::kGt:
      case Tok::kGe:
      case Tok::kIn:
        return 4;
      case Tok::kNot:
        return Peek(1).kind == Tok::kIn ? 4 : 0;
      case Tok::kPlus:
      case Tok::kMinus:
        return 5;
      case Tok::kStar:
      case Tok::kSlash:
        return 6;
      default:
        return 0;
    }
  }

  StatusOr<int32_t> ParseExpr(int min_prec) {
    auto left_or = ParseUnary();
    if (!left_or.ok()) return left_or;
    int32_t left = *left_or;
    while (true) {
      int prec = BinaryPrec();
      if (prec == 0 || prec < min_prec) return left;
      if (prec == 4) {
        auto cmp = ParseComparison(left);
        if (!cmp.ok()) return cmp;
        left = *cmp;
        if (BinaryPrec() == 4) return ChainedComparison();
        continue;
      }
      std::vector<Kid> kids = {{left, 0, N(left).offset}};
      Tok first = Peek().kind;
      while (BinaryPrec() == prec) {
        const Token& op = Take();
        auto right = ParseExpr(prec + 1);
        if (!right.ok()) return right;
        char c = op.kind == Tok::kPlus    ? '+'
                 : op.kind == Tok::kMinus ? '-'
                 : op.kind == Tok::kStar  ? '*'
                 : op.kind == Tok::kSlash ? '/'
                                          : 0;
        kids.push_back({*right, c, op.offset});
      }
      auto chain = FinishChain(first, kids);
      if (!chain.ok()) return chain;
      left = *chain;
    }
  }

  // Builds and type-checks an n-ary "and", "or" or arithmetic chain.  Out
  // of line (as are the other Finish functions) to keep the frames of the
  // recursive functions small.
  [[gnu::noinline]] StatusOr<int32_t> FinishChain(
      Tok first, const std::vector<Kid>& kids) {
    int32_t left = kids[0].node;
    Node node;
    node.begin = N(left).begin;
    node.end = N(kids.back().node).end;
    node.offset = kids[1].offset;
    if (first == Tok::kAnd || first == Tok::kOr) {
      node.op = first == Tok::kAnd ? Op::kAnd : Op::kOr;
      const char* word = first == Tok::kAnd ? "and" : "or";
      for (size_t k = 0; k < kids.size(); ++k) {
        T t = N(kids[k].node).type;
        if (t != T::kBoolean && t != T::kNull && t != T::kAny) {
          return Err(k == 0 ? kids[1].offset : kids[k].offset,
                     std::string("expected a condition ") +
                         (k == 0 ? "before \"" : "after \"") + word +
                         "\" (got " + impl_.Describe(kids[k].node) + ")");
        }
      }
      node.type = T::kBoolean;
    } else {
      node.op = Op::kArith;
      T acc = N(left).type;
      for (size_t k = 1; k < kids.size(); ++k) {
        char op = kids[k].op;
        ArithType at = TypeArith(op, acc, N(kids[k].node).type);
        if (!at.ok) {
          std::string sym(1, op);
          if (at.blame_right) {
            return Err(kids[k].offset,
                       std::string("expected ") + ExpectedRight(op, acc) +
                           " after \"" + sym + "\" (got " +
                           impl_.Describe(kids[k].node) + ")");
          }
          return Err(kids[k].offset,
                     std::string("expected ") + ExpectedLeft(op) +
                         " before \"" + sym + "\" (got " +
                         impl_.Describe(kids[k - 1].node) + ")");
        }
        acc = at.result;
      }
      node.type = acc;
    }
    return AddNode(std::move(node), kids);
  }

  StatusOr<int32_t> ParseComparison(int32_t left) {
    const Token& op = Take();
    if (op.kind == Tok::kNot || op.kind == Tok::kIn) {
      if (op.kind == Tok::kNot) Take();  // "in"
      return ParseList(left, op.kind == Tok::kNot, op.offset);
    }
    auto right = ParseExpr(5);
    if (!right.ok()) return right;
    return FinishComparison(left, op, *right);
  }

  [[gnu::noinline]] StatusOr<int32_t> FinishComparison(int32_t left,
                                                       const Token& op,
                                                       int32_t right) {
    Node node;
    node.begin = N(left).begin;
    node.offset = op.offset;
    node.type = T::kBoolean;
    Cmp cmp = op.kind == Tok::kEq   ? Cmp::kEq
              : op.kind == Tok::kNe ? Cmp::kNe
              : op.kind == Tok::kLt ? Cmp::kLt
              : op.kind == Tok::kLe ? Cmp::kLe
              : op.kind == Tok::kGt ? Cmp::kGt
                                    : Cmp::kGe;
    std::string err = TypeCompare(cmp, N(left).type, N(right).type);
    if (!err.empty()) return Err(op.offset, err);
    node.op = Op::kCmp;
    node.sub = static_cast<uint8_t>(cmp);
    node.end = N(right).end;
    return AddNode(std::move(node),
                   {{left, 0, N(left).offset}, {right, 0, op.offset}});
  }

  [[gnu::noinline]] StatusOr<int32_t> ParseList(int32_t left, bool negated,
                                                int32_t offset) {
    if (Peek().kind != Tok::kLBracket) {
      return Err(Peek().offset, "expected \"[\" after in (got " +
                                    DescribeTok(Peek()) + ")");
    }
    size_t open = Take().offset;
    if (++depth_ > kMaxExprDepth) return TooDeep(open);
    std::vector<Kid> kids = {{left, 0, N(left).offset}};
    T left_type = N(left).type;
    T elem_family = T::kNull;
    int32_t first_elem = -1;
    if (Peek().kind != Tok::kRBracket) {
      while (true) {
        auto e = ParseUnary();
        if (!e.ok()) return e;
        if (N(*e).op != Op::kLit) {
          return Err(N(*e).begin, "list elements must be literals (got " +
                                      impl_.Source(*e) + ")");
        }
        T t = N(*e).type;
        if (t != T::kNull) {
          if (elem_family != T::kNull &&
              Family(t) != Family(elem_family)) {
            return Err(N(*e).begin,
                       std::string("list elements must share one type "
                                   "(got ") +
                           TypeName(N(first_elem).type) + " and " +
                           TypeName(t) + ")");
          }
          if (elem_family == T::kNull) first_elem = *e;
          elem_family = t;
          std::string err = TypeCompare(Cmp::kEq, left_type, t);
          if (!err.empty()) return Err(N(*e).begin, err);
        }
        kids.push_back({*e, 0, N(*e).begin});
        if (Peek().kind == Tok::kComma) {
          Take();
          continue;
        }
        break;
      }
    }
    if (Peek().kind != Tok::kRBracket) return UnclosedList();
    int32_t end = Take().offset + 1;
    --depth_;
    Node node;
    node.op = Op::kIn;
    node.sub = negated ? 1 : 0;
    node.type = T::kBoolean;
    node.begin = N(left).begin;
    node.offset = offset;
    node.end = end;
    return AddNode(std::move(node), kids);
  }

  [[gnu::cold, gnu::noinline]] Status ChainedComparison() const {
    return Err(Peek().offset,
               "comparisons cannot be chained (use and: a < b and b < c)");
  }

  [[gnu::cold, gnu::noinline]] Status UnclosedParen(size_t open) const {
    return Err(Peek().offset, "expected \")\" to close \"(\" at " +
                                  impl_.Where(open) + " (got " +
                                  DescribeTok(Peek()) + ")");
  }

  [[gnu::cold, gnu::noinline]] Status UnclosedCall(
      const std::string& name) const {
    return Err(Peek().offset, "expected \",\" or \")\" in the call of " +
                                  name + " (got " + DescribeTok(Peek()) +
                                  ")");
  }

  [[gnu::cold, gnu::noinline]] Status UnclosedList() const {
    return Err(Peek().offset, "expected \",\" or \"]\" in the list (got " +
                                  DescribeTok(Peek()) + ")");
  }

  [[gnu::cold, gnu::noinline]] Status TooDeep(size_t offset) const {
    return Err(offset, "expression nested too deeply (more than " +
                           std::to_string(kMaxExprDepth) + " levels)");
  }

  StatusOr<int32_t> ParseUnary() {
    const Token& t = Peek();
    if (t.kind != Tok::kNot && t.kind != Tok::kMinus) return ParsePrimary();
    size_t offset = Take().offset;
    if (++depth_ > kMaxExprDepth) return TooDeep(offset);
    bool is_not = t.kind == Tok::kNot;
    auto operand = is_not ? ParseExpr(3) : ParseUnary();
    if (!operand.ok()) return operand;
    --depth_;
    return FinishUnary(is_not, offset, *operand);
  }

  [[gnu::noinline]] StatusOr<int32_t> FinishUnary(bool is_not,
                                                  size_t offset,
                                                  int32_t operand) {
    T ot = N(operand).type;
    if (is_not) {
      if (ot != T::kBoolean && ot != T::kNull && ot != T::kAny) {
        return Err(offset, "expected a condition after \"not\" (got " +
                               impl_.Describe(operand) + ")");
      }
      Node node;
      node.op = Op::kNot;
      node.type = T::kBoolean;
      node.offset = static_cast<int32_t>(offset);
      node.begin = node.offset;
      node.end = N(operand).end;
      return AddNode(std::move(node), {{operand, 0, node.offset}});
    }
    if (!IsNum(ot) && ot != T::kDuration && ot != T::kNull &&
        ot != T::kAny) {
      return Err(offset, "expected a number or a duration after \"-\" (got " +
                             impl_.Describe(operand) + ")");
    }
    Node& on = impl_.nodes[operand];
    // Fold "-literal" so that lists and limits see a literal.
    if (on.op == Op::kLit && on.type != T::kNull) {
      if (on.type == T::kDecimal) {
        on.lit.units = -on.lit.units;
      } else {
        on.lit.i = -on.lit.i;
      }
      on.begin = static_cast<int32_t>(offset);
      return operand;
    }
    Node node;
    node.op = Op::kNeg;
    node.type = ot;
    node.offset = static_cast<int32_t>(offset);
    node.begin = node.offset;
    node.end = on.end;
    return AddNode(std::move(node), {{operand, 0, node.offset}});
  }

  StatusOr<int32_t> ParsePrimary() {
    const Token& t = Peek();
    if (t.kind == Tok::kLParen) {
      size_t open = Take().offset;
      if (++depth_ > kMaxExprDepth) return TooDeep(open);
      auto inner = ParseExpr(1);
      if (!inner.ok()) return inner;
      if (Peek().kind != Tok::kRParen) return UnclosedParen(open);
      --depth_;
      Node& in = impl_.nodes[*inner];
      in.begin = static_cast<int32_t>(open);
      in.end = Take().offset + 1;
      return *inner;
    }
    if (t.kind == Tok::kIdent && Peek(1).kind == Tok::kLParen) {
      return ParseCall(Take());
    }
    return ParseLeaf();
  }

  // Parses a literal or a name (nothing recursive).
  [[gnu::noinline]] StatusOr<int32_t> ParseLeaf() {
    const Token& t = Peek();
    Node node;
    node.offset = t.offset;
    node.begin = t.offset;
    node.end = t.offset + t.length;
    node.op = Op::kLit;
    switch (t.kind) {
      case Tok::kInt:
        node.type = T::kInteger;
        node.lit = IntVal(t.i);
        break;
      case Tok::kDec:
        node.type = T::kDecimal;
        node.lit = DecVal(t.d);
        break;
      case Tok::kTime:
        node.type = T::kTimestamp;
        node.lit = TimeVal(t.i);
        break;
      case Tok::kDur:
        node.type = T::kDuration;
        node.lit = DurVal(t.i);
        break;
      case Tok::kTrue:
      case Tok::kFalse:
        node.type = T::kBoolean;
        node.lit = BoolVal(t.kind == Tok::kTrue);
        break;
      case Tok::kNull:
        node.type = T::kNull;
        break;
      case Tok::kText:
        node.type = T::kText;
        impl_.keys.push_back(t.text);
        node.lit = TextVal(impl_.keys.back());
        break;
      case Tok::kIdent:
        return ParseName();
      case Tok::kLBracket:
        return Err(t.offset, "a list [...] is allowed only after in");
      default: {
        std::string after;
        if (pos_ > 0) {
          const Token& prev = toks_[pos_ - 1];
          after = " after " + Quote(std::string_view(impl_.text)
                                        .substr(prev.offset, prev.length));
        }
        return Err(t.offset, "expected an expression" + after + " (got " +
                                 DescribeTok(t) + ")");
      }
    }
    Take();
    return AddNode(std::move(node), {});
  }

  // Returns "a, b, c" of at most 20 names.
  static std::string KnownList(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) {
      if (i == 20) return out + ", ...";
      if (i > 0) out += ", ";
      out += names[i];
    }
    return out.empty() ? "none" : out;
  }

  int32_t NameId(const std::string& canonical) {
    for (size_t i = 0; i < impl_.names.size(); ++i) {
      if (impl_.names[i] == canonical) return static_cast<int32_t>(i);
    }
    impl_.names.push_back(canonical);
    return static_cast<int32_t>(impl_.names.size()) - 1;
  }

  [[gnu::noinline]] StatusOr<int32_t> ParseName() {
    const Token& first = Take();
    std::vector<std::string> parts = {first.text};
    int32_t end = first.offset + first.length;
    while (Peek().kind == Tok::kDot) {
      size_t dot = Take().offset;
      const Token& seg = Peek();
      bool word = seg.kind == Tok::kIdent || seg.kind == Tok::kAnd ||
                  seg.kind == Tok::kOr || seg.kind == Tok::kNot ||
                  seg.kind == Tok::kIn || seg.kind == Tok::kTrue ||
                  seg.kind == Tok::kFalse || seg.kind == Tok::kNull;
      if (!word) {
        return Err(seg.offset, "expected a field name after \".\" at " +
                                   impl_.Where(dot) + " (got " +
                                   DescribeTok(seg) + ")");
      }
      parts.push_back(seg.text);
      end = seg.offset + seg.length;
      Take();
    }
    std::string full = parts[0];
    std::string rest;
    for (size_t i = 1; i < parts.size(); ++i) {
      full += "." + parts[i];
      rest += (i > 1 ? "." : "") + parts[i];
    }
    Node node;
    node.op = Op::kName;
    node.offset = first.offset;
    node.begin = first.offset;
    node.end = end;
    const std::string& ns = parts[0];
    bool is_ns = ns == "customer" || ns == "payload" || ns == "txn";
    if (is_ns && parts.size() == 1) {
      return Err(first.offset, "expected \".\" and a field name after " + ns +
                                   " (e.g. " + ns +
                                   (ns == "txn" ? ".state" : ".tier") + ")");
    }
    std::string key;
    if (!is_ns) {
      const auto& fields = schema_.attributes;
      for (size_t i = 0; i < fields.size(); ++i) {
        if (fields[i].name == full) {
          node.hint = static_cast<int32_t>(i);
          node.declared =
              fields[i].type ? FromValueType(*fields[i].type) : T::kAny;
        }
      }
      if (node.hint < 0) {
        std::vector<std::string> known;
        for (const auto& f : fields) known.push_back(f.name);
        std::string hint = parts.size() > 1
                               ? "; dotted names start with customer., "
                                 "payload. or txn."
                               : "";
        return Err(first.offset, "unknown name " + Quote(full) +
                                     " (known: " + KnownList(known) + hint +
                                     ")");
      }
      node.sub = static_cast<uint8_t>(Scope::kAttr);
      key = full;
    } else if (ns == "txn") {
      if (rest == "id") {
        node.sub = static_cast<uint8_t>(Scope::kTxnId);
      } else if (rest == "state") {
        node.sub = static_cast<uint8_t>(Scope::kTxnState);
      } else if (rest == "kind") {
        node.sub = static_cast<uint8_t>(Scope::kTxnKind);
      } else {
        return Err(first.offset, "unknown name " + Quote(full) +
                                     " (known: txn.id, txn.kind, txn.state)");
      }
      node.declared = T::kText;
      key = rest;
    } else {
      bool customer = ns == "customer";
      const auto& fields = customer ? schema_.customer : schema_.payload;
      bool open = customer ? schema_.open_customer : schema_.open_payload;
      node.sub = static_cast<uint8_t>(customer ? Scope::kCustomer
                                               : Scope::kPayload);
      for (size_t i = 0; i < fields.size(); ++i) {
        if (fields[i].name == rest) {
          node.hint = static_cast<int32_t>(i);
          node.declared =
              fields[i].type ? FromValueType(*fields[i].type) : T::kAny;
        }
      }
      if (node.hint < 0 && !open) {
        std::vector<std::string> known;
        for (const auto& f : fields) known.push_back(ns + "." + f.name);
        return Err(first.offset, "unknown name " + Quote(full) +
                                     " (known: " + KnownList(known) + ")");
      }
      key = rest;
    }
    node.type = node.declared;
    impl_.keys.push_back(key);
    node.key = static_cast<int32_t>(impl_.keys.size()) - 1;
    node.name_id = NameId(full);
    return AddNode(std::move(node), {});
  }

  [[gnu::noinline]] StatusOr<int32_t> ParseCall(const Token& name) {
    CRMFLOW_RETURN_IF_ERROR(CheckFunction(name));
    size_t open = Take().offset;
    if (++depth_ > kMaxExprDepth) return TooDeep(open);
    std::vector<Kid> kids;
    if (Peek().kind != Tok::kRParen) {
      while (true) {
        auto arg = ParseExpr(1);
        if (!arg.ok()) return arg;
        kids.push_back({*arg, 0, N(*arg).begin});
        if (Peek().kind == Tok::kComma) {
          Take();
          continue;
        }
        break;
      }
    }
    if (Peek().kind != Tok::kRParen) return UnclosedCall(name.text);
    int32_t close = Take().offset;
    --depth_;
    return FinishCall(name, kids, close);
  }

  [[gnu::noinline]] Status CheckFunction(const Token& name) const {
    for (const FnInfo& f : kFunctions) {
      if (name.text == f.name) return Status::Ok();
    }
    std::string known;
    for (const FnInfo& f : kFunctions) {
      known += (known.empty() ? "" : ", ") + std::string(f.name);
    }
    return Err(name.offset, "unknown function " + Quote(name.text) +
                                " (known: " + known + ")");
  }

  [[gnu::noinline]] StatusOr<int32_t> FinishCall(const Token& name,
                                                 const std::vector<Kid>& kids,
                                                 int32_t close) {
    const FnInfo* info = nullptr;
    for (const FnInfo& f : kFunctions) {
      if (name.text == f.name) info = &f;
    }
    int n = static_cast<int>(kids.size());
    if (n < info->min_args || (info->max_args >= 0 && n > info->max_args)) {
      std::string want =
          info->max_args < 0
              ? "at least " + std::to_string(info->min_args)
          : info->min_args == info->max_args
              ? std::to_string(info->min_args)
              : std::to_string(info->min_args) + " or " +
                    std::to_string(info->max_args);
      bool plural = !(info->min_args == 1 && info->max_args == 1);
      return Err(name.offset, name.text + " takes " + want +
                                  (plural ? " arguments" : " argument") +
                                  " (got " + std::to_string(n) + ")");
    }
    Node node;
    node.op = Op::kCall;
    node.sub = static_cast<uint8_t>(info->fn);
    node.offset = name.offset;
    node.begin = name.offset;
    node.end = close + 1;
    CRMFLOW_RETURN_IF_ERROR(TypeCall(info->fn, name.text, kids, &node));
    return AddNode(std::move(node), kids);
  }

  Status ArgError(const std::string& fn, const std::vector<Kid>& kids,
                  int k, const char* expected) const {
    return Err(N(kids[k].node).begin,
               fn + " expects " + expected + " as argument " +
                   std::to_string(k + 1) + " (got " +
                   impl_.Describe(kids[k].node) + ")");
  }

  Status TypeCall(Fn fn, const std::string& name,
                  const std::vector<Kid>& kids, Node* node) {
    auto type = [&](int k) { return N(kids[k].node).type; };
    auto open = [&](int k) {
      return type(k) == T::kNull || type(k) == T::kAny;
    };
    auto need_text = [&](int k) -> Status {
      if (open(k) || type(k) == T::kText) return Status::Ok();
      return ArgError(name, kids, k, "text");
    };
    switch (fn) {
      case Fn::kLower:
      case Fn::kUpper:
        CRMFLOW_RETURN_IF_ERROR(need_text(0));
        node->type = T::kText;
        return Status::Ok();
      case Fn::kLen:
        CRMFLOW_RETURN_IF_ERROR(need_text(0));
        node->type = T::kInteger;
        return Status::Ok();
      case Fn::kContains:
      case Fn::kStartsWith:
      case Fn::kEndsWith:
        CRMFLOW_RETURN_IF_ERROR(need_text(0));
        CRMFLOW_RETURN_IF_ERROR(need_text(1));
        node->type = T::kBoolean;
        return Status::Ok();
      case Fn::kMatches: {
        CRMFLOW_RETURN_IF_ERROR(need_text(0));
        const Node& pat = N(kids[1].node);
        if (pat.op != Op::kLit || pat.type != T::kText) {
          return Err(pat.begin, "matches expects a text literal as its "
                                "pattern (got " +
                                    impl_.Describe(kids[1].node) + ")");
        }
        RE2::Options options;
        options.set_log_errors(false);
        options.set_max_mem(8 << 20);
        auto re = std::make_unique<RE2>(
            re2::StringPiece(pat.lit.S().data(), pat.lit.S().size()),
            options);
        if (!re->ok()) {
          return Err(pat.begin, "invalid regular expression " +
                                    Quote(pat.lit.S()) + " (" + re->error() +
                                    ")");
        }
        impl_.regexes.push_back(std::move(re));
        node->regex = static_cast<int32_t>(impl_.regexes.size()) - 1;
        node->type = T::kBoolean;
        return Status::Ok();
      }
      case Fn::kRound:
        if (!open(0) && !IsNum(type(0))) {
          return ArgError(name, kids, 0, "a number");
        }
        if (kids.size() == 2) {
          if (!open(1) && type(1) != T::kInteger) {
            return ArgError(name, kids, 1, "an integer");
          }
          const Node& p = N(kids[1].node);
          if (p.op == Op::kLit && p.type == T::kInteger &&
              (p.lit.i < 0 || p.lit.i > kMaxScale)) {
            return Err(p.begin, "round takes 0 to 18 places (got " +
                                    std::to_string(p.lit.i) + ")");
          }
        }
        node->type = T::kDecimal;
        return Status::Ok();
      case Fn::kAbs:
        if (!open(0) && !IsNum(type(0)) && type(0) != T::kDuration) {
          return ArgError(name, kids, 0, "a number or a duration");
        }
        node->type = type(0);
        return Status::Ok();
      case Fn::kDays:
      case Fn::kHours:
      case Fn::kMinutes:
      case Fn::kSeconds:
        if (!open(0) && type(0) != T::kDuration) {
          return ArgError(name, kids, 0, "a duration");
        }
        node->type = T::kDecimal;
        return Status::Ok();
      case Fn::kMin:
      case Fn::kMax:
      case Fn::kCoalesce: {
        T result = T::kNull;
        bool any = false;
        int first = -1;
        for (size_t k = 0; k < kids.size(); ++k) {
          T t = type(static_cast<int>(k));
          if (t == T::kAny) {
            any = true;
            continue;
          }
          if (t == T::kNull) continue;
          if (fn != Fn::kCoalesce && t == T::kBoolean) {
            return ArgError(name, kids, static_cast<int>(k),
                            "a number, text, a timestamp or a duration");
          }
          if (first >= 0 && Family(t) != Family(result)) {
            return Err(N(kids[k].node).begin,
                       name + " needs arguments of one type (got " +
                           impl_.Describe(kids[first].node) + " and " +
                           impl_.Describe(kids[k].node) + ")");
          }
          if (first < 0) {
            first = static_cast<int>(k);
            result = t;
          } else if (t == T::kDecimal) {
            result = T::kDecimal;
          }
        }
        node->type = any ? (result == T::kDecimal ? T::kDecimal : T::kAny)
                         : result;
        return Status::Ok();
      }
    }
    return Status::Ok();
  }

  internal::ExprImpl& impl_;
  const ExprSchema& schema_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
};

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

class Evaluator {
 public:
  Evaluator(const internal::ExprImpl& impl, const EvalContext& ctx,
            Attributes* reads)
      : impl_(impl), ctx_(ctx), reads_(reads) {}

  // Evaluates node n into *out; on failure sets error_ and returns false.
  bool Eval(int32_t n, Val* out) {
    const Node& node = impl_.nodes[n];
    switch (node.op) {
      case Op::kLit:
        *out = node.lit;
        return true;
      case Op::kName:
        return ReadName(node, out);
      case Op::kNot: {
        Val v;
        if (!Eval(Kid0(node), &v)) return false;
        if (!Truth(v, node.offset, "after \"not\"")) return false;
        SetBool(out, !v.b);
        return true;
      }
      case Op::kNeg:
        return Negate(node, out);
      case Op::kAnd:
      case Op::kOr:
        return Logic(node, out);
      case Op::kArith:
        return Arith(node, out);
      case Op::kCmp:
        return Compare(node, out);
      case Op::kIn:
        return In(node, out);
      case Op::kCall:
        if (!Call(node, out)) return false;
        if (node.type == T::kDecimal && out->type == T::kInteger) {
          *out = DecVal(Decimal::FromInteger(out->i));
        }
        return true;
    }
    return Fail(node.offset, "internal error: unknown node");
  }

  Status TakeError() { return std::move(error_); }

 private:
  // Returns the value of node n: a literal in place, anything else
  // evaluated into *scratch; nullptr on failure.
  // Names and comparisons are dispatched here too: a branch per call site
  // predicts better than Eval's single switch.
  const Val* Get(int32_t n, Val* scratch) {
    const Node& node = impl_.nodes[n];
    bool ok;
    if (node.op == Op::kLit) return &node.lit;
    if (node.op == Op::kName) {
      ok = ReadName(node, scratch);
    } else if (node.op == Op::kCmp) {
      ok = Compare(node, scratch);
    } else {
      ok = Eval(n, scratch);
    }
    return ok ? scratch : nullptr;
  }

  int32_t Kid0(const Node& node) const {
    return impl_.kids[node.kid_begin].node;
  }
  const Kid& KidAt(const Node& node, int k) const {
    return impl_.kids[node.kid_begin + k];
  }

  [[gnu::cold, gnu::noinline]] bool Fail(size_t offset,
                                         const std::string& msg) {
    error_ = impl_.Error(Code::kInvalidArgument, offset, msg);
    return false;
  }

  std::string_view Own(std::string s) {
    if (!owned_) owned_ = std::make_unique<std::deque<std::string>>();
    owned_->push_back(std::move(s));
    return owned_->back();
  }

  // Turns null into false; fails for a non-boolean.
  bool Truth(Val& v, size_t offset, const char* where) {
    if (v.type == T::kBoolean) return true;
    if (v.type == T::kNull) {
      v = BoolVal(false);
      return true;
    }
    return TruthFail(offset, where, v);
  }

  [[gnu::cold, gnu::noinline]] bool TruthFail(size_t offset,
                                              const char* where,
                                              const Val& v) {
    return Fail(offset, std::string("expected a condition ") + where +
                            " (got " + DescribeVal(v) + ")");
  }

  [[gnu::cold, gnu::noinline]] bool DeclaredFail(const Node& node,
                                                 const Val& v) {
    return Fail(node.offset, impl_.names[node.name_id] + " holds " +
                                 DescribeVal(v) + " (declared " +
                                 TypeName(node.declared) + ")");
  }

  [[gnu::cold, gnu::noinline]] bool CompareFail(size_t offset, Cmp cmp,
                                                const Val& a, const Val& b) {
    if (Family(a.type) != Family(b.type)) {
      return Fail(offset, std::string("cannot compare ") + DescribeVal(a) +
                              " with " + DescribeVal(b));
    }
    return Fail(offset, std::string("cannot order boolean values with \"") +
                            CmpName(cmp) + "\" (only == and !=)");
  }

  [[gnu::noinline]] bool ReadName(const Node& node, Val* out) {
    auto scope = static_cast<Scope>(node.sub);
    const std::string& key = impl_.keys[node.key];
    const Attributes* attrs = nullptr;
    switch (scope) {
      case Scope::kAttr:
        attrs = ctx_.attributes;
        break;
      case Scope::kCustomer:
        attrs = ctx_.customer;
        break;
      case Scope::kPayload:
        attrs = ctx_.payload;
        break;
      case Scope::kTxnId:
        SetText(out, ctx_.txn_id);
        return Record(node, *out);
      case Scope::kTxnState:
        SetText(out, ctx_.txn_state);
        return Record(node, *out);
      case Scope::kTxnKind:
        SetText(out, ctx_.txn_kind);
        return Record(node, *out);
    }
    const Value* v = nullptr;
    if (attrs != nullptr) {
      if (node.hint >= 0 && static_cast<size_t>(node.hint) < attrs->size() &&
          SameKey((*attrs)[node.hint].first, key)) {
        v = &(*attrs)[node.hint].second;
      } else {
        v = FindAttribute(*attrs, key);
      }
    }
    if (v == nullptr) {
      out->type = T::kNull;
    } else {
      SetFromValue(*v, out);
    }
    if (node.declared != T::kAny && out->type != T::kNull &&
        out->type != node.declared) {
      if (node.declared == T::kDecimal && out->type == T::kInteger) {
        *out = DecVal(Decimal::FromInteger(out->i));
      } else {
        return DeclaredFail(node, *out);
      }
    }
    return Record(node, *out);
  }

  bool Record(const Node& node, const Val& v) {
    if (reads_ == nullptr) return true;
    const std::string& name = impl_.names[node.name_id];
    for (const auto& [n, value] : *reads_) {
      if (n == name) return true;
    }
    reads_->emplace_back(name, ToValue(v));
    return true;
  }

  [[gnu::noinline]] bool Negate(const Node& node, Val* out) {
    Val v;
    if (!Eval(Kid0(node), &v)) return false;
    switch (v.type) {
      case T::kNull:
        *out = v;
        return true;
      case T::kInteger:
      case T::kDuration:
        if (v.i == INT64_MIN) return Fail(node.offset, "integer overflow");
        *out = v;
        out->i = -v.i;
        return true;
      case T::kDecimal:
        *out = v;
        out->units = -v.units;
        return true;
      default:
        return Fail(node.offset,
                    "expected a number or a duration after \"-\" (got " +
                        DescribeVal(v) + ")");
    }
  }

  [[gnu::noinline]] bool Logic(const Node& node, Val* out) {
    bool is_and = node.op == Op::kAnd;
    const char* word = is_and ? "\"and\"" : "\"or\"";
    for (int k = 0; k < node.kid_count; ++k) {
      const Kid& kid = KidAt(node, k);
      Val scratch;
      const Val* got = Get(kid.node, &scratch);
      if (got == nullptr) return false;
      Val v = *got;
      if (v.type != T::kBoolean) {
        std::string where = std::string(k == 0 ? "before " : "after ") + word;
        if (!Truth(v, k == 0 ? KidAt(node, 1).offset : kid.offset,
                   where.c_str())) {
          return false;
        }
      }
      if (v.b != is_and) {
        SetBool(out, !is_and);
        return true;
      }
    }
    SetBool(out, is_and);
    return true;
  }

  [[gnu::noinline]] bool Arith(const Node& node, Val* out) {
    Val acc;
    if (!Eval(Kid0(node), &acc)) return false;
    for (int k = 1; k < node.kid_count; ++k) {
      const Kid& kid = KidAt(node, k);
      Val sr;
      const Val* r = Get(kid.node, &sr);
      if (r == nullptr) return false;
      if (acc.type == T::kNull || r->type == T::kNull) {
        *out = NullVal();
        return true;
      }
      if (!Apply(kid.op, kid.offset, acc, *r, &acc)) return false;
    }
    *out = acc;
    return true;
  }

  [[gnu::cold, gnu::noinline]] bool Overflow(size_t offset, const Val& a,
                                             char op, const Val& b) {
    return Fail(offset, std::string("overflow in ") + RenderVal(a) + " " +
                            op + " " + RenderVal(b));
  }

  bool CheckTime(size_t offset, int64_t micros, Val* out) {
    if (!Timestamp{micros}.InRange()) {
      return Fail(offset, "timestamp out of range (years 0001 to 9999)");
    }
    *out = TimeVal(micros);
    return true;
  }

  // *out = a op b for non-null a and b.
  [[gnu::noinline]] bool Apply(char op, size_t offset, const Val& a,
                               const Val& b, Val* out) {
    ArithType at = TypeArith(op, a.type, b.type);
    if (!at.ok) {
      std::string sym(1, op);
      if (at.blame_right) {
        return Fail(offset, std::string("expected ") +
                                ExpectedRight(op, a.type) + " after \"" +
                                sym + "\" (got " + DescribeVal(b) + ")");
      }
      return Fail(offset, std::string("expected ") + ExpectedLeft(op) +
                              " before \"" + sym + "\" (got " +
                              DescribeVal(a) + ")");
    }
    int64_t r = 0;
    if (IsNum(a.type) && IsNum(b.type)) {
      if (op == '/') {
        Decimal da = AsDecimal(a);
        Decimal db = AsDecimal(b);
        if (db.units() == 0) return Fail(offset, "division by zero");
        int scale = std::min(kMaxScale,
                             std::max({kDivScale, da.scale(), db.scale()}));
        Decimal q;
        if (!DivideDecimal(da, db, scale, &q)) {
          return Overflow(offset, a, op, b);
        }
        *out = DecVal(q);
        return true;
      }
      if (a.type == T::kInteger && b.type == T::kInteger) {
        bool overflow = op == '+'   ? __builtin_add_overflow(a.i, b.i, &r)
                        : op == '-' ? __builtin_sub_overflow(a.i, b.i, &r)
                                    : __builtin_mul_overflow(a.i, b.i, &r);
        if (overflow) return Overflow(offset, a, op, b);
        *out = IntVal(r);
        return true;
      }
      Decimal da = AsDecimal(a);
      Decimal db = AsDecimal(b);
      StatusOr<Decimal> d = op == '+'   ? da.Add(db)
                            : op == '-' ? da.Subtract(db)
                                        : da.Multiply(db);
      if (!d.ok()) return Overflow(offset, a, op, b);
      *out = DecVal(*d);
      return true;
    }
    // Durations and timestamps.
    if (op == '+' || op == '-') {
      bool overflow = op == '+' ? __builtin_add_overflow(a.i, b.i, &r)
                                : __builtin_sub_overflow(a.i, b.i, &r);
      if (overflow) return Overflow(offset, a, op, b);
      if (at.result == T::kTimestamp) return CheckTime(offset, r, out);
      *out = DurVal(r);
      return true;
    }
    const Val& dur = a.type == T::kDuration ? a : b;
    const Val& num = a.type == T::kDuration ? b : a;
    if (op == '*') {
      if (num.type == T::kInteger) {
        if (__builtin_mul_overflow(dur.i, num.i, &r)) {
          return Overflow(offset, a, op, b);
        }
        *out = DurVal(r);
        return true;
      }
      auto d = Decimal::FromInteger(dur.i).Multiply(num.D());
      if (!d.ok() || !DecimalToInt64(*d, &r)) {
        return Overflow(offset, a, op, b);
      }
      *out = DurVal(r);
      return true;
    }
    // duration / number
    Decimal divisor = AsDecimal(num);
    if (divisor.units() == 0) return Fail(offset, "division by zero");
    Decimal q;
    if (!DivideDecimal(Decimal::FromInteger(dur.i), divisor, 0, &q) ||
        !DecimalToInt64(q, &r)) {
      return Overflow(offset, a, op, b);
    }
    *out = DurVal(r);
    return true;
  }

  // Sets *result to a == b (or the ordering); false with an error for
  // values of different families.
  bool CompareOp(Cmp cmp, size_t offset, const Val& a, const Val& b,
                 bool* result) {
    if (a.type == T::kNull || b.type == T::kNull) {
      bool both = a.type == b.type;
      *result = cmp == Cmp::kEq ? both : cmp == Cmp::kNe ? !both : false;
      return true;
    }
    if (Family(a.type) != Family(b.type) ||
        (a.type == T::kBoolean && cmp != Cmp::kEq && cmp != Cmp::kNe)) {
      return CompareFail(offset, cmp, a, b);
    }
    int c = CompareVals(a, b);
    switch (cmp) {
      case Cmp::kEq:
        *result = c == 0;
        break;
      case Cmp::kNe:
        *result = c != 0;
        break;
      case Cmp::kLt:
        *result = c < 0;
        break;
      case Cmp::kLe:
        *result = c <= 0;
        break;
      case Cmp::kGt:
        *result = c > 0;
        break;
      case Cmp::kGe:
        *result = c >= 0;
        break;
    }
    return true;
  }

  [[gnu::noinline]] bool Compare(const Node& node, Val* out) {
    Val sa, sb;
    const Val* a = Get(Kid0(node), &sa);
    if (a == nullptr) return false;
    const Val* b = Get(KidAt(node, 1).node, &sb);
    if (b == nullptr) return false;
    bool r = false;
    if (!CompareOp(static_cast<Cmp>(node.sub), node.offset, *a, *b, &r)) {
      return false;
    }
    SetBool(out, r);
    return true;
  }

  [[gnu::noinline]] bool In(const Node& node, Val* out) {
    Val sx;
    const Val* x = Get(Kid0(node), &sx);
    if (x == nullptr) return false;
    bool found = false;
    for (int k = 1; k < node.kid_count && !found; ++k) {
      const Val& e = impl_.nodes[KidAt(node, k).node].lit;
      if (!CompareOp(Cmp::kEq, node.offset, *x, e, &found)) return false;
    }
    SetBool(out, node.sub == 1 ? !found : found);
    return true;
  }

  [[gnu::cold, gnu::noinline]] bool ArgFail(const Node& node, int k,
                                            const char* expected,
                                            const Val& got) {
    Fn fn = static_cast<Fn>(node.sub);
    return Fail(impl_.nodes[KidAt(node, k).node].begin,
                std::string(FnName(fn)) + " expects " + expected +
                    " as argument " + std::to_string(k + 1) + " (got " +
                    DescribeVal(got) + ")");
  }

  [[gnu::noinline]] bool Call(const Node& node, Val* out) {
    auto fn = static_cast<Fn>(node.sub);
    Val a, b;
    int argc = node.kid_count;
    if (fn == Fn::kMin || fn == Fn::kMax || fn == Fn::kCoalesce) {
      return Fold(node, fn, out);
    }
    if (!Eval(Kid0(node), &a)) return false;
    if (argc > 1 && fn != Fn::kMatches) {
      if (!Eval(KidAt(node, 1).node, &b)) return false;
    }
    if (a.type == T::kNull || (argc > 1 && fn != Fn::kMatches &&
                               b.type == T::kNull)) {
      *out = NullVal();
      return true;
    }
    switch (fn) {
      case Fn::kLower:
      case Fn::kUpper:
        if (a.type != T::kText) return ArgFail(node, 0, "text", a);
        *out = TextVal(Own(MapCase(a.S(), fn == Fn::kUpper)));
        return true;
      case Fn::kLen:
        if (a.type != T::kText) return ArgFail(node, 0, "text", a);
        *out = IntVal(CodePointCount(a.S()));
        return true;
      case Fn::kContains:
      case Fn::kStartsWith:
      case Fn::kEndsWith: {
        if (a.type != T::kText) return ArgFail(node, 0, "text", a);
        if (b.type != T::kText) return ArgFail(node, 1, "text", b);
        bool r;
        if (fn == Fn::kContains) {
          r = a.S().find(b.S()) != std::string_view::npos;
        } else if (fn == Fn::kStartsWith) {
          r = a.S().substr(0, b.S().size()) == b.S();
        } else {
          r = a.S().size() >= b.S().size() &&
              a.S().substr(a.S().size() - b.S().size()) == b.S();
        }
        SetBool(out, r);
        return true;
      }
      case Fn::kMatches:
        if (a.type != T::kText) return ArgFail(node, 0, "text", a);
        SetBool(out, RE2::PartialMatch(
            re2::StringPiece(a.S().data(), a.S().size()),
            *impl_.regexes[node.regex]));
        return true;
      case Fn::kRound: {
        if (!IsNum(a.type)) return ArgFail(node, 0, "a number", a);
        int64_t places = 0;
        if (argc > 1) {
          if (b.type != T::kInteger) {
            return ArgFail(node, 1, "an integer", b);
          }
          places = b.i;
          if (places < 0 || places > kMaxScale) {
            return Fail(impl_.nodes[KidAt(node, 1).node].begin,
                        "round takes 0 to 18 places (got " +
                            std::to_string(places) + ")");
          }
        }
        *out = DecVal(AsDecimal(a).Round(static_cast<int>(places)));
        return true;
      }
      case Fn::kAbs:
        if (a.type == T::kDecimal) {
          *out = a;
          out->units = a.units < 0 ? -a.units : a.units;
          return true;
        }
        if (a.type == T::kInteger || a.type == T::kDuration) {
          if (a.i == INT64_MIN) return Fail(node.offset, "integer overflow");
          *out = a;
          out->i = a.i < 0 ? -a.i : a.i;
          return true;
        }
        return ArgFail(node, 0, "a number or a duration", a);
      case Fn::kDays:
      case Fn::kHours:
      case Fn::kMinutes:
      case Fn::kSeconds: {
        if (a.type != T::kDuration) return ArgFail(node, 0, "a duration", a);
        int64_t unit = fn == Fn::kDays    ? kMicrosPerDay
                       : fn == Fn::kHours ? kMicrosPerHour
                       : fn == Fn::kMinutes ? kMicrosPerMinute
                                            : kMicrosPerSecond;
        Decimal q;
        DivideDecimal(Decimal::FromInteger(a.i), Decimal::FromInteger(unit),
                      kDivScale, &q);
        *out = DecVal(q);
        return true;
      }
      default:
        return Fail(node.offset, "internal error: unknown function");
    }
  }

  [[gnu::noinline]] bool Fold(const Node& node, Fn fn, Val* out) {
    *out = NullVal();
    for (int k = 0; k < node.kid_count; ++k) {
      Val v;
      if (!Eval(KidAt(node, k).node, &v)) return false;
      if (v.type == T::kNull) continue;
      if (fn == Fn::kCoalesce) {
        *out = v;
        return true;
      }
      if (v.type == T::kBoolean) {
        return ArgFail(node, k, "a number, text, a timestamp or a duration",
                       v);
      }
      if (out->type == T::kNull) {
        *out = v;
        continue;
      }
      if (Family(v.type) != Family(out->type)) {
        return Fail(impl_.nodes[KidAt(node, k).node].begin,
                    std::string(FnName(fn)) +
                        " needs arguments of one type (got " +
                        DescribeVal(*out) + " and " + DescribeVal(v) + ")");
      }
      bool mixed = v.type != out->type;
      int c = CompareVals(v, *out);
      if ((fn == Fn::kMin && c < 0) || (fn == Fn::kMax && c > 0)) *out = v;
      if (mixed && out->type == T::kInteger) {
        *out = DecVal(Decimal::FromInteger(out->i));
      }
    }
    return true;
  }

  const internal::ExprImpl& impl_;
  const EvalContext& ctx_;
  Attributes* reads_;
  Status error_;
  std::unique_ptr<std::deque<std::string>> owned_;
};

}  // namespace

// ---------------------------------------------------------------------------
// Expression
// ---------------------------------------------------------------------------

StatusOr<Expression> Expression::Parse(std::string_view text,
                                       const ExprSchema& schema) {
  auto impl = std::make_shared<internal::ExprImpl>();
  if (text.size() > static_cast<size_t>(kMaxExprBytes)) {
    return Status(Code::kParseError,
                  "expression too long (" + std::to_string(text.size()) +
                      " bytes, at most " + std::to_string(kMaxExprBytes) +
                      ")");
  }
  impl->text = std::string(text);
  size_t bad = FirstInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    // Columns count the valid code points before the bad byte.
    impl->multiline = text.substr(0, bad).find('\n') != std::string::npos;
    char hex[8];
    static const char kHex[] = "0123456789abcdef";
    auto byte = static_cast<unsigned char>(text[bad]);
    hex[0] = kHex[byte >> 4];
    hex[1] = kHex[byte & 15];
    hex[2] = '\0';
    return impl->Error(Code::kParseError, bad,
                       std::string("invalid UTF-8 (byte 0x") + hex + ")");
  }
  impl->multiline = text.find('\n') != std::string_view::npos;
  Parser parser(impl.get(), schema);
  CRMFLOW_RETURN_IF_ERROR(parser.Run());
  const Node& root = impl->nodes[impl->root];
  if (root.op == Op::kCmp) {
    int32_t l = impl->kids[root.kid_begin].node;
    int32_t r = impl->kids[root.kid_begin + 1].node;
    const Node& name = impl->nodes[l];
    const Node& lit = impl->nodes[r];
    auto scope = static_cast<Scope>(name.sub);
    if (name.op == Op::kName && name.declared != T::kAny &&
        (scope == Scope::kAttr || scope == Scope::kCustomer ||
         scope == Scope::kPayload) &&
        lit.op == Op::kLit && lit.lit.type != T::kNull) {
      impl->simple_name = l;
      impl->simple_lit = r;
    }
  }
  Expression e;
  e.impl_ = std::move(impl);
  return e;
}

StatusOr<Expression> Expression::ParseCondition(std::string_view text,
                                                const ExprSchema& schema) {
  auto e = Parse(text, schema);
  if (!e.ok()) return e;
  const internal::ExprImpl& impl = *e->impl_;
  T t = impl.nodes[impl.root].type;
  if (t != T::kBoolean && t != T::kNull && t != T::kAny) {
    return impl.Error(Code::kParseError, impl.nodes[impl.root].begin,
                      "expected a condition (got " + impl.Describe(impl.root) +
                          ")");
  }
  return e;
}

const std::string& Expression::text() const {
  static const std::string kEmpty;
  return impl_ ? impl_->text : kEmpty;
}

std::optional<ValueType> Expression::result_type() const {
  if (!impl_) return ValueType::kNull;
  T t = impl_->nodes[impl_->root].type;
  if (t == T::kAny) return std::nullopt;
  return static_cast<ValueType>(t);
}

const std::vector<std::string>& Expression::names() const {
  static const std::vector<std::string> kNone;
  return impl_ ? impl_->names : kNone;
}

StatusOr<Value> Expression::Evaluate(const EvalContext& ctx,
                                     Attributes* reads) const {
  if (!impl_) return Status(Code::kInvalidArgument, "empty expression");
  Evaluator ev(*impl_, ctx, reads);
  Val v;
  if (!ev.Eval(impl_->root, &v)) return ev.TakeError();
  return ToValue(v);
}

namespace {

// "name op literal" without the evaluator (see ExprImpl::simple_name):
// the same lookup as Evaluator::ReadName and the same rules as
// Evaluator::CompareOp.  Returns 0 or 1, or -1 when the value needs the
// general path (a value of the wrong type, which fails there).
int FastCompare(const internal::ExprImpl& impl, const EvalContext& ctx) {
  const Node& cmp_node = impl.nodes[impl.root];
  const Node& name = impl.nodes[impl.simple_name];
  const Val& lit = impl.nodes[impl.simple_lit].lit;
  auto cmp = static_cast<Cmp>(cmp_node.sub);
  auto scope = static_cast<Scope>(name.sub);
  const Attributes* attrs = scope == Scope::kAttr       ? ctx.attributes
                            : scope == Scope::kCustomer ? ctx.customer
                                                        : ctx.payload;
  const Value* v = nullptr;
  if (attrs != nullptr) {
    const std::string& key = impl.keys[name.key];
    if (name.hint >= 0 && static_cast<size_t>(name.hint) < attrs->size() &&
        SameKey((*attrs)[name.hint].first, key)) {
      v = &(*attrs)[name.hint].second;
    } else {
      v = FindAttribute(*attrs, key);
    }
  }
  // Null against a non-null literal: only != holds.
  if (v == nullptr || v->is_null()) return cmp == Cmp::kNe ? 1 : 0;
  Val a;
  SetFromValue(*v, &a);
  if (a.type != name.declared) {
    if (name.declared != T::kDecimal || a.type != T::kInteger) return -1;
    a = DecVal(Decimal::FromInteger(a.i));
  }
  // The parser checked that the declared type and the literal compare.
  int c = CompareVals(a, lit);
  switch (cmp) {
    case Cmp::kEq: return c == 0;
    case Cmp::kNe: return c != 0;
    case Cmp::kLt: return c < 0;
    case Cmp::kLe: return c <= 0;
    case Cmp::kGt: return c > 0;
    case Cmp::kGe: return c >= 0;
  }
  return -1;
}

}  // namespace

StatusOr<bool> Expression::EvaluateCondition(const EvalContext& ctx,
                                             Attributes* reads) const {
  if (!impl_) return Status(Code::kInvalidArgument, "empty expression");
  if (impl_->simple_name >= 0 && reads == nullptr) {
    int r = FastCompare(*impl_, ctx);
    if (r >= 0) return r == 1;
  }
  Evaluator ev(*impl_, ctx, reads);
  Val v;
  if (!ev.Eval(impl_->root, &v)) return ev.TakeError();
  if (v.type == T::kNull) return false;
  if (v.type != T::kBoolean) {
    return impl_->Error(Code::kInvalidArgument, 0,
                        "expected a condition (got " + DescribeVal(v) + ")");
  }
  return v.b;
}

namespace {

// Builds Expression::ToDnf: a recursive walk that carries a "negated"
// flag, so that "not" is pushed to the atoms (De Morgan) and each atom is
// complemented under the null rules: not (amount < 5) holds for a null
// amount, as the evaluator's "not false" does.
class DnfBuilder {
 public:
  using Dnf = std::vector<ConditionTerm>;

  DnfBuilder(const internal::ExprImpl& impl, size_t max_terms)
      : impl_(impl), max_terms_(max_terms) {}

  // Returns false when the form grew past max_terms.
  bool Build(int32_t n, bool negated, Dnf* out) {
    const Node& node = impl_.nodes[n];
    switch (node.op) {
      case Op::kLit: {
        // true holds always (one empty term), false and null never.
        bool holds = node.lit.type == T::kBoolean && node.lit.b;
        if (holds != negated) out->push_back({});
        return true;
      }
      case Op::kNot:
        return Build(impl_.kids[node.kid_begin].node, !negated, out);
      case Op::kAnd:
      case Op::kOr: {
        // and, or or under not, its dual, is a product of the children.
        bool product = (node.op == Op::kAnd) != negated;
        if (!product) {
          for (int k = 0; k < node.kid_count; ++k) {
            if (!Build(impl_.kids[node.kid_begin + k].node, negated, out)) {
              return false;
            }
            if (out->size() > max_terms_) return false;
          }
          return true;
        }
        Dnf acc = {{}};
        for (int k = 0; k < node.kid_count; ++k) {
          Dnf kid;
          if (!Build(impl_.kids[node.kid_begin + k].node, negated, &kid)) {
            return false;
          }
          if (acc.size() * kid.size() > max_terms_) return false;
          Dnf next;
          for (const ConditionTerm& a : acc) {
            for (const ConditionTerm& b : kid) {
              ConditionTerm t = a;
              t.insert(t.end(), b.begin(), b.end());
              next.push_back(std::move(t));
            }
          }
          acc = std::move(next);
        }
        out->insert(out->end(), acc.begin(), acc.end());
        return out->size() <= max_terms_;
      }
      case Op::kName:
        if (node.type == T::kBoolean) {
          // A boolean name as a condition: name == true.
          ConditionAtom a = Named(node);
          a.set = ConditionAtom::Set::kIn;
          a.values.push_back(Value::Bool(true));
          Push(std::move(a), negated, out);
          return true;
        }
        break;
      case Op::kCmp:
        if (Comparison(node, negated, out)) return true;
        break;
      case Op::kIn:
        if (List(node, negated, out)) return true;
        break;
      default:
        break;
    }
    ConditionAtom a;
    a.opaque = true;
    a.source = (negated ? "not " : "") + impl_.Source(n);
    out->push_back({std::move(a)});
    return true;
  }

 private:
  // A name whose values the analysis can model: declared, not dynamic.
  bool Modelled(const Node& node) const {
    return node.op == Op::kName && node.type != T::kAny &&
           node.type != T::kNull;
  }

  ConditionAtom Named(const Node& node) const {
    ConditionAtom a;
    a.name = impl_.names[node.name_id];
    a.type = static_cast<ValueType>(node.type);
    return a;
  }

  // Appends atom `a`, complemented when `negated`, as a term of its own.
  static void Push(ConditionAtom a, bool negated, Dnf* out) {
    if (negated) {
      using S = ConditionAtom::Set;
      a.null_ok = !a.null_ok;
      switch (a.set) {
        case S::kAll: a.set = S::kNone; break;
        case S::kNone: a.set = S::kAll; break;
        case S::kBelow:
          a.set = S::kAbove;
          a.inclusive = !a.inclusive;
          break;
        case S::kAbove:
          a.set = S::kBelow;
          a.inclusive = !a.inclusive;
          break;
        case S::kIn: a.set = S::kNotIn; break;
        case S::kNotIn: a.set = S::kIn; break;
      }
    }
    out->push_back({std::move(a)});
  }

  // "name op literal" or "literal op name"; false for anything else.
  bool Comparison(const Node& node, bool negated, Dnf* out) {
    int32_t l = impl_.kids[node.kid_begin].node;
    int32_t r = impl_.kids[node.kid_begin + 1].node;
    auto cmp = static_cast<Cmp>(node.sub);
    if (impl_.nodes[l].op == Op::kLit && Modelled(impl_.nodes[r])) {
      // 5 < amount is amount > 5.
      std::swap(l, r);
      cmp = cmp == Cmp::kLt   ? Cmp::kGt
            : cmp == Cmp::kLe ? Cmp::kGe
            : cmp == Cmp::kGt ? Cmp::kLt
            : cmp == Cmp::kGe ? Cmp::kLe
                              : cmp;
    }
    const Node& name = impl_.nodes[l];
    const Node& lit = impl_.nodes[r];
    if (!Modelled(name) || lit.op != Op::kLit) return false;
    using S = ConditionAtom::Set;
    ConditionAtom a = Named(name);
    if (lit.lit.type == T::kNull) {
      // == null holds only for null, != null for every value; ordering
      // against null never holds.
      a.null_ok = cmp == Cmp::kEq;
      a.set = cmp == Cmp::kNe ? S::kAll : S::kNone;
      Push(std::move(a), negated, out);
      return true;
    }
    // Ordering of text is code point order, which the analysis does not
    // model (it would need witnesses between two strings).
    bool ordered = cmp != Cmp::kEq && cmp != Cmp::kNe;
    if (ordered && name.type != T::kInteger && name.type != T::kDecimal &&
        name.type != T::kTimestamp && name.type != T::kDuration) {
      return false;
    }
    Value v = ToValue(lit.lit);
    switch (cmp) {
      case Cmp::kEq:
        a.set = S::kIn;
        a.values.push_back(std::move(v));
        break;
      case Cmp::kNe:
        // The evaluator's != is not ==, so a null name differs.
        a.null_ok = true;
        a.set = S::kNotIn;
        a.values.push_back(std::move(v));
        break;
      case Cmp::kLt:
      case Cmp::kLe:
        a.set = S::kBelow;
        a.inclusive = cmp == Cmp::kLe;
        a.bound = std::move(v);
        break;
      case Cmp::kGt:
      case Cmp::kGe:
        a.set = S::kAbove;
        a.inclusive = cmp == Cmp::kGe;
        a.bound = std::move(v);
        break;
    }
    Push(std::move(a), negated, out);
    return true;
  }

  // "name in [literals]" and "name not in [...]".
  bool List(const Node& node, bool negated, Dnf* out) {
    const Node& name = impl_.nodes[impl_.kids[node.kid_begin].node];
    if (!Modelled(name)) return false;
    ConditionAtom a = Named(name);
    a.set = ConditionAtom::Set::kIn;
    for (int k = 1; k < node.kid_count; ++k) {
      const Val& e = impl_.nodes[impl_.kids[node.kid_begin + k].node].lit;
      if (e.type == T::kNull) {
        // null == null, so a null literal admits a null name.
        a.null_ok = true;
      } else {
        a.values.push_back(ToValue(e));
      }
    }
    Push(std::move(a), negated != (node.sub == 1), out);
    return true;
  }

  const internal::ExprImpl& impl_;
  size_t max_terms_;
};

}  // namespace

std::optional<SimpleComparison> Expression::AsSimpleComparison() const {
  if (!impl_ || impl_->simple_name < 0) return std::nullopt;
  const Node& name = impl_->nodes[impl_->simple_name];
  if (static_cast<Scope>(name.sub) != Scope::kAttr) return std::nullopt;
  SimpleComparison out;
  out.attribute = impl_->keys[name.key];
  out.hint = name.hint;
  out.declared = static_cast<ValueType>(name.declared);
  out.op = static_cast<SimpleComparison::Op>(impl_->nodes[impl_->root].sub);
  out.literal = ToValue(impl_->nodes[impl_->simple_lit].lit);
  return out;
}

std::vector<std::string> Expression::Conjuncts() const {
  std::vector<std::string> out;
  if (!impl_) return out;
  const internal::ExprImpl& impl = *impl_;
  // Depth-first over nested "and" nodes, which keeps the source order.
  std::vector<int32_t> stack = {impl.root};
  while (!stack.empty()) {
    int32_t n = stack.back();
    stack.pop_back();
    const Node& node = impl.nodes[n];
    if (node.op == Op::kAnd) {
      for (int k = node.kid_count - 1; k >= 0; --k) {
        stack.push_back(impl.kids[node.kid_begin + k].node);
      }
      continue;
    }
    out.push_back(impl.text.substr(node.begin, node.end - node.begin));
  }
  return out;
}

std::vector<ConditionTerm> Expression::ToDnf(size_t max_terms) const {
  std::vector<ConditionTerm> out;
  if (!impl_) return out;
  DnfBuilder builder(*impl_, max_terms);
  if (builder.Build(impl_->root, false, &out)) return out;
  ConditionAtom a;
  a.opaque = true;
  a.source = impl_->text + " (more than " + std::to_string(max_terms) +
             " alternatives)";
  return {{std::move(a)}};
}

std::string FormatDuration(Duration d) {
  if (d.micros == 0) return "0s";
  std::string out;
  // Work in unsigned so that the most negative value has a magnitude.
  uint64_t m = d.micros < 0 ? 0 - static_cast<uint64_t>(d.micros)
                            : static_cast<uint64_t>(d.micros);
  if (d.micros < 0) out = "-";
  struct Unit {
    const char* name;
    uint64_t micros;
  };
  static constexpr Unit kUnits[] = {
      {"d", kMicrosPerDay},    {"h", kMicrosPerHour},
      {"m", kMicrosPerMinute}, {"s", kMicrosPerSecond},
      {"ms", kMicrosPerMilli}, {"us", 1},
  };
  for (const Unit& u : kUnits) {
    if (m >= u.micros) {
      out += std::to_string(m / u.micros) + u.name;
      m %= u.micros;
    }
  }
  return out;
}

std::string FormatReads(const Attributes& reads) {
  std::string out;
  for (const auto& [name, value] : reads) {
    if (!out.empty()) out += ", ";
    out += name + "=" + RenderVal(FromValue(value));
  }
  return out;
}

}  // namespace crmflow
