// scheduler_test.cc: SLA policies, durable timers and escalations through
// the engine on a simulated clock; acceptance cases C06-C09, escalation
// exactly once after downtime, restart persistence, refusals.

#include "crmflow/scheduler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

namespace crmflow {
namespace {

constexpr int64_t kHour = 3600000000LL;

Timestamp T(const char* iso) { return Timestamp::ParseIso(iso).value(); }

Workflow ServiceRequest() {
  Workflow wf("service_request", 1);
  EXPECT_TRUE(wf.AddState("open", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("in_progress").ok());
  EXPECT_TRUE(wf.AddState("waiting_customer").ok());
  EXPECT_TRUE(wf.AddState("escalated").ok());
  EXPECT_TRUE(wf.AddState("resolved").ok());
  EXPECT_TRUE(wf.AddState("closed").ok());
  EXPECT_TRUE(wf.AddState("cancelled", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddTransition({"cancel", "open", "cancelled"}).ok());
  for (const char* from : {"open", "in_progress", "escalated"}) {
    EXPECT_TRUE(wf.AddTransition({"wait", from, "waiting_customer"}).ok());
  }
  for (const char* from :
       {"open", "in_progress", "waiting_customer", "escalated"}) {
    EXPECT_TRUE(wf.AddTransition({"resolve", from, "resolved"}).ok());
  }
  EXPECT_TRUE(wf.AddTransition({"own", "open", "in_progress"}).ok());
  EXPECT_TRUE(wf.AddTransition({"resume", "waiting_customer", "open"}).ok());
  EXPECT_TRUE(wf.AddTransition({"escalate", "open", "escalated"}).ok());
  EXPECT_TRUE(wf.AddTransition({"close", "resolved", "closed"}).ok());
  EXPECT_TRUE(wf.AddTransition({"reopen", "resolved", "open"}).ok());
  EXPECT_TRUE(wf.AddTransition({"reopen", "closed", "open"}).ok());
  EXPECT_TRUE(
      wf.AddAttribute({"assignment_group", ValueType::kText, false}).ok());
  EXPECT_TRUE(wf.AddAttribute({"priority", ValueType::kText, false}).ok());
  return wf;
}

// An engine on a simulated clock, optionally on a SQLite file, with its
// scheduler; Restart closes both and reopens them on the same file.
class Desk {
 public:
  explicit Desk(std::string path = "") : path_(std::move(path)) { Open(); }

  void Open() {
    EngineOptions o;
    o.path = path_;
    o.clock = [this] { return now_; };
    auto e = Engine::Open(o);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(*e);
    Status reg = engine_->Register(ServiceRequest(), "{}");
    ASSERT_TRUE(reg.ok() || reg.code() == Code::kAlreadyExists)
        << reg.ToString();
    auto s = Scheduler::Attach(*engine_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sched_ = std::move(*s);
  }
  void Restart() {
    sched_.reset();
    engine_.reset();
    Open();
  }

  void Create(const std::string& id, const char* iso,
              Attributes attrs = {}) {
    now_ = T(iso);
    CreateRequest r;
    r.kind = "service_request";
    r.id = id;
    r.time = now_;
    r.attributes = std::move(attrs);
    auto t = engine_->Create(r);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
  }
  void Fire(const std::string& id, const char* event, const char* iso) {
    now_ = T(iso);
    FireOptions o;
    o.time = now_;
    auto r = engine_->Fire(id, event, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  TickSummary Tick(Timestamp at) {
    now_ = at;
    auto r = sched_->Tick(at);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : TickSummary{};
  }
  // Ticks every `step` from `from` to `to` inclusive; returns the totals.
  TickSummary TickEvery(const char* from, const char* to, int64_t step) {
    TickSummary total;
    for (Timestamp t = T(from); !(T(to) < t); t.micros += step) {
      TickSummary s = Tick(t);
      total.fired += s.fired;
      total.cancelled += s.cancelled;
      total.moved += s.moved;
      total.failed += s.failed;
    }
    return total;
  }
  SlaStatus StatusAt(const std::string& id, const char* iso) {
    auto r = sched_->StatusOf(id, T(iso));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(1u, r->size());
    return r->empty() ? SlaStatus{} : (*r)[0].status;
  }

  Engine& engine() { return *engine_; }
  Scheduler& sched() { return *sched_; }

 private:
  std::string path_;
  Timestamp now_ = T("2026-01-01T00:00:00Z");
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> sched_;
};

ServicePolicy Resolution(int64_t hours) {
  ServicePolicy p;
  p.name = "resolution";
  p.kind = "service_request";
  p.sla.target = Duration{hours * kHour};
  p.sla.paused_states = {"waiting_customer"};
  p.sla.met_states = {"resolved", "closed"};
  return p;
}

int Count(const std::vector<SlaEventRow>& rows, const char* kind) {
  int n = 0;
  for (const auto& r : rows) n += r.kind == kind;
  return n;
}

class SchedulerFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("crmflow_scheduler_test_" + std::to_string(getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() +
              ".db"))
                .string();
    Remove();
  }
  void TearDown() override { Remove(); }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path_ + suffix);
    }
  }
  std::string path_;
};

ServicePolicy TimeToOwn() {
  ServicePolicy p;
  p.name = "time_to_own";
  p.kind = "service_request";
  p.sla.target = Duration{kHour};
  p.sla.met_states = {"in_progress", "resolved", "closed"};
  EscalationStep breach;
  breach.share = 1.0;
  breach.actions = {
      EscalationAction::Notify("email", "supervisor", "time to own breached"),
      EscalationAction::SetAttribute("assignment_group", Value::Text("L2"))};
  p.escalation = {breach};
  return p;
}

TEST_F(SchedulerFileTest, C09OneBreachOneEscalationAcrossRestart) {
  Desk desk(path_);
  ASSERT_TRUE(desk.sched().AddPolicy(TimeToOwn()).ok());
  desk.sched().NotifyOnAssignment(AssignmentNotice{});
  desk.Create("T-5", "2026-02-02T09:00:00Z",
              {{"assignment_group", Value::Text("L1")}});

  TickSummary before = desk.TickEvery("2026-02-02T09:55:00Z",
                                      "2026-02-02T09:59:00Z", 60000000LL);
  TickSummary at_due = desk.Tick(T("2026-02-02T10:00:00Z"));
  TickSummary after = desk.TickEvery("2026-02-02T10:01:00Z",
                                     "2026-02-02T10:30:00Z", 60000000LL);
  desk.Restart();
  ASSERT_TRUE(desk.sched().AddPolicy(TimeToOwn()).ok());
  desk.sched().NotifyOnAssignment(AssignmentNotice{});
  TickSummary restarted = desk.TickEvery("2026-02-02T10:31:00Z",
                                         "2026-02-02T11:00:00Z", 60000000LL);

  EXPECT_EQ(0, before.fired);
  EXPECT_EQ(1, at_due.fired);
  EXPECT_EQ(0, after.fired + after.cancelled + after.moved);
  EXPECT_EQ(0, restarted.fired + restarted.cancelled + restarted.moved);
  auto events = desk.sched().Events("T-5").value();
  ASSERT_EQ(1u, events.size());
  EXPECT_EQ("breach", events[0].kind);
  EXPECT_EQ(T("2026-02-02T10:00:00Z"), events[0].time);
  auto outbox = desk.sched().Outbox("T-5").value();
  int supervisor = 0, l2 = 0;
  for (const auto& o : outbox) {
    supervisor += o.recipient == "supervisor";
    l2 += o.recipient == "L2";
  }
  EXPECT_EQ(1, supervisor);
  EXPECT_EQ(1, l2);
  EXPECT_EQ(2u, outbox.size());
  auto txn = desk.engine().Get("T-5").value();
  EXPECT_EQ("L2", FindAttribute(txn.attributes, "assignment_group")->text());
  EXPECT_EQ(2, txn.version);  // create + one assignment change
}

TEST(Scheduler, C07ResolvedStraightFromPauseKeepsThePause) {
  Desk desk;
  ASSERT_TRUE(desk.sched().AddPolicy(Resolution(8)).ok());
  desk.Create("T-1", "2026-02-02T09:00:00Z");
  desk.Create("T-2", "2026-02-02T09:00:00Z");
  desk.Fire("T-1", "wait", "2026-02-02T11:00:00Z");
  desk.Fire("T-2", "wait", "2026-02-02T11:00:00Z");
  TickSummary day1 = desk.TickEvery("2026-02-02T11:00:00Z",
                                    "2026-02-03T14:30:00Z", kHour / 2);
  desk.Fire("T-1", "resolve", "2026-02-03T15:00:00Z");
  desk.Fire("T-2", "resume", "2026-02-03T15:00:00Z");
  desk.Fire("T-2", "resolve", "2026-02-03T16:00:00Z");
  TickSummary day2 = desk.TickEvery("2026-02-03T15:00:00Z",
                                    "2026-02-04T12:00:00Z", kHour / 2);

  SlaStatus asked = desk.StatusAt("T-1", "2026-02-02T20:00:00Z");
  EXPECT_EQ(SlaState::kPaused, asked.state);
  EXPECT_EQ(6 * kHour, asked.remaining.micros);
  SlaStatus t1 = desk.StatusAt("T-1", "2026-02-04T12:00:00Z");
  SlaStatus t2 = desk.StatusAt("T-2", "2026-02-04T12:00:00Z");
  EXPECT_EQ(SlaState::kMet, t1.state);
  EXPECT_EQ(2 * kHour, t1.counted.micros);
  EXPECT_EQ(28 * kHour, t1.paused.micros);
  EXPECT_EQ(T("2026-02-03T21:00:00Z"), *t1.due_at);
  EXPECT_EQ(SlaState::kMet, t2.state);
  EXPECT_EQ(3 * kHour, t2.counted.micros);
  EXPECT_EQ(28 * kHour, t2.paused.micros);
  EXPECT_EQ(T("2026-02-03T21:00:00Z"), *t2.due_at);
  EXPECT_EQ(0, day1.fired + day2.fired);
  EXPECT_TRUE(desk.sched().Events("").value().empty());
  EXPECT_EQ(0, desk.sched().PendingCount().value());
}

TEST(Scheduler, C08ReopenDoesNotCountTimeClosed) {
  Desk desk;
  ServicePolicy p = Resolution(4);
  p.sla.paused_states.clear();
  ASSERT_TRUE(desk.sched().AddPolicy(p).ok());
  for (const char* id : {"T-3", "T-4"}) {
    desk.Create(id, "2026-02-02T09:00:00Z");
    desk.Fire(id, "resolve", "2026-02-02T10:00:00Z");
  }
  desk.Fire("T-3", "close", "2026-02-02T10:30:00Z");
  TickSummary quiet = desk.TickEvery("2026-02-02T10:30:00Z",
                                     "2026-02-03T08:30:00Z", kHour / 2);
  desk.Fire("T-3", "reopen", "2026-02-03T09:00:00Z");
  desk.Fire("T-4", "reopen", "2026-02-03T09:00:00Z");
  TickSummary morning = desk.TickEvery("2026-02-03T09:00:00Z",
                                       "2026-02-03T10:30:00Z", kHour / 2);
  auto timers = desk.sched().Timers("T-3").value();
  SlaStatus check = desk.StatusAt("T-3", "2026-02-03T11:30:00Z");
  desk.Fire("T-3", "resolve", "2026-02-03T11:00:00Z");
  desk.Fire("T-4", "resolve", "2026-02-03T11:00:00Z");
  TickSummary late = desk.TickEvery("2026-02-03T11:00:00Z",
                                    "2026-02-03T14:00:00Z", kHour / 2);

  EXPECT_EQ(0, quiet.fired + morning.fired + late.fired);
  ASSERT_EQ(1u, timers.size());
  EXPECT_EQ("pending", timers[0].state);
  EXPECT_EQ(T("2026-02-03T12:00:00Z"), timers[0].due_at);
  EXPECT_NE(SlaState::kBreached, check.state);
  for (const char* id : {"T-3", "T-4"}) {
    SlaStatus st = desk.StatusAt(id, "2026-02-03T14:00:00Z");
    EXPECT_EQ(SlaState::kMet, st.state) << id;
    EXPECT_EQ(3 * kHour, st.counted.micros) << id;
  }
  EXPECT_TRUE(desk.sched().Events("").value().empty());
}

ServicePolicy Ladder() {
  ServicePolicy p = Resolution(4);
  EscalationStep warn;
  warn.share = 0.75;
  warn.actions = {EscalationAction::Notify("chat", "@assignment_group",
                                           "75 % of resolution used")};
  EscalationStep breach;
  breach.share = 1.0;
  breach.actions = {EscalationAction::FireEvent("escalate"),
                    EscalationAction::SetAttribute(
                        "priority", Value::Text("1 - Critical"))};
  p.escalation = {warn, breach};
  return p;
}

TEST(Scheduler, LadderFiresEachStepOnceInDueOrderAfterDowntime) {
  Desk desk;
  ASSERT_TRUE(desk.sched().AddPolicy(Ladder()).ok());
  desk.Create("T-6", "2026-02-02T09:00:00Z",
              {{"assignment_group", Value::Text("L1")},
               {"priority", Value::Text("3 - Moderate")}});

  TickSummary early = desk.Tick(T("2026-02-02T11:00:00Z"));
  TickSummary catch_up = desk.Tick(T("2026-02-02T20:00:00Z"));
  TickSummary again = desk.Tick(T("2026-02-03T20:00:00Z"));

  EXPECT_EQ(0, early.fired);
  EXPECT_EQ(2, catch_up.fired);  // 75 %, then the breach with its actions
  EXPECT_EQ(0, again.fired + again.cancelled + again.moved);
  auto events = desk.sched().Events("T-6").value();
  ASSERT_EQ(2u, events.size());
  EXPECT_EQ(T("2026-02-02T12:00:00Z"), events[0].time);
  EXPECT_EQ("threshold", events[0].kind);
  EXPECT_EQ(T("2026-02-02T13:00:00Z"), events[1].time);
  EXPECT_EQ(1, Count(events, "breach"));
  auto outbox = desk.sched().Outbox("T-6").value();
  ASSERT_EQ(1u, outbox.size());
  EXPECT_EQ("L1", outbox[0].recipient);
  auto txn = desk.engine().Get("T-6").value();
  EXPECT_EQ("escalated", txn.state);
  EXPECT_EQ("1 - Critical", FindAttribute(txn.attributes, "priority")->text());
}

TEST(Scheduler, PauseCancelsAndResumeMovesTheTimers) {
  Desk desk;
  ASSERT_TRUE(desk.sched().AddPolicy(Resolution(4)).ok());
  desk.Create("T-7", "2026-02-02T09:00:00Z");
  auto armed = desk.sched().Timers("T-7").value();
  desk.Fire("T-7", "wait", "2026-02-02T10:00:00Z");
  auto paused = desk.sched().Timers("T-7").value();
  TickSummary during = desk.Tick(T("2026-02-02T14:00:00Z"));
  desk.Fire("T-7", "resume", "2026-02-02T14:00:00Z");
  auto resumed = desk.sched().Timers("T-7").value();

  ASSERT_EQ(1u, armed.size());
  EXPECT_EQ(T("2026-02-02T13:00:00Z"), armed[0].due_at);
  EXPECT_EQ("cancelled", paused[0].state);
  EXPECT_EQ(0, during.fired);
  EXPECT_EQ("pending", resumed[0].state);
  EXPECT_EQ(T("2026-02-02T17:00:00Z"), resumed[0].due_at);
  EXPECT_EQ(1u, resumed.size());
}

TEST_F(SchedulerFileTest, TimersSurviveARestartAndFireOnce) {
  {
    Desk desk(path_);
    ASSERT_TRUE(desk.sched().AddPolicy(Ladder()).ok());
    desk.Create("T-8", "2026-02-02T09:00:00Z",
                {{"assignment_group", Value::Text("L1")}});
    EXPECT_EQ(1, desk.Tick(T("2026-02-02T12:00:00Z")).fired);
  }
  Desk desk(path_);
  ASSERT_TRUE(desk.sched().AddPolicy(Ladder()).ok());

  auto pending = desk.sched().PendingCount().value();
  TickSummary first = desk.Tick(T("2026-02-02T15:00:00Z"));
  TickSummary second = desk.Tick(T("2026-02-02T16:00:00Z"));

  EXPECT_EQ(1, pending);
  EXPECT_EQ(1, first.fired);
  EXPECT_EQ(0, second.fired);
  EXPECT_EQ(2u, desk.sched().Events("T-8").value().size());
}

TEST(Scheduler, RefusedActionMarksTheTimerFailedOnce) {
  Desk desk;
  ServicePolicy p = Resolution(1);
  EscalationStep step;
  step.share = 0.5;
  step.actions = {EscalationAction::FireEvent("close")};  // not from open
  p.escalation = {step};
  ASSERT_TRUE(desk.sched().AddPolicy(p).ok());
  desk.Create("T-9", "2026-02-02T09:00:00Z");

  TickSummary s = desk.Tick(T("2026-02-02T09:45:00Z"));
  TickSummary again = desk.Tick(T("2026-02-02T09:50:00Z"));

  EXPECT_EQ(1, s.failed);
  EXPECT_EQ(0, again.failed + again.fired);
  auto events = desk.sched().Events("T-9").value();
  ASSERT_EQ(1u, events.size());
  EXPECT_EQ("failed", events[0].kind);
  EXPECT_NE(std::string::npos, events[0].detail.find("close"));
  EXPECT_EQ("open", desk.engine().Get("T-9").value().state);
}

TEST(Scheduler, ConditionSelectsThePolicy) {
  Desk desk;
  ServicePolicy critical = Resolution(4);
  critical.name = "critical";
  critical.condition = {{"priority", "1 - Critical"}};
  ServicePolicy low = Resolution(40);
  low.name = "low";
  low.condition = {{"priority", "4 - Low"}};
  ASSERT_TRUE(desk.sched().AddPolicy(critical).ok());
  ASSERT_TRUE(desk.sched().AddPolicy(low).ok());
  desk.Create("A", "2026-02-02T09:00:00Z",
              {{"priority", Value::Text("1 - Critical")}});
  desk.Create("B", "2026-02-02T09:00:00Z",
              {{"priority", Value::Text("4 - Low")}});

  auto a = desk.sched().StatusOf("A", T("2026-02-02T10:00:00Z")).value();
  auto all = desk.sched().StatusAll("", T("2026-02-02T10:00:00Z")).value();

  ASSERT_EQ(1u, a.size());
  EXPECT_EQ("critical", a[0].policy);
  EXPECT_EQ(T("2026-02-02T13:00:00Z"), *a[0].status.due_at);
  ASSERT_EQ(2u, all.size());
  EXPECT_EQ("low", all[1].policy);
  EXPECT_EQ(T("2026-02-04T01:00:00Z"), *all[1].status.due_at);
}

BusinessCalendar Calendar(const char* zone,
                          const std::vector<WorkInterval>& hours,
                          bool weekdays) {
  CalendarSpec spec;
  spec.zone = TimeZone::Load(zone).value();
  if (weekdays) {
    spec.Weekdays(hours);
  } else {
    spec.EveryDay(hours);
  }
  return BusinessCalendar::Create(spec).value();
}

TEST(Scheduler, C06DeadlinesOnDaylightSavingDays) {
  Desk desk;
  ServicePolicy ny = Resolution(2);
  ny.name = "ny";
  ny.condition = {{"assignment_group", "NY"}};
  ny.sla.calendar = Calendar("America/New_York",
                             {WorkInterval::Hm(13, 0, 18, 0)}, false);
  ServicePolicy berlin = Resolution(16);
  berlin.name = "berlin";
  berlin.condition = {{"assignment_group", "BER"}};
  berlin.sla.calendar =
      Calendar("Europe/Berlin", {WorkInterval::Hm(9, 0, 17, 0)}, true);
  ASSERT_TRUE(desk.sched().AddPolicy(ny).ok());
  ASSERT_TRUE(desk.sched().AddPolicy(berlin).ok());

  desk.Create("DST", "2026-03-08T16:00:00Z",
              {{"assignment_group", Value::Text("NY")}});
  desk.Create("EST", "2026-03-07T17:00:00Z",
              {{"assignment_group", Value::Text("NY")}});
  desk.Create("BER", "2026-10-23T13:00:00Z",
              {{"assignment_group", Value::Text("BER")}});

  EXPECT_EQ(T("2026-03-08T19:00:00Z"),
            desk.sched().Timers("DST").value()[0].due_at);
  EXPECT_EQ(T("2026-03-07T20:00:00Z"),
            desk.sched().Timers("EST").value()[0].due_at);
  EXPECT_EQ(T("2026-10-27T14:00:00Z"),
            desk.sched().Timers("BER").value()[0].due_at);
  EXPECT_EQ(0, desk.Tick(T("2026-03-07T19:59:00Z")).fired);
  EXPECT_EQ(1, desk.Tick(T("2026-03-07T20:00:00Z")).fired);
}

TEST(Scheduler, ImpossiblePoliciesAreRefused) {
  Desk desk;
  ServicePolicy negative = Resolution(-1);
  ServicePolicy dup = Resolution(1);
  ServicePolicy bad_share = Resolution(1);
  bad_share.name = "bad_share";
  bad_share.escalation = {EscalationStep{-0.5, {}}};
  CalendarSpec closed;

  Status neg = desk.sched().AddPolicy(negative);
  ASSERT_TRUE(desk.sched().AddPolicy(dup).ok());
  Status twice = desk.sched().AddPolicy(dup);
  Status share = desk.sched().AddPolicy(bad_share);
  auto cal = BusinessCalendar::Create(closed);

  EXPECT_EQ(Code::kInvalidArgument, neg.code());
  EXPECT_NE(std::string::npos, neg.message().find("not positive"))
      << neg.message();
  EXPECT_EQ(Code::kInvalidArgument, twice.code());
  EXPECT_EQ(Code::kInvalidArgument, share.code());
  EXPECT_FALSE(cal.ok());
}

TEST_F(SchedulerFileTest, TimerRowsRollBackWithTheTransition) {
  Desk desk(path_);
  ASSERT_TRUE(desk.sched().AddPolicy(Resolution(4)).ok());
  ASSERT_TRUE(desk.engine().Begin().ok());
  desk.Create("T-10", "2026-02-02T09:00:00Z");
  ASSERT_TRUE(desk.engine().Rollback().ok());

  EXPECT_TRUE(desk.sched().Timers("").value().empty());
}

TEST_F(SchedulerFileTest, BulkArmAndTickInDueOrder) {
  Desk desk(path_);
  ASSERT_TRUE(desk.sched().AddPolicy(Resolution(4)).ok());
  desk.Create("A", "2026-02-02T09:00:00Z");
  desk.Create("B", "2026-02-02T08:00:00Z");
  std::vector<TimerSpec> extra = {
      {"A", "resolution", 0, T("2026-02-02T13:00:00Z")},  // exists: ignored
      {"ghost", "resolution", 0, T("2026-02-02T10:00:00Z")},
      {"A", "unknown_policy", 0, T("2026-02-02T09:30:00Z")}};

  int64_t inserted = desk.sched().ArmTimers(extra).value();
  TickSummary s = desk.Tick(T("2026-02-02T13:00:00Z"));

  EXPECT_EQ(2, inserted);
  EXPECT_EQ(2, s.fired);
  EXPECT_EQ(1, s.cancelled);
  EXPECT_EQ(1, desk.sched().PendingCount().value());  // unknown policy
  auto events = desk.sched().Events("").value();
  ASSERT_EQ(2u, events.size());
  EXPECT_EQ("B", events[0].transaction_id);
  EXPECT_EQ("A", events[1].transaction_id);
}

TEST(Scheduler, SyncAllArmsTransactionsStoredBeforeThePolicy) {
  Desk desk;
  desk.Create("OLD", "2026-02-02T09:00:00Z");
  desk.Fire("OLD", "wait", "2026-02-02T10:00:00Z");
  desk.Fire("OLD", "resume", "2026-02-02T12:00:00Z");
  ASSERT_TRUE(desk.sched().AddPolicy(Resolution(4)).ok());

  auto before = desk.sched().Timers("OLD").value();
  int64_t visited = desk.sched().SyncAll().value();
  auto after = desk.sched().Timers("OLD").value();

  EXPECT_TRUE(before.empty());
  EXPECT_EQ(1, visited);
  ASSERT_EQ(1u, after.size());
  EXPECT_EQ(T("2026-02-02T15:00:00Z"), after[0].due_at);  // 4 h + 2 h pause
}

}  // namespace
}  // namespace crmflow
