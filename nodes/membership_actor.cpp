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

constexpr const char* entity_role = "entity";
constexpr const char* transcode_role = "transcode";

struct peer_state {
  node_spec spec;           // as of the latest cluster.conf that lists it
  uint64_t generation = 0;  // bumped when the peer is (re)added, so stale answers are ignored
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
  envelope_handler registry;              // ours, handed to peers
  router_actor router;                    // told about live peers' registries
  live_hub_actor hub;                     // ours: handed to peers, told about live peers' hubs
  transcode_dispatcher_actor dispatcher;  // told which transcode peers are live
  clock_type::time_point started = clock_type::now();
  std::map<std::string, peer_state> peers;
  uint64_t next_generation = 0;

  static inline const char* name = "chorus.membership";
};

using self_pointer = membership_actor::stateful_pointer<membership_state>;

void schedule_dial(self_pointer self, peer_state& peer) {
  auto delay = peer.backoff;
  const auto& m = self->state.cfg->membership;
  peer.backoff = std::min(std::max(peer.backoff * 2, m.retry_min), m.retry_max);
  self->delayed_send(self, delay, dial_atom_v, peer.spec.name.str());
}

void mark_down(self_pointer self, peer_state& peer, std::string reason) {
  auto was_up = peer.up;
  peer.dialing = false;
  if (was_up || peer.reason != reason) {
    self->state.log->write(was_up ? json_log::level::warn : json_log::level::info, "membership",
                           was_up ? "peer down" : "peer unreachable",
                           {{"peer", peer.spec.name.str()}, {"reason", reason}});
  }
  if (was_up) {
    peer.up = false;
    peer.since = clock_type::now();
    peer.addr = caf::actor_addr{};
    peer.backoff = std::chrono::milliseconds{0};
    self->state.probe->peer_down(peer.spec.name);
    self->send(self->state.router, peer_down_atom_v, peer.spec.name.str());
    self->send(self->state.hub, peer_down_atom_v, peer.spec.name.str());
    self->send(self->state.dispatcher, peer_down_atom_v, peer.spec.name.str());
  }
  peer.reason = std::move(reason);
  schedule_dial(self, peer);
}

void mark_up(self_pointer self, peer_state& peer, const caf::strong_actor_ptr& handle,
             const envelope_handler& registry, const live_hub& hub) {
  peer.dialing = false;
  peer.up = true;
  peer.since = clock_type::now();
  peer.reason.clear();
  peer.addr = caf::actor_cast<caf::actor_addr>(handle);
  peer.backoff = self->state.cfg->membership.retry_min;
  self->monitor(handle);
  self->state.probe->peer_up(peer.spec.name);
  self->send(self->state.router, peer_up_atom_v, peer.spec.name.str(), registry,
             peer.spec.has_role(entity_role));
  self->send(self->state.hub, peer_up_atom_v, peer.spec.name.str(), hub);
  if (peer.spec.has_role(transcode_role))
    self->send(self->state.dispatcher, peer_up_atom_v, peer.spec.name.str(), registry);
  self->state.log->info("membership", "peer up", {{"peer", peer.spec.name.str()}});
}

// Connects through the middleman, then asks the peer who it is: a port that belongs to another
// cluster or node (a stale cluster.conf) must not count as that peer.
void dial(self_pointer self, const std::string& name) {
  auto i = self->state.peers.find(name);
  if (i == self->state.peers.end() || i->second.up || i->second.dialing) return;
  auto& peer = i->second;
  peer.dialing = true;
  auto gen = peer.generation;
  // The peer may have been removed or re-added by a reload while we waited.
  auto current = [self, name, gen]() -> peer_state* {
    auto i = self->state.peers.find(name);
    return i != self->state.peers.end() && i->second.generation == gen ? &i->second : nullptr;
  };
  auto timeout = self->state.cfg->membership.dial_timeout;
  auto mm = self->system().middleman().actor_handle();
  self->request(mm, timeout, caf::connect_atom::value, peer.spec.host, peer.spec.actor_port)
      .then(
          [self, name, timeout, current](const caf::node_id&, caf::strong_actor_ptr& ptr,
                                         const std::set<std::string>&) {
            auto* p = current();
            if (p == nullptr) return;
            auto& peer = *p;
            if (!ptr) {
              mark_down(self, peer, "no membership actor published on the actor port");
              return;
            }
            auto remote = caf::actor_cast<membership_actor>(ptr);
            self->request(remote, timeout, whoami_atom_v)
                .then(
                    [self, name, ptr, current](std::string& cluster, std::string& node,
                                               envelope_handler& registry, live_hub& hub) {
                      auto* p = current();
                      if (p == nullptr) return;
                      auto& peer = *p;
                      if (cluster != self->state.cfg->cluster_name || node != name)
                        mark_down(self, peer,
                                  "the actor port answers as node \"" + node + "\" of cluster \"" +
                                      cluster + "\"");
                      else
                        mark_up(self, peer, ptr, registry, hub);
                    },
                    [self, current](caf::error& err) {
                      if (auto* p = current())
                        mark_down(self, *p, "no answer to whoami: " + self->system().render(err));
                    });
          },
          [self, current](caf::error& err) {
            if (auto* p = current()) mark_down(self, *p, self->system().render(err));
          });
}

