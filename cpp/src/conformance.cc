// conformance.cc: token-free replay of an EventLog against a Workflow,
// discovery of a draft Workflow from the directly-follows graph, and the
// diff of two workflows (see conformance.h).

#include "crmflow/conformance.h"

#include <algorithm>
#include <deque>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "crmflow/analytics.h"

namespace crmflow {
namespace {

// What one log activity resolves to, computed once per distinct activity
// so that the per-event loop only reads integers.
struct Resolved {
  bool ignore = false;
  int id = Workflow::kNoId;  // workflow event or state id
  std::string name;          // after mapping
};

// Lists `names` as `a, b or c` for messages, at most 10 of them.
std::string ExpectedList(const std::vector<std::string>& names) {
  std::string out;
  const size_t n = std::min<size_t>(names.size(), 10);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += (i + 1 == n && names.size() <= 10) ? " or " : ", ";
    out += names[i];
  }
  if (names.size() > 10) out += ", ...";
  return out;
}

bool Replayable(Lifecycle lc, bool complete_only) {
  if (!complete_only) return true;
  return lc == Lifecycle::kNone || lc == Lifecycle::kComplete;
}

}  // namespace

const char* DeviationKindName(DeviationKind kind) {
  switch (kind) {
    case DeviationKind::kNotAllowed:
      return "not_allowed";
    case DeviationKind::kUnknownActivity:
      return "unknown_activity";
    case DeviationKind::kGuardRefused:
      return "guard_refused";
    case DeviationKind::kMissingMilestone:
      return "missing_milestone";
  }
  return "unknown";
}

