// csv_test.cc: CsvReader on quoting, line ends, byte-order marks,
// delimiter sniffing, gzip input, long inputs that cross buffer refills,
// and the name:line:column messages of malformed input.

#include "crmflow/csv.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace crmflow {
namespace {

std::unique_ptr<CsvReader> FromText(const std::string& text,
                                    CsvOptions options = {}) {
  auto r = CsvReader::FromString("t.csv", text, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r.value()) : nullptr;
}

// Reads every record; a failure ends the list and is put in *error.
std::vector<std::vector<std::string>> ReadAll(CsvReader& reader,
                                              std::vector<int64_t>* lines,
                                              std::string* error) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> fields;
  while (true) {
    auto more = reader.Next(&fields);
    if (!more.ok()) {
      if (error != nullptr) *error = more.status().message();
      break;
    }
    if (!more.value()) break;
    rows.push_back(fields);
    if (lines != nullptr) lines->push_back(reader.line());
  }
  return rows;
}

void WriteGzip(const std::string& path, const std::string& data) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, data.data(), static_cast<unsigned>(data.size())),
            static_cast<int>(data.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
}

TEST(CsvReader, C13BomSemicolonQuotedNewlineAndDoubledQuotes) {
  auto r = CsvReader::Open(
      std::string(CRMFLOW_TEST_DATA_DIR) + "/c13_service_requests.csv", {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<int64_t> lines;
  std::string error;

  auto rows = ReadAll(*r.value(), &lines, &error);

  EXPECT_EQ(error, "");
  EXPECT_EQ(r.value()->delimiter(), ';');
  ASSERT_EQ(r.value()->header().size(), 4u);
  EXPECT_EQ(r.value()->header()[0], "case_id");
  EXPECT_EQ(r.value()->Column("comment"), 3);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], "SR-1");
  EXPECT_EQ(rows[1][0], "SR-1");
  EXPECT_EQ(rows[0][3], "Kunde meldet:\nDrucker druckt nicht; Papierstau");
  EXPECT_EQ(rows[1][3], "Teil \"X-12\" getauscht");
  // The first record spans lines 2 and 3.
  EXPECT_EQ(lines, (std::vector<int64_t>{2, 4}));
}

TEST(CsvReader, CrlfLineEndsAreDroppedButKeptInsideQuotes) {
  auto r = FromText("a,b\r\n1,2\r\n\"x\r\ny\",3\r\n4,5");
  std::vector<int64_t> lines;

  auto rows = ReadAll(*r, &lines, nullptr);

  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(r->header(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(rows[0], (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"x\r\ny", "3"}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"4", "5"}));
  EXPECT_EQ(lines, (std::vector<int64_t>{2, 3, 5}));
}

TEST(CsvReader, EmptyFieldsAndTrailingDelimiter) {
  auto r = FromText("a,b,c\n,,\n\"\",x,\n");

  auto rows = ReadAll(*r, nullptr, nullptr);

  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"", "x", ""}));
}

TEST(CsvReader, BlankLinesAreSkippedButCounted) {
  auto r = FromText("a,b\n\n1,2\n\r\n3,4\n\n");
  std::vector<int64_t> lines;

  auto rows = ReadAll(*r, &lines, nullptr);

  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(lines, (std::vector<int64_t>{3, 5}));
}

TEST(CsvReader, SniffsTabAndPipeOutsideQuotes) {
  auto tab = FromText("a\tb\t\"c,d,e\"\n1\t2\t3\n");
  auto pipe = FromText("a|b|c\n1|2|3\n");
  auto single = FromText("only\n1\n");

  EXPECT_EQ(tab->delimiter(), '\t');
  EXPECT_EQ(tab->header()[2], "c,d,e");
  EXPECT_EQ(pipe->delimiter(), '|');
  EXPECT_EQ(single->delimiter(), ',');
}

TEST(CsvReader, GivenDelimiterWinsOverSniffing) {
  CsvOptions options;
  options.delimiter = ';';

  auto r = FromText("a,b;c\n1,2;3\n", options);

  EXPECT_EQ(r->header(), (std::vector<std::string>{"a,b", "c"}));
}

TEST(CsvReader, WithoutHeaderEveryRecordIsData) {
  CsvOptions options;
  options.header = false;
  auto r = FromText("1,2\n3,4,5\n", options);

  auto rows = ReadAll(*r, nullptr, nullptr);

  EXPECT_TRUE(r->header().empty());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].size(), 3u);
}

TEST(CsvReader, GzipFileIsDetectedByItsMagicBytes) {
  // The extension says nothing: only the magic bytes count.
  std::string path = ::testing::TempDir() + "/csv_test_gzip.data";
  WriteGzip(path,
            "\xEF\xBB\xBFid,name\r\n1,\"M\xC3\xBCller, Anna\"\r\n2,Bob\r\n");

  auto r = CsvReader::Open(path, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto rows = ReadAll(*r.value(), nullptr, nullptr);

  EXPECT_EQ(r.value()->header()[0], "id");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][1], "M\xC3\xBCller, Anna");
  EXPECT_EQ(rows[1][1], "Bob");
  std::remove(path.c_str());
}

