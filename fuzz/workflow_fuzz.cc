// workflow_fuzz.cc: libFuzzer target for workflow definitions (workflow.h)
// and their registration and firing in the engine (engine.h).
//
// Workflows reach the core as JSON definitions (the bundled templates in
// python/crmflow/templates, Workflow.from_json in Python) which the Python
// side turns into Workflow::AddState / AddAttribute / AddTransition calls.
// This target does the same in C++: the input is a JSON document (parsed
// here by a small reader, since the core has no JSON parser) mapped onto
// the builder with the same keys and the same rules as from_dict ("from"
// may be a list).  Bytes after the JSON document drive a walk: which
// allowed event to fire next.
//
// Checks, besides "no crash, no leak, no undefined behaviour":
//   - builder errors are the documented codes (kAlreadyExists for a
//     duplicate, kInvalidArgument otherwise), and name lookups invert;
//   - Validate() is deterministic, equal on a copy, and its unreachable
//     states, dead ends and unknown names equal those found here by a
//     separate breadth-first search over the declared transitions;
//   - Candidates() and EventsFrom() list exactly the declared transitions
//     from a state, in declaration order;
//   - a workflow the engine accepts can be created and walked: each
//     accepted event moves the transaction to the target of the first
//     candidate whose guards pass (named guards here pass when their name
//     has an even length) and adds one to the version; a refused one
//     changes nothing.

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/engine.h"
#include "crmflow/workflow.h"
#include "fuzz_util.h"

namespace {

using crmflow::Code;
using crmflow::Problem;
using crmflow::Status;
using crmflow::Workflow;
using crmflow_fuzz::Check;
using crmflow_fuzz::Fail;

// --- A small JSON reader: enough for workflow definitions. ----------------

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool b = false;
  double number = 0;
  std::string text;
  std::vector<Json> items;
  // An object's members: keys[i] names values[i].
  std::vector<std::string> keys;
  std::vector<Json> values;

  const Json* Get(std::string_view key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &values[i];
    }
    return nullptr;
  }
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}
  bool Read(Json* out) { return Value(out, 0); }
  size_t pos() const { return p_; }

 private:
  void Blank() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' ||
                              s_[p_] == '\r' || s_[p_] == '\t')) {
      ++p_;
    }
  }
  bool Literal(std::string_view word) {
    if (s_.substr(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }
  bool String(std::string* out) {
    if (p_ >= s_.size() || s_[p_] != '"') return false;
    ++p_;
    while (p_ < s_.size() && s_[p_] != '"') {
      char c = s_[p_++];
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (p_ >= s_.size()) return false;
      char e = s_[p_++];
      switch (e) {
        case 'n': out->push_back('\n'); break;
        case 't': out->push_back('\t'); break;
        case 'r': out->push_back('\r'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'u': {
          if (p_ + 4 > s_.size()) return false;
          unsigned cp = 0;
          for (int i = 0; i < 4; ++i) {
            char h = s_[p_++];
            int v = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
            if (v < 0) return false;
            cp = cp * 16 + v;
          }
          // Lone surrogates become U+FFFD; the builder sees UTF-8 only.
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
          if (cp < 0x80) {
            out->push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          } else {
            out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          }
          break;
        }
        default: out->push_back(e);
      }
    }
    if (p_ >= s_.size()) return false;
    ++p_;
    return true;
  }
  bool Value(Json* out, int depth) {
    if (depth > 32) return false;
    Blank();
    if (p_ >= s_.size()) return false;
    char c = s_[p_];
    if (c == '{') {
      out->kind = Json::kObject;
      ++p_;
      Blank();
      if (p_ < s_.size() && s_[p_] == '}') return ++p_, true;
      while (true) {
        Blank();
        std::string key;
        if (!String(&key)) return false;
        Blank();
        if (p_ >= s_.size() || s_[p_] != ':') return false;
        ++p_;
        out->keys.push_back(std::move(key));
        out->values.emplace_back();
        if (!Value(&out->values.back(), depth + 1)) return false;
        Blank();
        if (p_ < s_.size() && s_[p_] == ',') { ++p_; continue; }
        if (p_ < s_.size() && s_[p_] == '}') return ++p_, true;
        return false;
      }
    }
    if (c == '[') {
      out->kind = Json::kArray;
      ++p_;
      Blank();
      if (p_ < s_.size() && s_[p_] == ']') return ++p_, true;
      while (true) {
        out->items.emplace_back();
        if (!Value(&out->items.back(), depth + 1)) return false;
        Blank();
        if (p_ < s_.size() && s_[p_] == ',') { ++p_; continue; }
        if (p_ < s_.size() && s_[p_] == ']') return ++p_, true;
        return false;
      }
    }
    if (c == '"') {
      out->kind = Json::kString;
      return String(&out->text);
    }
    if (Literal("true")) return out->kind = Json::kBool, out->b = true, true;
    if (Literal("false")) return out->kind = Json::kBool, true;
    if (Literal("null")) return true;
    size_t start = p_;
    while (p_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[p_])) ||
                              s_[p_] == '-' || s_[p_] == '+' ||
                              s_[p_] == '.' || s_[p_] == 'e' ||
                              s_[p_] == 'E')) {
      ++p_;
    }
    if (p_ == start) return false;
    out->kind = Json::kNumber;
    out->number = std::strtod(std::string(s_.substr(start, p_ - start)).c_str(),
                              nullptr);
    return true;
  }

  std::string_view s_;
  size_t p_ = 0;
};

