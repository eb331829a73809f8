#include "client/connection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

namespace kiln::client {
namespace {

using ::testing::HasSubstr;

TEST(ConnectionTest, AddressPrecedence) {
  ::unsetenv("KILN_HOST");
  ::unsetenv("BUILDKIT_HOST");
  EXPECT_EQ(ResolveAddress(""), "unix:///run/kiln/kilnd.sock");
  ::setenv("BUILDKIT_HOST", "tcp://b:1", 1);
  EXPECT_EQ(ResolveAddress(""), "tcp://b:1");
  ::setenv("KILN_HOST", "unix:///k.sock", 1);
  EXPECT_EQ(ResolveAddress(""), "unix:///k.sock");
  EXPECT_EQ(ResolveAddress("tcp://flag:2"), "tcp://flag:2");
  ::unsetenv("KILN_HOST");
  ::unsetenv("BUILDKIT_HOST");
}

TEST(ConnectionTest, BadAddressesAreNamed) {
  auto c = Connect({.address = "http://x:1"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("http://x:1"));
  c = Connect({.address = "tcp://nohost"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("tcp://HOST:PORT"));
  c = Connect({.address = "unix://relative.sock"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("absolute"));
}

TEST(ConnectionTest, MissingTlsFileIsNamed) {
  auto c = Connect({.address = "tcp://127.0.0.1:1", .tls_ca = "/nonexistent/ca.pem"});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("/nonexistent/ca.pem"));
}

TEST(ConnectionTest, UnreachableDaemonMessageNamesAddress) {
  Connection conn{.address = "unix:///nonexistent.sock"};
  std::string msg = DescribeRpcError(conn, grpc::Status(grpc::StatusCode::UNAVAILABLE, "boom"));
  EXPECT_THAT(msg, HasSubstr("cannot reach kilnd at unix:///nonexistent.sock"));
}

}  // namespace
}  // namespace kiln::client