TEST(CsvReader, TruncatedGzipIsAParseError) {
  std::string full = ::testing::TempDir() + "/csv_test_full.gz";
  std::string cut = ::testing::TempDir() + "/csv_test_cut.gz";
  std::string text = "id,v\n";
  for (int i = 0; i < 20000; ++i) text += std::to_string(i) + ",x\n";
  WriteGzip(full, text);
  std::FILE* in = std::fopen(full.c_str(), "rb");
  ASSERT_NE(in, nullptr);
  std::string bytes(4096, '\0');
  bytes.resize(std::fread(bytes.data(), 1, bytes.size(), in));
  std::fclose(in);
  std::FILE* out = std::fopen(cut.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size() / 2, out);
  std::fclose(out);
  std::string error;

  auto r = CsvReader::Open(cut, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ReadAll(*r.value(), nullptr, &error);

  EXPECT_NE(error.find("csv_test_cut.gz: corrupt gzip data"),
            std::string::npos)
      << error;
  std::remove(full.c_str());
  std::remove(cut.c_str());
}

TEST(CsvReader, MissingFileIsNotFound) {
  auto r = CsvReader::Open("/nonexistent/dir/orders.csv", {});

  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/dir/orders.csv"),
            std::string::npos);
}

TEST(CsvReader, LongInputCrossesRefillsIntact) {
  // About 2.6 MB: ten refills, with quoted multi-line fields and doubled
  // quotes landing on chunk boundaries somewhere.
  std::string text = "id,note,n\n";
  for (int i = 0; i < 40000; ++i) {
    text += std::to_string(i) + ",\"line one\nline \"\"" + std::to_string(i) +
            "\"\" two, still quoted " + std::string(20, 'x') + "\"," +
            std::to_string(i * 2) + "\r\n";
  }
  auto r = FromText(text);
  std::vector<int64_t> lines;
  std::string error;

  auto rows = ReadAll(*r, &lines, &error);

  EXPECT_EQ(error, "");
  ASSERT_EQ(rows.size(), 40000u);
  EXPECT_EQ(rows[39999][0], "39999");
  EXPECT_EQ(rows[39999][1], "line one\nline \"39999\" two, still quoted " +
                                std::string(20, 'x'));
  EXPECT_EQ(rows[39999][2], "79998");
  // Record i starts on line 2 + 2 * i.
  EXPECT_EQ(lines[39999], 2 + 2 * 39999);
}

TEST(CsvReader, HeaderCutByTheFirstRefillIsReadWhole) {
  // Found by fuzz/csv_fuzz.cc: blank lines fill the first 256 KiB chunk up
  // to the middle of the header, so the header is parsed twice; the second
  // pass used to check itself against the half header of the first and
  // failed with "record has 3 fields (expected 2, ...)".
  const size_t blank = (size_t{1} << 18) - 6;
  std::string text = std::string(blank, '\n') + "id,state,total\nA-1,new,5\n";
  CsvOptions options;
  options.delimiter = ',';
  auto r = FromText(text, options);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->header(), (std::vector<std::string>{"id", "state", "total"}));
  std::vector<int64_t> lines;
  std::string error;

  auto rows = ReadAll(*r, &lines, &error);

  EXPECT_EQ(error, "");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"A-1", "new", "5"}));
  EXPECT_EQ(lines[0], static_cast<int64_t>(blank) + 2);
}

TEST(CsvReader, UnterminatedQuoteNamesLineAndColumn) {
  auto r = FromText("a,b\n1,2\n3,\"oops\n4,5\n");
  std::string error;

  auto rows = ReadAll(*r, nullptr, &error);

  EXPECT_EQ(rows.size(), 1u);
  EXPECT_EQ(error,
            "t.csv:3:3: unterminated quoted field 2 (expected a closing \" "
            "before the end of the input)");
}

TEST(CsvReader, InvalidUtf8NamesTheFieldAndReadingGoesOn) {
  auto r = FromText("a,b\n1,ok\n\xC3\xA4,caf\xC3\n2,fine\n");
  std::vector<std::string> fields;

  auto first = r->Next(&fields);
  auto bad = r->Next(&fields);
  auto after = r->Next(&fields);

  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kParseError);
  // Column 3 counts characters: the two-byte a-umlaut is one.
  EXPECT_EQ(bad.status().message(),
            "t.csv:3:3: invalid UTF-8 in field 2 (expected UTF-8 text)");
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after.value());
  EXPECT_EQ(fields, (std::vector<std::string>{"2", "fine"}));
  EXPECT_EQ(r->line(), 4);
}

TEST(CsvReader, TooManyFieldsPointsAtTheFirstExtraField) {
  auto r = FromText("a,b,c\n1,2,3,4\n");
  std::string error;

  ReadAll(*r, nullptr, &error);

  EXPECT_EQ(error,
            "t.csv:2:7: record has 4 fields (expected 3, as in the header; "
            "delimiter \",\")");
}

TEST(CsvReader, TooFewFieldsPointsAtTheEndOfTheRecord) {
  auto r = FromText("a;b;c\n1;\"x\ny\"\n");
  std::string error;

  ReadAll(*r, nullptr, &error);

  // The record ends on line 3 after `y"`, column 3.
  EXPECT_EQ(error,
            "t.csv:3:3: record has 2 fields (expected 3, as in the header; "
            "delimiter \";\")");
}

TEST(CsvReader, EmptyInputHasNoHeader) {
  auto r = CsvReader::FromString("empty.csv", "", {});

  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "empty.csv:1:1: empty file (expected a header line)");
}

TEST(CsvReader, FieldsVectorIsReusedAcrossRecords) {
  auto r = FromText("a,b\n" + std::string(40, 'v') + ",2\nx,y\n");
  std::vector<std::string> fields;

  ASSERT_TRUE(r->Next(&fields).ok());
  const char* storage = fields[0].data();
  ASSERT_TRUE(r->Next(&fields).ok());

  EXPECT_EQ(fields[0], "x");
  // The string kept its buffer instead of being reallocated.
  EXPECT_EQ(fields[0].data(), storage);
}

}  // namespace
}  // namespace crmflow
