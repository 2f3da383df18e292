// routing_test.cc: teams, strategies, round-robin persistence and hand-over
// figures of routing.h.

#include "crmflow/routing.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace crmflow {
namespace {

Timestamp At(int day, int hour) {
  return Timestamp::FromCivilUtc(2026, 3, day, hour, 0, 0, 0).value();
}

Workflow ServiceRequest() {
  Workflow wf("service_request", 1);
  EXPECT_TRUE(wf.AddState("new", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("closed", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddTransition({"close", "new", "closed"}).ok());
  for (const char* a : {"team", "assignee", "category"}) {
    EXPECT_TRUE(wf.AddAttribute({a, ValueType::kText, false}).ok());
  }
  return wf;
}

std::unique_ptr<Engine> OpenEngine(const std::string& path) {
  EngineOptions options;
  options.path = path;
  options.clock = [] { return At(2, 10); };  // a Monday, 10:00 UTC
  auto engine = Engine::Open(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_TRUE(engine.value()->Register(ServiceRequest(), "{}").ok());
  return std::move(engine).value();
}

void CreateRequest(Engine& engine, const std::string& id,
                   const std::string& category = "") {
  crmflow::CreateRequest req;
  req.kind = "service_request";
  req.id = id;
  if (!category.empty()) {
    req.attributes = {{"category", Value::Text(category)}};
  }
  auto t = engine.Create(req);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
}

Team MakeTeam(const std::string& name, std::vector<std::string> ids,
              const std::string& strategy = "round_robin") {
  Team t;
  t.name = name;
  t.strategy = strategy;
  for (auto& id : ids) t.members.push_back(Member{id, {}, 0, true, {}});
  return t;
}

// Assigns `count` new requests to `team` one at a time; returns the
// assignees joined by commas.
std::string AssignMany(Engine& engine, Router& router, const std::string& team,
                       int count, int* serial) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    std::string id = "SR-" + std::to_string((*serial)++);
    CreateRequest(engine, id);
    AssignOptions o;
    o.team = team;
    auto a = router.Assign(id, o);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    if (!a.ok()) return out;
    if (!out.empty()) out += ",";
    out += a->member;
  }
  return out;
}

class RoutingTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      path_ = (std::filesystem::temp_directory_path() /
               ("routing_test_" + std::to_string(::getpid()) + ".db"))
                  .string();
      std::filesystem::remove(path_);
    }
    engine_ = OpenEngine(path_);
    auto r = Router::Attach(engine_.get());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    router_ = std::move(r).value();
  }
  void TearDown() override {
    router_.reset();
    engine_.reset();
    if (!path_.empty()) {
      for (const char* suffix : {"", "-wal", "-shm"}) {
        std::filesystem::remove(path_ + suffix);
      }
    }
  }

  std::string path_;  // "" for the memory store
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Router> router_;
  int serial_ = 1;
};

TEST_P(RoutingTest, C10RoundRobinVisitsEveryMemberInTurn) {
  ASSERT_TRUE(router_->AddTeam(MakeTeam("desk", {"A", "B", "C", "D", "E",
                                                 "F"}))
                  .ok());
  EXPECT_EQ("A,B,C,D,E,F,A,B,C,D,E,F",
            AssignMany(*engine_, *router_, "desk", 12, &serial_));

  ASSERT_TRUE(router_->AddTeam(MakeTeam("desk", {"A", "B", "C", "D"})).ok());
  EXPECT_EQ("A,B,C,D,A,B,C,D",
            AssignMany(*engine_, *router_, "desk", 8, &serial_));

  ASSERT_TRUE(
      router_->AddTeam(MakeTeam("desk", {"A", "B", "C", "D", "E"})).ok());
  EXPECT_EQ("A,B,C,D,E,A,B,C,D,E",
            AssignMany(*engine_, *router_, "desk", 10, &serial_));
}

TEST_P(RoutingTest, C10SeparatePools) {
  ASSERT_TRUE(
      router_->AddTeam(MakeTeam("six", {"A", "B", "C", "D", "E", "F"})).ok());
  ASSERT_TRUE(router_->AddTeam(MakeTeam("four", {"A", "B", "C", "D"})).ok());
  ASSERT_TRUE(
      router_->AddTeam(MakeTeam("five", {"A", "B", "C", "D", "E"})).ok());

  EXPECT_EQ("A,B,C,D,E,F,A,B,C,D,E,F",
            AssignMany(*engine_, *router_, "six", 12, &serial_));
  EXPECT_EQ("A,B,C,D,A,B,C,D",
            AssignMany(*engine_, *router_, "four", 8, &serial_));
  EXPECT_EQ("A,B,C,D,E,A,B,C,D,E",
            AssignMany(*engine_, *router_, "five", 10, &serial_));
}

