// value_test.cc: Decimal arithmetic, Timestamp text forms and Value
// canonical text.  Expected values are worked out by hand.

#include "crmflow/value.h"

#include <gtest/gtest.h>

namespace crmflow {
namespace {

Decimal D(std::string_view text) { return Decimal::Parse(text).value(); }

TEST(Decimal, AddsTenthsExactly) {
  Decimal a = D("0.10");
  Decimal b = D("0.20");

  auto sum = a.Add(b);

  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->ToString(), "0.30");
  EXPECT_TRUE(*sum == D("0.30"));
  EXPECT_TRUE(*sum == D("0.3"));
}

TEST(Decimal, LargeValueRoundTrips) {
  auto d = Decimal::Parse("12345678901234567.89");

  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->ToString(), "12345678901234567.89");
  EXPECT_EQ(d->scale(), 2);
  EXPECT_TRUE(d->units() == static_cast<__int128>(1234567890123456789LL));
}

TEST(Decimal, RoundsHalfAwayFromZero) {
  EXPECT_EQ(D("2.675").Round(2).ToString(), "2.68");
  EXPECT_EQ(D("-2.675").Round(2).ToString(), "-2.68");
  EXPECT_EQ(D("2.674").Round(2).ToString(), "2.67");
  EXPECT_EQ(D("2.5").Round(0).ToString(), "3");
}

TEST(Decimal, KeepsScaleAndSign) {
  EXPECT_EQ(D("-0.05").ToString(), "-0.05");
  EXPECT_EQ(D("+5").ToString(), "5");
  EXPECT_EQ(D("12.30").ToString(), "12.30");
  EXPECT_EQ(D("0.001").scale(), 3);
}

TEST(Decimal, RefusesMalformedText) {
  EXPECT_EQ(Decimal::Parse("1e3").status().code(), Code::kParseError);
  EXPECT_EQ(Decimal::Parse("").status().code(), Code::kParseError);
  EXPECT_EQ(Decimal::Parse("1.2.3").status().code(), Code::kParseError);
  EXPECT_EQ(Decimal::Parse("-").status().code(), Code::kParseError);
  EXPECT_NE(Decimal::Parse("abc").status().message().find("\"abc\""),
            std::string::npos);
}

TEST(Decimal, MultipliesAndSubtracts) {
  EXPECT_EQ(D("1.5").Multiply(D("2.25"))->ToString(), "3.375");
  EXPECT_EQ(D("1.00").Subtract(D("2.5"))->ToString(), "-1.50");
}

TEST(Decimal, OverflowFails) {
  Decimal big = D("999999999999999999999999999999999999");  // 36 nines

  auto sum = big.Add(D("1"));

  EXPECT_EQ(sum.status().code(), Code::kInvalidArgument);
}

TEST(Decimal, ComparesAcrossScales) {
  EXPECT_LT(D("0.29").Compare(D("0.3")), 0);
  EXPECT_GT(D("1").Compare(D("0.999")), 0);
  EXPECT_EQ(D("-1.0").Compare(D("-1")), 0);
}

TEST(Timestamp, OffsetIsNormalisedToUtc) {
  auto a = Timestamp::ParseIso("2026-01-15T13:30:45-08:00");
  auto b = Timestamp::ParseIso("2026-01-15T21:30:45Z");

  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->ToIso(), "2026-01-15T21:30:45.000000Z");
}

TEST(Timestamp, PositiveOffsetAndFraction) {
  auto t = Timestamp::ParseIso("2026-01-15 22:30:45.5+01:00");

  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ToIso(), "2026-01-15T21:30:45.500000Z");
}

TEST(Timestamp, KnownEpochValues) {
  // 2026-01-15 is day 20468 since 1970-01-01 (56 years incl. 14 leap days:
  // 56*365 + 14 = 20454, plus 14 days into January).
  auto t = Timestamp::FromCivilUtc(2026, 1, 15, 0, 0, 0, 0);

  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->micros, int64_t{20468} * 86400 * 1000000);
  EXPECT_EQ(Timestamp{0}.ToIso(), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(Timestamp{-1}.ToIso(), "1969-12-31T23:59:59.999999Z");
}

