// The generic solver with toy ops (constants and sums), as BuildKit's scheduler tests do.

#include "daemon/solver/solver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "boost/asio/post.hpp"
#include "boost/asio/thread_pool.hpp"
#include "tests/testutil/status_matchers.h"

namespace kiln::solver {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class IntResult final : public Result {
 public:
  explicit IntResult(int v) : v_(v) {}
  std::string id() const override { return std::to_string(v_); }
  int value() const { return v_; }

 private:
  int v_;
};

int ValueOf(const ResultPtr& r) { return static_cast<const IntResult&>(*r).value(); }

class MemoryCache final : public CacheStore {
 public:
  absl::StatusOr<std::vector<ResultPtr>> Load(const Context&, const std::string& key) override {
    std::lock_guard lock(mu_);
    auto it = records_.find(key);
    if (it == records_.end()) return std::vector<ResultPtr>{};
    return it->second;
  }
  absl::Status Save(const std::string& key, const std::vector<ResultPtr>& r) override {
    std::lock_guard lock(mu_);
    records_[key] = r;
    return absl::OkStatus();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<ResultPtr>> records_;
};

// Counts executions per op name across every job.
struct Counters {
  std::mutex mu;
  std::map<std::string, int> runs;
  int Get(const std::string& n) {
    std::lock_guard lock(mu);
    return runs[n];
  }
  void Inc(const std::string& n) {
    std::lock_guard lock(mu);
    runs[n]++;
  }
};

// Sums its inputs plus `add`; optionally reads input 0 "by content" (its value mod 10).
class ToyOp final : public Op {
 public:
  ToyOp(std::string name, int add, Counters& c, std::chrono::milliseconds delay = 0ms,
        bool content_dep = false, bool fail = false)
      : name_(std::move(name)),
        add_(add),
        c_(c),
        delay_(delay),
        content_dep_(content_dep),
        fail_(fail) {}
  absl::StatusOr<CacheMap> GetCacheMap(const Context&) override {
    CacheMap cm{.digest = name_ + ":" + std::to_string(add_)};
    if (content_dep_) {
      cm.deps.push_back(CacheDep{.content_digest = [](const Context&, const ResultPtr& r) {
        return absl::StatusOr<std::string>("mod10=" + std::to_string(ValueOf(r) % 10));
      }});
    }
    return cm;
  }
  absl::StatusOr<std::vector<ResultPtr>> Exec(const Context& ctx,
                                              const std::vector<ResultPtr>& in) override {
    c_.Inc(name_);
    auto until = std::chrono::steady_clock::now() + delay_;
    while (std::chrono::steady_clock::now() < until) {
      if (ctx.Cancelled()) return absl::CancelledError("toy op cancelled");
      std::this_thread::sleep_for(5ms);
    }
    if (fail_) return absl::InternalError("toy op failed on purpose");
    int sum = add_;
    for (const auto& r : in) sum += ValueOf(r);
    return std::vector<ResultPtr>{std::make_shared<IntResult>(sum)};
  }

 private:
  std::string name_;
  int add_;
  Counters& c_;
  std::chrono::milliseconds delay_;
  bool content_dep_, fail_;
};

class RecordingProgress final : public ProgressSink {
 public:
  void Started(const Vertex& v) override {
    std::lock_guard lock(mu_);
    started_.push_back(v.name);
  }
  void Completed(const Vertex& v, bool cached, const absl::Status& err) override {
    std::lock_guard lock(mu_);
    (cached ? cached_ : completed_).push_back(v.name);
  }
  std::vector<std::string> started_, completed_, cached_;

 private:
  std::mutex mu_;
};

std::shared_ptr<Vertex> V(const std::string& name, std::shared_ptr<Op> op,
                          std::vector<std::shared_ptr<Vertex>> inputs = {}) {
  auto v = std::make_shared<Vertex>();
  v->digest = "digest-" + name;
  v->name = name;
  v->op = std::move(op);
  for (auto& in : inputs) v->inputs.push_back(Edge{in, 0});
  return v;
}

class SolverTest : public ::testing::Test {
 protected:
  Solver solver_{
      {.post = [this](std::function<void()> fn) { boost::asio::post(pool_, std::move(fn)); },
       .cache = &cache_}};
  boost::asio::thread_pool pool_{4};
  MemoryCache cache_;
  Counters c_;

