// FileOp, MergeOp and DiffOp through the real path: graphs built with llb/, marshaled, loaded,
// turned into vertices and solved by the solver over a real cache manager on disk; the result
// trees are read back with the gateway's ReadFile/ReadDir/StatFile functions.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/status.h"
#include "daemon/ops/read_ref.h"
#include "daemon/ops/vertices.h"
#include "daemon/ops/worker.h"
#include "daemon/solver/solver.h"
#include "fsutil/stat.h"
#include "llb/llb.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::ops {
namespace {

namespace fs = std::filesystem;
using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class SolveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("kiln_solve_test_" + std::to_string(std::random_device{}()));
    for (const char* d : {"snapshots", "tmp"}) fs::create_directories(root_ / d);
    auto m = cache::Manager::Open({.root = root_});
    ASSERT_THAT(m, IsOk());
    cache_ = std::move(*m);
    store_ = std::make_unique<CacheStore>(*cache_);
    solver_ = std::make_unique<solver::Solver>(solver::Solver::Options{
        .post = [this](std::function<void()> fn) { boost::asio::post(pool_, std::move(fn)); },
        .cache = store_.get(),
        .on_exec = [this](const solver::Vertex&, const std::string&) { ++execs_; }});
  }
  void TearDown() override {
    pool_.join();
    solver_.reset();
    store_.reset();
    cache_.reset();
    fs::remove_all(root_);
  }

  absl::StatusOr<solver::ResultPtr> Solve(const llb::State& state) {
    KILN_ASSIGN_OR_RETURN(pb::Definition def, llb::Marshal(state));
    KILN_ASSIGN_OR_RETURN(llb::Graph graph, llb::LoadDefinition(def));
    Worker worker{.cache = cache_.get(), .sessions = nullptr, .session_id = ""};
    KILN_ASSIGN_OR_RETURN(solver::Edge target, BuildVertices(graph, worker, {}));
    return solver_->Solve(ctx_, target, nullptr);
  }
  static const cache::ImmutableRef* Tree(const solver::ResultPtr& r) {
    return r ? AsRef(r).ref() : nullptr;
  }
  static std::string Read(const solver::ResultPtr& r, const std::string& path) {
    auto data = ReadFileInRef(Tree(r), path, std::nullopt, 1 << 20);
    return data.ok() ? *data : "<" + std::string(data.status().message()) + ">";
  }
  static std::vector<std::string> List(const solver::ResultPtr& r, const std::string& dir,
                                       const std::string& pattern = "") {
    std::vector<std::string> names;
    auto entries = ReadDirInRef(Tree(r), dir, pattern);
    EXPECT_THAT(entries, IsOk());
    if (entries.ok()) {
      for (const auto& e : *entries) names.push_back(e.path());
    }
    return names;
  }

  fs::path root_;
  std::unique_ptr<cache::Manager> cache_;
  std::unique_ptr<CacheStore> store_;
  boost::asio::thread_pool pool_{4};
  std::unique_ptr<solver::Solver> solver_;
  std::atomic<int> execs_{0};
  Context ctx_;
};

