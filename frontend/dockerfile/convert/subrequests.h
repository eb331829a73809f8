#pragma once
// BuildKit's frontend subrequests for the Dockerfile frontend (frontend attr `requestid`, sent by
// `docker buildx build --call ...` / `--check`): instead of building, the frontend answers with
// metadata only -- result.json (the Go JSON encoding BuildKit v0.24 writes, key order and
// omitempty rules included), result.txt (its text rendering), version and, for lint,
// result.statuscode. As BuildKit's frontend/subrequests/{describe,lint,outline,targets} and
// dockerfile2llb's Dockerfile2Outline, ListTargets and DockerfileLint. Pure functions.
//
//   if (IsSubrequest(attrs)) ... Metadata m = DescribeResult();

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "frontend/dockerfile/convert/convert.h"

namespace kiln::dockerfile {

inline constexpr char kRequestDescribe[] = "frontend.subrequests.describe";
inline constexpr char kRequestLint[] = "frontend.lint";
inline constexpr char kRequestOutline[] = "frontend.outline";
inline constexpr char kRequestTargets[] = "frontend.targets";

// The absl::Status payload naming an unsupported subrequest (BuildKit's typed error detail
// errdefs.Subrequest, which buildx uses to fall back).
inline constexpr char kSubrequestPayload[] = "kiln.dev/errdefs.subrequest";
inline constexpr char kSubrequestDetailType[] = "github.com/moby/buildkit/errdefs.Subrequest+json";

// A subrequest's answer: FrontendResult.metadata of a result without a ref.
using SubrequestMetadata = std::map<std::string, std::string>;

// frontend.subrequests.describe: outline, targets and describe itself (BuildKit's Dockerfile
// frontend does not list lint).
SubrequestMetadata DescribeResult();

// frontend.targets: every stage, the last one the default. Errors: the Dockerfile's parse
// errors.
[[nodiscard]] absl::StatusOr<SubrequestMetadata> TargetsResult(std::string_view dockerfile);

// frontend.outline: the build args (with values and the descriptions of "# NAME text" comments),
// secrets and ssh mounts the target stage (options.target, default the last) and the stages it
// depends on use. Uses options.target and options.build_args only; nothing is resolved.
// Errors: parse errors, "target stage \"x\" could not be found".
[[nodiscard]] absl::StatusOr<SubrequestMetadata> OutlineResult(std::string_view dockerfile,
                                                               const ConvertOptions& options);

// frontend.lint: the warnings of a conversion (or, when it failed, the parser's warnings and the
// error as buildError), with the Dockerfile as the only source. result.statuscode is 1 when
// there is a warning or an error.
SubrequestMetadata LintResult(std::string_view dockerfile, std::string_view filename,
                              const absl::StatusOr<ConvertResult>& converted);

// BuildKit's errdefs.UnsupportedSubrequestError: "unsupported request NAME", carrying
// kSubrequestPayload = NAME.
absl::Status UnsupportedSubrequestError(std::string_view name);

// errdefs.Subrequest's Go JSON: {"name":"..."}.
std::string SubrequestDetailJson(std::string_view name);

// Go's text/tabwriter with minwidth 0, tabwidth 0, padchar ' ' and no flags: the cells of
// `text` ended by '\t' are padded to their column's width plus `padding`.
std::string TabWrite(std::string_view text, int padding);

}  // namespace kiln::dockerfile
