#include "client/connection.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "llb/errdefs.h"
#include "proto/google/rpc/status.pb.h"

namespace kiln::client {
namespace {

constexpr int kMaxMessageBytes = 16 << 20;  // as BuildKit

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string data = std::move(ss).str();
  if (!absl::StrContains(data, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return data;
}

}  // namespace

std::string ResolveAddress(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  for (const char* env : {"KILN_HOST", "BUILDKIT_HOST"}) {
    const char* v = std::getenv(env);
    if (v != nullptr && *v != '\0') return v;
  }
  return kDefaultAddress;
}

absl::StatusOr<Connection> Connect(const ConnectOptions& options) {
  Connection conn;
  conn.address = ResolveAddress(options.address);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  const std::string& a = conn.address;
  bool tls = !options.tls_ca.empty() || !options.tls_cert.empty() || !options.tls_key.empty();
  if (absl::StartsWith(a, "unix://") || absl::StartsWith(a, "unix:")) {
    std::string path = absl::StartsWith(a, "unix://") ? a.substr(7) : a.substr(5);
    if (path.empty() || path[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("address ", a, ": want an absolute socket path (unix:///PATH)"));
    }
    conn.channel = grpc::CreateCustomChannel(absl::StrCat("unix:", path),
                                             grpc::InsecureChannelCredentials(), args);
    return conn;
  }
  if (!absl::StartsWith(a, "tcp://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", a, ": unsupported scheme; want unix:///PATH or tcp://HOST:PORT"));
  }
  std::string hostport = a.substr(6);
  while (!hostport.empty() && hostport.back() == '/') hostport.pop_back();
  if (hostport.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("address ", a, ": want tcp://HOST:PORT"));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty()) {
      auto ca = ReadPem(options.tls_ca, "--tlscacert");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (options.tls_cert.empty() != options.tls_key.empty()) {
      return absl::InvalidArgumentError("--tlscert and --tlskey go together");
    }
    if (!options.tls_cert.empty()) {
      auto cert = ReadPem(options.tls_cert, "--tlscert");
      if (!cert.ok()) return cert.status();
      auto key = ReadPem(options.tls_key, "--tlskey");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  conn.channel = grpc::CreateCustomChannel(hostport, creds, args);
  return conn;
}

std::string DescribeRpcError(const Connection& conn, const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    std::string detail = status.error_message();
    return absl::StrCat(
        "cannot reach kilnd at ", conn.address, detail.empty() ? "" : absl::StrCat(": ", detail),
        " (is kilnd running? `kiln daemon start` starts one at the default address; or set "
        "--addr, KILN_HOST or BUILDKIT_HOST)");
  }
  return absl::StrCat(status.error_message(), " (", conn.address, ")");
}

std::string DescribeErrorSources(const grpc::Status& status) {
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return "";
  }
  std::string out;
  for (const google::protobuf::Any& any : details.details()) {
    if (any.type_url() != llb::kSourceDetailType) continue;
    auto source = llb::ParseSourceDetail(any.value());
    if (source.ok()) out += llb::FormatSource(*source);
  }
  return out;
}

}  // namespace kiln::client
