#pragma once

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "messages/node.pb.h"
#include "nodes/cluster_config.hpp"
#include "nodes/entity_registry.hpp"
#include "nodes/membership_actor.hpp"
#include "persistence/schema_migrator.hpp"

namespace chorus {

/// Answers a node's /statusz and /readyz: asks the membership actor for its view and probes the
/// storage servers of cluster.conf. Owned by main(); called from HTTP worker threads.
class node_health {
 public:
  node_health(caf::actor_system& sys, const cluster_config& cfg, membership_actor membership,
              entity_registry_actor registry, const persistence::schema_migrator* schema);

  /// The membership actor's view of the cluster and the registry's active entities.
  caf::expected<messages::NodeStatus> status();

  /// The messages the registry parked as dead letters.
  caf::expected<messages::DeadLetters> dead_letters();

  /// Ready when every PostgreSQL DSN and Redis answer, the schema of each database is current
  /// (when this node applies migrations) and every peer is up; otherwise names each missing
  /// dependency.
  messages::ReadyReport readiness();

 private:
  caf::actor_system& sys_;
  const cluster_config& cfg_;
  membership_actor membership_;
  entity_registry_actor registry_;
  const persistence::schema_migrator* schema_;  ///< null on nodes without entities
};

}  // namespace chorus
