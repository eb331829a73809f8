#include "daemon/session/secrets.h"

#include <grpcpp/grpcpp.h>

#include <functional>
#include <stop_token>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "proto/moby/buildkit/secrets/v1/secrets.grpc.pb.h"

namespace kiln::session {
namespace {

namespace pb = moby::buildkit::secrets::v1;

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("secret ", id, " not found (pass --secret id=", id,
                                          ",src=FILE or --secret id=", id, ",env=VAR)"));
}

}  // namespace

absl::StatusOr<std::string> GetSecret(const Context& ctx, const Session& session,
                                      const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("secret mount without an id");
  KILN_RETURN_IF_ERROR(ctx.Check("get secret"));
  if (absl::Status st = session.CheckMethod(kGetSecretMethod); !st.ok()) {
    if (st.code() == absl::StatusCode::kFailedPrecondition) return NotFound(id);
    return Annotate(st, absl::StrCat("get secret ", id));
  }

  grpc::ClientContext call;
  if (auto deadline = ctx.deadline()) {
    call.set_deadline(std::chrono::system_clock::now() + (*deadline - Context::Clock::now()));
  }
  std::stop_callback<std::function<void()>> cancel(ctx.stop_token(), [&call] { call.TryCancel(); });
  pb::GetSecretRequest req;
  req.set_id(id);
  pb::GetSecretResponse resp;
  grpc::Status st = pb::Secrets::NewStub(session.channel())->GetSecret(&call, req, &resp);
  if (!st.ok()) {
    // BuildKit treats Unimplemented like NotFound: the client has no secrets provider.
    if (st.error_code() == grpc::StatusCode::NOT_FOUND ||
        st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      return NotFound(id);
    }
    if (ctx.Cancelled()) return ctx.Check("get secret");
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat("get secret ", id, ": ", st.error_message()));
  }
  if (resp.data().size() > kMaxSecretBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("secret ", id, " is too big: ", resp.data().size(), " bytes (the limit is ",
                     kMaxSecretBytes, " bytes)"));
  }
  return std::move(*resp.mutable_data());
}

}  // namespace kiln::session
