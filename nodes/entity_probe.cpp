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
      corrupt_(prometheus::BuildCounter()
                   .Name("chorus_entity_corrupt_streams_total")
                   .Help("Activations stopped because their stream holds an event or snapshot "
                         "this version cannot read, by kind")
                   .Register(registry)),
      dead_letters_(prometheus::BuildCounter()
                        .Name("chorus_dead_letters_total")
                        .Help("Messages parked after failing every delivery attempt, by kind")
                        .Register(registry)),
      overloads_(prometheus::BuildCounter()
                     .Name("chorus_entity_overloads_total")
                     .Help("Requests refused because the entity's oldest request waited too long")
                     .Register(registry)),
      request_seconds_(prometheus::BuildHistogram()
                           .Name("chorus_entity_request_seconds")
                           .Help("From the registry sending a request to the entity's answer: "
                                 "mailbox age plus handling, by kind")
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

void entity_probe::corrupt(const std::string& kind) {
  active_.Add({{"kind", kind}}).Decrement();
  corrupt_.Add({{"kind", kind}}).Increment();
}

void entity_probe::overloaded(const std::string& kind) {
  overloads_.Add({{"kind", kind}}).Increment();
}

namespace {

const prometheus::Histogram::BucketBoundaries& request_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  return buckets;
}

}  // namespace

void entity_probe::add_kind(const std::string& kind) {
  if (request_seconds_by_kind_.count(kind) == 0)
    request_seconds_by_kind_.emplace(kind,
                                     &request_seconds_.Add({{"kind", kind}}, request_buckets()));
}

void entity_probe::answered(const std::string& kind, std::chrono::steady_clock::duration waited) {
  auto seconds = std::chrono::duration<double>(waited).count();
  auto i = request_seconds_by_kind_.find(kind);
  if (i != request_seconds_by_kind_.end())
    i->second->Observe(seconds);
  else  // a kind nobody announced: the family's own (locked) lookup
    request_seconds_.Add({{"kind", kind}}, request_buckets()).Observe(seconds);
}

void entity_probe::parked(const std::string& kind) {
  dead_letters_.Add({{"kind", kind}}).Increment();
}

}  // namespace chorus
