// engine.cc: creating transactions, firing events, replaying batches and
// the lifecycle report (see engine.h for the semantics).
//
// Every write runs inside one store transaction guarded by an RAII scope,
// so a refusal, a store failure or an exception thrown by a callback rolls
// everything back before the error (or the exception, unchanged) leaves the
// engine.  Callbacks are resolved per kind into tables indexed by state id
// and transition index, so firing an event does no name lookups for hooks.
// With the SQLite store the engine keeps a bounded cache of transactions,
// validated by version inside the write lock; the memory store needs none.
//
// The memory store has a fast path besides (TryFastFire): when firing runs
// no callback, the engine reads the record's kind, state and version as
// name ids, finds the transition in a per-state table and writes it by
// ids, with no Transaction, HistoryRow or string copy.  It fires only where
// the general path would accept the same event with the same writes, and
// otherwise changes nothing and leaves the call to the general path, which
// then produces every error and runs every callback as before.

#include "crmflow/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "store_internal.h"

namespace crmflow {
namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out.empty() ? "none" : out;
}

Timestamp SystemNow() {
  return Timestamp{std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count()};
}

// Linear-interpolated percentile of sorted values (numpy's default).
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  double pos = p * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

// The arguments of one fire, as views so Replay copies nothing.
struct FireArgs {
  std::string_view id;
  std::string_view event;
  std::optional<Timestamp> time;
  std::string_view actor;
  std::string_view payload;
  std::optional<int64_t> expected_version;
  std::string_view source;
};

constexpr size_t kCacheLimit = 4096;

}  // namespace

// The engine's private state: callbacks, their per-kind resolution, the
// transaction cache and the operations that need them.  (Named Callbacks in
// the public header; it holds the rest of the runtime too.)
struct Engine::Callbacks {
  struct Hook {
    std::string kind;
    std::string state;  // "*" = any
    HookFn fn;
  };
  struct NamedGuard {
    const std::string* name;
    const GuardFn* fn;  // nullptr when not registered
  };
  struct NamedAction {
    const std::string* name;
    const HookFn* fn;
  };
  struct ResolvedTransition {
    std::vector<NamedGuard> guards;
    std::vector<NamedAction> actions;
  };
  // An event leaving a state, for the fast path (in-process stores only).
  struct Edge {
    std::string_view event;  // the workflow's name
    const Workflow::Transition* first;  // its first candidate
    // True when firing it needs neither a callback nor a check the fast
    // path skips: the first candidate has no guards (so it wins) and no
    // actions; an external one finds no exit hook on its source and no
    // entry hook on its target; the name is valid UTF-8.
    bool simple;
    uint32_t store_to;     // the target's name id in the store
    uint32_t store_event;  // the event's name id in the store
  };
  // One kind's callbacks, indexed by state id and transition index.
  struct Resolved {
    const Workflow* wf = nullptr;
    std::vector<std::vector<const HookFn*>> enter;
    std::vector<std::vector<const HookFn*>> exit;
    std::vector<ResolvedTransition> transitions;
    // The fast path's tables (in-process stores only): the kind's name id,
    // state ids by the store's name ids (kNoId for other names) and the
    // events leaving each state, in declaration order.
    uint32_t store_kind = 0;
    std::vector<int> state_of_name;
    std::vector<std::vector<Edge>> edges;
    // Expression guards ("expr: ...") compiled for this kind, and whether
    // it has enabled rules (both keep the fast path off).
    std::vector<std::unique_ptr<GuardFn>> expr_guards;
    bool has_rules = false;
  };

  std::map<std::string, GuardFn, std::less<>> guards;
  std::map<std::string, HookFn, std::less<>> actions;
  std::deque<Hook> enter_hooks;  // deque: stable addresses
  std::deque<Hook> exit_hooks;
  std::map<std::string, Resolved, std::less<>> resolved;
  bool dirty = true;
  std::string last_kind;
  const Resolved* last = nullptr;
  const Resolved* last_hot = nullptr;  // last kind found by name id

  internal::StoreImpl* impl = nullptr;  // the store's fast path
  bool in_process = false;
  // True when the clock is SystemNow: the fast path may then read it
  // itself (a clock of the caller's might re-enter the engine).
  bool system_clock = false;
  // Transactions as last written or read (SQLite only), keyed by id.
  std::unordered_map<std::string, Transaction> cache;
  // Workspace of Fire, reused so the hot path allocates nothing; a Fire
  // called from inside a callback (`firing` > 0) uses its own.
  Transaction scratch_txn;
  HistoryRow scratch_row;
  int firing = 0;
  // Transaction writes (creates, transitions, attribute changes) so far.
  // A call compares it around its rules: when they wrote, the transaction
  // it returns is read again, since they may have moved it on.
  uint64_t writes = 0;

  void Invalidate() {
    dirty = true;
    last = nullptr;
    last_hot = nullptr;
  }

  static void ResolveHooks(const std::deque<Hook>& hooks, const Workflow& wf,
                           std::vector<std::vector<const HookFn*>>* out) {
    out->assign(wf.state_count(), {});
    for (const Hook& h : hooks) {
      if (h.kind != wf.name()) continue;
      if (h.state == "*") {
        for (auto& v : *out) v.push_back(&h.fn);
      } else {
        int id = wf.StateId(h.state);
        if (id != Workflow::kNoId) (*out)[id].push_back(&h.fn);
      }
    }
  }

  const Resolved* Resolve(const Engine& e, std::string_view kind) {
    if (!dirty && last != nullptr && last_kind == kind) return last;
    Rebuild(e);
    auto it = resolved.find(kind);
    if (it == resolved.end()) return nullptr;
    last_kind = std::string(kind);
    last = &it->second;
    return last;
  }

