#include "daemon/util/process.h"

#include <chrono>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::util {
namespace {

using std::chrono::milliseconds;

SpawnOptions Shell(const std::string& script) {
  SpawnOptions so;
  so.argv = {"/bin/sh", "-c", script};
  so.env = {"PATH=/usr/bin:/bin"};
  return so;
}

TEST(RunCommandTest, InterleavesStderrByDefault) {
  auto r = RunCommand(Shell("echo out; echo err >&2; exit 3"), milliseconds(10000));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_THAT(r->output, testing::HasSubstr("out\n"));
  EXPECT_THAT(r->output, testing::HasSubstr("err\n"));
  EXPECT_EQ(r->errors, "");
}

TEST(RunCommandTest, SeparatesStderrWhenAsked) {
  auto r = RunCommand(Shell("echo out; echo err >&2"),
                      CommandOptions{.timeout = milliseconds(10000), .separate_stderr = true});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->output, "out\n");
  EXPECT_EQ(r->errors, "err\n");
}

TEST(RunCommandTest, KillsTheCommandAtTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  auto r = RunCommand(Shell("exec sleep 30"), milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RunCommandTest, ACancelledContextKillsTheCommand) {
  Context ctx;
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(200));
    ctx.Cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = RunCommand(Shell("exec sleep 30"),
                      CommandOptions{.timeout = milliseconds(60000), .ctx = &ctx});
  canceller.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

}  // namespace
}  // namespace kiln::util
