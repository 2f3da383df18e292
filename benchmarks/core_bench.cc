// core_bench.cc: figures of the C++ core on its own, without Python.
//
// Prints, for synthetic sales orders (six events each):
//   * bytes of heap per transaction in the memory store (malloc statistics
//     before and after creating the orders, creation rows included);
//   * nanoseconds per Fire on the memory store and per Replay event (rows
//     and columns);
//   * events per second on a SQLite file for Engine::Fire and for
//     hand-written sqlite3 statements doing the same writes (UPDATE + INSERT),
//     committing every event and every 1,000 events, with their ratio.
//
// Usage: core_bench [orders] [sqlite_orders]

#include <malloc.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "crmflow/engine.h"
#include "crmflow/workflow.h"

namespace {

const char* const kStates[] = {"created",  "pending_approval", "approved",
                               "invoiced", "shipped",          "delivered",
                               "completed"};
const char* const kEvents[] = {"submit", "approve", "invoice",
                               "ship",   "deliver", "complete"};
constexpr int kEventCount = 6;

crmflow::Workflow OrderWorkflow() {
  crmflow::Workflow wf("bench_order", 1);
  for (int i = 0; i < 7; ++i) {
    auto role = i == 0   ? crmflow::StateRole::kInitial
                : i == 6 ? crmflow::StateRole::kTerminal
                         : crmflow::StateRole::kNormal;
    (void)wf.AddState(kStates[i], role);
  }
  for (int i = 0; i < kEventCount; ++i) {
    (void)wf.AddTransition({kEvents[i], kStates[i], kStates[i + 1]});
  }
  return wf;
}

// Heap in use, large blocks included: glibc serves big vectors (the
// history, the id index) with mmap, which uordblks alone does not count.
size_t HeapInUse() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

std::string OrderId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "SO-%07d", i);
  return buf;
}

void Die(const crmflow::Status& st) {
  std::fprintf(stderr, "core_bench: %s\n", st.ToString().c_str());
  std::exit(1);
}

std::unique_ptr<crmflow::Engine> OpenWithOrders(const std::string& path,
                                                int n) {
  crmflow::EngineOptions options;
  options.path = path;
  auto engine = crmflow::Engine::Open(options);
  if (!engine.ok()) Die(engine.status());
  auto& e = *engine.value();
  crmflow::Status st = e.Register(OrderWorkflow(), "");
  if (!st.ok()) Die(st);
  st = e.Begin();
  if (!st.ok()) Die(st);
  crmflow::CreateRequest req;
  req.kind = "bench_order";
  req.time = crmflow::Timestamp{1767225600000000};
  for (int i = 0; i < n; ++i) {
    req.id = OrderId(i);
    auto r = e.Create(req);
    if (!r.ok()) Die(r.status());
  }
  st = e.Commit();
  if (!st.ok()) Die(st);
  return std::move(engine).value();
}

double EngineSqliteRate(const std::string& path, int n, int group) {
  auto engine = OpenWithOrders(path, n);
  crmflow::FireOptions options;
  options.time = crmflow::Timestamp{1767225600000000};
  int count = 0;
  auto t0 = std::chrono::steady_clock::now();
  if (group > 1 && !engine->Begin().ok()) std::exit(1);
  for (int i = 0; i < n; ++i) {
    std::string id = OrderId(i);
    for (int k = 0; k < kEventCount; ++k) {
      auto r = engine->Fire(id, kEvents[k], options);
      if (!r.ok()) Die(r.status());
      if (group > 1 && ++count % group == 0) {
        if (!engine->Commit().ok() || !engine->Begin().ok()) std::exit(1);
      }
    }
  }
  if (group > 1 && !engine->Commit().ok()) std::exit(1);
  return n * kEventCount / Seconds(t0);
}

void Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "core_bench: %s: %s\n", sql, err);
    std::exit(1);
  }
}

