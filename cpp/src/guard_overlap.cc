// guard_overlap.cc: satisfiability of conjunctions of simple constraints
// (see guard_overlap.h).
//
// Each conjunction is reduced to one domain per name: the intersection of
// the atoms' value sets.  A domain is satisfiable when some value is left;
// the search tries the readable values first (a closed bound, then whole
// steps from a bound) so that the witness shown to a workflow author is
// "amount = 1000" rather than an arbitrary point.

#include "crmflow/guard_overlap.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace crmflow {
namespace {

bool IsOrdered(ValueType t) {
  return t == ValueType::kInteger || t == ValueType::kDecimal ||
         t == ValueType::kTimestamp || t == ValueType::kDuration;
}

// Numbers, timestamps and durations as one exact scale: timestamps and
// durations count microseconds.
Decimal ToDec(const Value& v) {
  switch (v.type()) {
    case ValueType::kInteger:
      return Decimal::FromInteger(v.integer());
    case ValueType::kDecimal:
      return v.decimal();
    case ValueType::kTimestamp:
      return Decimal::FromInteger(v.timestamp().micros);
    case ValueType::kDuration:
      return Decimal::FromInteger(v.duration().micros);
    default:
      return Decimal();
  }
}

__int128 Pow10(int n) {
  __int128 p = 1;
  for (int i = 0; i < n; ++i) p *= 10;
  return p;
}

// Rounds toward negative (floor) or positive (ceil) infinity.
Decimal Floor(const Decimal& d) {
  __int128 p = Pow10(d.scale());
  __int128 q = d.units() / p;
  if (d.units() % p != 0 && d.units() < 0) --q;
  return Decimal::FromUnits(q, 0);
}
Decimal Ceil(const Decimal& d) {
  __int128 p = Pow10(d.scale());
  __int128 q = d.units() / p;
  if (d.units() % p != 0 && d.units() > 0) ++q;
  return Decimal::FromUnits(q, 0);
}
bool Integral(const Decimal& d) {
  return d.units() % Pow10(d.scale()) == 0;
}

std::optional<Decimal> Plus(const Decimal& a, const Decimal& b) {
  auto r = a.Add(b);
  if (!r.ok()) return std::nullopt;
  return *r;
}

// Equality as the evaluator's ==: numbers by value, text exactly.
bool SameValue(const Value& a, const Value& b) {
  if (IsOrdered(a.type()) && IsOrdered(b.type())) {
    return ToDec(a).Compare(ToDec(b)) == 0;
  }
  return a.type() == b.type() && a == b;
}

// Renders a literal the way the expression language writes it.
std::string RenderText(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string RenderNumber(const Decimal& d, ValueType type) {
  if (type == ValueType::kDecimal) return d.ToString();
  auto micros = static_cast<int64_t>(d.units() / Pow10(d.scale()));
  if (type == ValueType::kTimestamp) {
    // Whole seconds read better without the fraction.
    std::string iso = Timestamp{micros}.ToIso();
    size_t dot = iso.find(".000000");
    if (dot != std::string::npos) iso.erase(dot, 7);
    return "@" + iso;
  }
  if (type == ValueType::kDuration) return FormatDuration(Duration{micros});
  return std::to_string(micros);
}

std::string RenderValue(const Value& v, ValueType type) {
  if (IsOrdered(v.type())) return RenderNumber(ToDec(v), type);
  if (v.type() == ValueType::kBoolean) return v.boolean() ? "true" : "false";
  if (v.type() == ValueType::kText) return RenderText(v.text());
  return "null";
}

// The values of one name still allowed by the atoms seen so far.
struct Domain {
  std::string name;
  ValueType type = ValueType::kNull;
  bool null_ok = true;
  bool values_ok = true;  // false after an atom admitting no value
  std::optional<Decimal> lo, hi;  // ordered types only
  bool lo_inclusive = false, hi_inclusive = false;
  std::optional<std::vector<Value>> include;
  std::vector<Value> exclude;

  void Apply(const ConditionAtom& a) {
    using S = ConditionAtom::Set;
    null_ok = null_ok && a.null_ok;
    switch (a.set) {
      case S::kAll:
        break;
      case S::kNone:
        values_ok = false;
        break;
      case S::kBelow: {
        Decimal b = ToDec(a.bound);
        int c = hi ? b.Compare(*hi) : -1;
        if (c < 0 || (c == 0 && !a.inclusive)) {
          hi = b;
          hi_inclusive = a.inclusive;
        }
        break;
      }
      case S::kAbove: {
        Decimal b = ToDec(a.bound);
        int c = lo ? b.Compare(*lo) : 1;
        if (c > 0 || (c == 0 && !a.inclusive)) {
          lo = b;
          lo_inclusive = a.inclusive;
        }
        break;
      }
      case S::kIn:
        if (!include) {
          include = a.values;
        } else {
          std::vector<Value> both;
          for (const Value& v : *include) {
            for (const Value& w : a.values) {
              if (SameValue(v, w)) {
                both.push_back(v);
                break;
              }
            }
          }
          include = std::move(both);
        }
        break;
      case S::kNotIn:
        exclude.insert(exclude.end(), a.values.begin(), a.values.end());
        break;
    }
  }

  bool Excluded(const Value& v) const {
    for (const Value& e : exclude) {
      if (SameValue(v, e)) return true;
    }
    return false;
  }

  // True when the ordered value d is inside the bounds, not excluded and,
  // for a discrete type, whole.
  bool Allows(const Decimal& d) const {
    if (lo) {
      int c = d.Compare(*lo);
      if (c < 0 || (c == 0 && !lo_inclusive)) return false;
    }
    if (hi) {
      int c = d.Compare(*hi);
      if (c > 0 || (c == 0 && !hi_inclusive)) return false;
    }
    if (type != ValueType::kDecimal && !Integral(d)) return false;
    for (const Value& e : exclude) {
      if (ToDec(e).Compare(d) == 0) return false;
    }
    return true;
  }

  // Candidate ordered values, most readable first.  At most exclude.size()
  // of them can be excluded, so exclude.size() + 1 steps always find one
  // when the open interval holds that many.
  std::vector<Decimal> OrderedCandidates() const {
    std::vector<Decimal> out;
    if (lo && lo_inclusive) out.push_back(*lo);
    if (hi && hi_inclusive) out.push_back(*hi);
    const int k = static_cast<int>(exclude.size()) + 1;
    bool discrete = type != ValueType::kDecimal;
    Decimal one = Decimal::FromInteger(1);
    Decimal minus_one = Decimal::FromInteger(-1);
    std::optional<Decimal> start;
    Decimal step = one;
    if (lo && discrete) {
      start = Ceil(*lo);
      if (!lo_inclusive && Integral(*lo)) start = Plus(*lo, one);
    } else if (lo) {
      // Dense: whole steps when k of them fit below hi, else finer ones.
      for (int s = 0; hi && s <= 18; ++s) {
        step = Decimal::FromUnits(1, s);
        auto last = Plus(*lo, Decimal::FromUnits(k, s));
        if (last && last->Compare(*hi) < 0) break;
      }
      start = Plus(*lo, step);
    } else if (hi) {
      start = discrete ? Floor(*hi) : Plus(*hi, minus_one);
      if (!hi_inclusive && discrete && Integral(*hi)) {
        start = Plus(*hi, minus_one);
      }
      step = minus_one;
    } else {
      start = Decimal::FromInteger(0);
    }
    for (int j = 0; start && j <= k; ++j) {
      out.push_back(*start);
      start = Plus(*start, step);
    }
    return out;
  }

  // Returns the witness value text, or std::nullopt when nothing is left.
  std::optional<std::string> Witness() const {
    if (values_ok) {
      if (include) {
        for (const Value& v : *include) {
          bool ok = IsOrdered(type) ? Allows(ToDec(v)) : !Excluded(v);
          if (ok) return RenderValue(v, type);
        }
      } else if (IsOrdered(type)) {
        for (const Decimal& d : OrderedCandidates()) {
          if (Allows(d)) return RenderNumber(d, type);
        }
      } else if (type == ValueType::kBoolean) {
        for (bool b : {true, false}) {
          if (!Excluded(Value::Bool(b))) return b ? "true" : "false";
        }
      } else {
        // Text: any text outside the finite excluded set.
        for (int i = 0;; ++i) {
          std::string t = i == 0 ? "other" : "other" + std::to_string(i);
          if (!Excluded(Value::Text(t))) return RenderText(t);
        }
      }
    }
    if (null_ok) return std::string("null");
    return std::nullopt;
  }
};

}  // namespace

bool SatisfyTerm(const ConditionTerm& term, std::string* witness) {
  std::vector<Domain> domains;
  for (const ConditionAtom& a : term) {
    if (a.opaque) continue;
    Domain* d = nullptr;
    for (Domain& x : domains) {
      if (x.name == a.name) d = &x;
    }
    if (d == nullptr) {
      domains.push_back(Domain());
      d = &domains.back();
      d->name = a.name;
      d->type = a.type;
    }
    d->Apply(a);
  }
  std::string out;
  for (const Domain& d : domains) {
    std::optional<std::string> v = d.Witness();
    if (!v) return false;
    if (!out.empty()) out += ", ";
    out += d.name + " = " + *v;
  }
  if (witness != nullptr) *witness = out.empty() ? "any values" : out;
  return true;
}

OverlapResult AnalyseOverlap(const std::vector<ConditionTerm>& a,
                             const std::vector<ConditionTerm>& b) {
  OverlapResult result;
  for (const ConditionTerm& ta : a) {
    for (const ConditionTerm& tb : b) {
      ConditionTerm both = ta;
      both.insert(both.end(), tb.begin(), tb.end());
      std::string witness;
      if (!SatisfyTerm(both, &witness)) continue;
      const ConditionAtom* opaque = nullptr;
      for (const ConditionAtom& x : both) {
        if (x.opaque) {
          opaque = &x;
          break;
        }
      }
      if (opaque == nullptr) {
        result.kind = OverlapResult::Kind::kOverlap;
        result.witness = std::move(witness);
        result.unknown.clear();
        return result;
      }
      if (result.kind == OverlapResult::Kind::kExclusive) {
        result.kind = OverlapResult::Kind::kUnknown;
        result.unknown = opaque->source;
      }
    }
  }
  return result;
}

}  // namespace crmflow
