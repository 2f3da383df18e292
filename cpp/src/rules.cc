// rules.cc: the rule agenda, rule storage and expression guards (see
// rules.h).
//
// Rule actions go through the public Engine calls, which open nested store
// transactions (savepoints) inside the change that triggered the agenda;
// a failure anywhere returns up the chain and the outermost call rolls
// everything back.  Compiled conditions and actions are cached per rule
// and dropped whenever a rule or a workflow changes.

#include "crmflow/rules.h"

#include <sqlite3.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "crmflow/engine.h"
#include "sqlite_handle.h"

namespace crmflow {
namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

constexpr size_t kTraceLimit = 100000;

constexpr const char* kRulesSql =
    "CREATE TABLE IF NOT EXISTS rules ("
    " name TEXT PRIMARY KEY,"
    " position INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " trigger TEXT NOT NULL,"
    " on_name TEXT NOT NULL,"
    " condition TEXT NOT NULL,"
    " priority INTEGER NOT NULL,"
    " enabled INTEGER NOT NULL,"
    " actions TEXT NOT NULL);";

// The same definition as the SLA scheduler's (scheduler.cc), so whichever
// module runs first creates the table the other expects.
constexpr const char* kOutboxSql =
    "CREATE TABLE IF NOT EXISTS outbox("
    "  id INTEGER PRIMARY KEY,"
    "  time TEXT NOT NULL,"
    "  transaction_id TEXT NOT NULL,"
    "  channel TEXT NOT NULL,"
    "  recipient TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  policy TEXT NOT NULL,"
    "  step INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS outbox_txn ON outbox(transaction_id);";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' ||
                        s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

// Splits "a = x; b = f(1; 2)" at semicolons outside quotes and brackets.
std::vector<std::string_view> SplitList(std::string_view s) {
  std::vector<std::string_view> out;
  int depth = 0;
  char quote = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '(' || c == '[') {
      ++depth;
    } else if (c == ')' || c == ']') {
      --depth;
    } else if (c == ';' && depth == 0) {
      out.push_back(Trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  std::string_view last = Trim(s.substr(start));
  if (!last.empty()) out.push_back(last);
  return out;
}

// Splits "NAME = EXPR"; returns false when it is not of that form.
bool SplitAssignment(std::string_view s, std::string* name,
                     std::string_view* expr) {
  size_t i = 0;
  while (i < s.size() && IsNameChar(s[i])) ++i;
  if (i == 0) return false;
  *name = std::string(s.substr(0, i));
  std::string_view rest = Trim(s.substr(i));
  if (rest.empty() || rest[0] != '=' ||
      (rest.size() > 1 && rest[1] == '=')) {
    return false;
  }
  *expr = Trim(rest.substr(1));
  return !expr->empty();
}

struct Action {
  enum Kind { kSet, kFire, kCreate, kNotify } kind;
  std::string target;  // attribute, event, kind or channel
  Expression value;    // kSet
  std::vector<std::pair<std::string, Expression>> fields;  // create, notify
};

struct Compiled {
  bool has_condition = false;
  Expression condition;
  std::vector<Action> actions;
};

// Converts an expression result to the declared type of an attribute
// (integers widen to decimals); fails naming the rule and the attribute.
StatusOr<Value> Coerce(const Value& v, const AttributeSpec& spec,
                       std::string_view rule) {
  if (v.is_null() || v.type() == spec.type) return v;
  if (v.type() == ValueType::kInteger && spec.type == ValueType::kDecimal) {
    return Value::Dec(Decimal::FromInteger(v.integer()));
  }
  return Status(Code::kInvalidArgument,
                "rule " + Quote(rule) + ": attribute " + Quote(spec.name) +
                    " expects " + ValueTypeName(spec.type) + " (got " +
                    ValueTypeName(v.type()) + ")");
}

std::string ValueText(const Value& v) {
  if (v.is_null()) return "";
  if (v.type() == ValueType::kText) return v.text();
  Attributes one{{"v", v}};
  std::string s = FormatReads(one);
  return s.substr(2);
}

}  // namespace

const char* RuleTriggerName(RuleTrigger trigger) {
  switch (trigger) {
    case RuleTrigger::kCreated: return "created";
    case RuleTrigger::kEvent: return "event";
    case RuleTrigger::kEntered: return "entered";
    case RuleTrigger::kLeft: return "left";
    case RuleTrigger::kChanged: return "changed";
  }
  return "event";
}

StatusOr<RuleTrigger> ParseRuleTrigger(std::string_view name) {
  for (RuleTrigger t : {RuleTrigger::kCreated, RuleTrigger::kEvent,
                        RuleTrigger::kEntered, RuleTrigger::kLeft,
                        RuleTrigger::kChanged}) {
    if (name == RuleTriggerName(t)) return t;
  }
  return Status(Code::kInvalidArgument,
                "unknown rule trigger " + Quote(name) +
                    " (expected created, event, entered, left or changed)");
}

bool IsExpressionGuard(std::string_view guard) {
  return guard.substr(0, 5) == "expr:";
}

ExprSchema SchemaOf(const Workflow& workflow) {
  ExprSchema schema;
  for (const AttributeSpec& a : workflow.attributes()) {
    schema.attributes.push_back({a.name, a.type});
  }
  return schema;
}

StatusOr<Expression> ParseExpressionGuard(std::string_view guard,
                                          const Workflow& workflow) {
  std::string_view text = Trim(guard.substr(5));
  auto e = Expression::ParseCondition(text, SchemaOf(workflow));
  if (!e.ok()) {
    return Status(Code::kValidationError,
                  "workflow " + Quote(workflow.name()) + ": guard " +
                      Quote(guard) + ": " + e.status().message());
  }
  return e;
}

bool CheckExpressionGuard(const Expression& condition, const Transaction& txn,
                          std::string* reason) {
  EvalContext ctx;
  ctx.attributes = &txn.attributes;
  ctx.txn_id = txn.id;
  ctx.txn_state = txn.state;
  ctx.txn_kind = txn.kind;
  Attributes reads;
  auto r = condition.EvaluateCondition(ctx, &reads);
  if (!r.ok()) {
    if (reason != nullptr) *reason = r.status().message();
    return false;
  }
  if (!*r && reason != nullptr) {
    *reason = condition.text() + " is false";
    if (!reads.empty()) *reason += " (" + FormatReads(reads) + ")";
  }
  return *r;
}

// An operand of the form "attribute op literal", compared without the
// expression evaluator (see SimpleComparison for the rules it follows).
struct FastOperand {
  SimpleComparison cmp;
  Decimal number;  // the literal, for integer and decimal attributes
  bool numeric = false;
  // The literal's units at scale s (s >= its own scale), when they fit:
  // values usually share one scale, so comparing is one integer compare.
  __int128 scaled[19] = {};
  uint32_t scaled_ok = 0;  // bit s: scaled[s] is valid

