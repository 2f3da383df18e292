// routing.h: routing CRM transactions to teams and assigning them to
// members.
//
// A Router is attached to an Engine.  It knows teams (departments), each
// with an ordered list of members; a member has skills, a capacity (the
// most open transactions it may hold) and is available or absent, and may
// follow a BusinessCalendar (off shift while the calendar is closed).
// Routing has two steps:
//
//   1. the team: the first routing rule that matches the transaction wins
//      (rules are tried in the order added); a rule matches when every
//      attribute in `equals` has the given value and its `condition` (an
//      expression of expr.h, read against the transaction's attributes)
//      holds.  AssignOptions::team skips the rules.
//   2. the member, by the team's strategy:
//        "round_robin"   members in list order, each in turn;
//        "least_loaded"  fewest open transactions (not in a terminal
//                        state) whose `assignee` is the member; ties go
//                        round-robin;
//        "skills"        members with all required skills; ties go
//                        round-robin;
//        any name given to RegisterStrategy (a callback).
//      Absent members, members off shift and members at capacity are never
//      eligible (a custom strategy sees only the eligible ones).
//
// Round-robin position: each team has one position, the index in its
// member list where the next scan starts.  It is advanced exactly once per
// committed assignment (to the member after the chosen one, modulo the
// list size), never on selection alone, and it is stored in the
// routing_state table in the engine's store transaction, so it rolls back
// with the transaction and survives restarts.  After the member list
// changes, the stored position is read modulo the new size.
//
// Assignment writes the attributes `team` and `assignee` (text) of the
// transaction through Engine::SetAttributes; the kind's workflow must
// declare both as text attributes (the service_request template does),
// else Assign fails with kInvalidArgument.  Each assignment also appends a
// row to the assignments table (transaction, team, member, time, reason,
// previous team and member), from which the statistics are computed.
//
// Tables (SQLite stores; created with CREATE TABLE IF NOT EXISTS, listed
// in docs/schema.md): teams, team_members, routing_state, assignments.
// With the memory store the same data is kept in the Router; see Attach
// for how its rows follow a rollback.  Calendars, rules and strategies are
// not stored: they are set up again by the program after a restart.
//
// Example:
//
//   auto router = crmflow::Router::Attach(engine.get()).value();
//   crmflow::Team t{.name = "network", .strategy = "round_robin"};
//   t.members = {{.id = "ann"}, {.id = "bob", .skills = {"vpn"}}};
//   router->AddTeam(t);
//   router->AddRule({.team = "network",
//                    .equals = {{"category", crmflow::Value::Text("net")}}});
//   auto a = router->Assign("SR-1", {});
//   if (a.ok()) std::cout << a->team << " " << a->member << "\n";
//
// A Router is not thread-safe; use it from its engine's thread only.  It
// must not outlive its Engine.

#ifndef CRMFLOW_ROUTING_H_
#define CRMFLOW_ROUTING_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/calendar.h"
#include "crmflow/engine.h"
#include "crmflow/status.h"
#include "crmflow/value.h"

