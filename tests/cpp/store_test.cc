// store_test.cc: the Store contract, run against both the memory store and
// a SQLite file: writes, version checks, nested Begin/Rollback, sources,
// history query bounds and reopening the file.

#include "crmflow/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace crmflow {
namespace {

Timestamp T(const char* iso) { return Timestamp::ParseIso(iso).value(); }

Transaction Txn(const std::string& id) {
  Transaction t;
  t.id = id;
  t.kind = "sales_order";
  t.state = "created";
  t.customer_id = "CU-1";
  t.attributes = {{"amount", Value::Dec(Decimal::Parse("12.30").value())},
                  {"note", Value::Text("rush")},
                  {"due", Value()}};
  t.version = 1;
  t.workflow_version = 1;
  t.created_at = t.updated_at = t.state_entered_at =
      T("2026-01-15T10:00:00Z");
  return t;
}

HistoryRow Row(const std::string& id, const char* event, const char* from,
               const char* to, const char* time) {
  HistoryRow r;
  r.transaction_id = id;
  r.event = event;
  r.from_state = from;
  r.to_state = to;
  r.time = T(time);
  r.workflow_version = 1;
  return r;
}

// Runs each test on a fresh store of the parameter's type.
class StoreTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::string name =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    path_ = std::filesystem::temp_directory_path() /
            ("crmflow_store_test_" + std::to_string(getpid()) + "_" + name +
             ".db");
    Remove();
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    Remove();
  }
  bool sqlite() const { return GetParam(); }
  void Reopen() {
    store_.reset();
    if (sqlite()) {
      auto s = OpenSqliteStore(path_.string(), SqliteOptions());
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = std::move(*s);
    } else {
      store_ = NewMemoryStore();
    }
  }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path_.string() + suffix);
    }
  }

  std::filesystem::path path_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, InsertAndLoadKeepEverything) {
  Transaction in = Txn("SO-1");

  ASSERT_TRUE(store_->InsertTransaction(in).ok());
  Transaction out;
  auto found = store_->LoadTransaction("SO-1", &out);

  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(*found);
  EXPECT_EQ(out.kind, "sales_order");
  EXPECT_EQ(out.customer_id, "CU-1");
  EXPECT_EQ(out.parent_id, "");
  ASSERT_EQ(out.attributes.size(), 3u);
  EXPECT_EQ(out.attributes[0].first, "amount");
  EXPECT_EQ(out.attributes[0].second.decimal().ToString(), "12.30");
  EXPECT_EQ(out.attributes[1].second.text(), "rush");
  EXPECT_TRUE(out.attributes[2].second.is_null());
  EXPECT_EQ(out.created_at, T("2026-01-15T10:00:00Z"));
  EXPECT_EQ(*store_->LoadVersion("SO-1").value(), 1);
  EXPECT_FALSE(store_->LoadVersion("SO-2").value().has_value());
}

TEST_P(StoreTest, DuplicateIdIsAlreadyExists) {
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-1")).ok());

  Status st = store_->InsertTransaction(Txn("SO-1"));

  EXPECT_EQ(st.code(), Code::kAlreadyExists);
  EXPECT_NE(st.message().find("\"SO-1\""), std::string::npos);
}

TEST_P(StoreTest, UpdateChecksVersion) {
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-1")).ok());
  Transaction t = Txn("SO-1");
  t.state = "approved";
  t.version = 2;
  // The SQLite schema refuses a state change without its history row.
  ASSERT_TRUE(store_
                  ->AppendHistory(Row("SO-1", "approve", "created", "approved",
                                      "2026-01-15T11:00:00Z"))
                  .ok());

  Status stale = store_->UpdateTransaction(t, 5);
  Status ok = store_->UpdateTransaction(t, 1);

  EXPECT_EQ(stale.code(), Code::kConcurrentUpdate);
  EXPECT_NE(stale.message().find("5"), std::string::npos);
  EXPECT_TRUE(ok.ok()) << ok.ToString();
  Transaction out;
  ASSERT_TRUE(store_->LoadTransaction("SO-1", &out).value());
  EXPECT_EQ(out.state, "approved");
  EXPECT_EQ(out.version, 2);
}

TEST_P(StoreTest, NestedRollbackUndoesOnlyInnerPart) {
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-1")).ok());
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-2")).ok());
  Transaction t = Txn("SO-1");
  t.state = "approved";
  t.version = 2;
  ASSERT_TRUE(store_
                  ->AppendHistory(Row("SO-1", "approve", "created", "approved",
                                      "2026-01-15T11:00:00Z"))
                  .ok());
  ASSERT_TRUE(store_->UpdateTransaction(t, 1).ok());
  EXPECT_EQ(store_->depth(), 2);

  ASSERT_TRUE(store_->Rollback().ok());
  ASSERT_TRUE(store_->Commit().ok());

  EXPECT_EQ(store_->depth(), 0);
  Transaction out;
  ASSERT_TRUE(store_->LoadTransaction("SO-1", &out).value());
  EXPECT_EQ(out.state, "created");
  EXPECT_EQ(out.version, 1);
  EXPECT_FALSE(store_->LoadTransaction("SO-2", &out).value());
}

TEST_P(StoreTest, OuterRollbackUndoesEverything) {
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-1")).ok());
  ASSERT_TRUE(
      store_->AppendHistory(Row("SO-1", "create", "", "created",
                                "2026-01-15T10:00:00Z"))
          .ok());

  ASSERT_TRUE(store_->Rollback().ok());

  EXPECT_FALSE(store_->LoadVersion("SO-1").value().has_value());
  EXPECT_TRUE(store_->QueryHistory({}).value().empty());
}

