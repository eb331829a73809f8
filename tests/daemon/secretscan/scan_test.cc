#include "daemon/secretscan/scan.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::secretscan {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class ScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-scan-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& rel, const std::string& data) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel, std::ios::binary) << data;
  }
  fs::path dir_;
};

const std::vector<Secret> kSecrets = {{"secret tok", "s3cr3t-v4lue"},
                                      {"build-arg KEY", "hunter22"}};

TEST(SearchableTest, DropsShortAndRepeatedValues) {
  auto s = Searchable({{"a", "12345"}, {"b", "123456"}, {"c", "123456"}});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "b");
}

TEST(SearchableTest, AlsoLooksForAValueWithoutItsSurroundingWhitespace) {
  auto s = Searchable({{"secret tok", "s3cr3t-v4lue\n"}, {"secret pad", " \t12345\r\n"}});
  ASSERT_EQ(s.size(), 3u);  // "12345" alone is too short
  EXPECT_EQ(s[0].value, "s3cr3t-v4lue\n");
  EXPECT_EQ(s[1].id, "secret tok");
  EXPECT_EQ(s[1].value, "s3cr3t-v4lue");
  EXPECT_EQ(s[2].value, " \t12345\r\n");
  // `printf %s "$(cat /run/secrets/tok)"` drops the newline: still found, once.
  EXPECT_THAT(ScanBytes("TOKEN=s3cr3t-v4lue;", s, "layer L", "/app.env"),
              ElementsAre(Finding{"layer L", "/app.env", "secret tok"}));
  EXPECT_THAT(ScanBytes("s3cr3t-v4lue\n", s, "layer L", "/f"),
              ElementsAre(Finding{"layer L", "/f", "secret tok"}));
}

TEST(ScanBytesTest, FindsEachSecretOnce) {
  EXPECT_THAT(ScanBytes("x s3cr3t-v4lue y s3cr3t-v4lue", kSecrets, "image config", "history"),
              ElementsAre(Finding{"image config", "history", "secret tok"}));
  EXPECT_THAT(ScanBytes("nothing here", kSecrets, "w", "p"), IsEmpty());
}

TEST(ScanJsonTest, FindsEscapedValuesAndNamesTheMember) {
  const std::vector<Secret> secrets = {{"build-arg API_TOKEN", "q\"x\\y-1234"},
                                       {"secret tok", "s3cr3t-v4lue"}};
  // The value as JSON writes it, q\"x\\y-1234, is not what the bytes search looks for.
  const std::string config = R"({
    "architecture": "amd64",
    "config": {"Env": ["PATH=/bin", "API_TOKEN=q\"x\\y-1234"], "Labels": {"s3cr3t-v4lue": "1"}},
    "history": [{"created_by": "ARG API_TOKEN=q\"x\\y-1234"},
                {"created_by": "RUN |1 API_TOKEN=q\"x\\y-1234 /bin/sh -c true"}]
  })";
  EXPECT_THAT(ScanBytes(config, secrets, "the image config", ""),
              ElementsAre(Finding{"the image config", "", "secret tok"}));
  EXPECT_THAT(ScanJson(config, secrets, "the image config"),
              UnorderedElementsAre(Finding{"the image config", "config.Env", "build-arg API_TOKEN"},
                                   Finding{"the image config", "config.Labels", "secret tok"},
                                   Finding{"the image config", "history", "build-arg API_TOKEN"}));
  EXPECT_THAT(ScanJson(R"({"config": {"Env": ["A=b"]}})", secrets, "c"), IsEmpty());
}

TEST(ScanJsonTest, SearchesBytesWhenTheDocumentDoesNotParse) {
  EXPECT_THAT(ScanJson("{not json s3cr3t-v4lue", kSecrets, "the image config"),
              ElementsAre(Finding{"the image config", "", "secret tok"}));
}

TEST_F(ScanTest, FindsContentsNamesAndSymlinkTargetsWithoutFollowingLinks) {
  Write("app/config", "token=s3cr3t-v4lue\n");
  Write("hunter22.txt", "name only");
  Write("clean/file", "nothing");
  fs::create_symlink("/etc/s3cr3t-v4lue", dir_ / "link");
  // A link out of the tree is not followed.
  fs::create_symlink("/proc/self/environ", dir_ / "proc-link");
  auto f = ScanTree(Context(), dir_, kSecrets, "layer L");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(*f, UnorderedElementsAre(Finding{"layer L", "/app/config", "secret tok"},
                                       Finding{"layer L", "/hunter22.txt", "build-arg KEY"},
                                       Finding{"layer L", "/link", "secret tok"}));
}

TEST_F(ScanTest, FindsAValueSplitAcrossReadChunks) {
  std::string big(1 << 20, 'x');  // the chunk size: the value straddles two reads
  big.replace(big.size() - 4, 4, "s3cr");
  big += "3t-v4lue";
  Write("big", big);
  auto f = ScanTree(Context(), dir_, kSecrets, "layer L");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(*f, ElementsAre(Finding{"layer L", "/big", "secret tok"}));
}

TEST_F(ScanTest, StopsWhenCancelled) {
  Write("a", "x");
  Context ctx;
  ctx.Cancel();
  EXPECT_FALSE(ScanTree(ctx, dir_, kSecrets, "layer L").ok());
}

TEST(DescribeTest, NamesSecretPlaceAndPathButNotTheValue) {
  const std::string d = Describe({"layer sha256:ab", "/app/config", "secret tok"});
  EXPECT_EQ(d, "secret tok found in layer sha256:ab at /app/config");
}

}  // namespace
}  // namespace kiln::secretscan
