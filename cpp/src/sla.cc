// sla.cc: SLA clocks as a walk over a transaction's state intervals.
//
// One pass over the history after the start: each stretch in one state is
// counted, paused or stopped, measured with the policy's calendar.  The
// instant a counted total is reached inside a counted stretch is
// calendar.Add(stretch start, total - counted so far); Add and Between
// agree exactly, so due, breach and threshold instants need no search.

#include "crmflow/sla.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace crmflow {

namespace {

constexpr int64_t kMicros = 1000000;

std::string DurationText(int64_t micros) {
  std::string sign = micros < 0 ? "-" : "";
  if (micros < 0) micros = -micros;
  char buf[64];
  long long h = micros / (3600 * kMicros);
  long long m = micros / (60 * kMicros) % 60;
  long long s = micros / kMicros % 60;
  long long f = micros % kMicros;
  if (f != 0) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02lld.%06llds", h, m, s, f);
  } else if (s != 0) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds", h, m, s);
  } else if (m != 0) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", h, m);
  } else {
    std::snprintf(buf, sizeof(buf), "%lldh", h);
  }
  return sign + buf;
}

std::string ShareText(double share) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g%%", share * 100);
  return buf;
}

}  // namespace

struct SlaClock::Impl {
  SlaPolicy policy;
  std::set<std::string, std::less<>> paused;
  std::set<std::string, std::less<>> met;
  std::vector<int64_t> threshold_micros;
  std::string prefix;  // "sla resolution: "
};

const char* SlaStateName(SlaState state) {
  switch (state) {
    case SlaState::kNotStarted:
      return "not started";
    case SlaState::kRunning:
      return "running";
    case SlaState::kPaused:
      return "paused";
    case SlaState::kMet:
      return "met";
    case SlaState::kBreached:
      return "breached";
  }
  return "?";
}

