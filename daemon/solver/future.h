#pragma once
// Future<T>: a one-shot value (or error) with callbacks, for the solver's non-blocking
// scheduling: nothing ever waits on a pool thread; work continues in callbacks. Callbacks run
// on the thread that resolves the future (or at once if already resolved), so they must be
// short and post real work elsewhere. Thread-safe; copies share one state.

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::solver {

template <typename T>
class Future {
 public:
  using Value = absl::StatusOr<T>;
  using Callback = std::function<void(const Value&)>;

  Future() : state_(std::make_shared<State>()) {}

  static Future Ready(Value v) {
    Future f;
    f.Resolve(std::move(v));
    return f;
  }

  // Resolves once; later calls are ignored (the first outcome wins).
  void Resolve(Value v) const {
    std::vector<Callback> callbacks;
    {
      std::lock_guard lock(state_->mu);
      if (state_->value) return;
      state_->value = std::move(v);
      callbacks.swap(state_->callbacks);
      state_->cv.notify_all();
    }
    for (auto& cb : callbacks) cb(*state_->value);
  }

  void Then(Callback cb) const {
    {
      std::lock_guard lock(state_->mu);
      if (!state_->value) {
        state_->callbacks.push_back(std::move(cb));
        return;
      }
    }
    cb(*state_->value);
  }

  bool ready() const {
    std::lock_guard lock(state_->mu);
    return state_->value.has_value();
  }

  // Blocks until resolved. Only for threads outside the solver's pool.
  Value Wait() const {
    std::unique_lock lock(state_->mu);
    state_->cv.wait(lock, [&] { return state_->value.has_value(); });
    return *state_->value;
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Value> value;
    std::vector<Callback> callbacks;
  };
  std::shared_ptr<State> state_;
};

// Resolves with every value in order once all are OK, or with the first error.
template <typename T>
Future<std::vector<T>> WhenAll(const std::vector<Future<T>>& futures) {
  Future<std::vector<T>> out;
  if (futures.empty()) {
    out.Resolve(std::vector<T>{});
    return out;
  }
  struct Gather {
    std::mutex mu;
    std::vector<std::optional<T>> values;
    size_t remaining;
  };
  auto g = std::make_shared<Gather>();
  g->values.resize(futures.size());
  g->remaining = futures.size();
  for (size_t i = 0; i < futures.size(); ++i) {
    futures[i].Then([g, i, out](const absl::StatusOr<T>& v) {
      if (!v.ok()) {
        out.Resolve(v.status());
        return;
      }
      bool last = false;
      {
        std::lock_guard lock(g->mu);
        g->values[i] = *v;
        last = --g->remaining == 0;
      }
      if (last) {
        std::vector<T> all;
        all.reserve(g->values.size());
        for (auto& x : g->values) all.push_back(std::move(*x));
        out.Resolve(std::move(all));
      }
    });
  }
  return out;
}

}  // namespace kiln::solver
