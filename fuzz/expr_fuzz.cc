// expr_fuzz.cc: libFuzzer target for the rule expression language (expr.h).
//
// The input is the expression text.  It is parsed against a small schema
// with every value type, and when it parses it is evaluated against a
// context with values and against an empty one.  Besides "no crash, no
// leak, no undefined behaviour" the target checks:
//   - a parse error is kParseError "column N: ..." (or "line L, column C:
//     ..." for text on several lines) with N within the text;
//   - ParseCondition accepts exactly the texts whose type is boolean, null
//     or dynamic;
//   - evaluation is deterministic, its value has the static result type,
//     an evaluation error is kInvalidArgument with a column, and the names
//     read are among names();
//   - when text parses, "( text )" parses to the same type and names and
//     evaluates to the same value (an error moves two columns right on the
//     first line);
//   - the value, written back as a literal, parses and evaluates to an
//     equal value of the same type (and the same decimal scale).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "crmflow/expr.h"
#include "crmflow/value.h"
#include "fuzz_util.h"

namespace {

using crmflow::Attributes;
using crmflow::Code;
using crmflow::Decimal;
using crmflow::EvalContext;
using crmflow::Expression;
using crmflow::ExprSchema;
using crmflow::Status;
using crmflow::StatusOr;
using crmflow::Value;
using crmflow::ValueType;
using crmflow_fuzz::Check;
using crmflow_fuzz::Fail;
using crmflow_fuzz::ReadNumber;

const ExprSchema& Schema() {
  static const ExprSchema* schema = [] {
    auto* s = new ExprSchema;
    s->attributes = {{"amount", ValueType::kDecimal},
                     {"qty", ValueType::kInteger},
                     {"tier", ValueType::kText},
                     {"created", ValueType::kTimestamp},
                     {"waited", ValueType::kDuration},
                     {"vip", ValueType::kBoolean},
                     {"dyn", std::nullopt},
                     {"address.city", ValueType::kText}};
    s->customer = {{"tier", ValueType::kText}};
    s->payload = {{"score", ValueType::kInteger}};
    return s;
  }();
  return *schema;
}

struct Context {
  Attributes attributes, customer, payload;
  EvalContext full, empty;
};

const Context& Ctx() {
  static const Context* ctx = [] {
    auto* c = new Context;
    c->attributes = {
        {"amount", Value::Dec(Decimal::FromUnits(123450, 2))},
        {"qty", Value::Integer(3)},
        {"tier", Value::Text("gold")},
        {"created", Value::Time(crmflow::Timestamp{1770022800000000})},
        {"waited", Value::Span(crmflow::Duration{129600000000})},
        {"vip", Value::Bool(true)},
        {"dyn", Value::Integer(7)},
        {"address.city", Value::Text("Z\xC3\xBCrich")},
    };
    c->customer = {{"tier", Value::Text("silver")},
                   {"since", Value::Time(crmflow::Timestamp{0})}};
    c->payload = {{"score", Value::Integer(2)},
                  {"note", Value::Text("sp\xC3\xA4t \xE4\xB8\xAD")},
                  {"a.b", Value::Dec(Decimal::FromUnits(10, 2))}};
    c->full.attributes = &c->attributes;
    c->full.customer = &c->customer;
    c->full.payload = &c->payload;
    c->full.txn_id = "SO-1";
    c->full.txn_state = "created";
    c->full.txn_kind = "sales_order";
    return c;
  }();
  return *ctx;
}

size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Checks the "column N: " / "line L, column C: " prefix; returns the column
// and sets *line (1 without a line part).
long CheckColumn(const Status& s, std::string_view text) {
  const std::string& m = s.message();
  size_t i = 0;
  long line = 1;
  if (m.compare(0, 5, "line ") == 0) {
    i = 5;
    line = ReadNumber(m, &i);
    Check(line >= 1 && m.compare(i, 2, ", ") == 0, "bad line in: " + m);
    i += 2;
  }
  Check(m.compare(i, 7, "column ") == 0, "no column in: " + m);
  i += 7;
  long column = ReadNumber(m, &i);
  Check(column >= 1 && m.compare(i, 2, ": ") == 0, "bad column in: " + m);
  Check(static_cast<size_t>(column) <= CodePoints(text) + 1,
        "column past the end in: " + m);
  return line == 1 ? column : -column;  // negative: not on the first line
}

// The message of an error in "( text )", expected from the one in text.
std::string Shifted(const Status& s, std::string_view text) {
  long column = CheckColumn(s, text);
  if (column < 0) return s.message();  // a later line does not move
  const std::string& m = s.message();
  size_t at = m.find("column ") + 7;
  size_t end = at;
  ReadNumber(m, &end);
  return m.substr(0, at) + std::to_string(column + 2) + m.substr(end);
}

bool SameValue(const Value& a, const Value& b) {
  if (a.type() != b.type() || !(a == b)) return false;
  if (a.type() == ValueType::kDecimal) {
    return a.decimal().ToString() == b.decimal().ToString();
  }
  return true;
}

std::string Show(const StatusOr<Value>& v) {
  if (!v.ok()) return v.status().ToString();
  return std::string(crmflow::ValueTypeName(v->type())) + " " + v->ToText();
}

void CheckSameResult(const StatusOr<Value>& a, const StatusOr<Value>& b,
                     const std::string& what) {
  if (a.ok() != b.ok() || (a.ok() && !SameValue(*a, *b)) ||
      (!a.ok() && a.status().ToString() != b.status().ToString())) {
    Fail(what + ": " + Show(a) + " vs " + Show(b));
  }
}

// Writes `v` as a literal of the language, or "" when it has none.
std::string Literal(const Value& v) {
  switch (v.type()) {
    case ValueType::kNull:
      return "null";
    case ValueType::kBoolean:
      return v.boolean() ? "true" : "false";
    case ValueType::kInteger:
      // The most negative integer has no literal (its magnitude overflows).
      if (v.integer() == INT64_MIN) return "";
      return v.ToText();
    case ValueType::kDecimal:
      // A decimal of scale 0 would read back as an integer; round() of
      // it is a decimal of scale 0.
      if (v.decimal().scale() == 0) return "round(" + v.ToText() + ")";
      return v.ToText();
    case ValueType::kTimestamp:
      return "@" + v.timestamp().ToIso();
    case ValueType::kDuration:
      if (v.duration().micros == INT64_MIN) return "";
      return crmflow::FormatDuration(v.duration());
    case ValueType::kText: {
      std::string out = "'";
      for (char c : v.text()) {
        unsigned char u = static_cast<unsigned char>(c);
        if (c == '\\' || c == '\'') {
          out.push_back('\\');
          out.push_back(c);
        } else if (u < 0x20 || u == 0x7f) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\u{";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 15]);
          out += "}";
        } else {
          out.push_back(c);
        }
      }
      return out + "'";
    }
  }
  return "";
}

void CheckEvaluation(const Expression& e, const EvalContext& ctx,
                     std::string_view text) {
  StatusOr<Value> v = e.Evaluate(ctx);
  CheckSameResult(v, e.Evaluate(ctx), "evaluation is not deterministic");
  Attributes reads;
  StatusOr<Value> traced = e.Evaluate(ctx, &reads);
  CheckSameResult(v, traced, "evaluation with reads differs");
  for (const auto& [name, value] : reads) {
    bool known = false;
    for (const std::string& n : e.names()) known |= n == name;
    Check(known, "read \"" + name + "\" is not in names()");
  }
  StatusOr<bool> cond = e.EvaluateCondition(ctx);
  if (!v.ok()) {
    Check(v.status().code() == Code::kInvalidArgument,
          "evaluation error is not invalid argument: " + Show(v));
    CheckColumn(v.status(), text);
    Check(!cond.ok() && cond.status().message() == v.status().message(),
          "EvaluateCondition does not fail like Evaluate");
    return;
  }
  if (v->type() == ValueType::kBoolean || v->is_null()) {
    Check(cond.ok() && *cond == (!v->is_null() && v->boolean()),
          "EvaluateCondition disagrees with Evaluate");
  } else {
    Check(!cond.ok() && cond.status().code() == Code::kInvalidArgument,
          "EvaluateCondition accepted a non-boolean");
  }
  if (e.result_type().has_value() && !v->is_null()) {
    Check(v->type() == *e.result_type(),
          std::string("value of type ") + crmflow::ValueTypeName(v->type()) +
              " for static type " +
              crmflow::ValueTypeName(*e.result_type()));
  }
  std::string lit = Literal(*v);
  if (lit.empty()) return;
  auto back = Expression::Parse(lit, ExprSchema{});
  if (!back.ok()) {
    Fail("literal " + lit + " does not parse: " + back.status().ToString());
  }
  CheckSameResult(v, back->Evaluate(EvalContext{}),
                  "literal " + lit + " does not round-trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Texts past the byte limit are refused up front; keep the runs fast.
  if (size > 4096) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const ExprSchema& schema = Schema();
  auto e = Expression::Parse(text, schema);
  auto cond = Expression::ParseCondition(text, schema);
  std::string wrapped_text = "( " + std::string(text) + " )";
  auto wrapped = Expression::Parse(wrapped_text, schema);
  if (!e.ok()) {
    Check(e.status().code() == Code::kParseError,
          "parse error is not kParseError: " + e.status().ToString());
    CheckColumn(e.status(), text);
    Check(!cond.ok() && cond.status().message() == e.status().message(),
          "ParseCondition fails differently from Parse");
    // (Parentheses may balance a text that does not parse: "1) + (2".)
    return 0;
  }
  Check(e->text() == text, "text() is not the source text");
  auto type = e->result_type();
  bool is_condition = !type.has_value() || *type == ValueType::kBoolean ||
                      *type == ValueType::kNull;
  Check(cond.ok() == is_condition,
        "ParseCondition disagrees with result_type: " +
            (cond.ok() ? std::string("accepted") : cond.status().ToString()));
  if (!cond.ok()) {
    Check(cond.status().code() == Code::kParseError, "bad condition error");
    CheckColumn(cond.status(), text);
  }
  for (size_t i = 0; i < e->names().size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      Check(e->names()[i] != e->names()[j], "names() repeats a name");
    }
  }
  const Context& ctx = Ctx();
  CheckEvaluation(*e, ctx.full, text);
  CheckEvaluation(*e, ctx.empty, text);

  if (!wrapped.ok()) {
    // Only the nesting limit may refuse one more level of parentheses.
    Check(wrapped.status().message().find("deep") != std::string::npos ||
              wrapped.status().message().find("nest") != std::string::npos,
          "\"" + wrapped_text + "\" does not parse: " +
              wrapped.status().ToString());
    return 0;
  }
  Check(wrapped->result_type() == type, "parentheses change the type");
  Check(wrapped->names() == e->names(), "parentheses change the names");
  for (const EvalContext* c : {&ctx.full, &ctx.empty}) {
    StatusOr<Value> bare = e->Evaluate(*c);
    StatusOr<Value> paren = wrapped->Evaluate(*c);
    if (bare.ok()) {
      CheckSameResult(bare, paren, "parentheses change the value");
    } else {
      Check(!paren.ok() && paren.status().message() ==
                               Shifted(bare.status(), text),
            "parentheses change the error: " + bare.status().ToString() +
                " vs " + Show(paren));
    }
  }
  return 0;
}
