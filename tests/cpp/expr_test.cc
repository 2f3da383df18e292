// expr_test.cc: the rule expression language (expr.h).  Expected values
// are worked out by hand.

#include "crmflow/expr.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace crmflow {
namespace {

Value Dec(const char* text) { return Value::Dec(*Decimal::Parse(text)); }
Value Time(const char* iso) { return Value::Time(*Timestamp::ParseIso(iso)); }
Value Span(int64_t micros) { return Value::Span(Duration{micros}); }

constexpr int64_t kSecond = 1000000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;

ExprSchema TestSchema() {
  ExprSchema s;
  s.attributes = {
      {"amount", ValueType::kDecimal},
      {"tier", ValueType::kText},
      {"channel", ValueType::kText},
      {"count", ValueType::kInteger},
      {"delivered_at", ValueType::kTimestamp},
      {"estimated_at", ValueType::kTimestamp},
      {"wait", ValueType::kDuration},
      {"vip", ValueType::kBoolean},
      {"zero", ValueType::kInteger},
      {"name", ValueType::kText},
      {"note", std::nullopt},
      {"address.city", ValueType::kText},
  };
  s.customer = {{"tier", ValueType::kText}};
  return s;
}

// The attributes of a typical transaction.
Attributes TestAttributes() {
  return {
      {"amount", Dec("900.00")},
      {"tier", Value::Text("gold")},
      {"channel", Value::Text("phone")},
      {"count", Value::Integer(3)},
      {"delivered_at", Time("2026-02-03T12:00:00Z")},
      {"estimated_at", Time("2026-02-02T09:00:00Z")},
      {"wait", Span(90 * kMinute)},
      {"vip", Value::Bool(true)},
      {"zero", Value::Integer(0)},
      {"name", Value::Text("Zoë Müller")},
      {"address.city", Value::Text("Köln")},
  };
}

struct Env {
  Attributes attributes = TestAttributes();
  Attributes customer = {{"tier", Value::Text("silver")},
                         {"region", Value::Text("EMEA")}};
  Attributes payload = {{"score", Value::Integer(2)},
                        {"comment", Value::Text("délai trop long 😡")}};
  EvalContext Context() {
    EvalContext ctx;
    ctx.attributes = &attributes;
    ctx.customer = &customer;
    ctx.payload = &payload;
    ctx.txn_id = "SO-9";
    ctx.txn_state = "open";
    ctx.txn_kind = "sales_order";
    return ctx;
  }
};

// Parses and evaluates `text` over the test environment.
StatusOr<Value> Run(std::string_view text, Env* env = nullptr) {
  Env local;
  if (env == nullptr) env = &local;
  auto e = Expression::Parse(text, TestSchema());
  if (!e.ok()) return e.status();
  return e->Evaluate(env->Context());
}

// Returns the value of `text`, failing the test on an error.
Value Eval(std::string_view text, Env* env = nullptr) {
  auto v = Run(text, env);
  EXPECT_TRUE(v.ok()) << text << ": " << v.status().ToString();
  return v.ok() ? *v : Value();
}

std::string Text(std::string_view text, Env* env = nullptr) {
  return Eval(text, env).ToText();
}

bool True(std::string_view text, Env* env = nullptr) {
  Value v = Eval(text, env);
  EXPECT_EQ(v.type(), ValueType::kBoolean) << text;
  return v.type() == ValueType::kBoolean && v.boolean();
}

// Returns the parse error message of `text` ("" when it parses).
std::string ParseError(std::string_view text,
                       const ExprSchema& schema = TestSchema()) {
  auto e = Expression::Parse(text, schema);
  if (e.ok()) return "";
  EXPECT_EQ(e.status().code(), Code::kParseError) << text;
  return e.status().message();
}

// Returns the evaluation error message of `text` ("" when it succeeds).
std::string EvalError(std::string_view text, Env* env = nullptr) {
  Env local;
  if (env == nullptr) env = &local;
  auto e = Expression::Parse(text, TestSchema());
  EXPECT_TRUE(e.ok()) << text << ": " << e.status().ToString();
  if (!e.ok()) return "parse error";
  auto v = e->Evaluate(env->Context());
  if (v.ok()) return "";
  EXPECT_EQ(v.status().code(), Code::kInvalidArgument) << text;
  return v.status().message();
}

// ---------------------------------------------------------------------------
// Literals
// ---------------------------------------------------------------------------

TEST(Expr, LiteralsOfEveryType) {
  EXPECT_EQ(Eval("42"), Value::Integer(42));
  Value d = Eval("0.10");
  ASSERT_EQ(d.type(), ValueType::kDecimal);
  EXPECT_EQ(d.decimal().ToString(), "0.10");
  EXPECT_EQ(Eval("'gold'"), Value::Text("gold"));
  EXPECT_EQ(Eval("\"gold\""), Value::Text("gold"));
  EXPECT_EQ(Eval("'it\\'s'"), Value::Text("it's"));
  EXPECT_EQ(Eval("\"a\\\"b\\\\c\\n\\t\\r\""), Value::Text("a\"b\\c\n\t\r"));
  EXPECT_EQ(Eval("'caf\\u00e9'"), Value::Text("café"));
  EXPECT_EQ(Eval("'\\u{1F600}'"), Value::Text("😀"));
  EXPECT_EQ(Eval("'中文'"), Value::Text("中文"));
  EXPECT_EQ(Eval("true"), Value::Bool(true));
  EXPECT_EQ(Eval("false"), Value::Bool(false));
  EXPECT_TRUE(Eval("null").is_null());
  EXPECT_EQ(Eval("@2026-02-02"), Time("2026-02-02T00:00:00Z"));
  EXPECT_EQ(Eval("@2026-02-02T09:00:00Z"), Time("2026-02-02T09:00:00Z"));
  EXPECT_EQ(Eval("@2026-02-02T09:00Z"), Time("2026-02-02T09:00:00Z"));
  EXPECT_EQ(Eval("@2026-02-02T10:00:00.5+01:00"),
            Time("2026-02-02T09:00:00.500000Z"));
  EXPECT_EQ(Eval("8h"), Span(8 * kHour));
  EXPECT_EQ(Eval("3d"), Span(3 * kDay));
  EXPECT_EQ(Eval("30m"), Span(30 * kMinute));
  EXPECT_EQ(Eval("45s"), Span(45 * kSecond));
  EXPECT_EQ(Eval("1d12h"), Span(36 * kHour));
  EXPECT_EQ(Eval("1w"), Span(7 * kDay));
  EXPECT_EQ(Eval("250ms"), Span(250000));
  EXPECT_EQ(Eval("-30m"), Span(-30 * kMinute));
  EXPECT_EQ(Eval("-5"), Value::Integer(-5));
  EXPECT_EQ(Eval("-0.5").decimal().ToString(), "-0.5");
}

TEST(Expr, WhitespaceAndNewlinesAreIgnored) {
  EXPECT_EQ(Eval("  1 +\n\t2  "), Value::Integer(3));
}

// ---------------------------------------------------------------------------
// Precedence and associativity
// ---------------------------------------------------------------------------

TEST(Expr, MultiplicationBindsTighterThanAddition) {
  EXPECT_EQ(Eval("1 + 2 * 3"), Value::Integer(7));
  EXPECT_EQ(Eval("(1 + 2) * 3"), Value::Integer(9));
  EXPECT_EQ(Eval("2 * 3 + 1"), Value::Integer(7));
}

TEST(Expr, BinaryOperatorsAreLeftAssociative) {
  EXPECT_EQ(Eval("10 - 3 - 2"), Value::Integer(5));
  EXPECT_EQ(Text("12 / 2 / 3"), "2.000000");
  EXPECT_EQ(Eval("10 - (3 - 2)"), Value::Integer(9));
}

TEST(Expr, UnaryMinusBindsTighterThanMultiplication) {
  EXPECT_EQ(Eval("-2 * 3"), Value::Integer(-6));
  EXPECT_EQ(Eval("- count * 2"), Value::Integer(-6));
  EXPECT_EQ(Eval("--count"), Value::Integer(3));
}

TEST(Expr, AndBindsTighterThanOr) {
  EXPECT_TRUE(True("true or false and false"));
  EXPECT_FALSE(True("(true or false) and false"));
}

TEST(Expr, NotBindsLooserThanComparison) {
  EXPECT_TRUE(True("not 1 == 2"));
  EXPECT_TRUE(True("not true or true"));   // (not true) or true
  EXPECT_FALSE(True("not (true or true)"));
}

TEST(Expr, ComparisonBindsLooserThanArithmetic) {
  EXPECT_TRUE(True("1 + 2 == 3 and 2 * 2 > 3"));
}

TEST(Expr, ComparisonsDoNotChain) {
  EXPECT_EQ(ParseError("1 < 2 < 3"),
            "column 7: comparisons cannot be chained (use and: a < b and "
            "b < c)");
}

// ---------------------------------------------------------------------------
// Decimal arithmetic
// ---------------------------------------------------------------------------

TEST(Expr, DecimalAdditionIsExact) {
  EXPECT_TRUE(True("0.10 + 0.20 == 0.30"));
  EXPECT_EQ(Text("0.10 + 0.20"), "0.30");
  EXPECT_EQ(Text("12345678901234567.89 + 0.01"), "12345678901234567.90");
}

TEST(Expr, ThousandCentsMakeTenExactly) {
  std::string sum = "0.01";
  for (int i = 1; i < 1000; ++i) sum += " + 0.01";
  EXPECT_EQ(Text(sum), "10.00");
  EXPECT_TRUE(True(sum + " == 10.00"));
  EXPECT_TRUE(True("1000 * 0.01 == 10.00"));
  // A running total kept in an attribute.
  ExprSchema schema;
  schema.attributes = {{"total", ValueType::kDecimal}};
  auto step = Expression::Parse("total + 0.01", schema);
  ASSERT_TRUE(step.ok()) << step.status().ToString();
  Attributes attrs = {{"total", Dec("0.00")}};
  EvalContext ctx;
  ctx.attributes = &attrs;
  for (int i = 0; i < 1000; ++i) {
    auto v = step->Evaluate(ctx);
    ASSERT_TRUE(v.ok());
    SetAttribute(attrs, "total", *v);
  }
  EXPECT_EQ(FindAttribute(attrs, "total")->decimal().ToString(), "10.00");
}

TEST(Expr, IntegersAndDecimalsMix) {
  EXPECT_EQ(Text("amount + 100"), "1000.00");
  EXPECT_EQ(Text("amount * 2"), "1800.00");
  EXPECT_EQ(Eval("count * 2 - 1"), Value::Integer(5));
  EXPECT_TRUE(True("1 == 1.00"));
  EXPECT_TRUE(True("amount < 1000"));
}

TEST(Expr, DivisionHasScaleSixRoundedHalfAwayFromZero) {
  EXPECT_EQ(Text("10 / 4"), "2.500000");
  EXPECT_EQ(Text("2 / 3"), "0.666667");
  EXPECT_EQ(Text("-2 / 3"), "-0.666667");
  EXPECT_EQ(Text("1 / 8"), "0.125000");
  // A longer operand scale is kept.
  EXPECT_EQ(Text("1.00000000 / 3"), "0.33333333");
  EXPECT_EQ(Text("amount / 3"), "300.000000");
}

TEST(Expr, RoundIsHalfAwayFromZero) {
  EXPECT_EQ(Text("round(2.675, 2)"), "2.68");
  EXPECT_EQ(Text("round(-2.675, 2)"), "-2.68");
  EXPECT_EQ(Text("round(2.5)"), "3");
  EXPECT_EQ(Text("round(2.4)"), "2");
  EXPECT_EQ(Text("round(5, 2)"), "5.00");
  EXPECT_EQ(Text("round(2 / 3, 2)"), "0.67");
}

TEST(Expr, AbsMinMax) {
  EXPECT_EQ(Text("abs(-2.50)"), "2.50");
  EXPECT_EQ(Eval("abs(-3)"), Value::Integer(3));
  EXPECT_EQ(Eval("min(3, 1, 2)"), Value::Integer(1));
  EXPECT_EQ(Text("max(3, 4.5, 2)"), "4.5");
  EXPECT_EQ(Text("max(3, 2.5)"), "3");  // decimal because one is decimal
  EXPECT_EQ(Eval("max(3, 2.5)").type(), ValueType::kDecimal);
  EXPECT_EQ(Eval("min('b', 'a')"), Value::Text("a"));
  EXPECT_EQ(Eval("max(delivered_at, estimated_at)"),
            Time("2026-02-03T12:00:00Z"));
}

TEST(Expr, DivisionByZeroIsAnEvaluationError) {
  EXPECT_EQ(EvalError("1 / 0"), "column 3: division by zero");
  EXPECT_EQ(EvalError("amount / zero"), "column 8: division by zero");
  EXPECT_EQ(EvalError("1h / 0"), "column 4: division by zero");
}

TEST(Expr, IntegerOverflowIsAnEvaluationError) {
  EXPECT_EQ(EvalError("9223372036854775807 + 1"),
            "column 21: overflow in 9223372036854775807 + 1");
  EXPECT_EQ(ParseError("9223372036854775808"),
            "column 1: integer 9223372036854775808 is too large (at most "
            "9223372036854775807; write a decimal such as "
            "9223372036854775808.0)");
}

// ---------------------------------------------------------------------------
// Durations and timestamps
// ---------------------------------------------------------------------------

TEST(Expr, TimestampPlusDuration) {
  EXPECT_TRUE(True("@2026-02-02T09:00:00Z + 8h == @2026-02-02T17:00:00Z"));
  EXPECT_TRUE(True("delivered_at > estimated_at + 1d"));
  EXPECT_FALSE(True("delivered_at > estimated_at + 1d12h"));
  EXPECT_EQ(Eval("estimated_at - 1d"), Time("2026-02-01T09:00:00Z"));
  EXPECT_EQ(Eval("1h + estimated_at"), Time("2026-02-02T10:00:00Z"));
}

TEST(Expr, TimestampMinusTimestampIsADuration) {
  EXPECT_EQ(Eval("delivered_at - estimated_at"), Span(27 * kHour));
  EXPECT_TRUE(True("@2026-02-03 - @2026-02-02 == 1d"));
  EXPECT_TRUE(True("delivered_at - estimated_at > 1d"));
}

TEST(Expr, DurationArithmetic) {
  EXPECT_TRUE(True("2 * 30m == 1h"));
  EXPECT_TRUE(True("30m * 2 == 1h"));
  EXPECT_TRUE(True("1h / 4 == 15m"));
  EXPECT_TRUE(True("1h * 1.5 == 90m"));
  EXPECT_TRUE(True("1d - 1h == 23h"));
  EXPECT_TRUE(True("wait > 1h and wait < 2h"));
  EXPECT_EQ(Eval("abs(-30m)"), Span(30 * kMinute));
  EXPECT_EQ(Eval("1us * 3"), Span(3));
}

TEST(Expr, DurationsConvertToNumbers) {
  EXPECT_EQ(Text("days(36h)"), "1.500000");
  EXPECT_EQ(Text("hours(1d12h)"), "36.000000");
  EXPECT_EQ(Text("minutes(wait)"), "90.000000");
  EXPECT_EQ(Text("seconds(250ms)"), "0.250000");
  EXPECT_EQ(Text("days(8h)"), "0.333333");
  EXPECT_TRUE(True("days(delivered_at - estimated_at) >= 1"));
}

TEST(Expr, FormatDurationWritesTheLiteralSyntax) {
  EXPECT_EQ(FormatDuration(Duration{36 * kHour}), "1d12h");
  EXPECT_EQ(FormatDuration(Duration{-30 * kMinute}), "-30m");
  EXPECT_EQ(FormatDuration(Duration{0}), "0s");
  EXPECT_EQ(FormatDuration(Duration{kSecond + 1500}), "1s1ms500us");
}

TEST(Expr, TimestampOutOfRangeIsAnEvaluationError) {
  EXPECT_EQ(EvalError("@9999-12-31 + 1d"),
            "column 13: timestamp out of range (years 0001 to 9999)");
}

// ---------------------------------------------------------------------------
// Short-circuit and logic
// ---------------------------------------------------------------------------

TEST(Expr, AndOrShortCircuit) {
  // The right side would fail with division by zero.
  EXPECT_FALSE(True("false and amount / zero > 1"));
  EXPECT_TRUE(True("true or amount / zero > 1"));
  EXPECT_FALSE(True("amount > 5000 and amount / zero > 1"));
  EXPECT_EQ(EvalError("true and amount / zero > 1"),
            "column 17: division by zero");
  EXPECT_EQ(EvalError("false or amount / zero > 1"),
            "column 17: division by zero");
}

TEST(Expr, NotShortCircuitNamesAreNotRead) {
  auto e = Expression::Parse("amount <= 800 and tier == 'gold'", TestSchema());
  ASSERT_TRUE(e.ok());
  Env env;
  Attributes reads;
  auto r = e->EvaluateCondition(env.Context(), &reads);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(FormatReads(reads), "amount=900.00");
}

// ---------------------------------------------------------------------------
// in
// ---------------------------------------------------------------------------

TEST(Expr, InLiteralList) {
  EXPECT_TRUE(True("channel in ['phone', 'email']"));
  EXPECT_FALSE(True("channel in ['web', 'email']"));
  EXPECT_FALSE(True("channel not in ['phone', 'email']"));
  EXPECT_TRUE(True("count in [1, 2, 3]"));
  EXPECT_TRUE(True("amount in [1, 900]"));  // numbers compare by value
  EXPECT_TRUE(True("-1 in [-1, 2]"));
  EXPECT_FALSE(True("count in []"));
  EXPECT_FALSE(True("payload.missing in ['a']"));
  EXPECT_TRUE(True("payload.missing not in ['a']"));
  EXPECT_TRUE(True("payload.missing in ['a', null]"));
}

TEST(Expr, InListErrors) {
  EXPECT_EQ(ParseError("channel in [tier]"),
            "column 13: list elements must be literals (got tier)");
  EXPECT_EQ(ParseError("channel in ['a', 1]"),
            "column 18: list elements must share one type (got text and "
            "integer)");
  EXPECT_EQ(ParseError("count in ['a']"),
            "column 11: cannot compare integer with text");
  EXPECT_EQ(ParseError("channel in 'a'"),
            "column 12: expected \"[\" after in (got text \"a\")");
  EXPECT_EQ(ParseError("['a']"),
            "column 1: a list [...] is allowed only after in");
  EXPECT_EQ(ParseError("channel in ['a' 'b']"),
            "column 17: expected \",\" or \"]\" in the list (got text \"b\")");
}

// ---------------------------------------------------------------------------
// Text functions and UTF-8
// ---------------------------------------------------------------------------

TEST(Expr, LowerAndUpperHandleAccentsAndLeaveOtherScripts) {
  EXPECT_EQ(Eval("lower('ÀÉÎ ÇA')"), Value::Text("àéî ça"));
  EXPECT_EQ(Eval("upper(name)"), Value::Text("ZOË MÜLLER"));
  EXPECT_EQ(Eval("upper('straße')"), Value::Text("STRAßE"));
  EXPECT_EQ(Eval("upper('Ελλάδα')"), Value::Text("ΕΛΛΆΔΑ"));
  EXPECT_EQ(Eval("lower('ΟΔΟΣ')"), Value::Text("οδοσ"));
  EXPECT_EQ(Eval("upper('привет')"), Value::Text("ПРИВЕТ"));
  EXPECT_EQ(Eval("lower('ŁÓDŹ')"), Value::Text("łódź"));
  EXPECT_EQ(Eval("upper('tiếng việt')"), Value::Text("TIẾNG VIỆT"));
  EXPECT_EQ(Eval("lower('中文ABC')"), Value::Text("中文abc"));
  EXPECT_EQ(Eval("upper('😀 ok')"), Value::Text("😀 OK"));
}

TEST(Expr, LenCountsCodePoints) {
  EXPECT_EQ(Eval("len('abc')"), Value::Integer(3));
  EXPECT_EQ(Eval("len('café')"), Value::Integer(4));
  EXPECT_EQ(Eval("len('中文')"), Value::Integer(2));
  EXPECT_EQ(Eval("len('😀')"), Value::Integer(1));
  EXPECT_EQ(Eval("len('')"), Value::Integer(0));
  EXPECT_EQ(Eval("len(name)"), Value::Integer(10));
}

TEST(Expr, ContainsStartsWithEndsWith) {
  EXPECT_TRUE(True("contains('你好世界', '世界')"));
  EXPECT_TRUE(True("contains(payload.comment, '😡')"));
  EXPECT_TRUE(True("contains(lower(name), 'zoë')"));
  EXPECT_FALSE(True("contains(name, 'zoë')"));
  EXPECT_TRUE(True("starts_with(txn.id, 'SO-')"));
  EXPECT_FALSE(True("starts_with('SO', 'SO-')"));
  EXPECT_TRUE(True("ends_with(name, 'Müller')"));
  EXPECT_TRUE(True("ends_with(name, '')"));
  EXPECT_FALSE(True("ends_with('r', 'Müller')"));
}

TEST(Expr, TextComparesByCodePoint) {
  EXPECT_TRUE(True("'a' < 'b'"));
  EXPECT_TRUE(True("'z' < 'é'"));
  EXPECT_TRUE(True("tier == 'gold'"));
  EXPECT_TRUE(True("address.city == 'Köln'"));
}

// ---------------------------------------------------------------------------
// Regular expressions
// ---------------------------------------------------------------------------

TEST(Expr, MatchesUsesRe2Search) {
  EXPECT_TRUE(True("matches(txn.id, '^SO-[0-9]+$')"));
  EXPECT_FALSE(True("matches('SO-9x', '^SO-[0-9]+$')"));
  EXPECT_TRUE(True("matches(tier, 'ol')"));  // unanchored search
  EXPECT_TRUE(True("matches(tier, '(?i)GOLD')"));
  EXPECT_TRUE(True("matches('中文', '^.{2}$')"));  // UTF-8 aware
  EXPECT_TRUE(Eval("matches(payload.missing, 'a')").is_null());
}

TEST(Expr, MatchesIsLinearOnAPathologicalPattern) {
  // Exponential for a backtracking engine; RE2 answers at once.
  std::string text = "matches('" + std::string(5000, 'a') + "b', '^(a+)+$')";
  EXPECT_FALSE(True(text));
}

TEST(Expr, InvalidRegexIsAParseErrorAtThePattern) {
  EXPECT_EQ(ParseError("matches(tier, 'a(b')"),
            "column 15: invalid regular expression \"a(b\" (missing ): a(b)");
  EXPECT_EQ(ParseError("matches(tier, tier)"),
            "column 15: matches expects a text literal as its pattern (got "
            "text tier)");
}

// ---------------------------------------------------------------------------
// Null-safe access
// ---------------------------------------------------------------------------

TEST(Expr, MissingPayloadFieldIsNull) {
  EXPECT_TRUE(Eval("payload.missing").is_null());
  EXPECT_FALSE(True("payload.missing <= 2"));
  EXPECT_FALSE(True("payload.missing > 2"));
  EXPECT_FALSE(True("payload.missing == 2"));
  EXPECT_TRUE(True("payload.missing != 2"));
  EXPECT_TRUE(True("payload.missing == null"));
  EXPECT_FALSE(True("payload.missing != null"));
  EXPECT_TRUE(True("not (payload.missing > 3)"));
  EXPECT_TRUE(Eval("payload.missing + 1").is_null());
  EXPECT_TRUE(Eval("lower(payload.missing)").is_null());
  EXPECT_EQ(Eval("coalesce(payload.missing, 5)"), Value::Integer(5));
  EXPECT_EQ(Eval("min(payload.missing, 3, 1)"), Value::Integer(1));
  EXPECT_TRUE(Eval("max(payload.missing, null)").is_null());
}

TEST(Expr, MissingCustomerAndPayloadReadAsNull) {
  auto e = Expression::ParseCondition(
      "customer.tier == 'gold' or payload.score <= 2", TestSchema());
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EvalContext empty;  // no attributes, customer or payload
  auto r = e->EvaluateCondition(empty);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(*r);
  Env env;
  EXPECT_TRUE(*e->EvaluateCondition(env.Context()));  // score is 2
}

TEST(Expr, NullConditionIsFalse) {
  auto e = Expression::ParseCondition("payload.flag", TestSchema());
  ASSERT_TRUE(e.ok());
  Env env;
  auto r = e->EvaluateCondition(env.Context());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_TRUE(True("not payload.flag"));
  EXPECT_FALSE(True("payload.flag and true"));
}

TEST(Expr, TxnFields) {
  EXPECT_TRUE(True("txn.state == 'open' and txn.kind == 'sales_order'"));
  EXPECT_EQ(Eval("txn.id"), Value::Text("SO-9"));
}

// ---------------------------------------------------------------------------
// Dynamic types
// ---------------------------------------------------------------------------

TEST(Expr, DynamicValuesAreCheckedOnEvaluation) {
  Env env;
  env.payload = {{"score", Value::Text("abc")}};
  EXPECT_EQ(EvalError("payload.score + 1", &env),
            "column 15: expected a number, a duration or a timestamp before "
            "\"+\" (got text \"abc\")");
  EXPECT_EQ(EvalError("1 + payload.score", &env),
            "column 3: expected a number after \"+\" (got text \"abc\")");
  EXPECT_EQ(EvalError("payload.score > 3", &env),
            "column 15: cannot compare text \"abc\" with integer 3");
  EXPECT_EQ(EvalError("payload.score and true", &env),
            "column 15: expected a condition before \"and\" (got text "
            "\"abc\")");
  env.payload = {{"score", Value::Integer(5)}};
  EXPECT_EQ(Eval("payload.score + 1", &env), Value::Integer(6));
}

TEST(Expr, DeclaredTypeIsEnforcedOnEvaluation) {
  Env env;
  SetAttribute(env.attributes, "amount", Value::Text("lots"));
  EXPECT_EQ(EvalError("amount > 1", &env),
            "column 1: amount holds text \"lots\" (declared decimal)");
  SetAttribute(env.attributes, "amount", Value::Integer(7));
  Value v = Eval("amount", &env);  // an integer widens to decimal
  ASSERT_EQ(v.type(), ValueType::kDecimal);
  EXPECT_EQ(v.decimal().ToString(), "7");
}

TEST(Expr, AttributesOutOfSchemaOrderAreFound) {
  Env env;
  std::reverse(env.attributes.begin(), env.attributes.end());
  EXPECT_TRUE(True("amount == 900 and tier == 'gold'", &env));
}

TEST(Expr, NonBooleanDynamicConditionIsAnError) {
  auto e = Expression::ParseCondition("payload.score", TestSchema());
  ASSERT_TRUE(e.ok());
  Env env;
  auto r = e->EvaluateCondition(env.Context());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "column 1: expected a condition (got integer 2)");
}