TEST_F(SolveTest, EveryFileActionThroughTheSolver) {
  llb::State base = llb::Scratch().File(
      llb::Mkdir("/a/b", 0750, {.make_parents = true})
          .Mkfile("/a/b/f.txt", 0640, "hello", {.chown = llb::ParseChown("1000:1001")})
          .Mkfile("/a/gone.txt", 0644, "x")
          .Mkfile("/a/keep.log", 0644, "log")
          .Symlink("b/f.txt", "/a/link"));
  llb::State out = base.File(
      llb::Rm("/a/gone*", {.allow_wildcard = true})
          .Copy(base, "/a/b", "/copy", {.copy_dir_contents_only = true, .create_dest_path = true})
          .Copy(base, "/a/link", "/followed", {.follow_symlinks = true})
          .Copy(base, "/a/*.log", "/logs/", {.create_dest_path = true, .allow_wildcard = true})
          .Copy(base, "/a", "/filtered",
                {.create_dest_path = true, .exclude_patterns = {"*.log"}, .mode = 0600}));
  auto r = Solve(out);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(List(*r, "/"), ElementsAre("a", "copy", "filtered", "followed", "logs"));
  EXPECT_THAT(List(*r, "/a"), ElementsAre("b", "keep.log", "link"));
  EXPECT_EQ(Read(*r, "/copy/f.txt"), "hello");
  EXPECT_EQ(Read(*r, "/followed"), "hello");
  EXPECT_EQ(Read(*r, "/a/link"), "hello");  // ReadFile follows symlinks inside the tree
  EXPECT_EQ(Read(*r, "/logs/keep.log"), "log");
  // Copied from `base`, where gone.txt still exists; *.log is excluded.
  EXPECT_THAT(List(*r, "/filtered"), ElementsAre("b", "gone.txt", "link"));

  auto st = StatFileInRef(Tree(*r), "/a/b/f.txt");
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->path(), "f.txt");
  EXPECT_EQ(st->mode(), 0640u);
  EXPECT_EQ(st->uid(), 1000u);
  EXPECT_EQ(st->gid(), 1001u);
  EXPECT_EQ(st->size(), 5);
  auto dir = StatFileInRef(Tree(*r), "/a/b");
  ASSERT_THAT(dir, IsOk());
  EXPECT_EQ(dir->mode(), fsutil::kModeDir | 0750);
  auto filtered = StatFileInRef(Tree(*r), "/filtered/b/f.txt");
  ASSERT_THAT(filtered, IsOk());
  EXPECT_EQ(filtered->mode() & 0777, 0600u);
  EXPECT_THAT(List(*r, "/a", "*.log"), ElementsAre("keep.log"));
}

