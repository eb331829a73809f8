#include "daemon/cache/metadata.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::cache {
namespace {

constexpr int kSchemaVersion = 3;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS records (
  id            TEXT PRIMARY KEY,
  record_type   TEXT NOT NULL,
  description   TEXT NOT NULL DEFAULT '',
  is_mutable    INTEGER NOT NULL DEFAULT 0,
  shared        INTEGER NOT NULL DEFAULT 0,
  size          INTEGER NOT NULL DEFAULT -1,
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER,
  usage_count   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS cache_keys (
  key        TEXT NOT NULL,
  output     INTEGER NOT NULL,
  record_id  TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
  PRIMARY KEY (key, output)
);
CREATE INDEX IF NOT EXISTS cache_keys_record ON cache_keys(record_id);
CREATE TABLE IF NOT EXISTS heads (
  name       TEXT PRIMARY KEY,
  record_id  TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS named_values (
  name   TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS record_parents (
  id      TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
  parent  TEXT NOT NULL,
  ord     INTEGER NOT NULL,
  PRIMARY KEY (id, parent)
);
)sql";

// Owns one prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  absl::Status status() const { return rc_ == SQLITE_OK ? absl::OkStatus() : Error("prepare"); }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  // SQLITE_ROW → true, SQLITE_DONE → false.
  absl::StatusOr<bool> Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    rc_ = rc;
    return Error("step");
  }
  std::string Text(int col) const {
    auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  absl::Status Error(const char* what) const {
    return absl::InternalError(absl::StrCat("kiln.db ", what, ": ", sqlite3_errmsg(db_)));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

constexpr char kSelectColumns[] =
    "SELECT id, record_type, description, is_mutable, shared, size, created_at, last_used_at, "
    "usage_count FROM records";

Record RowToRecord(const Stmt& s) {
  Record r;
  r.id = s.Text(0);
  r.record_type = s.Text(1);
  r.description = s.Text(2);
  r.is_mutable = s.Int(3) != 0;
  r.shared = s.Int(4) != 0;
  r.size = s.Int(5);
  r.created_at_ns = s.Int(6);
  if (!s.IsNull(7)) r.last_used_at_ns = s.Int(7);
  r.usage_count = s.Int(8);
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetadataStore>> MetadataStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("open ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<MetadataStore> store(new MetadataStore(db));
  KILN_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  KILN_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));
  KILN_RETURN_IF_ERROR(store->Exec("PRAGMA foreign_keys=ON"));
  Stmt version(db, "PRAGMA user_version");
  KILN_RETURN_IF_ERROR(version.status());
  KILN_ASSIGN_OR_RETURN(bool has_row, version.Step());
  int64_t current = has_row ? version.Int(0) : 0;
  if (current > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(path, " has schema version ", current,
                                                      ", newer than this kilnd (", kSchemaVersion,
                                                      "); refusing to touch it"));
  }
  KILN_RETURN_IF_ERROR(store->Exec(kSchema));
  KILN_RETURN_IF_ERROR(store->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion).c_str()));
  return store;
}

MetadataStore::~MetadataStore() { sqlite3_close(db_); }

absl::Status MetadataStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("kiln.db: ", msg));
  }
  return absl::OkStatus();
}

absl::Status MetadataStore::Put(const Record& r) {
  std::lock_guard lock(mu_);
  KILN_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> absl::Status {
    Stmt ins(db_,
             "INSERT OR REPLACE INTO records (id, record_type, description, is_mutable, shared, "
             "size, created_at, last_used_at, usage_count) VALUES (?,?,?,?,?,?,?,?,?)");
    KILN_RETURN_IF_ERROR(ins.status());
    ins.Bind(1, r.id).Bind(2, r.record_type).Bind(3, r.description);
    ins.Bind(4, int64_t{r.is_mutable}).Bind(5, int64_t{r.shared}).Bind(6, r.size);
    ins.Bind(7, r.created_at_ns);
    if (r.last_used_at_ns) {
      ins.Bind(8, *r.last_used_at_ns);
    } else {
      ins.BindNull(8);
    }
    ins.Bind(9, r.usage_count);
    KILN_RETURN_IF_ERROR(ins.Step().status());
    Stmt del(db_, "DELETE FROM record_parents WHERE id = ?");
    KILN_RETURN_IF_ERROR(del.status());
    del.Bind(1, r.id);
    KILN_RETURN_IF_ERROR(del.Step().status());
    for (size_t i = 0; i < r.parents.size(); ++i) {
      Stmt p(db_, "INSERT OR IGNORE INTO record_parents (id, parent, ord) VALUES (?,?,?)");
      KILN_RETURN_IF_ERROR(p.status());
      p.Bind(1, r.id).Bind(2, r.parents[i]).Bind(3, static_cast<int64_t>(i));
      KILN_RETURN_IF_ERROR(p.Step().status());
    }
    return absl::OkStatus();
  };
  if (absl::Status st = body(); !st.ok()) {
    (void)Exec("ROLLBACK");
    return st;
  }
  return Exec("COMMIT");
}

