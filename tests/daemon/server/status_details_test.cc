// ToGrpcStatus / FromRpcStatus: BuildKit's typed error details (errdefs.Source, errdefs.Vertex)
// go out with an error, and come back in with a gateway frontend's Return.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/server/control_service.h"
#include "daemon/solver/solver.h"
#include "llb/errdefs.h"
#include "proto/google/rpc/status.pb.h"

namespace kiln::server {
namespace {

llb::ErrorSource RunLine() {
  llb::ErrorSource s;
  s.info.set_filename("Dockerfile");
  s.info.set_language("Dockerfile");
  s.info.set_data("FROM busybox\nRUN false\n");
  s.ranges.push_back(llb::LineRange(2, 2));
  return s;
}

TEST(StatusDetailsTest, PlainErrorsHaveNoDetails) {
  grpc::Status st = ToGrpcStatus(absl::NotFoundError("no such ref"));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(st.error_message(), "no such ref");
  EXPECT_TRUE(st.error_details().empty());
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(StatusDetailsTest, SourceAndVertexBecomeBuildkitDetails) {
  absl::Status failed = llb::WithSource(absl::UnknownError("exit code: 1"), RunLine());
  failed.SetPayload(solver::kVertexPayload, absl::Cord("sha256:abc"));
  grpc::Status st = ToGrpcStatus(failed);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(st.error_message(), "exit code: 1");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(st.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::UNKNOWN));
  EXPECT_EQ(details.message(), "exit code: 1");
  ASSERT_EQ(details.details_size(), 2);
  EXPECT_EQ(details.details(0).type_url(), "github.com/moby/buildkit/errdefs.Source+json");
  EXPECT_EQ(details.details(0).value(), llb::SourceDetailJson(RunLine()));
  EXPECT_EQ(details.details(1).type_url(), "github.com/moby/buildkit/errdefs.Vertex+json");
  EXPECT_EQ(details.details(1).value(), R"({"digest":"sha256:abc"})");

  // A client's Return error with the same details gives the same status back.
  absl::Status back = FromRpcStatus(details);
  EXPECT_EQ(back.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(back.message(), "exit code: 1");
  std::vector<llb::ErrorSource> sources = llb::SourcesOf(back);
  ASSERT_EQ(sources.size(), 1u);
  EXPECT_EQ(llb::FormatSource(sources[0]), llb::FormatSource(RunLine()));
  EXPECT_EQ(back.GetPayload(solver::kVertexPayload), absl::Cord("sha256:abc"));
}

TEST(StatusDetailsTest, UnknownOrBrokenDetailsAreDropped) {
  google::rpc::Status in;
  in.set_code(3);
  in.set_message("bad");
  in.add_details()->set_type_url("github.com/moby/buildkit/stack.Stack+json");
  auto* broken = in.add_details();
  broken->set_type_url("github.com/moby/buildkit/errdefs.Source+json");
  broken->set_value("{not json");
  absl::Status st = FromRpcStatus(in);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "bad");
  EXPECT_TRUE(llb::SourcesOf(st).empty());
}

}  // namespace
}  // namespace kiln::server
