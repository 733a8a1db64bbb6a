#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include <caf/actor_control_block.hpp>
#include <caf/duration.hpp>
#include <caf/error.hpp>
#include <caf/message_id.hpp>

namespace chorus {

/// Deadlines of requests, kept without CAF's actor clock. CAF 0.17.6 never cancels a request's
/// timeout: every request with a finite timeout wakes the clock thread, holds an entry (and a
/// reference to the caller) for the whole timeout even when the answer came in microseconds, and
/// ships a stale timeout message to the caller at its end. Measured here, that clock work is
/// more than half the cost of a local request/response (bench/README.md, runtime). The wheel
/// keeps each deadline in a slot of `tick` width that one thread sweeps each tick; an answered
/// request removes its entry. A request that reaches its deadline gets `sec::request_timeout`
/// as its response, as with CAF's own timeout, up to one tick late.
///
/// Thread-safe. Must outlive the actor system whose actors arm it (declare it before the
/// system): it holds only weak references to callers, and its destructor stops the sweeper.
class deadline_wheel {
 public:
  explicit deadline_wheel(std::chrono::milliseconds tick = std::chrono::milliseconds{10});
  ~deadline_wheel();
  deadline_wheel(const deadline_wheel&) = delete;
  deadline_wheel& operator=(const deadline_wheel&) = delete;

  /// After `timeout`, unless disarmed first, `caller` receives sec::request_timeout as the
  /// response with id `response_id`. Returns the ticket to disarm it with.
  uint64_t arm(caf::actor_control_block* caller, caf::message_id response_id,
               std::chrono::milliseconds timeout) {
    return arm(caller, response_id, timeout, std::chrono::steady_clock::now());
  }

  /// The same for a request sent at `sent`: a deadline already past when it is armed (the
  /// arming thread stalled) fires at once rather than waiting for its slot's next turn.
  uint64_t arm(caf::actor_control_block* caller, caf::message_id response_id,
               std::chrono::milliseconds timeout, std::chrono::steady_clock::time_point sent);

  /// The request was answered (or failed): forget its deadline. A ticket that already fired is
  /// ignored.
  void disarm(uint64_t ticket);

  /// Deadlines armed and neither disarmed nor fired (for tests and metrics).
  [[nodiscard]] size_t pending() const;

 private:
  struct entry {
    int64_t due_tick;
    caf::weak_actor_ptr caller;
    caf::message_id response_id;
  };
  // A slot holds the deadlines that fall due in the ticks congruent to its index; one later
  // than a full turn stays until its own turn comes.
  struct slot {
    mutable std::mutex mutex;
    std::unordered_map<uint64_t, entry> entries;
    /// The last tick whose sweep visited this slot: a deadline due at or before it, armed after
    /// that visit (its thread stalled between reading the clock and locking), is already late.
    int64_t swept_tick = 0;
  };
  static constexpr size_t slot_count = 1024;  // a power of two: tickets carry the index

  [[nodiscard]] int64_t tick_now() const;
  void sweep_until(int64_t tick);
  void run();

  const int64_t tick_ns_;
  const std::chrono::steady_clock::time_point epoch_;
  std::atomic<uint64_t> next_id_{0};
  std::array<slot, slot_count> slots_;
  int64_t swept_ = 0;  // the sweeper's: the last tick it swept
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread sweeper_;
};

/// A request sent with no CAF timeout whose deadline a deadline_wheel keeps: `then` disarms
/// the deadline when the answer (or an error, the deadline's included) arrives.
template <class Out, class Handle>
struct timed_request {
  Handle handle;
  deadline_wheel* wheel;
  uint64_t ticket;

  /// `ok` takes `Out&`, `err` takes `caf::error&`.
  template <class OnOk, class OnErr>
  void then(OnOk ok, OnErr err) {
    handle.then(disarming(std::move(ok)), disarming_error(std::move(err)));
  }

  /// Like `then`, but the caller handles nothing else until the answer (CAF's `await`).
  template <class OnOk, class OnErr>
  void await(OnOk ok, OnErr err) {
    handle.await(disarming(std::move(ok)), disarming_error(std::move(err)));
  }

 private:
  template <class OnOk>
  auto disarming(OnOk ok) {
    return [w = wheel, t = ticket, ok = std::move(ok)](Out& out) mutable {
      w->disarm(t);
      ok(out);
    };
  }

  template <class OnErr>
  auto disarming_error(OnErr err) {
    return [w = wheel, t = ticket, err = std::move(err)](caf::error& e) mutable {
      w->disarm(t);
      err(e);
    };
  }
};

/// `self->request(dest, timeout, xs...)` with the deadline kept by `wheel` (see
/// deadline_wheel). `Out` is the answer's type. Use as
/// `request_within<std::string>(self, wheel, dest, timeout, xs...).then(ok, err)`.
template <class Out, class Self, class Handle, class... Ts>
auto request_within(Self* self, deadline_wheel& wheel, const Handle& dest,
                    std::chrono::milliseconds timeout, Ts&&... xs) {
  auto handle = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
  auto ticket = wheel.arm(self->ctrl(), handle.id(), timeout);
  return timed_request<Out, decltype(handle)>{std::move(handle), &wheel, ticket};
}

}  // namespace chorus
