// sla.h: SLA clocks over a transaction's state history.
//
// An SLA policy says how long a transaction may take (the target), on
// which clock (a BusinessCalendar, 24x7 by default), from when (creation or
// the first entry into a given state), in which states the clock is paused
// (waiting_customer) and in which states the target counts as met
// (resolved, closed).  SlaClock::Evaluate reads the ordered state history
// of one transaction (instant, state entered) and an evaluation instant
// "now", and answers with an SlaStatus: time counted, paused and stopped,
// remaining, the due instant, whether and when the target was breached,
// when each escalation threshold (75 %, 100 %) was or will be reached, and
// a one-line explanation of the arithmetic.
//
// The clock is a pure function of (policy, history, now): nothing is
// stored, so an engine can re-evaluate after every event and arm a timer
// at the earliest projected instant (a threshold or the due time).
//
// Rules:
//   * Every duration is measured on the policy's calendar: counted, paused
//     and stopped time are business time for a business calendar (a pause
//     over a weekend is 0 h), elapsed time for 24x7.  counted + paused +
//     stopped == calendar.Between(started_at, now).
//   * Entering a met state stops the clock; leaving it again (a reopened
//     request) resumes the same clock: the time spent resolved or closed is
//     not counted, and thresholds already reached are not reached again,
//     so "at 75 %" fires once per transaction and policy.  Entering the
//     start state again does not restart the clock.
//   * The due instant is when the counted time reaches the target: the
//     earliest instant where counted == target (calendar.Add semantics:
//     it can be a closing boundary).  Entering a met state at or before it
//     meets the SLA; the SLA is breached when the clock is still running
//     (not paused, not stopped) at any instant after it; breached_at is the
//     due instant.  A breach is final: pausing, resolving or reopening
//     afterwards does not undo it.
//   * While paused, the deadline is not fixed: due_at is projected as if
//     the clock resumed now (due_projected is true).  While stopped (met),
//     due_at is the deadline the clock would have had had it kept running
//     from the moment it stopped, so a reopen at that moment keeps it.
//   * History entries after `now` are ignored, so a stored history can be
//     asked about any past instant.
//
// Example:
//
//   SlaPolicy policy;
//   policy.name = "resolution";
//   policy.target = Duration{8 * 3600000000LL};
//   policy.paused_states = {"waiting_customer"};
//   policy.met_states = {"resolved", "closed"};
//   policy.escalation_shares = {0.75, 1.0};
//   StatusOr<SlaClock> clock = SlaClock::Create(policy);
//   StatusOr<SlaStatus> status = clock->Evaluate(history, now);
//   if (status.ok() && status->state == SlaState::kBreached) ...
//   // status->explanation: "target 8h; counted 2h (open ...); ..."

#ifndef CRMFLOW_SLA_H_
#define CRMFLOW_SLA_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crmflow/calendar.h"
#include "crmflow/status.h"
#include "crmflow/value.h"

namespace crmflow {

// One entry of a state history: `state` was entered at `at`.  The first
// entry is the creation of the transaction.
struct StateChange {
  Timestamp at;
  std::string state;
};

// What an SLA measures and how.
struct SlaPolicy {
  // Shown in explanations and messages ("resolution").
  std::string name;
  // The time allowed; must be positive.
  Duration target;
  // The clock; 24x7 (elapsed time) by default.
  BusinessCalendar calendar;
  // States in which the clock is paused.
  std::vector<std::string> paused_states;
  // States in which the target counts as met and the clock stops.
  std::vector<std::string> met_states;
  // The clock starts at the first entry into this state; empty: at the
  // first history entry (creation).
  std::string start_state;
  // Escalation thresholds as shares of the target (0.75, 1.0); each must
  // be positive and finite (above 1 allowed: 1.5 is half the target late).
  std::vector<double> escalation_shares;
};

// Where the clock is at the evaluation instant, and how it ended.
enum class SlaState {
  kNotStarted,  // the start state has not been entered (yet)
  kRunning,     // counting, target not exceeded
  kPaused,      // in a paused state, target not exceeded
  kMet,         // in a met state, entered on time
  kBreached,    // the target was exceeded while running (final)
};

// Returns "not started", "running", "paused", "met" or "breached".
const char* SlaStateName(SlaState state);

// How the clock treats one stretch of the history.
enum class SlaSegmentKind { kCounted, kPaused, kStopped };

// One stretch of the history after the start, in one state: the arithmetic
// behind the totals.
struct SlaSegment {
  std::string state;
  Timestamp from;
  Timestamp to;           // the next change, or now for the last one
  SlaSegmentKind kind;
  Duration measured;      // calendar.Between(from, to)
};

// When an escalation threshold is or was reached.
struct SlaThreshold {
  double share = 0;
  Duration at_counted;               // share x target, to the microsecond
  bool reached = false;              // reached at or before now
  std::optional<Timestamp> at;       // the instant; projected when not
                                     // reached and the clock is running or
                                     // paused (as if resumed now); none
                                     // while stopped
};

// The answer of SlaClock::Evaluate.
struct SlaStatus {
  SlaState state = SlaState::kNotStarted;
  std::optional<Timestamp> started_at;
  Duration counted;    // time the clock ran
  Duration paused;     // time in paused states after the start
  Duration stopped;    // time in met states after the start (reopens)
  Duration remaining;  // target - counted; negative once overrun
  // The due instant (see the file comment); none before the start.
  std::optional<Timestamp> due_at;
  // True when due_at is a projection: paused (as if resumed now) or
  // stopped (as if running on from the stop).
  bool due_projected = false;
  std::optional<Timestamp> breached_at;
  // The last entry into a met state, when the clock is stopped now.
  std::optional<Timestamp> met_at;
  // The state entered last at or before now (empty before the history).
  std::string current_state;
  std::vector<SlaThreshold> thresholds;  // in the policy's order
  std::vector<SlaSegment> segments;
  // One line: "target 8h on 24x7; counted 2h (open 2026-02-02T09:00Z ..
  // 11:00Z); paused 28h (waiting_customer ...); met at ...; due ...".
  std::string explanation;
};

// A validated SLA policy.  Immutable and cheap to copy; Evaluate may be
// called from several threads at once.
class SlaClock {
 public:
  // Checks `policy`: fails with kInvalidArgument naming the policy for a
  // target <= 0 ("sla resolution: target -1h is not positive"), a state
  // that is both paused and met, or a share that is not positive and finite.
  static StatusOr<SlaClock> Create(SlaPolicy policy);

  const SlaPolicy& policy() const;

  // Evaluates the clock over `history` (ordered by instant; equal instants
  // keep their order, the later entry wins) at `now`.  Fails with
  // kInvalidArgument for an empty history or one going back in time
  // ("state change 3 (open at ...) is before change 2 at ..."), and when a
  // due or threshold instant lies beyond the calendar's search bound.
  StatusOr<SlaStatus> Evaluate(const std::vector<StateChange>& history,
                               Timestamp now) const;

 private:
  struct Impl;
  explicit SlaClock(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace crmflow

#endif  // CRMFLOW_SLA_H_
