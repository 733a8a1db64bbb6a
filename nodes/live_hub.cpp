#include "nodes/live_hub.hpp"

#include <map>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace chorus {

namespace {

struct live_hub_state {
  std::shared_ptr<live_subscribers> local;
  std::map<std::string, live_hub> peers;
  static inline const char* name = "chorus.live_hub";
};

live_hub_actor::behavior_type live_hub_fn(live_hub_actor::stateful_pointer<live_hub_state> self,
                                          std::shared_ptr<live_subscribers> local) {
  self->state.local = std::move(local);
  return {
      [self](live_event& ev) {
        if (ev.fan_out) {
          live_event copy{ev.topic, ev.json, false};
          for (const auto& [name, peer] : self->state.peers) self->send(peer, copy);
        }
        if (self->state.local) self->state.local->deliver(ev.topic, ev.json);
      },
      [self](live_revoke& ev) {
        if (ev.fan_out) {
          live_revoke copy{ev.topic, ev.user, false};
          for (const auto& [name, peer] : self->state.peers) self->send(peer, copy);
        }
        if (self->state.local) self->state.local->revoke(ev.topic, ev.user);
      },
      [self](peer_up_atom, const std::string& name, const live_hub& peer) {
        self->state.peers[name] = peer;
      },
      [self](peer_down_atom, const std::string& name) { self->state.peers.erase(name); },
  };
}

}  // namespace

live_hub_actor spawn_live_hub(caf::actor_system& sys, std::shared_ptr<live_subscribers> local) {
  return sys.spawn(live_hub_fn, std::move(local));
}

}  // namespace chorus