TEST_F(SolveTest, ReadFileRangesAndErrors) {
  auto r = Solve(llb::Scratch().File(llb::Mkfile("/f", 0644, "0123456789").Mkdir("/d", 0755)));
  ASSERT_THAT(r, IsOk());
  auto part = ReadFileInRef(Tree(*r), "/f", ByteRange{2, 3}, 1 << 20);
  ASSERT_THAT(part, IsOk());
  EXPECT_EQ(*part, "234");
  EXPECT_THAT(ReadFileInRef(Tree(*r), "/f", ByteRange{8, 100}, 1 << 20), IsOk());
  EXPECT_THAT(ReadFileInRef(Tree(*r), "/f", std::nullopt, 4),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("/f")));
  EXPECT_THAT(ReadFileInRef(Tree(*r), "/missing", std::nullopt, 100),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/missing")));
  EXPECT_THAT(ReadFileInRef(Tree(*r), "/d", std::nullopt, 100),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  // Scratch has no files at all.
  EXPECT_THAT(ReadFileInRef(nullptr, "/f", std::nullopt, 100),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(SolveTest, SymlinksNeverLeadOutOfTheTree) {
  // A host file the graph tries to reach.
  fs::path secret = root_ / "host-secret";
  std::ofstream(secret) << "host data";
  std::string up = "../../../../../../../../../..";
  llb::State evil = llb::Scratch().File(llb::Symlink(up + secret.string(), "/rel")
                                            .Symlink(secret.string(), "/abs")
                                            .Symlink(up + root_.string(), "/dirlink")
                                            .Mkfile("/payload", 0644, "payload"));
  auto r = Solve(evil);
  ASSERT_THAT(r, IsOk());
  // Reading through the links resolves inside the tree, where nothing is.
  EXPECT_THAT(ReadFileInRef(Tree(*r), "/rel", std::nullopt, 100),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(ReadFileInRef(Tree(*r), "/abs", std::nullopt, 100),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(ReadDirInRef(Tree(*r), "/dirlink", ""),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));

  // A copy whose source walks through the links finds nothing outside.
  auto src = Solve(llb::Scratch().File(llb::Copy(evil, "/dirlink/host-secret", "/stolen")));
  EXPECT_THAT(src, StatusIs(absl::StatusCode::kNotFound, HasSubstr("host-secret")));
  auto followed =
      Solve(llb::Scratch().File(llb::Copy(evil, "/abs", "/stolen", {.follow_symlinks = true})));
  EXPECT_FALSE(followed.ok());

  // A copy whose destination walks through a link lands inside the tree.
  auto dst =
      Solve(evil.File(llb::Copy(evil, "/payload", "/dirlink/planted", {.create_dest_path = true})));
  ASSERT_THAT(dst, IsOk());
  EXPECT_FALSE(fs::exists(root_ / "planted"));
  EXPECT_EQ(Read(*dst, "/dirlink/planted"), "payload");
  EXPECT_EQ(Read(*dst, up + root_.string() + "/planted"), "payload");
  // mkfile and mkdir through the links stay inside as well.
  auto mk = Solve(evil.File(llb::Mkdir("/dirlink/d", 0755, {.make_parents = true})
                                .Mkfile("/dirlink/f", 0644, "x")
                                .Mkfile("/abs", 0644, "overwritten")));
  ASSERT_THAT(mk, IsOk());
  EXPECT_FALSE(fs::exists(root_ / "f"));
  EXPECT_FALSE(fs::exists(root_ / "d"));
  std::ifstream in(secret);
  std::string host((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(host, "host data");
}

TEST_F(SolveTest, MergeAndDiff) {
  llb::State a = llb::Scratch().File(llb::Mkfile("/a", 0644, "A").Mkfile("/shared", 0644, "1"));
  llb::State b = llb::Scratch().File(llb::Mkfile("/b", 0644, "B").Mkfile("/shared", 0644, "2"));
  auto merged = Solve(llb::Merge({a, b}));
  ASSERT_THAT(merged, IsOk());
  EXPECT_THAT(List(*merged, "/"), ElementsAre("a", "b", "shared"));
  EXPECT_EQ(Read(*merged, "/shared"), "2");  // later inputs win

  llb::State upper = a.File(llb::Rm("/a").Mkfile("/new", 0644, "N"));
  auto diff = Solve(llb::Diff(a, upper));
  ASSERT_THAT(diff, IsOk());
  EXPECT_EQ(Read(*diff, "/new"), "N");
  EXPECT_THAT(Read(*diff, "/shared"), HasSubstr("does not exist"));
  // The diff applied onto a base that has /a deletes it there too.
  auto applied = Solve(llb::Merge({b.File(llb::Mkfile("/a", 0644, "A")), llb::Diff(a, upper)}));
  ASSERT_THAT(applied, IsOk());
  EXPECT_THAT(List(*applied, "/"), ElementsAre("b", "new", "shared"));
}

TEST_F(SolveTest, ReSolveIsCachedAndChangesInvalidate) {
  auto graph = [](const std::string& data) {
    llb::State s = llb::Scratch().File(llb::Mkfile("/in", 0644, data));
    return s.File(llb::Mkdir("/out", 0755).Copy(s, "/in", "/out/in"));
  };
  ASSERT_THAT(Solve(graph("one")), IsOk());
  EXPECT_EQ(execs_.load(), 2);
  ASSERT_THAT(Solve(graph("one")), IsOk());
  EXPECT_EQ(execs_.load(), 2);
  auto r = Solve(graph("two"));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(execs_.load(), 4);
  EXPECT_EQ(Read(*r, "/out/in"), "two");
}

TEST_F(SolveTest, ErrorsNameTheFailingVertex) {
  auto r = Solve(llb::Scratch().File(llb::Rm("/nope"), {.custom_name = "remove nope"}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("nope"));
}

}  // namespace
}  // namespace kiln::ops