TEST(Timestamp, RoundTripsCanonicalText) {
  const char* text = "2024-02-29T23:59:59.123456Z";

  auto t = Timestamp::ParseIso(text);

  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ToIso(), text);
}

TEST(Timestamp, RefusesNaiveAndImpossibleValues) {
  EXPECT_EQ(Timestamp::ParseIso("2026-01-15T13:30:45").status().code(),
            Code::kParseError);
  EXPECT_EQ(Timestamp::ParseIso("2025-02-29T00:00:00Z").status().code(),
            Code::kParseError);
  EXPECT_EQ(Timestamp::ParseIso("2026-01-15T24:00:00Z").status().code(),
            Code::kParseError);
  EXPECT_FALSE(Timestamp::FromCivilUtc(0, 1, 1, 0, 0, 0, 0).ok());
  EXPECT_FALSE(Timestamp::FromCivilUtc(2026, 4, 31, 0, 0, 0, 0).ok());
}

TEST(Timestamp, OffsetsCannotLeaveYears1To9999) {
  // 00:30 on 1 January of year 1 at +01:00 is 23:30 on 31 December of
  // year 0 UTC; 23:30 on 31 December 9999 at -01:00 is in year 10000.
  auto early = Timestamp::ParseIso("0001-01-01T00:30:00+01:00");
  auto late = Timestamp::ParseIso("9999-12-31T23:30:00-01:00");
  // The ends themselves, and the same civil times at offsets that stay.
  auto first = Timestamp::ParseIso("0001-01-01T01:00:00+01:00");
  auto last = Timestamp::ParseIso("9999-12-31T22:59:59.999999-01:00");

  EXPECT_EQ(early.status().code(), Code::kParseError);
  EXPECT_EQ(early.status().message(),
            "unparseable timestamp \"0001-01-01T00:30:00+01:00\" (instant "
            "out of range (expected years 1 to 9999 UTC))");
  EXPECT_EQ(late.status().code(), Code::kParseError);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->micros, Timestamp::kMinMicros);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->micros, Timestamp::kMaxMicros);
}

TEST(Value, CanonicalTextRoundTrips) {
  std::vector<Value> values = {
      Value(),
      Value::Text("héllo"),
      Value::Integer(-42),
      Value::Dec(D("12.30")),
      Value::Time(Timestamp::ParseIso("2026-01-15T21:30:45Z").value()),
      Value::Span(Duration{5400000000}),
      Value::Bool(true),
  };

  for (const Value& v : values) {
    auto back = Value::FromText(v.type(), v.ToText());
    ASSERT_TRUE(back.ok()) << v.ToText();
    EXPECT_TRUE(*back == v) << v.ToText();
  }
  EXPECT_EQ(values[3].ToText(), "12.30");
  EXPECT_EQ(values[5].ToText(), "5400000000");
  EXPECT_EQ(values[6].ToText(), "true");
}

TEST(Value, TypeNamesParse) {
  for (int i = 0; i <= static_cast<int>(ValueType::kBoolean); ++i) {
    auto t = static_cast<ValueType>(i);
    EXPECT_EQ(ParseValueType(ValueTypeName(t)).value(), t);
  }
  EXPECT_EQ(ParseValueType("money").status().code(), Code::kInvalidArgument);
}

TEST(Attributes, SetReplacesOrAppends) {
  Attributes attrs;

  SetAttribute(attrs, "a", Value::Integer(1));
  SetAttribute(attrs, "b", Value::Integer(2));
  SetAttribute(attrs, "a", Value::Integer(3));

  ASSERT_EQ(attrs.size(), 2u);
  EXPECT_EQ(attrs[0].first, "a");
  EXPECT_EQ(FindAttribute(attrs, "a")->integer(), 3);
  EXPECT_EQ(FindAttribute(attrs, "c"), nullptr);
}

TEST(Utf8, RejectsOverlongsAndSurrogates) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9"));            // é
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));    // U+1F600
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));           // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));       // U+D800
  EXPECT_FALSE(IsValidUtf8("\xC3"));               // truncated
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));   // above U+10FFFF
}

}  // namespace
}  // namespace crmflow