void remove_peer(self_pointer self, std::map<std::string, peer_state>::iterator i) {
  auto& peer = i->second;
  if (peer.up) {
    self->demonitor(peer.addr);
    self->state.probe->peer_down(peer.spec.name);
    self->send(self->state.router, peer_down_atom_v, i->first);
    self->send(self->state.hub, peer_down_atom_v, i->first);
    self->send(self->state.dispatcher, peer_down_atom_v, i->first);
  }
  self->state.log->info("membership", "peer removed by reload", {{"peer", i->first}});
  self->state.peers.erase(i);
}

// Applies the node list of a re-read cluster.conf: dials new peers, drops removed ones, and
// replaces a peer whose address or roles changed.
void reload(self_pointer self, const std::string& bytes) {
  auto& st = self->state;
  messages::ClusterView view;
  if (!view.ParseFromString(bytes)) {
    st.log->error("membership", "reload ignored: unreadable node list");
    return;
  }
  std::set<std::string> listed;
  for (const auto& n : view.nodes()) {
    if (n.name() == st.self_spec->name.str()) continue;
    listed.insert(n.name());
    node_spec spec;
    spec.name = node_name{n.name()};
    spec.host = n.host();
    spec.actor_port = static_cast<uint16_t>(n.actor_port());
    spec.roles.assign(n.roles().begin(), n.roles().end());
    auto i = st.peers.find(n.name());
    if (i != st.peers.end() &&
        (i->second.spec.host != spec.host || i->second.spec.actor_port != spec.actor_port ||
         i->second.spec.roles != spec.roles)) {
      // Address or roles changed: replace the peer, which re-verifies and re-announces it.
      remove_peer(self, i);
      i = st.peers.end();
    }
    if (i != st.peers.end()) continue;
    auto& peer = st.peers[n.name()];
    peer.spec = spec;
    peer.generation = ++st.next_generation;
    st.probe->add_peer(spec.name);
    st.log->info("membership", "peer added by reload", {{"peer", n.name()}});
    dial(self, n.name());
  }
  for (auto i = st.peers.begin(); i != st.peers.end();) {
    auto next = std::next(i);
    if (listed.count(i->first) == 0) remove_peer(self, i);
    i = next;
  }
  st.log->info("membership", "cluster.conf reloaded", {{"peers", std::to_string(st.peers.size())}});
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
                                           router_actor router, live_hub_actor hub,
                                           transcode_dispatcher_actor dispatcher, node_probe* probe,
                                           json_log* log) {
  auto& st = self->state;
  st.registry = std::move(registry);
  st.router = std::move(router);
  st.hub = std::move(hub);
  st.dispatcher = std::move(dispatcher);
  st.cfg = cfg;
  st.self_spec = me;
  st.probe = probe;
  st.log = log;
  for (const auto& node : cfg->nodes) {
    if (node.name == me->name) continue;
    auto& peer = st.peers[node.name.str()];
    peer.spec = node;
    peer.generation = ++st.next_generation;
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
        return caf::result<std::string, std::string, envelope_handler, live_hub>{
            self->state.cfg->cluster_name, self->state.self_spec->name.str(), self->state.registry,
            caf::actor_cast<live_hub>(self->state.hub)};
      },
      [self](status_atom) { return render_status(self); },
      [self](begin_atom) {
        for (const auto& [name, peer] : self->state.peers) dial(self, name);
      },
      [self](dial_atom, const std::string& name) { dial(self, name); },
      [self](reload_atom, const std::string& bytes) { reload(self, bytes); },
  };
}

}  // namespace

std::string cluster_view(const cluster_config& cfg) {
  messages::ClusterView view;
  for (const auto& n : cfg.nodes) {
    auto* e = view.add_nodes();
    e->set_name(n.name.str());
    e->set_host(n.host);
    e->set_actor_port(n.actor_port);
    for (const auto& r : n.roles) e->add_roles(r);
  }
  return view.SerializeAsString();
}

membership_actor spawn_membership(caf::actor_system& sys, const cluster_config& cfg,
                                  const node_spec& self, envelope_handler registry,
                                  router_actor router, live_hub_actor hub,
                                  transcode_dispatcher_actor dispatcher, node_probe& probe,
                                  json_log& log) {
  return sys.spawn(membership, &cfg, &self, std::move(registry), std::move(router), std::move(hub),
                   std::move(dispatcher), &probe, &log);
}

}  // namespace chorus