// ---------------------------------------------------------------------------
// Type errors (parse time)
// ---------------------------------------------------------------------------

TEST(Expr, ArithmeticTypeErrorsNameTheOperand) {
  EXPECT_EQ(ParseError("amount + 'abc'"),
            "column 8: expected a number after \"+\" (got text \"abc\")");
  EXPECT_EQ(ParseError("tier + 1"),
            "column 6: expected a number, a duration or a timestamp before "
            "\"+\" (got text tier)");
  EXPECT_EQ(ParseError("delivered_at + delivered_at"),
            "column 14: expected a duration after \"+\" (got timestamp "
            "delivered_at)");
  EXPECT_EQ(ParseError("1 + 2 + true"),
            "column 7: expected a number after \"+\" (got boolean true)");
  EXPECT_EQ(ParseError("wait * wait"),
            "column 6: expected a number after \"*\" (got duration wait)");
  EXPECT_EQ(ParseError("-tier"),
            "column 1: expected a number or a duration after \"-\" (got text "
            "tier)");
}

TEST(Expr, ComparisonTypeErrors) {
  EXPECT_EQ(ParseError("tier == 1.5"),
            "column 6: cannot compare text with decimal");
  EXPECT_EQ(ParseError("'gold' < amount"),
            "column 8: cannot compare text with decimal");
  EXPECT_EQ(ParseError("vip < true"),
            "column 5: cannot order boolean values with \"<\" (only == and "
            "!=)");
  EXPECT_EQ(ParseError("amount < null"),
            "column 8: cannot compare with null using \"<\" (use == null or "
            "!= null)");
  EXPECT_EQ(ParseError("delivered_at > 1d"),
            "column 14: cannot compare timestamp with duration");
}

