#include "nodes/router.hpp"

#include <algorithm>
#include <map>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errors.hpp"
#include "nodes/placement.hpp"

namespace chorus {

namespace {

constexpr const char* entity_role = "entity";

struct router_state {
  std::string self_name;
  bool self_hosts = false;
  envelope_handler local;
  std::map<std::string, envelope_handler> peers;  // live peers with the entity role
  std::vector<std::string> candidates;            // self (if it hosts) + live peers, sorted

  void rebuild() {
    candidates.clear();
    if (self_hosts) candidates.push_back(self_name);
    for (const auto& [name, handle] : peers) candidates.push_back(name);
    std::sort(candidates.begin(), candidates.end());
  }

  static inline const char* name = "chorus.router";
};

using self_pointer = router_actor::stateful_pointer<router_state>;

router_actor::behavior_type router(self_pointer self, const node_spec* me, envelope_handler local) {
  auto& st = self->state;
  st.self_name = me->name.str();
  st.self_hosts = me->has_role(entity_role);
  st.local = std::move(local);
  st.rebuild();
  return {
      [self](entity_envelope& env) -> caf::result<std::string> {
        auto& st = self->state;
        auto owner = rendezvous_owner(entity_key(env), st.candidates);
        if (!owner) return make_error(runtime_errc::no_owner, "no live node hosts entities");
        const auto& name = st.candidates[*owner];
        if (name == st.self_name) return self->delegate(st.local, std::move(env));
        return self->delegate(st.peers.at(name), std::move(env));
      },
      [self](peer_up_atom, const std::string& name, const envelope_handler& registry,
             bool hosts_entities) {
        auto& st = self->state;
        if (hosts_entities)
          st.peers[name] = registry;
        else
          st.peers.erase(name);
        st.rebuild();
      },
      [self](peer_down_atom, const std::string& name) {
        self->state.peers.erase(name);
        self->state.rebuild();
      },
  };
}

}  // namespace

router_actor spawn_router(caf::actor_system& sys, const node_spec& self,
                          envelope_handler local_registry) {
  return sys.spawn(router, &self, std::move(local_registry));
}

}  // namespace chorus
