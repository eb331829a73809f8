// --secret parsing, checked against buildctl's and buildx's semantics.

#include "client/secrets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "tests/testutil/status_matchers.h"

namespace kiln::client {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

SecretSource Src(std::string id, std::string file, std::string env) {
  return SecretSource{std::move(id), std::move(file), std::move(env)};
}

TEST(ParseSecretSpecTest, ReadsTheFieldsBuildctlAccepts) {
  EXPECT_EQ(*ParseSecretSpec("id=npm,src=/home/u/.npmrc"), Src("npm", "/home/u/.npmrc", ""));
  EXPECT_EQ(*ParseSecretSpec("id=npm,source=/x"), Src("npm", "/x", ""));
  EXPECT_EQ(*ParseSecretSpec("id=tok,env=TOKEN"), Src("tok", "", "TOKEN"));
  EXPECT_EQ(*ParseSecretSpec("type=file,id=a,src=/x"), Src("a", "/x", ""));
  // type=env turns src into the variable name.
  EXPECT_EQ(*ParseSecretSpec("type=env,id=tok,src=TOKEN"), Src("tok", "", "TOKEN"));
  EXPECT_EQ(*ParseSecretSpec("ID=a,SRC=/x,Env=V"), Src("a", "/x", "V"));  // keys ignore case
  EXPECT_EQ(*ParseSecretSpec("id=a"), Src("a", "", ""));
  EXPECT_EQ(*ParseSecretSpec("id=a,src=/p=q"), Src("a", "/p=q", ""));
}

TEST(ParseSecretSpecTest, FieldsUseCsvQuoting) {
  EXPECT_EQ(*ParseSecretSpec("\"id=a,b\",src=/x"), Src("a,b", "/x", ""));
  EXPECT_EQ(*ParseSecretSpec("id=a,\"src=/with \"\"quote\"\"\""), Src("a", "/with \"quote\"", ""));
  EXPECT_THAT(ParseSecretSpec("id=a,\"src=/x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing closing \"")));
  EXPECT_THAT(ParseSecretSpec("id=a,src=/x\"y"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bare \"")));
}

TEST(ParseSecretSpecTest, ErrorsNameTheSpec) {
  EXPECT_THAT(ParseSecretSpec("id=a,foo=b"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                      AllOf(HasSubstr("--secret id=a,foo=b"),
                                                            HasSubstr("unexpected key \"foo\""))));
  EXPECT_THAT(ParseSecretSpec("id=a,src"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--secret id=a,src"), HasSubstr("key=value"))));
  EXPECT_THAT(ParseSecretSpec("type=ssh,id=a"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--secret type=ssh,id=a"),
                             HasSubstr("unsupported secret type \"ssh\""))));
}

class ParseSecretSpecsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("kiln_secret_specs_" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, size_t size) {
    std::ofstream(dir_ / name, std::ios::binary) << std::string(size, 'x');
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(ParseSecretSpecsTest, BareIdPrefersTheEnvironmentThenAFile) {
  ::setenv("KILN_TEST_BARE_SECRET", "v", 1);
  auto specs = ParseSecretSpecs({"id=KILN_TEST_BARE_SECRET"});
  ::unsetenv("KILN_TEST_BARE_SECRET");
  ASSERT_THAT(specs, IsOk());
  EXPECT_THAT(*specs, ElementsAre(Src("KILN_TEST_BARE_SECRET", "", "KILN_TEST_BARE_SECRET")));

  // Not in the environment: a file named like the id, relative to the working directory.
  fs::path cwd = fs::current_path();
  fs::current_path(dir_);
  Write("kiln_bare_file", 3);
  specs = ParseSecretSpecs({"id=kiln_bare_file"});
  fs::current_path(cwd);
  ASSERT_THAT(specs, IsOk());
  EXPECT_THAT(*specs, ElementsAre(Src("kiln_bare_file", (dir_ / "kiln_bare_file").string(), "")));

  EXPECT_THAT(ParseSecretSpecs({"id=kiln_no_such_secret_anywhere"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--secret id=kiln_no_such_secret_anywhere"),
                             HasSubstr("No such file"))));
}

TEST_F(ParseSecretSpecsTest, ChecksFilesUpFront) {
  std::string ok = Write("ok", kMaxSecretBytes);
  std::string big = Write("big", kMaxSecretBytes + 1);
  EXPECT_THAT(ParseSecretSpecs({"id=a,src=" + ok}), IsOk());
  EXPECT_THAT(ParseSecretSpecs({"id=a,src=" + big}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--secret id=a,src=" + big), HasSubstr("512000"))));
  EXPECT_THAT(ParseSecretSpecs({"id=a,src=" + (dir_ / "missing").string()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing")));
  EXPECT_THAT(ParseSecretSpecs({"id=a,src=" + dir_.string()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is a directory")));
  EXPECT_THAT(ParseSecretSpecs({"src=" + ok}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no id")));
}

TEST_F(ParseSecretSpecsTest, LaterSpecReplacesEarlierAndEmptyIsSkipped) {
  std::string a = Write("a", 1);
  auto specs = ParseSecretSpecs({"id=x,src=" + a, "", "id=y,env=Y", "id=x,env=X"});
  ASSERT_THAT(specs, IsOk());
  EXPECT_THAT(*specs, ElementsAre(Src("x", "", "X"), Src("y", "", "Y")));
}

TEST_F(ParseSecretSpecsTest, EnvSpecNeedsNoVariableYet) {
  // As in BuildKit: the variable is read when the daemon asks; unset then means empty.
  EXPECT_THAT(ParseSecretSpecs({"id=t,env=KILN_TEST_NOT_SET_ANYWHERE"}), IsOk());
}

}  // namespace
}  // namespace kiln::client
