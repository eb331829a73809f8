#include "base/digest.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Sha256Digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DigestTest, Validates) {
  EXPECT_TRUE(IsSha256Digest(Sha256Digest("x")));
  EXPECT_FALSE(IsSha256Digest("sha256:abc"));
  EXPECT_FALSE(IsSha256Digest("sha512:" + std::string(64, 'a')));
  EXPECT_FALSE(IsSha256Digest("sha256:" + std::string(64, 'A')));
}

}  // namespace
}  // namespace kiln