TEST_P(RoutingTest, RollbackDoesNotAdvanceThePosition) {
  ASSERT_TRUE(router_->AddTeam(MakeTeam("desk", {"A", "B", "C", "D"})).ok());
  EXPECT_EQ("A", AssignMany(*engine_, *router_, "desk", 1, &serial_));
  CreateRequest(*engine_, "SR-X");

  ASSERT_TRUE(engine_->Begin().ok());
  AssignOptions o;
  o.team = "desk";
  auto a = router_->Assign("SR-X", o);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ("B", a->member);
  ASSERT_TRUE(engine_->Rollback().ok());

  EXPECT_EQ(1, router_->Position("desk").value());
  const Value* assignee =
      FindAttribute(engine_->Get("SR-X")->attributes, "assignee");
  EXPECT_TRUE(assignee == nullptr || assignee->is_null());
  EXPECT_EQ(1u, router_->Assignments("").value().size());
  auto again = router_->Assign("SR-X", o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ("B", again->member);
}

TEST_P(RoutingTest, AbsentAndOffShiftMembersAreSkipped) {
  ASSERT_TRUE(router_->AddTeam(MakeTeam("desk", {"A", "B", "C"})).ok());
  ASSERT_TRUE(router_->SetAvailable("desk", "B", false).ok());
  // C works 14:00-22:00 UTC; the clock says 10:00.
  CalendarSpec spec;
  spec.EveryDay({WorkInterval::Hm(14, 0, 22, 0)});
  ASSERT_TRUE(
      router_->SetCalendar("desk", "C", BusinessCalendar::Create(spec).value())
          .ok());

  EXPECT_EQ("A,A,A", AssignMany(*engine_, *router_, "desk", 3, &serial_));

  // At 15:00 C is on shift and comes in turn after A.
  CreateRequest(*engine_, "SR-late");
  AssignOptions o;
  o.team = "desk";
  o.time = At(2, 15);
  EXPECT_EQ("C", router_->Assign("SR-late", o)->member);
  ASSERT_TRUE(router_->SetAvailable("desk", "A", false).ok());
  CreateRequest(*engine_, "SR-night");
  o.time = At(2, 23);
  auto none = router_->Assign("SR-night", o);
  EXPECT_EQ(Code::kNotFound, none.status().code());
}

TEST_P(RoutingTest, LeastLoadedCountsOpenTransactions) {
  ASSERT_TRUE(
      router_->AddTeam(MakeTeam("desk", {"A", "B", "C"}, "least_loaded"))
          .ok());
  EXPECT_EQ("A,B,C", AssignMany(*engine_, *router_, "desk", 3, &serial_));
  ASSERT_TRUE(engine_->Fire("SR-2", "close", {}).ok());
  ASSERT_TRUE(engine_->Fire("SR-3", "close", {}).ok());

  // Open: A 1, B 0, C 0.  The scan starts at A (position 0): B wins; then
  // C (0 open); then all hold 1 and the scan from A picks A.
  EXPECT_EQ("B,C,A", AssignMany(*engine_, *router_, "desk", 3, &serial_));

  auto loads = router_->Loads().value();
  ASSERT_EQ(3u, loads.size());
  EXPECT_EQ("A", loads[0].member);
  EXPECT_EQ(2, loads[0].open);  // SR-1, SR-6
  EXPECT_EQ(2, loads[0].assigned);
  EXPECT_EQ(1, loads[1].open);  // B: SR-4 (SR-2 closed)
  EXPECT_EQ(2, loads[1].assigned);
  EXPECT_EQ(1, loads[2].open);  // C: SR-5
}

TEST_P(RoutingTest, CapacityLimitsOpenWork) {
  Team t = MakeTeam("desk", {"A", "B"});
  t.members[0].capacity = 1;
  ASSERT_TRUE(router_->AddTeam(t).ok());
  EXPECT_EQ("A,B,B,B", AssignMany(*engine_, *router_, "desk", 4, &serial_));
}

TEST_P(RoutingTest, SkillsRequireAllAndTieBreakRoundRobin) {
  Team t = MakeTeam("desk", {"A", "B", "C", "D"}, "skills");
  t.members[0].skills = {"vpn"};
  t.members[1].skills = {"vpn", "sap"};
  t.members[2].skills = {"sap"};
  t.members[3].skills = {"sap", "vpn", "de"};
  ASSERT_TRUE(router_->AddTeam(t).ok());
  RoutingRule rule;
  rule.team = "desk";
  rule.equals = {{"category", Value::Text("sap-vpn")}};
  rule.skills = {"vpn", "sap"};
  ASSERT_TRUE(router_->AddRule(rule).ok());

  std::string got;
  for (int i = 0; i < 4; ++i) {
    std::string id = "SK-" + std::to_string(i);
    CreateRequest(*engine_, id, "sap-vpn");
    auto a = router_->Assign(id, {});
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    got += a->member;
  }

  EXPECT_EQ("BDBD", got);
}

TEST_P(RoutingTest, RulesPickTheFirstMatchingTeam) {
  ASSERT_TRUE(router_->AddTeam(MakeTeam("network", {"N"})).ok());
  ASSERT_TRUE(router_->AddTeam(MakeTeam("general", {"G"})).ok());
  RoutingRule net;
  net.team = "network";
  net.kind = "service_request";
  net.condition = "category in ['net', 'vpn']";
  ASSERT_TRUE(router_->AddRule(net).ok());
  RoutingRule rest;
  rest.team = "general";
  ASSERT_TRUE(router_->AddRule(rest).ok());
  CreateRequest(*engine_, "R-1", "vpn");
  CreateRequest(*engine_, "R-2", "billing");

  EXPECT_EQ("network", router_->Route("R-1").value());
  EXPECT_EQ("general", router_->Route("R-2").value());
  auto a = router_->Assign("R-1", {});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ("N", a->member);
  EXPECT_EQ("rule 1; round_robin", a->reason);

  RoutingRule bad;
  bad.team = "network";
  bad.kind = "service_request";
  bad.condition = "categroy = 'x'";
  EXPECT_EQ(Code::kParseError, router_->AddRule(bad).code());
}

TEST_P(RoutingTest, CustomStrategyChoosesAmongEligible) {
  ASSERT_TRUE(router_
                  ->RegisterStrategy("last",
                                     [](const StrategyContext& ctx)
                                         -> StatusOr<std::string> {
                                       return ctx.eligible.back()->id;
                                     })
                  .ok());
  ASSERT_TRUE(router_->AddTeam(MakeTeam("desk", {"A", "B", "C"}, "last")).ok());
  ASSERT_TRUE(router_->SetAvailable("desk", "C", false).ok());

  EXPECT_EQ("B,B", AssignMany(*engine_, *router_, "desk", 2, &serial_));
  EXPECT_EQ(Code::kInvalidArgument,
            router_->RegisterStrategy("round_robin", nullptr).code());
}

TEST_P(RoutingTest, HandoversCountPingPong) {
  ASSERT_TRUE(router_->AddTeam(MakeTeam("a", {"A1", "A2"})).ok());
  ASSERT_TRUE(router_->AddTeam(MakeTeam("b", {"B1"})).ok());
  CreateRequest(*engine_, "H-1");
  AssignOptions o;
  for (const char* team : {"a", "b", "a", "a"}) {
    o.team = team;
    ASSERT_TRUE(router_->Assign("H-1", o).ok());
  }

  HandoverReport r = router_->Handovers().value();
  // a -> b -> a (ping-pong back to a), then a member change within a.
  EXPECT_EQ(2, r.handovers);
  EXPECT_EQ(1, r.ping_pongs);
  ASSERT_EQ(2u, r.teams.size());
  EXPECT_EQ("a", r.teams[0].team);
  EXPECT_EQ(1, r.teams[0].ping_pongs);
  EXPECT_EQ(2, r.teams[0].reassignments);  // to b, then A1 -> A2
  EXPECT_EQ(1, r.teams[1].reassignments);
  EXPECT_EQ(1, (r.pairs[{"a", "b"}]));
}

INSTANTIATE_TEST_SUITE_P(Stores, RoutingTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Sqlite" : "Memory";
                         });

