// routing.cc: teams, routing rules, assignment strategies and hand-over
// statistics; see routing.h.

#include "crmflow/routing.h"

#include <sqlite3.h>

#include <algorithm>
#include <set>
#include <utility>

#include "crmflow/expr.h"
#include "crmflow/workflow.h"
#include "sqlite_handle.h"
#include "sql_statement.h"

namespace crmflow {
namespace {

constexpr const char* kBuiltins[] = {"round_robin", "least_loaded", "skills"};

std::string Quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

bool IsBuiltin(std::string_view name) {
  for (const char* b : kBuiltins) {
    if (name == b) return true;
  }
  return false;
}

std::string JoinSkills(const std::vector<std::string>& skills) {
  std::string out;
  for (const std::string& s : skills) {
    if (!out.empty()) out += ",";
    out += s;
  }
  return out;
}

std::vector<std::string> SplitSkills(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    if (comma > start) out.emplace_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::string TextAttribute(const Transaction& txn, std::string_view name) {
  const Value* v = FindAttribute(txn.attributes, name);
  if (v == nullptr || v->type() != ValueType::kText) return "";
  return v->text();
}

// A statement whose errors name this module.
class Stmt : public SqlStatement {
 public:
  Stmt(sqlite3* db, const char* sql)
      : SqlStatement(db, sql, "routing") {}
};

Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  return SqlExec(db, sql, "routing", what);
}

// Runs one statement that returns no rows.
Status Run(Stmt& stmt, std::string_view what) {
  if (!stmt.ok()) return stmt.Error(what);
  int rc = stmt.Step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return stmt.Error(what);
  return Status::Ok();
}

constexpr const char* kSchemaSql =
    "CREATE TABLE IF NOT EXISTS teams(name TEXT PRIMARY KEY, strategy TEXT);"
    "CREATE TABLE IF NOT EXISTS team_members(team TEXT, member TEXT, "
    "position INTEGER, skills TEXT, capacity INTEGER, available INTEGER, "
    "PRIMARY KEY (team, member));"
    "CREATE TABLE IF NOT EXISTS routing_state(team TEXT PRIMARY KEY, "
    "position INTEGER);"
    "CREATE TABLE IF NOT EXISTS assignments(id INTEGER PRIMARY KEY, "
    "transaction_id TEXT, team TEXT, member TEXT, time TEXT, reason TEXT, "
    "previous_team TEXT NULL, previous_member TEXT NULL);"
    "CREATE INDEX IF NOT EXISTS assignments_by_transaction ON "
    "assignments(transaction_id, id);";

}  // namespace

HandoverReport ComputeHandovers(
    const std::vector<TeamObservation>& observations) {
  // Per transaction: the last observed team ("" when the previous
  // observation was missing) and the source of its last hand-over.
  struct Last {
    std::string team;
    std::string handover_from;
  };
  std::map<std::string, Last, std::less<>> last;
  std::map<std::string, TeamFlow, std::less<>> flows;
  HandoverReport report;
  for (const TeamObservation& o : observations) {
    auto [it, fresh] = last.try_emplace(o.transaction_id);
    Last& l = it->second;
    if (!o.team.empty()) flows[o.team].team = o.team;
    if (!fresh && !l.team.empty() && !o.team.empty() && l.team != o.team) {
      ++report.handovers;
      ++report.pairs[{l.team, o.team}];
      ++flows[l.team].handovers_out;
      TeamFlow& to = flows[o.team];
      ++to.handovers_in;
      if (l.handover_from == o.team) {
        ++to.ping_pongs;
        ++report.ping_pongs;
      }
      l.handover_from = l.team;
    }
    l.team = o.team;
  }
  for (auto& [name, flow] : flows) report.teams.push_back(std::move(flow));
  return report;
}

struct Router::Impl {
  // An assignment written inside an explicit engine transaction on the
  // memory store, kept until it is known to have been committed.
  struct Pending {
    std::string transaction_id;
    int64_t version = 0;  // the transaction's version after the write
    std::string member;
    std::string team;
    int64_t old_position = 0;
    int64_t assignment_id = 0;
  };

