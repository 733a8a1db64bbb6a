#include "nodes/entity_registry.hpp"

#include <list>
#include <unordered_map>

#include <caf/actor_cast.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errors.hpp"
#include "messages/node.pb.h"
#include "nodes/entity_probe.hpp"

namespace chorus {

namespace {

using clock_type = std::chrono::steady_clock;

struct activation {
  envelope_handler handle;
  std::string kind;
  clock_type::time_point last_used;
  std::list<std::string>::iterator lru;  // position in registry_state::lru
};

struct registry_state {
  const entity_kinds* kinds = nullptr;
  entity_context ctx;
  registry_limits limits;
  entity_probe* probe = nullptr;
  json_log* log = nullptr;
  std::unordered_map<std::string, activation> active;     // by "kind/id"
  std::list<std::string> lru;                             // front: least recently used
  std::unordered_map<caf::actor_addr, std::string> keys;  // activation -> "kind/id"
  std::map<std::string, uint64_t> per_kind;

  static inline const char* name = "chorus.entity_registry";
};

using self_pointer = entity_registry_actor::stateful_pointer<registry_state>;

void forget(self_pointer self, std::unordered_map<std::string, activation>::iterator i) {
  auto& st = self->state;
  st.keys.erase(caf::actor_cast<caf::actor_addr>(i->second.handle));
  st.lru.erase(i->second.lru);
  if (--st.per_kind[i->second.kind] == 0) st.per_kind.erase(i->second.kind);
  st.active.erase(i);
}

void passivate(self_pointer self, std::unordered_map<std::string, activation>::iterator i,
               const char* reason) {
  self->demonitor(i->second.handle.address());
  self->send_exit(i->second.handle, caf::exit_reason::user_shutdown);
  self->state.probe->passivated(i->second.kind, reason);
  forget(self, i);
}

caf::result<std::string> dispatch(self_pointer self, entity_envelope& env) {
  auto& st = self->state;
  auto key = entity_key(env);
  auto i = st.active.find(key);
  if (i == st.active.end()) {
    auto kind = st.kinds->find(env.kind);
    if (kind == st.kinds->end())
      return make_error(runtime_errc::unknown_kind, "no entity kind \"" + env.kind + "\"");
    auto handle = kind->second(self->system(), env.id, st.ctx);
    self->monitor(handle);
    st.lru.push_back(key);
    i = st.active
            .emplace(key, activation{handle, env.kind, clock_type::now(), std::prev(st.lru.end())})
            .first;
    st.keys.emplace(caf::actor_cast<caf::actor_addr>(handle), key);
    ++st.per_kind[env.kind];
    st.probe->activated(env.kind);
    // The newcomer sits at the back, so eviction never takes it.
    while (st.active.size() > st.limits.max_active)
      passivate(self, st.active.find(st.lru.front()), "evicted");
  } else {
    i->second.last_used = clock_type::now();
    st.lru.splice(st.lru.end(), st.lru, i->second.lru);
  }
  return self->delegate(i->second.handle, std::move(env));
}

entity_registry_actor::behavior_type registry(self_pointer self, const entity_kinds* kinds,
                                              entity_context ctx, registry_limits limits,
                                              entity_probe* probe, json_log* log) {
  auto& st = self->state;
  st.kinds = kinds;
  st.ctx = std::move(ctx);
  st.limits = limits;
  st.probe = probe;
  st.log = log;
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto k = st.keys.find(msg.source);
    if (k == st.keys.end()) return;
    auto i = st.active.find(k->second);
    st.log->warn("registry", "entity failed; it restarts on its next message",
                 {{"entity", k->second}, {"reason", self->system().render(msg.reason)}});
    st.probe->failed(i->second.kind);
    forget(self, i);
  });
  self->delayed_send(self, limits.sweep_interval, sweep_atom_v);
  return {
      [self](entity_envelope& env) { return dispatch(self, env); },
      [self](status_atom) {
        messages::RegistryStatus out;
        for (const auto& [kind, n] : self->state.per_kind) {
          auto* k = out.add_kinds();
          k->set_kind(kind);
          k->set_active(n);
        }
        return out.SerializeAsString();
      },
      [self](sweep_atom) {
        auto& st = self->state;
        auto cutoff = clock_type::now() - st.limits.idle_timeout;
        while (!st.lru.empty()) {
          auto i = st.active.find(st.lru.front());
          if (i->second.last_used > cutoff) break;
          passivate(self, i, "idle");
        }
        self->delayed_send(self, st.limits.sweep_interval, sweep_atom_v);
      },
  };
}

}  // namespace

entity_registry_actor spawn_entity_registry(caf::actor_system& sys, const entity_kinds& kinds,
                                            entity_context ctx, registry_limits limits,
                                            entity_probe& probe, json_log& log) {
  return sys.spawn(registry, &kinds, std::move(ctx), limits, &probe, &log);
}

}  // namespace chorus
