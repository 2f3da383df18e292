// sla_test.cc: SLA clocks over state histories: pauses, resolving from a
// pause, reopened requests, breaches, escalation thresholds on business
// hours.  Expected values are worked out by hand in the comments.

#include "crmflow/sla.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "crmflow/calendar.h"
#include "crmflow/timestamp.h"

namespace crmflow {
namespace {

constexpr int64_t kHour = 3600 * 1000000LL;

Duration Hours(int64_t h) { return Duration{h * kHour}; }

Timestamp Utc(const char* iso) {
  auto t = Timestamp::ParseIso(iso);
  EXPECT_TRUE(t.ok()) << iso << ": " << t.status().ToString();
  return t.ok() ? t.value() : Timestamp{};
}

SlaClock MakeClock(SlaPolicy policy) {
  auto clock = SlaClock::Create(std::move(policy));
  EXPECT_TRUE(clock.ok()) << clock.status().ToString();
  return clock.value();
}

SlaStatus Eval(const SlaClock& clock, const std::vector<StateChange>& h,
               const char* now) {
  auto st = clock.Evaluate(h, Utc(now));
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  return st.ok() ? st.value() : SlaStatus{};
}

// C07: 24x7 resolution SLA of 8 h, paused in waiting_customer.
SlaClock C07Clock() {
  SlaPolicy policy;
  policy.name = "resolution";
  policy.target = Hours(8);
  policy.paused_states = {"waiting_customer"};
  policy.met_states = {"resolved", "closed"};
  return MakeClock(policy);
}

const std::vector<StateChange> kT1 = {
    {Utc("2026-02-02T09:00:00Z"), "open"},
    {Utc("2026-02-02T11:00:00Z"), "waiting_customer"},
    {Utc("2026-02-03T15:00:00Z"), "resolved"},
};
const std::vector<StateChange> kT2 = {
    {Utc("2026-02-02T09:00:00Z"), "open"},
    {Utc("2026-02-02T11:00:00Z"), "waiting_customer"},
    {Utc("2026-02-03T15:00:00Z"), "open"},
    {Utc("2026-02-03T16:00:00Z"), "resolved"},
};

TEST(Sla, C07ResolvedStraightFromPauseClosesThePause) {
  SlaClock clock = C07Clock();
  SlaStatus st = Eval(clock, kT1, "2026-02-05T00:00:00Z");
  // Paused 11:00 Feb 2 to 15:00 Feb 3 = 28 h; counted 09:00-11:00 = 2 h;
  // the deadline had it run on from 15:00: + 6 h = 21:00, which is also
  // 09:00 + 8 h + 28 h.
  EXPECT_EQ(st.state, SlaState::kMet);
  EXPECT_EQ(st.paused, Hours(28));
  EXPECT_EQ(st.counted, Hours(2));
  EXPECT_EQ(st.remaining, Hours(6));
  EXPECT_FALSE(st.breached_at.has_value());
  EXPECT_EQ(st.met_at, Utc("2026-02-03T15:00:00Z"));
  EXPECT_EQ(st.due_at, Utc("2026-02-03T21:00:00Z"));
  EXPECT_TRUE(st.due_projected);
  // Stopped since 15:00 Feb 3: 33 h to now; the three add up.
  EXPECT_EQ(st.stopped, Hours(33));
  EXPECT_EQ(st.explanation,
            "target 8h (24x7); started 2026-02-02T09:00:00+00:00; "
            "open 2026-02-02T09:00:00+00:00..2026-02-02T11:00:00+00:00 "
            "counted 2h; waiting_customer 2026-02-02T11:00:00+00:00.."
            "2026-02-03T15:00:00+00:00 paused 28h; resolved "
            "2026-02-03T15:00:00+00:00..2026-02-05T00:00:00+00:00 stopped "
            "33h; total counted 2h, paused 28h, stopped 33h; remaining 6h; "
            "met at 2026-02-03T15:00:00+00:00; due 2026-02-03T21:00:00+00:00 "
            "had it run on");
}

TEST(Sla, C07ResumedThenResolved) {
  SlaStatus st = Eval(C07Clock(), kT2, "2026-02-05T00:00:00Z");
  // Counted 2 h + 15:00-16:00 = 3 h; paused 28 h; 5 h left at 16:00, so
  // 21:00 again.
  EXPECT_EQ(st.state, SlaState::kMet);
  EXPECT_EQ(st.paused, Hours(28));
  EXPECT_EQ(st.counted, Hours(3));
  EXPECT_EQ(st.due_at, Utc("2026-02-03T21:00:00Z"));
  // While it ran, on Feb 3 at 15:30, the live deadline was the same.
  SlaStatus live = Eval(C07Clock(), kT2, "2026-02-03T15:30:00Z");
  EXPECT_EQ(live.state, SlaState::kRunning);
  EXPECT_EQ(live.due_at, Utc("2026-02-03T21:00:00Z"));
  EXPECT_FALSE(live.due_projected);
}

TEST(Sla, C07WhilePausedDeadlineIsAsIfResumedNow) {
  SlaClock clock = C07Clock();
  // The stored history is complete; asked at 20:00 Feb 2, the later
  // changes are not known yet.  Counted 2 h, 6 h left, paused since 11:00.
  SlaStatus st = Eval(clock, kT1, "2026-02-02T20:00:00Z");
  EXPECT_EQ(st.state, SlaState::kPaused);
  EXPECT_EQ(st.remaining, Hours(6));
  EXPECT_EQ(st.paused, Hours(9));
  EXPECT_FALSE(st.breached_at.has_value());
  EXPECT_EQ(st.current_state, "waiting_customer");
  // Resumed at 20:00, 6 h later: 02:00 Feb 3.
  EXPECT_EQ(st.due_at, Utc("2026-02-03T02:00:00Z"));
  EXPECT_TRUE(st.due_projected);

  // At 17:00 Feb 2 (09:00 + 8 h, had there been no pause): no breach.
  SlaStatus early = Eval(clock, kT1, "2026-02-02T17:00:00Z");
  EXPECT_EQ(early.state, SlaState::kPaused);
  EXPECT_FALSE(early.breached_at.has_value());
}

// C08: time to resolve 4 h, stopped in resolved and closed.
SlaClock C08Clock() {
  SlaPolicy policy;
  policy.name = "time to resolve";
  policy.target = Hours(4);
  policy.met_states = {"resolved", "closed"};
  return MakeClock(policy);
}

TEST(Sla, C08ReopenedFromClosedContinuesTheClock) {
  std::vector<StateChange> t3 = {
      {Utc("2026-02-02T09:00:00Z"), "open"},
      {Utc("2026-02-02T10:00:00Z"), "resolved"},
      {Utc("2026-02-02T10:30:00Z"), "closed"},
      {Utc("2026-02-03T09:00:00Z"), "open"},
      {Utc("2026-02-03T11:00:00Z"), "resolved"},
  };
  SlaClock clock = C08Clock();
  // Counted 09-10 (1 h) and 09-11 next day (2 h) = 3 h; resolved 10:00 to
  // reopened 09:00 = 23 h stopped, not counted.
  SlaStatus st = Eval(clock, t3, "2026-02-03T11:30:00Z");
  EXPECT_EQ(st.state, SlaState::kMet);
  EXPECT_EQ(st.counted, Hours(3));
  EXPECT_EQ(st.stopped, Duration{Hours(23).micros + kHour / 2});
  EXPECT_FALSE(st.breached_at.has_value());
  // 1 h left at 11:00: 12:00.
  EXPECT_EQ(st.due_at, Utc("2026-02-03T12:00:00Z"));

  // Just after the reopen: 3 h remain, so the deadline is 12:00.
  SlaStatus reopened = Eval(clock, t3, "2026-02-03T09:00:00Z");
  EXPECT_EQ(reopened.state, SlaState::kRunning);
  EXPECT_EQ(reopened.remaining, Hours(3));
  EXPECT_EQ(reopened.due_at, Utc("2026-02-03T12:00:00Z"));

  // While closed, the stop is the resolve at 10:00, not the close.
  SlaStatus closed = Eval(clock, t3, "2026-02-02T12:00:00Z");
  EXPECT_EQ(closed.state, SlaState::kMet);
  EXPECT_EQ(closed.met_at, Utc("2026-02-02T10:00:00Z"));
  EXPECT_EQ(closed.due_at, Utc("2026-02-02T13:00:00Z"));
}

TEST(Sla, C08ReopenedFromResolved) {
  std::vector<StateChange> t4 = {
      {Utc("2026-02-02T09:00:00Z"), "open"},
      {Utc("2026-02-02T10:00:00Z"), "resolved"},
      {Utc("2026-02-03T09:00:00Z"), "open"},
      {Utc("2026-02-03T11:00:00Z"), "resolved"},
  };
  SlaClock clock = C08Clock();
  SlaStatus st = Eval(clock, t4, "2026-02-03T11:30:00Z");
  EXPECT_EQ(st.state, SlaState::kMet);
  EXPECT_EQ(st.counted, Hours(3));
  EXPECT_EQ(st.stopped, Duration{Hours(23).micros + kHour / 2});
  EXPECT_FALSE(st.breached_at.has_value());
  EXPECT_EQ(st.due_at, Utc("2026-02-03T12:00:00Z"));
  EXPECT_EQ(Eval(clock, t4, "2026-02-03T10:00:00Z").due_at,
            Utc("2026-02-03T12:00:00Z"));
}

TEST(Sla, BreachIsAfterTheDueInstantAndFinal) {
  SlaClock clock = C08Clock();
  std::vector<StateChange> open = {{Utc("2026-02-02T09:00:00Z"), "open"}};
  // Due 13:00.  At 13:00 exactly nothing is exceeded yet.
  SlaStatus at_due = Eval(clock, open, "2026-02-02T13:00:00Z");
  EXPECT_EQ(at_due.state, SlaState::kRunning);
  EXPECT_EQ(at_due.remaining, Duration{0});
  EXPECT_FALSE(at_due.breached_at.has_value());
  // At 14:00 breached since 13:00, overrun 1 h.
  SlaStatus late = Eval(clock, open, "2026-02-02T14:00:00Z");
  EXPECT_EQ(late.state, SlaState::kBreached);
  EXPECT_EQ(late.breached_at, Utc("2026-02-02T13:00:00Z"));
  EXPECT_EQ(late.due_at, Utc("2026-02-02T13:00:00Z"));
  EXPECT_EQ(late.remaining, Hours(-1));

  // Resolved exactly at 13:00: on time.
  std::vector<StateChange> on_time = open;
  on_time.push_back({Utc("2026-02-02T13:00:00Z"), "resolved"});
  EXPECT_EQ(Eval(clock, on_time, "2026-02-03T00:00:00Z").state,
            SlaState::kMet);

  // Resolved at 13:30: breached, and stays breached after a reopen.
  std::vector<StateChange> late_resolve = open;
  late_resolve.push_back({Utc("2026-02-02T13:30:00Z"), "resolved"});
  late_resolve.push_back({Utc("2026-02-02T15:00:00Z"), "open"});
  SlaStatus st = Eval(clock, late_resolve, "2026-02-02T16:00:00Z");
  EXPECT_EQ(st.state, SlaState::kBreached);
  EXPECT_EQ(st.breached_at, Utc("2026-02-02T13:00:00Z"));
  EXPECT_EQ(st.counted, Duration{Hours(5).micros + kHour / 2});
}

// Berlin Mon-Fri 09:00-17:00, 16 business hours, thresholds 75 % and 100 %.
SlaClock BerlinClock() {
  CalendarSpec spec;
  spec.zone = TimeZone::Load("Europe/Berlin").value();
  spec.Weekdays({WorkInterval::Hm(9, 0, 17, 0)});
  SlaPolicy policy;
  policy.name = "response";
  policy.target = Hours(16);
  policy.calendar = BusinessCalendar::Create(spec).value();
  policy.paused_states = {"waiting_customer"};
  policy.met_states = {"resolved"};
  policy.escalation_shares = {0.75, 1.0};
  return MakeClock(policy);
}

TEST(Sla, EscalationThresholdsOnBusinessHours) {
  SlaClock clock = BerlinClock();
  // Friday 2026-10-23 15:00 CEST = 13:00Z.  75 % = 12 h: Friday 2 h, Monday
  // 8 h, Tuesday 09:00 + 2 h = 11:00 CET = 10:00Z.  100 % = 16 h: Tuesday
  // 15:00 CET = 14:00Z.
  std::vector<StateChange> h = {{Utc("2026-10-23T13:00:00Z"), "open"}};

  // Monday 12:00 CET: 2 h + 3 h counted, both projected.
  SlaStatus monday = Eval(clock, h, "2026-10-26T11:00:00Z");
  EXPECT_EQ(monday.state, SlaState::kRunning);
  EXPECT_EQ(monday.counted, Hours(5));
  ASSERT_EQ(monday.thresholds.size(), 2u);
  EXPECT_FALSE(monday.thresholds[0].reached);
  EXPECT_EQ(monday.thresholds[0].at_counted, Hours(12));
  EXPECT_EQ(monday.thresholds[0].at, Utc("2026-10-27T10:00:00Z"));
  EXPECT_EQ(monday.thresholds[1].at, Utc("2026-10-27T14:00:00Z"));
  EXPECT_EQ(monday.due_at, Utc("2026-10-27T14:00:00Z"));

  // Tuesday 13:00 CET: 75 % reached at 10:00Z, 100 % still ahead.
  SlaStatus tuesday = Eval(clock, h, "2026-10-27T12:00:00Z");
  EXPECT_TRUE(tuesday.thresholds[0].reached);
  EXPECT_EQ(tuesday.thresholds[0].at, Utc("2026-10-27T10:00:00Z"));
  EXPECT_FALSE(tuesday.thresholds[1].reached);
  EXPECT_EQ(tuesday.thresholds[1].at, Utc("2026-10-27T14:00:00Z"));

  // Exactly at 100 %: reached (a timer for that instant sees it), not yet
  // breached; one microsecond later it is.
  SlaStatus at_due = Eval(clock, h, "2026-10-27T14:00:00Z");
  EXPECT_TRUE(at_due.thresholds[1].reached);
  EXPECT_EQ(at_due.state, SlaState::kRunning);
  SlaStatus after = Eval(clock, h, "2026-10-27T14:00:00.000001Z");
  EXPECT_EQ(after.state, SlaState::kBreached);
  EXPECT_EQ(after.breached_at, Utc("2026-10-27T14:00:00Z"));
}

TEST(Sla, BusinessHoursPauseShiftsThresholds) {
  SlaClock clock = BerlinClock();
  // Paused Monday 10:00-14:00 CET (09:00Z-13:00Z): 4 business hours.
  // Counted: Friday 2 h, Monday 1 h + 3 h = 6 h by Monday 17:00; 75 % (12 h)
  // at Tuesday 15:00 CET = 14:00Z; 100 % (16 h): Tuesday gives 8 h (14 h),
  // Wednesday 09:00 + 2 h = 11:00 CET = 10:00Z.
  std::vector<StateChange> h = {
      {Utc("2026-10-23T13:00:00Z"), "open"},
      {Utc("2026-10-26T09:00:00Z"), "waiting_customer"},
      {Utc("2026-10-26T13:00:00Z"), "open"},
  };
  SlaStatus st = Eval(clock, h, "2026-10-27T15:00:00Z");  // Tue 16:00 CET
  EXPECT_EQ(st.state, SlaState::kRunning);
  EXPECT_EQ(st.paused, Hours(4));
  EXPECT_EQ(st.counted, Hours(13));
  EXPECT_TRUE(st.thresholds[0].reached);
  EXPECT_EQ(st.thresholds[0].at, Utc("2026-10-27T14:00:00Z"));
  EXPECT_EQ(st.thresholds[1].at, Utc("2026-10-28T10:00:00Z"));
  EXPECT_EQ(st.due_at, Utc("2026-10-28T10:00:00Z"));
  // counted + paused + stopped is the business time since the start.
  EXPECT_EQ(st.counted.micros + st.paused.micros + st.stopped.micros,
            clock.policy()
                .calendar.Between(*st.started_at, Utc("2026-10-27T15:00:00Z"))
                .micros);
}

TEST(Sla, DueOnClosingBoundaryBreachedAfterHours) {
  SlaClock clock = BerlinClock();
  // Opened Monday 2026-10-26 09:00 CET (08:00Z) with 16 h: due Tuesday
  // 17:00 CET = 16:00Z, a closing boundary.  Still open at 18:00 CET: no
  // business time passed since 17:00, but the due instant is behind.
  std::vector<StateChange> h = {{Utc("2026-10-26T08:00:00Z"), "open"}};
  SlaStatus st = Eval(clock, h, "2026-10-27T17:00:00Z");
  EXPECT_EQ(st.state, SlaState::kBreached);
  EXPECT_EQ(st.breached_at, Utc("2026-10-27T16:00:00Z"));
  EXPECT_EQ(st.remaining, Duration{0});
}

TEST(Sla, StartsWhenEnteringTheStartState) {
  SlaPolicy policy;
  policy.name = "assignment";
  policy.target = Hours(2);
  policy.start_state = "assigned";
  policy.met_states = {"resolved"};
  SlaClock clock = MakeClock(policy);
  std::vector<StateChange> h = {
      {Utc("2026-02-02T08:00:00Z"), "new"},
      {Utc("2026-02-02T10:00:00Z"), "assigned"},
      {Utc("2026-02-02T11:00:00Z"), "new"},
      {Utc("2026-02-02T11:30:00Z"), "assigned"},
  };
  SlaStatus before = Eval(clock, h, "2026-02-02T09:00:00Z");
  EXPECT_EQ(before.state, SlaState::kNotStarted);
  EXPECT_FALSE(before.due_at.has_value());
  // Started at 10:00 and never restarted: 10:00-12:00 counts 2 h.
  SlaStatus st = Eval(clock, h, "2026-02-02T12:00:00Z");
  EXPECT_EQ(st.started_at, Utc("2026-02-02T10:00:00Z"));
  EXPECT_EQ(st.counted, Hours(2));
  EXPECT_EQ(st.due_at, Utc("2026-02-02T12:00:00Z"));
  EXPECT_EQ(st.state, SlaState::kRunning);
}

TEST(Sla, RefusesBadPoliciesAndHistories) {
  SlaPolicy policy;
  policy.name = "resolution";
  policy.target = Hours(-1);
  auto negative = SlaClock::Create(policy);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(negative.status().message(),
            "sla resolution: target -1h is not positive (expected a target "
            "above 0)");

  policy.target = Hours(8);
  policy.paused_states = {"waiting"};
  policy.met_states = {"waiting"};
  auto both = SlaClock::Create(policy);
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.status().message(),
            "sla resolution: state \"waiting\" is both paused and met "
            "(expected one or the other)");

  policy.met_states = {"resolved"};
  policy.escalation_shares = {0.75, 0};
  auto share = SlaClock::Create(policy);
  ASSERT_FALSE(share.ok());
  EXPECT_EQ(share.status().message(),
            "sla resolution: escalation share 0% is not allowed (expected a "
            "positive share of the target such as 0.75)");

  policy.escalation_shares = {0.75};
  SlaClock clock = MakeClock(policy);
  auto empty = clock.Evaluate({}, Utc("2026-02-02T09:00:00Z"));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(),
            "sla resolution: empty state history (expected the creation "
            "first)");
  auto backwards = clock.Evaluate({{Utc("2026-02-02T09:00:00Z"), "open"},
                                   {Utc("2026-02-02T08:00:00Z"), "resolved"}},
                                  Utc("2026-02-02T10:00:00Z"));
  ASSERT_FALSE(backwards.ok());
  EXPECT_EQ(backwards.status().message(),
            "sla resolution: state change 2 (resolved at "
            "2026-02-02T08:00:00+00:00) is before change 1 at "
            "2026-02-02T09:00:00+00:00 (expected changes in order)");
}

}  // namespace
}  // namespace crmflow
