#include "actors/deadline_wheel.hpp"

#include <vector>

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace chorus {

deadline_wheel::deadline_wheel(std::chrono::milliseconds tick)
    : tick_ns_(std::max<int64_t>(1, std::chrono::nanoseconds{tick}.count())),
      epoch_(std::chrono::steady_clock::now()) {
  swept_ = tick_now();
  // Nothing due up to now can wait for a sweep: those ticks are never swept again this turn.
  for (auto& s : slots_) s.swept_tick = swept_;
  sweeper_ = std::thread{[this] { run(); }};
}

deadline_wheel::~deadline_wheel() {
  {
    std::lock_guard guard{stop_mutex_};
    stopping_ = true;
  }
  stop_cv_.notify_one();
  sweeper_.join();
}

int64_t deadline_wheel::tick_now() const {
  return (std::chrono::steady_clock::now() - epoch_).count() / tick_ns_;
}

uint64_t deadline_wheel::arm(caf::actor_control_block* caller, caf::message_id response_id,
                             std::chrono::milliseconds timeout,
                             std::chrono::steady_clock::time_point sent) {
  // Due at the first tick that starts at or after the deadline: never early. (A deadline before
  // the wheel's epoch is negative: already swept, so it fires below.)
  auto at =
      std::chrono::nanoseconds{sent - epoch_}.count() + std::chrono::nanoseconds{timeout}.count();
  auto due = at >= 0 ? (at + tick_ns_ - 1) / tick_ns_ : -1;
  auto index = static_cast<size_t>(due) & (slot_count - 1);
  auto ticket = (next_id_.fetch_add(1, std::memory_order_relaxed) << 10) | index;
  auto& s = slots_[index];
  {
    std::lock_guard guard{s.mutex};
    if (due > s.swept_tick) {
      s.entries.emplace(ticket, entry{due, caf::weak_actor_ptr{caller}, response_id});
      return ticket;
    }
  }
  // The sweep of its tick has passed (a zero timeout, or this thread stalled): stored, it would
  // wait a whole turn. Due now: the caller is running (it is arming), so the timeout waits in
  // its mailbox behind the handler that sets up the response.
  caller->enqueue(nullptr, response_id,
                  caf::make_message(caf::make_error(caf::sec::request_timeout)), nullptr);
  return ticket;
}

void deadline_wheel::disarm(uint64_t ticket) {
  auto& s = slots_[ticket & (slot_count - 1)];
  std::lock_guard guard{s.mutex};
  s.entries.erase(ticket);
}

size_t deadline_wheel::pending() const {
  size_t n = 0;
  for (const auto& s : slots_) {
    std::lock_guard guard{s.mutex};
    n += s.entries.size();
  }
  return n;
}

void deadline_wheel::sweep_until(int64_t tick) {
  std::vector<entry> due;
  // A sweeper that fell behind (a stopped process, a loaded machine) catches up slot by slot,
  // at most one full turn: that visits every slot once.
  auto from = std::max(swept_ + 1, tick - static_cast<int64_t>(slot_count) + 1);
  for (auto t = from; t <= tick; ++t) {
    auto& s = slots_[static_cast<size_t>(t) & (slot_count - 1)];
    std::lock_guard guard{s.mutex};
    s.swept_tick = t;
    for (auto i = s.entries.begin(); i != s.entries.end();) {
      if (i->second.due_tick <= tick) {
        due.push_back(std::move(i->second));
        i = s.entries.erase(i);
      } else {
        ++i;
      }
    }
  }
  swept_ = tick;
  // Outside the locks: enqueueing may run the caller's code on this thread.
  for (auto& e : due)
    if (auto caller = e.caller.lock())
      caller->enqueue(nullptr, e.response_id,
                      caf::make_message(caf::make_error(caf::sec::request_timeout)), nullptr);
}

void deadline_wheel::run() {
  std::unique_lock lock{stop_mutex_};
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::nanoseconds{tick_ns_});
    if (stopping_) break;
    lock.unlock();
    sweep_until(tick_now());
    lock.lock();
  }
}

}  // namespace chorus