TEST(Expr, LogicTypeErrors) {
  EXPECT_EQ(ParseError("amount and true"),
            "column 8: expected a condition before \"and\" (got decimal "
            "amount)");
  EXPECT_EQ(ParseError("true or tier"),
            "column 6: expected a condition after \"or\" (got text tier)");
  EXPECT_EQ(ParseError("not amount"),
            "column 1: expected a condition after \"not\" (got decimal "
            "amount)");
  auto c = Expression::ParseCondition("amount + 1", TestSchema());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "column 1: expected a condition (got decimal amount + 1)");
}

TEST(Expr, FunctionErrors) {
  EXPECT_EQ(ParseError("lower(amount)"),
            "column 7: lower expects text as argument 1 (got decimal "
            "amount)");
  EXPECT_EQ(ParseError("lower()"), "column 1: lower takes 1 argument (got 0)");
  EXPECT_EQ(ParseError("contains('a')"),
            "column 1: contains takes 2 arguments (got 1)");
  EXPECT_EQ(ParseError("round(1, 2, 3)"),
            "column 1: round takes 1 or 2 arguments (got 3)");
  EXPECT_EQ(ParseError("min()"),
            "column 1: min takes at least 1 arguments (got 0)");
  EXPECT_EQ(ParseError("round(amount, 19)"),
            "column 15: round takes 0 to 18 places (got 19)");
  EXPECT_EQ(ParseError("round(amount, 1.5)"),
            "column 15: round expects an integer as argument 2 (got decimal "
            "1.5)");
  EXPECT_EQ(ParseError("days(amount)"),
            "column 6: days expects a duration as argument 1 (got decimal "
            "amount)");
  EXPECT_EQ(ParseError("max(amount, tier)"),
            "column 13: max needs arguments of one type (got decimal amount "
            "and text tier)");
  EXPECT_EQ(ParseError("lowr(tier)"),
            "column 1: unknown function \"lowr\" (known: abs, coalesce, "
            "contains, days, ends_with, hours, len, lower, matches, max, min, "
            "minutes, round, seconds, starts_with, upper)");
  EXPECT_EQ(ParseError("lower(tier"),
            "column 11: expected \",\" or \")\" in the call of lower (got end "
            "of text)");
}

