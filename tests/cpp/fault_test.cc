// fault_test.cc: every write path of the engine and its modules under
// injected SQLite failures.
//
// A VFS wrapping SQLite's default one (registered as "crmflow_fault",
// reached through SqliteOptions::vfs) fails the N-th call of one kind --
// xWrite, a write that grows its file, xSync or xTruncate with SQLITE_FULL
// or SQLITE_IOERR (from the N-th call on, like a disk that stays full),
// or a lock with SQLITE_BUSY (once, like a brief contention).  For each
// write path the test runs the operation with N = 1, 2, 3, ... on a fresh
// file until a run sees no fault.  A run that failed must return
// kStoreError carrying SQLite's message, leave every table exactly as it
// was (read back through a plain connection), and leave the engine in
// memory consistent: the same call on the same engine, faults off, then
// gives the result of a run that never saw a fault.  The figures (points
// tried per path and mode) are printed.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "crmflow/engine.h"
#include "crmflow/importer.h"
#include "crmflow/routing.h"
#include "crmflow/scheduler.h"

namespace crmflow {
namespace {

// --- The fault-injecting VFS. ---

enum class Mode { kOff, kWrite, kWriteOnce, kGrow, kSync, kTruncate, kBusy };

struct Faults {
  Mode mode = Mode::kOff;
  int rc = SQLITE_IOERR;
  int64_t fail_at = 0;  // the 1-based call that fails first
  int64_t calls = 0;    // calls of the mode's kind seen
  int64_t injected = 0;
};
Faults g_faults;

// Counts a call of kind `m`; returns true when it must fail.
bool Hit(Mode m) {
  if (g_faults.mode != m) return false;
  ++g_faults.calls;
  bool once = m == Mode::kBusy || m == Mode::kWriteOnce;
  bool fail = once ? g_faults.calls == g_faults.fail_at
                   : g_faults.calls >= g_faults.fail_at;
  if (fail) ++g_faults.injected;
  return fail;
}

struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real;  // the default VFS's file, allocated right after
};

sqlite3_file* Real(sqlite3_file* f) {
  return reinterpret_cast<FaultFile*>(f)->real;
}

int FClose(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }
int FRead(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  return Real(f)->pMethods->xRead(Real(f), p, n, off);
}
int FWrite(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  if (Hit(Mode::kWrite) || Hit(Mode::kWriteOnce)) return g_faults.rc;
  if (g_faults.mode == Mode::kGrow) {
    sqlite3_int64 size = 0;
    Real(f)->pMethods->xFileSize(Real(f), &size);
    if (off + n > size && Hit(Mode::kGrow)) return g_faults.rc;
  }
  return Real(f)->pMethods->xWrite(Real(f), p, n, off);
}
int FTruncate(sqlite3_file* f, sqlite3_int64 size) {
  if (Hit(Mode::kTruncate)) return g_faults.rc;
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int FSync(sqlite3_file* f, int flags) {
  if (Hit(Mode::kSync)) return g_faults.rc;
  return Real(f)->pMethods->xSync(Real(f), flags);
}
int FFileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int FLock(sqlite3_file* f, int level) {
  if (Hit(Mode::kBusy)) return SQLITE_BUSY;
  return Real(f)->pMethods->xLock(Real(f), level);
}
int FUnlock(sqlite3_file* f, int level) {
  return Real(f)->pMethods->xUnlock(Real(f), level);
}
int FCheckReserved(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int FSectorSize(sqlite3_file* f) {
  return Real(f)->pMethods->xSectorSize(Real(f));
}
int FDevice(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int FShmMap(sqlite3_file* f, int region, int size, int extend,
            void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), region, size, extend, out);
}
int FShmLock(sqlite3_file* f, int offset, int n, int flags) {
  // Only acquisitions can be refused; an unlock always succeeds.
  if ((flags & SQLITE_SHM_LOCK) && Hit(Mode::kBusy)) return SQLITE_BUSY;
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void FShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int FShmUnmap(sqlite3_file* f, int del) {
  return Real(f)->pMethods->xShmUnmap(Real(f), del);
}
int FFetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  return Real(f)->pMethods->xFetch(Real(f), off, n, out);
}
int FUnfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return Real(f)->pMethods->xUnfetch(Real(f), off, p);
}

const sqlite3_io_methods kFaultMethods = {
    3,           FClose,         FRead,     FWrite,      FTruncate,
    FSync,       FFileSize,      FLock,     FUnlock,     FCheckReserved,
    FControl,    FSectorSize,    FDevice,   FShmMap,     FShmLock,
    FShmBarrier, FShmUnmap,      FFetch,    FUnfetch,
};

int FOpen(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f,
          int flags, int* out_flags) {
  auto* real_vfs = static_cast<sqlite3_vfs*>(vfs->pAppData);
  auto* ff = reinterpret_cast<FaultFile*>(f);
  ff->real = reinterpret_cast<sqlite3_file*>(ff + 1);
  ff->real->pMethods = nullptr;
  int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
  // Without methods SQLite never calls xClose: mirror the real file.
  ff->base.pMethods = ff->real->pMethods != nullptr ? &kFaultMethods
                                                    : nullptr;
  return rc;
}

constexpr const char* kVfs = "crmflow_fault";

void RegisterFaultVfs() {
  static sqlite3_vfs vfs;
  static bool done = false;
  if (done) return;
  done = true;
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  ASSERT_GE(real->iVersion, 1);
  vfs = *real;
  vfs.zName = kVfs;
  vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + real->szOsFile;
  vfs.pAppData = real;
  vfs.xOpen = FOpen;
  vfs.pNext = nullptr;
  ASSERT_EQ(SQLITE_OK, sqlite3_vfs_register(&vfs, 0));
}

// --- Reading the file back independently of the store. ---

// Returns every table's rows (and the schema) as text, read through a
// plain connection with the default VFS.  `comparable` leaves out the
// columns holding the wall clock (workflows.registered_at,
// imports.started_at), for comparing two files.
std::string Dump(const std::string& path, bool comparable) {
  sqlite3* db = nullptr;
  EXPECT_EQ(SQLITE_OK, sqlite3_open_v2(path.c_str(), &db,
                                       SQLITE_OPEN_READONLY, nullptr));
  std::string out;
  auto query = [&](const std::string& sql, bool skip_clock) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr))
        << sql << ": " << sqlite3_errmsg(db);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        std::string col = sqlite3_column_name(s, i);
        if (skip_clock && (col == "registered_at" || col == "started_at")) {
          continue;
        }
        const unsigned char* v = sqlite3_column_text(s, i);
        out += v == nullptr ? "NULL" : reinterpret_cast<const char*>(v);
        out += '|';
      }
      out += '\n';
    }
    EXPECT_EQ(SQLITE_DONE, rc) << sql << ": " << sqlite3_errmsg(db);
    sqlite3_finalize(s);
  };
  std::vector<std::string> tables;
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT name FROM sqlite_master WHERE type = 'table' "
                     "ORDER BY name",
                     -1, &s, nullptr);
  while (sqlite3_step(s) == SQLITE_ROW) {
    tables.emplace_back(
        reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
  }
  sqlite3_finalize(s);
  query("SELECT type, name, sql FROM sqlite_master ORDER BY type, name",
        false);
  for (const std::string& t : tables) {
    out += "== " + t + "\n";
    query("SELECT * FROM \"" + t + "\" ORDER BY rowid", comparable);
  }
  sqlite3_close(db);
  return out;
}

