// schema_test.cc: the SQLite schema's triggers and the migration from
// schema version 1, checked with plain SQL on a file the store created.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "crmflow/store.h"

namespace crmflow {
namespace {

Timestamp T(const char* iso) { return Timestamp::ParseIso(iso).value(); }

// A store file plus a second, plain SQL connection to it.
class SchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("crmflow_schema_test_" + std::to_string(getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() +
              ".db"))
                .string();
    Remove();
  }
  void TearDown() override {
    if (db_ != nullptr) sqlite3_close(db_);
    store_.reset();
    Remove();
  }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path_ + suffix);
    }
  }
  void Open() {
    auto store = OpenSqliteStore(path_, SqliteOptions());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
  }
  // Runs `sql` on the plain connection; returns "" or the error message.
  std::string Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = rc == SQLITE_OK ? "" : (err ? err : "error");
    sqlite3_free(err);
    return msg;
  }
  int64_t Int(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr),
              SQLITE_OK);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }
  // Inserts SO-1 (created, version 1, one attribute) and its creation row.
  void InsertOrder() {
    Transaction t;
    t.id = "SO-1";
    t.kind = "sales_order";
    t.state = "created";
    t.attributes = {{"note", Value::Text("rush")}};
    t.version = 1;
    t.workflow_version = 1;
    t.created_at = t.updated_at = t.state_entered_at =
        T("2026-01-15T10:00:00Z");
    ASSERT_TRUE(store_->InsertTransaction(t).ok());
    HistoryRow r;
    r.transaction_id = "SO-1";
    r.event = "create";
    r.to_state = "created";
    r.time = t.created_at;
    r.workflow_version = 1;
    ASSERT_TRUE(store_->AppendHistory(r).ok());
  }

  std::string path_;
  std::unique_ptr<Store> store_;
  sqlite3* db_ = nullptr;
};

TEST_F(SchemaTest, HistoryIsAppendOnly) {
  Open();
  InsertOrder();

  std::string update = Exec("UPDATE history SET actor = 'x'");
  std::string del = Exec("DELETE FROM history");

  EXPECT_EQ(update, "history is append-only");
  EXPECT_EQ(del, "history is append-only");
  EXPECT_EQ(Int("SELECT count(*) FROM history"), 1);
}

TEST_F(SchemaTest, StateChangesOnlyAfterHistoryRow) {
  Open();
  InsertOrder();

  std::string refused =
      Exec("UPDATE transactions SET state = 'approved', version = 2");
  std::string appended = Exec(
      "INSERT INTO history(transaction_id, event, from_state, to_state, "
      "time, workflow_version) VALUES ('SO-1', 'approve', 'created', "
      "'approved', '2026-01-15T11:00:00.000000Z', 1)");
  std::string accepted =
      Exec("UPDATE transactions SET state = 'approved', version = 2");

  EXPECT_NE(refused.find("only through a transition"), std::string::npos)
      << refused;
  EXPECT_EQ(appended, "");
  EXPECT_EQ(accepted, "");
  Transaction out;
  ASSERT_TRUE(store_->LoadTransaction("SO-1", &out).value());
  EXPECT_EQ(out.state, "approved");
}

TEST_F(SchemaTest, SqlWritesBumpTheVersion) {
  Open();
  InsertOrder();

  ASSERT_EQ(Exec("UPDATE attributes SET value = 'slow'"), "");
  int64_t after_update = *store_->LoadVersion("SO-1").value();
  ASSERT_EQ(Exec("INSERT INTO attributes(transaction_id, name, type, value) "
                 "VALUES ('SO-1', 'carrier', 'text', 'dhl')"),
            "");
  int64_t after_insert = *store_->LoadVersion("SO-1").value();
  ASSERT_EQ(Exec("UPDATE transactions SET customer_id = 'C-2'"), "");
  int64_t after_link = *store_->LoadVersion("SO-1").value();

  EXPECT_EQ(after_update, 2);
  EXPECT_EQ(after_insert, 3);
  EXPECT_EQ(after_link, 4);
}

TEST_F(SchemaTest, EngineWritesKeepTheirVersion) {
  Open();
  InsertOrder();
  Transaction t;
  ASSERT_TRUE(store_->LoadTransaction("SO-1", &t).value());
  t.attributes = {{"carrier", Value::Text("dhl")}};
  t.version = 2;

  Status st = store_->UpdateTransaction(t, 1);

  ASSERT_TRUE(st.ok()) << st.ToString();
  Transaction out;
  ASSERT_TRUE(store_->LoadTransaction("SO-1", &out).value());
  EXPECT_EQ(out.version, 2);
  ASSERT_EQ(out.attributes.size(), 1u);
  EXPECT_EQ(out.attributes[0].first, "carrier");
}

TEST_F(SchemaTest, MigratesVersion1InPlace) {
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
  ASSERT_EQ(
      Exec("CREATE TABLE schema_version(version INTEGER NOT NULL);"
           "INSERT INTO schema_version VALUES (1);"
           "CREATE TABLE transactions(id TEXT PRIMARY KEY, kind TEXT NOT "
           "NULL, state TEXT NOT NULL, customer_id TEXT NULL, parent_id TEXT "
           "NULL, version INTEGER NOT NULL, workflow_version INTEGER NOT "
           "NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
           "state_entered_at TEXT NOT NULL);"
           "CREATE TABLE attributes(transaction_id TEXT NOT NULL, name TEXT "
           "NOT NULL, type TEXT NOT NULL, value TEXT NULL, PRIMARY KEY "
           "(transaction_id, name));"
           "INSERT INTO transactions VALUES ('SO-1', 'sales_order', "
           "'created', NULL, NULL, 1, 1, '2026-01-15T10:00:00.000000Z', "
           "'2026-01-15T10:00:00.000000Z', '2026-01-15T10:00:00.000000Z');"
           "INSERT INTO attributes VALUES ('SO-1', 'note', 'text', 'rush');"),
      "");
  sqlite3_close(db_);
  db_ = nullptr;

  Open();

  EXPECT_EQ(Int("SELECT version FROM schema_version"), kSchemaVersion);
  EXPECT_EQ(Int("SELECT count(*) FROM pragma_table_info('attributes') "
                "WHERE name = 'written_version'"),
            1);
  EXPECT_EQ(Int("SELECT count(*) FROM sqlite_master WHERE name IN "
                "('customers', 'identities', 'merges', "
                "'history_no_update')"),
            4);
  Transaction out;
  ASSERT_TRUE(store_->LoadTransaction("SO-1", &out).value());
  EXPECT_EQ(out.attributes[0].second.text(), "rush");
}

}  // namespace
}  // namespace crmflow
