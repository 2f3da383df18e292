// expr.h: a small, safe expression language for business rules.
//
// Rules written by business users ("auto-approve if total <= 1000") are
// parsed once, type-checked against the declared attributes and evaluated
// many times without Python.  The language reaches nothing but the values
// it is given: no files, no environment, no I/O, no loops.  Expressions are
// bounded in size and nesting, and regular expressions run in linear time
// (RE2).
//
// Grammar (lowest precedence first; binary operators are left-associative,
// comparisons do not chain):
//
//   expr    := or
//   or      := and ("or" and)*
//   and     := not ("and" not)*
//   not     := "not" not | compare
//   compare := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum
//                   | ["not"] "in" "[" [literal ("," literal)*] "]"]
//   sum     := product (("+" | "-") product)*
//   product := unary (("*" | "/") unary)*
//   unary   := "-" unary | primary
//   primary := literal | name | function "(" [expr ("," expr)*] ")"
//              | "(" expr ")"
//
// Literals:
//   integer   42              decimal   0.10  (exact, scale kept)
//   text      'gold' "gold"   escapes \\ \' \" \n \r \t \uXXXX \u{1F600}
//   boolean   true false      null      null
//   timestamp @2026-02-02 (midnight UTC), @2026-02-02T09:00:00Z,
//             @2026-02-02T09:00Z, @2026-02-02T09:00:00.5+01:00 (a time
//             needs Z or an offset)
//   duration  whole numbers with units from largest to smallest, each at
//             most once: 1w 3d 8h 30m 45s 250ms 10us, 1d12h, 1h30m
//
// Names:
//   amount, tier          transaction attributes declared in the schema
//                         (a declared name may contain dots: address.city)
//   customer.tier         a customer attribute
//   payload.score         a field of the event's payload; payload.a.b
//                         reads the field named "a.b"
//   txn.id txn.state txn.kind   the transaction's id, state and kind (text)
// customer.* and payload.* names need not be declared (ExprSchema::
// open_customer / open_payload); undeclared ones have a dynamic type that
// is checked on evaluation.  Keywords: and or not in true false null.
//
// Types: null, text, integer, decimal, timestamp, duration, boolean
// (crmflow::ValueType).  Integers and decimals mix freely ("numbers"); an
// integer attribute declared decimal reads as a decimal.
//
// Operators:
//   number + - * number   exact; integer op integer is an integer (overflow
//                         is an evaluation error), otherwise a decimal
//   number / number       a decimal with scale max(6, scales of both
//                         operands) (at most 18), rounded half away from
//                         zero: 10 / 4 == 2.500000, 2 / 3 == 0.666667
//   timestamp +- duration = timestamp; timestamp - timestamp = duration;
//   duration +- duration = duration; duration * number, number * duration,
//   duration / number = duration (rounded to microseconds)
//   text has no arithmetic; "-x" negates a number or a duration
//   == != on any two values of the same type (numbers mix);
//   < <= > >= on numbers, text (code point order), timestamps, durations
//   x in [a, b]  true when x == one of the literals; x not in [...] is
//                not (x in [...])
//   and or not   short-circuit: the right side of "false and x" or
//                "true or x" is not evaluated; the result is a boolean
//
// Null rules (no "?." needed: every access is null-safe):
//   - a missing attribute, customer field or payload field, or a missing
//     customer or payload, reads as null
//   - arithmetic and functions with a null operand give null (except
//     coalesce, min and max, which skip nulls)
//   - == and != treat null as a value: "x == null" tests for null, and
//     "tier != 'gold'" holds when tier is missing; the orderings < <= > >=
//     with a null operand are false, so "payload.score <= 2" is false when
//     the score is missing
//   - in and / or / not (and in a condition's result) null counts as false
//
// Functions (text functions work on UTF-8 code points):
//   lower(t) upper(t)        simple case mapping for Latin (with Vietnamese),
//                            Greek, Cyrillic, Armenian and fullwidth Latin;
//                            other characters (Chinese, emoji) are unchanged
//   len(t)                   number of code points, an integer
//   contains(t, s) starts_with(t, s) ends_with(t, s)   booleans
//   matches(t, 'regex')      RE2 search (unanchored: use ^...$ to match the
//                            whole text); the pattern must be a text literal
//                            and is compiled at parse time
//   round(x) round(x, places)  a decimal rounded half away from zero to
//                            places (0..18, default 0): round(2.675, 2) ==
//                            2.68
//   abs(x)                   of a number or a duration
//   min(a, ...) max(a, ...)  of numbers, text, timestamps or durations;
//                            nulls are skipped, all null gives null
//   coalesce(a, ...)         the first non-null argument
//   days(d) hours(d) minutes(d) seconds(d)   a duration as a decimal
//                            number of units, scale 6: days(36h) == 1.5
//
// Limits: at most kMaxExprBytes bytes, kMaxExprTokens tokens and
// kMaxExprDepth levels of parentheses, calls, lists and prefix operators.
// Input must be valid UTF-8; non-ASCII characters are allowed only inside
// text literals.
//
// Errors: a syntax or type error is kParseError with the 1-based column
// (in code points; "line L, column C" when the text spans lines), e.g.
//   column 10: expected a number after "+" (got text "abc")
//   column 1: unknown name "amout" (known: amount, tier, channel)
//   column 8: cannot compare text with decimal
// An evaluation error (division by zero, overflow, a dynamic value of the
// wrong type) is kInvalidArgument with the column of the operator.
//
// Example:
//   ExprSchema schema;
//   schema.attributes = {{"amount", ValueType::kDecimal},
//                        {"tier", ValueType::kText}};
//   auto rule = Expression::ParseCondition(
//       "amount <= 1000 and tier in ['gold', 'silver']", schema);
//   if (!rule.ok()) return rule.status();
//   EvalContext ctx;
//   ctx.attributes = &txn.attributes;
//   StatusOr<bool> approve = rule->EvaluateCondition(ctx);
//
// An Expression is immutable once parsed; copies share it and any number of
// threads may evaluate it at the same time.

