#include "nodes/transcode_dispatcher.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errors.hpp"
#include "nodes/placement.hpp"

namespace chorus {

namespace {

// How long one transcoder may take to accept (or refuse) a job before the next is tried.
constexpr std::chrono::seconds offer_timeout{3};

struct dispatcher_state {
  std::string self_name;
  /// Where each live transcode node takes jobs: this node's transcoder, peers' registries.
  std::map<std::string, envelope_handler> transcoders;
  static inline const char* name = "chorus.transcode_dispatcher";
};

using self_pointer = transcode_dispatcher_actor::stateful_pointer<dispatcher_state>;

/// The transcoders in the order a job tries them: highest rendezvous score for `key` first.
std::vector<envelope_handler> ranked(const dispatcher_state& st, const std::string& key) {
  std::vector<std::pair<uint64_t, envelope_handler>> scored;
  for (const auto& [name, handle] : st.transcoders)
    scored.emplace_back(placement_score(name, key), handle);
  std::sort(scored.begin(), scored.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<envelope_handler> out;
  for (auto& s : scored) out.push_back(std::move(s.second));
  return out;
}

/// Offers `env` to `order[i]`, then to the next one after a refusal.
void offer(self_pointer self, std::shared_ptr<std::vector<envelope_handler>> order, size_t i,
           entity_envelope env, caf::typed_response_promise<std::string> rp) {
  if (i >= order->size()) {
    rp.deliver(make_error(runtime_errc::overloaded, order->empty()
                                                        ? "no live node has the transcode role"
                                                        : "every transcoder refused the job"));
    return;
  }
  self->request((*order)[i], offer_timeout, env)
      .then([rp](std::string& reply) mutable { rp.deliver(std::move(reply)); },
            [self, order, i, env, rp](caf::error&) mutable {
              offer(self, order, i + 1, std::move(env), std::move(rp));
            });
}

transcode_dispatcher_actor::behavior_type dispatcher(self_pointer self, std::string self_name,
                                                     envelope_handler local) {
  self->state.self_name = std::move(self_name);
  if (local) self->state.transcoders[self->state.self_name] = std::move(local);
  return {
      [self](entity_envelope& env) -> caf::result<std::string> {
        auto order = std::make_shared<std::vector<envelope_handler>>(
            ranked(self->state, env.id + "/" + env.payload));
        auto rp = self->make_response_promise<std::string>();
        offer(self, std::move(order), 0, std::move(env), rp);
        return rp;
      },
      [self](peer_up_atom, const std::string& name, const envelope_handler& registry) {
        if (registry) self->state.transcoders[name] = registry;
      },
      [self](peer_down_atom, const std::string& name) {
        if (name != self->state.self_name) self->state.transcoders.erase(name);
      },
  };
}

}  // namespace

transcode_dispatcher_actor spawn_transcode_dispatcher(caf::actor_system& sys,
                                                      const std::string& self_name,
                                                      envelope_handler local) {
  return sys.spawn(dispatcher, self_name, std::move(local));
}

}  // namespace chorus