StatusOr<ReplayResult> Replay(const EventLog& log, const Workflow& workflow,
                              const ReplayOptions& options) {
  const int initial = workflow.initial_state();
  if (initial == Workflow::kNoId) {
    return Status(Code::kInvalidArgument,
                  "workflow \"" + workflow.name() +
                      "\": no initial state (expected one state with role "
                      "initial)");
  }
  const int num_states = workflow.state_count();
  std::vector<std::string> state_names(num_states);
  for (int s = 0; s < num_states; ++s) state_names[s] = workflow.StateName(s);

  // Milestones must be states, or the "missing" deviations would be noise.
  std::vector<int> milestones;
  for (const std::string& m : options.milestones) {
    int id = workflow.StateId(m);
    if (id == Workflow::kNoId) {
      return Status(Code::kNotFound, "workflow \"" + workflow.name() +
                                         "\": unknown milestone \"" + m +
                                         "\" (expected one of " +
                                         ExpectedList(state_names) + ")");
    }
    milestones.push_back(id);
  }

  // Resolve each distinct activity once.
  std::unordered_map<std::string_view, std::string_view> map;
  for (const auto& [from, to] : options.activity_map) {
    if (!map.emplace(from, to).second) {
      return Status(Code::kInvalidArgument,
                    "activity_map: activity \"" + from +
                        "\" is mapped twice");
    }
  }
  const bool by_state = options.activity_kind == ActivityKind::kState;
  std::vector<Resolved> resolved(log.activities().size());
  for (int32_t a = 0; a < log.activities().size(); ++a) {
    Resolved& r = resolved[a];
    r.name = log.activity_name(a);
    if (!map.empty()) {
      auto it = map.find(r.name);
      if (it != map.end()) {
        r.name = std::string(it->second);
      } else if (options.ignore_unmapped) {
        r.ignore = true;
      }
    }
    if (r.name.empty()) r.ignore = true;
    if (!r.ignore) {
      r.id = by_state ? workflow.StateId(r.name) : workflow.EventId(r.name);
    }
  }

  // Transitions by source state, for kState lookups (source, target) and
  // for the resynchronisation target of each event.
  const auto& transitions = workflow.transitions();
  std::vector<std::vector<const Workflow::Transition*>> by_source(num_states);
  std::vector<int> event_target(workflow.event_count(), Workflow::kNoId);
  std::vector<bool> event_seen(workflow.event_count(), false);
  for (const auto& t : transitions) {
    // Transitions naming undeclared states (Validate reports them) can
    // never be taken.
    if (t.source == Workflow::kNoId || t.target == Workflow::kNoId) continue;
    by_source[t.source].push_back(&t);
    if (!event_seen[t.event]) {
      event_seen[t.event] = true;
      event_target[t.event] = t.target;
    } else if (event_target[t.event] != t.target) {
      event_target[t.event] = Workflow::kNoId;  // ambiguous: no resync
    }
  }

  ReplayResult result;
  result.state_names = state_names;
  result.cases.resize(log.num_cases());
  std::vector<const Workflow::Transition*> candidates;

  for (int32_t c = 0; c < log.num_cases(); ++c) {
    CaseReplay& cr = result.cases[c];
    cr.milestone_times.assign(milestones.size(), std::nullopt);
    int state = initial;
    bool started = false;
    auto enter = [&](int s, int64_t e, int transition, bool resync) {
      state = s;
      result.steps.push_back({c, e, s, transition, resync});
      for (size_t k = 0; k < milestones.size(); ++k) {
        if (milestones[k] == s && !cr.milestone_times[k]) {
          cr.milestone_times[k] = log.time(e);
        }
      }
    };
    auto deviate = [&](int64_t e, DeviationKind kind, const std::string& act) {
      result.deviations.push_back(
          {c, e, e - log.case_begin(c), kind, state_names[state], act});
      ++cr.deviations;
    };

    for (int64_t e = log.case_begin(c); e < log.case_end(c); ++e) {
      const Resolved& r = resolved[log.activity(e)];
      if (r.ignore || !Replayable(log.lifecycle(e), options.complete_only)) {
        ++cr.ignored;
        continue;
      }
      ++cr.events;

      // The case is created by its first replayed event; in kState mode an
      // event naming the initial state is that creation itself.
      if (!started) {
        started = true;
        enter(initial, e, -1, false);
        if (by_state && r.id == initial) {
          ++cr.accepted;
          continue;
        }
      }
      if (r.id == Workflow::kNoId) {
        deviate(e, DeviationKind::kUnknownActivity, r.name);
        continue;
      }

      candidates.clear();
      if (by_state) {
        for (const auto* t : by_source[state]) {
          if (t->target == r.id) candidates.push_back(t);
        }
      } else {
        const auto& cands = workflow.Candidates(state, r.id);
        candidates.assign(cands.begin(), cands.end());
      }
      if (candidates.empty() && by_state && r.id == state &&
          options.repeats_unchanged) {
        ++cr.accepted;
        ++cr.unchanged;
        continue;
      }
      if (candidates.empty()) {
        deviate(e, DeviationKind::kNotAllowed, r.name);
        int target = by_state ? r.id : event_target[r.id];
        if (options.resync && target != Workflow::kNoId) {
          enter(target, e, -1, true);
        }
        continue;
      }

      const Workflow::Transition* chosen = nullptr;
      for (const auto* t : candidates) {
        bool pass = true;
        if (options.guard) {
          for (const std::string& g : t->guards) {
            ReplayGuardContext ctx{c, e, *t, g};
            if (!options.guard(ctx)) {
              pass = false;
              break;
            }
          }
        }
        if (pass) {
          chosen = t;
          break;
        }
      }
      if (chosen == nullptr) {
        deviate(e, DeviationKind::kGuardRefused, r.name);
        continue;
      }
      ++cr.accepted;
      enter(chosen->target, e, chosen->index, false);
    }

    // Milestones are judged once the whole case is known.
    for (size_t k = 0; k < milestones.size(); ++k) {
      if (cr.milestone_times[k]) continue;
      result.deviations.push_back({c, -1, -1, DeviationKind::kMissingMilestone,
                                   state_names[milestones[k]], ""});
      ++cr.deviations;
    }
    cr.final_state = state;
    cr.fit = cr.deviations == 0;
    cr.completed = workflow.Role(state) == StateRole::kTerminal;
    if (cr.fit) ++result.fitting_cases;
    result.events += cr.events;
    result.accepted += cr.accepted;
    result.unchanged += cr.unchanged;
  }

  if (log.num_cases() > 0) {
    result.fitness = static_cast<double>(result.fitting_cases) /
                     static_cast<double>(log.num_cases());
  }
  if (result.events > 0) {
    result.event_fitness = static_cast<double>(result.accepted) /
                           static_cast<double>(result.events);
  }
  return result;
}

