// Conformance against BuildKit's parser test corpus (testfiles/<case>/{Dockerfile,result} and
// testfiles-negative/<case>/Dockerfile), read at run time; skipped when the corpus is absent.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/dockerfile/parser/parser.h"

namespace kiln::dockerfile::parser {
namespace {

namespace fs = std::filesystem;

fs::path CorpusDir() {
  return fs::path(KILN_SOURCE_DIR) / ".." / "shared" / "testdata" / "buildkit-parser";
}

std::vector<std::string> ListCases(const char* sub) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::path dir = CorpusDir() / sub;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory()) out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string CaseName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class PositiveCorpusTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PositiveCorpusTest, DumpMatchesResult) {
  const fs::path dir = CorpusDir() / "testfiles" / GetParam();
  auto parsed = Parse(ReadFile(dir / "Dockerfile"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::string expected = ReadFile(dir / "result");
  // BuildKit compares result with Dump()+"\n"; be lenient about CRLF checkouts.
  std::string normalized;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] == '\r' && i + 1 < expected.size() && expected[i + 1] == '\n') continue;
    normalized.push_back(expected[i]);
  }
  EXPECT_EQ(Dump(parsed->root) + "\n", normalized);
}

INSTANTIATE_TEST_SUITE_P(BuildKit, PositiveCorpusTest, ::testing::ValuesIn(ListCases("testfiles")),
                         CaseName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PositiveCorpusTest);

class NegativeCorpusTest : public ::testing::TestWithParam<std::string> {};

TEST_P(NegativeCorpusTest, Fails) {
  const fs::path dir = CorpusDir() / "testfiles-negative" / GetParam();
  auto parsed = Parse(ReadFile(dir / "Dockerfile"));
  ASSERT_FALSE(parsed.ok()) << Dump(parsed->root);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << parsed.status();
}

INSTANTIATE_TEST_SUITE_P(BuildKit, NegativeCorpusTest,
                         ::testing::ValuesIn(ListCases("testfiles-negative")), CaseName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(NegativeCorpusTest);

TEST(CorpusTest, IsComplete) {
  if (!fs::is_directory(CorpusDir())) GTEST_SKIP() << "corpus not found at " << CorpusDir();
  EXPECT_EQ(ListCases("testfiles").size(), 33u);
  EXPECT_EQ(ListCases("testfiles-negative").size(), 4u);
}

}  // namespace
}  // namespace kiln::dockerfile::parser
