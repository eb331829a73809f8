#include "daemon/remotecache/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::remotecache {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

TEST(CacheConfigTest, ParsesBuildKitsDocumentedLayout) {
  // The layout of BuildKit's cache/remotecache/v1 documentation.
  auto c = ParseCacheConfig(R"({
    "layers": [{"blob": "sha256:aa", "parent": -1},
               {"blob": "sha256:bb", "parent": 0,
                "annotations": {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "diffID": "sha256:dd", "size": 12,
                                "createdAt": "2024-01-02T03:04:05.5Z"}}],
    "records": [{"digest": "sha256:r0"},
                {"digest": "sha256:r1", "layers": [{"layer": 1, "createdAt": "2024-01-02T03:04:05Z"}],
                 "chains": [{"layers": [0, 1]}],
                 "inputs": [[{"selector": "sel", "link": 0}]]}]})");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_THAT(c->layers, SizeIs(2));
  EXPECT_EQ(c->layers[0].parent, -1);
  EXPECT_EQ(c->layers[1].parent, 0);
  EXPECT_EQ(c->layers[1].diff_id, "sha256:dd");
  EXPECT_EQ(c->layers[1].size, 12);
  ASSERT_THAT(c->records, SizeIs(2));
  EXPECT_EQ(c->records[1].results[0].layer, 1);
  EXPECT_THAT(c->records[1].chained[0].layers, ::testing::ElementsAre(0, 1));
  EXPECT_EQ(c->records[1].inputs[0][0].selector, "sel");
  EXPECT_EQ(c->records[1].inputs[0][0].link, 0);
}

TEST(CacheConfigTest, RoundTripsThroughJson) {
  CacheConfig c;
  c.layers = {{.blob = "sha256:aa",
               .parent = -1,
               .media_type = "m",
               .diff_id = "sha256:d0",
               .size = 3,
               .created_at = "2024-01-02T03:04:05Z"},
              {.blob = "sha256:bb", .parent = 0}};
  c.records = {{.digest = "sha256:c"},
               {.digest = "sha256:op",
                .results = {{.layer = 1, .created_at = "2024-01-02T03:04:05Z"}},
                .inputs = {{{.selector = kContentSelector, .link = 0}}}}};
  const std::string text = ToJson(c);
  // Go's omitempty: a parent of 0 is left out, -1 is written.
  EXPECT_THAT(text, HasSubstr(R"("parent":-1)"));
  auto back = ParseCacheConfig(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ToJson(*back), text);
  EXPECT_EQ(back->layers[1].parent, 0);
}

TEST(CacheConfigTest, RejectsMalformedJson) {
  EXPECT_FALSE(ParseCacheConfig("[").ok());
  EXPECT_FALSE(ParseCacheConfig("[]").ok());
  EXPECT_FALSE(ParseRecords("{}").ok());
}

TEST(CacheConfigTest, CreatedAtRoundTrips) {
  const int64_t ns = 1700000000123456789;
  EXPECT_EQ(FormatCreatedAt(ns), "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(ParseCreatedAt(FormatCreatedAt(ns)), ns);
  EXPECT_EQ(ParseCreatedAt("2023-11-14T23:13:20+01:00"), 1700000000000000000);
  EXPECT_EQ(ParseCreatedAt("yesterday"), 0);
  EXPECT_EQ(FormatCreatedAt(0), "");
}

// A source (no inputs) and a COPY-like vertex reading it by content, as kiln exports them.
CacheConfig TwoVertices() {
  CacheConfig c;
  c.layers = {{.blob = "sha256:l0", .parent = -1, .diff_id = "sha256:d0"},
              {.blob = "sha256:l1",
               .parent = 0,
               .diff_id = "sha256:d1",
               .created_at = "2024-01-02T03:04:05Z"}};
  c.records = {{.digest = "op-source", .results = {{.layer = 0}}},
               {.digest = "sha256:content"},
               {.digest = "op-copy",
                .results = {{.layer = 1}},
                .inputs = {{{.selector = kContentSelector, .link = 1}, {.link = 0}}}}};
  return c;
}

TEST(CacheIndexTest, KeysMatchTheSolversAndAliasTheFastKey) {
  auto index = IndexByKey(TwoVertices());
  ASSERT_TRUE(index.ok()) << index.status();
  const std::string source = solver::ComposeCacheKey("op-source", {});
  const std::string copy = solver::ComposeCacheKey("op-copy", {{.content = "sha256:content"}});
  const std::string fast = solver::ComposeCacheKey("op-copy", {{.key = source, .index = 0}});
  ASSERT_TRUE(index->results.contains(source));
  ASSERT_TRUE(index->results.contains(copy));
  const RemoteResults& r = index->results.at(copy);
  ASSERT_THAT(r, SizeIs(1));
  ASSERT_THAT(r[0], SizeIs(2));  // the chain, bottom first
  EXPECT_EQ(r[0][0].desc.digest, "sha256:l0");
  EXPECT_EQ(r[0][1].desc.digest, "sha256:l1");
  EXPECT_EQ(r[0][1].diff_id, "sha256:d1");
  EXPECT_EQ(r[0][1].created_at_ns, 1704164645000000000);
  ASSERT_TRUE(index->aliases.contains(fast));
  EXPECT_EQ(index->aliases.at(fast).key, copy);
  EXPECT_THAT(index->aliases.at(fast).contents, ::testing::ElementsAre("sha256:content"));
}

TEST(CacheIndexTest, OutputSelectorsAndBrokenRecords) {
  CacheConfig c = TwoVertices();
  // Output 2 of the source; a cycle; a link out of range; a layer index out of range.
  c.records.push_back({.digest = "op-out2",
                       .results = {{.layer = 0}},
                       .inputs = {{{.selector = "kiln:output=2", .link = 0}}}});
  c.records.push_back({.digest = "op-cycle", .results = {{.layer = 0}}, .inputs = {{{.link = 5}}}});
  c.records.push_back(
      {.digest = "op-cycle2", .results = {{.layer = 0}}, .inputs = {{{.link = 4}}}});
  c.records.push_back(
      {.digest = "op-dangling", .results = {{.layer = 0}}, .inputs = {{{.link = 99}}}});
  c.records.push_back({.digest = "op-badlayer", .results = {{.layer = 7}}});
  auto index = IndexByKey(c);
  ASSERT_TRUE(index.ok()) << index.status();
  const std::string source = solver::ComposeCacheKey("op-source", {});
  EXPECT_TRUE(
      index->results.contains(solver::ComposeCacheKey("op-out2", {{.key = source, .index = 2}})));
  EXPECT_FALSE(index->results.contains(solver::ComposeCacheKey("op-badlayer", {})));
  // Only the source, the copy and op-out2 have keys with results.
  EXPECT_THAT(index->results, SizeIs(3));
}

}  // namespace
}  // namespace kiln::remotecache