TEST(RoutingPersistence, RoundRobinPositionSurvivesRestart) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("routing_restart_" + std::to_string(::getpid()) +
                       ".db"))
                         .string();
  std::filesystem::remove(path);
  int serial = 1;
  {
    auto engine = OpenEngine(path);
    auto router = Router::Attach(engine.get()).value();
    ASSERT_TRUE(router->AddTeam(MakeTeam("desk", {"A", "B", "C", "D"})).ok());
    EXPECT_EQ("A,B,C", AssignMany(*engine, *router, "desk", 3, &serial));
  }

  auto engine = OpenEngine(path);
  auto router = Router::Attach(engine.get()).value();

  EXPECT_EQ(3, router->Position("desk").value());
  ASSERT_EQ(4u, router->GetTeam("desk")->members.size());
  EXPECT_EQ("D,A,B", AssignMany(*engine, *router, "desk", 3, &serial));
  EXPECT_EQ(6u, router->Assignments("").value().size());
  router.reset();
  engine.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path + suffix);
  }
}

TEST(ComputeHandovers, StrictConsecutiveNonMissing) {
  std::vector<TeamObservation> obs = {
      {"I1", "g1"}, {"I2", "g3"}, {"I1", "g1"}, {"I1", "g2"},
      {"I1", ""},   {"I1", "g1"}, {"I1", "g2"}, {"I1", "g1"},
      {"I2", "g4"}};

  HandoverReport r = ComputeHandovers(obs);

  // I1: g1->g2, (missing breaks g2..g1), g1->g2, g2->g1 (back to g1);
  // I2: g3->g4.
  EXPECT_EQ(4, r.handovers);
  EXPECT_EQ(1, r.ping_pongs);
  EXPECT_EQ(2, (r.pairs[{"g1", "g2"}]));
}

}  // namespace
}  // namespace crmflow