#ifndef CRMFLOW_EXPR_H_
#define CRMFLOW_EXPR_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/status.h"
#include "crmflow/value.h"

namespace crmflow {

namespace internal {
struct ExprImpl;  // defined in expr.cc
}  // namespace internal

// The largest accepted expression text, in bytes.
inline constexpr int kMaxExprBytes = 65536;
// The largest accepted number of tokens.
inline constexpr int kMaxExprTokens = 10000;
// The deepest accepted nesting of parentheses, calls, lists and prefix
// operators ("not", unary "-").
inline constexpr int kMaxExprDepth = 200;

// One declared name and its type; std::nullopt declares a dynamic type,
// checked when the expression is evaluated.
struct ExprField {
  std::string name;
  std::optional<ValueType> type;
};

// The names an expression may use.  The position of a transaction
// attribute in `attributes` is used as a lookup hint: attributes stored in
// the same order are found without searching.
struct ExprSchema {
  // Transaction attributes, read by their bare name ("amount").
  std::vector<ExprField> attributes;
  // Declared customer attributes ("customer.tier" declares as "tier").
  std::vector<ExprField> customer;
  // Declared payload fields ("payload.score" declares as "score").
  std::vector<ExprField> payload;
  // When true, undeclared customer.* / payload.* names are accepted with a
  // dynamic type; when false they are unknown names.
  bool open_customer = true;
  bool open_payload = true;
};

// What one evaluation reads.  Pointers may be null (everything read
// through them is null); the pointed-to data must outlive the call.
struct EvalContext {
  const Attributes* attributes = nullptr;  // the transaction's attributes
  const Attributes* customer = nullptr;    // the customer's attributes
  const Attributes* payload = nullptr;     // the event's payload fields
  std::string_view txn_id;                 // txn.id
  std::string_view txn_state;              // txn.state
  std::string_view txn_kind;               // txn.kind
};

// One simple constraint of a condition on one name, for static analysis
// (Expression::ToDnf, guard_overlap.h): the values of the name for which
// the constraint holds.  "amount <= 1000" is {amount, kBelow 1000
// inclusive, null_ok false}; "tier != 'gold'" is {tier, kNotIn ['gold'],
// null_ok true} because a null tier is not equal to 'gold'.  A part the
// analysis does not model (a function call, arithmetic, a comparison of
// two names, a dynamic name) is an opaque atom that may be true or false.
struct ConditionAtom {
  enum class Set {
    kAll,    // every non-null value
    kNone,   // no non-null value
    kBelow,  // values below `bound` (or equal when `inclusive`)
    kAbove,  // values above `bound` (or equal when `inclusive`)
    kIn,     // one of `values`
    kNotIn,  // none of `values`
  };
  std::string name;                   // "amount", "txn.state"
  ValueType type = ValueType::kNull;  // the name's declared type
  bool null_ok = false;               // holds when the name reads null
  Set set = Set::kAll;
  Value bound;                // kBelow, kAbove
  bool inclusive = false;     // kBelow, kAbove
  std::vector<Value> values;  // kIn, kNotIn: non-null literals
  bool opaque = false;        // not analysed; `source` says what it is
  std::string source;         // the source text of an opaque part
};

// A conjunction of atoms; an empty one always holds.
using ConditionTerm = std::vector<ConditionAtom>;

// The parts of a condition of the form "attribute op literal" (a declared
// transaction attribute, a non-null literal), for evaluators that run many
// such comparisons on one record (ConditionSet).  Evaluating one the way
// EvaluateCondition does: a missing or null attribute satisfies only !=;
// an integer value of a decimal attribute reads as a decimal; numbers
// compare by value, text by code point, timestamps and durations by
// microseconds; a value of any other type is an error (left to
// EvaluateCondition to report).
struct SimpleComparison {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe };
  std::string attribute;  // the name in EvalContext::attributes
  int hint = -1;          // its position in the schema (a lookup hint)
  ValueType declared = ValueType::kNull;
  Op op = Op::kEq;
  Value literal;  // never null
};