  void Prepare() {
    __int128 u = number.units();
    constexpr __int128 kLimit = static_cast<__int128>(1000000000000000000) *
                                1000000000000000000;  // 10^36
    for (int s = number.scale(); s <= 18; ++s) {
      if (u >= kLimit || u <= -kLimit) break;
      scaled[s] = u;
      scaled_ok |= 1u << s;
      u *= 10;
    }
  }
};

// Equality of attribute names, inlined: names are short, so a loop beats
// a call to memcmp.
inline bool SameName(const std::string& a, const std::string& b) {
  size_t n = a.size();
  if (n != b.size()) return false;
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// Returns 0 or 1, or -1 when the value has the wrong type (the
// operand's EvaluateCondition then reports the error).
static int FastEvaluate(const FastOperand& f, const EvalContext& ctx) {
  const SimpleComparison& c = f.cmp;
  const Value* v = nullptr;
  if (ctx.attributes != nullptr) {
    const Attributes& a = *ctx.attributes;
    if (c.hint >= 0 && static_cast<size_t>(c.hint) < a.size() &&
        SameName(a[c.hint].first, c.attribute)) {
      v = &a[c.hint].second;
    } else {
      v = FindAttribute(a, c.attribute);
    }
  }
  using Op = SimpleComparison::Op;
  if (v == nullptr || v->is_null()) return c.op == Op::kNe ? 1 : 0;
  int r = 0;
  ValueType t = v->type();
  if (f.numeric && (t == ValueType::kDecimal || t == ValueType::kInteger)) {
    if (t == ValueType::kInteger && c.declared == ValueType::kInteger &&
        c.literal.type() == ValueType::kInteger) {
      int64_t x = v->integer(), y = c.literal.integer();
      r = x < y ? -1 : (x > y ? 1 : 0);
    } else if (t == ValueType::kDecimal &&
               (f.scaled_ok >> v->decimal().scale() & 1u) != 0) {
      __int128 x = v->decimal().units(), y = f.scaled[v->decimal().scale()];
      r = x < y ? -1 : (x > y ? 1 : 0);
    } else {
      Decimal x = t == ValueType::kDecimal
                      ? v->decimal()
                      : Decimal::FromInteger(v->integer());
      r = x.Compare(f.number);
    }
    if (t == ValueType::kDecimal && c.declared == ValueType::kInteger) {
      return -1;
    }
  } else if (t != c.declared) {
    return -1;
  } else if (t == ValueType::kText) {
    int x = v->text().compare(c.literal.text());
    r = x < 0 ? -1 : (x > 0 ? 1 : 0);
  } else if (t == ValueType::kTimestamp) {
    int64_t x = v->timestamp().micros, y = c.literal.timestamp().micros;
    r = x < y ? -1 : (x > y ? 1 : 0);
  } else if (t == ValueType::kDuration) {
    int64_t x = v->duration().micros, y = c.literal.duration().micros;
    r = x < y ? -1 : (x > y ? 1 : 0);
  } else if (t == ValueType::kBoolean) {
    bool x = v->boolean(), y = c.literal.boolean();
    r = x == y ? 0 : (x ? 1 : -1);
  } else {
    return -1;
  }
  switch (c.op) {
    case Op::kEq: return r == 0;
    case Op::kNe: return r != 0;
    case Op::kLt: return r < 0;
    case Op::kLe: return r <= 0;
    case Op::kGt: return r > 0;
    case Op::kGe: return r >= 0;
  }
  return -1;
}

struct ConditionSet::Impl {
  std::vector<Expression> operands;
  std::vector<std::optional<FastOperand>> fast;  // per operand
  // Condition i is the "and" of operands[cond_operands[begin[i]..end)].
  std::vector<int32_t> cond_operands;
  std::vector<int32_t> begin;  // size() + 1 entries
};

ConditionSet::ConditionSet()
    : impl_(std::make_shared<Impl>(Impl{{}, {}, {}, {0}})) {}
ConditionSet::~ConditionSet() = default;
ConditionSet::ConditionSet(const ConditionSet&) = default;
ConditionSet& ConditionSet::operator=(const ConditionSet&) = default;

StatusOr<ConditionSet> ConditionSet::Compile(
    const std::vector<std::string>& conditions, const ExprSchema& schema) {
  auto impl = std::make_shared<Impl>();
  impl->begin.push_back(0);
  std::map<std::string, int32_t, std::less<>> seen;
  for (size_t i = 0; i < conditions.size(); ++i) {
    std::string where = "condition " + std::to_string(i + 1) + ": ";
    if (!Trim(conditions[i]).empty()) {
      // The whole condition first: its errors carry its own columns.
      auto whole = Expression::ParseCondition(conditions[i], schema);
      if (!whole.ok()) {
        return Status(whole.status().code(),
                      where + whole.status().message());
      }
      for (std::string& part : whole->Conjuncts()) {
        auto it = seen.find(part);
        if (it == seen.end()) {
          auto e = Expression::ParseCondition(part, schema);
          if (!e.ok()) {
            return Status(e.status().code(), where + e.status().message());
          }
          it = seen.emplace(std::move(part),
                            static_cast<int32_t>(impl->operands.size()))
                   .first;
          std::optional<FastOperand> fast;
          if (auto sc = e->AsSimpleComparison()) {
            fast.emplace();
            fast->cmp = std::move(*sc);
            ValueType lt = fast->cmp.literal.type();
            fast->numeric = (fast->cmp.declared == ValueType::kDecimal ||
                             fast->cmp.declared == ValueType::kInteger) &&
                            (lt == ValueType::kDecimal ||
                             lt == ValueType::kInteger);
            if (fast->numeric) {
              fast->number = lt == ValueType::kDecimal
                                 ? fast->cmp.literal.decimal()
                                 : Decimal::FromInteger(
                                       fast->cmp.literal.integer());
              fast->Prepare();
            }
          }
          impl->fast.push_back(std::move(fast));
          impl->operands.push_back(std::move(*e));
        }
        impl->cond_operands.push_back(it->second);
      }
    }
    impl->begin.push_back(static_cast<int32_t>(impl->cond_operands.size()));
  }
  ConditionSet set;
  set.impl_ = std::move(impl);
  return set;
}

size_t ConditionSet::size() const { return impl_->begin.size() - 1; }

size_t ConditionSet::operand_count() const { return impl_->operands.size(); }

Status ConditionSet::Evaluate(const EvalContext& ctx,
                              uint8_t* matched) const {
  // Per operand: 0 not evaluated yet, 1 false, 2 true.
  constexpr size_t kInline = 256;
  uint8_t inline_memo[kInline];
  std::vector<uint8_t> heap_memo;
  const size_t n = impl_->operands.size();
  uint8_t* memo = inline_memo;
  if (n > kInline) {
    heap_memo.assign(n, 0);
    memo = heap_memo.data();
  } else {
    std::fill(memo, memo + n, 0);
  }
  const size_t count = size();
  for (size_t i = 0; i < count; ++i) {
    auto r = EvaluateOne(i, ctx, memo);
    if (!r.ok()) {
      return Status(r.status().code(), "condition " + std::to_string(i + 1) +
                                           ": " + r.status().message());
    }
    matched[i] = *r ? 1 : 0;
  }
  return Status::Ok();
}

StatusOr<bool> ConditionSet::EvaluateOne(size_t i, const EvalContext& ctx,
                                         uint8_t* memo) const {
  const int32_t end = impl_->begin[i + 1];
  for (int32_t k = impl_->begin[i]; k < end; ++k) {
    int32_t op = impl_->cond_operands[k];
    if (memo[op] == 0) {
      int fast = -1;
      if (impl_->fast[op]) fast = FastEvaluate(*impl_->fast[op], ctx);
      if (fast >= 0) {
        memo[op] = fast == 1 ? 2 : 1;
      } else {
        auto r = impl_->operands[op].EvaluateCondition(ctx);
        if (!r.ok()) return r.status();
        memo[op] = *r ? 2 : 1;
      }
    }
    if (memo[op] == 1) return false;
  }
  return true;
}

// The agenda of one (kind, trigger, target): its rules in run order and
// their conditions compiled together, so that operands shared by several
// rules ("tier == 'gold'") are evaluated once per transaction state.
// Copies, held through a shared_ptr by a running Run: a callback that
// changes the rules mid-chain cannot pull them from under it.
struct Agenda {
  std::vector<Rule> rules;
  std::vector<Compiled> compiled;
  ConditionSet conditions;  // condition i belongs to rules[i]
};

// The transaction as one agenda saw it, shared by that agenda's trace
// entries: the values read are rendered only when the trace is asked for,
// by evaluating the condition again on the same snapshot (evaluation is
// deterministic), which keeps formatting off the path of every change.
struct TraceEntry {
  int64_t seq = 0;
  Timestamp time;
  std::shared_ptr<const Transaction> txn;
  std::shared_ptr<const std::string> trigger;
  const char* outcome = "";
  std::string rule;
  Expression condition;  // empty: no condition, no reads
  int depth = 0;
};

struct RuleSet::Impl {
  Engine* engine;
  Store* store;
  sqlite3* db;
  std::function<void()> changed;
  std::vector<Rule> rules;
  std::map<std::string, Compiled, std::less<>> compiled;
  // Agendas by kind, trigger and target, rules in run order; dropped with
  // the compiled rules.  A std::map: a nested Run adds entries while an
  // outer one walks its agenda.
  std::map<std::string, std::shared_ptr<const Agenda>, std::less<>> agendas;
  std::deque<TraceEntry> trace;
  int64_t trace_seq = 0;
  RuleLimits limits;
  int depth = 0;
  int firings = 0;
  std::vector<std::string> path;  // rules whose actions are running

  Status Exec(const char* sql, std::string_view what) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      return Status(Code::kStoreError, "rules: " + std::string(what) +
                                           " failed (" + msg + ")");
    }
    return Status::Ok();
  }