  // Resolves every kind again when callbacks or workflows changed.
  void Rebuild(const Engine& e) {
    if (dirty) {
      resolved.clear();
      for (const auto& [name, wf] : e.workflows_) {
        Resolved r;
        r.wf = &wf;
        ResolveHooks(enter_hooks, wf, &r.enter);
        ResolveHooks(exit_hooks, wf, &r.exit);
        for (const Workflow::Transition& t : wf.transitions()) {
          ResolvedTransition rt;
          for (const std::string& g : t.guards) {
            auto it = guards.find(g);
            if (it == guards.end() && IsExpressionGuard(g)) {
              // Checked by Register, so it parses.
              auto e = ParseExpressionGuard(g, wf);
              if (e.ok()) {
                r.expr_guards.push_back(std::make_unique<GuardFn>(
                    [cond = std::move(*e)](const CallContext& ctx,
                                           std::string* reason) {
                      return CheckExpressionGuard(cond, ctx.txn, reason);
                    }));
                rt.guards.push_back({&g, r.expr_guards.back().get()});
                continue;
              }
            }
            rt.guards.push_back(
                {&g, it == guards.end() ? nullptr : &it->second});
          }
          for (const std::string& a : t.actions) {
            auto it = actions.find(a);
            rt.actions.push_back(
                {&a, it == actions.end() ? nullptr : &it->second});
          }
          r.transitions.push_back(std::move(rt));
        }
        r.has_rules = e.rules_->HasRules(name);
        if (in_process) BuildFastTables(&r);
        resolved.emplace(name, std::move(r));
      }
      dirty = false;
    }
  }

  // Fills the fast path's tables of `r` (hooks and transitions resolved).
  void BuildFastTables(Resolved* r) {
    const Workflow& wf = *r->wf;
    const int n = wf.state_count();
    r->store_kind = impl->InternName(wf.name());
    std::vector<uint32_t> ids(n);
    uint32_t max_id = 0;
    for (int s = 0; s < n; ++s) {
      ids[s] = impl->InternName(wf.StateName(s));
      max_id = std::max(max_id, ids[s]);
    }
    r->state_of_name.assign(max_id + 1, Workflow::kNoId);
    for (int s = 0; s < n; ++s) r->state_of_name[ids[s]] = s;
    r->edges.assign(n, {});
    for (const Workflow::Transition& t : wf.transitions()) {
      if (t.source == Workflow::kNoId || t.target == Workflow::kNoId) continue;
      std::vector<Edge>& out = r->edges[t.source];
      const std::string& event = wf.EventName(t.event);
      // Later candidates of an event are the general path's business.
      bool seen = false;
      for (const Edge& e : out) seen = seen || e.first->event == t.event;
      if (seen) continue;
      const Workflow::Transition* first = wf.Candidates(t.source, t.event)[0];
      bool hooks = !first->internal && (!r->exit[t.source].empty() ||
                                        !r->enter[first->target].empty());
      bool simple = !r->has_rules && first->guards.empty() &&
                    first->actions.empty() &&
                    !hooks && IsValidUtf8(event);
      out.push_back(Edge{event, first, simple, ids[first->target],
                         impl->InternName(event)});
    }
  }

  // Returns the kind whose store name id is `kind`, or nullptr.
  const Resolved* ResolveHot(const Engine& e, uint32_t kind) {
    if (last_hot != nullptr && !dirty && last_hot->store_kind == kind) {
      return last_hot;
    }
    Rebuild(e);
    for (const auto& [name, r] : resolved) {
      if (r.store_kind == kind) return last_hot = &r;
    }
    return nullptr;
  }

  // Fires args on the memory store when that runs no callback; see the
  // file comment.  Returns false, having changed nothing, when the general
  // path must run instead.
  bool TryFastFire(const Engine& e, const FireArgs& args, FireResult* out) {
    if (!in_process || !args.source.empty()) return false;
    if (!args.time && !system_clock) return false;
    internal::StoreImpl::Hot hot;
    if (!impl->FindHot(args.id, &hot)) return false;
    if (args.expected_version && *args.expected_version != hot.version) {
      return false;
    }
    const Resolved* r = ResolveHot(e, hot.kind);
    if (r == nullptr || hot.state >= r->state_of_name.size()) return false;
    int state = r->state_of_name[hot.state];
    if (state == Workflow::kNoId) return false;
    const Edge* edge = nullptr;
    for (const Edge& candidate : r->edges[state]) {
      if (candidate.event.size() == args.event.size() &&
          std::memcmp(candidate.event.data(), args.event.data(),
                      args.event.size()) == 0) {
        edge = &candidate;
        break;
      }
    }
    if (edge == nullptr || !edge->simple) return false;
    if (!IsValidUtf8(args.actor) || !IsValidUtf8(args.payload)) return false;
    const Workflow::Transition& t = *edge->first;
    internal::StoreImpl::HotTransition write;
    write.to_state = edge->store_to;
    write.event = edge->store_event;
    write.time = args.time ? *args.time : SystemNow();
    write.external = !t.internal;
    write.internal = t.internal;
    write.workflow_version = r->wf->version();
    write.actor = args.actor;
    write.payload = args.payload;
    out->seq = impl->ApplyHot(hot, write);
    ++writes;
    out->state = r->wf->StateName(t.target);
    out->version = hot.version + 1;
    out->internal = t.internal;
    return true;
  }

  void Remember(const Transaction& txn) {
    if (in_process) return;
    if (cache.size() >= kCacheLimit && cache.find(txn.id) == cache.end()) {
      // Crude but bounded: an engine touching more than the limit works
      // like one without a cache.
      cache.clear();
    }
    cache[txn.id] = txn;
  }

  // Fires one event.  On return `txn` holds the transaction as loaded
  // (before the transition) when the call failed after loading it, and the
  // transaction after the transition on success; `row` the row written.
  // `to_state`, when not null, receives the workflow's name of the new
  // state.
  static Status Fire(Engine& engine, const FireArgs& args, Transaction* txn,
                     HistoryRow* row, std::string_view* to_state = nullptr);
  template <typename Batch>
  static StatusOr<ReplaySummary> Replay(Engine& engine, const Batch& events,
                                        const ReplayOptions& options);

