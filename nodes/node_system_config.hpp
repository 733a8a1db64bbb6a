#pragma once

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "messages/caf_types.hpp"

namespace chorus {

/// CAF's configuration for a Chorus node: the middleman is loaded and Chorus' type-ID block is
/// registered, always in the same order on every node. Exposes CAF's option table so that
/// cluster.conf can be checked against it before CAF reads the file.
///
/// One default differs from CAF's (cluster.conf may still set it): an idle work-stealing worker
/// polls 10 times with 50 us sleeps, not 500 (25 ms of wake-ups), before it waits on the
/// condition variable that outside work wakes at once. With work arriving every few
/// milliseconds, CAF's default spent a third of the nodes' CPU in the chat benchmark.
class node_system_config : public caf::actor_system_config {
 public:
  node_system_config() {
    load<caf::io::middleman>();
    register_caf_types(*this);
    set("work-stealing.moderate-poll-attempts", size_t{10});
  }

  [[nodiscard]] const caf::config_option_set& caf_options() const { return custom_options_; }
};

}  // namespace chorus