TEST(Expr, ResultTypes) {
  auto type = [](const char* text) {
    auto e = Expression::Parse(text, TestSchema());
    EXPECT_TRUE(e.ok()) << text << ": " << e.status().ToString();
    return e.ok() ? e->result_type() : std::optional<ValueType>();
  };
  EXPECT_EQ(type("amount + 1"), ValueType::kDecimal);
  EXPECT_EQ(type("count + 1"), ValueType::kInteger);
  EXPECT_EQ(type("count / 2"), ValueType::kDecimal);
  EXPECT_EQ(type("delivered_at - estimated_at"), ValueType::kDuration);
  EXPECT_EQ(type("estimated_at + 1d"), ValueType::kTimestamp);
  EXPECT_EQ(type("amount > 1"), ValueType::kBoolean);
  EXPECT_EQ(type("lower(tier)"), ValueType::kText);
  EXPECT_EQ(type("coalesce(count, 1.5)"), ValueType::kDecimal);
  EXPECT_EQ(type("payload.score + 1"), std::nullopt);
  EXPECT_EQ(type("note"), std::nullopt);
  EXPECT_EQ(type("null"), ValueType::kNull);
  // coalesce of an integer and a decimal gives a decimal.
  EXPECT_EQ(Eval("coalesce(count, 1.5)").type(), ValueType::kDecimal);
}