namespace crmflow {

// One member of a team.
struct Member {
  std::string id;                   // the assignee name; required
  std::vector<std::string> skills;  // any order
  int64_t capacity = 0;             // most open transactions; 0: no limit
  bool available = true;            // false: absent, never assigned
  // When set, the member is off shift (never assigned) while it is
  // closed.  Not stored.
  std::optional<BusinessCalendar> calendar;
};

// A team (department) with its members in round-robin order.
struct Team {
  std::string name;              // required, unique
  std::vector<Member> members;   // ids unique within the team
  std::string strategy = "round_robin";
};

// A rule routing matching transactions to `team`.
struct RoutingRule {
  std::string team;
  // Only transactions of this kind; "" matches every kind.
  std::string kind;
  // Every named attribute must equal the value (a missing one never does).
  Attributes equals;
  // An expression of expr.h over the transaction's attributes, e.g.
  // "priority in ['1', '2'] and channel = 'phone'"; "" for none.
  std::string condition;
  // Skills required of the member (used by the "skills" strategy).
  std::vector<std::string> skills;
};

// Options of one Assign call.
struct AssignOptions {
  // The team; "" routes by the rules.
  std::string team;
  // Required skills; empty takes the matching rule's.
  std::vector<std::string> skills;
  std::optional<Timestamp> time;  // default: the engine's clock
  std::string reason;             // default: describes rule and strategy
};

// One assignment, as stored in the assignments table.
struct Assignment {
  int64_t id = 0;  // increasing
  std::string transaction_id;
  std::string team;
  std::string member;
  Timestamp time;
  std::string reason;
  std::string previous_team;    // "" when the transaction had none
  std::string previous_member;  // "" when none
};

// What a custom strategy sees.  References are valid only during the call.
struct StrategyContext {
  const Transaction& txn;
  const Team& team;
  // The eligible members in list order (available, on shift, below
  // capacity and, when skills are required, having all of them).
  const std::vector<const Member*>& eligible;
  // Open transactions per member id (every member of the team).
  const std::map<std::string, int64_t>& open;
  const std::vector<std::string>& skills;  // required skills
  int64_t position;  // the team's round-robin position
  Timestamp time;
};

// Returns the chosen member's id, "" to assign nobody (Assign then fails
// with kNotFound), or a failure, which Assign returns.  May throw; the
// exception propagates out of Assign after the rollback.
using StrategyFn = std::function<StatusOr<std::string>(const StrategyContext&)>;

// Current load of one member.
struct MemberLoad {
  std::string team;
  std::string member;
  int64_t open = 0;      // open transactions with this assignee
  int64_t assigned = 0;  // assignments to this member in this team
};

// One team's share of a series of hand-overs.
struct TeamFlow {
  std::string team;
  int64_t handovers_in = 0;   // hand-overs to this team
  int64_t handovers_out = 0;  // hand-overs from this team
  // Hand-overs to this team from the team it had just handed over to
  // (A -> B -> A counts one for A).
  int64_t ping_pongs = 0;
  // Assignments of transactions held by this team that changed the team
  // or the member (from the assignments table; 0 in ComputeHandovers).
  int64_t reassignments = 0;
};

// Hand-over figures.
struct HandoverReport {
  std::vector<TeamFlow> teams;  // ordered by team name
  // (from, to) -> number of hand-overs.
  std::map<std::pair<std::string, std::string>, int64_t> pairs;
  int64_t handovers = 0;
  int64_t ping_pongs = 0;
};

// One observation of a transaction's team, in the order they happened.
struct TeamObservation {
  std::string transaction_id;
  std::string team;  // "" when unknown (missing in the data)
};

// Counts hand-overs in `observations`, which lists each transaction's
// observations in time order (transactions may interleave).  A hand-over
// is two consecutive observations of one transaction with two different
// non-empty teams; a ping-pong is a hand-over back to the team the
// previous hand-over of the transaction came from.
HandoverReport ComputeHandovers(
    const std::vector<TeamObservation>& observations);

class Router {
 public:
  // Attaches a router to `engine` (not owned; must outlive the router),
  // creating its tables when absent and loading the stored teams.  With
  // the memory store, rows written inside an explicit Engine::Begin are
  // checked against the transaction's version when next used outside it,
  // and dropped (position included) when the engine rolled them back.
  // Fails with kStoreError naming the table.
  static StatusOr<std::unique_ptr<Router>> Attach(Engine* engine);
  ~Router();

  // Adds or replaces team `team.name` (its stored position is kept).
  // Fails with kInvalidArgument for an empty name, an empty or duplicate
  // member id, a negative capacity, or an unknown strategy.
  Status AddTeam(Team team);
  // Removes team `name` and its position.  Fails with kNotFound.
  Status RemoveTeam(std::string_view name);
  // Returns the teams ordered by name.
  std::vector<Team> teams() const;
  // Returns team `name`, or kNotFound listing the teams.
  StatusOr<Team> GetTeam(std::string_view name) const;

  // Marks member `member` of `team` available or absent (stored).  Fails
  // with kNotFound naming the team or member.
  Status SetAvailable(std::string_view team, std::string_view member,
                      bool available);
  // Sets (or with nullopt clears) the member's shift calendar.  Not
  // stored.  Fails with kNotFound.
  Status SetCalendar(std::string_view team, std::string_view member,
                     std::optional<BusinessCalendar> calendar);

  // Appends a routing rule.  Fails with kNotFound for an unknown team and
  // kParseError for a condition that does not parse against the rule's
  // kind (checked now when the kind is registered, else at first use).
  Status AddRule(RoutingRule rule);
  // Drops every rule.
  void ClearRules();
  const std::vector<RoutingRule>& rules() const { return rules_; }

  // Registers strategy `name` (replacing one of that name; the built-in
  // names cannot be replaced: kInvalidArgument).
  Status RegisterStrategy(std::string name, StrategyFn fn);
  // Drops every custom strategy (used before the binding's interpreter
  // goes).
  void ClearStrategies();

  // Returns the team the rules give transaction `id`, or kNotFound
  // naming it when no rule matches.
  StatusOr<std::string> Route(std::string_view id);

  // Routes and assigns transaction `id` (one store transaction: the
  // attributes, the assignments row and the position commit together).
  // Fails with kNotFound (unknown transaction or team, no rule matching,
  // no eligible member), kInvalidArgument (the kind does not declare
  // `team` and `assignee` as text), kConcurrentUpdate, kStoreError, or a
  // custom strategy's failure.
  StatusOr<Assignment> Assign(std::string_view id,
                              const AssignOptions& options);

  // Returns the team's round-robin position (0 when never used).
  StatusOr<int64_t> Position(std::string_view team);

  // Returns the assignments of `transaction_id` ("" for all), by id.
  StatusOr<std::vector<Assignment>> Assignments(
      std::string_view transaction_id);

  // Returns the load of every member of every team, by team and list
  // order.
  StatusOr<std::vector<MemberLoad>> Loads();
  // Returns hand-over figures of the assignments (reassignments filled).
  StatusOr<HandoverReport> Handovers();

 private:
  explicit Router(Engine* engine);
  struct Impl;

  Engine* engine_;
  std::vector<RoutingRule> rules_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crmflow

#endif  // CRMFLOW_ROUTING_H_