// --- The write paths. ---

Timestamp T(const char* iso) { return Timestamp::ParseIso(iso).value(); }

Workflow Order() {
  Workflow wf("order", 1);
  EXPECT_TRUE(wf.AddState("new", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("submitted").ok());
  EXPECT_TRUE(wf.AddState("shipped", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddTransition({"submit", "new", "submitted"}).ok());
  EXPECT_TRUE(wf.AddTransition({"ship", "submitted", "shipped"}).ok());
  EXPECT_TRUE(wf.AddAttribute({"note", ValueType::kText, false}).ok());
  EXPECT_TRUE(wf.AddAttribute({"team", ValueType::kText, false}).ok());
  EXPECT_TRUE(wf.AddAttribute({"assignee", ValueType::kText, false}).ok());
  return wf;
}

// What one run works on: the engine and the modules a path attaches.
struct World {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<Router> router;
  std::string csv;  // an event log for the import path
};

CreateRequest Create(const std::string& id) {
  CreateRequest r;
  r.kind = "order";
  r.id = id;
  r.time = T("2026-02-02T08:00:00Z");
  r.attributes = {{"note", Value::Text("first")}};
  return r;
}

struct WritePath {
  const char* name;
  std::function<void(World&)> setup;        // faults off
  std::function<Status(World&)> operation;  // faults on
};

// Runs `n` creates in one explicit transaction (the engine's batch).
Status Batch(Engine& e, int n, const char* prefix) {
  CRMFLOW_RETURN_IF_ERROR(e.Begin());
  for (int i = 0; i < n; ++i) {
    auto r = e.Create(Create(prefix + std::to_string(i)));
    if (!r.ok()) {
      (void)e.Rollback();
      return r.status();
    }
  }
  return e.Commit();
}

std::vector<WritePath> Paths() {
  auto one = [](World& w) {
    ASSERT_TRUE(w.engine->Create(Create("O-1")).ok());
  };
  return {
      {"create", [](World&) {},
       [](World& w) { return w.engine->Create(Create("O-9")).status(); }},
      {"fire", one,
       [](World& w) {
         FireOptions o;
         o.time = T("2026-02-02T09:00:00Z");
         return w.engine->Fire("O-1", "submit", o).status();
       }},
      {"set_attributes", one,
       [](World& w) {
         return w.engine
             ->SetAttributes("O-1", {{"note", Value::Text("second")}}, 1)
             .status();
       }},
      {"batch_create", [](World&) {},
       [](World& w) { return Batch(*w.engine, 40, "B-"); }},
      {"import",
       [](World& w) {
         std::ofstream f(w.csv);
         f << "case,activity,time\n";
         for (int c = 0; c < 30; ++c) {
           f << "C-" << c << ",submit,2026-02-02T09:00:00Z\n";
           if (c % 3 != 0) f << "C-" << c << ",ship,2026-02-02T10:00:00Z\n";
           if (c % 7 == 0) f << "C-" << c << ",submit,2026-02-02T11:00:00Z\n";
         }
       },
       [](World& w) {
         EventLogMapping m;
         m.common.kind = "order";
         m.common.case_columns = {"case"};
         m.activity_column = "activity";
         m.time_column = "time";
         return ImportEventLog(*w.engine, w.csv, m).status();
       }},
      {"replay",
       [](World& w) { ASSERT_TRUE(Batch(*w.engine, 10, "R-").ok()); },
       [](World& w) {
         std::vector<ReplayEvent> batch;
         for (int i = 0; i < 10; ++i) {
           std::string id = "R-" + std::to_string(i);
           batch.push_back({id, "submit", T("2026-02-02T09:00:00Z"), "", "",
                            "replay:" + id + ":1"});
           batch.push_back({id, i % 2 ? "ship" : "submit",
                            T("2026-02-02T10:00:00Z"), "", "",
                            "replay:" + id + ":2"});
         }
         return w.engine->Replay(batch, {}).status();
       }},
      {"numbering",
       [](World& w) {
         ASSERT_TRUE(
             w.engine->SetNumbering({"order", "ORD-{n:04}", false, "UTC"})
                 .ok());
         ASSERT_TRUE(w.engine->Create(Create("")).ok());
       },
       [](World& w) { return w.engine->Create(Create("")).status(); }},
      {"tick",
       [](World& w) {
         auto s = Scheduler::Attach(*w.engine);
         ASSERT_TRUE(s.ok()) << s.status().ToString();
         w.scheduler = std::move(*s);
         ServicePolicy p;
         p.name = "ship_in_1h";
         p.kind = "order";
         p.sla.target = Duration{3600000000LL};
         p.sla.met_states = {"shipped"};
         // One ticket, one step: a tick is then one unit of work.  (Each
         // due timer commits on its own, so a tick failing at its k-th
         // timer keeps the k - 1 before, as scheduler.h documents.)
         EscalationStep breach{
             1.0,
             {EscalationAction::Notify("email", "boss", "late"),
              EscalationAction::SetAttribute("note", Value::Text("late")),
              EscalationAction::FireEvent("submit")}};
         p.escalation = {breach};
         ASSERT_TRUE(w.scheduler->AddPolicy(p).ok());
         ASSERT_TRUE(w.engine->Create(Create("S-1")).ok());
       },
       [](World& w) {
         auto r = w.scheduler->Tick(T("2026-02-02T12:00:00Z"));
         if (r.ok() && r->fired != 1) {
           return Status(Code::kInvalidArgument,
                         "fired " + std::to_string(r->fired) + " of 1");
         }
         return r.status();
       }},
      {"route",
       [](World& w) {
         auto r = Router::Attach(w.engine.get());
         ASSERT_TRUE(r.ok()) << r.status().ToString();
         w.router = std::move(*r);
         Team t;
         t.name = "desk";
         for (const char* m : {"A", "B", "C"}) {
           t.members.push_back(Member{m, {}, 0, true, {}});
         }
         ASSERT_TRUE(w.router->AddTeam(t).ok());
         ASSERT_TRUE(w.engine->Create(Create("O-1")).ok());
         ASSERT_TRUE(w.engine->Create(Create("O-2")).ok());
         AssignOptions o;
         o.team = "desk";
         ASSERT_TRUE(w.router->Assign("O-1", o).ok());
       },
       [](World& w) {
         AssignOptions o;
         o.team = "desk";
         o.time = T("2026-02-02T09:00:00Z");
         return w.router->Assign("O-2", o).status();
       }},
      {"rules",
       [](World& w) {
         Rule r;
         r.name = "auto_submit";
         r.kind = "order";
         r.trigger = RuleTrigger::kCreated;
         r.actions = "set note = 'ruled'\nfire submit\nnotify email with "
                     "recipient = 'lead'; subject = 'new'";
         ASSERT_TRUE(w.engine->rules().Add(r).ok());
       },
       [](World& w) { return w.engine->Create(Create("O-R")).status(); }},
  };
}

struct ModeCase {
  const char* name;
  Mode mode;
  int rc;
};

const ModeCase kModes[] = {
    {"write/full", Mode::kWrite, SQLITE_FULL},
    {"write/ioerr", Mode::kWrite, SQLITE_IOERR_WRITE},
    {"grow/full", Mode::kGrow, SQLITE_FULL},
    {"sync/ioerr", Mode::kSync, SQLITE_IOERR_FSYNC},
    {"truncate/ioerr", Mode::kTruncate, SQLITE_IOERR_TRUNCATE},
    {"lock/busy", Mode::kBusy, SQLITE_BUSY},
};

class FaultTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    RegisterFaultVfs();
    dir_ = std::filesystem::temp_directory_path() /
           ("fault_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A fresh file with the workflow and the path's setup, faults off.
  World Open(const WritePath& p, const std::string& db) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(db + suffix);
    }
    World w;
    EngineOptions o;
    o.path = db;
    o.clock = [] { return T("2026-02-02T08:30:00Z"); };
    o.sqlite.vfs = kVfs;
    // Busy waits would only slow the one-shot BUSY mode down.
    o.sqlite.busy_timeout_ms = 1;
    auto e = Engine::Open(std::move(o));
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    w.engine = std::move(*e);
    EXPECT_TRUE(w.engine->Register(Order(), "{}").ok());
    w.csv = (dir_ / "log.csv").string();
    p.setup(w);
    return w;
  }

  std::filesystem::path dir_;
};

