// routing_module.cc: the routing part of the crmflow._core module.
//
// Binds crmflow::Router (routing.h) as _core.Router.  Only converts: teams
// and members are dicts, assignments and figures come out as dicts and
// lists, every Status becomes one exception of crmflow._errors.  A Python
// strategy is kept in a std::function that takes the GIL back; the router
// holds a reference to its Python engine so the engine outlives it.
//
// crmflow_register_routing is called from PYBIND11_MODULE in
// core_module.cc.

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "crmflow/routing.h"
#include "engine_handle.h"

namespace py = pybind11;

namespace crmflow {
namespace {

template <typename T>
T TakeRouting(StatusOr<T>&& r) {
  if (!r.ok()) crmflow_throw_status(r.status());
  return std::move(r).value();
}

void CheckRouting(const Status& s) {
  if (!s.ok()) crmflow_throw_status(s);
}

// A router and the Python engine it belongs to.
struct PyRouter {
  py::object engine;
  std::unique_ptr<Router> router;

  ~PyRouter() {
    // Strategies hold Python callables: drop them while the GIL is held;
    // the router is attached to an engine another thread may be using.
    if (!router) return;
    try {
      crmflow::EngineLock lock = crmflow_lock_engine(engine);
      router->ClearStrategies();
      router.reset();
    } catch (...) {
      router->ClearStrategies();
    }
  }
};

// Returns the C++ router of a _core.Router (for the approvals binding).
Router* TakeRouter(py::handle router) {
  return py::cast<PyRouter&>(router).router.get();
}

py::dict TeamToDict(const Team& t) {
  py::list members;
  for (const Member& m : t.members) {
    py::dict d;
    d["id"] = m.id;
    d["skills"] = m.skills;
    d["capacity"] = m.capacity;
    d["available"] = m.available;
    members.append(d);
  }
  py::dict d;
  d["name"] = t.name;
  d["strategy"] = t.strategy;
  d["members"] = members;
  return d;
}

py::dict AssignmentToDict(const Assignment& a) {
  py::dict d;
  d["id"] = a.id;
  d["transaction_id"] = a.transaction_id;
  d["team"] = a.team;
  d["member"] = a.member;
  d["time"] = a.time.micros;
  d["reason"] = a.reason;
  d["previous_team"] = a.previous_team;
  d["previous_member"] = a.previous_member;
  return d;
}

py::dict ReportToDict(const HandoverReport& r) {
  py::list teams;
  for (const TeamFlow& f : r.teams) {
    py::dict d;
    d["team"] = f.team;
    d["handovers_in"] = f.handovers_in;
    d["handovers_out"] = f.handovers_out;
    d["ping_pongs"] = f.ping_pongs;
    d["reassignments"] = f.reassignments;
    teams.append(d);
  }
  py::list pairs;
  for (const auto& [key, n] : r.pairs) {
    pairs.append(py::make_tuple(key.first, key.second, n));
  }
  py::dict d;
  d["teams"] = teams;
  d["pairs"] = pairs;
  d["handovers"] = r.handovers;
  d["ping_pongs"] = r.ping_pongs;
  return d;
}

}  // namespace
}  // namespace crmflow

