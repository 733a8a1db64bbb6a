#include "nodes/live_hub.hpp"

#include <map>
#include <memory>
#include <set>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace chorus {

namespace {

/// How long a hub waits for its peers to acknowledge an interest before it lets the
/// subscription go ahead anyway (a peer that slow is probably on its way out).
constexpr std::chrono::seconds interest_timeout{2};

struct live_hub_state {
  std::string node;
  std::shared_ptr<live_subscribers> local;
  std::map<std::string, live_hub> peers;
  /// Peers whose whole interest we have (from their snapshot); the others get every event.
  std::set<std::string> known;
  /// topic -> the peers with subscribers for it.
  std::map<std::string, std::set<std::string>> interest;
  /// The topics this node's edge has subscribers for.
  std::set<std::string> mine;
  prometheus::Counter* from_peers = nullptr;
  static inline const char* name = "chorus.live_hub";

  [[nodiscard]] bool wants(const std::string& peer, const std::string& topic) const {
    if (known.count(peer) == 0) return true;
    auto it = interest.find(topic);
    return it != interest.end() && it->second.count(peer) > 0;
  }

  void forget(const std::string& peer) {
    for (auto it = interest.begin(); it != interest.end();) {
      it->second.erase(peer);
      it = it->second.empty() ? interest.erase(it) : std::next(it);
    }
  }
};

live_hub_actor::behavior_type live_hub_fn(live_hub_actor::stateful_pointer<live_hub_state> self,
                                          std::string node, std::shared_ptr<live_subscribers> local,
                                          prometheus::Counter* from_peers) {
  self->state.node = std::move(node);
  self->state.local = std::move(local);
  self->state.from_peers = from_peers;
  return {
      [self](live_event& ev) {
        auto& st = self->state;
        if (ev.fan_out) {
          live_event copy{ev.topic, ev.json, false};
          for (const auto& [name, peer] : st.peers)
            if (st.wants(name, ev.topic)) self->send(peer, copy);
        } else if (st.from_peers != nullptr) {
          st.from_peers->Increment();
        }
        if (st.local) st.local->deliver(ev.topic, ev.json);
      },
      [self](live_revoke& ev) {
        auto& st = self->state;
        if (ev.fan_out) {
          live_revoke copy{ev.topic, ev.user, false};
          for (const auto& [name, peer] : st.peers)
            if (st.wants(name, ev.topic)) self->send(peer, copy);
        }
        if (st.local) st.local->revoke(ev.topic, ev.user);
      },
      [self](live_interest& x) -> bool {
        auto& st = self->state;
        if (!x.node.empty()) {
          // A peer's interest.
          if (x.snapshot) {
            st.forget(x.node);
            st.known.insert(x.node);
          }
          for (const auto& t : x.topics) {
            if (x.on) {
              st.interest[t].insert(x.node);
            } else if (auto it = st.interest.find(t); it != st.interest.end()) {
              it->second.erase(x.node);
              if (it->second.empty()) st.interest.erase(it);
            }
          }
          return true;
        }
        // Our edge's: tell every peer, and the edge once they all know (or did not answer).
        for (const auto& t : x.topics) {
          if (x.on)
            st.mine.insert(t);
          else
            st.mine.erase(t);
        }
        auto ready = [self, topics = x.topics, on = x.on] {
          if (on && self->state.local)
            for (const auto& t : topics) self->state.local->interest_ready(t);
        };
        if (st.peers.empty()) {
          ready();
          return true;
        }
        auto waiting = std::make_shared<size_t>(st.peers.size());
        live_interest out{st.node, x.topics, x.on, false};
        for (const auto& [name, peer] : st.peers)
          self->request(peer, interest_timeout, out)
              .then(
                  [waiting, ready](bool) {
                    if (--*waiting == 0) ready();
                  },
                  [waiting, ready](caf::error&) {
                    if (--*waiting == 0) ready();
                  });
        return true;
      },
      [self](peer_up_atom, const std::string& name, const live_hub& peer) {
        auto& st = self->state;
        st.peers[name] = peer;
        // The peer learns everything this node wants; until it has, it sends us every event.
        live_interest all{st.node, {st.mine.begin(), st.mine.end()}, true, true};
        self->request(peer, interest_timeout, std::move(all)).then([](bool) {}, [](caf::error&) {});
      },
      [self](peer_down_atom, const std::string& name) {
        auto& st = self->state;
        st.peers.erase(name);
        st.known.erase(name);
        st.forget(name);
      },
  };
}

}  // namespace

live_hub_actor spawn_live_hub(caf::actor_system& sys, std::string node,
                              std::shared_ptr<live_subscribers> local,
                              prometheus::Counter* from_peers) {
  return sys.spawn(live_hub_fn, std::move(node), std::move(local), from_peers);
}

}  // namespace chorus
