#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace chorus::persistence {

class redis_client;

/// Settings of one outbox relay. Built by the node's composition code.
struct outbox_relay_config {
  /// The database whose outbox is relayed.
  std::string dsn;
  /// The Redis stream written (`feed_stream_name(database)`).
  std::string stream;
  /// Events published per step at most (of as many outbox rows, one per appending transaction).
  size_t batch = 500;
  /// Wait between steps that found nothing to do (or while standby).
  std::chrono::milliseconds poll{100};
  /// Back-off after a failure doubles from `poll` up to this.
  std::chrono::milliseconds backoff_max{2000};
  /// XADD MAXLEN ~ this many entries; 0 keeps every entry.
  size_t maxlen_approx = 0;
};

/// Publishes the outbox of one database to a Redis stream: the events of the unpublished rows
/// (one per appending transaction) below the high-water mark in feed order (txid,
/// global_position), one XADD each, then marks the rows published in PostgreSQL. At least once: a
/// crash between XADD and the mark publishes again.
///
/// Leadership: only the relay holding the session advisory lock `relay_lock_key` on its own
/// connection publishes; the others stay standby and try again every step, so one takes over
/// when the leader's connection ends. Failures of PostgreSQL or Redis are values and back-off;
/// the outbox is the state, so a restarted relay resumes where the last one stopped.
///
/// Owned by the node (or a test). `start` runs `step` on its own thread until `stop` or
/// destruction; without `start`, a test may call `step` itself, from one thread.
class outbox_relay {
 public:
  outbox_relay(outbox_relay_config cfg, std::shared_ptr<redis_client> redis);
  ~outbox_relay();
  outbox_relay(const outbox_relay&) = delete;
  outbox_relay& operator=(const outbox_relay&) = delete;

  /// One round: take the lock if free, publish and mark one batch. Returns how many events
  /// were published (0 while standby or when there is nothing below the high-water mark).
  caf::expected<size_t> step();

  void start();
  void stop();

  /// Whether this relay held the lock at its last step.
  [[nodiscard]] bool leader() const noexcept { return leader_.load(); }
  /// Events published since construction (duplicates after a crash included).
  [[nodiscard]] uint64_t published() const noexcept { return published_.load(); }

  /// Test hook: the next step that publishes anything returns before marking it, as if the
  /// process had died between XADD and UPDATE.
  void crash_after_publish_once() { crash_after_publish_ = true; }

  /// The advisory lock key of relay leadership (per database).
  static constexpr long long relay_lock_key = 0x63686f72757352;  // "chorusR"

 private:
  void run();

  struct connection;  // pqxx behind a pimpl
  outbox_relay_config cfg_;
  std::shared_ptr<redis_client> redis_;
  std::unique_ptr<connection> conn_;
  std::atomic<bool> leader_{false};
  std::atomic<uint64_t> published_{0};
  std::atomic<bool> crash_after_publish_{false};
  bool migrated_ = false;

  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace chorus::persistence