  sqlite3* db = nullptr;
  std::map<std::string, Team, std::less<>> teams;
  std::map<std::string, StrategyFn, std::less<>> strategies;
  // Parsed conditions by rule index and kind.
  std::vector<std::map<std::string, Expression, std::less<>>> conditions;
  // Memory store only.
  std::map<std::string, int64_t, std::less<>> positions;
  std::vector<Assignment> assignments;
  std::vector<Pending> pending;
  int64_t next_id = 1;

  Status Sync(Engine& engine);
};

Router::Router(Engine* engine)
    : engine_(engine), impl_(std::make_unique<Impl>()) {}

Router::~Router() = default;

StatusOr<std::unique_ptr<Router>> Router::Attach(Engine* engine) {
  std::unique_ptr<Router> router(new Router(engine));
  Impl& im = *router->impl_;
  im.db = SqliteHandle(engine->store());
  if (im.db == nullptr) return router;

  // Create the tables and read the stored teams back.
  CRMFLOW_RETURN_IF_ERROR(Exec(im.db, kSchemaSql, "create tables"));
  Stmt s(im.db, "SELECT name, strategy FROM teams ORDER BY name");
  auto teams = ReadRows<Team>(s, "read teams", [](SqlStatement& row) {
    Team t;
    t.name = row.ColumnText(0);
    t.strategy = row.ColumnText(1);
    return t;
  });
  if (!teams.ok()) return teams.status();
  for (Team& t : *teams) {
    std::string name = t.name;
    im.teams[name] = std::move(t);
  }
  Stmt m(im.db,
         "SELECT team, member, skills, capacity, available FROM team_members "
         "ORDER BY team, position");
  auto members = ReadRows<std::pair<std::string, Member>>(
      m, "read team_members", [](SqlStatement& row) {
        Member member;
        member.id = row.ColumnText(1);
        member.skills = SplitSkills(row.ColumnText(2));
        member.capacity = row.ColumnInt(3);
        member.available = row.ColumnInt(4) != 0;
        return std::make_pair(row.ColumnText(0), std::move(member));
      });
  if (!members.ok()) return members.status();
  for (auto& [team, member] : *members) {
    auto it = im.teams.find(team);
    if (it == im.teams.end()) continue;
    it->second.members.push_back(std::move(member));
  }
  return router;
}

Status Router::AddTeam(Team team) {
  Impl& im = *impl_;
  if (team.name.empty()) {
    return Status(Code::kInvalidArgument, "team: empty name");
  }
  if (!IsBuiltin(team.strategy) && im.strategies.count(team.strategy) == 0) {
    std::string known = "round_robin, least_loaded, skills";
    for (const auto& [name, fn] : im.strategies) known += ", " + name;
    return Status(Code::kInvalidArgument,
                  "team " + Quote(team.name) + ": unknown strategy " +
                      Quote(team.strategy) + " (expected " + known + ")");
  }
  std::set<std::string> seen;
  for (const Member& m : team.members) {
    if (m.id.empty()) {
      return Status(Code::kInvalidArgument,
                    "team " + Quote(team.name) + ": member with empty id");
    }
    if (!seen.insert(m.id).second) {
      return Status(Code::kInvalidArgument, "team " + Quote(team.name) +
                                                ": member " + Quote(m.id) +
                                                " given twice");
    }
    if (m.capacity < 0) {
      return Status(Code::kInvalidArgument,
                    "team " + Quote(team.name) + ": member " + Quote(m.id) +
                        " has negative capacity " +
                        std::to_string(m.capacity));
    }
    for (const std::string& s : m.skills) {
      if (s.empty() || s.find(',') != std::string::npos) {
        return Status(Code::kInvalidArgument,
                      "team " + Quote(team.name) + ": member " + Quote(m.id) +
                          ": bad skill " + Quote(s) +
                          " (expected a non-empty name without commas)");
      }
    }
  }

  if (im.db != nullptr) {
    // Replace the team's rows in one transaction; the position stays.
    CRMFLOW_RETURN_IF_ERROR(engine_->Begin());
    Status st = [&]() -> Status {
      Stmt t(im.db, "INSERT OR REPLACE INTO teams(name, strategy) "
                    "VALUES (?1, ?2)");
      t.Bind(1, team.name);
      t.Bind(2, team.strategy);
      CRMFLOW_RETURN_IF_ERROR(Run(t, "write teams"));
      Stmt d(im.db, "DELETE FROM team_members WHERE team = ?1");
      d.Bind(1, team.name);
      CRMFLOW_RETURN_IF_ERROR(Run(d, "write team_members"));
      for (size_t i = 0; i < team.members.size(); ++i) {
        const Member& m = team.members[i];
        Stmt s(im.db,
               "INSERT INTO team_members(team, member, position, skills, "
               "capacity, available) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
        s.Bind(1, team.name);
        s.Bind(2, m.id);
        s.Bind(3, static_cast<int64_t>(i));
        s.Bind(4, JoinSkills(m.skills));
        s.Bind(5, m.capacity);
        s.Bind(6, m.available ? 1 : 0);
        CRMFLOW_RETURN_IF_ERROR(Run(s, "write team_members"));
      }
      return Status::Ok();
    }();
    if (!st.ok()) {
      (void)engine_->Rollback();
      return st;
    }
    CRMFLOW_RETURN_IF_ERROR(engine_->Commit());
  }
  std::string name = team.name;
  im.teams[name] = std::move(team);
  return Status::Ok();
}

Status Router::RemoveTeam(std::string_view name) {
  Impl& im = *impl_;
  auto it = im.teams.find(name);
  if (it == im.teams.end()) {
    return Status(Code::kNotFound, "team " + Quote(name) + " not found");
  }
  if (im.db != nullptr) {
    CRMFLOW_RETURN_IF_ERROR(engine_->Begin());
    Status st = Status::Ok();
    for (const char* sql : {"DELETE FROM teams WHERE name = ?1",
                            "DELETE FROM team_members WHERE team = ?1",
                            "DELETE FROM routing_state WHERE team = ?1"}) {
      Stmt s(im.db, sql);
      s.Bind(1, name);
      st = Run(s, "remove team");
      if (!st.ok()) break;
    }
    if (!st.ok()) {
      (void)engine_->Rollback();
      return st;
    }
    CRMFLOW_RETURN_IF_ERROR(engine_->Commit());
  }
  im.positions.erase(std::string(name));
  im.teams.erase(it);
  return Status::Ok();
}

std::vector<Team> Router::teams() const {
  std::vector<Team> out;
  for (const auto& [name, team] : impl_->teams) out.push_back(team);
  return out;
}

StatusOr<Team> Router::GetTeam(std::string_view name) const {
  auto it = impl_->teams.find(name);
  if (it != impl_->teams.end()) return it->second;
  std::string known;
  for (const auto& [n, t] : impl_->teams) {
    known += known.empty() ? n : ", " + n;
  }
  return Status(Code::kNotFound, "team " + Quote(name) + " not found (teams: " +
                                     (known.empty() ? "none" : known) + ")");
}

Status Router::SetAvailable(std::string_view team, std::string_view member,
                            bool available) {
  auto it = impl_->teams.find(team);
  if (it == impl_->teams.end()) return GetTeam(team).status();
  for (Member& m : it->second.members) {
    if (m.id != member) continue;
    if (impl_->db != nullptr) {
      CRMFLOW_RETURN_IF_ERROR(engine_->Begin());
      Stmt s(impl_->db,
             "UPDATE team_members SET available = ?3 WHERE team = ?1 AND "
             "member = ?2");
      s.Bind(1, team);
      s.Bind(2, member);
      s.Bind(3, available ? 1 : 0);
      Status st = Run(s, "write team_members");
      if (!st.ok()) {
        (void)engine_->Rollback();
        return st;
      }
      CRMFLOW_RETURN_IF_ERROR(engine_->Commit());
    }
    m.available = available;
    return Status::Ok();
  }
  return Status(Code::kNotFound, "team " + Quote(team) + ": member " +
                                     Quote(member) + " not found");
}

Status Router::SetCalendar(std::string_view team, std::string_view member,
                           std::optional<BusinessCalendar> calendar) {
  auto it = impl_->teams.find(team);
  if (it == impl_->teams.end()) return GetTeam(team).status();
  for (Member& m : it->second.members) {
    if (m.id != member) continue;
    m.calendar = std::move(calendar);
    return Status::Ok();
  }
  return Status(Code::kNotFound, "team " + Quote(team) + ": member " +
                                     Quote(member) + " not found");
}

Status Router::AddRule(RoutingRule rule) {
  if (impl_->teams.count(rule.team) == 0) {
    return Status(Code::kNotFound, "routing rule " +
                                       std::to_string(rules_.size() + 1) +
                                       ": " + GetTeam(rule.team)
                                                  .status()
                                                  .message());
  }
  std::map<std::string, Expression, std::less<>> parsed;
  if (!rule.condition.empty() && !rule.kind.empty()) {
    const Workflow* wf = engine_->FindWorkflow(rule.kind);
    if (wf != nullptr) {
      ExprSchema schema;
      for (const AttributeSpec& a : wf->attributes()) {
        schema.attributes.push_back({a.name, a.type});
      }
      auto e = Expression::ParseCondition(rule.condition, schema);
      if (!e.ok()) {
        return Status(e.status().code(),
                      "routing rule " + std::to_string(rules_.size() + 1) +
                          ": " + e.status().message());
      }
      parsed[rule.kind] = std::move(e).value();
    }
  }
  rules_.push_back(std::move(rule));
  impl_->conditions.push_back(std::move(parsed));
  return Status::Ok();
}

void Router::ClearRules() {
  rules_.clear();
  impl_->conditions.clear();
}

Status Router::RegisterStrategy(std::string name, StrategyFn fn) {
  if (name.empty() || IsBuiltin(name)) {
    return Status(Code::kInvalidArgument,
                  "strategy " + Quote(name) +
                      ": reserved or empty name (built-in: round_robin, "
                      "least_loaded, skills)");
  }
  impl_->strategies[std::move(name)] = std::move(fn);
  return Status::Ok();
}

void Router::ClearStrategies() { impl_->strategies.clear(); }

// Returns the index of the first matching rule, -1 when none matches.
static StatusOr<int> MatchRule(
    Engine& engine, const std::vector<RoutingRule>& rules,
    std::vector<std::map<std::string, Expression, std::less<>>>& conditions,
    const Transaction& txn) {
  for (size_t i = 0; i < rules.size(); ++i) {
    const RoutingRule& r = rules[i];
    if (!r.kind.empty() && r.kind != txn.kind) continue;
    bool match = true;
    for (const auto& [name, value] : r.equals) {
      const Value* v = FindAttribute(txn.attributes, name);
      if (v == nullptr || v->is_null() || !(*v == value)) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    if (r.condition.empty()) return static_cast<int>(i);

    // Conditions are parsed per kind: the attribute types come from its
    // workflow.
    auto it = conditions[i].find(txn.kind);
    if (it == conditions[i].end()) {
      const Workflow* wf = engine.FindWorkflow(txn.kind);
      ExprSchema schema;
      if (wf != nullptr) {
        for (const AttributeSpec& a : wf->attributes()) {
          schema.attributes.push_back({a.name, a.type});
        }
      }
      auto e = Expression::ParseCondition(r.condition, schema);
      if (!e.ok()) {
        return Status(e.status().code(), "routing rule " +
                                             std::to_string(i + 1) + ": " +
                                             e.status().message());
      }
      it = conditions[i].emplace(txn.kind, std::move(e).value()).first;
    }
    EvalContext ctx;
    ctx.attributes = &txn.attributes;
    ctx.txn_id = txn.id;
    ctx.txn_state = txn.state;
    ctx.txn_kind = txn.kind;
    auto ok = it->second.EvaluateCondition(ctx);
    if (!ok.ok()) {
      return Status(ok.status().code(),
                    "routing rule " + std::to_string(i + 1) + ": transaction " +
                        Quote(txn.id) + ": " + ok.status().message());
    }
    if (*ok) return static_cast<int>(i);
  }
  return -1;
}

StatusOr<std::string> Router::Route(std::string_view id) {
  auto txn = engine_->Get(id);
  if (!txn.ok()) return txn.status();
  auto i = MatchRule(*engine_, rules_, impl_->conditions, *txn);
  if (!i.ok()) return i.status();
  if (*i < 0) {
    return Status(Code::kNotFound, "transaction " + Quote(id) +
                                       ": no routing rule matches");
  }
  return rules_[*i].team;
}

// Drops memory-store assignments whose engine transaction was rolled back.
Status Router::Impl::Sync(Engine& engine) {
  Impl& im = *this;
  if (im.db != nullptr || im.pending.empty()) return Status::Ok();
  if (engine.store().depth() > 0) return Status::Ok();
  for (size_t k = im.pending.size(); k-- > 0;) {
    const Pending& p = im.pending[k];
    auto txn = engine.Get(p.transaction_id);
    bool kept = txn.ok() && txn->version >= p.version &&
                TextAttribute(*txn, "assignee") == p.member;
    if (kept) continue;
    im.positions[p.team] = p.old_position;
    im.assignments.erase(
        std::remove_if(im.assignments.begin(), im.assignments.end(),
                       [&](const Assignment& a) {
                         return a.id == p.assignment_id;
                       }),
        im.assignments.end());
  }
  im.pending.clear();
  return Status::Ok();
}

// Returns the open transactions per assignee.
static StatusOr<std::map<std::string, int64_t>> OpenLoad(Engine& engine) {
  auto all = engine.List("", "");
  if (!all.ok()) return all.status();
  std::map<std::string, int64_t> open;
  for (const Transaction& t : *all) {
    std::string who = TextAttribute(t, "assignee");
    if (who.empty()) continue;
    const Workflow* wf = engine.FindWorkflow(t.kind);
    if (wf != nullptr) {
      int s = wf->StateId(t.state);
      if (s != Workflow::kNoId && wf->Role(s) == StateRole::kTerminal) {
        continue;
      }
    }
    ++open[who];
  }
  return open;
}

StatusOr<int64_t> Router::Position(std::string_view team) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(im.Sync(*engine_));
  if (im.db == nullptr) {
    auto it = im.positions.find(team);
    return it == im.positions.end() ? 0 : it->second;
  }
  Stmt s(im.db, "SELECT position FROM routing_state WHERE team = ?1");
  if (!s.ok()) return s.Error("read routing_state");
  s.Bind(1, team);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return s.ColumnInt(0);
  if (rc != SQLITE_DONE) return s.Error("read routing_state");
  return 0;
}

StatusOr<Assignment> Router::Assign(std::string_view id,
                                    const AssignOptions& options) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(im.Sync(*engine_));

  // The transaction and its kind must be able to hold an assignment.
  auto loaded = engine_->Get(id);
  if (!loaded.ok()) return loaded.status();
  const Workflow* wf = engine_->FindWorkflow(loaded->kind);
  for (const char* name : {"team", "assignee"}) {
    const AttributeSpec* spec =
        wf == nullptr ? nullptr : wf->FindAttributeSpec(name);
    if (spec == nullptr || spec->type != ValueType::kText) {
      return Status(Code::kInvalidArgument,
                    "transaction " + Quote(id) + ": kind " +
                        Quote(loaded->kind) + " does not declare " +
                        Quote(name) + " as a text attribute (needed to "
                        "assign)");
    }
  }

  // Pick the team.
  std::string reason;
  std::string team_name = options.team;
  std::vector<std::string> skills = options.skills;
  if (team_name.empty()) {
    auto i = MatchRule(*engine_, rules_, im.conditions, *loaded);
    if (!i.ok()) return i.status();
    if (*i < 0) {
      return Status(Code::kNotFound, "transaction " + Quote(id) +
                                         ": no routing rule matches");
    }
    team_name = rules_[*i].team;
    if (skills.empty()) skills = rules_[*i].skills;
    reason = "rule " + std::to_string(*i + 1);
  } else {
    reason = "team given";
  }
  auto tit = im.teams.find(team_name);
  if (tit == im.teams.end()) return GetTeam(team_name).status();
  const Team& team = tit->second;
  const Timestamp now = options.time ? *options.time : engine_->Now();

  // Everything from reading the position to writing it is one store
  // transaction, so two processes never hand out the same turn.
  CRMFLOW_RETURN_IF_ERROR(engine_->Begin());
  bool done = false;
  struct Guard {
    Engine* e;
    bool* done;
    ~Guard() {
      if (!*done) (void)e->Rollback();
    }
  } guard{engine_, &done};

  auto txn = engine_->Get(id);
  if (!txn.ok()) return txn.status();
  auto open = OpenLoad(*engine_);
  if (!open.ok()) return open.status();
  auto pos = Position(team_name);
  if (!pos.ok()) return pos.status();
  const int64_t n = static_cast<int64_t>(team.members.size());
  const int64_t start = n == 0 ? 0 : ((*pos % n) + n) % n;

  // The eligible members, scanned from the position.
  std::vector<int64_t> order;
  std::vector<const Member*> eligible;
  for (int64_t k = 0; k < n; ++k) {
    int64_t i = (start + k) % n;
    const Member& m = team.members[i];
    if (!m.available) continue;
    if (m.calendar && !m.calendar->IsOpen(now)) continue;
    auto o = open->find(m.id);
    int64_t load = o == open->end() ? 0 : o->second;
    if (m.capacity > 0 && load >= m.capacity) continue;
    bool has_all = true;
    for (const std::string& s : skills) {
      if (std::find(m.skills.begin(), m.skills.end(), s) == m.skills.end()) {
        has_all = false;
        break;
      }
    }
    if (!has_all) continue;
    order.push_back(i);
  }
  // A custom strategy sees the eligible members in list order.
  std::vector<int64_t> by_list = order;
  std::sort(by_list.begin(), by_list.end());
  for (int64_t i : by_list) eligible.push_back(&team.members[i]);

  int64_t chosen = -1;
  if (team.strategy == "round_robin" || team.strategy == "skills") {
    if (!order.empty()) chosen = order.front();
  } else if (team.strategy == "least_loaded") {
    int64_t best = -1;
    for (int64_t i : order) {
      auto o = open->find(team.members[i].id);
      int64_t load = o == open->end() ? 0 : o->second;
      if (best < 0 || load < best) {
        best = load;
        chosen = i;
      }
    }
  } else {
    auto sit = im.strategies.find(team.strategy);
    if (sit == im.strategies.end()) {
      return Status(Code::kNotFound, "team " + Quote(team.name) +
                                         ": strategy " +
                                         Quote(team.strategy) +
                                         " not registered");
    }
    std::map<std::string, int64_t> loads;
    for (const Member& m : team.members) {
      auto o = open->find(m.id);
      loads[m.id] = o == open->end() ? 0 : o->second;
    }
    StrategyContext ctx{*txn, team, eligible, loads, skills, *pos, now};
    StatusOr<std::string> pick = sit->second(ctx);
    if (!pick.ok()) return pick.status();
    if (!pick->empty()) {
      for (int64_t i = 0; i < n; ++i) {
        if (team.members[i].id == *pick) chosen = i;
      }
      if (chosen < 0) {
        return Status(Code::kInvalidArgument,
                      "team " + Quote(team.name) + ": strategy " +
                          Quote(team.strategy) + " chose " + Quote(*pick) +
                          " (not a member)");
      }
    }
  }
  if (chosen < 0) {
    return Status(Code::kNotFound, "transaction " + Quote(id) + ": team " +
                                       Quote(team.name) +
                                       ": no eligible member (absent, off "
                                       "shift, at capacity or lacking "
                                       "skills)");
  }

  // Write the attributes, the assignment row and the new position.
  Assignment a;
  a.transaction_id = std::string(id);
  a.team = team.name;
  a.member = team.members[chosen].id;
  a.time = now;
  a.reason = options.reason.empty() ? reason + "; " + team.strategy
                                    : options.reason;
  a.previous_team = TextAttribute(*txn, "team");
  a.previous_member = TextAttribute(*txn, "assignee");
  auto written = engine_->SetAttributes(
      id, {{"team", Value::Text(a.team)}, {"assignee", Value::Text(a.member)}},
      txn->version);
  if (!written.ok()) return written.status();
  const int64_t next = (chosen + 1) % n;
  if (im.db != nullptr) {
    Stmt s(im.db,
           "INSERT INTO assignments(transaction_id, team, member, time, "
           "reason, previous_team, previous_member) VALUES (?1, ?2, ?3, ?4, "
           "?5, ?6, ?7)");
    s.Bind(1, a.transaction_id);
    s.Bind(2, a.team);
    s.Bind(3, a.member);
    s.Bind(4, a.time.ToIso());
    s.Bind(5, a.reason);
    s.BindTextOrNull(6, a.previous_team);
    s.BindTextOrNull(7, a.previous_member);
    CRMFLOW_RETURN_IF_ERROR(Run(s, "write assignments"));
    a.id = sqlite3_last_insert_rowid(im.db);
    Stmt p(im.db,
           "INSERT OR REPLACE INTO routing_state(team, position) VALUES "
           "(?1, ?2)");
    p.Bind(1, a.team);
    p.Bind(2, next);
    CRMFLOW_RETURN_IF_ERROR(Run(p, "write routing_state"));
  }
  done = true;
  CRMFLOW_RETURN_IF_ERROR(engine_->Commit());
  if (im.db == nullptr) {
    // The memory store cannot tell the router about a later rollback of
    // an enclosing transaction: remember what to undo.
    a.id = im.next_id++;
    if (engine_->store().depth() > 0) {
      im.pending.push_back({a.transaction_id, written->version, a.member,
                            a.team, *pos, a.id});
    }
    im.positions[a.team] = next;
    im.assignments.push_back(a);
  }
  return a;
}

StatusOr<std::vector<Assignment>> Router::Assignments(
    std::string_view transaction_id) {
  Impl& im = *impl_;
  CRMFLOW_RETURN_IF_ERROR(im.Sync(*engine_));
  std::vector<Assignment> out;
  if (im.db == nullptr) {
    for (const Assignment& a : im.assignments) {
      if (transaction_id.empty() || a.transaction_id == transaction_id) {
        out.push_back(a);
      }
    }
    return out;
  }
  Stmt s(im.db,
         "SELECT id, transaction_id, team, member, time, reason, "
         "previous_team, previous_member FROM assignments WHERE ?1 = '' OR "
         "transaction_id = ?1 ORDER BY id");
  if (s.ok()) s.Bind(1, transaction_id);
  return ReadRows<Assignment>(
      s, "read assignments", [](SqlStatement& row) -> StatusOr<Assignment> {
        Assignment a;
        a.id = row.ColumnInt(0);
        a.transaction_id = row.ColumnText(1);
        a.team = row.ColumnText(2);
        a.member = row.ColumnText(3);
        auto t = Timestamp::ParseIso(row.ColumnText(4));
        if (!t.ok()) {
          return Status(Code::kStoreError, "routing: assignments row " +
                                               std::to_string(a.id) + ": " +
                                               t.status().message());
        }
        a.time = *t;
        a.reason = row.ColumnText(5);
        a.previous_team = row.ColumnText(6);
        a.previous_member = row.ColumnText(7);
        return a;
      });
}

StatusOr<std::vector<MemberLoad>> Router::Loads() {
  auto all = Assignments("");
  if (!all.ok()) return all.status();
  auto open = OpenLoad(*engine_);
  if (!open.ok()) return open.status();
  std::map<std::pair<std::string, std::string>, int64_t> assigned;
  for (const Assignment& a : *all) ++assigned[{a.team, a.member}];
  std::vector<MemberLoad> out;
  for (const auto& [name, team] : impl_->teams) {
    for (const Member& m : team.members) {
      MemberLoad l;
      l.team = name;
      l.member = m.id;
      auto o = open->find(m.id);
      l.open = o == open->end() ? 0 : o->second;
      auto as = assigned.find({name, m.id});
      l.assigned = as == assigned.end() ? 0 : as->second;
      out.push_back(std::move(l));
    }
  }
  return out;
}

StatusOr<HandoverReport> Router::Handovers() {
  auto all = Assignments("");
  if (!all.ok()) return all.status();

  // The team a transaction had before its first assignment counts as an
  // observation too (set by an import, say).
  std::set<std::string, std::less<>> seen;
  std::vector<TeamObservation> obs;
  std::map<std::string, int64_t> reassigned;
  for (const Assignment& a : *all) {
    if (seen.insert(a.transaction_id).second && !a.previous_team.empty()) {
      obs.push_back({a.transaction_id, a.previous_team});
    }
    obs.push_back({a.transaction_id, a.team});
    bool had = !a.previous_team.empty() || !a.previous_member.empty();
    if (had && (a.team != a.previous_team || a.member != a.previous_member)) {
      ++reassigned[a.previous_team];
    }
  }
  HandoverReport report = ComputeHandovers(obs);
  for (TeamFlow& f : report.teams) {
    auto it = reassigned.find(f.team);
    if (it != reassigned.end()) f.reassignments = it->second;
  }
  return report;
}

}  // namespace crmflow