  // Loads `id` for writing, inside the write transaction: the memory store
  // directly; SQLite from the cache when the stored version (read under the
  // write lock, so it cannot change before the commit) matches.
  Status LoadForWrite(Store& store, std::string_view id, Transaction* out) {
    if (in_process) {
      auto found = store.LoadTransaction(id, out);
      if (!found.ok()) return found.status();
      if (!*found) {
        return Status(Code::kNotFound, "transaction " + Quote(id) +
                                           " not found");
      }
      return Status::Ok();
    }
    auto version = store.LoadVersion(id);
    if (!version.ok()) return version.status();
    auto it = cache.find(std::string(id));
    if (!version->has_value()) {
      if (it != cache.end()) cache.erase(it);
      return Status(Code::kNotFound, "transaction " + Quote(id) +
                                         " not found");
    }
    if (it != cache.end() && it->second.version == **version) {
      *out = it->second;
      return Status::Ok();
    }
    // Stale or absent: another engine wrote since, read the row again.
    auto found = store.LoadTransaction(id, out);
    if (!found.ok()) return found.status();
    if (!*found) {
      return Status(Code::kNotFound, "transaction " + Quote(id) +
                                         " not found");
    }
    return Status::Ok();
  }
};

namespace {

// Rolls the store transaction back unless committed; runs on exceptions.
class WriteScope {
 public:
  WriteScope(Store* store, std::unordered_map<std::string, Transaction>* cache,
             bool clear_cache_on_rollback)
      : store_(store),
        cache_(cache),
        clear_cache_(clear_cache_on_rollback) {}
  ~WriteScope() {
    if (!done_) {
      (void)store_->Rollback();
      if (clear_cache_) cache_->clear();
    }
  }
  WriteScope(const WriteScope&) = delete;
  WriteScope& operator=(const WriteScope&) = delete;

  Status Commit() {
    done_ = true;
    return store_->Commit();
  }

