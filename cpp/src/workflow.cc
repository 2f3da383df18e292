// workflow.cc: the state graph of one transaction kind, its validation and
// its DOT export (see workflow.h).
//
// Declarations (states, transitions, attributes) are kept as given and the
// interned transitions are maintained eagerly, because transitions() is an
// inline accessor.  Everything derived for lookups and analysis (the
// Boost.Graph adjacency_list, name indexes, the candidate table) lives in
// Graph and is rebuilt lazily after a mutation; the rebuild is serialized
// so that concurrent readers of a registered workflow stay safe.

#include "crmflow/workflow.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/reverse_graph.hpp>

#include "crmflow/guard_overlap.h"
#include "crmflow/rules.h"

namespace crmflow {
namespace {

// Serializes lazy rebuilds across all workflows; they are rare (once per
// mutation burst) so one lock is enough.
std::mutex& ReindexMutex() {
  static std::mutex m;
  return m;
}

using BoostGraph =
    boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS,
                          boost::no_property, boost::property<
                              boost::edge_index_t, int>>;

// Marks every vertex a breadth-first search discovers.
class DiscoverVisitor : public boost::default_bfs_visitor {
 public:
  explicit DiscoverVisitor(std::vector<bool>* seen) : seen_(seen) {}
  template <typename Vertex, typename G>
  void discover_vertex(Vertex v, const G&) const {
    (*seen_)[v] = true;
  }

 private:
  std::vector<bool>* seen_;
};

std::string Quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out.empty() ? "none" : out;
}

// Escapes a name for a DOT double-quoted string.  Graphviz reads "&name;"
// in a label as an entity, so '&' is written as "&amp;" for names to show
// literally in SVG; control characters, which XML cannot hold, become
// U+FFFD.
std::string DotEscape(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      // Dropped: DOT has no use for it.
    } else if (c == '&') {
      out += "&amp;";
    } else if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
      out += "\xEF\xBF\xBD";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

int FindIndex(const std::vector<std::string>& names, std::string_view name) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return Workflow::kNoId;
}

}  // namespace

struct Workflow::Graph {
  BoostGraph graph;
  // Keys point into the workflow's state_names_/event_names_, which do not
  // change until the next mutation (which drops this Graph).
  std::unordered_map<std::string_view, int> state_ids;
  std::unordered_map<std::string_view, int> event_ids;
  // candidates[state * event_count + event], declaration order.
  std::vector<std::vector<const Transition*>> candidates;
  int event_count = 0;
};

namespace {
const std::vector<const Workflow::Transition*>& EmptyCandidates() {
  static const std::vector<const Workflow::Transition*> empty;
  return empty;
}
}  // namespace

Workflow::Workflow(std::string name, int version)
    : name_(std::move(name)), version_(version) {}
Workflow::~Workflow() = default;
Workflow::Workflow(Workflow&& o) noexcept
    : name_(std::move(o.name_)),
      version_(o.version_),
      state_names_(std::move(o.state_names_)),
      roles_(std::move(o.roles_)),
      event_names_(std::move(o.event_names_)),
      specs_(std::move(o.specs_)),
      attributes_(std::move(o.attributes_)),
      transitions_(std::move(o.transitions_)),
      graph_(),
      dirty_(true) {
  // The moved-from Graph's string_view keys and Transition pointers refer
  // to buffers that moved with the vectors, but rebuilding is cheap and
  // removes any doubt.
  o.graph_.reset();
  o.dirty_ = true;
}
Workflow& Workflow::operator=(Workflow&& o) noexcept {
  if (this == &o) return *this;
  name_ = std::move(o.name_);
  version_ = o.version_;
  state_names_ = std::move(o.state_names_);
  roles_ = std::move(o.roles_);
  event_names_ = std::move(o.event_names_);
  specs_ = std::move(o.specs_);
  attributes_ = std::move(o.attributes_);
  transitions_ = std::move(o.transitions_);
  graph_.reset();
  dirty_ = true;
  o.graph_.reset();
  o.dirty_ = true;
  return *this;
}
Workflow::Workflow(const Workflow& o)
    : name_(o.name_),
      version_(o.version_),
      state_names_(o.state_names_),
      roles_(o.roles_),
      event_names_(o.event_names_),
      specs_(o.specs_),
      attributes_(o.attributes_),
      transitions_(o.transitions_),
      graph_(),
      dirty_(true) {}
Workflow& Workflow::operator=(const Workflow& o) {
  if (this == &o) return *this;
  Workflow copy(o);
  *this = std::move(copy);
  return *this;
}

