#pragma once

#include <chrono>
#include <string>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace chorus {

/// Metrics of a node's entity registry. Owned by main(); updated from the registry actor.
class entity_probe {
 public:
  explicit entity_probe(prometheus::Registry& registry);

  /// Prepares the per-kind series of `kind`. Call for every kind before the actor system
  /// runs: answered() is then safe from any thread.
  void add_kind(const std::string& kind);

  void activated(const std::string& kind);
  /// `reason`: "idle" (idle timeout) or "evicted" (cap on active entities).
  void passivated(const std::string& kind, const std::string& reason);
  void failed(const std::string& kind);
  /// An activation stopped because its stream cannot be read (persistence::errc::corrupt_stream).
  void corrupt(const std::string& kind);
  void parked(const std::string& kind);
  void overloaded(const std::string& kind);
  /// One request answered `waited` after the registry sent it: mailbox queueing plus handling.
  void answered(const std::string& kind, std::chrono::steady_clock::duration waited);

 private:
  prometheus::Family<prometheus::Gauge>& active_;
  prometheus::Family<prometheus::Counter>& activations_;
  prometheus::Family<prometheus::Counter>& passivations_;
  prometheus::Family<prometheus::Counter>& failures_;
  prometheus::Family<prometheus::Counter>& corrupt_;
  prometheus::Family<prometheus::Counter>& dead_letters_;
  prometheus::Family<prometheus::Counter>& overloads_;
  prometheus::Family<prometheus::Histogram>& request_seconds_;
  // Per-kind histograms, looked up once: Family::Add builds a label map and locks on every call,
  // and answered() runs for every message, on any thread (entity_router's fast path). Filled by
  // add_kind() before the actor system runs and only read afterwards.
  std::unordered_map<std::string, prometheus::Histogram*> request_seconds_by_kind_;
};

}  // namespace chorus
