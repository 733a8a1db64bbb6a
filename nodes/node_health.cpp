#include "nodes/node_health.hpp"

#include <chrono>
#include <map>

#include "http_edge/actor_bridge.hpp"
#include "messages/errors.hpp"
#include "persistence/storage_probe.hpp"

namespace chorus {

namespace {

constexpr std::chrono::milliseconds probe_timeout{1000};

}  // namespace

node_health::node_health(caf::actor_system& sys, const cluster_config& cfg,
                         membership_actor membership, entity_registry_actor registry,
                         const persistence::schema_migrator* schema)
    : sys_(sys),
      cfg_(cfg),
      membership_(std::move(membership)),
      registry_(std::move(registry)),
      schema_(schema) {}

caf::expected<messages::NodeStatus> node_health::status() {
  auto bytes = edge::ask<std::string>(sys_, membership_, probe_timeout, status_atom_v);
  if (!bytes) return bytes.error();
  messages::NodeStatus out;
  out.ParseFromString(*bytes);
  auto entities = edge::ask<std::string>(sys_, registry_, probe_timeout, status_atom_v);
  if (!entities) return entities.error();
  messages::RegistryStatus reg;
  reg.ParseFromString(*entities);
  *out.mutable_entities() = reg.kinds();
  return out;
}

caf::expected<messages::DeadLetters> node_health::dead_letters() {
  auto bytes = edge::ask<std::string>(sys_, registry_, probe_timeout, dead_atom_v);
  if (!bytes) return bytes.error();
  messages::DeadLetters out;
  out.ParseFromString(*bytes);
  return out;
}

messages::ReadyReport node_health::readiness() {
  messages::ReadyReport report;
  // The same DSN is probed once even when several domains share it.
  std::map<std::string, std::string> dsn_domains;
  for (const auto& [domain, dsn] : cfg_.storage.dsns)
    dsn_domains[dsn] += dsn_domains[dsn].empty() ? domain : "," + domain;
  for (const auto& [dsn, domains] : dsn_domains)
    if (auto err = persistence::probe_postgres(dsn, probe_timeout))
      report.add_missing("postgres (" + domains + "): " + error_detail(err));
    else if (auto problem = schema_ != nullptr ? schema_->problem(dsn) : std::nullopt)
      report.add_missing("postgres (" + domains + "): " + *problem);
  if (auto err = persistence::probe_redis(cfg_.storage.redis_url, probe_timeout))
    report.add_missing("redis: " + error_detail(err));
  auto st = status();
  if (!st) {
    report.add_missing("membership: " + error_detail(st.error()));
  } else {
    report.set_node(st->node());
    for (const auto& peer : st->peers())
      if (peer.state() != "up") report.add_missing("peer " + peer.name() + ": " + peer.reason());
  }
  report.set_ready(report.missing_size() == 0);
  return report;
}

}  // namespace chorus