  // a=1, b=2, c=a+b+10, d=c+100
  std::shared_ptr<Vertex> Diamond(int a_value = 1, std::chrono::milliseconds delay = 0ms) {
    auto a = V("a", std::make_shared<ToyOp>("a", a_value, c_, delay));
    auto b = V("b", std::make_shared<ToyOp>("b", 2, c_, delay));
    auto c = V("c", std::make_shared<ToyOp>("c", 10, c_, delay), {a, b});
    return V("d", std::make_shared<ToyOp>("d", 100, c_, delay), {c});
  }
};

TEST_F(SolverTest, SolvesAGraph) {
  auto r = solver_.Solve(Context(), Edge{Diamond()}, nullptr);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(ValueOf(*r), 113);
  EXPECT_EQ(c_.Get("a") + c_.Get("b") + c_.Get("c") + c_.Get("d"), 4);
}

TEST_F(SolverTest, SecondSolveIsCachedAndRunsNothing) {
  ASSERT_THAT(solver_.Solve(Context(), Edge{Diamond()}, nullptr), IsOk());
  RecordingProgress p;
  auto r = solver_.Solve(Context(), Edge{Diamond()}, &p);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(ValueOf(*r), 113);
  EXPECT_EQ(c_.Get("d"), 1);
  EXPECT_EQ(c_.Get("a"), 1);
  EXPECT_TRUE(p.started_.empty());
  EXPECT_THAT(p.cached_, ::testing::UnorderedElementsAre("a", "b", "c", "d"));
}

TEST_F(SolverTest, ChangedLeafRerunsOnlyItsDependents) {
  ASSERT_THAT(solver_.Solve(Context(), Edge{Diamond(1)}, nullptr), IsOk());
  auto r = solver_.Solve(Context(), Edge{Diamond(5)}, nullptr);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(ValueOf(*r), 117);
  EXPECT_EQ(c_.Get("a"), 2);
  EXPECT_EQ(c_.Get("b"), 1);
  EXPECT_EQ(c_.Get("c"), 2);
  EXPECT_EQ(c_.Get("d"), 2);
}

TEST_F(SolverTest, ContentDepsKeepDependentsCachedWhenContentIsUnchanged) {
  auto graph = [&](int leaf) {
    auto a = V("a", std::make_shared<ToyOp>("a", leaf, c_));
    return V("copy", std::make_shared<ToyOp>("copy", 0, c_, 0ms, /*content_dep=*/true), {a});
  };
  ASSERT_THAT(solver_.Solve(Context(), Edge{graph(3)}, nullptr), IsOk());
  auto r = solver_.Solve(Context(), Edge{graph(13)}, nullptr);  // same value mod 10
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(c_.Get("a"), 2);     // the changed input runs to compute its content
  EXPECT_EQ(c_.Get("copy"), 1);  // the dependent stays cached
  EXPECT_EQ(ValueOf(*r), 3);     // ...with the result recorded for that content
  ASSERT_THAT(solver_.Solve(Context(), Edge{graph(4)}, nullptr), IsOk());
  EXPECT_EQ(c_.Get("copy"), 2);
}

TEST_F(SolverTest, RecorderLearnsKeysInputsAndResults) {
  auto recorder = std::make_shared<KeyRecorder>();
  KeyRecorder& rec = *recorder;
  auto d = Diamond();
  auto r = solver_.Solve(Context(), Edge{d}, nullptr, {.recorder = recorder});
  ASSERT_THAT(r, IsOk());
  auto records = rec.Records();
  ASSERT_EQ(records.size(), 4u);
  auto final_key = rec.KeyOfResult(*r);
  ASSERT_TRUE(final_key.has_value());
  const KeyRecorder::Record& top = records.at(final_key->first);
  EXPECT_EQ(top.op_digest, "d:100");
  ASSERT_EQ(top.inputs.size(), 1u);
  const KeyRecorder::Record& c = records.at(top.inputs[0].key);
  EXPECT_EQ(c.op_digest, "c:10");
  ASSERT_EQ(c.results.size(), 1u);
  EXPECT_EQ(ValueOf(c.results[0]), 13);
  // Keys recompose from their parts: what cache import relies on.
  for (const auto& [key, record] : records) {
    EXPECT_EQ(ComposeCacheKey(record.op_digest, record.inputs), key);
  }
}

TEST_F(SolverTest, FallbackCacheServesMissesAsHits) {
  // Solve once into a separate cache, then use it as the fallback of an empty one.
  auto other_ptr = std::make_shared<MemoryCache>();
  MemoryCache& other = *other_ptr;
  Solver first(
      {.post = [this](std::function<void()> fn) { boost::asio::post(pool_, std::move(fn)); },
       .cache = &other});
  ASSERT_THAT(first.Solve(Context(), Edge{Diamond()}, nullptr), IsOk());
  EXPECT_EQ(c_.Get("d"), 1);
  RecordingProgress p;
  auto r = solver_.Solve(Context(), Edge{Diamond()}, &p, {.fallback = other_ptr});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(ValueOf(*r), 113);
  EXPECT_EQ(c_.Get("d"), 1);  // nothing ran again
  EXPECT_THAT(p.cached_, ::testing::Contains("d"));
  // Only what the target needed was asked for: the final vertex.
  EXPECT_EQ(c_.Get("a"), 1);
}

TEST_F(SolverTest, ConcurrentIdenticalSolvesRunEachVertexOnce) {
  constexpr int kSolves = 20;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kSolves; ++i) {
    threads.emplace_back([&] {
      auto r = solver_.Solve(Context(), Edge{Diamond(1, 100ms)}, nullptr);
      if (r.ok() && ValueOf(*r) == 113) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kSolves);
  for (const char* n : {"a", "b", "c", "d"}) EXPECT_EQ(c_.Get(n), 1) << n;
  EXPECT_EQ(solver_.executions_in_flight(), 0u);
}

TEST_F(SolverTest, ErrorsNameTheFailingVertexAndStopDependents) {
  auto a = V("a", std::make_shared<ToyOp>("a", 1, c_));
  auto bad = V("bad step", std::make_shared<ToyOp>("bad", 1, c_, 0ms, false, /*fail=*/true), {a});
  auto d = V("d", std::make_shared<ToyOp>("d", 1, c_), {bad});
  RecordingProgress p;
  auto r = solver_.Solve(Context(), Edge{d}, &p);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInternal,
                          ::testing::AllOf(HasSubstr("[bad step]"), HasSubstr("on purpose"))));
  EXPECT_EQ(r.status().GetPayload(kVertexPayload), absl::Cord("digest-bad step"));
  EXPECT_EQ(c_.Get("d"), 0);
  // A failed vertex is not cached: the next solve runs it again.
  auto again = solver_.Solve(Context(), Edge{d}, nullptr);
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(c_.Get("bad"), 2);
}

TEST_F(SolverTest, CancellationStopsARunningSolve) {
  Context ctx;
  auto slow = V("slow", std::make_shared<ToyOp>("slow", 1, c_, 5000ms));
  std::thread canceller([&] {
    std::this_thread::sleep_for(100ms);
    ctx.Cancel();
  });
  auto start = std::chrono::steady_clock::now();
  auto r = solver_.Solve(ctx, Edge{slow}, nullptr);
  canceller.join();
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  // Nothing was recorded for the cancelled vertex.
  Context fresh;
  EXPECT_EQ(c_.Get("slow"), 1);
}

TEST_F(SolverTest, OneCancelledWaiterDoesNotFailTheOther) {
  Context ctx1, ctx2;
  absl::StatusOr<ResultPtr> r1, r2;
  std::thread t1([&] {
    r1 = solver_.Solve(ctx1, Edge{V("s", std::make_shared<ToyOp>("s", 7, c_, 300ms))}, nullptr);
  });
  std::this_thread::sleep_for(50ms);
  std::thread t2([&] {
    r2 = solver_.Solve(ctx2, Edge{V("s", std::make_shared<ToyOp>("s", 7, c_, 300ms))}, nullptr);
  });
  std::this_thread::sleep_for(50ms);
  ctx1.Cancel();
  t1.join();
  t2.join();
  EXPECT_THAT(r1, StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  ASSERT_THAT(r2, IsOk());
  EXPECT_EQ(ValueOf(*r2), 7);
  EXPECT_EQ(c_.Get("s"), 1);
}

TEST_F(SolverTest, CacheKeysAreStableAndDependOnInputs) {
  auto k1 = solver_.CacheKey(Context(), Edge{Diamond(1)});
  auto k2 = solver_.CacheKey(Context(), Edge{Diamond(1)});
  auto k3 = solver_.CacheKey(Context(), Edge{Diamond(2)});
  ASSERT_THAT(k1, IsOk());
  EXPECT_EQ(*k1, *k2);
  EXPECT_NE(*k1, *k3);
  EXPECT_EQ(c_.Get("a"), 0);  // keying runs nothing
}

}  // namespace
}  // namespace kiln::solver
