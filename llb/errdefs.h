#pragma once
// Typed error details as BuildKit sends them in a gRPC status (its solver/errdefs package):
// the source lines an error comes from (errdefs.Source: a file and line ranges, which buildctl
// and buildx print with context) and the vertex that failed (errdefs.Vertex). On the wire each
// is a google.rpc.Status detail whose type URL is BuildKit's typeurl registration and whose
// value is the Go JSON encoding of the message. Inside kiln they ride on absl::Status payloads.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/pb/ops.pb.h"

namespace kiln::llb {

inline constexpr char kSourceDetailType[] = "github.com/moby/buildkit/errdefs.Source+json";
inline constexpr char kVertexDetailType[] = "github.com/moby/buildkit/errdefs.Vertex+json";
// The absl::Status payload holding every Source of an error: a JSON array of Source objects.
inline constexpr char kSourcesPayload[] = "kiln.dev/errdefs.sources";

// errdefs.Source: where in a source file an error comes from.
struct ErrorSource {
  pb::SourceInfo info;  // filename, data, language (definition is not carried)
  std::vector<pb::Range> ranges;
};

// The Go JSON encoding of errdefs.Source / errdefs.Vertex (omitempty fields left out, bytes in
// base64), as BuildKit puts them in status details.
std::string SourceDetailJson(const ErrorSource& source);
std::string VertexDetailJson(std::string_view digest);
[[nodiscard]] absl::StatusOr<ErrorSource> ParseSourceDetail(std::string_view json);
[[nodiscard]] absl::StatusOr<std::string> ParseVertexDetail(std::string_view json);

// `st` with `source` added to the sources it carries (the first added is the innermost).
[[nodiscard]] absl::Status WithSource(absl::Status st, const ErrorSource& source);
// The sources `st` carries, in the order they were added.
std::vector<ErrorSource> SourcesOf(const absl::Status& st);

// `st` with the locations `definition` gives the op `digest` (Definition.source), as
// BuildKit's solver does for a failing vertex. `st` unchanged when there are none.
[[nodiscard]] absl::Status WithDefinitionSource(absl::Status st, const pb::Definition& definition,
                                                std::string_view digest);

// A source excerpt as buildctl prints it (BuildKit's Source.Print): "FILE:LINE", a rule, the
// lines around the ranges with ">>>" on the lines in range, and a rule. Empty when the ranges
// are outside the data.
std::string FormatSource(const ErrorSource& source);

// The line range [start_line, end_line] (1-based) as a pb.Range (character 0).
pb::Range LineRange(int start_line, int end_line);

}  // namespace kiln::llb