TEST_P(StoreTest, SourcesAreUnique) {
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-1")).ok());
  HistoryRow r = Row("SO-1", "create", "", "created", "2026-01-15T10:00:00Z");
  r.source = "file.csv:2";
  ASSERT_TRUE(store_->AppendHistory(r).ok());
  Deviation d;
  d.transaction_id = "SO-1";
  d.kind = "sales_order";
  d.state = "created";
  d.event = "ship";
  d.time = T("2026-01-15T11:00:00Z");
  d.reason = "not allowed";
  d.source = "file.csv:3";

  auto again = store_->AppendHistory(r);
  ASSERT_TRUE(store_->AppendDeviation(d).ok());

  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  EXPECT_TRUE(store_->HasSource("file.csv:2").value());
  EXPECT_TRUE(store_->HasSource("file.csv:3").value());
  EXPECT_FALSE(store_->HasSource("file.csv:4").value());
  auto devs = store_->QueryDeviations("sales_order").value();
  ASSERT_EQ(devs.size(), 1u);
  EXPECT_EQ(devs[0].event, "ship");
  EXPECT_TRUE(store_->QueryDeviations("other").value().empty());
}

TEST_P(StoreTest, HistoryBoundsAreHalfOpenOrderedByTimeThenSeq) {
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-1")).ok());
  Transaction b = Txn("SO-2");
  ASSERT_TRUE(store_->InsertTransaction(b).ok());
  // Appended out of time order: seq 1..4.
  ASSERT_TRUE(store_->AppendHistory(
      Row("SO-1", "a", "x", "y", "2026-01-15T12:00:00Z")).ok());
  ASSERT_TRUE(store_->AppendHistory(
      Row("SO-2", "b", "x", "y", "2026-01-15T10:00:00Z")).ok());
  ASSERT_TRUE(store_->AppendHistory(
      Row("SO-1", "c", "x", "y", "2026-01-15T10:00:00Z")).ok());
  ASSERT_TRUE(store_->AppendHistory(
      Row("SO-2", "d", "x", "y", "2026-01-15T13:00:00Z")).ok());
  HistoryQuery q;
  q.from = T("2026-01-15T10:00:00Z");
  q.to = T("2026-01-15T13:00:00Z");

  auto rows = store_->QueryHistory(q).value();

  ASSERT_EQ(rows.size(), 3u);  // 13:00 excluded, 10:00 included
  EXPECT_EQ(rows[0].event, "b");
  EXPECT_EQ(rows[1].event, "c");
  EXPECT_EQ(rows[2].event, "a");
  EXPECT_LT(rows[0].seq, rows[1].seq);
  HistoryQuery by_txn;
  by_txn.transaction_id = "SO-2";
  auto mine = store_->QueryHistory(by_txn).value();
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].event, "b");
  EXPECT_EQ(mine[1].event, "d");
  HistoryQuery by_kind;
  by_kind.kind = "sales_order";
  EXPECT_EQ(store_->QueryHistory(by_kind).value().size(), 4u);
}

TEST_P(StoreTest, QueriesTransactionsByKindAndState) {
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-2")).ok());
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-1")).ok());
  Transaction other = Txn("SR-1");
  other.kind = "service_request";
  other.state = "new";
  ASSERT_TRUE(store_->InsertTransaction(other).ok());

  auto orders = store_->QueryTransactions("sales_order", "").value();
  auto news = store_->QueryTransactions("", "new").value();

  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0].id, "SO-1");
  EXPECT_EQ(orders[1].id, "SO-2");
  ASSERT_EQ(news.size(), 1u);
  EXPECT_EQ(news[0].id, "SR-1");
}

TEST_P(StoreTest, WorkflowsAndImports) {
  ASSERT_TRUE(store_->SaveWorkflow({"b", 1, "{}"}).ok());
  ASSERT_TRUE(store_->SaveWorkflow({"a", 2, "{\"v\":2}"}).ok());
  ImportRecord rec;
  rec.file = "orders.csv";
  rec.kind = "sales_order";
  rec.cases = 3;

  auto id = store_->AppendImport(rec);

  ASSERT_TRUE(id.ok());
  auto wfs = store_->LoadWorkflows().value();
  ASSERT_EQ(wfs.size(), 2u);
  EXPECT_EQ(wfs[0].name, "a");
  EXPECT_EQ(wfs[0].definition, "{\"v\":2}");
  auto imports = store_->QueryImports().value();
  ASSERT_EQ(imports.size(), 1u);
  EXPECT_EQ(imports[0].cases, 3);
}

TEST_P(StoreTest, ReopenKeepsCommittedData) {
  if (!sqlite()) GTEST_SKIP() << "the memory store does not persist";
  ASSERT_TRUE(store_->InsertTransaction(Txn("SO-1")).ok());
  ASSERT_TRUE(store_->AppendHistory(
      Row("SO-1", "create", "", "created", "2026-01-15T10:00:00Z")).ok());

  Reopen();

  Transaction out;
  ASSERT_TRUE(store_->LoadTransaction("SO-1", &out).value());
  EXPECT_EQ(out.attributes[0].second.decimal().ToString(), "12.30");
  auto rows = store_->QueryHistory({}).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].from_state, "");
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "Sqlite" : "Memory";
                         });

TEST(SqliteStore, RefusesNewerSchema) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("crmflow_schema_" + std::to_string(getpid()) + ".db"))
                         .string();
  std::filesystem::remove(path);
  ASSERT_TRUE(OpenSqliteStore(path, SqliteOptions()).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  // One past the version this build writes (2).
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 3",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);

  auto reopened = OpenSqliteStore(path, SqliteOptions());

  EXPECT_EQ(reopened.status().code(), Code::kStoreError);
  EXPECT_NE(reopened.status().message().find("schema version 3"),
            std::string::npos);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path + suffix);
  }
}

}  // namespace
}  // namespace crmflow
