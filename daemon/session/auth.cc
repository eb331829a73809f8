#include "daemon/session/auth.h"

#include <grpcpp/grpcpp.h>

#include <functional>
#include <stop_token>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "proto/moby/filesync/v1/auth.grpc.pb.h"

namespace kiln::session {

absl::StatusOr<RegistryCredentials> GetRegistryCredentials(const Context& ctx,
                                                           const Session& session,
                                                           const std::string& host) {
  KILN_RETURN_IF_ERROR(ctx.Check("get registry credentials"));
  if (absl::Status st = session.CheckMethod(kAuthCredentialsMethod); !st.ok()) {
    if (st.code() == absl::StatusCode::kFailedPrecondition) return RegistryCredentials{};
    return Annotate(st, absl::StrCat("registry credentials for ", host));
  }
  grpc::ClientContext call;
  if (auto deadline = ctx.deadline()) {
    call.set_deadline(std::chrono::system_clock::now() + (*deadline - Context::Clock::now()));
  }
  std::stop_callback<std::function<void()>> cancel(ctx.stop_token(), [&call] { call.TryCancel(); });
  moby::filesync::v1::CredentialsRequest req;
  req.set_host(host);
  moby::filesync::v1::CredentialsResponse resp;
  grpc::Status st =
      moby::filesync::v1::Auth::NewStub(session.channel())->Credentials(&call, req, &resp);
  if (!st.ok()) {
    if (st.error_code() == grpc::StatusCode::NOT_FOUND ||
        st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      return RegistryCredentials{};
    }
    if (ctx.Cancelled()) return ctx.Check("get registry credentials");
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat("registry credentials for ", host, ": ", st.error_message()));
  }
  return RegistryCredentials{resp.username(), resp.secret()};
}

}  // namespace kiln::session
