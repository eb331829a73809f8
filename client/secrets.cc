#include "client/secrets.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::client {
namespace {

namespace pb = moby::buildkit::secrets::v1;

// Splits one CSV record the way Go's encoding/csv (and so go-csvvalue, which buildx and buildctl
// use) does with default options: "…" quotes a field, "" inside quotes is a quote, a quote in an
// unquoted field is an error.
absl::StatusOr<std::vector<std::string>> SplitCsv(std::string_view line) {
  std::vector<std::string> fields;
  size_t i = 0;
  while (true) {
    std::string field;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) return absl::InvalidArgumentError("missing closing \" in a field");
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += line[i++];
      }
      if (i < line.size() && line[i] != ',') {
        return absl::InvalidArgumentError("extraneous \" in a quoted field");
      }
    } else {
      size_t end = line.find(',', i);
      if (end == std::string_view::npos) end = line.size();
      field.assign(line.substr(i, end - i));
      if (field.find('"') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("bare \" in unquoted field ", field));
      }
      i = end;
    }
    fields.push_back(std::move(field));
    if (i >= line.size()) return fields;
    ++i;  // the comma
  }
}

absl::Status SpecError(std::string_view spec, std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("--secret ", AV(spec), ": ", AV(msg)));
}

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, grpc::Status st) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(std::move(st));
  return reactor;
}

// Reads at most kMaxSecretBytes from `path`, failing if the file holds more.
absl::StatusOr<std::string> ReadBounded(const std::string& path, const std::string& id) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoToStatus(errno, absl::StrCat("read secret ", id, " from ", path));
  std::string data(kMaxSecretBytes + 1, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (in.bad()) return ErrnoToStatus(errno, absl::StrCat("read secret ", id, " from ", path));
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > kMaxSecretBytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secret ", id, " (", path, ") is bigger than the limit of ", kMaxSecretBytes, " bytes"));
  }
  return data;
}

}  // namespace

absl::StatusOr<SecretSource> ParseSecretSpec(std::string_view spec) {
  auto fields = SplitCsv(spec);
  if (!fields.ok()) return SpecError(spec, SV(fields.status().message()));
  SecretSource s;
  std::string type;
  for (const std::string& field : *fields) {
    size_t eq = field.find('=');
    if (eq == std::string::npos) {
      return SpecError(spec, absl::StrCat("field \"", field, "\" must be a key=value pair"));
    }
    std::string key = absl::AsciiStrToLower(field.substr(0, eq));
    std::string value = field.substr(eq + 1);
    if (key == "type") {
      if (value != "file" && value != "env") {
        return SpecError(spec, absl::StrCat("unsupported secret type \"", value,
                                            "\" (want type=file or type=env)"));
      }
      type = value;
    } else if (key == "id") {
      s.id = value;
    } else if (key == "src" || key == "source") {
      s.file = value;
    } else if (key == "env") {
      s.env = value;
    } else {
      return SpecError(spec, absl::StrCat("unexpected key \"", key, "\" in \"", field,
                                          "\" (want id, src, source, env or type)"));
    }
  }
  if (type == "env" && s.env.empty()) {
    s.env = s.file;
    s.file.clear();
  }
  return s;
}

absl::StatusOr<std::vector<SecretSource>> ParseSecretSpecs(const std::vector<std::string>& specs) {
  std::vector<SecretSource> out;
  for (const std::string& spec : specs) {
    if (spec.empty()) continue;
    KILN_ASSIGN_OR_RETURN(SecretSource s, ParseSecretSpec(spec));
    if (s.id.empty()) return SpecError(spec, "the secret has no id (want id=NAME)");
    if (s.env.empty() && s.file.empty()) {
      if (std::getenv(s.id.c_str()) != nullptr) {
        s.env = s.id;
      } else {
        s.file = s.id;
      }
    }
    if (!s.file.empty()) {
      struct stat st;
      if (::stat(s.file.c_str(), &st) != 0) {
        return SpecError(spec, absl::StrCat(s.file, ": ", std::strerror(errno)));
      }
      if (S_ISDIR(st.st_mode)) return SpecError(spec, absl::StrCat(s.file, " is a directory"));
      if (static_cast<size_t>(st.st_size) > kMaxSecretBytes) {
        return SpecError(
            spec, absl::StrCat(s.file, " is ", st.st_size, " bytes, more than the secret limit of ",
                               kMaxSecretBytes, " bytes"));
      }
      std::error_code ec;
      std::filesystem::path abs = std::filesystem::absolute(s.file, ec);
      if (!ec) s.file = abs.string();
    }
    auto same = std::find_if(out.begin(), out.end(), [&](const auto& o) { return o.id == s.id; });
    if (same != out.end()) {
      *same = std::move(s);
    } else {
      out.push_back(std::move(s));
    }
  }
  return out;
}

SecretsService::SecretsService(const std::vector<SecretSource>& sources) {
  for (const SecretSource& s : sources) sources_[s.id] = s;
}

grpc::ServerUnaryReactor* SecretsService::GetSecret(grpc::CallbackServerContext* ctx,
                                                    const pb::GetSecretRequest* req,
                                                    pb::GetSecretResponse* resp) {
  auto it = sources_.find(req->id());
  if (it == sources_.end()) {
    return Answer(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    absl::StrCat("secret ", req->id(), " not found")));
  }
  const SecretSource& s = it->second;
  if (!s.env.empty()) {
    const char* value = std::getenv(s.env.c_str());
    std::string data = value != nullptr ? value : "";
    if (data.size() > kMaxSecretBytes) {
      return Answer(ctx, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      absl::StrCat("secret ", s.id, " ($", s.env,
                                                   ") is bigger than the limit of ",
                                                   kMaxSecretBytes, " bytes")));
    }
    resp->set_data(std::move(data));
    return Answer(ctx, grpc::Status::OK);
  }
  auto data = ReadBounded(s.file, s.id);
  if (!data.ok()) {
    return Answer(ctx, grpc::Status(static_cast<grpc::StatusCode>(data.status().code()),
                                    std::string(data.status().message())));
  }
  resp->set_data(std::move(*data));
  return Answer(ctx, grpc::Status::OK);
}

}  // namespace kiln::client
