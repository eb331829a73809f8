#pragma once
// SHA-256 digests in OCI form ("sha256:<64 hex>"), over OpenSSL's EVP interface.

#include <memory>
#include <string>
#include <string_view>

namespace kiln {

// Incremental hasher. Not thread-safe; one per stream of bytes.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view bytes);
  // Lowercase hex of the digest; the hasher is spent afterwards.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "sha256:<hex>" of `bytes`.
std::string Sha256Digest(std::string_view bytes);

// True for "sha256:" followed by 64 lowercase hex digits.
bool IsSha256Digest(std::string_view digest);

}  // namespace kiln