  Status StoreError(std::string_view what) {
    return Status(Code::kStoreError, "rules: " + std::string(what) +
                                         " failed (" + sqlite3_errmsg(db) +
                                         ")");
  }

  // Writes `rule` (SQLite), inside its own store transaction.
  Status Save(const Rule& rule) {
    if (db == nullptr) return Status::Ok();
    CRMFLOW_RETURN_IF_ERROR(store->Begin());
    Status st = Exec(kRulesSql, "create tables");
    if (st.ok()) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(db,
                             "INSERT OR REPLACE INTO rules (name, position, "
                             "kind, trigger, on_name, condition, priority, "
                             "enabled, actions) VALUES (?1, ?2, ?3, ?4, ?5, "
                             "?6, ?7, ?8, ?9)",
                             -1, &s, nullptr) != SQLITE_OK) {
        st = StoreError("save rule");
      } else {
        auto text = [&](int i, std::string_view v) {
          sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()),
                            SQLITE_TRANSIENT);
        };
        text(1, rule.name);
        sqlite3_bind_int64(s, 2, rule.position);
        text(3, rule.kind);
        text(4, RuleTriggerName(rule.trigger));
        text(5, rule.on);
        text(6, rule.condition);
        sqlite3_bind_int(s, 7, rule.priority);
        sqlite3_bind_int(s, 8, rule.enabled ? 1 : 0);
        text(9, rule.actions);
        if (sqlite3_step(s) != SQLITE_DONE) st = StoreError("save rule");
      }
      sqlite3_finalize(s);
    }
    if (!st.ok()) {
      (void)store->Rollback();
      return st;
    }
    return store->Commit();
  }

  Status Delete(std::string_view name) {
    if (db == nullptr) return Status::Ok();
    CRMFLOW_RETURN_IF_ERROR(store->Begin());
    Status st = Exec(kRulesSql, "create tables");
    if (st.ok()) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(db, "DELETE FROM rules WHERE name = ?1", -1, &s,
                             nullptr) != SQLITE_OK) {
        st = StoreError("remove rule");
      } else {
        sqlite3_bind_text(s, 1, name.data(), static_cast<int>(name.size()),
                          SQLITE_TRANSIENT);
        if (sqlite3_step(s) != SQLITE_DONE) st = StoreError("remove rule");
      }
      sqlite3_finalize(s);
    }
    if (!st.ok()) {
      (void)store->Rollback();
      return st;
    }
    return store->Commit();
  }

  Status Load() {
    rules.clear();
    Forget();
    if (db == nullptr) return Status::Ok();
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db,
                           "SELECT name FROM sqlite_master WHERE type = "
                           "'table' AND name = 'rules'",
                           -1, &s, nullptr) != SQLITE_OK) {
      return StoreError("read rules");
    }
    bool exists = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    if (!exists) return Status::Ok();
    if (sqlite3_prepare_v2(db,
                           "SELECT name, position, kind, trigger, on_name, "
                           "condition, priority, enabled, actions FROM rules "
                           "ORDER BY position",
                           -1, &s, nullptr) != SQLITE_OK) {
      return StoreError("read rules");
    }
    auto text = [&](int col) {
      const unsigned char* p = sqlite3_column_text(s, col);
      return p == nullptr ? std::string()
                          : std::string(reinterpret_cast<const char*>(p));
    };
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      Rule r;
      r.name = text(0);
      r.position = sqlite3_column_int64(s, 1);
      r.kind = text(2);
      auto t = ParseRuleTrigger(text(3));
      r.trigger = t.ok() ? *t : RuleTrigger::kEvent;
      r.on = text(4);
      r.condition = text(5);
      r.priority = sqlite3_column_int(s, 6);
      r.enabled = sqlite3_column_int(s, 7) != 0;
      r.actions = text(8);
      rules.push_back(std::move(r));
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return StoreError("read rules");
    return Status::Ok();
  }

  // Compiles `rule` against its kind's workflow.
  StatusOr<Compiled> Compile(const Rule& rule) {
    auto fail = [&](const std::string& what) {
      return Status(Code::kInvalidArgument,
                    "rule " + Quote(rule.name) + ": " + what);
    };
    const Workflow* wf = engine->FindWorkflow(rule.kind);
    if (wf == nullptr) {
      return fail("unknown kind " + Quote(rule.kind) + " (registered: " +
                  [&] {
                    std::string k;
                    for (const auto& n : engine->kinds()) {
                      k += (k.empty() ? "" : ", ") + n;
                    }
                    return k.empty() ? std::string("none") : k;
                  }() +
                  ")");
    }
    ExprSchema schema = SchemaOf(*wf);
    if (!rule.on.empty()) {
      bool known = true;
      switch (rule.trigger) {
        case RuleTrigger::kEvent:
          known = wf->EventId(rule.on) != Workflow::kNoId;
          break;
        case RuleTrigger::kEntered:
        case RuleTrigger::kLeft:
          known = wf->StateId(rule.on) != Workflow::kNoId;
          break;
        case RuleTrigger::kChanged:
          known = wf->FindAttributeSpec(rule.on) != nullptr;
          break;
        case RuleTrigger::kCreated:
          known = false;
          break;
      }
      if (!known) {
        // The names the trigger could have meant, for the message.
        std::vector<std::string> names;
        if (rule.trigger == RuleTrigger::kEvent) {
          for (int i = 0; i < wf->event_count(); ++i) {
            names.push_back(wf->EventName(i));
          }
        } else if (rule.trigger == RuleTrigger::kChanged) {
          for (const AttributeSpec& a : wf->attributes()) {
            names.push_back(a.name);
          }
        } else if (rule.trigger != RuleTrigger::kCreated) {
          for (int i = 0; i < wf->state_count(); ++i) {
            names.push_back(wf->StateName(i));
          }
        }
        std::string known;
        for (const std::string& n : names) {
          known += (known.empty() ? "" : ", ") + n;
        }
        if (rule.trigger == RuleTrigger::kCreated) {
          known = "created takes no target";
        } else {
          known = "known: " + (known.empty() ? std::string("none") : known);
        }
        return fail(std::string("unknown ") +
                    (rule.trigger == RuleTrigger::kEvent ? "event "
                     : rule.trigger == RuleTrigger::kChanged
                         ? "attribute "
                         : rule.trigger == RuleTrigger::kCreated ? "target "
                                                                 : "state ") +
                    Quote(rule.on) + " of kind " + Quote(rule.kind) +
                    " (" + known + ")");
      }
    }
    const std::string over = " on kind " + Quote(rule.kind) + ": ";
    Compiled c;
    if (!Trim(rule.condition).empty()) {
      auto e = Expression::ParseCondition(rule.condition, schema);
      if (!e.ok()) return fail("condition" + over + e.status().message());
      c.has_condition = true;
      c.condition = std::move(*e);
    }
    std::string_view rest = rule.actions;
    int line_no = 0;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = Trim(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? "" : rest.substr(nl + 1);
      ++line_no;
      if (line.empty()) continue;
      std::string where = "action " + std::to_string(line_no) + ": ";
      // Expression errors also name the kind whose names were searched.
      std::string where_expr = "action " + std::to_string(line_no) + over;
      size_t sp = line.find(' ');
      std::string_view verb = line.substr(0, sp);
      std::string_view arg =
          sp == std::string_view::npos ? "" : Trim(line.substr(sp + 1));
      Action a;
      if (verb == "set" || verb == "assign") {
        std::string name;
        std::string_view expr;
        if (!SplitAssignment(arg, &name, &expr)) {
          return fail(where + "expected " + std::string(verb) +
                      " NAME = EXPRESSION");
        }
        if (verb == "assign" && name != "team" && name != "assignee") {
          return fail(where + "assign names team or assignee (got " +
                      Quote(name) + ")");
        }
        if (wf->FindAttributeSpec(name) == nullptr) {
          return fail(where + "unknown attribute " + Quote(name) +
                      " of kind " + Quote(rule.kind));
        }
        auto e = Expression::Parse(expr, schema);
        if (!e.ok()) return fail(where_expr + e.status().message());
        a.kind = Action::kSet;
        a.target = name;
        a.value = std::move(*e);
      } else if (verb == "fire") {
        if (arg.empty() || wf->EventId(arg) == Workflow::kNoId) {
          return fail(where + "unknown event " + Quote(arg) + " of kind " +
                      Quote(rule.kind));
        }
        a.kind = Action::kFire;
        a.target = std::string(arg);
      } else if (verb == "create" || verb == "notify") {
        size_t w = arg.find(" with ");
        std::string_view head = Trim(arg.substr(0, w));
        std::string_view list =
            w == std::string_view::npos ? "" : arg.substr(w + 6);
        if (head.empty()) {
          return fail(where + "expected " + std::string(verb) +
                      (verb == "create" ? " KIND" : " CHANNEL"));
        }
        a.kind = verb == "create" ? Action::kCreate : Action::kNotify;
        a.target = std::string(head);
        const Workflow* target = nullptr;
        if (a.kind == Action::kCreate) {
          target = engine->FindWorkflow(head);
          if (target == nullptr) {
            return fail(where + "unknown kind " + Quote(head));
          }
        }
        for (std::string_view item : SplitList(list)) {
          std::string name;
          std::string_view expr;
          if (!SplitAssignment(item, &name, &expr)) {
            return fail(where + "expected NAME = EXPRESSION (got " +
                        Quote(item) + ")");
          }
          if (target != nullptr && target->FindAttributeSpec(name) == nullptr) {
            return fail(where + "unknown attribute " + Quote(name) +
                        " of kind " + Quote(head));
          }
          if (a.kind == Action::kNotify && name != "recipient" &&
              name != "subject" && name != "body") {
            return fail(where + "unknown field " + Quote(name) +
                        " (expected recipient, subject or body)");
          }
          auto e = Expression::Parse(expr, schema);
          if (!e.ok()) return fail(where_expr + e.status().message());
          a.fields.emplace_back(std::move(name), std::move(*e));
        }
      } else {
        return fail(where + "unknown action " + Quote(verb) +
                    " (expected set, assign, fire, create or notify)");
      }
      c.actions.push_back(std::move(a));
    }
    return c;
  }

  StatusOr<const Compiled*> CompiledOf(const Rule& rule) {
    auto it = compiled.find(rule.name);
    if (it == compiled.end()) {
      auto c = Compile(rule);
      if (!c.ok()) return c.status();
      it = compiled.emplace(rule.name, std::move(*c)).first;
    }
    return &it->second;
  }

  void AddTrace(TraceEntry entry) {
    entry.seq = ++trace_seq;
    trace.push_back(std::move(entry));
    if (trace.size() > kTraceLimit) trace.pop_front();
  }

  // Drops everything derived from the rules and workflows.
  void Forget() {
    agendas.clear();
    compiled.clear();
  }

  // Returns the agenda of (kind, trigger, on), building it on first use.
  StatusOr<std::shared_ptr<const Agenda>> AgendaOf(std::string_view kind,
                                                   RuleTrigger trigger,
                                                   std::string_view on) {
    std::string key = std::string(kind);
    key += '\0';
    key += static_cast<char>('0' + static_cast<int>(trigger));
    key += on;
    auto it = agendas.find(key);
    if (it != agendas.end()) return it->second;
    auto a = std::make_shared<Agenda>();
    for (const Rule& r : rules) {
      if (r.enabled && r.kind == kind && r.trigger == trigger &&
          (r.on.empty() || r.on == on)) {
        a->rules.push_back(r);
      }
    }
    std::stable_sort(a->rules.begin(), a->rules.end(),
                     [](const Rule& x, const Rule& y) {
                       return x.priority > y.priority;
                     });
    std::vector<std::string> texts;
    for (const Rule& r : a->rules) {
      auto c = CompiledOf(r);
      if (!c.ok()) return c.status();
      a->compiled.push_back(**c);
      texts.push_back((*c)->has_condition ? r.condition : "");
    }
    if (!a->rules.empty()) {
      const Workflow* wf = engine->FindWorkflow(kind);
      auto set = ConditionSet::Compile(texts, SchemaOf(*wf));
      // Each condition compiled alone above, so together they do too.
      if (!set.ok()) return set.status();
      a->conditions = std::move(*set);
    }
    std::shared_ptr<const Agenda> shared = std::move(a);
    agendas.emplace(std::move(key), shared);
    return shared;
  }

  std::string Path(std::string_view next) const {
    std::string out;
    for (const auto& p : path) out += p + " -> ";
    return out + std::string(next);
  }

  Status Notify(const Rule& rule, const Action& a, const Transaction& txn,
                const EvalContext& ctx, Timestamp time) {
    std::string recipient, subject, body_text;
    for (const auto& [name, e] : a.fields) {
      auto v = e.Evaluate(ctx);
      if (!v.ok()) {
        return Status(v.status().code(), "rule " + Quote(rule.name) + ": " +
                                             v.status().message());
      }
      std::string text = ValueText(*v);
      if (name == "recipient") recipient = text;
      if (name == "subject") subject = text;
      if (name == "body") body_text = text;
    }
    if (db == nullptr) return Status::Ok();
    // The body is JSON: the text and the rule that wrote it.
    std::string body = "{\"text\": \"";
    for (char c : body_text) {
      if (c == '"' || c == '\\') body += '\\';
      if (c == '\n') {
        body += "\\n";
        continue;
      }
      body += c;
    }
    body += "\", \"rule\": \"" + rule.name + "\"}";
    CRMFLOW_RETURN_IF_ERROR(Exec(kOutboxSql, "create outbox"));
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO outbox(time, transaction_id, channel, "
                           "recipient, subject, body, policy, step) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
                           -1, &s, nullptr) != SQLITE_OK) {
      return StoreError("write outbox");
    }
    std::string policy = "rule:" + rule.name;
    std::string iso = time.ToIso();
    for (auto [i, v] : std::vector<std::pair<int, std::string_view>>{
             {1, iso}, {2, txn.id}, {3, a.target}, {4, recipient},
             {5, subject}, {6, body}, {7, policy}}) {
      sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()),
                        SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return StoreError("write outbox");
    return Status::Ok();
  }

  Status RunActions(const Rule& rule, const Compiled& c,
                    std::string_view id, Timestamp time) {
    for (const Action& a : c.actions) {
      auto txn = engine->Get(id);
      if (!txn.ok()) return txn.status();
      EvalContext ctx;
      ctx.attributes = &txn->attributes;
      ctx.txn_id = txn->id;
      ctx.txn_state = txn->state;
      ctx.txn_kind = txn->kind;
      auto prefix = [&](const Status& st) {
        return Status(st.code(),
                      "rule " + Quote(rule.name) + ": " + st.message());
      };
      switch (a.kind) {
        case Action::kSet: {
          auto v = a.value.Evaluate(ctx);
          if (!v.ok()) return prefix(v.status());
          const Workflow* wf = engine->FindWorkflow(txn->kind);
          const AttributeSpec* spec = wf->FindAttributeSpec(a.target);
          auto cv = Coerce(*v, *spec, rule.name);
          if (!cv.ok()) return cv.status();
          const Value* old = FindAttribute(txn->attributes, a.target);
          // An unchanged value is no change: it triggers nothing.
          if ((old == nullptr && cv->is_null()) ||
              (old != nullptr && *old == *cv &&
               old->type() == cv->type())) {
            break;
          }
          auto r = engine->SetAttributes(id, {{a.target, *cv}},
                                         txn->version);
          if (!r.ok()) return r.status();
          break;
        }
        case Action::kFire: {
          FireOptions options;
          options.time = time;
          options.actor = "rule:" + rule.name;
          auto r = engine->Fire(id, a.target, options);
          if (!r.ok()) return r.status();
          break;
        }
        case Action::kCreate: {
          CreateRequest req;
          req.kind = a.target;
          auto numbering = engine->GetNumbering(a.target);
          if (!numbering.ok()) return numbering.status();
          if (!numbering->has_value()) {
            req.id = std::string(id) + "/" + rule.name;
          }
          req.parent_id = std::string(id);
          req.time = time;
          req.actor = "rule:" + rule.name;
          const Workflow* target = engine->FindWorkflow(a.target);
          for (const auto& [name, e] : a.fields) {
            auto v = e.Evaluate(ctx);
            if (!v.ok()) return prefix(v.status());
            auto cv = Coerce(*v, *target->FindAttributeSpec(name), rule.name);
            if (!cv.ok()) return cv.status();
            if (!cv->is_null()) req.attributes.emplace_back(name, *cv);
          }
          auto r = engine->Create(req);
          if (!r.ok()) return r.status();
          break;
        }
        case Action::kNotify:
          CRMFLOW_RETURN_IF_ERROR(Notify(rule, a, *txn, ctx, time));
          break;
      }
    }
    return Status::Ok();
  }

  // Runs the agenda of one trigger on transaction `id` of `kind`.
  Status Run(std::string_view id, std::string_view kind, RuleTrigger trigger,
             std::string_view on, Timestamp time) {
    auto found = AgendaOf(kind, trigger, on);
    if (!found.ok()) return found.status();
    std::shared_ptr<const Agenda> held = std::move(*found);
    const Agenda& agenda = *held;
    if (agenda.rules.empty()) return Status::Ok();
    if (depth == 0) {
      firings = 0;
      path.clear();
    }
    if (depth >= limits.max_depth) {
      return Status(Code::kInvalidArgument,
                    "rule loop on transaction " + Quote(id) + ": " +
                        Path(agenda.rules.front().name) + " (depth limit " +
                        std::to_string(limits.max_depth) + ")");
    }
    ++depth;
    struct Unwind {
      int* depth;
      ~Unwind() { --*depth; }
    } unwind{&depth};
    std::string trigger_text = RuleTriggerName(trigger);
    if (!on.empty()) trigger_text += " " + std::string(on);
    auto shared_trigger =
        std::make_shared<const std::string>(std::move(trigger_text));
    std::set<std::string, std::less<>> written;
    // Read again only after a rule's actions may have changed it; the
    // operand memo is valid for one reading.
    std::shared_ptr<const Transaction> txn;
    std::vector<uint8_t> memo(agenda.conditions.operand_count());
    EvalContext ctx;
    for (size_t i = 0; i < agenda.rules.size(); ++i) {
      const Rule* rule = &agenda.rules[i];
      const Compiled* c = &agenda.compiled[i];
      if (!txn) {
        auto got = engine->Get(id);
        if (!got.ok()) return got.status();
        txn = std::make_shared<const Transaction>(std::move(*got));
        std::fill(memo.begin(), memo.end(), 0);
        ctx.attributes = &txn->attributes;
        ctx.txn_id = txn->id;
        ctx.txn_state = txn->state;
        ctx.txn_kind = txn->kind;
      }
      TraceEntry row;
      row.time = time;
      row.txn = txn;
      row.rule = rule->name;
      row.trigger = shared_trigger;
      row.depth = depth - 1;
      if (c->has_condition) row.condition = c->condition;
      bool matched = true;
      if (c->has_condition) {
        auto r = agenda.conditions.EvaluateOne(i, ctx, memo.data());
        if (!r.ok()) {
          // The whole condition again, for the error's own columns.
          auto whole = c->condition.EvaluateCondition(ctx);
          Status st = whole.ok() ? r.status() : whole.status();
          row.outcome = "error";
          AddTrace(std::move(row));
          return Status(st.code(),
                        "rule " + Quote(rule->name) + ": " + st.message());
        }
        matched = *r;
      }
      if (!matched) {
        row.outcome = "not matched";
        AddTrace(std::move(row));
        continue;
      }
      bool shadowed = false;
      for (const Action& a : c->actions) {
        if (a.kind == Action::kSet && written.count(a.target) > 0) {
          shadowed = true;
        }
      }
      if (shadowed) {
        row.outcome = "shadowed";
        AddTrace(std::move(row));
        continue;
      }
      for (const Action& a : c->actions) {
        if (a.kind == Action::kSet) written.insert(a.target);
      }
      if (++firings > limits.max_firings) {
        return Status(Code::kInvalidArgument,
                      "rule loop on transaction " + Quote(id) + ": " +
                          Path(rule->name) + " (limit of " +
                          std::to_string(limits.max_firings) +
                          " rules fired)");
      }
      row.outcome = "fired";
      AddTrace(std::move(row));
      // A rule without actions changes nothing: the reading stays valid.
      if (c->actions.empty()) continue;
      path.push_back(rule->name);
      txn.reset();
      Status st = RunActions(*rule, *c, id, time);
      path.pop_back();
      CRMFLOW_RETURN_IF_ERROR(st);
    }
    return Status::Ok();
  }
};