absl::Status MetadataStore::ReadParents(Record& r) {
  Stmt s(db_, "SELECT parent FROM record_parents WHERE id = ? ORDER BY ord");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, r.id);
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    r.parents.push_back(s.Text(0));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Record>> MetadataStore::List() {
  std::lock_guard lock(mu_);
  Stmt s(db_, absl::StrCat(kSelectColumns, " ORDER BY id").c_str());
  KILN_RETURN_IF_ERROR(s.status());
  std::vector<Record> out;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToRecord(s));
  }
  for (Record& r : out) KILN_RETURN_IF_ERROR(ReadParents(r));
  return out;
}

absl::StatusOr<std::optional<Record>> MetadataStore::Get(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, absl::StrCat(kSelectColumns, " WHERE id = ?").c_str());
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, id);
  KILN_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Record>();
  Record r = RowToRecord(s);
  KILN_RETURN_IF_ERROR(ReadParents(r));
  return std::optional<Record>(std::move(r));
}

absl::Status MetadataStore::Delete(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM records WHERE id = ?");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, id);
  return s.Step().status();
}

absl::Status MetadataStore::PutCacheKey(const std::string& key,
                                        const std::vector<std::string>& record_ids) {
  std::lock_guard lock(mu_);
  KILN_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> absl::Status {
    Stmt del(db_, "DELETE FROM cache_keys WHERE key = ?");
    KILN_RETURN_IF_ERROR(del.status());
    del.Bind(1, key);
    KILN_RETURN_IF_ERROR(del.Step().status());
    for (size_t i = 0; i < record_ids.size(); ++i) {
      Stmt ins(db_, "INSERT INTO cache_keys (key, output, record_id) VALUES (?,?,?)");
      KILN_RETURN_IF_ERROR(ins.status());
      ins.Bind(1, key).Bind(2, static_cast<int64_t>(i)).Bind(3, record_ids[i]);
      KILN_RETURN_IF_ERROR(ins.Step().status());
    }
    return absl::OkStatus();
  };
  if (absl::Status st = body(); !st.ok()) {
    (void)Exec("ROLLBACK");
    return st;
  }
  return Exec("COMMIT");
}

absl::StatusOr<std::vector<std::string>> MetadataStore::GetCacheKey(const std::string& key) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT output, record_id FROM cache_keys WHERE key = ? ORDER BY output");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, key);
  std::vector<std::string> out;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    if (s.Int(0) != static_cast<int64_t>(out.size())) return std::vector<std::string>{};  // gap
    out.push_back(s.Text(1));
  }
  return out;
}

absl::Status MetadataStore::SetHead(const std::string& name, const std::string& record_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT OR REPLACE INTO heads (name, record_id) VALUES (?,?)");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, name).Bind(2, record_id);
  return s.Step().status();
}

absl::Status MetadataStore::SetValue(const std::string& name, const std::string& value) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT OR REPLACE INTO named_values (name, value) VALUES (?,?)");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, name).Bind(2, value);
  return s.Step().status();
}

absl::StatusOr<std::optional<std::string>> MetadataStore::GetValue(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT value FROM named_values WHERE name = ?");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, name);
  KILN_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(s.Text(0));
}

absl::StatusOr<std::optional<std::string>> MetadataStore::GetHead(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT record_id FROM heads WHERE name = ?");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, name);
  KILN_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(s.Text(0));
}

absl::Status MetadataStore::Touch(const std::string& id, int64_t now_ns) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE records SET last_used_at = ?, usage_count = usage_count + 1 WHERE id = ?");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, now_ns).Bind(2, id);
  return s.Step().status();
}

absl::Status MetadataStore::SetSize(const std::string& id, int64_t size) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE records SET size = ? WHERE id = ?");
  KILN_RETURN_IF_ERROR(s.status());
  s.Bind(1, size).Bind(2, id);
  return s.Step().status();
}

}  // namespace kiln::cache