 private:
  Store* store_;
  std::unordered_map<std::string, Transaction>* cache_;
  bool clear_cache_;
  bool done_ = false;
};

Status CheckText(std::string_view what, std::string_view text,
                 std::string_view id) {
  if (IsValidUtf8(text)) return Status::Ok();
  return Status(Code::kInvalidArgument, "transaction " + Quote(id) + ": " +
                                            std::string(what) +
                                            " is not valid UTF-8");
}

// Checks given attributes against the declarations.  `all` is the complete
// set after the change, checked for required ones.
Status CheckAttributes(const Workflow& wf, std::string_view id,
                       const Attributes& given, const Attributes& all) {
  for (size_t i = 0; i < given.size(); ++i) {
    const auto& [name, v] = given[i];
    const AttributeSpec* spec = wf.FindAttributeSpec(name);
    if (spec == nullptr) {
      std::vector<std::string> declared;
      for (const auto& a : wf.attributes()) declared.push_back(a.name);
      return Status(Code::kInvalidArgument,
                    "transaction " + Quote(id) + ": unknown attribute " +
                        Quote(name) + " (declared: " + Join(declared) + ")");
    }
    for (size_t j = 0; j < i; ++j) {
      if (given[j].first == name) {
        return Status(Code::kInvalidArgument, "transaction " + Quote(id) +
                                                  ": attribute " +
                                                  Quote(name) +
                                                  " given twice");
      }
    }
    if (!v.is_null() && v.type() != spec->type) {
      return Status(Code::kInvalidArgument,
                    "transaction " + Quote(id) + ": attribute " +
                        Quote(name) + " has type " +
                        ValueTypeName(v.type()) + " (expected " +
                        ValueTypeName(spec->type) + ")");
    }
    if (v.type() == ValueType::kText && !IsValidUtf8(v.text())) {
      return Status(Code::kInvalidArgument, "transaction " + Quote(id) +
                                                ": attribute " +
                                                Quote(name) +
                                                " is not valid UTF-8");
    }
  }
  for (const AttributeSpec& spec : wf.attributes()) {
    if (!spec.required) continue;
    const Value* v = FindAttribute(all, spec.name);
    if (v == nullptr || v->is_null()) {
      return Status(Code::kInvalidArgument,
                    "transaction " + Quote(id) + ": required attribute " +
                        Quote(spec.name) + " missing (expected a " +
                        ValueTypeName(spec.type) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace

Engine::Engine(std::unique_ptr<Store> store, ClockFn clock)
    : store_(std::move(store)),
      clock_(std::move(clock)),
      callbacks_(std::make_unique<Callbacks>()),
      numbering_(std::make_unique<Numbering>(store_.get())),
      rules_(std::make_unique<RuleSet>(this, store_.get(), [this] {
        callbacks_->Invalidate();
      })) {
  callbacks_->impl = dynamic_cast<internal::StoreImpl*>(store_.get());
  callbacks_->in_process = callbacks_->impl != nullptr &&
                           callbacks_->impl->in_process();
  using ClockPtr = Timestamp (*)();
  const ClockPtr* fn = clock_.target<ClockPtr>();
  callbacks_->system_clock = fn != nullptr && *fn == &SystemNow;
}

Engine::~Engine() {
  // An explicit Begin left open is abandoned, as a crash would.
  while (store_ && store_->depth() > 0) {
    if (!store_->Rollback().ok()) break;
  }
}

StatusOr<std::unique_ptr<Engine>> Engine::Open(EngineOptions options) {
  std::unique_ptr<Store> store;
  if (options.path.empty()) {
    store = NewMemoryStore();
  } else {
    auto opened = OpenSqliteStore(options.path, options.sqlite);
    if (!opened.ok()) return opened.status();
    store = std::move(*opened);
  }
  ClockFn clock = options.clock ? std::move(options.clock) : SystemNow;
  std::unique_ptr<Engine> engine(new Engine(std::move(store), clock));
  // The stored rules apply from the first call on.
  CRMFLOW_RETURN_IF_ERROR(engine->rules_->Reload());
  return engine;
}

Timestamp Engine::Now() const { return clock_(); }

Status Engine::Register(Workflow workflow, std::string definition) {
  // Structural problems refuse the workflow.  Warnings and notes (an
  // ambiguous candidate, overlapping guards, exits from a terminal state)
  // do not: the firing
  // order is well defined (declaration order), and reordering candidates is
  // a legitimate way to change behaviour.
  std::string problems;
  for (const Problem& p : workflow.Validate()) {
    // Broken expression guards are reported below, once.
    if (p.severity != Problem::Severity::kError ||
        p.kind == Problem::Kind::kInvalidGuard) {
      continue;
    }
    if (!problems.empty()) problems += "; ";
    problems += p.message;
  }
  // Expression guards ("expr: amount <= 1000") must parse against the
  // declared attributes.
  for (const Workflow::Transition& t : workflow.transitions()) {
    for (const std::string& g : t.guards) {
      if (!IsExpressionGuard(g)) continue;
      auto e = ParseExpressionGuard(g, workflow);
      if (!e.ok()) {
        if (!problems.empty()) problems += "; ";
        problems += e.status().message();
      }
    }
  }
  if (!problems.empty()) return Status(Code::kValidationError, problems);
  auto it = workflows_.find(workflow.name());
  if (it != workflows_.end() && workflow.version() <= it->second.version()) {
    return Status(Code::kAlreadyExists,
                  "workflow " + Quote(workflow.name()) + " version " +
                      std::to_string(it->second.version()) +
                      " already registered (expected a version above " +
                      std::to_string(it->second.version()) + ")");
  }
  CRMFLOW_RETURN_IF_ERROR(store_->Begin());
  {
    WriteScope scope(store_.get(), &callbacks_->cache, false);
    CRMFLOW_RETURN_IF_ERROR(store_->SaveWorkflow(
        StoredWorkflow{workflow.name(), workflow.version(), definition}));
    CRMFLOW_RETURN_IF_ERROR(scope.Commit());
  }
  std::string name = workflow.name();
  if (it != workflows_.end()) {
    it->second = std::move(workflow);
  } else {
    workflows_.emplace(std::move(name), std::move(workflow));
  }
  rules_->Invalidate();  // rules compile against the workflow
  callbacks_->Invalidate();
  return Status::Ok();
}

const Workflow* Engine::FindWorkflow(std::string_view kind) const {
  auto it = workflows_.find(kind);
  return it == workflows_.end() ? nullptr : &it->second;
}

std::vector<std::string> Engine::kinds() const {
  std::vector<std::string> out;
  for (const auto& [name, wf] : workflows_) out.push_back(name);
  return out;
}

StatusOr<std::vector<StoredWorkflow>> Engine::StoredWorkflows() {
  return store_->LoadWorkflows();
}

void Engine::RegisterGuard(std::string name, GuardFn fn) {
  callbacks_->guards[std::move(name)] = std::move(fn);
  callbacks_->Invalidate();
}

void Engine::RegisterAction(std::string name, HookFn fn) {
  callbacks_->actions[std::move(name)] = std::move(fn);
  callbacks_->Invalidate();
}

void Engine::OnEnter(std::string kind, std::string state, HookFn fn) {
  callbacks_->enter_hooks.push_back(
      Callbacks::Hook{std::move(kind), std::move(state), std::move(fn)});
  callbacks_->Invalidate();
}

void Engine::OnExit(std::string kind, std::string state, HookFn fn) {
  callbacks_->exit_hooks.push_back(
      Callbacks::Hook{std::move(kind), std::move(state), std::move(fn)});
  callbacks_->Invalidate();
}

void Engine::ClearCallbacks() {
  callbacks_->guards.clear();
  callbacks_->actions.clear();
  callbacks_->enter_hooks.clear();
  callbacks_->exit_hooks.clear();
  callbacks_->Invalidate();
}

StatusOr<Transaction> Engine::Create(const CreateRequest& req) {
  Callbacks& cb = *callbacks_;
  const Callbacks::Resolved* r = cb.Resolve(*this, req.kind);
  if (r == nullptr) {
    return Status(Code::kNotFound, "transaction " + Quote(req.id) +
                                       ": unknown kind " + Quote(req.kind) +
                                       " (registered: " + Join(kinds()) +
                                       ")");
  }
  const Workflow& wf = *r->wf;
  // An empty id asks for the kind's next number, issued below inside the
  // write transaction (so concurrent writers cannot take the same one).
  bool numbered = req.id.empty();
  if (!IsValidUtf8(req.id)) {
    return Status(Code::kInvalidArgument,
                  "kind " + Quote(req.kind) +
                      ": invalid transaction id (expected non-empty UTF-8)");
  }
  CRMFLOW_RETURN_IF_ERROR(CheckText("customer id", req.customer_id, req.id));
  CRMFLOW_RETURN_IF_ERROR(CheckText("parent id", req.parent_id, req.id));
  CRMFLOW_RETURN_IF_ERROR(CheckText("actor", req.actor, req.id));
  CRMFLOW_RETURN_IF_ERROR(CheckText("source", req.source, req.id));
  CRMFLOW_RETURN_IF_ERROR(
      CheckAttributes(wf, req.id, req.attributes, req.attributes));
  Timestamp time = req.time ? *req.time : clock_();
  int initial = wf.initial_state();

  CRMFLOW_RETURN_IF_ERROR(store_->Begin());
  WriteScope scope(store_.get(), &cb.cache, false);
  // Numbering: the counter row is incremented in this transaction, so it
  // commits or rolls back with the insert; the memory store's counter is
  // given back by hand unless the create commits.
  std::string issued;
  struct NumberScope {
    Numbering* n = nullptr;
    ~NumberScope() {
      if (n != nullptr) n->Discard();
    }
  } number_scope;
  if (numbered) {
    auto next = numbering_->Next(
        req.kind, time, [this](const std::string& id) -> StatusOr<bool> {
          auto v = store_->LoadVersion(id);
          if (!v.ok()) return v.status();
          return v->has_value();
        });
    if (!next.ok()) return next.status();
    if (!next->has_value()) {
      return Status(Code::kInvalidArgument,
                    "kind " + Quote(req.kind) +
                        ": invalid transaction id (expected non-empty UTF-8, "
                        "or a numbering format for the kind)");
    }
    issued = std::move(**next);
    number_scope.n = numbering_.get();
  }
  const std::string& id = numbered ? issued : req.id;
  auto existing = store_->LoadVersion(id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return Status(Code::kAlreadyExists,
                  "transaction " + Quote(id) + " already exists");
  }
  if (!req.source.empty()) {
    auto has = store_->HasSource(req.source);
    if (!has.ok()) return has.status();
    if (*has) {
      return Status(Code::kAlreadyExists, "transaction " + Quote(id) +
                                              ": source " +
                                              Quote(req.source) +
                                              " already recorded");
    }
  }
  Transaction txn;
  txn.id = id;
  txn.kind = req.kind;
  txn.state = wf.StateName(initial);
  txn.customer_id = req.customer_id;
  txn.parent_id = req.parent_id;
  if (!req.parent_id.empty()) {
    Transaction parent;
    auto found = store_->LoadTransaction(req.parent_id, &parent);
    if (!found.ok()) return found.status();
    if (!*found) {
      return Status(Code::kNotFound, "transaction " + Quote(id) +
                                         ": parent " + Quote(req.parent_id) +
                                         " not found");
    }
    if (txn.customer_id.empty()) txn.customer_id = parent.customer_id;
  }
  txn.attributes = req.attributes;
  txn.version = 1;
  txn.workflow_version = wf.version();
  txn.created_at = txn.updated_at = txn.state_entered_at = time;

  CallContext ctx{txn, wf, "create", "", txn.state, time, req.actor, ""};
  for (const HookFn* h : r->enter[initial]) (*h)(ctx);

  CRMFLOW_RETURN_IF_ERROR(store_->InsertTransaction(txn));
  HistoryRow row;
  row.transaction_id = txn.id;
  row.event = "create";
  row.to_state = txn.state;
  row.time = time;
  row.actor = req.actor;
  row.workflow_version = wf.version();
  row.source = req.source;
  auto seq = store_->AppendHistory(row);
  if (!seq.ok()) return seq.status();
  const uint64_t written = ++cb.writes;
  // Rules on "created" run in this transaction: their failure undoes the
  // create.  When they wrote, the transaction is returned as they left it.
  CRMFLOW_RETURN_IF_ERROR(rules_->AfterCreate(txn, time));
  if (cb.writes != written) {
    CRMFLOW_RETURN_IF_ERROR(cb.LoadForWrite(*store_, id, &txn));
  }
  CRMFLOW_RETURN_IF_ERROR(scope.Commit());
  number_scope.n = nullptr;
  numbering_->Keep();
  cb.Remember(txn);
  return txn;
}

Status Engine::Callbacks::Fire(Engine& engine, const FireArgs& args,
                               Transaction* txn_out, HistoryRow* row_out,
                               std::string_view* to_state_out) {
  Callbacks& cb = *engine.callbacks_;
  Store& store = *engine.store_;
  const ClockFn& clock = engine.clock_;
  if (!IsValidUtf8(args.actor) || !IsValidUtf8(args.payload) ||
      !IsValidUtf8(args.source) || !IsValidUtf8(args.event)) {
    return Status(Code::kInvalidArgument,
                  "transaction " + Quote(args.id) +
                      ": event, actor, payload or source is not valid UTF-8");
  }
  CRMFLOW_RETURN_IF_ERROR(store.Begin());
  WriteScope scope(&store, &cb.cache, false);
  Transaction& txn = *txn_out;
  CRMFLOW_RETURN_IF_ERROR(cb.LoadForWrite(store, args.id, &txn));
  if (args.expected_version && *args.expected_version != txn.version) {
    return Status(Code::kConcurrentUpdate,
                  "transaction " + Quote(args.id) + ": stale version " +
                      std::to_string(*args.expected_version) +
                      " (stored version " + std::to_string(txn.version) +
                      ")");
  }
  const Resolved* r = cb.Resolve(engine, txn.kind);
  if (r == nullptr) {
    return Status(Code::kNotFound, "transaction " + Quote(args.id) +
                                       ": kind " + Quote(txn.kind) +
                                       " has no registered workflow");
  }
  const Workflow& wf = *r->wf;
  int state = wf.StateId(txn.state);
  int event = wf.EventId(args.event);
  const auto& candidates = wf.Candidates(state, event);
  if (candidates.empty()) {
    return Status(Code::kNotAllowed,
                  "transaction " + Quote(args.id) + " in state " +
                      Quote(txn.state) + ": event " + Quote(args.event) +
                      " not allowed (allowed: " + Join(wf.EventsFrom(state)) +
                      ")");
  }
  if (!args.source.empty()) {
    auto has = store.HasSource(args.source);
    if (!has.ok()) return has.status();
    if (*has) {
      return Status(Code::kAlreadyExists, "transaction " + Quote(args.id) +
                                              ": source " +
                                              Quote(args.source) +
                                              " already recorded");
    }
  }
  Timestamp time = args.time ? *args.time : clock();
  CallContext ctx{txn,       wf,         args.event,   txn.state,
                  "",        time,       args.actor,   args.payload};

  // 1. Candidates in declaration order, guards left to right.
  const Workflow::Transition* chosen = nullptr;
  Status refusal;
  std::string reason;
  for (const Workflow::Transition* t : candidates) {
    ctx.to_state = wf.StateName(t->target);
    bool passed = true;
    for (const auto& g : r->transitions[t->index].guards) {
      if (g.fn == nullptr) {
        return Status(Code::kNotFound,
                      "transaction " + Quote(args.id) + ": guard " +
                          Quote(*g.name) + " of event " + Quote(args.event) +
                          " not registered");
      }
      reason.clear();
      if (!(*g.fn)(ctx, &reason)) {
        if (refusal.ok()) {
          std::string msg = "guard " + Quote(*g.name) + " refused event " +
                            Quote(args.event) + " on transaction " +
                            Quote(args.id);
          if (!reason.empty()) msg += ": " + reason;
          refusal = Status(Code::kGuardRefused, std::move(msg));
        }
        passed = false;
        break;
      }
    }
    if (passed) {
      chosen = t;
      break;
    }
  }
  if (chosen == nullptr) return refusal;
  const auto& actions = r->transitions[chosen->index].actions;
  for (const auto& a : actions) {
    if (a.fn == nullptr) {
      return Status(Code::kNotFound, "transaction " + Quote(args.id) +
                                         ": action " + Quote(*a.name) +
                                         " of event " + Quote(args.event) +
                                         " not registered");
    }
  }

  // 2. Exit hooks, actions, entry hooks (only actions when internal).
  const std::string& to_state = wf.StateName(chosen->target);
  ctx.to_state = to_state;
  bool external = !chosen->internal;
  if (external) {
    for (const HookFn* h : r->exit[state]) (*h)(ctx);
  }
  for (const auto& a : actions) (*a.fn)(ctx);
  if (external) {
    for (const HookFn* h : r->enter[chosen->target]) (*h)(ctx);
  }

  // 3. The write: state, version + 1 and the history row.
  HistoryRow& row = *row_out;
  row.transaction_id = txn.id;
  row.event.assign(args.event);
  row.from_state = txn.state;
  row.to_state = to_state;
  row.time = time;
  row.actor.assign(args.actor);
  row.payload.assign(args.payload);
  row.internal = chosen->internal;
  row.workflow_version = wf.version();
  row.source.assign(args.source);
  int64_t old_version = txn.version;
  txn.state = to_state;
  txn.version = old_version + 1;
  txn.updated_at = time;
  if (external) txn.state_entered_at = time;
  if (cb.impl != nullptr) {
    auto seq = cb.impl->ApplyTransition(txn, old_version, row);
    if (!seq.ok()) return seq.status();
    row.seq = *seq;
  } else {
    CRMFLOW_RETURN_IF_ERROR(store.UpdateTransaction(txn, old_version));
    auto seq = store.AppendHistory(row);
    if (!seq.ok()) return seq.status();
    row.seq = *seq;
  }
  const uint64_t written = ++cb.writes;
  // Rules (left, event, entered) run in this transaction, after the write,
  // so a failing rule rolls the transition back with all its effects.
  CRMFLOW_RETURN_IF_ERROR(engine.rules_->AfterFire(
      txn, args.event, row.from_state, external, time));
  // A rule's fire action (an automatic approval, say) may have moved the
  // transaction on: the call reports where it ends, as Get would.
  std::string_view final_state = to_state;
  if (cb.writes != written) {
    CRMFLOW_RETURN_IF_ERROR(cb.LoadForWrite(store, args.id, &txn));
    int reached = wf.StateId(txn.state);
    if (reached != Workflow::kNoId) final_state = wf.StateName(reached);
  }
  CRMFLOW_RETURN_IF_ERROR(scope.Commit());
  cb.Remember(txn);
  if (to_state_out != nullptr) *to_state_out = final_state;
  return Status::Ok();
}

StatusOr<FireResult> Engine::Fire(std::string_view id, std::string_view event,
                                  const FireOptions& options) {
  FireArgs args{id,           event,
                options.time, options.actor,
                options.payload, options.expected_version,
                options.source};
  Callbacks& cb = *callbacks_;
  FireResult result;
  if (cb.TryFastFire(*this, args, &result)) return result;
  Transaction local_txn;
  HistoryRow local_row;
  bool nested = cb.firing > 0;
  Transaction& txn = nested ? local_txn : cb.scratch_txn;
  HistoryRow& row = nested ? local_row : cb.scratch_row;
  ++cb.firing;
  struct Unmark {
    int* n;
    ~Unmark() { --*n; }
  } unmark{&cb.firing};
  CRMFLOW_RETURN_IF_ERROR(
      Callbacks::Fire(*this, args, &txn, &row, &result.state));
  result.version = txn.version;
  result.seq = row.seq;
  result.internal = row.internal;
  return result;
}

StatusOr<std::vector<std::string>> Engine::AllowedEvents(std::string_view id) {
  auto txn = Get(id);
  if (!txn.ok()) return txn.status();
  const Workflow* wf = FindWorkflow(txn->kind);
  if (wf == nullptr) {
    return Status(Code::kNotFound, "transaction " + Quote(id) + ": kind " +
                                       Quote(txn->kind) +
                                       " has no registered workflow");
  }
  return wf->EventsFrom(wf->StateId(txn->state));
}

StatusOr<Transaction> Engine::SetAttributes(std::string_view id,
                                            const Attributes& attributes,
                                            int64_t expected_version) {
  Callbacks& cb = *callbacks_;
  CRMFLOW_RETURN_IF_ERROR(store_->Begin());
  WriteScope scope(store_.get(), &cb.cache, false);
  Transaction txn;
  CRMFLOW_RETURN_IF_ERROR(cb.LoadForWrite(*store_, id, &txn));
  if (txn.version != expected_version) {
    return Status(Code::kConcurrentUpdate,
                  "transaction " + Quote(id) + ": stale version " +
                      std::to_string(expected_version) + " (stored version " +
                      std::to_string(txn.version) + ")");
  }
  const Workflow* wf = FindWorkflow(txn.kind);
  if (wf == nullptr) {
    return Status(Code::kNotFound, "transaction " + Quote(id) + ": kind " +
                                       Quote(txn.kind) +
                                       " has no registered workflow");
  }
  Attributes merged = txn.attributes;
  for (const auto& [name, v] : attributes) SetAttribute(merged, name, v);
  CRMFLOW_RETURN_IF_ERROR(CheckAttributes(*wf, id, attributes, merged));
  // Rules on "changed" compare with the values before; copy only then.
  std::optional<Transaction> before;
  if (rules_->HasRules(txn.kind)) before = txn;
  txn.attributes = std::move(merged);
  txn.version = expected_version + 1;
  txn.updated_at = clock_();
  CRMFLOW_RETURN_IF_ERROR(store_->UpdateTransaction(txn, expected_version));
  const uint64_t written = ++cb.writes;
  if (before) {
    CRMFLOW_RETURN_IF_ERROR(
        rules_->AfterSetAttributes(*before, txn, txn.updated_at));
  }
  // As in Fire: rules that wrote may have changed it further.
  if (cb.writes != written) {
    CRMFLOW_RETURN_IF_ERROR(cb.LoadForWrite(*store_, id, &txn));
  }
  CRMFLOW_RETURN_IF_ERROR(scope.Commit());
  cb.Remember(txn);
  return txn;
}

StatusOr<Transaction> Engine::Get(std::string_view id) {
  Transaction txn;
  auto found = store_->LoadTransaction(id, &txn);
  if (!found.ok()) return found.status();
  if (!*found) {
    return Status(Code::kNotFound, "transaction " + Quote(id) + " not found");
  }
  // A fresh read is a valid cache entry (SQLite only).
  if (store_->depth() == 0) callbacks_->Remember(txn);
  return txn;
}

StatusOr<std::vector<Transaction>> Engine::List(std::string_view kind,
                                                std::string_view state) {
  return store_->QueryTransactions(kind, state);
}

StatusOr<std::vector<HistoryRow>> Engine::History(const HistoryQuery& query) {
  return store_->QueryHistory(query);
}

StatusOr<std::vector<Deviation>> Engine::Deviations(std::string_view kind) {
  return store_->QueryDeviations(kind);
}

Status Engine::RecordDeviation(const Deviation& deviation) {
  return store_->AppendDeviation(deviation);
}

namespace {

// The batches Replay reads, behind one interface so that one loop serves
// them all without converting any to another.
template <typename Ev>  // ReplayEvent or ReplayEventRef
class RowBatch {
 public:
  explicit RowBatch(std::span<const Ev> events) : events_(events) {}
  size_t size() const { return events_.size(); }
  std::string_view id(size_t i) const { return events_[i].transaction_id; }
  std::string_view event(size_t i) const { return events_[i].event; }
  Timestamp time(size_t i) const { return events_[i].time; }
  std::string_view actor(size_t i) const { return events_[i].actor; }
  std::string_view payload(size_t i) const { return events_[i].payload; }
  std::string_view source(size_t i) const { return events_[i].source; }

 private:
  std::span<const Ev> events_;
};

class ColumnBatch {
 public:
  explicit ColumnBatch(const ReplayColumns& c) : c_(c) {}
  size_t size() const { return c_.ids.size(); }
  std::string_view id(size_t i) const { return c_.ids[i]; }
  std::string_view event(size_t i) const { return c_.events[i]; }
  Timestamp time(size_t i) const { return Timestamp{c_.times[i]}; }
  std::string_view actor(size_t i) const {
    return c_.actors.empty() ? std::string_view() : c_.actors[i];
  }
  std::string_view payload(size_t i) const {
    return c_.payloads.empty() ? std::string_view() : c_.payloads[i];
  }
  std::string_view source(size_t i) const {
    return c_.sources.empty() ? std::string_view() : c_.sources[i];
  }

 private:
  const ReplayColumns& c_;
};

// Same text, by pointer first: callers pass a case's repeated id as the
// same view.
bool SameText(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         (a.data() == b.data() ||
          std::memcmp(a.data(), b.data(), a.size()) == 0);
}

}  // namespace

StatusOr<ReplaySummary> Engine::Replay(const std::vector<ReplayEvent>& events,
                                       const ReplayOptions& options) {
  return Callbacks::Replay(
      *this, RowBatch<ReplayEvent>(std::span<const ReplayEvent>(events)),
      options);
}

StatusOr<ReplaySummary> Engine::Replay(std::span<const ReplayEventRef> events,
                                       const ReplayOptions& options) {
  return Callbacks::Replay(*this, RowBatch<ReplayEventRef>(events), options);
}

StatusOr<ReplaySummary> Engine::Replay(const ReplayColumns& events,
                                       const ReplayOptions& options) {
  const size_t n = events.ids.size();
  auto fits = [n](size_t size, bool optional) {
    return size == n || (optional && size == 0);
  };
  if (!fits(events.events.size(), false) ||
      !fits(events.times.size(), false) ||
      !fits(events.actors.size(), true) ||
      !fits(events.payloads.size(), true) ||
      !fits(events.sources.size(), true)) {
    return Status(Code::kInvalidArgument,
                  "replay: columns differ in length");
  }
  return Callbacks::Replay(*this, ColumnBatch(events), options);
}

// The loop of every Replay.  On the memory store, an event without source
// whose transition runs no callback takes the fast path of TryFastFire,
// inlined here so that what a batch repeats is looked up once: a case's
// next event (same id as the one before) reuses the record found for the
// previous one, whose state and version it just wrote.  Anything else
// goes through Fire, after which nothing cached is trusted (a callback may
// have fired on the same record).
template <typename Batch>
StatusOr<ReplaySummary> Engine::Callbacks::Replay(
    Engine& engine, const Batch& events, const ReplayOptions& options) {
  Callbacks& cb = *engine.callbacks_;
  auto& store_ = engine.store_;
  ReplaySummary summary;
  // Each event's position within its case, needed only by deviations: the
  // counts start at the first deviation, over the events before it, and
  // are kept up to date from there on.
  std::unordered_map<std::string_view, int> positions;
  bool counting = false;
  CRMFLOW_RETURN_IF_ERROR(store_->Begin());
  // A rolled-back batch may have updated cached transactions: drop them.
  auto scope = std::make_unique<WriteScope>(store_.get(), &cb.cache, true);
  int64_t since_commit = 0;
  Transaction local_txn;
  HistoryRow local_row;
  bool nested = cb.firing > 0;
  Transaction& txn = nested ? local_txn : cb.scratch_txn;
  HistoryRow& row = nested ? local_row : cb.scratch_row;
  ++cb.firing;
  struct Unmark {
    int* n;
    ~Unmark() { --*n; }
  } unmark{&cb.firing};
  // Grow the history once for the batch rather than by doubling on the
  // way (each doubling copies every row and faults in fresh pages).
  if (cb.in_process) cb.impl->ReserveHistory(events.size());
  internal::StoreImpl::Hot hot;
  std::string_view hot_id;  // the id `hot` was found for
  bool hot_valid = false;
  // The edges found so far, by the event view's address and the state:
  // a batch's event column repeats a few views, and a hit saves the
  // search and its string compares.  Cleared with `hot` (a callback may
  // register a workflow, which rebuilds the tables the edges live in).
  struct EdgeHit {
    const char* data = nullptr;
    size_t size = 0;
    const Resolved* r = nullptr;
    uint32_t state = 0;
    const Edge* edge = nullptr;
  };
  constexpr size_t kEdgeHits = 64;
  std::vector<EdgeHit> edge_hits(cb.in_process ? kEdgeHits : 0);
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string_view id = events.id(i);
    const std::string_view source = events.source(i);
    int position = counting ? positions[id]++ : 0;
    if (!source.empty()) {
      auto has = store_->HasSource(source);
      if (!has.ok()) return has.status();
      if (*has) {
        ++summary.skipped;
        continue;
      }
    }
    const std::string_view event = events.event(i);
    const Timestamp time = events.time(i);
    const std::string_view actor = events.actor(i);
    const std::string_view payload = events.payload(i);
    bool done = false;
    if (cb.in_process && source.empty()) {
      if (!hot_valid || !SameText(id, hot_id)) {
        hot_valid = cb.impl->FindHot(id, &hot);
        hot_id = id;
      }
      const Resolved* r =
          hot_valid ? cb.ResolveHot(engine, hot.kind) : nullptr;
      const Edge* edge = nullptr;
      EdgeHit* hit = nullptr;
      if (r != nullptr) {
        hit = &edge_hits[((reinterpret_cast<uintptr_t>(event.data()) >> 3) ^
                          hot.state * 0x9E3779B1u) %
                         kEdgeHits];
        if (hit->data == event.data() && hit->size == event.size() &&
            hit->r == r && hit->state == hot.state) {
          edge = hit->edge;
          hit = nullptr;
        }
      }
      if (hit != nullptr && hot.state < r->state_of_name.size()) {
        int state = r->state_of_name[hot.state];
        if (state != Workflow::kNoId) {
          for (const Edge& candidate : r->edges[state]) {
            if (SameText(candidate.event, event)) {
              edge = &candidate;
              break;
            }
          }
        }
        *hit = EdgeHit{event.data(), event.size(), r, hot.state, edge};
      }
      if (edge != nullptr && edge->simple &&
          (actor.empty() || IsValidUtf8(actor)) &&
          (payload.empty() || IsValidUtf8(payload))) {
        const Workflow::Transition& t = *edge->first;
        internal::StoreImpl::HotTransition write;
        write.to_state = edge->store_to;
        write.event = edge->store_event;
        write.time = time;
        write.external = !t.internal;
        write.internal = t.internal;
        write.workflow_version = r->wf->version();
        write.actor = actor;
        write.payload = payload;
        cb.impl->ApplyHot(hot, write);
        hot.state = edge->store_to;
        ++hot.version;
        done = true;
      }
    }
    Status st;
    if (!done) {
      hot_valid = false;
      std::fill(edge_hits.begin(), edge_hits.end(), EdgeHit{});
      FireArgs args{id, event, time, actor, payload, std::nullopt, source};
      st = Callbacks::Fire(engine, args, &txn, &row);
    }
    if (st.ok()) {
      ++summary.applied;
    } else if (options.record_deviations &&
               (st.code() == Code::kNotAllowed ||
                st.code() == Code::kGuardRefused)) {
      if (!counting) {
        for (size_t j = 0; j < i; ++j) ++positions[events.id(j)];
        position = positions[id]++;
        counting = true;
      }
      Deviation d;
      d.transaction_id = id;
      d.kind = txn.kind;
      d.position = position;
      d.state = txn.state;
      d.event = event;
      d.time = time;
      d.reason = st.message();
      d.source = source;
      CRMFLOW_RETURN_IF_ERROR(store_->AppendDeviation(d));
      ++summary.deviations;
    } else {
      return st;
    }
    if (options.commit_every > 0 && ++since_commit >= options.commit_every) {
      CRMFLOW_RETURN_IF_ERROR(scope->Commit());
      since_commit = 0;
      CRMFLOW_RETURN_IF_ERROR(store_->Begin());
      scope = std::make_unique<WriteScope>(store_.get(), &cb.cache, true);
    }
  }
  CRMFLOW_RETURN_IF_ERROR(scope->Commit());
  return summary;
}

Status Engine::Begin() { return store_->Begin(); }

Status Engine::Commit() { return store_->Commit(); }

Status Engine::Rollback() {
  // Cached copies may hold writes being undone.
  callbacks_->cache.clear();
  return store_->Rollback();
}

Status Engine::SetNumbering(const NumberingSpec& spec) {
  return numbering_->Define(spec);
}

StatusOr<std::optional<NumberingSpec>> Engine::GetNumbering(
    std::string_view kind) {
  return numbering_->Find(kind);
}

Status Engine::SetCounter(std::string_view kind, int64_t last,
                          int64_t period) {
  return numbering_->SetCounter(kind, last, period);
}

StatusOr<int64_t> Engine::Counter(std::string_view kind, int64_t period) {
  return numbering_->Counter(kind, period);
}

StatusOr<std::vector<KindReport>> Engine::Report() {
  std::vector<KindReport> out;
  for (const auto& [kind, wf] : workflows_) {
    auto txns = store_->QueryTransactions(kind, "");
    if (!txns.ok()) return txns.status();
    if (txns->empty()) continue;
    KindReport report;
    report.kind = kind;
    report.transactions = static_cast<int64_t>(txns->size());
    for (const Transaction& t : *txns) ++report.by_state[t.state];

    HistoryQuery q;
    q.kind = kind;
    auto rows = store_->QueryHistory(q);
    if (!rows.ok()) return rows.status();
    // Per transaction, in seq order: when it entered its current state
    // (internal transitions do not reset it) and which states it reached.
    struct Track {
      Timestamp entered;
      std::vector<std::string> reached;
    };
    std::unordered_map<std::string, Track> tracks;
    std::map<std::tuple<std::string, std::string, std::string>,
             std::vector<double>>
        spans;
    for (const HistoryRow& row : *rows) {
      Track& tr = tracks[row.transaction_id];
      if (std::find(tr.reached.begin(), tr.reached.end(), row.to_state) ==
          tr.reached.end()) {
        tr.reached.push_back(row.to_state);
        ++report.reached[row.to_state];
      }
      if (row.from_state.empty() && row.event == "create") {
        tr.entered = row.time;
        continue;
      }
      double seconds =
          static_cast<double>(row.time.micros - tr.entered.micros) / 1e6;
      spans[{row.from_state, row.to_state, row.event}].push_back(seconds);
      if (!row.internal) tr.entered = row.time;
    }
    for (auto& [key, values] : spans) {
      std::sort(values.begin(), values.end());
      KindReport::TransitionStat stat;
      stat.from_state = std::get<0>(key);
      stat.to_state = std::get<1>(key);
      stat.event = std::get<2>(key);
      stat.count = static_cast<int64_t>(values.size());
      stat.median_seconds = Percentile(values, 0.5);
      stat.p90_seconds = Percentile(values, 0.9);
      report.transitions.push_back(std::move(stat));
    }
    std::stable_sort(report.transitions.begin(), report.transitions.end(),
                     [](const KindReport::TransitionStat& a,
                        const KindReport::TransitionStat& b) {
                       return a.count > b.count;
                     });
    auto devs = store_->QueryDeviations(kind);
    if (!devs.ok()) return devs.status();
    report.deviations = static_cast<int64_t>(devs->size());
    out.push_back(std::move(report));
  }
  return out;
}

}  // namespace crmflow