RuleSet::RuleSet(Engine* engine, Store* store, std::function<void()> changed)
    : impl_(std::make_unique<Impl>()) {
  impl_->engine = engine;
  impl_->store = store;
  impl_->db = SqliteHandle(*store);
  impl_->changed = std::move(changed);
}

RuleSet::~RuleSet() = default;

Status RuleSet::Add(Rule rule) {
  if (rule.name.empty() || !IsValidUtf8(rule.name)) {
    return Status(Code::kInvalidArgument,
                  "rule: invalid name (expected non-empty UTF-8)");
  }
  auto c = impl_->Compile(rule);
  if (!c.ok()) return c.status();
  auto it = std::find_if(impl_->rules.begin(), impl_->rules.end(),
                         [&](const Rule& r) { return r.name == rule.name; });
  if (it != impl_->rules.end()) {
    rule.position = it->position;
  } else {
    rule.position = impl_->rules.empty() ? 1 : impl_->rules.back().position + 1;
  }
  CRMFLOW_RETURN_IF_ERROR(impl_->Save(rule));
  impl_->Forget();
  impl_->compiled.emplace(rule.name, std::move(*c));
  if (it != impl_->rules.end()) {
    *it = std::move(rule);
  } else {
    impl_->rules.push_back(std::move(rule));
  }
  if (impl_->changed) impl_->changed();
  return Status::Ok();
}