// ---------------------------------------------------------------------------
// Syntax errors
// ---------------------------------------------------------------------------

TEST(Expr, SyntaxErrorsPointAtTheColumn) {
  EXPECT_EQ(ParseError(""),
            "column 1: expected an expression (got end of text)");
  EXPECT_EQ(ParseError("amount +"),
            "column 9: expected an expression after \"+\" (got end of text)");
  EXPECT_EQ(ParseError("(amount > 1"),
            "column 12: expected \")\" to close \"(\" at column 1 (got end of "
            "text)");
  EXPECT_EQ(ParseError("amount > 1)"),
            "column 11: expected an operator or end of text (got \")\")");
  EXPECT_EQ(ParseError("amount 5"),
            "column 8: expected an operator or end of text (got number 5)");
  EXPECT_EQ(ParseError("amount = 5"),
            "column 8: expected \"==\" (got \"=\")");
  EXPECT_EQ(ParseError("vip && true"), "column 5: unexpected \"&\" (use and)");
  EXPECT_EQ(ParseError("vip || true"), "column 5: unexpected \"|\" (use or)");
  EXPECT_EQ(ParseError("!vip"), "column 1: unexpected \"!\" (use not)");
  EXPECT_EQ(ParseError("amount <> 5"),
            "column 8: unexpected \"<>\" (use !=)");
  EXPECT_EQ(ParseError("amount # 5"),
            "column 8: unexpected character \"#\"");
  EXPECT_EQ(ParseError("tier == 'é' and é"),
            "column 17: unexpected character \"é\"");
  EXPECT_EQ(ParseError("1."), "column 3: expected a digit after \".\" in a "
                              "number");
  EXPECT_EQ(ParseError("vip and not"),
            "column 12: expected an expression after \"not\" (got end of "
            "text)");
}