TEST_P(FaultTest, EveryInjectionPointFailsCleanly) {
  const WritePath p = Paths()[GetParam()];
  std::string db = (dir_ / "f.db").string();

  // The result of a run that never sees a fault.
  std::string expected;
  {
    World w = Open(p, db);
    Status st = p.operation(w);
    ASSERT_TRUE(st.ok()) << p.name << ": " << st.ToString();
    w = World();
    expected = Dump(db, true);
  }

  std::string figures;
  for (const ModeCase& mode : kModes) {
    int64_t tried = 0, failed = 0, absorbed = 0;
    for (int64_t n = 1;; ++n) {
      ASSERT_LT(n, 2000) << p.name << " " << mode.name << ": never clean";
      World w = Open(p, db);
      std::string before = Dump(db, false);
      g_faults = Faults{mode.mode, mode.rc, n, 0, 0};
      Status st = p.operation(w);
      int64_t injected = g_faults.injected;
      g_faults.mode = Mode::kOff;
      ++tried;
      std::string where = std::string(p.name) + " " + mode.name +
                          " N=" + std::to_string(n) + ": ";

      if (injected == 0) {
        // The first N past the operation's last call: the plain result.
        ASSERT_TRUE(st.ok()) << where << st.ToString();
        w = World();
        EXPECT_EQ(expected, Dump(db, true)) << where;
        break;
      }
      if (st.ok()) {
        // SQLite absorbed the fault (a retried lock, a checkpoint after
        // the commit): the result must be the plain one.
        ++absorbed;
        w = World();
        EXPECT_EQ(expected, Dump(db, true)) << where << "absorbed fault";
        continue;
      }
      ++failed;
      EXPECT_EQ(Code::kStoreError, st.code()) << where << st.ToString();
      std::string sqlite_text = sqlite3_errstr(mode.rc & 0xFF);
      bool named = st.message().find(sqlite_text) != std::string::npos ||
                   (mode.mode == Mode::kBusy &&
                    st.message().find("busy") != std::string::npos);
      EXPECT_TRUE(named) << where << st.ToString() << " (expected \""
                         << sqlite_text << "\")";
      EXPECT_EQ(before, Dump(db, false)) << where << "half-applied "
                                         << st.ToString();

      // The same engine, faults off, must still give the plain result.
      Status again = p.operation(w);
      EXPECT_TRUE(again.ok()) << where << "retry: " << again.ToString();
      w = World();
      EXPECT_EQ(expected, Dump(db, true)) << where << "after retry";
      if (::testing::Test::HasFailure()) return;
    }
    figures += std::string(" ") + mode.name + "=" + std::to_string(tried) +
               " (failed " + std::to_string(failed) + ", absorbed " +
               std::to_string(absorbed) + ")";
  }
  std::printf("fault points %-15s%s\n", p.name, figures.c_str());
}

