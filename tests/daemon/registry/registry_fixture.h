#pragma once
// A real `docker-registry` (distribution 2.8) for tests: filesystem storage in a temp dir,
// listening on 127.0.0.1:<free port>, optionally behind htpasswd Basic auth. Started in the
// constructor, stopped by PID (SIGTERM, then SIGKILL) in the destructor. With `token` set it runs
// in `auth: token` mode instead, trusting JWTs signed by the key of `rootcertbundle`.

#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace kiln::testing {

inline constexpr char kRegistryBinary[] = "/usr/bin/docker-registry";

// A TCP port on 127.0.0.1 that was free a moment ago.
inline int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool CanConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// A bcrypt htpasswd line (the registry accepts only bcrypt), through libcrypt.
inline absl::StatusOr<std::string> HtpasswdLine(const std::string& user,
                                                const std::string& password) {
  const char* salt = ::crypt_gensalt("$2b$", 5, nullptr, 0);
  if (salt == nullptr) return absl::InternalError("crypt_gensalt failed");
  std::string setting = salt;
  const char* hash = ::crypt(password.c_str(), setting.c_str());
  if (hash == nullptr || hash[0] == '*') return absl::InternalError("bcrypt failed");
  return absl::StrCat(user, ":", hash, "\n");
}

class RegistryProcess {
 public:
  struct Options {
    std::map<std::string, std::string> users;  // htpasswd auth when non-empty
    struct TokenAuth {
      std::string realm;           // the token server's URL
      std::string service;         // the JWTs' audience
      std::string issuer;          // the JWTs' iss
      std::string rootcertbundle;  // PEM file with the signing certificate
    };
    std::optional<TokenAuth> token;  // token auth when set (users is then ignored)
  };

  static absl::StatusOr<std::unique_ptr<RegistryProcess>> Start(const Options& options = {}) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/kiln-registry-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
    auto reg = std::unique_ptr<RegistryProcess>(new RegistryProcess(tmpl));
    reg->port_ = FreeLoopbackPort();
    if (reg->port_ <= 0) return absl::InternalError("no free port");
    std::string config = absl::StrCat(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n  filesystem:\n    rootdirectory: ",
        reg->dir_.string(), "/data\n  delete:\n    enabled: true\n",
        "http:\n  addr: 127.0.0.1:", reg->port_, "\n");
    if (options.token) {
      absl::StrAppend(&config, "auth:\n  token:\n    realm: ", options.token->realm,
                      "\n    service: ", options.token->service,
                      "\n    issuer: ", options.token->issuer,
                      "\n    rootcertbundle: ", options.token->rootcertbundle, "\n");
    } else if (!options.users.empty()) {
      std::string htpasswd;
      for (const auto& [user, password] : options.users) {
        auto line = HtpasswdLine(user, password);
        if (!line.ok()) return line.status();
        htpasswd += *line;
      }
      std::ofstream(reg->dir_ / "htpasswd") << htpasswd;
      absl::StrAppend(&config, "auth:\n  htpasswd:\n    realm: kiln-test\n    path: ",
                      (reg->dir_ / "htpasswd").string(), "\n");
    }
    std::ofstream(reg->dir_ / "config.yml") << config;
    std::string log = (reg->dir_ / "registry.log").string();
    std::string config_path = (reg->dir_ / "config.yml").string();
    pid_t pid = ::fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      FILE* out = std::freopen(log.c_str(), "w", stdout);
      (void)out;
      ::dup2(STDOUT_FILENO, STDERR_FILENO);
      ::execl(kRegistryBinary, kRegistryBinary, "serve", config_path.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    reg->pid_ = pid;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!CanConnect(reg->port_)) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        reg->pid_ = -1;
        std::ifstream in(log);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return absl::InternalError(absl::StrCat("docker-registry exited: ", text));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError("docker-registry did not start listening");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return reg;
  }

  ~RegistryProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (::waitpid(pid_, &status, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  int port() const { return port_; }
  std::string host() const { return absl::StrCat("127.0.0.1:", port_); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit RegistryProcess(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace kiln::testing