Status Workflow::AddState(std::string name, StateRole role) {
  if (name.empty() || !IsValidUtf8(name)) {
    return Status(Code::kInvalidArgument,
                  "workflow " + Quote(name_) +
                      ": invalid state name (expected non-empty UTF-8)");
  }
  if (FindIndex(state_names_, name) != kNoId) {
    return Status(Code::kAlreadyExists, "workflow " + Quote(name_) +
                                            ": state " + Quote(name) +
                                            " already declared");
  }
  int id = static_cast<int>(state_names_.size());
  // Transitions declared before their states pick up the new id.
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (specs_[i].source == name) transitions_[i].source = id;
    if (specs_[i].target == name) transitions_[i].target = id;
  }
  state_names_.push_back(std::move(name));
  roles_.push_back(role);
  dirty_ = true;
  graph_.reset();
  return Status::Ok();
}

Status Workflow::AddTransition(TransitionSpec spec) {
  if (spec.event.empty() || !IsValidUtf8(spec.event)) {
    return Status(Code::kInvalidArgument,
                  "workflow " + Quote(name_) + ": transition " +
                      Quote(spec.source) + " -> " + Quote(spec.target) +
                      ": invalid event name (expected non-empty UTF-8)");
  }
  if (spec.internal && spec.source != spec.target) {
    return Status(Code::kInvalidArgument,
                  "workflow " + Quote(name_) + ": transition " +
                      Quote(spec.event) + " from " + Quote(spec.source) +
                      " to " + Quote(spec.target) +
                      ": internal (expected source equal to target)");
  }
  int event = FindIndex(event_names_, spec.event);
  if (event == kNoId) {
    event = static_cast<int>(event_names_.size());
    event_names_.push_back(spec.event);
  }
  Transition t;
  t.index = static_cast<int>(specs_.size());
  t.event = event;
  t.source = FindIndex(state_names_, spec.source);
  t.target = FindIndex(state_names_, spec.target);
  t.guards = spec.guards;
  t.actions = spec.actions;
  t.internal = spec.internal;
  transitions_.push_back(std::move(t));
  specs_.push_back(std::move(spec));
  dirty_ = true;
  graph_.reset();
  return Status::Ok();
}

Status Workflow::AddAttribute(AttributeSpec spec) {
  if (spec.name.empty() || !IsValidUtf8(spec.name)) {
    return Status(Code::kInvalidArgument,
                  "workflow " + Quote(name_) +
                      ": invalid attribute name (expected non-empty UTF-8)");
  }
  for (const auto& a : attributes_) {
    if (a.name == spec.name) {
      return Status(Code::kAlreadyExists, "workflow " + Quote(name_) +
                                              ": attribute " +
                                              Quote(spec.name) +
                                              " already declared");
    }
  }
  attributes_.push_back(std::move(spec));
  return Status::Ok();
}

