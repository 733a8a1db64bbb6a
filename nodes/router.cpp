#include "nodes/router.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <unordered_map>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "common/clock.hpp"
#include "messages/errors.hpp"
#include "nodes/entity_probe.hpp"
#include "nodes/placement.hpp"

namespace chorus {

namespace {

constexpr const char* entity_role = "entity";

// How long a redeliverable envelope waits between attempts while no node hosts entities.
constexpr std::chrono::milliseconds hold_interval{100};

// Deadline of envelopes that carry none.
constexpr std::chrono::seconds default_deadline{30};

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// A redeliverable envelope in flight (or held) and the promise to its caller.
struct pending_request {
  entity_envelope env;
  caf::typed_response_promise<std::string> promise;
  std::string node;      ///< where the current attempt went ("" while held)
  uint32_t attempt = 0;  ///< replies to older attempts are ignored
};

struct router_state {
  std::string self_name;
  bool self_hosts = false;
  envelope_handler local;
  std::map<std::string, envelope_handler> peers;  // live peers with the entity role
  std::vector<std::string> candidates;            // self (if it hosts) + live peers, sorted
  std::unordered_map<uint64_t, pending_request> pending;
  uint64_t next_ticket = 0;
  std::shared_ptr<entity_directory> dir;  // told the candidates, for entity_router

  deadline_wheel* wheel = nullptr;

  void rebuild() {
    candidates.clear();
    if (self_hosts) candidates.push_back(self_name);
    for (const auto& [name, handle] : peers) candidates.push_back(name);
    std::sort(candidates.begin(), candidates.end());
    if (!dir) return;
    std::vector<envelope_handler> registries;
    for (const auto& name : candidates)
      registries.push_back(name == self_name ? local : peers.at(name));
    dir->set_candidates(candidates, std::move(registries));
  }

  /// The owner's registry and name, or nothing when no node hosts entities.
  std::optional<std::pair<std::string, envelope_handler>> owner_of(const entity_envelope& env) {
    auto owner = rendezvous_owner(entity_key(env), candidates);
    if (!owner) return std::nullopt;
    const auto& name = candidates[*owner];
    return std::make_pair(name, name == self_name ? local : peers.at(name));
  }

