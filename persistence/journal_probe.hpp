#pragma once

#include <chrono>
#include <string>

namespace prometheus {
class Registry;
class Counter;
class Histogram;
}  // namespace prometheus

namespace chorus::persistence {

/// Metrics of one journal actor (label `database`: the DSN's database name). Owned by main() or
/// a test, outliving the actor; called from the journal actor's thread and its workers.
class journal_probe {
 public:
  journal_probe(prometheus::Registry& registry, const std::string& database);

  /// One group commit of `appends` appends that took `elapsed` (begin to commit).
  void batch(size_t appends, std::chrono::steady_clock::duration elapsed);
  /// One append answered `waited` after the entity asked: queueing plus commit.
  void appended(std::chrono::steady_clock::duration waited);
  /// An append refused because its expected version was not the stream's.
  void conflict();
  /// A batch, load or snapshot that failed with an error (PostgreSQL down, ...).
  void failed(const std::string& operation);
  /// A stream restored, with how many events were replayed after the snapshot.
  void loaded(size_t events, bool from_snapshot);
  void snapshot_saved();

 private:
  prometheus::Counter& batches_;
  prometheus::Counter& appends_;
  prometheus::Counter& conflicts_;
  prometheus::Counter& failed_batches_;
  prometheus::Counter& failed_loads_;
  prometheus::Counter& failed_snapshots_;
  prometheus::Counter& loads_;
  prometheus::Counter& loads_from_snapshot_;
  prometheus::Counter& replayed_events_;
  prometheus::Counter& snapshots_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& commit_seconds_;
  prometheus::Histogram& append_seconds_;
};

}  // namespace chorus::persistence