// A write failing inside a long batch (the page cache spilling to the WAL)
// makes SQLite roll the whole transaction back on its own.  A caller that
// catches the error and goes on must not have its later writes committed
// one by one outside the transaction it opened: they fail, and so does
// the commit, and the file keeps nothing of the batch.
TEST(FaultBatch, WritesAfterSqliteRolledBackTheBatchFail) {
  RegisterFaultVfs();
  auto dir = std::filesystem::temp_directory_path() /
             ("fault_batch_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string db = (dir / "b.db").string();
  EngineOptions o;
  o.path = db;
  o.sqlite.vfs = kVfs;
  auto opened = Engine::Open(std::move(o));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<Engine> e = std::move(*opened);
  ASSERT_TRUE(e->Register(Order(), "{}").ok());
  std::string before = Dump(db, false);

  // Fail the first write of the WAL, once: the first cache spill.
  ASSERT_TRUE(e->Begin().ok());
  g_faults = Faults{Mode::kWriteOnce, SQLITE_IOERR_WRITE, 1, 0, 0};
  int64_t created = 0, failed_at = -1, failed_after = 0;
  for (int i = 0; i < 40000 && failed_after < 20; ++i) {
    CreateRequest r = Create("B-" + std::to_string(i));
    r.attributes = {{"note", Value::Text(std::string(200, 'x'))}};
    auto t = e->Create(r);
    if (t.ok()) {
      ++created;
      if (failed_at >= 0) ++failed_after;
    } else if (failed_at < 0) {
      failed_at = i;
      EXPECT_EQ(Code::kStoreError, t.status().code());
    } else {
      ++failed_after;
      EXPECT_EQ(Code::kStoreError, t.status().code())
          << t.status().ToString();
    }
  }
  g_faults.mode = Mode::kOff;
  ASSERT_GE(failed_at, 0) << "no spill after " << created << " creates";
  Status commit = e->Commit();
  if (!commit.ok()) (void)e->Rollback();

  EXPECT_FALSE(commit.ok());
  EXPECT_EQ(before, Dump(db, false)) << "created before the fault: "
                                     << failed_at;
  e.reset();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Paths, FaultTest, ::testing::Range<size_t>(0, 10),
    [](const ::testing::TestParamInfo<size_t>& info) {
      return std::string(Paths()[info.param].name);
    });

}  // namespace
}  // namespace crmflow
