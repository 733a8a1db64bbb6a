#include "nodes/node_probe.hpp"

#include <chrono>

#include "nodes/version.hpp"

namespace chorus {

node_probe::node_probe(prometheus::Registry& registry, const cluster_config& cfg,
                       const node_spec& self)
    : peer_up_family_(prometheus::BuildGauge()
                          .Name("chorus_peer_up")
                          .Help("1 while this node holds a verified connection to the peer")
                          .Register(registry)),
      connects_family_(prometheus::BuildCounter()
                           .Name("chorus_peer_connects_total")
                           .Help("Connections established to the peer")
                           .Register(registry)),
      losses_family_(prometheus::BuildCounter()
                         .Name("chorus_peer_losses_total")
                         .Help("Connections to the peer that were lost")
                         .Register(registry)) {
  prometheus::BuildGauge()
      .Name("chorus_node_info")
      .Help("Always 1; labels say which node of which cluster this is")
      .Register(registry)
      .Add({{"cluster", cfg.cluster_name}, {"node", self.name.str()}, {"version", chorus_version}})
      .Set(1);
  auto now = std::chrono::system_clock::now().time_since_epoch();
  prometheus::BuildGauge()
      .Name("chorus_node_start_time_seconds")
      .Help("Unix time at which this node process started")
      .Register(registry)
      .Add({})
      .Set(std::chrono::duration<double>(now).count());
  for (const auto& node : cfg.nodes)
    if (node.name != self.name) add_peer(node.name);
}

void node_probe::add_peer(const node_name& peer) {
  if (peer_up_.count(peer) != 0) return;
  const std::map<std::string, std::string> labels{{"peer", peer.str()}};
  peer_up_[peer] = &peer_up_family_.Add(labels);
  connects_[peer] = &connects_family_.Add(labels);
  losses_[peer] = &losses_family_.Add(labels);
}

void node_probe::peer_up(const node_name& peer) {
  if (auto i = peer_up_.find(peer); i != peer_up_.end()) {
    i->second->Set(1);
    connects_[peer]->Increment();
  }
}

void node_probe::peer_down(const node_name& peer) {
  if (auto i = peer_up_.find(peer); i != peer_up_.end()) {
    if (i->second->Value() > 0) losses_[peer]->Increment();
    i->second->Set(0);
  }
}

}  // namespace chorus
