#include "persistence/journal_probe.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace chorus::persistence {

namespace {

using prometheus::Labels;

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

const prometheus::Histogram::BucketBoundaries latency_buckets{
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

}  // namespace

journal_probe::journal_probe(prometheus::Registry& registry, const std::string& database)
    : batches_(prometheus::BuildCounter()
                   .Name("chorus_journal_batches_total")
                   .Help("Group commits: transactions that appended one or more streams")
                   .Register(registry)
                   .Add({{"database", database}})),
      appends_(prometheus::BuildCounter()
                   .Name("chorus_journal_appends_total")
                   .Help("Appends acknowledged after commit")
                   .Register(registry)
                   .Add({{"database", database}})),
      conflicts_(prometheus::BuildCounter()
                     .Name("chorus_journal_conflicts_total")
                     .Help("Appends refused: the stream was not at the expected version")
                     .Register(registry)
                     .Add({{"database", database}})),
      failed_batches_(prometheus::BuildCounter()
                          .Name("chorus_journal_failures_total")
                          .Help("Journal operations that failed (storage down or erroring)")
                          .Register(registry)
                          .Add({{"database", database}, {"operation", "append"}})),
      failed_loads_(prometheus::BuildCounter()
                        .Name("chorus_journal_failures_total")
                        .Help("Journal operations that failed (storage down or erroring)")
                        .Register(registry)
                        .Add({{"database", database}, {"operation", "load"}})),
      failed_snapshots_(prometheus::BuildCounter()
                            .Name("chorus_journal_failures_total")
                            .Help("Journal operations that failed (storage down or erroring)")
                            .Register(registry)
                            .Add({{"database", database}, {"operation", "snapshot"}})),
      loads_(prometheus::BuildCounter()
                 .Name("chorus_journal_loads_total")
                 .Help("Streams restored (entity activations and reloads after a conflict)")
                 .Register(registry)
                 .Add({{"database", database}, {"from", "events"}})),
      loads_from_snapshot_(prometheus::BuildCounter()
                               .Name("chorus_journal_loads_total")
                               .Help("Streams restored (entity activations and reloads after a "
                                     "conflict)")
                               .Register(registry)
                               .Add({{"database", database}, {"from", "snapshot"}})),
      replayed_events_(prometheus::BuildCounter()
                           .Name("chorus_journal_replayed_events_total")
                           .Help("Events read to restore streams")
                           .Register(registry)
                           .Add({{"database", database}})),
      snapshots_(prometheus::BuildCounter()
                     .Name("chorus_journal_snapshots_total")
                     .Help("Snapshots stored")
                     .Register(registry)
                     .Add({{"database", database}})),
      batch_size_(
          prometheus::BuildHistogram()
              .Name("chorus_journal_batch_appends")
              .Help("Appends per group commit")
              .Register(registry)
              .Add({{"database", database}},
                   prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256})),
      commit_seconds_(prometheus::BuildHistogram()
                          .Name("chorus_journal_commit_seconds")
                          .Help("Time of one group commit, begin to commit")
                          .Register(registry)
                          .Add({{"database", database}}, latency_buckets)),
      append_seconds_(prometheus::BuildHistogram()
                          .Name("chorus_journal_append_seconds")
                          .Help("Time from an entity's append request to its acknowledgement")
                          .Register(registry)
                          .Add({{"database", database}}, latency_buckets)) {}

void journal_probe::batch(size_t appends, std::chrono::steady_clock::duration elapsed) {
  batches_.Increment();
  batch_size_.Observe(static_cast<double>(appends));
  commit_seconds_.Observe(seconds(elapsed));
}

void journal_probe::appended(std::chrono::steady_clock::duration waited) {
  appends_.Increment();
  append_seconds_.Observe(seconds(waited));
}

void journal_probe::conflict() {
  conflicts_.Increment();
}

void journal_probe::failed(const std::string& operation) {
  if (operation == "load")
    failed_loads_.Increment();
  else if (operation == "snapshot")
    failed_snapshots_.Increment();
  else
    failed_batches_.Increment();
}

void journal_probe::loaded(size_t events, bool from_snapshot) {
  (from_snapshot ? loads_from_snapshot_ : loads_).Increment();
  replayed_events_.Increment(static_cast<double>(events));
}

void journal_probe::snapshot_saved() {
  snapshots_.Increment();
}

}  // namespace chorus::persistence