Status RuleSet::SetEnabled(std::string_view name, bool enabled) {
  for (Rule& r : impl_->rules) {
    if (r.name != name) continue;
    Rule copy = r;
    copy.enabled = enabled;
    CRMFLOW_RETURN_IF_ERROR(impl_->Save(copy));
    r.enabled = enabled;
    impl_->agendas.clear();
    if (impl_->changed) impl_->changed();
    return Status::Ok();
  }
  return Status(Code::kNotFound, "rule " + Quote(name) + " not found");
}

Status RuleSet::Remove(std::string_view name) {
  auto it = std::find_if(impl_->rules.begin(), impl_->rules.end(),
                         [&](const Rule& r) { return r.name == name; });
  if (it == impl_->rules.end()) {
    return Status(Code::kNotFound, "rule " + Quote(name) + " not found");
  }
  CRMFLOW_RETURN_IF_ERROR(impl_->Delete(name));
  impl_->Forget();
  impl_->rules.erase(it);
  if (impl_->changed) impl_->changed();
  return Status::Ok();
}

const std::vector<Rule>& RuleSet::rules() const { return impl_->rules; }

Status RuleSet::Reload() {
  Status st = impl_->Load();
  if (impl_->changed) impl_->changed();
  return st;
}

void RuleSet::Invalidate() { impl_->Forget(); }

