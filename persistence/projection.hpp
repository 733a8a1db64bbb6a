#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "messages/journal_types.hpp"
#include "persistence/event_feed.hpp"

namespace chorus::persistence {

class redis_client;

/// Rows of a statement's answer, every value as text (NULL as "").
using sql_rows = std::vector<std::vector<std::string>>;

/// The PostgreSQL transaction a projection's handler runs in: the one that also moves the
/// projection's checkpoint. Lives only for the call it is passed to; not thread-safe.
class sql_tx {
 public:
  virtual ~sql_tx() = default;
  /// Runs `sql` with `$1..$n` bound to `params` (text, cast in SQL where needed). A failure
  /// is an error value and dooms the transaction: return it from the handler.
  virtual caf::expected<sql_rows> exec(const std::string& sql,
                                       const std::vector<std::string>& params = {}) = 0;
};

/// A projection's statement outcome as its handler returns it: no error once it ran.
inline caf::error sql_done(const caf::expected<sql_rows>& r) {
  return r ? caf::error{} : r.error();
}

/// Parses `e` into `ev` when it is an `Event` (a protobuf message type).
template <class Event>
bool event_as(const stored_event& e, Event& ev) {
  return e.type == Event::descriptor()->full_name() && ev.ParseFromString(e.payload);
}

/// What a projection is: a name (its checkpoint row and Redis consumer group), its read model's
/// schema, how to empty it (for a rebuild) and how to apply one event.
struct projection {
  std::string name;
  /// Idempotent statements run once at start (CREATE TABLE IF NOT EXISTS ...).
  std::vector<std::string> schema;
  /// Empties the read model; runs in the transaction that resets the checkpoint to 0.
  std::function<caf::error(sql_tx&)> reset;
  /// Applies one event (it ignores the types it does not project). Runs in the transaction
  /// that moves the checkpoint past the event, so an event is applied exactly once.
  std::function<caf::error(const stored_event&, sql_tx&)> apply;
  /// Optional: called for each applied event once its transaction committed (never for an
  /// event whose transaction rolled back), e.g. to invalidate a cache of the read model. Runs on
  /// the projector's thread; must not block for long.
  std::function<void(const stored_event&)> committed = {};
};

/// Settings of a projector. Built by the node's composition code.
struct projector_config {
  std::string dsn;
  /// The Redis stream the relay writes (`feed_stream_name(database)`).
  std::string stream;
  /// This process's consumer name in the projection's group (e.g. the node's name).
  std::string consumer;
  /// Events per transaction.
  size_t batch = 500;
  /// XREADGROUP BLOCK time, and the wait between table catch-ups while Redis is down.
  std::chrono::milliseconds poll{100};
  std::chrono::milliseconds backoff_max{2000};
};

/// Keeps one projection's read model up to date. Reads the Redis stream through the consumer
/// group named after the projection (XREADGROUP, XACK after COMMIT), applies each event past the
/// checkpoint and moves the checkpoint in the same transaction (a redelivered or duplicated
/// entry is skipped), and checks in that transaction that the stream held every event of the
/// journal in the range it covers: when not (Redis lost entries, another consumer of the group
/// took some), it applies the range from the events table instead. With Redis down it catches up
/// from the table, below the high-water mark.
///
/// Several projectors of one projection (one per node) may run: they share the group and
/// serialize on the checkpoint row (SELECT ... FOR UPDATE). Owned by the node (or a test);
/// `start` runs it on its own thread, otherwise a test calls the steps itself from one thread.
class projector {
 public:
  projector(projector_config cfg, projection p, std::shared_ptr<redis_client> redis);
  ~projector();
  projector(const projector&) = delete;
  projector& operator=(const projector&) = delete;

  /// Applies the events past the checkpoint from the events table, below the high-water mark,
  /// until there are none. Returns how many it applied.
  caf::expected<size_t> catch_up();
  /// One XREADGROUP (pending entries first after a start, then new ones), applied and acked.
  /// Returns how many events it applied.
  caf::expected<size_t> consume(std::chrono::milliseconds block);
  /// Empties the read model and sets the checkpoint to 0 in one transaction, then catches up
  /// from the table.
  caf::expected<size_t> rebuild();
  /// The checkpoint as committed.
  caf::expected<feed_position> checkpoint();

  void start();
  void stop();

  /// Events applied since construction.
  [[nodiscard]] uint64_t applied() const noexcept { return applied_.load(); }

 private:
  struct connection;
  caf::error prepare();
  caf::expected<size_t> apply_from_table(feed_position upper);
  void run();

  projector_config cfg_;
  projection projection_;
  std::shared_ptr<redis_client> redis_;
  std::unique_ptr<connection> conn_;
  bool prepared_ = false;
  bool group_ready_ = false;
  bool pending_done_ = false;  // this consumer's unacked entries were re-read after start
  std::atomic<uint64_t> applied_{0};

  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace chorus::persistence
