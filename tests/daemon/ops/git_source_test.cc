#include "daemon/ops/git_source.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::ops {
namespace {

using ::testing::HasSubstr;
using Attrs = google::protobuf::Map<std::string, std::string>;

TEST(GitSourceTest, ParsesIdentifierAndAttrs) {
  Attrs attrs;
  attrs["git.fullurl"] = "git@example.com:org/repo.git";
  attrs["git.keepgitdir"] = "true";
  attrs["git.checksum"] = "ABCdef0";
  attrs["git.skipsubmodules"] = "true";
  attrs["git.mtime"] = "commit";
  attrs["git.mountsshsock"] = "default";
  attrs["git.authtokensecret"] = "GIT_AUTH_TOKEN";
  auto a = ParseGitSource("git://example.com/org/repo.git#main:sub/dir", attrs);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->remote, "git@example.com:org/repo.git");
  EXPECT_EQ(a->ref, "main");
  EXPECT_EQ(a->subdir, "sub/dir");
  EXPECT_TRUE(a->keep_git_dir);
  EXPECT_TRUE(a->skip_submodules);
  EXPECT_EQ(a->checksum, "abcdef0");
  EXPECT_EQ(a->mtime, "commit");
  EXPECT_EQ(a->mount_ssh_sock, "default");
  EXPECT_EQ(a->auth_token_secret, "GIT_AUTH_TOKEN");

  // Without git.fullurl the identifier's host/path is fetched over https.
  auto plain = ParseGitSource("git://github.com/moby/buildkit", {});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->remote, "https://github.com/moby/buildkit");
  EXPECT_EQ(plain->ref, "");
}

TEST(GitSourceTest, RejectsBadInput) {
  auto error = [](const std::string& id, Attrs attrs = {}) {
    auto a = ParseGitSource(id, attrs);
    return a.ok() ? std::string("ok") : std::string(a.status().message());
  };
  EXPECT_THAT(error("git://"), HasSubstr("want git://HOST/PATH"));
  EXPECT_THAT(error("git://h/r#-upload-pack=evil"), HasSubstr("invalid git ref"));
  Attrs bad_sum;
  bad_sum["git.checksum"] = "xyz";
  EXPECT_THAT(error("git://h/r", bad_sum), HasSubstr("expected hex commit hash"));
  Attrs bad_mtime;
  bad_mtime["git.mtime"] = "now";
  EXPECT_THAT(error("git://h/r", bad_mtime), HasSubstr("git.mtime"));
  Attrs bad_url;
  bad_url["git.fullurl"] = "file:///etc";
  EXPECT_THAT(error("git://h/r", bad_url), HasSubstr("invalid protocol file"));
  Attrs unknown;
  unknown["git.sig.pubkey"] = "k";
  EXPECT_THAT(error("git://h/r", unknown), HasSubstr("git.sig.pubkey is not supported"));
}

TEST(GitSourceTest, RedactsPasswords) {
  EXPECT_EQ(RedactGitUrl("https://user:s3cret@example.com/r.git"),
            "https://user:xxxxx@example.com/r.git");
  EXPECT_EQ(RedactGitUrl("https://token@example.com/r.git"), "https://token@example.com/r.git");
  EXPECT_EQ(RedactGitUrl("git@example.com:r.git"), "git@example.com:r.git");
  EXPECT_EQ(RedactGitUrl("https://example.com/a:b@c"), "https://example.com/a:b@c");
}

}  // namespace
}  // namespace kiln::ops
