// htpasswd: prints a bcrypt htpasswd line ("user:$2b$..."), the only kind docker-registry
// accepts, for the integration tests' authenticated registry (apache2-utils is not needed).
//
//   htpasswd USER PASSWORD >> registry.htpasswd
#include <iostream>

#include "tests/daemon/registry/registry_fixture.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: htpasswd USER PASSWORD\n";
    return 2;
  }
  absl::StatusOr<std::string> line = kiln::testing::HtpasswdLine(argv[1], argv[2]);
  if (!line.ok()) {
    std::cerr << "htpasswd: " << line.status().message() << "\n";
    return 1;
  }
  std::cout << *line;
  return 0;
}
