#include "nodes/membership_actor.hpp"

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include <caf/actor_cast.hpp>
#include <caf/io/middleman.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/node.pb.h"
#include "nodes/node_probe.hpp"
#include "nodes/version.hpp"

namespace chorus {

namespace {

using clock_type = std::chrono::steady_clock;

struct peer_state {
  const node_spec* spec = nullptr;
  bool up = false;
  bool dialing = false;
  clock_type::time_point since = clock_type::now();
  std::string reason = "not dialled yet";
  caf::actor_addr addr;  // the peer's membership actor while up
  std::chrono::milliseconds backoff{0};
};

struct membership_state {
  const cluster_config* cfg = nullptr;
  const node_spec* self_spec = nullptr;
  node_probe* probe = nullptr;
  json_log* log = nullptr;
  envelope_handler registry;  // ours, handed to peers
  router_actor router;        // told about live peers' registries
  clock_type::time_point started = clock_type::now();
  std::map<std::string, peer_state> peers;

  static inline const char* name = "chorus.membership";
};

using self_pointer = membership_actor::stateful_pointer<membership_state>;

void schedule_dial(self_pointer self, peer_state& peer) {
  auto delay = peer.backoff;
  const auto& m = self->state.cfg->membership;
  peer.backoff = std::min(std::max(peer.backoff * 2, m.retry_min), m.retry_max);
  self->delayed_send(self, delay, dial_atom_v, peer.spec->name.str());
}

void mark_down(self_pointer self, peer_state& peer, std::string reason) {
  auto was_up = peer.up;
  peer.dialing = false;
  if (was_up || peer.reason != reason) {
    self->state.log->write(was_up ? json_log::level::warn : json_log::level::info, "membership",
                           was_up ? "peer down" : "peer unreachable",
                           {{"peer", peer.spec->name.str()}, {"reason", reason}});
  }
  if (was_up) {
    peer.up = false;
    peer.since = clock_type::now();
    peer.addr = caf::actor_addr{};
    peer.backoff = std::chrono::milliseconds{0};
    self->state.probe->peer_down(peer.spec->name);
    self->send(self->state.router, peer_down_atom_v, peer.spec->name.str());
  }
  peer.reason = std::move(reason);
  schedule_dial(self, peer);
}

void mark_up(self_pointer self, peer_state& peer, const caf::strong_actor_ptr& handle,
             const envelope_handler& registry) {
  peer.dialing = false;
  peer.up = true;
  peer.since = clock_type::now();
  peer.reason.clear();
  peer.addr = caf::actor_cast<caf::actor_addr>(handle);
  peer.backoff = self->state.cfg->membership.retry_min;
  self->monitor(handle);
  self->state.probe->peer_up(peer.spec->name);
  self->send(self->state.router, peer_up_atom_v, peer.spec->name.str(), registry);
  self->state.log->info("membership", "peer up", {{"peer", peer.spec->name.str()}});
}

// Connects through the middleman, then asks the peer who it is: a port that belongs to another
// cluster or node (a stale cluster.conf) must not count as that peer.
void dial(self_pointer self, const std::string& name) {
  auto i = self->state.peers.find(name);
  if (i == self->state.peers.end() || i->second.up || i->second.dialing) return;
  auto& peer = i->second;
  peer.dialing = true;
  auto timeout = self->state.cfg->membership.dial_timeout;
  auto mm = self->system().middleman().actor_handle();
  self->request(mm, timeout, caf::connect_atom::value, peer.spec->host, peer.spec->actor_port)
      .then(
          [self, name, timeout](const caf::node_id&, caf::strong_actor_ptr& ptr,
                                const std::set<std::string>&) {
            auto& peer = self->state.peers[name];
            if (!ptr) {
              mark_down(self, peer, "no membership actor published on the actor port");
              return;
            }
            auto remote = caf::actor_cast<membership_actor>(ptr);
            self->request(remote, timeout, whoami_atom_v)
                .then(
                    [self, name, ptr](std::string& cluster, std::string& node,
                                      envelope_handler& registry) {
                      auto& peer = self->state.peers[name];
                      if (cluster != self->state.cfg->cluster_name || node != name)
                        mark_down(self, peer,
                                  "the actor port answers as node \"" + node + "\" of cluster \"" +
                                      cluster + "\"");
                      else
                        mark_up(self, peer, ptr, registry);
                    },
                    [self, name](caf::error& err) {
                      mark_down(self, self->state.peers[name],
                                "no answer to whoami: " + self->system().render(err));
                    });
          },
          [self, name](caf::error& err) {
            mark_down(self, self->state.peers[name], self->system().render(err));
          });
}

std::string render_status(self_pointer self) {
  auto now = clock_type::now();
  auto secs = [](clock_type::duration d) { return std::chrono::duration<double>(d).count(); };
  messages::NodeStatus status;
  status.set_cluster(self->state.cfg->cluster_name);
  status.set_node(self->state.self_spec->name.str());
  status.set_uptime_seconds(secs(now - self->state.started));
  status.set_pid(static_cast<uint32_t>(::getpid()));
  status.set_version(chorus_version);
  uint32_t up = 0;
  for (const auto& [name, peer] : self->state.peers) {
    auto* p = status.add_peers();
    p->set_name(name);
    p->set_state(peer.up ? "up" : "down");
    p->set_since_seconds(secs(now - peer.since));
    p->set_reason(peer.reason);
    up += peer.up ? 1 : 0;
  }
  status.set_peers_up(up);
  return status.SerializeAsString();
}

membership_actor::behavior_type membership(self_pointer self, const cluster_config* cfg,
                                           const node_spec* me, envelope_handler registry,
                                           router_actor router, node_probe* probe, json_log* log) {
  auto& st = self->state;
  st.registry = std::move(registry);
  st.router = std::move(router);
  st.cfg = cfg;
  st.self_spec = me;
  st.probe = probe;
  st.log = log;
  for (const auto& node : cfg->nodes) {
    if (node.name == me->name) continue;
    st.peers[node.name.str()].spec = &node;
  }
  self->set_down_handler([self](caf::down_msg& msg) {
    for (auto& [name, peer] : self->state.peers)
      if (peer.up && peer.addr == msg.source) {
        mark_down(self, peer, "connection lost: " + self->system().render(msg.reason));
        return;
      }
  });
  return {
      [self](whoami_atom) {
        return caf::result<std::string, std::string, envelope_handler>{
            self->state.cfg->cluster_name, self->state.self_spec->name.str(), self->state.registry};
      },
      [self](status_atom) { return render_status(self); },
      [self](begin_atom) {
        for (const auto& [name, peer] : self->state.peers) dial(self, name);
      },
      [self](dial_atom, const std::string& name) { dial(self, name); },
  };
}

}  // namespace

membership_actor spawn_membership(caf::actor_system& sys, const cluster_config& cfg,
                                  const node_spec& self, envelope_handler registry,
                                  router_actor router, node_probe& probe, json_log& log) {
  return sys.spawn(membership, &cfg, &self, std::move(registry), std::move(router), &probe, &log);
}

}  // namespace chorus