SlaClock::SlaClock(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

const SlaPolicy& SlaClock::policy() const { return impl_->policy; }

StatusOr<SlaClock> SlaClock::Create(SlaPolicy policy) {
  auto impl = std::make_shared<Impl>();
  impl->prefix =
      policy.name.empty() ? "sla: " : "sla " + policy.name + ": ";
  if (policy.target.micros <= 0) {
    return Status(Code::kInvalidArgument,
                  impl->prefix + "target " +
                      DurationText(policy.target.micros) +
                      " is not positive (expected a target above 0)");
  }
  impl->paused.insert(policy.paused_states.begin(),
                      policy.paused_states.end());
  impl->met.insert(policy.met_states.begin(), policy.met_states.end());
  for (const std::string& s : impl->paused) {
    if (impl->met.count(s) != 0) {
      return Status(Code::kInvalidArgument,
                    impl->prefix + "state \"" + s +
                        "\" is both paused and met (expected one or the "
                        "other)");
    }
  }
  for (double share : policy.escalation_shares) {
    if (!std::isfinite(share) || share <= 0 || share > 1000) {
      return Status(Code::kInvalidArgument,
                    impl->prefix + "escalation share " + ShareText(share) +
                        " is not allowed (expected a positive share of the "
                        "target such as 0.75)");
    }
    impl->threshold_micros.push_back(static_cast<int64_t>(
        std::llround(share * static_cast<double>(policy.target.micros))));
  }
  impl->policy = std::move(policy);
  return SlaClock(std::move(impl));
}

StatusOr<SlaStatus> SlaClock::Evaluate(const std::vector<StateChange>& history,
                                       Timestamp now) const {
  const Impl& p = *impl_;
  const SlaPolicy& policy = p.policy;
  const BusinessCalendar& cal = policy.calendar;
  const TimeZone& zone = cal.zone();
  if (history.empty()) {
    return Status(Code::kInvalidArgument,
                  p.prefix + "empty state history (expected the creation "
                             "first)");
  }
  for (size_t i = 1; i < history.size(); ++i) {
    if (history[i].at < history[i - 1].at) {
      return Status(Code::kInvalidArgument,
                    p.prefix + "state change " + std::to_string(i + 1) +
                        " (" + history[i].state + " at " +
                        zone.FormatLocal(history[i].at) +
                        ") is before change " + std::to_string(i) + " at " +
                        zone.FormatLocal(history[i - 1].at) +
                        " (expected changes in order)");
    }
  }

  SlaStatus st;
  std::string& why = st.explanation;
  why = "target " + DurationText(policy.target.micros) +
        (cal.is_24x7() ? " (24x7)" : " (business hours, " + zone.name() + ")");
  for (size_t k = 0; k < p.threshold_micros.size(); ++k) {
    SlaThreshold th;
    th.share = policy.escalation_shares[k];
    th.at_counted = Duration{p.threshold_micros[k]};
    st.thresholds.push_back(th);
  }

  // Entries after `now` are not known yet.
  size_t known = 0;
  while (known < history.size() && !(now < history[known].at)) ++known;
  if (known > 0) st.current_state = history[known - 1].state;
  size_t start = known;
  for (size_t i = 0; i < known; ++i) {
    if (policy.start_state.empty() || history[i].state == policy.start_state) {
      start = i;
      break;
    }
  }
  st.remaining = policy.target;
  if (start == known) {
    why += "; not started" +
           (policy.start_state.empty()
                ? std::string()
                : " (\"" + policy.start_state + "\" not entered)");
    return st;
  }
  st.started_at = history[start].at;
  why += "; started " + zone.FormatLocal(history[start].at);

  const int64_t target = policy.target.micros;
  int64_t counted = 0;
  int64_t paused = 0;
  int64_t stopped = 0;
  std::optional<Timestamp> run_stop;  // start of the current met run
  for (size_t i = start; i < known; ++i) {
    const std::string& state = history[i].state;
    Timestamp from = history[i].at;
    Timestamp to = i + 1 < known ? history[i + 1].at : now;
    SlaSegmentKind kind = SlaSegmentKind::kCounted;
    if (p.met.count(state) != 0) {
      kind = SlaSegmentKind::kStopped;
    } else if (p.paused.count(state) != 0) {
      kind = SlaSegmentKind::kPaused;
    }
    if (kind == SlaSegmentKind::kStopped) {
      if (!run_stop) run_stop = from;
    } else {
      run_stop.reset();
    }
    if (!(from < to)) continue;
    int64_t measured = cal.Between(from, to).micros;
    st.segments.push_back(
        SlaSegment{state, from, to, kind, Duration{measured}});
    const char* verb = kind == SlaSegmentKind::kCounted  ? "counted"
                       : kind == SlaSegmentKind::kPaused ? "paused"
                                                         : "stopped";
    why += "; " + state + " " + zone.FormatLocal(from) + ".." +
           zone.FormatLocal(to) + " " + verb + " " + DurationText(measured);
    if (kind == SlaSegmentKind::kPaused) {
      paused += measured;
      continue;
    }
    if (kind == SlaSegmentKind::kStopped) {
      stopped += measured;
      continue;
    }
    for (size_t k = 0; k < st.thresholds.size(); ++k) {
      SlaThreshold& th = st.thresholds[k];
      int64_t need = th.at_counted.micros;
      if (th.reached || need > counted + measured) continue;
      // Inclusive: a threshold reached exactly when the stretch ends is
      // reached (a timer set for that instant sees it).
      if (need <= counted) {
        th.at = from;
      } else {
        auto at = cal.Add(from, Duration{need - counted});
        if (!at.ok()) return at.status();
        th.at = at.value();
      }
      th.reached = true;
    }
    if (!st.breached_at && counted + measured >= target) {
      auto due = cal.Add(from, Duration{target - counted});
      if (!due.ok()) return due.status();
      // Exclusive: resolving exactly at the due instant is on time; still
      // running after it is a breach.
      if (due.value() < to) st.breached_at = due.value();
    }
    counted += measured;
  }
  st.counted = Duration{counted};
  st.paused = Duration{paused};
  st.stopped = Duration{stopped};
  st.remaining = Duration{target - counted};

  const std::string& last = history[known - 1].state;
  bool is_stopped = p.met.count(last) != 0;
  bool is_paused = p.paused.count(last) != 0;
  if (is_stopped) st.met_at = run_stop;
  // The instant the projections start from: now, or the stop.
  Timestamp base = is_stopped && run_stop ? *run_stop : now;

  if (st.breached_at) {
    st.due_at = st.breached_at;
    st.state = SlaState::kBreached;
  } else {
    auto due = cal.Add(base, st.remaining);
    if (!due.ok()) return due.status();
    st.due_at = due.value();
    st.due_projected = is_paused || is_stopped;
    st.state = is_stopped  ? SlaState::kMet
               : is_paused ? SlaState::kPaused
                           : SlaState::kRunning;
  }
  if (!is_stopped) {
    for (SlaThreshold& th : st.thresholds) {
      if (th.reached) continue;
      auto at = cal.Add(now, Duration{th.at_counted.micros - counted});
      if (!at.ok()) return at.status();
      th.at = at.value();
    }
  }

  why += "; total counted " + DurationText(counted) + ", paused " +
         DurationText(paused) + ", stopped " + DurationText(stopped) +
         "; remaining " + DurationText(target - counted);
  if (st.breached_at) {
    why += "; breached at " + zone.FormatLocal(*st.breached_at);
  } else if (is_stopped) {
    why += "; met at " + zone.FormatLocal(*st.met_at) + "; due " +
           zone.FormatLocal(*st.due_at) + " had it run on";
  } else if (is_paused) {
    why += "; paused, due " + zone.FormatLocal(*st.due_at) +
           " if resumed now";
  } else {
    why += "; due " + zone.FormatLocal(*st.due_at);
  }
  for (const SlaThreshold& th : st.thresholds) {
    if (!th.at) continue;
    why += "; " + ShareText(th.share) + (th.reached ? " reached " : " at ") +
           zone.FormatLocal(*th.at);
  }
  return st;
}

}  // namespace crmflow