TEST(Expr, TextLiteralErrors) {
  EXPECT_EQ(ParseError("tier == 'gold"),
            "column 9: unterminated text (expected a closing ')");
  EXPECT_EQ(ParseError("tier == \"gold"),
            "column 9: unterminated text (expected a closing \")");
  EXPECT_EQ(ParseError("'a\\qb'"),
            "column 3: unknown escape \"\\q\" (expected \\\\, \\', \\\", \\n, "
            "\\r, \\t or \\uXXXX)");
  EXPECT_EQ(ParseError("'\\u12'"),
            "column 2: expected \\uXXXX or \\u{X...} with hex digits");
  EXPECT_EQ(ParseError("'\\ud800'"),
            "column 2: escape \\u names no Unicode character (surrogate or "
            "above 10FFFF)");
}

TEST(Expr, DurationAndTimestampLiteralErrors) {
  EXPECT_EQ(ParseError("1.5h"),
            "column 1: a duration takes whole numbers (e.g. 1h30m, not 1.5h)");
  EXPECT_EQ(ParseError("3x"),
            "column 2: unknown duration unit \"x\" (expected w, d, h, m, s, ms "
            "or us)");
  EXPECT_EQ(ParseError("1e3"),
            "column 2: unknown duration unit \"e\" (expected w, d, h, m, s, ms "
            "or us)");
  EXPECT_EQ(ParseError("30m1h"),
            "column 4: duration units must go from largest to smallest, each "
            "once (e.g. 1d12h)");
  EXPECT_EQ(ParseError("wait > @2026-02-30"),
            "column 8: invalid timestamp \"@2026-02-30\" (expected "
            "@YYYY-MM-DD or @YYYY-MM-DDThh:mm[:ss[.ffffff]] with Z or an "
            "offset, a real date and time)");
  EXPECT_EQ(ParseError("@2026-2-3"),
            "column 1: expected @YYYY-MM-DD or @YYYY-MM-DDThh:mm[:ss[.ffffff]] "
            "with Z or an offset");
  EXPECT_EQ(ParseError("@2026-02-02T09:00"),
            "column 1: a time needs Z or an offset such as +01:00 (e.g. "
            "@2026-02-02T09:00:00Z)");
}

TEST(Expr, UnknownNamesListTheKnownOnes) {
  ExprSchema schema;
  schema.attributes = {{"amount", ValueType::kDecimal},
                       {"tier", ValueType::kText},
                       {"channel", ValueType::kText}};
  EXPECT_EQ(ParseError("amout > 5", schema),
            "column 1: unknown name \"amout\" (known: amount, tier, channel)");
  EXPECT_EQ(ParseError("amount > 5 and foo.bar", schema),
            "column 16: unknown name \"foo.bar\" (known: amount, tier, "
            "channel; dotted names start with customer., payload. or txn.)");
  EXPECT_EQ(ParseError("txn.owner", schema),
            "column 1: unknown name \"txn.owner\" (known: txn.id, txn.kind, "
            "txn.state)");
  EXPECT_EQ(ParseError("customer == 1", schema),
            "column 1: expected \".\" and a field name after customer (e.g. "
            "customer.tier)");
  EXPECT_EQ(ParseError("customer.", schema),
            "column 10: expected a field name after \".\" at column 9 (got "
            "end of text)");
  schema.open_payload = false;
  schema.payload = {{"score", ValueType::kInteger}};
  EXPECT_EQ(ParseError("payload.scor", schema),
            "column 1: unknown name \"payload.scor\" (known: payload.score)");
  EXPECT_EQ(ParseError("payload.score + 'a'", schema),
            "column 15: expected a number after \"+\" (got text \"a\")");
}

TEST(Expr, MultilineErrorsGiveTheLine) {
  EXPECT_EQ(ParseError("amount > 1 and\n  tier == 2"),
            "line 2, column 8: cannot compare text with integer");
}

