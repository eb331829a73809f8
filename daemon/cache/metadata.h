#pragma once
// MetadataStore: the cache's records in SQLite (kiln.db, WAL). One row per cache record:
// what kind it is, its size, when it was made and last used, and its parents.
// Thread-safe: one connection, serialized by a mutex.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;

namespace kiln::cache {

// Record types, as BuildKit's client reports them (`buildctl du --verbose`).
inline constexpr char kTypeRegular[] = "regular";
inline constexpr char kTypeInternal[] = "internal";
inline constexpr char kTypeFrontend[] = "frontend";
inline constexpr char kTypeLocalSource[] = "source.local";
inline constexpr char kTypeGitCheckout[] = "source.git.checkout";
inline constexpr char kTypeCacheMount[] = "exec.cachemount";

struct Record {
  std::string id;
  std::string record_type = kTypeRegular;
  std::string description;
  bool is_mutable = false;
  bool shared = false;
  int64_t size = -1;  // bytes on disk; -1 when not measured yet
  int64_t created_at_ns = 0;
  std::optional<int64_t> last_used_at_ns;
  int64_t usage_count = 0;
  std::vector<std::string> parents;

  bool operator==(const Record&) const = default;
};

class MetadataStore {
 public:
  // Opens (creating if needed) the database at `path` and migrates its schema.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MetadataStore>> Open(const std::string& path);
  ~MetadataStore();
  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;

  // Inserts or replaces the record with `record.id`, parents included, in one transaction.
  [[nodiscard]] absl::Status Put(const Record& record);
  // All records, ordered by id.
  [[nodiscard]] absl::StatusOr<std::vector<Record>> List();
  [[nodiscard]] absl::StatusOr<std::optional<Record>> Get(const std::string& id);
  // Deletes the record; deleting an absent id is OK.
  [[nodiscard]] absl::Status Delete(const std::string& id);
  // Records that cache `key` resolves to these records, one per output (replacing any
  // earlier mapping). Deleting a record deletes the keys that point at it.
  [[nodiscard]] absl::Status PutCacheKey(const std::string& key,
                                         const std::vector<std::string>& record_ids);
  // The records for `key` by output, or empty when the key is unknown.
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> GetCacheKey(const std::string& key);
  // Named pointers to records (e.g. the latest synced copy of a local context); a head
  // disappears with its record.
  [[nodiscard]] absl::Status SetHead(const std::string& name, const std::string& record_id);
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> GetHead(const std::string& name);
  // Small named values not tied to a record (e.g. what an image tag last resolved to).
  [[nodiscard]] absl::Status SetValue(const std::string& name, const std::string& value);
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> GetValue(const std::string& name);
  // Marks a record used now.
  [[nodiscard]] absl::Status Touch(const std::string& id, int64_t now_ns);
  // Stores a measured size.
  [[nodiscard]] absl::Status SetSize(const std::string& id, int64_t size);

 private:
  explicit MetadataStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  absl::Status ReadParents(Record& r);

  std::mutex mu_;
  sqlite3* const db_;  // protected by mu_
};

}  // namespace kiln::cache