// --- The definition, as Workflow.from_dict reads it. ----------------------

std::string Str(const Json* j) {
  return j != nullptr && j->kind == Json::kString ? j->text : std::string();
}

std::vector<std::string> Names(const Json* j) {
  std::vector<std::string> out;
  if (j == nullptr) return out;
  if (j->kind == Json::kString) return {j->text};
  for (const Json& item : j->items) {
    if (item.kind == Json::kString) out.push_back(item.text);
  }
  return out;
}

bool ParseRole(const std::string& s, crmflow::StateRole* role) {
  if (s == "normal" || s.empty()) *role = crmflow::StateRole::kNormal;
  else if (s == "initial") *role = crmflow::StateRole::kInitial;
  else if (s == "terminal") *role = crmflow::StateRole::kTerminal;
  else return false;
  return true;
}

void CheckBuildError(const Status& s, bool duplicate) {
  if (s.ok()) return;
  Check(s.code() == (duplicate ? Code::kAlreadyExists : Code::kInvalidArgument),
        "unexpected builder error: " + s.ToString());
  Check(!s.message().empty(), "builder error without a message");
}

// States reachable from `from` over the declared edges (forward or
// reversed), found independently of Workflow.
std::vector<bool> Reach(const Workflow& wf, const std::vector<int>& from,
                        bool reverse) {
  int n = wf.state_count();
  std::vector<bool> seen(n, false);
  std::vector<int> queue;
  for (int s : from) {
    if (!seen[s]) seen[s] = true, queue.push_back(s);
  }
  for (size_t q = 0; q < queue.size(); ++q) {
    for (const Workflow::Transition& t : wf.transitions()) {
      if (t.source == Workflow::kNoId || t.target == Workflow::kNoId) continue;
      int a = reverse ? t.target : t.source;
      int b = reverse ? t.source : t.target;
      if (a == queue[q] && !seen[b]) seen[b] = true, queue.push_back(b);
    }
  }
  return seen;
}

void CheckValidation(const Workflow& wf) {
  std::vector<Problem> problems = wf.Validate();
  std::vector<Problem> again = wf.Validate();
  Workflow copy(wf);
  std::vector<Problem> of_copy = copy.Validate();
  Check(problems.size() == again.size() && problems.size() == of_copy.size(),
        "Validate() is not deterministic");
  for (size_t i = 0; i < problems.size(); ++i) {
    Check(problems[i].message == again[i].message &&
              problems[i].message == of_copy[i].message,
          "Validate() is not deterministic");
  }

  int n = wf.state_count();
  std::vector<int> initials, terminals;
  for (int s = 0; s < n; ++s) {
    Check(wf.StateId(wf.StateName(s)) == s, "state lookup does not invert");
    if (wf.Role(s) == crmflow::StateRole::kInitial) initials.push_back(s);
    if (wf.Role(s) == crmflow::StateRole::kTerminal) terminals.push_back(s);
  }
  for (int e = 0; e < wf.event_count(); ++e) {
    Check(wf.EventId(wf.EventName(e)) == e, "event lookup does not invert");
  }
  std::set<std::string> unreachable, dead, unknown;
  if (!initials.empty()) {
    std::vector<bool> seen = Reach(wf, {initials[0]}, false);
    for (int s = 0; s < n; ++s) {
      if (!seen[s]) unreachable.insert(wf.StateName(s));
    }
  }
  if (!terminals.empty()) {
    std::vector<bool> seen = Reach(wf, terminals, true);
    for (int s = 0; s < n; ++s) {
      if (!seen[s]) dead.insert(wf.StateName(s));
    }
  }
  std::set<std::string> got_unreachable, got_dead;
  size_t got_unknown = 0, want_unknown = 0;
  for (const Workflow::Transition& t : wf.transitions()) {
    want_unknown += t.source == Workflow::kNoId;
    want_unknown += t.target == Workflow::kNoId && t.source != Workflow::kNoId;
  }
  for (const Problem& p : problems) {
    Check(!p.message.empty(), "problem without a message");
    Check(p.severity == crmflow::ProblemSeverity(p.kind),
          "problem with the wrong severity: " + p.message);
    if (p.kind == Problem::Kind::kUnreachableState) {
      got_unreachable.insert(p.state);
    }
    if (p.kind == Problem::Kind::kDeadEnd) got_dead.insert(p.state);
    if (p.kind == Problem::Kind::kUnknownName) ++got_unknown;
  }
  Check(got_unreachable == unreachable, "unreachable states differ");
  Check(got_dead == dead, "dead ends differ");
  // Both ends unknown and equal is reported once, so only a bound holds
  // without knowing the declared names of both ends.
  Check(got_unknown >= want_unknown, "unknown names not all reported");
  Status valid = wf.CheckValid();
  if (valid.ok()) {
    for (const Problem& p : problems) {
      Check(p.severity == Problem::Severity::kInfo,
            "CheckValid accepts: " + p.message);
    }
  } else {
    Check(valid.code() == Code::kValidationError && !problems.empty(),
          "CheckValid refuses without a problem: " + valid.ToString());
  }

  for (int s = 0; s < n; ++s) {
    std::vector<std::string> events;
    // A transition to an undeclared state is in neither list (it is
    // reported by Validate and cannot fire).
    for (const Workflow::Transition& t : wf.transitions()) {
      if (t.source != s || t.target == Workflow::kNoId) continue;
      const std::string& name = wf.EventName(t.event);
      if (std::find(events.begin(), events.end(), name) == events.end()) {
        events.push_back(name);
      }
    }
    Check(wf.EventsFrom(s) == events, "EventsFrom differs");
    for (int e = 0; e < wf.event_count(); ++e) {
      std::vector<int> want;
      for (const Workflow::Transition& t : wf.transitions()) {
        if (t.source == s && t.event == e && t.target != Workflow::kNoId) {
          want.push_back(t.index);
        }
      }
      std::vector<int> got;
      for (const Workflow::Transition* t : wf.Candidates(s, e)) {
        got.push_back(t->index);
      }
      Check(got == want, "Candidates differ");
    }
  }
  std::string dot = wf.ToDot();
  Check(dot.find('{') != std::string::npos && dot.back() != '{',
        "ToDot is not a graph");
}