std::vector<std::string> RuleSet::Validate() {
  std::vector<std::string> out;
  for (const Rule& r : impl_->rules) {
    auto c = impl_->Compile(r);
    if (!c.ok()) out.push_back(c.status().message());
  }
  return out;
}

bool RuleSet::HasRules(std::string_view kind) const {
  for (const Rule& r : impl_->rules) {
    if (r.enabled && r.kind == kind) return true;
  }
  return false;
}

Status RuleSet::AfterCreate(const Transaction& txn, Timestamp time) {
  if (!HasRules(txn.kind)) return Status::Ok();
  return impl_->Run(txn.id, txn.kind, RuleTrigger::kCreated, "", time);
}

Status RuleSet::AfterFire(const Transaction& txn, std::string_view event,
                          std::string_view from_state, bool external,
                          Timestamp time) {
  if (!HasRules(txn.kind)) return Status::Ok();
  // Copies: the agenda may change the transaction behind `txn`.
  std::string id = txn.id, kind = txn.kind, to = txn.state;
  std::string from(from_state), ev(event);
  if (external) {
    CRMFLOW_RETURN_IF_ERROR(
        impl_->Run(id, kind, RuleTrigger::kLeft, from, time));
  }
  CRMFLOW_RETURN_IF_ERROR(impl_->Run(id, kind, RuleTrigger::kEvent, ev, time));
  if (external) {
    CRMFLOW_RETURN_IF_ERROR(
        impl_->Run(id, kind, RuleTrigger::kEntered, to, time));
  }
  return Status::Ok();
}