StatusOr<Workflow> Discover(const EventLog& log,
                            const DiscoveryOptions& options) {
  if (log.num_events() == 0) {
    return Status(Code::kInvalidArgument,
                  "discover: the log has no events (expected at least one)");
  }
  if (options.start_state.empty() ||
      log.FindActivity(options.start_state) >= 0) {
    return Status(Code::kInvalidArgument,
                  "discover: start_state \"" + options.start_state +
                      "\" is empty or an activity of the log (expected "
                      "another name)");
  }

  // Activity counts decide which states survive the filter.
  const int32_t num_activities = log.activities().size();
  std::vector<int64_t> counts(num_activities, 0);
  for (int32_t a : log.activity_column()) ++counts[a];
  std::vector<bool> kept(num_activities);
  for (int32_t a = 0; a < num_activities; ++a) {
    kept[a] = counts[a] >= options.min_activity_count;
  }
  auto keep = [&](const std::string& name) {
    int32_t a = log.FindActivity(name);
    return a >= 0 && kept[a];
  };

  Dfg dfg = DirectlyFollows(log);
  std::vector<int32_t> starts;
  for (const NameCount& s : dfg.start_activities) {
    if (s.count >= options.min_start_count && keep(s.name)) {
      starts.push_back(log.FindActivity(s.name));
    }
  }
  std::vector<std::pair<int32_t, int32_t>> edges;
  std::vector<std::vector<int32_t>> out(num_activities);
  for (const DfgEdge& e : dfg.edges) {
    if (e.count < options.min_edge_count || !keep(e.from) || !keep(e.to)) {
      continue;
    }
    int32_t a = log.FindActivity(e.from), b = log.FindActivity(e.to);
    edges.emplace_back(a, b);
    out[a].push_back(b);
  }

  // Only what the start state reaches can be a state of a valid draft.
  std::vector<bool> reached(num_activities, false);
  std::deque<int32_t> queue;
  for (int32_t a : starts) {
    if (!reached[a]) {
      reached[a] = true;
      queue.push_back(a);
    }
  }
  while (!queue.empty()) {
    int32_t a = queue.front();
    queue.pop_front();
    for (int32_t b : out[a]) {
      if (!reached[b]) {
        reached[b] = true;
        queue.push_back(b);
      }
    }
  }

  std::vector<bool> terminal(num_activities, false);
  bool any_terminal = false;
  for (const NameCount& e : dfg.end_activities) {
    int32_t a = log.FindActivity(e.name);
    if (e.count >= options.min_end_count && reached[a]) {
      terminal[a] = true;
      any_terminal = true;
    }
  }
  if (!any_terminal) {
    for (const NameCount& e : dfg.end_activities) {  // by count, descending
      int32_t a = log.FindActivity(e.name);
      if (reached[a]) {
        terminal[a] = true;
        break;
      }
    }
  }

  Workflow wf(options.name, options.version);
  CRMFLOW_RETURN_IF_ERROR(wf.AddState(options.start_state,
                                      StateRole::kInitial));
  for (int32_t a = 0; a < num_activities; ++a) {
    if (!reached[a]) continue;
    CRMFLOW_RETURN_IF_ERROR(wf.AddState(
        log.activity_name(a),
        terminal[a] ? StateRole::kTerminal : StateRole::kNormal));
  }
  for (int32_t a : starts) {
    TransitionSpec spec;
    spec.event = spec.target = log.activity_name(a);
    spec.source = options.start_state;
    CRMFLOW_RETURN_IF_ERROR(wf.AddTransition(std::move(spec)));
  }
  for (const auto& [a, b] : edges) {
    if (!reached[a]) continue;
    TransitionSpec spec;
    spec.event = spec.target = log.activity_name(b);
    spec.source = log.activity_name(a);
    CRMFLOW_RETURN_IF_ERROR(wf.AddTransition(std::move(spec)));
  }
  return wf;
}

namespace {

// The nodes and edges of one workflow under a diff basis.
struct DiffGraph {
  std::set<std::string> nodes;
  std::set<std::pair<std::string, std::string>> edges;
};

DiffGraph GraphOf(const Workflow& w, DiffBasis basis) {
  DiffGraph g;
  const auto& ts = w.transitions();
  if (basis == DiffBasis::kStates) {
    for (int s = 0; s < w.state_count(); ++s) g.nodes.insert(w.StateName(s));
    for (const auto& t : ts) {
      if (t.source == Workflow::kNoId || t.target == Workflow::kNoId) continue;
      g.edges.emplace(w.StateName(t.source), w.StateName(t.target));
    }
    return g;
  }

  // kEvents: event E may be followed by F when E's target is F's source.
  std::vector<std::vector<int>> events_from(w.state_count());
  for (const auto& t : ts) {
    g.nodes.insert(w.EventName(t.event));
    if (t.source != Workflow::kNoId) events_from[t.source].push_back(t.event);
  }
  const int initial = w.initial_state();
  for (const auto& t : ts) {
    if (t.source == Workflow::kNoId || t.target == Workflow::kNoId) continue;
    if (t.source == initial) g.edges.emplace("", w.EventName(t.event));
    for (int f : events_from[t.target]) {
      g.edges.emplace(w.EventName(t.event), w.EventName(f));
    }
  }
  return g;
}

}  // namespace

WorkflowDiff DiffWorkflows(const Workflow& a, const Workflow& b,
                           DiffBasis basis) {
  DiffGraph ga = GraphOf(a, basis), gb = GraphOf(b, basis);
  WorkflowDiff d;
  for (const auto& n : ga.nodes) {
    (gb.nodes.count(n) ? d.nodes_in_both : d.nodes_only_in_a).push_back(n);
  }
  for (const auto& n : gb.nodes) {
    if (!ga.nodes.count(n)) d.nodes_only_in_b.push_back(n);
  }
  for (const auto& [f, t] : ga.edges) {
    (gb.edges.count({f, t}) ? d.edges_in_both : d.edges_only_in_a)
        .push_back({f, t});
  }
  for (const auto& [f, t] : gb.edges) {
    if (!ga.edges.count({f, t})) d.edges_only_in_b.push_back({f, t});
  }
  return d;
}

}  // namespace crmflow
