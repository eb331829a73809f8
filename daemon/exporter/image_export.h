#pragma once
// The image exporters (`image`, `oci`, `docker`) behind exporter::Export.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "base/context.h"
#include "daemon/exporter/exporter.h"

namespace kiln::exporter::internal {

[[nodiscard]] absl::StatusOr<std::map<std::string, std::string>> ExportImage(
    const Context& ctx, const ExportDeps& deps, const cache::ImmutableRef* result,
    const ExportRequest& request);

}  // namespace kiln::exporter::internal
