#pragma once
// `kiln build`: sends an LLB definition to the daemon with a session serving the --local
// directories and receiving the --output results, and shows progress.

#include <iostream>
#include <map>
#include <string>
#include <vector>

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
};

// Reads the Definition from `in` and runs the build; returns the process exit code.
int RunBuild(const ConnectOptions& connect, const BuildFlags& flags, std::istream& in);

}  // namespace kiln::client
