#pragma once
// Small helpers shared by the registry client tests.

#include <cstdint>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/content/store.h"
#include "daemon/registry/reference.h"
#include "daemon/registry/types.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::registry::testing {

// A reference that must parse (a test failure otherwise).
inline Reference Ref(const std::string& text) {
  auto r = ParseReference(text);
  EXPECT_THAT(r, ::kiln::testing::IsOk());
  return r.ok() ? *r : Reference{};
}

// Stores `data` in `store` and describes it.
inline Descriptor StoreBlob(content::Store& store, const std::string& data,
                            const std::string& media_type) {
  auto d = store.Put(data);
  EXPECT_THAT(d, ::kiln::testing::IsOk());
  return Descriptor{.media_type = media_type,
                    .digest = d.ok() ? *d : "",
                    .size = static_cast<int64_t>(data.size())};
}

}  // namespace kiln::registry::testing
