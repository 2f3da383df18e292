// guard_overlap.h: deciding whether two conditions can hold together.
//
// Workflow validation uses this to find transitions on the same event from
// the same state whose guards can both pass: the first declared one always
// wins, so the second is silently shadowed for those values.  Conditions
// come in the normal form of Expression::ToDnf (a disjunction of
// conjunctions of atoms on one name each).  Two conditions overlap when
// some pair of their conjunctions is satisfiable together; satisfiability
// is decided per name:
//   - numbers (integer, decimal), timestamps and durations are intervals
//     with open or closed ends, minus excluded points; integers,
//     timestamps and durations (microseconds) are discrete, decimals dense
//     and compared by value (0.1 == 0.10)
//   - text and booleans are finite sets of allowed values or everything
//     but a finite set; text compares exactly (case-sensitive)
//   - null is allowed when every atom on the name admits it
// Opaque atoms (function calls, arithmetic, Python guards) are left
// unconstrained: a pair satisfiable only because of them makes the result
// kUnknown ("cannot prove exclusive"), never kOverlap.
//
// Example:
//   auto a = Expression::ParseCondition("amount <= 1000", schema);
//   auto b = Expression::ParseCondition("amount >= 1000", schema);
//   OverlapResult r = AnalyseOverlap(a->ToDnf(), b->ToDnf());
//   // r.kind == kOverlap, r.witness == "amount = 1000"

#ifndef CRMFLOW_GUARD_OVERLAP_H_
#define CRMFLOW_GUARD_OVERLAP_H_

#include <string>
#include <vector>

#include "crmflow/expr.h"

namespace crmflow {

// The outcome of AnalyseOverlap.
struct OverlapResult {
  enum class Kind {
    kExclusive,  // no values satisfy both
    kOverlap,    // `witness` satisfies both
    kUnknown,    // could overlap through an opaque part (`unknown`)
  };
  Kind kind = Kind::kExclusive;
  // kOverlap: the values that satisfy both, in the language's literal
  // syntax: `amount = 1000, tier = 'gold'`; "any values" when neither
  // condition constrains anything.
  std::string witness;
  // kUnknown: the source of the first opaque part that decided it, e.g.
  // `lower(tier) == 'gold'`.
  std::string unknown;
};

// Returns whether conditions `a` and `b` (each a disjunction of
// conjunctions) can both hold.  Never fails; linear in the product of the
// numbers of conjunctions.
OverlapResult AnalyseOverlap(const std::vector<ConditionTerm>& a,
                             const std::vector<ConditionTerm>& b);

// Returns true when conjunction `term` can hold, ignoring its opaque
// atoms, and then sets *witness (when not null) as AnalyseOverlap does.
bool SatisfyTerm(const ConditionTerm& term, std::string* witness);

}  // namespace crmflow

#endif  // CRMFLOW_GUARD_OVERLAP_H_