bool GuardPasses(const std::string& name) { return name.size() % 2 == 0; }

void Walk(Workflow wf, const std::string& definition, std::string_view steps) {
  auto engine = crmflow::Engine::Open(crmflow::EngineOptions{
      "", [] { return crmflow::Timestamp{1767225600000000}; }, {}});
  if (!engine.ok()) Fail("cannot open an engine: " + engine.status().ToString());
  crmflow::Engine& en = **engine;
  std::set<std::string> guards, actions;
  for (const Workflow::Transition& t : wf.transitions()) {
    for (const std::string& g : t.guards) {
      if (g.compare(0, 5, "expr:") != 0) guards.insert(g);
    }
    for (const std::string& a : t.actions) actions.insert(a);
  }
  for (const std::string& g : guards) {
    en.RegisterGuard(g, [pass = GuardPasses(g)](const crmflow::CallContext&,
                                                std::string*) { return pass; });
  }
  for (const std::string& a : actions) {
    en.RegisterAction(a, [](const crmflow::CallContext&) {});
  }
  std::string kind = wf.name();
  Status reg = en.Register(std::move(wf), definition);
  if (!reg.ok()) {
    Check(reg.code() == Code::kValidationError ||
              reg.code() == Code::kInvalidArgument,
          "unexpected registration error: " + reg.ToString());
    return;
  }
  const Workflow& w = *en.FindWorkflow(kind);
  crmflow::CreateRequest req;
  req.kind = kind;
  req.id = "T-1";
  for (const crmflow::AttributeSpec& a : w.attributes()) {
    if (!a.required) continue;
    crmflow::Value v;
    switch (a.type) {
      case crmflow::ValueType::kText: v = crmflow::Value::Text("x"); break;
      case crmflow::ValueType::kInteger: v = crmflow::Value::Integer(1); break;
      case crmflow::ValueType::kDecimal:
        v = crmflow::Value::Dec(crmflow::Decimal::FromUnits(100, 2));
        break;
      case crmflow::ValueType::kTimestamp:
        v = crmflow::Value::Time(crmflow::Timestamp{0});
        break;
      case crmflow::ValueType::kDuration:
        v = crmflow::Value::Span(crmflow::Duration{60000000});
        break;
      case crmflow::ValueType::kBoolean: v = crmflow::Value::Bool(true); break;
      default: break;
    }
    req.attributes.emplace_back(a.name, v);
  }
  auto created = en.Create(req);
  if (!created.ok()) {
    Check(created.status().code() == Code::kInvalidArgument,
          "create failed: " + created.status().ToString());
    return;
  }
  std::string state = created->state;
  int64_t version = created->version;
  Check(state == w.StateName(w.initial_state()), "not created in the initial "
                                                 "state");
  for (size_t i = 0; i < steps.size() && i < 16; ++i) {
    auto allowed = en.AllowedEvents("T-1");
    if (!allowed.ok()) Fail("AllowedEvents: " + allowed.status().ToString());
    int sid = w.StateId(state);
    Check(*allowed == w.EventsFrom(sid), "AllowedEvents differs");
    // One step in eight fires an event the state does not allow.
    std::string event =
        allowed->empty() || static_cast<uint8_t>(steps[i]) % 8 == 7
            ? std::string("no-such-event")
            : (*allowed)[static_cast<uint8_t>(steps[i]) % allowed->size()];
    // The expected outcome: the first candidate whose guards all pass;
    // unknown when an expression guard is involved.
    const Workflow::Transition* want = nullptr;
    bool known = true;
    int eid = w.EventId(event);
    if (eid != Workflow::kNoId) {
      for (const Workflow::Transition* t : w.Candidates(sid, eid)) {
        bool pass = true;
        for (const std::string& g : t->guards) {
          if (g.compare(0, 5, "expr:") == 0) known = false;
          pass = pass && GuardPasses(g);
        }
        if (known && pass) {
          want = t;
          break;
        }
      }
    }
    auto fired = en.Fire("T-1", event, {});
    auto now = en.Get("T-1");
    if (!now.ok()) Fail("Get: " + now.status().ToString());
    if (fired.ok()) {
      Check(std::string(fired->state) == now->state, "fired state not stored");
      Check(now->version == version + 1, "version did not step by one");
      if (known) {
        Check(want != nullptr && now->state == w.StateName(want->target),
              "event " + event + " went to " + now->state);
      }
    } else {
      Check(fired.status().code() == Code::kNotAllowed ||
                fired.status().code() == Code::kGuardRefused ||
                fired.status().code() == Code::kInvalidArgument,
            "fire failed: " + fired.status().ToString());
      Check(now->state == state && now->version == version,
            "a refused event changed the transaction");
      if (known) Check(want == nullptr, "event " + event + " was refused");
    }
    state = now->state;
    version = now->version;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 32768) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  JsonReader reader(text);
  Json def;
  if (!reader.Read(&def) || def.kind != Json::kObject) return 0;
  std::string definition(text.substr(0, reader.pos()));
  std::string_view steps = text.substr(reader.pos());

  const Json* version = def.Get("version");
  int v = 1;
  if (version != nullptr && version->kind == Json::kNumber &&
      version->number >= -1e9 && version->number <= 1e9) {
    v = static_cast<int>(version->number);
  }
  Workflow wf(Str(def.Get("name")), v);
  std::set<std::string> states, attributes;
  if (const Json* list = def.Get("states")) {
    for (const Json& s : list->items) {
      crmflow::StateRole role;
      if (!ParseRole(Str(s.Get("role")), &role)) continue;
      std::string name = Str(s.Get("name"));
      bool dup = states.count(name) > 0;
      Status st = wf.AddState(name, role);
      CheckBuildError(st, dup);
      if (dup) Check(!st.ok(), "duplicate state accepted");
      if (st.ok()) states.insert(name);
    }
  }
  if (const Json* list = def.Get("attributes")) {
    for (const Json& a : list->items) {
      std::string type_name = Str(a.Get("type"));
      auto type = crmflow::ParseValueType(type_name.empty() ? "text"
                                                             : type_name);
      if (!type.ok()) continue;
      const Json* req = a.Get("required");
      std::string name = Str(a.Get("name"));
      bool dup = attributes.count(name) > 0;
      Status st = wf.AddAttribute(crmflow::AttributeSpec{
          name, *type, req != nullptr && req->kind == Json::kBool && req->b});
      CheckBuildError(st, dup);
      if (dup) Check(!st.ok(), "duplicate attribute accepted");
      if (st.ok()) attributes.insert(name);
    }
  }
  if (const Json* list = def.Get("transitions")) {
    for (const Json& t : list->items) {
      const Json* internal = t.Get("internal");
      for (const std::string& source : Names(t.Get("from"))) {
        crmflow::TransitionSpec spec{Str(t.Get("event")), source,
                                     Str(t.Get("to")), Names(t.Get("guards")),
                                     Names(t.Get("actions")),
                                     internal != nullptr &&
                                         internal->kind == Json::kBool &&
                                         internal->b};
        bool bad_internal = spec.internal && spec.source != spec.target;
        Status st = wf.AddTransition(std::move(spec));
        CheckBuildError(st, false);
        if (bad_internal) Check(!st.ok(), "bad internal transition accepted");
      }
    }
  }
  CheckValidation(wf);
  if (wf.state_count() <= 64 && wf.transitions().size() <= 256) {
    Walk(std::move(wf), definition, steps);
  }
  return 0;
}