void crmflow_register_routing(pybind11::module_& m) {
  using namespace crmflow;

  py::class_<PyRouter>(m, "Router")
      .def(py::init([](py::object engine) {
             EngineLock lock = crmflow_lock_engine(engine);
             auto r = std::make_unique<PyRouter>();
             r->router = TakeRouting(
                 Router::Attach(&crmflow_unwrap_engine(engine)));
             r->engine = std::move(engine);
             return r;
           }),
           py::arg("engine"))
      .def(
          "add_team",
          [](PyRouter& r, const std::string& name, py::list members,
             const std::string& strategy) {
            EngineLock lock = crmflow_lock_engine(r.engine);
            Team t;
            t.name = name;
            t.strategy = strategy;
            for (py::handle h : members) {
              py::dict d = py::reinterpret_borrow<py::dict>(h);
              Member mem;
              mem.id = d["id"].cast<std::string>();
              if (d.contains("skills")) {
                mem.skills = d["skills"].cast<std::vector<std::string>>();
              }
              if (d.contains("capacity")) {
                mem.capacity = d["capacity"].cast<int64_t>();
              }
              if (d.contains("available")) {
                mem.available = d["available"].cast<bool>();
              }
              t.members.push_back(std::move(mem));
            }
            CheckRouting(r.router->AddTeam(std::move(t)));
          },
          py::arg("name"), py::arg("members"),
          py::arg("strategy") = "round_robin")
      .def("remove_team",
           [](PyRouter& r, const std::string& name) {
             EngineLock lock = crmflow_lock_engine(r.engine);
             CheckRouting(r.router->RemoveTeam(name));
           })
      .def("teams",
           [](PyRouter& r) {
             EngineLock lock = crmflow_lock_engine(r.engine);
             py::list out;
             for (const Team& t : r.router->teams()) out.append(TeamToDict(t));
             return out;
           })
      .def("set_available",
           [](PyRouter& r, const std::string& team, const std::string& member,
              bool available) {
             EngineLock lock = crmflow_lock_engine(r.engine);
             CheckRouting(r.router->SetAvailable(team, member, available));
           })
      .def(
          "add_rule",
          [](PyRouter& r, const std::string& team, const std::string& kind,
             const std::vector<std::pair<std::string, std::string>>& equals,
             const std::string& condition,
             const std::vector<std::string>& skills) {
            EngineLock lock = crmflow_lock_engine(r.engine);
            RoutingRule rule;
            rule.team = team;
            rule.kind = kind;
            for (const auto& [k, v] : equals) {
              rule.equals.emplace_back(k, Value::Text(v));
            }
            rule.condition = condition;
            rule.skills = skills;
            CheckRouting(r.router->AddRule(std::move(rule)));
          },
          py::arg("team"), py::arg("kind") = "",
          py::arg("equals") =
              std::vector<std::pair<std::string, std::string>>{},
          py::arg("condition") = "",
          py::arg("skills") = std::vector<std::string>{})
      .def("clear_rules",
           [](PyRouter& r) {
             EngineLock lock = crmflow_lock_engine(r.engine);
             r.router->ClearRules();
           })
      .def("register_strategy",
           [](PyRouter& r, const std::string& name, py::function fn) {
             EngineLock lock = crmflow_lock_engine(r.engine);
             // The callable gets (transaction id, eligible ids, open loads,
             // position) and returns a member id or None.
             auto holder = std::make_shared<py::function>(std::move(fn));
             StrategyFn cb = [holder](const StrategyContext& ctx)
                 -> StatusOr<std::string> {
               py::gil_scoped_acquire gil;
               py::list eligible;
               for (const Member* mem : ctx.eligible) eligible.append(mem->id);
               py::dict open;
               for (const auto& [k, v] : ctx.open) open[py::str(k)] = v;
               py::object got = (*holder)(ctx.txn.id, ctx.team.name, eligible,
                                          open, ctx.position);
               if (got.is_none()) return std::string();
               return got.cast<std::string>();
             };
             CheckRouting(r.router->RegisterStrategy(name, std::move(cb)));
           })
      .def("route",
           [](PyRouter& r, const std::string& id) {
             EngineLock lock = crmflow_lock_engine(r.engine);
             return TakeRouting(r.router->Route(id));
           })
      .def(
          "assign",
          [](PyRouter& r, const std::string& id, const std::string& team,
             const std::vector<std::string>& skills, py::object time,
             const std::string& reason) {
            EngineLock lock = crmflow_lock_engine(r.engine);
            AssignOptions o;
            o.team = team;
            o.skills = skills;
            o.reason = reason;
            if (!time.is_none()) {
              o.time = crmflow_time_from_python(
                  time, crmflow_engine_zone(r.engine), "time");
            }
            return AssignmentToDict(TakeRouting(r.router->Assign(id, o)));
          },
          py::arg("id"), py::arg("team") = "",
          py::arg("skills") = std::vector<std::string>{},
          py::arg("time") = py::none(), py::arg("reason") = "")
      .def("position",
           [](PyRouter& r, const std::string& team) {
             EngineLock lock = crmflow_lock_engine(r.engine);
             return TakeRouting(r.router->Position(team));
           })
      .def(
          "assignments",
          [](PyRouter& r, const std::string& id) {
            EngineLock lock = crmflow_lock_engine(r.engine);
            py::list out;
            for (const Assignment& a : TakeRouting(r.router->Assignments(id))) {
              out.append(AssignmentToDict(a));
            }
            return out;
          },
          py::arg("transaction_id") = "")
      .def("loads",
           [](PyRouter& r) {
             EngineLock lock = crmflow_lock_engine(r.engine);
             py::list out;
             for (const MemberLoad& l : TakeRouting(r.router->Loads())) {
               py::dict d;
               d["team"] = l.team;
               d["member"] = l.member;
               d["open"] = l.open;
               d["assigned"] = l.assigned;
               out.append(d);
             }
             return out;
           })
      .def("handovers", [](PyRouter& r) {
        EngineLock lock = crmflow_lock_engine(r.engine);
        return ReportToDict(TakeRouting(r.router->Handovers()));
      });

  m.def(
      "compute_handovers",
      [](const std::vector<std::string>& ids,
         const std::vector<std::string>& teams) {
        if (ids.size() != teams.size()) {
          crmflow_throw_status(Status(
              Code::kInvalidArgument,
              "compute_handovers: ids and teams differ in length"));
        }
        std::vector<TeamObservation> obs;
        obs.reserve(ids.size());
        for (size_t i = 0; i < ids.size(); ++i) obs.push_back({ids[i], teams[i]});
        HandoverReport rep;
        {
          py::gil_scoped_release release;
          rep = ComputeHandovers(obs);
        }
        return ReportToDict(rep);
      },
      py::arg("ids"), py::arg("teams"));
}

crmflow::Router* crmflow_unwrap_router(pybind11::handle router) {
  return crmflow::TakeRouter(router);
}