TEST(Expr, NamesListsWhatIsRead) {
  auto e = Expression::Parse(
      "amount > 1 and customer.tier == 'gold' or payload.score < 2 and "
      "amount < 5 and txn.state == 'new' and payload.a.b == 1",
      TestSchema());
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->names(),
            (std::vector<std::string>{"amount", "customer.tier",
                                      "payload.score", "txn.state",
                                      "payload.a.b"}));
}

TEST(Expr, DottedPayloadNamesReadFlattenedFields) {
  Env env;
  env.payload = {{"address.zip", Value::Text("50667")}};
  EXPECT_EQ(Eval("payload.address.zip", &env), Value::Text("50667"));
}

TEST(Expr, ReadsRecordTheDecisiveValues) {
  auto e = Expression::Parse(
      "amount <= 1000 and tier == 'gold' and payload.missing == null and "
      "wait > 1h and amount > 0",
      TestSchema());
  ASSERT_TRUE(e.ok());
  Env env;
  Attributes reads;
  auto v = e->Evaluate(env.Context(), &reads);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, Value::Bool(true));
  EXPECT_EQ(FormatReads(reads),
            "amount=900.00, tier=\"gold\", payload.missing=null, wait=1h30m");
}

// ---------------------------------------------------------------------------
// Limits and hostile input
// ---------------------------------------------------------------------------

TEST(Expr, NestingUpToTheLimitIsAccepted) {
  std::string ok = std::string(kMaxExprDepth, '(') + "1" +
                   std::string(kMaxExprDepth, ')');
  EXPECT_EQ(Eval(ok), Value::Integer(1));
  std::string mixed;
  for (int i = 0; i < kMaxExprDepth / 2; ++i) mixed += "-(";
  mixed += "1";
  for (int i = 0; i < kMaxExprDepth / 2; ++i) mixed += ")";
  EXPECT_EQ(Eval(mixed), Value::Integer(1));  // an even number of minuses
}

TEST(Expr, WorstCaseRecursionAtTheLimitIsSafe) {
  // Every precedence level between each pair of parentheses, so that the
  // parser and the evaluator recurse as deeply as the limit allows.  Each
  // unit "(false or 1 < 2 and not (" is 3 levels and means "not".
  std::string boolean;
  int units = kMaxExprDepth / 3;  // 66 units, 198 levels
  for (int i = 0; i < units; ++i) boolean += "(false or 1 < 2 and not (";
  boolean += "true" + std::string(2 * units, ')');
  EXPECT_TRUE(True(boolean));  // an even number of "not"s
  // Three more levels in front: the 201st is the last "(" of the 66th
  // unit (25 characters each), at column 15 + 66 * 25.
  EXPECT_EQ(ParseError("(false or not (" + boolean + "))"),
            "column 1665: expression nested too deeply (more than 200 "
            "levels)");
  // Each unit "0 + 1 * -(" is 2 levels and negates.
  std::string number;
  for (int i = 0; i < kMaxExprDepth / 2; ++i) number += "0 + 1 * -(";
  number += "1" + std::string(kMaxExprDepth / 2, ')');
  EXPECT_EQ(Eval(number), Value::Integer(1));  // 100 negations
}

TEST(Expr, DeepNestingIsRefused) {
  std::string deep = std::string(kMaxExprDepth + 1, '(') + "1" +
                     std::string(kMaxExprDepth + 1, ')');
  EXPECT_EQ(ParseError(deep),
            "column 201: expression nested too deeply (more than 200 levels)");
  std::string nots;
  for (int i = 0; i < 1000; ++i) nots += "not ";
  EXPECT_EQ(ParseError(nots + "true"),
            "column 801: expression nested too deeply (more than 200 levels)");
  std::string calls;
  for (int i = 0; i < 300; ++i) calls += "abs(";
  // The 201st call's "(" is at column 804.
  EXPECT_EQ(ParseError(calls + "1" + std::string(300, ')')),
            "column 804: expression nested too deeply (more than 200 levels)");
  // 60,000 parentheses: refused by the token limit before any recursion.
  EXPECT_EQ(ParseError(std::string(60000, '(')),
            "column 10001: expression too long (more than 10000 tokens)");
}

TEST(Expr, LongFlatChainsAreNotDeep) {
  std::string sum = "1";
  for (int i = 1; i < 4000; ++i) sum += "+1";
  EXPECT_EQ(Eval(sum), Value::Integer(4000));
  std::string ors = "false";
  for (int i = 1; i < 3000; ++i) ors += " or false";
  EXPECT_TRUE(True(ors + " or true"));
}

TEST(Expr, SizeLimits) {
  std::string big = "'" + std::string(kMaxExprBytes - 2, 'x') + "'";
  EXPECT_EQ(Eval("len(" + big.substr(0, kMaxExprBytes - 10) + "')"),
            Value::Integer(kMaxExprBytes - 11));
  EXPECT_EQ(ParseError(std::string(kMaxExprBytes + 1, ' ')),
            "expression too long (65537 bytes, at most 65536)");
  std::string tokens = "1";
  for (int i = 0; i < 6000; ++i) tokens += "+1";
  EXPECT_EQ(ParseError(tokens),
            "column 10001: expression too long (more than 10000 tokens)");
}

TEST(Expr, InvalidUtf8IsRefused) {
  EXPECT_EQ(ParseError("tier == '\xff'"),
            "column 10: invalid UTF-8 (byte 0xff)");
  EXPECT_EQ(ParseError("tier == '\xe4\xb8'"),
            "column 10: invalid UTF-8 (byte 0xe4)");
  EXPECT_EQ(ParseError("'\xc0\xaf'"), "column 2: invalid UTF-8 (byte 0xc0)");
  EXPECT_EQ(ParseError("'\xed\xa0\x80'"),
            "column 2: invalid UTF-8 (byte 0xed)");
  EXPECT_EQ(ParseError("'中文' == '\x80'"),
            "column 10: invalid UTF-8 (byte 0x80)");
}

TEST(Expr, ControlCharactersAreRefused) {
  EXPECT_EQ(ParseError(std::string("vip\0 and true", 13)),
            "column 4: unexpected control character U+0000");
  EXPECT_EQ(ParseError("vip \x1b"),
            "column 5: unexpected control character U+001B");
}

