#include "nodes/entity_probe.hpp"

namespace chorus {

entity_probe::entity_probe(prometheus::Registry& registry)
    : active_(prometheus::BuildGauge()
                  .Name("chorus_entities_active")
                  .Help("Entities activated on this node and not passivated, by kind")
                  .Register(registry)),
      activations_(prometheus::BuildCounter()
                       .Name("chorus_entity_activations_total")
                       .Help("Entity activations on this node, by kind")
                       .Register(registry)),
      passivations_(prometheus::BuildCounter()
                        .Name("chorus_entity_passivations_total")
                        .Help("Entity passivations on this node, by kind and reason")
                        .Register(registry)),
      failures_(prometheus::BuildCounter()
                    .Name("chorus_entity_failures_total")
                    .Help("Entities that terminated abnormally on this node, by kind")
                    .Register(registry)),
      dead_letters_(prometheus::BuildCounter()
                        .Name("chorus_dead_letters_total")
                        .Help("Messages parked after failing every delivery attempt, by kind")
                        .Register(registry)) {}

void entity_probe::activated(const std::string& kind) {
  active_.Add({{"kind", kind}}).Increment();
  activations_.Add({{"kind", kind}}).Increment();
}

void entity_probe::passivated(const std::string& kind, const std::string& reason) {
  active_.Add({{"kind", kind}}).Decrement();
  passivations_.Add({{"kind", kind}, {"reason", reason}}).Increment();
}

void entity_probe::failed(const std::string& kind) {
  active_.Add({{"kind", kind}}).Decrement();
  failures_.Add({{"kind", kind}}).Increment();
}

}  // namespace chorus

namespace chorus {

void entity_probe::parked(const std::string& kind) {
  dead_letters_.Add({{"kind", kind}}).Increment();
}

}  // namespace chorus
