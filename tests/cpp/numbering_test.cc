// numbering_test.cc: number formats, counters past the padding width (case
// C11), restarts, yearly resets and rollback of a failed create.

#include "crmflow/numbering.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "crmflow/engine.h"

namespace crmflow {
namespace {

Timestamp At(int year, int month, int day, int hour) {
  return Timestamp::FromCivilUtc(year, month, day, hour, 0, 0, 0).value();
}

Workflow Case() {
  Workflow wf("case", 1);
  EXPECT_TRUE(wf.AddState("open", StateRole::kInitial).ok());
  EXPECT_TRUE(wf.AddState("closed", StateRole::kTerminal).ok());
  EXPECT_TRUE(wf.AddTransition({"close", "open", "closed"}).ok());
  EXPECT_TRUE(wf.AddAttribute({"amount", ValueType::kInteger, false}).ok());
  return wf;
}

std::unique_ptr<Engine> OpenEngine(const std::string& path, Timestamp now) {
  EngineOptions options;
  options.path = path;
  options.clock = [now] { return now; };
  auto engine = Engine::Open(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_TRUE(engine.value()->Register(Case(), "{}").ok());
  return std::move(engine).value();
}

std::string CreateNumbered(Engine& engine) {
  CreateRequest req;
  req.kind = "case";
  auto txn = engine.Create(req);
  EXPECT_TRUE(txn.ok()) << txn.status().ToString();
  return txn.ok() ? txn->id : "";
}

class NumberingFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("numbering_test_" + std::to_string(getpid()) + ".db"))
                .string();
    std::filesystem::remove(path_);
  }
  void TearDown() override {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::filesystem::remove(path_ + suffix);
    }
  }
  std::string path_;
};

TEST(NumberFormat, PadsToAMinimumWidth) {
  auto f = NumberFormat::Parse("CASE-{n:04}");
  ASSERT_TRUE(f.ok()) << f.status().ToString();

  EXPECT_EQ("CASE-0042", f->Format(42, 2026, 1, 2));
  EXPECT_EQ("CASE-9999", f->Format(9999, 2026, 1, 2));
  EXPECT_EQ("CASE-10000", f->Format(10000, 2026, 1, 2));
}

TEST(NumberFormat, WritesDatePartsAndBraces) {
  auto f = NumberFormat::Parse("SO-{year}{month}{day}-{yy}-{n:06}{{x}}");
  ASSERT_TRUE(f.ok()) << f.status().ToString();

  EXPECT_EQ("SO-20260305-26-000007{x}", f->Format(7, 2026, 3, 5));
}

TEST(NumberFormat, RejectsBadFormats) {
  EXPECT_EQ("number format \"A-{m}\": column 3: unknown field {m} (expected "
            "n, n:0W, year, yy, month or day)",
            NumberFormat::Parse("A-{m}").status().message());
  EXPECT_EQ(Code::kInvalidArgument, NumberFormat::Parse("A").status().code());
  EXPECT_FALSE(NumberFormat::Parse("{n}{n}").ok());
  EXPECT_FALSE(NumberFormat::Parse("{n:0}").ok());
  EXPECT_FALSE(NumberFormat::Parse("{n:x4}").ok());
  EXPECT_FALSE(NumberFormat::Parse("{n").ok());
  EXPECT_FALSE(NumberFormat::Parse("{n}}").ok());
}

TEST_F(NumberingFileTest, C11CountsPastTheWidthAcrossARestart) {
  std::vector<std::string> ids;
  {
    auto engine = OpenEngine(path_, At(2026, 3, 2, 10));
    ASSERT_TRUE(engine->SetNumbering({"case", "CASE-{n:04}"}).ok());
    ASSERT_TRUE(engine->SetCounter("case", 9998).ok());
    for (int i = 0; i < 3; ++i) ids.push_back(CreateNumbered(*engine));
  }
  auto engine = OpenEngine(path_, At(2026, 3, 2, 11));
  ids.push_back(CreateNumbered(*engine));

  EXPECT_EQ((std::vector<std::string>{"CASE-9999", "CASE-10000",
                                      "CASE-10001", "CASE-10002"}),
            ids);
  EXPECT_EQ(10002, engine->Counter("case").value());
  EXPECT_EQ(4u, engine->List("case", "").value().size());
}

TEST_F(NumberingFileTest, FailedCreateGivesItsNumberBack) {
  auto engine = OpenEngine(path_, At(2026, 3, 2, 10));
  ASSERT_TRUE(engine->SetNumbering({"case", "C{n}"}).ok());
  CreateRequest bad;
  bad.kind = "case";
  bad.parent_id = "missing";

  EXPECT_EQ(Code::kNotFound, engine->Create(bad).status().code());
  EXPECT_EQ("C1", CreateNumbered(*engine));
}

TEST_F(NumberingFileTest, SkipsIdsTakenBeforeTheCounterWasSeeded) {
  auto engine = OpenEngine(path_, At(2026, 3, 2, 10));
  CreateRequest legacy;
  legacy.kind = "case";
  legacy.id = "C1";
  ASSERT_TRUE(engine->Create(legacy).ok());
  ASSERT_TRUE(engine->SetNumbering({"case", "C{n}"}).ok());

  EXPECT_EQ("C2", CreateNumbered(*engine));
}

TEST(Numbering, MemoryStoreGivesANumberBackOnFailure) {
  auto engine = OpenEngine("", At(2026, 3, 2, 10));
  ASSERT_TRUE(engine->SetNumbering({"case", "CASE-{n:04}"}).ok());
  CreateRequest bad;
  bad.kind = "case";
  bad.parent_id = "missing";

  EXPECT_FALSE(engine->Create(bad).ok());
  EXPECT_EQ("CASE-0001", CreateNumbered(*engine));
  EXPECT_EQ("CASE-0002", CreateNumbered(*engine));
  EXPECT_EQ(2, engine->Counter("case").value());
}

TEST(Numbering, YearlyResetUsesTheZone) {
  // 2026-12-31 23:30 UTC is already 2027 in Berlin.
  auto engine = OpenEngine("", At(2026, 12, 31, 23));
  NumberingSpec spec{"case", "SO-{year}-{n:06}", true, "Europe/Berlin"};
  ASSERT_TRUE(engine->SetNumbering(spec).ok());
  ASSERT_TRUE(engine->SetCounter("case", 41, 2026).ok());

  EXPECT_EQ("SO-2027-000001", CreateNumbered(*engine));
  EXPECT_EQ(41, engine->Counter("case", 2026).value());
  EXPECT_EQ(1, engine->Counter("case", 2027).value());
}

TEST(Numbering, KindWithoutFormatNeedsAnId) {
  auto engine = OpenEngine("", At(2026, 3, 2, 10));
  CreateRequest req;
  req.kind = "case";

  auto r = engine->Create(req);

  EXPECT_EQ(Code::kInvalidArgument, r.status().code());
}

TEST(Numbering, RejectsBadZoneAndNegativeCounter) {
  auto engine = OpenEngine("", At(2026, 3, 2, 10));

  EXPECT_FALSE(engine->SetNumbering({"case", "{n}", false, "Mars/Base"}).ok());
  EXPECT_EQ(Code::kInvalidArgument,
            engine->SetCounter("case", -1).code());
}

}  // namespace
}  // namespace crmflow