Status RuleSet::AfterSetAttributes(const Transaction& before,
                                   const Transaction& after, Timestamp time) {
  if (!HasRules(after.kind)) return Status::Ok();
  std::string id = after.id, kind = after.kind;
  std::vector<std::string> changed;
  for (const auto& [name, v] : after.attributes) {
    const Value* old = FindAttribute(before.attributes, name);
    bool same = old != nullptr ? (*old == v && old->type() == v.type())
                               : v.is_null();
    if (!same) changed.push_back(name);
  }
  for (const std::string& name : changed) {
    CRMFLOW_RETURN_IF_ERROR(
        impl_->Run(id, kind, RuleTrigger::kChanged, name, time));
  }
  return Status::Ok();
}

std::vector<RuleTraceRow> RuleSet::Trace(
    std::string_view transaction_id) const {
  std::vector<RuleTraceRow> out;
  for (const TraceEntry& e : impl_->trace) {
    if (!transaction_id.empty() && e.txn->id != transaction_id) continue;
    RuleTraceRow r;
    r.seq = e.seq;
    r.time = e.time;
    r.transaction_id = e.txn->id;
    r.rule = e.rule;
    r.trigger = *e.trigger;
    r.outcome = e.outcome;
    r.depth = e.depth;
    if (!e.condition.text().empty()) {
      EvalContext ctx;
      ctx.attributes = &e.txn->attributes;
      ctx.txn_id = e.txn->id;
      ctx.txn_state = e.txn->state;
      ctx.txn_kind = e.txn->kind;
      Attributes reads;
      // The outcome is already known; only the values read are wanted.
      (void)e.condition.EvaluateCondition(ctx, &reads);
      r.reads = FormatReads(reads);
    }
    out.push_back(std::move(r));
  }
  return out;
}

void RuleSet::ClearTrace() { impl_->trace.clear(); }

RuleLimits& RuleSet::limits() { return impl_->limits; }

}  // namespace crmflow