TEST(Expr, RandomInputNeverCrashes) {
  static const char* const kPieces[] = {
      "amount", "tier", "payload.x", "customer.tier", "(", ")", "[", "]",
      ",", "+", "-", "*", "/", "==", "<", ">=", "and", "or", "not", "in",
      "'a'", "\"\\u{1F600}\"", "1", "0", "0.10", "@2026-02-02", "3d", "null",
      "true", "lower(", "matches(", "'(a'", "round(", "min(", "coalesce(",
      "\xff", "\xe4\xb8", "'", "\\", ".", "@", "9999999999999999999", " "};
  constexpr int kNumPieces = sizeof(kPieces) / sizeof(kPieces[0]);
  std::mt19937 rng(12345);
  Env env;
  int parsed = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string text;
    int n = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) {
      text += kPieces[rng() % kNumPieces];
      if (rng() % 2) text += " ";
    }
    auto e = Expression::Parse(text, TestSchema());
    if (!e.ok()) {
      EXPECT_EQ(e.status().code(), Code::kParseError);
      EXPECT_FALSE(e.status().message().empty());
      continue;
    }
    ++parsed;
    auto v = e->Evaluate(env.Context());
    if (!v.ok()) EXPECT_EQ(v.status().code(), Code::kInvalidArgument);
  }
  EXPECT_GT(parsed, 100);
}

// ---------------------------------------------------------------------------
// API behaviour
// ---------------------------------------------------------------------------

TEST(Expr, EmptyExpressionFailsToEvaluate) {
  Expression e;
  EvalContext ctx;
  auto v = e.Evaluate(ctx);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(e.text(), "");
}

TEST(Expr, CopiesShareOneParse) {
  auto e = Expression::Parse("lower(tier)", TestSchema());
  ASSERT_TRUE(e.ok());
  Expression copy = *e;
  Env env;
  EXPECT_EQ(*copy.Evaluate(env.Context()), Value::Text("gold"));
  EXPECT_EQ(copy.text(), "lower(tier)");
}

TEST(Expr, OneExpressionEvaluatesOnManyThreads) {
  auto e = Expression::ParseCondition(
      "amount <= 1000 and lower(tier) == 'gold' and "
      "matches(txn.id, '^SO-[0-9]+$') and channel in ['phone', 'email']",
      TestSchema());
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Env env;
      SetAttribute(env.attributes, "amount",
                   Value::Dec(Decimal::FromInteger(t % 2 ? 900 : 1100)));
      bool expected = t % 2 == 1;
      for (int i = 0; i < 5000; ++i) {
        auto r = e->EvaluateCondition(env.Context());
        if (!r.ok() || *r != expected) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

// ---------------------------------------------------------------------------
// Acceptance
// ---------------------------------------------------------------------------

TEST(Expr, C18SalesOrderTotalOfLinesIsExact) {
  // Sales order SO-9 with lines 0.10 and 0.20: total is computed by an
  // expression, then the condition total <= 0.30 holds.
  ExprSchema schema;
  schema.attributes = {{"line1", ValueType::kDecimal},
                       {"line2", ValueType::kDecimal},
                       {"total", ValueType::kDecimal}};
  auto total = Expression::Parse("line1 + line2", schema);
  ASSERT_TRUE(total.ok()) << total.status().ToString();
  EXPECT_EQ(total->result_type(), ValueType::kDecimal);
  auto rule = Expression::ParseCondition("total <= 0.30", schema);
  ASSERT_TRUE(rule.ok()) << rule.status().ToString();

  Attributes so9 = {{"line1", Dec("0.10")}, {"line2", Dec("0.20")}};
  EvalContext ctx;
  ctx.attributes = &so9;
  ctx.txn_id = "SO-9";
  ctx.txn_kind = "sales_order";
  auto t = total->Evaluate(ctx);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->decimal().ToString(), "0.30");
  SetAttribute(so9, "total", *t);
  Attributes reads;
  auto ok = rule->EvaluateCondition(ctx, &reads);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(*ok);
  EXPECT_EQ(FormatReads(reads), "total=0.30");
}

TEST(ExprAnalysis, ConjunctsFlattenNestedAnd) {
  auto e = Expression::ParseCondition(
      "amount > 5 and (tier == 'gold' and vip) and (count < 2 or vip)",
      TestSchema());
  ASSERT_TRUE(e.ok());
  auto single = Expression::ParseCondition("amount > 5 or vip",
                                           TestSchema());

  std::vector<std::string> parts = e->Conjuncts();

  EXPECT_EQ((std::vector<std::string>{"amount > 5", "tier == 'gold'", "vip",
                                      "(count < 2 or vip)"}),
            parts);
  EXPECT_EQ(std::vector<std::string>{"amount > 5 or vip"},
            single->Conjuncts());
}

TEST(ExprAnalysis, DnfPushesNotThroughNullRules) {
  auto e = Expression::ParseCondition("not (amount < 5 and tier == 'gold')",
                                      TestSchema());
  ASSERT_TRUE(e.ok());

  auto dnf = e->ToDnf();

  // not (a and b) == (not a) or (not b); not (amount < 5) also holds for
  // a null amount, not (tier == 'gold') for a null tier.
  ASSERT_EQ(2u, dnf.size());
  ASSERT_EQ(1u, dnf[0].size());
  EXPECT_EQ("amount", dnf[0][0].name);
  EXPECT_EQ(ConditionAtom::Set::kAbove, dnf[0][0].set);
  EXPECT_TRUE(dnf[0][0].inclusive);
  EXPECT_TRUE(dnf[0][0].null_ok);
  EXPECT_EQ(ConditionAtom::Set::kNotIn, dnf[1][0].set);
  EXPECT_TRUE(dnf[1][0].null_ok);
  EXPECT_EQ(Value::Text("gold"), dnf[1][0].values[0]);
}

TEST(ExprAnalysis, UnmodelledPartsAreOpaque) {
  auto e = Expression::ParseCondition("len(tier) > 2 or amount * 2 > 3",
                                      TestSchema());
  ASSERT_TRUE(e.ok());

  auto dnf = e->ToDnf();

  ASSERT_EQ(2u, dnf.size());
  EXPECT_TRUE(dnf[0][0].opaque);
  EXPECT_EQ("len(tier) > 2", dnf[0][0].source);
  EXPECT_TRUE(dnf[1][0].opaque);
}

}  // namespace
}  // namespace crmflow
