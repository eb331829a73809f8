#pragma once
// `kiln build`: sends an LLB definition to the daemon with a session serving the --local
// directories and receiving the --output results, and shows progress.

#include <iostream>
#include <map>
#include <string>

#include <vector>
#include "absl/status/statusor.h"

#include "client/connection.h"

namespace kiln::client {

struct BuildFlags {
  std::vector<std::string> locals;  // NAME=DIR
  // type=local,dest=DIR | type=tar,dest=FILE | type=oci|docker,dest=FILE[,name=…] |
  // type=image,name=NAME[,push=true] (values with commas in double quotes, as buildctl's CSV)
  std::vector<std::string> outputs;
  std::string metadata_file;      // the exporters' response as JSON (buildctl's --metadata-file)
  std::string progress = "auto";  // auto|tty|plain|rawjson|quiet
  bool no_cache = false;
  std::vector<std::string> secrets;       // id=X,src=FILE | id=X,env=VAR (buildctl's --secret)
  std::vector<std::string> ssh;           // default | ID=SOCKET_OR_KEY[,KEY...]
  std::vector<std::string> entitlements;  // --allow security.insecure | network.host
  // A frontend instead of a definition on stdin (buildctl's --frontend and --opt).
  std::string frontend;           // "dockerfile.v0"
  std::vector<std::string> opts;  // KEY=VALUE frontend options
  // buildx-style: `kiln build [-f FILE] CONTEXT` means the Dockerfile frontend with the locals
  // "context" = CONTEXT and "dockerfile" = FILE's directory (default: CONTEXT).
  std::string context;
  std::string file;                     // -f; "-" is not supported
  std::vector<std::string> build_args;  // --build-arg K=V (K alone: from the environment)
  std::string target;
  std::string platform;
  // Build cache, as buildctl's --export-cache/--import-cache and buildx's --cache-to/
  // --cache-from: type=registry,ref=R[,mode=max] | type=inline | type=local,dest=DIR (export)
  // or src=DIR (import; the digest comes from DIR/index.json); a bare REF means
  // type=registry,ref=REF.
  std::vector<std::string> cache_exports;
  std::vector<std::string> cache_imports;
  // buildx shorthands: -t NAME (an image output named NAME; repeatable), --push (push it),
  // --load-to FILE (a `docker load` tarball of it in FILE).
  std::vector<std::string> tags;
  bool push = false;
  std::string load_to;
};

// The outputs `flags` ask for, with the buildx shorthands expanded into --output entries.
// INVALID_ARGUMENT when --push has no -t to push.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> ExpandOutputs(const BuildFlags& flags);

// Runs the build (reading the Definition from `in` unless a frontend is used); returns the
// process exit code.
int RunBuild(const ConnectOptions& connect, const BuildFlags& flags, std::istream& in);

}  // namespace kiln::client