double RawSqliteRate(const std::string& path, int n, int group) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  Exec(db, "PRAGMA journal_mode=WAL");
  Exec(db, "PRAGMA synchronous=NORMAL");
  Exec(db,
       "CREATE TABLE transactions(id TEXT PRIMARY KEY, kind TEXT, state TEXT,"
       " version INTEGER, updated_at TEXT, state_entered_at TEXT);"
       "CREATE TABLE history(seq INTEGER PRIMARY KEY, transaction_id TEXT,"
       " event TEXT, from_state TEXT, to_state TEXT, time TEXT, actor TEXT,"
       " payload TEXT, internal INTEGER, workflow_version INTEGER,"
       " source TEXT);"
       "CREATE INDEX history_txn ON history(transaction_id, seq);"
       "CREATE INDEX history_time ON history(time);");
  Exec(db, "BEGIN");
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO transactions VALUES(?,'bench_order',"
                     "'created',1,'','')",
                     -1, &ins, nullptr);
  for (int i = 0; i < n; ++i) {
    std::string id = OrderId(i);
    sqlite3_bind_text(ins, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(ins);
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  Exec(db, "COMMIT");
  sqlite3_stmt* upd = nullptr;
  sqlite3_stmt* his = nullptr;
  sqlite3_prepare_v2(db,
                     "UPDATE transactions SET state=?1, version=version+1,"
                     " updated_at=?2, state_entered_at=?2 WHERE id=?3 AND"
                     " version=?4",
                     -1, &upd, nullptr);
  sqlite3_prepare_v2(db,
                     "INSERT INTO history(transaction_id,event,from_state,"
                     "to_state,time,actor,payload,internal,workflow_version,"
                     "source) VALUES(?,?,?,?,?,NULL,NULL,0,1,NULL)",
                     -1, &his, nullptr);
  const char* stamp = "2026-01-01T00:00:00.000000Z";
  int count = 0;
  auto t0 = std::chrono::steady_clock::now();
  Exec(db, "BEGIN IMMEDIATE");
  for (int i = 0; i < n; ++i) {
    std::string id = OrderId(i);
    for (int k = 0; k < kEventCount; ++k) {
      sqlite3_bind_text(upd, 1, kStates[k + 1], -1, SQLITE_STATIC);
      sqlite3_bind_text(upd, 2, stamp, -1, SQLITE_STATIC);
      sqlite3_bind_text(upd, 3, id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(upd, 4, k + 1);
      if (sqlite3_step(upd) != SQLITE_DONE) std::exit(1);
      sqlite3_reset(upd);
      sqlite3_bind_text(his, 1, id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(his, 2, kEvents[k], -1, SQLITE_STATIC);
      sqlite3_bind_text(his, 3, kStates[k], -1, SQLITE_STATIC);
      sqlite3_bind_text(his, 4, kStates[k + 1], -1, SQLITE_STATIC);
      sqlite3_bind_text(his, 5, stamp, -1, SQLITE_STATIC);
      if (sqlite3_step(his) != SQLITE_DONE) std::exit(1);
      sqlite3_reset(his);
      if (++count % group == 0) {
        Exec(db, "COMMIT");
        Exec(db, "BEGIN IMMEDIATE");
      }
    }
  }
  Exec(db, "COMMIT");
  double rate = n * kEventCount / Seconds(t0);
  sqlite3_finalize(upd);
  sqlite3_finalize(his);
  sqlite3_close(db);
  return rate;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 1000000;
  const int ns = argc > 2 ? std::atoi(argv[2]) : 20000;

  // Memory per transaction: heap in use before and after the creates.
  size_t before = HeapInUse();
  auto engine = OpenWithOrders("", n);
  size_t after = HeapInUse();
  std::printf("memory store: %d transactions, %.1f bytes each (heap, "
              "creation rows included)\n",
              n, static_cast<double>(after - before) / n);

  // Fire on the memory store.
  crmflow::FireOptions options;
  options.time = crmflow::Timestamp{1767225600000000};
  std::vector<std::string> ids;
  ids.reserve(n);
  for (int i = 0; i < n; ++i) ids.push_back(OrderId(i));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < kEventCount; ++k) {
      auto r = engine->Fire(ids[i], kEvents[k], options);
      if (!r.ok()) Die(r.status());
    }
  }
  double s = Seconds(t0);
  std::printf("memory store: %.0f ns per Fire (%d events)\n",
              s * 1e9 / (n * kEventCount), n * kEventCount);
  size_t after_fire = HeapInUse();
  std::printf("memory store: %.1f bytes per history row\n",
              static_cast<double>(after_fire - after) / (n * kEventCount));
  engine.reset();

  // Replay on the memory store.
  engine = OpenWithOrders("", n);
  std::vector<crmflow::ReplayEvent> batch;
  batch.reserve(static_cast<size_t>(n) * kEventCount);
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < kEventCount; ++k) {
      crmflow::ReplayEvent ev;
      ev.transaction_id = ids[i];
      ev.event = kEvents[k];
      ev.time = crmflow::Timestamp{1767225600000000LL + i * 1000LL + k};
      batch.push_back(std::move(ev));
    }
  }
  t0 = std::chrono::steady_clock::now();
  auto summary = engine->Replay(batch, {});
  s = Seconds(t0);
  if (!summary.ok()) Die(summary.status());
  std::printf("memory store: %.0f ns per replayed event (%lld applied)\n",
              s * 1e9 / batch.size(),
              static_cast<long long>(summary.value().applied));
  engine.reset();
  batch.clear();
  batch.shrink_to_fit();

  // The same by columns, as the Python binding passes them: one view per
  // event pointing at each order's id (repeated, as Python's lists repeat
  // the same str objects) and at the event names.
  engine = OpenWithOrders("", n);
  {
    std::vector<std::string_view> id_col, event_col;
    std::vector<int64_t> time_col;
    id_col.reserve(static_cast<size_t>(n) * kEventCount);
    event_col.reserve(id_col.capacity());
    time_col.reserve(id_col.capacity());
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < kEventCount; ++k) {
        id_col.push_back(ids[i]);
        event_col.push_back(kEvents[k]);
        time_col.push_back(1767225600000000LL + i * 1000LL + k);
      }
    }
    crmflow::ReplayColumns columns;
    columns.ids = id_col;
    columns.events = event_col;
    columns.times = time_col;
    t0 = std::chrono::steady_clock::now();
    summary = engine->Replay(columns, {});
    s = Seconds(t0);
    if (!summary.ok()) Die(summary.status());
    std::printf("memory store: %.0f ns per replayed event by columns "
                "(%lld applied)\n",
                s * 1e9 / id_col.size(),
                static_cast<long long>(summary.value().applied));
  }
  engine.reset();

  // SQLite: engine against hand-written statements, same commit grouping.
  char dir[] = "/tmp/crmflow-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  for (int group : {1, 1000}) {
    std::string tag = std::to_string(group);
    double raw = RawSqliteRate(std::string(dir) + "/raw" + tag + ".db", ns,
                               group);
    double ours = EngineSqliteRate(std::string(dir) + "/crm" + tag + ".db",
                                   ns, group);
    std::printf("sqlite, commit every %4d: raw %10.0f ev/s, engine %10.0f "
                "ev/s, ratio %.2f\n",
                group, raw, ours, ours / raw);
  }
  std::string cleanup = std::string("rm -rf ") + dir;
  return std::system(cleanup.c_str()) == 0 ? 0 : 1;
}