  static inline const char* name = "chorus.router";
};

using self_pointer = router_actor::stateful_pointer<router_state>;

void attempt(self_pointer self, uint64_t ticket);

void finish(self_pointer self, uint64_t ticket, caf::expected<std::string> result) {
  auto& pending = self->state.pending;
  auto it = pending.find(ticket);
  if (it == pending.end()) return;
  if (result)
    it->second.promise.deliver(std::move(*result));
  else
    it->second.promise.deliver(std::move(result.error()));
  pending.erase(it);
}

/// Sends (or holds) the envelope with `ticket` to its current owner.
void attempt(self_pointer self, uint64_t ticket) {
  auto& st = self->state;
  auto it = st.pending.find(ticket);
  if (it == st.pending.end()) return;
  auto& p = it->second;
  auto left = p.env.deadline_ms - now_ms();
  if (left <= 0) {
    finish(self, ticket,
           make_error(runtime_errc::no_owner,
                      "no owner answered for " + entity_key(p.env) + " before the deadline"));
    return;
  }
  auto owner = st.owner_of(p.env);
  if (!owner) {
    // Nobody hosts entities right now (a restart, a partition): hold it and look again.
    p.node.clear();
    self->delayed_send(self, hold_interval, retry_atom_v, ticket);
    return;
  }
  p.node = owner->first;
  auto n = ++p.attempt;
  request_within<std::string>(self, *st.wheel, owner->second, std::chrono::milliseconds{left},
                              p.env)
      .then(
          [self, ticket, n](std::string& reply) {
            auto it = self->state.pending.find(ticket);
            if (it != self->state.pending.end() && it->second.attempt == n)
              finish(self, ticket, std::move(reply));
          },
          [self, ticket, n](caf::error& err) {
            auto it = self->state.pending.find(ticket);
            if (it == self->state.pending.end() || it->second.attempt != n) return;
            // The owner went away during the request (its actors exited): send it again to
            // whoever owns it now. Anything else is the entity's answer, or the deadline.
            if (err.category() == caf::atom("exit")) {
              attempt(self, ticket);
              return;
            }
            finish(self, ticket, std::move(err));
          });
}

router_actor::behavior_type router(self_pointer self, const node_spec* me, envelope_handler local,
                                   std::shared_ptr<entity_directory> dir, deadline_wheel* wheel) {
  auto& st = self->state;
  st.wheel = wheel;
  st.self_name = me->name.str();
  st.self_hosts = me->has_role(entity_role);
  st.local = std::move(local);
  st.dir = std::move(dir);
  st.rebuild();
  return {
      [self](entity_envelope& env) -> caf::result<std::string> {
        auto& st = self->state;
        if (env.redeliverable) {
          if (env.deadline_ms == 0)
            env.deadline_ms = now_ms() + std::chrono::milliseconds{default_deadline}.count();
          auto ticket = ++st.next_ticket;
          auto rp = self->make_response_promise<std::string>();
          st.pending.emplace(ticket, pending_request{std::move(env), rp, {}, 0});
          attempt(self, ticket);
          return rp;
        }
        auto owner = st.owner_of(env);
        if (!owner) return make_error(runtime_errc::no_owner, "no live node hosts entities");
        return self->delegate(owner->second, std::move(env));
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
        auto& st = self->state;
        st.peers.erase(name);
        st.rebuild();
        // Requests in flight to the lost node will never be answered: send them to the new
        // owners now instead of letting them wait for their deadline.
        std::vector<uint64_t> lost;
        for (const auto& [ticket, p] : st.pending)
          if (p.node == name) lost.push_back(ticket);
        for (auto ticket : lost) attempt(self, ticket);
      },
      [self](retry_atom, uint64_t ticket) { attempt(self, ticket); },
  };
}

}  // namespace

router_actor spawn_router(caf::actor_system& sys, const node_spec& self,
                          envelope_handler local_registry, std::shared_ptr<entity_directory> dir,
                          deadline_wheel& wheel) {
  return sys.spawn(router, &self, std::move(local_registry), std::move(dir), &wheel);
}

entity_router::entity_router(std::shared_ptr<entity_directory> dir, envelope_handler router,
                             entity_registry_actor registry, entity_probe* probe,
                             std::chrono::milliseconds max_queue_age, deadline_wheel& wheel)
    : dir_(std::move(dir)),
      targets_(std::make_shared<const targets>(
          targets{std::move(router), std::move(registry), probe, &wheel})),
      max_queue_age_ns_(std::chrono::nanoseconds{max_queue_age}.count()) {}

namespace {

// Forwards a request's outcome to `done`.
template <class Handle, class... Ts>
void ask_actor(caf::event_based_actor* self, deadline_wheel& wheel, const Handle& dest,
               std::chrono::milliseconds timeout, entity_gateway::reply_handler done, Ts&&... xs) {
  request_within<std::string>(self, wheel, dest, timeout, std::forward<Ts>(xs)...)
      .then([done](std::string& reply) { done(std::move(reply)); },
            [done](caf::error& err) { done(std::move(err)); });
}

}  // namespace

void entity_router::ask(caf::event_based_actor* self, entity_envelope env,
                        std::chrono::milliseconds timeout, reply_handler done) const {
  timeout = std::max(timeout, std::chrono::milliseconds{1});
  if (env.deadline_ms > 0)
    timeout = std::clamp(std::chrono::milliseconds{env.deadline_ms - now_ms()},
                         std::chrono::milliseconds{1}, timeout);
  auto key = entity_key(env);
  auto& wheel = *targets_->wheel;
  auto owner = dir_->owner(key);
  if (owner && !owner->local && owner->registry && !env.redeliverable) {
    // Another node's: what the router actor would do (delegate to that node's registry),
    // without the hop through it. Redeliverable envelopes need the router, which sends them
    // again when their owner is lost.
    ask_actor(self, wheel, owner->registry, timeout, std::move(done), std::move(env));
    return;
  }
  std::shared_ptr<activation_cell> cell;
  // A caller that gives up before max-queue-age cannot tell the cell when the entity really
  // got to its request (a timed-out request still sits in the mailbox), so the bounded-mailbox
  // bookkeeping would drift: such short requests take the router's path, whose registry waits
  // for the entity by the envelope's deadline.
  if (std::chrono::nanoseconds{timeout}.count() >= max_queue_age_ns_ && owner && owner->local)
    cell = dir_->find(key);
  if (!cell) {
    ask_actor(self, wheel, targets_->router, timeout, std::move(done), std::move(env));
    return;
  }
  auto sent = steady_ns_now();
  if (auto age = cell->admit(sent, max_queue_age_ns_)) {
    targets_->probe->overloaded(cell->kind());
    done(overloaded_error(key, *age));
    return;
  }
  // One allocation carries what the answer needs; the envelope is kept for a redelivery and
  // the activation gets a copy.
  struct direct_call {
    std::shared_ptr<activation_cell> cell;
    std::shared_ptr<const targets> to;
    reply_handler done;
    entity_envelope env;
    int64_t sent;
    std::chrono::milliseconds timeout;
  };
  auto call = std::make_shared<direct_call>(
      direct_call{std::move(cell), targets_, std::move(done), std::move(env), sent, timeout});
  request_within<std::string>(self, wheel, call->cell->handle(), timeout, call->env)
      .then(
          [call](std::string& reply) {
            call->to->probe->answered(
                call->cell->kind(),
                std::chrono::nanoseconds{call->cell->answered(steady_ns_now())});
            call->done(std::move(reply));
          },
          [self, call](caf::error& err) {
            auto now = steady_ns_now();
            call->to->probe->answered(call->cell->kind(),
                                      std::chrono::nanoseconds{call->cell->answered(now)});
            auto left =
                std::max(std::chrono::milliseconds{1},
                         call->timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::nanoseconds{now - call->sent}));
            if (bounced(err)) {
              // The activation stopped (passivated, evicted, or failed on the message ahead):
              // the router's path activates it again.
              ask_actor(self, *call->to->wheel, call->to->router, left, std::move(call->done),
                        std::move(call->env));
              return;
            }
            if (failed_on_it(err)) {
              ask_actor(self, *call->to->wheel, call->to->registry, left, std::move(call->done),
                        redeliver_atom_v, std::move(call->env), uint32_t{1}, error_detail(err));
              return;
            }
            call->done(std::move(err));
          });
}

}  // namespace chorus
