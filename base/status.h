#pragma once
// Error propagation helpers around absl::Status, in the style of Abseil's internal macros.
//
//   KILN_RETURN_IF_ERROR(DoThing());
//   KILN_ASSIGN_OR_RETURN(auto value, ComputeValue());
//   return Annotate(status, "while loading config");

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln {

// Returns `status` with `context` prepended to its message ("context: message"); OK stays OK.
[[nodiscard]] absl::Status Annotate(const absl::Status& status, std::string_view context);

// Converts errno into a Status with the matching canonical code, naming `what`.
[[nodiscard]] absl::Status ErrnoToStatus(int err, std::string_view what);

}  // namespace kiln

#define KILN_STATUS_CONCAT_INNER_(a, b) a##b
#define KILN_STATUS_CONCAT_(a, b) KILN_STATUS_CONCAT_INNER_(a, b)

#define KILN_RETURN_IF_ERROR(expr)                                  \
  do {                                                              \
    if (::absl::Status kiln_status_ = (expr); !kiln_status_.ok()) { \
      return kiln_status_;                                          \
    }                                                               \
  } while (0)

#define KILN_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)  \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#define KILN_ASSIGN_OR_RETURN(lhs, rexpr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_STATUS_CONCAT_(kiln_statusor_, __LINE__), lhs, rexpr)

// Broken internal invariants crash loudly; never use these on user input.
#define KILN_RELEASE_ASSERT(cond)                                                       \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

#ifdef NDEBUG
#define KILN_ASSERT(cond) \
  do {                    \
  } while (0)
#else
#define KILN_ASSERT(cond) KILN_RELEASE_ASSERT(cond)
#endif

namespace kiln {
// Debian's Abseil is built with its own string_view type (ABSL_OPTION_USE_STD_STRING_VIEW=0);
// these convert at the boundary between our std::string_view APIs and Abseil's functions.
inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }
}  // namespace kiln
