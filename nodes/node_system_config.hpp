#pragma once

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "messages/caf_types.hpp"

namespace chorus {

/// CAF's configuration for a Chorus node: the middleman is loaded and Chorus' type-ID block is
/// registered, always in the same order on every node. Exposes CAF's option table so that
/// cluster.conf can be checked against it before CAF reads the file.
class node_system_config : public caf::actor_system_config {
 public:
  node_system_config() {
    load<caf::io::middleman>();
    register_caf_types(*this);
  }

  [[nodiscard]] const caf::config_option_set& caf_options() const { return custom_options_; }
};

}  // namespace chorus