// A parsed, type-checked expression.
class Expression {
 public:
  // Creates an empty expression; evaluating it fails with
  // kInvalidArgument.  Use Parse.
  Expression() = default;

  // Parses and type-checks `text` against `schema`.  Fails with
  // kParseError "column N: ..." (see the file comment).
  static StatusOr<Expression> Parse(std::string_view text,
                                    const ExprSchema& schema);
  // As Parse, and also requires a boolean (or dynamic) result: fails with
  // "column 1: expected a condition (got decimal amount)".
  static StatusOr<Expression> ParseCondition(std::string_view text,
                                             const ExprSchema& schema);

  // Returns the source text.
  const std::string& text() const;
  // Returns the static result type; std::nullopt when it depends on a
  // dynamic name (e.g. "payload.score + 1").  A result may always be null.
  std::optional<ValueType> result_type() const;
  // Returns the names the expression reads, each once in order of first
  // appearance: "amount", "customer.tier", "payload.score", "txn.state".
  const std::vector<std::string>& names() const;

  // Evaluates against `ctx`.  When `reads` is not null, appends each name
  // read (first read only; names not reached because of short-circuit are
  // absent) with its value, for traces.  Fails with kInvalidArgument
  // "column N: division by zero" and the like.
  StatusOr<Value> Evaluate(const EvalContext& ctx,
                           Attributes* reads = nullptr) const;
  // Evaluates a condition: null is false; a non-boolean result fails with
  // kInvalidArgument.  Does not allocate unless a text function builds new
  // text or `reads` is given.
  StatusOr<bool> EvaluateCondition(const EvalContext& ctx,
                                   Attributes* reads = nullptr) const;

  // Returns the condition as a disjunction of conjunctions of atoms, with
  // "not" pushed down to the atoms under the null rules above.  An empty
  // result never holds.  When the normal form would have more than
  // `max_terms` conjunctions the whole condition is one opaque atom.
  std::vector<ConditionTerm> ToDnf(size_t max_terms = 256) const;
  // Returns the source texts of the top-level "and" operands, nested
  // "and"s flattened, in order: {"amount > 5", "tier == 'gold'"} for
  // "amount > 5 and (tier == 'gold')"; the whole text when the top is not
  // an "and".  Evaluating them in order with short-circuit is the same as
  // evaluating the condition (ConditionSet shares them across conditions).
  std::vector<std::string> Conjuncts() const;
  // Returns the comparison when the whole expression is "attribute op
  // literal" as SimpleComparison describes, else std::nullopt.
  std::optional<SimpleComparison> AsSimpleComparison() const;

 private:
  std::shared_ptr<const internal::ExprImpl> impl_;
};

// Renders values recorded by Evaluate for a trace:
// `amount=1200.00, tier="gold", payload.score=null, waited=1d12h`.
std::string FormatReads(const Attributes& reads);

// Renders `d` the way the language writes it: "1d12h", "-30m", "0s".
std::string FormatDuration(Duration d);

}  // namespace crmflow

#endif  // CRMFLOW_EXPR_H_
