#pragma once
// FlightGroup<T>: runs identical work once. The first caller for a key starts the flight;
// later callers for the same key, while it is in flight, share its outcome. The flight runs
// under its own Context, cancelled only when every waiter has been cancelled, so one client
// going away does not fail another's build. Thread-safe.

#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>

#include "base/context.h"
#include "daemon/solver/future.h"

namespace kiln::solver {

template <typename T>
class FlightGroup {
 public:
  using Start = std::function<Future<T>(const Context& flight_ctx)>;

  // `started` is set to true for the caller that started the flight.
  Future<T> Do(const Context& ctx, const std::string& key, const Start& start,
               bool* started = nullptr) {
    std::shared_ptr<Flight> flight;
    bool is_new = false;
    {
      std::lock_guard lock(mu_);
      auto it = flights_.find(key);
      if (it == flights_.end()) {
        flight = std::make_shared<Flight>();
        flights_[key] = flight;
        is_new = true;
      } else {
        flight = it->second;
      }
      std::lock_guard flock(flight->mu);
      ++flight->waiters;
    }
    if (started) *started = is_new;

    // The waiter's view: the flight's outcome, or its own cancellation, whichever is first.
    Future<T> mine;
    auto waiter = std::make_shared<Waiter>();
    waiter->on_stop.emplace(ctx.stop_token(), [flight, mine] {
      // Resolving may destroy this callback (and its captures): work on copies.
      auto f = flight;
      auto m = mine;
      bool last = false;
      {
        std::lock_guard lock(f->mu);
        last = --f->waiters == 0;
      }
      if (last) f->ctx.Cancel();
      m.Resolve(absl::CancelledError("build cancelled"));
    });
    if (is_new) {
      Future<T> outcome = start(flight->ctx);
      outcome.Then([this, key, flight](const absl::StatusOr<T>& v) {
        {
          std::lock_guard lock(mu_);
          auto it = flights_.find(key);
          if (it != flights_.end() && it->second == flight) flights_.erase(it);
        }
        flight->result.Resolve(v);
      });
    }
    flight->result.Then([mine, waiter](const absl::StatusOr<T>& v) { mine.Resolve(v); });
    // Keep the stop callback registered until our future resolves.
    mine.Then([waiter](const absl::StatusOr<T>&) {});
    return mine;
  }

  size_t in_flight() const {
    std::lock_guard lock(mu_);
    return flights_.size();
  }

 private:
  struct Flight {
    std::mutex mu;
    int waiters = 0;  // guarded by mu
    Context ctx;
    Future<T> result;
  };
  struct Waiter {
    std::optional<std::stop_callback<std::function<void()>>> on_stop;
  };

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Flight>> flights_;  // guarded by mu_
};

}  // namespace kiln::solver