void Workflow::Reindex() const {
  // Double-checked: the flag is read atomically so concurrent readers of a
  // clean workflow never touch the mutex.
  if (!std::atomic_ref<bool>(dirty_).load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(ReindexMutex());
  if (!std::atomic_ref<bool>(dirty_).load(std::memory_order_relaxed)) return;
  auto g = std::make_unique<Graph>();
  int n = static_cast<int>(state_names_.size());
  g->graph = BoostGraph(n);
  g->event_count = static_cast<int>(event_names_.size());
  for (int i = 0; i < n; ++i) g->state_ids.emplace(state_names_[i], i);
  for (int i = 0; i < g->event_count; ++i) {
    g->event_ids.emplace(event_names_[i], i);
  }
  g->candidates.assign(static_cast<size_t>(n) * g->event_count, {});
  for (const Transition& t : transitions_) {
    if (t.source == kNoId || t.target == kNoId) continue;
    boost::add_edge(t.source, t.target, t.index, g->graph);
    g->candidates[static_cast<size_t>(t.source) * g->event_count + t.event]
        .push_back(&t);
  }
  graph_ = std::move(g);
  std::atomic_ref<bool>(dirty_).store(false, std::memory_order_release);
}

Problem::Severity ProblemSeverity(Problem::Kind kind) {
  switch (kind) {
    case Problem::Kind::kAmbiguousTransition:
    case Problem::Kind::kOverlappingGuards:
      return Problem::Severity::kWarning;
    case Problem::Kind::kTerminalHasExit:
    case Problem::Kind::kUnprovenExclusive:
      return Problem::Severity::kInfo;
    default:
      return Problem::Severity::kError;
  }
}

const char* ProblemKindName(Problem::Kind kind) {
  switch (kind) {
    case Problem::Kind::kNoInitialState: return "no_initial_state";
    case Problem::Kind::kSeveralInitialStates: return "several_initial_states";
    case Problem::Kind::kNoTerminalState: return "no_terminal_state";
    case Problem::Kind::kUnreachableState: return "unreachable_state";
    case Problem::Kind::kDeadEnd: return "dead_end";
    case Problem::Kind::kAmbiguousTransition: return "ambiguous_transition";
    case Problem::Kind::kUnknownName: return "unknown_name";
    case Problem::Kind::kTerminalHasExit: return "terminal_has_exit";
    case Problem::Kind::kOverlappingGuards: return "overlapping_guards";
    case Problem::Kind::kUnprovenExclusive: return "unproven_exclusive";
    case Problem::Kind::kInvalidGuard: return "invalid_guard";
  }
  return "unknown";
}

const char* ProblemSeverityName(Problem::Severity severity) {
  switch (severity) {
    case Problem::Severity::kError: return "error";
    case Problem::Severity::kWarning: return "warning";
    case Problem::Severity::kInfo: return "info";
  }
  return "error";
}

namespace {

// Renders the guards of a transition for a message: `(expr: a < 1, vip)`.
std::string GuardList(const std::vector<std::string>& guards) {
  std::string out;
  for (const std::string& g : guards) out += (out.empty() ? "" : ", ") + g;
  return "(" + out + ")";
}

}  // namespace

template <typename Add>
void Workflow::CheckGuards(const Add& add) const {
  // Each transition's guards as one condition: the conjunction of its
  // guards, with anything but an "expr:" guard opaque.
  std::vector<std::vector<ConditionTerm>> dnf(transitions_.size());
  std::vector<bool> done(transitions_.size(), false);
  auto condition = [&](const Transition& t) -> std::vector<ConditionTerm>& {
    std::vector<ConditionTerm>& form = dnf[t.index];
    if (done[t.index]) return form;
    done[t.index] = true;
    form = {{}};
    for (const std::string& g : t.guards) {
      std::vector<ConditionTerm> part;
      if (IsExpressionGuard(g)) {
        // A broken guard is reported below and its pairs skipped.
        auto e = ParseExpressionGuard(g, *this);
        if (e.ok()) part = e->ToDnf();
      } else {
        ConditionAtom a;
        a.opaque = true;
        a.source = "guard " + Quote(g);
        part = {{std::move(a)}};
      }
      // Guards that together expand to more alternatives than this are
      // not analysed (the pairwise check below would take too long): the
      // transition's condition becomes opaque.
      constexpr size_t kMaxTerms = 256;
      if (form.size() * part.size() > kMaxTerms) {
        ConditionAtom a;
        a.opaque = true;
        a.source = "guards with more than " + std::to_string(kMaxTerms) +
                   " alternatives together";
        form = {{std::move(a)}};
        break;
      }
      std::vector<ConditionTerm> next;
      for (const ConditionTerm& x : form) {
        for (const ConditionTerm& y : part) {
          ConditionTerm both = x;
          both.insert(both.end(), y.begin(), y.end());
          next.push_back(std::move(both));
        }
      }
      form = std::move(next);
    }
    return form;
  };

  // Broken expression guards, once per transition and guard.
  std::vector<bool> broken(transitions_.size(), false);
  for (const Transition& t : transitions_) {
    for (const std::string& g : t.guards) {
      if (!IsExpressionGuard(g)) continue;
      auto e = ParseExpressionGuard(g, *this);
      if (!e.ok()) {
        broken[t.index] = true;
        add(Problem::Kind::kInvalidGuard, StateName(t.source),
            event_names_[t.event], e.status().message());
      }
    }
  }

  for (const auto& cands : graph_->candidates) {
    for (size_t j = 1; j < cands.size(); ++j) {
      const Transition* later = cands[j];
      if (later->guards.empty() || broken[later->index]) continue;
      for (size_t i = 0; i < j; ++i) {
        const Transition* first = cands[i];
        // An unguarded earlier candidate is kAmbiguousTransition already.
        if (first->guards.empty()) break;
        if (broken[first->index]) continue;
        std::string where = "state " + Quote(state_names_[first->source]) +
                            ": event " + Quote(event_names_[first->event]) +
                            ": ";
        std::string pair = "transition #" + std::to_string(first->index + 1) +
                           " to " + Quote(state_names_[first->target]) +
                           " " + GuardList(first->guards) +
                           " and transition #" +
                           std::to_string(later->index + 1) + " to " +
                           Quote(state_names_[later->target]) + " " +
                           GuardList(later->guards);
        OverlapResult r;
        if (first->guards == later->guards) {
          // The same guards decide the same way: the later never fires.
          r.kind = OverlapResult::Kind::kOverlap;
          r.witness = "whenever they pass";
        } else {
          r = AnalyseOverlap(condition(*first), condition(*later));
        }
        if (r.kind == OverlapResult::Kind::kOverlap) {
          add(Problem::Kind::kOverlappingGuards,
              state_names_[first->source], event_names_[first->event],
              where + "guards of " + pair + " can both hold, e.g. " +
                  r.witness + " (the first declared wins)");
        } else if (r.kind == OverlapResult::Kind::kUnknown) {
          add(Problem::Kind::kUnprovenExclusive,
              state_names_[first->source], event_names_[first->event],
              where + "cannot prove " + pair + " exclusive (cannot analyse " +
                  r.unknown + ")");
        }
      }
    }
  }
}

std::vector<Problem> Workflow::Validate() const {
  Reindex();
  std::vector<Problem> out;
  auto add = [&](Problem::Kind kind, std::string state, std::string event,
                 std::string message) {
    out.push_back(Problem{kind, std::move(state), std::move(event),
                          std::move(message), ProblemSeverity(kind)});
  };
  const std::string where = "workflow " + Quote(name_);
  int n = static_cast<int>(state_names_.size());

  std::vector<int> initials, terminals;
  for (int i = 0; i < n; ++i) {
    if (roles_[i] == StateRole::kInitial) initials.push_back(i);
    if (roles_[i] == StateRole::kTerminal) terminals.push_back(i);
  }
  if (initials.empty()) {
    add(Problem::Kind::kNoInitialState, "", "",
        where + ": no initial state (expected exactly one)");
  }
  for (size_t i = 1; i < initials.size(); ++i) {
    add(Problem::Kind::kSeveralInitialStates, state_names_[initials[i]], "",
        where + ": state " + Quote(state_names_[initials[i]]) +
            " is a second initial state (expected only " +
            Quote(state_names_[initials[0]]) + ")");
  }
  if (terminals.empty()) {
    add(Problem::Kind::kNoTerminalState, "", "",
        where + ": no terminal state (expected at least one)");
  }
  for (size_t i = 0; i < specs_.size(); ++i) {
    const TransitionSpec& s = specs_[i];
    auto unknown = [&](const std::string& name) {
      add(Problem::Kind::kUnknownName, name, s.event,
          "transition " + Quote(s.event) + " names undeclared state " +
              Quote(name) + " (declared: " + JoinNames(state_names_) + ")");
    };
    if (transitions_[i].source == kNoId) unknown(s.source);
    // The same unknown name on both ends is reported once.
    if (transitions_[i].target == kNoId && s.target != s.source) {
      unknown(s.target);
    }
  }

  if (!initials.empty()) {
    std::vector<bool> seen(n, false);
    boost::breadth_first_search(
        graph_->graph, boost::vertex(initials[0], graph_->graph),
        boost::visitor(DiscoverVisitor(&seen)));
    for (int i = 0; i < n; ++i) {
      if (!seen[i]) {
        add(Problem::Kind::kUnreachableState, state_names_[i], "",
            "state " + Quote(state_names_[i]) +
                " is unreachable from initial state " +
                Quote(state_names_[initials[0]]));
      }
    }
  }
  if (!terminals.empty()) {
    std::vector<bool> seen(n, false);
    auto reversed = boost::make_reverse_graph(graph_->graph);
    for (int t : terminals) {
      if (seen[t]) continue;
      // Each search resets its own colours; `seen` accumulates.
      boost::breadth_first_search(reversed, boost::vertex(t, graph_->graph),
                                  boost::visitor(DiscoverVisitor(&seen)));
    }
    for (int i = 0; i < n; ++i) {
      if (!seen[i]) {
        add(Problem::Kind::kDeadEnd, state_names_[i], "",
            "state " + Quote(state_names_[i]) +
                " is a dead end (no path to a terminal state)");
      }
    }
  }

  // Ambiguity: a later candidate for the same (state, event) can never fire
  // when an earlier one has no guards.
  for (const auto& cands : graph_->candidates) {
    const Transition* unguarded = nullptr;
    for (const Transition* t : cands) {
      if (unguarded != nullptr) {
        add(Problem::Kind::kAmbiguousTransition, state_names_[t->source],
            event_names_[t->event],
            "state " + Quote(state_names_[t->source]) + ": event " +
                Quote(event_names_[t->event]) +
                " leaves twice and transition #" +
                std::to_string(t->index + 1) + " to " +
                Quote(state_names_[t->target]) +
                " can never fire (earlier transition #" +
                std::to_string(unguarded->index + 1) + " to " +
                Quote(state_names_[unguarded->target]) + " has no guards)");
      } else if (t->guards.empty()) {
        unguarded = t;
      }
    }
  }
  CheckGuards(add);
  for (int t : terminals) {
    if (boost::out_degree(t, graph_->graph) > 0) {
      add(Problem::Kind::kTerminalHasExit, state_names_[t], "",
          "terminal state " + Quote(state_names_[t]) +
              " has outgoing transitions (informational)");
    }
  }
  return out;
}

Status Workflow::CheckValid() const {
  std::string msg;
  for (const Problem& p : Validate()) {
    // Notes do not make a workflow invalid: reopening a closed ticket is a
    // legitimate design, and a Python guard cannot be analysed.
    if (p.severity == Problem::Severity::kInfo) continue;
    if (!msg.empty()) msg += "; ";
    msg += p.message;
  }
  if (msg.empty()) return Status::Ok();
  return Status(Code::kValidationError, msg);
}

int Workflow::StateId(std::string_view name) const {
  Reindex();
  auto it = graph_->state_ids.find(name);
  return it == graph_->state_ids.end() ? kNoId : it->second;
}

int Workflow::EventId(std::string_view name) const {
  Reindex();
  auto it = graph_->event_ids.find(name);
  return it == graph_->event_ids.end() ? kNoId : it->second;
}

const std::string& Workflow::StateName(int id) const {
  static const std::string empty;
  if (id < 0 || id >= static_cast<int>(state_names_.size())) return empty;
  return state_names_[id];
}

const std::string& Workflow::EventName(int id) const {
  static const std::string empty;
  if (id < 0 || id >= static_cast<int>(event_names_.size())) return empty;
  return event_names_[id];
}

StateRole Workflow::Role(int state) const {
  if (state < 0 || state >= static_cast<int>(roles_.size())) {
    return StateRole::kNormal;
  }
  return roles_[state];
}

int Workflow::initial_state() const {
  for (size_t i = 0; i < roles_.size(); ++i) {
    if (roles_[i] == StateRole::kInitial) return static_cast<int>(i);
  }
  return kNoId;
}

int Workflow::state_count() const {
  return static_cast<int>(state_names_.size());
}

int Workflow::event_count() const {
  return static_cast<int>(event_names_.size());
}

const AttributeSpec* Workflow::FindAttributeSpec(std::string_view name) const {
  for (const auto& a : attributes_) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

const std::vector<const Workflow::Transition*>& Workflow::Candidates(
    int state, int event) const {
  Reindex();
  if (state < 0 || event < 0 || state >= state_count() ||
      event >= graph_->event_count) {
    return EmptyCandidates();
  }
  return graph_->candidates[static_cast<size_t>(state) * graph_->event_count +
                            event];
}

std::vector<std::string> Workflow::EventsFrom(int state) const {
  std::vector<std::string> out;
  std::vector<bool> seen(event_names_.size(), false);
  for (const Transition& t : transitions_) {
    if (t.source != state || state == kNoId || t.target == kNoId) continue;
    if (seen[t.event]) continue;
    seen[t.event] = true;
    out.push_back(event_names_[t.event]);
  }
  return out;
}

std::string Workflow::ToDot() const {
  std::string out = "digraph " + DotEscape(name_) + " {\n";
  for (size_t i = 0; i < state_names_.size(); ++i) {
    out += "  " + DotEscape(state_names_[i]);
    if (roles_[i] == StateRole::kInitial) {
      out += " [shape=box, style=bold]";
    } else if (roles_[i] == StateRole::kTerminal) {
      out += " [shape=doublecircle]";
    }
    out += ";\n";
  }
  for (const TransitionSpec& s : specs_) {
    out += "  " + DotEscape(s.source) + " -> " + DotEscape(s.target) +
           " [label=" + DotEscape(s.event);
    if (s.internal) out += ", style=dashed";
    out += "];\n";
  }
  out += "}\n";
  return out;
}

}  // namespace crmflow
