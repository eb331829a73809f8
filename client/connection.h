#pragma once
// How the kiln CLI reaches kilnd: address resolution (flag, KILN_HOST, BUILDKIT_HOST,
// default) and channel construction (unix socket, TCP, TCP with mutual TLS).

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace kiln::client {

inline constexpr char kDefaultAddress[] = "unix:///run/kiln/kilnd.sock";

struct ConnectOptions {
  std::string address;  // empty: KILN_HOST, else BUILDKIT_HOST, else kDefaultAddress
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
};

// The address the CLI uses after applying the environment and the default.
std::string ResolveAddress(const std::string& flag_value);

struct Connection {
  std::string address;  // as resolved, for messages
  std::shared_ptr<grpc::Channel> channel;
};

// Builds a channel (does not connect yet). Fails with a message naming the bad address or
// TLS file.
[[nodiscard]] absl::StatusOr<Connection> Connect(const ConnectOptions& options);

// Turns an RPC failure into the one line the CLI prints, naming the address when the daemon
// could not be reached.
std::string DescribeRpcError(const Connection& conn, const grpc::Status& status);

// The source excerpts a failed RPC's status details carry (BuildKit's errdefs.Source: e.g. the
// Dockerfile lines of the step that failed), formatted as buildctl prints them; empty if none.
std::string DescribeErrorSources(const grpc::Status& status);

}  // namespace kiln::client
