#pragma once

#include <map>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "nodes/cluster_config.hpp"

namespace chorus {

/// Metrics of a node process and its view of the cluster. Owned by main(), outlives the actor
/// system; the membership actor updates it from its own thread (prometheus-cpp metrics are
/// thread-safe).
class node_probe {
 public:
  node_probe(prometheus::Registry& registry, const cluster_config& cfg, const node_spec& self);

  /// Creates the per-peer series of a peer added by a reload. Call from the membership actor.
  void add_peer(const node_name& peer);
  void peer_up(const node_name& peer);
  void peer_down(const node_name& peer);

 private:
  prometheus::Family<prometheus::Gauge>& peer_up_family_;
  prometheus::Family<prometheus::Counter>& connects_family_;
  prometheus::Family<prometheus::Counter>& losses_family_;
  std::map<node_name, prometheus::Gauge*> peer_up_;
  std::map<node_name, prometheus::Counter*> connects_;
  std::map<node_name, prometheus::Counter*> losses_;
};

}  // namespace chorus
