#include "nodes/entity_registry.hpp"

#include <deque>
#include <list>
#include <unordered_map>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errors.hpp"
#include "messages/node.pb.h"
#include "nodes/entity_probe.hpp"
#include "persistence/errc.hpp"

namespace chorus {

namespace {

using clock_type = std::chrono::steady_clock;

struct activation {
  envelope_handler handle;
  std::string kind;
  clock_type::time_point last_used;
  std::list<std::string>::iterator lru;  // position in registry_state::lru
  // When each request now queued at (or being handled by) the entity was sent, oldest first
  // from `head`: an actor answers in mailbox order, so answers advance `head`. A vector, not a
  // deque: an idle activation must not carry the ~600 bytes an empty std::deque allocates.
  std::vector<clock_type::time_point> in_flight;
  size_t head = 0;

  [[nodiscard]] bool idle() const { return head == in_flight.size(); }
  [[nodiscard]] clock_type::time_point oldest() const { return in_flight[head]; }
  void pop() {
    if (++head == in_flight.size()) {
      in_flight.clear();
      head = 0;
    }
  }
};

// A message on its way to an entity, with the caller waiting on `promise`.
struct delivery {
  entity_envelope env;
  caf::typed_response_promise<std::string> promise;
  uint32_t attempts = 0;  // deliveries the entity failed on
  uint32_t bounces = 0;   // deliveries that found the activation already gone
  std::string last_error;
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
  // Every message on its way to an entity or waiting for a redelivery, by ticket: callbacks
  // carry the ticket, not a copy of the envelope.
  std::unordered_map<uint64_t, delivery> deliveries;
  uint64_t next_ticket = 0;
  std::deque<messages::DeadLetter> dead;  // newest at the front
  // Entities whose stream cannot be read, with the error and until when they are refused.
  std::unordered_map<std::string, std::pair<caf::error, clock_type::time_point>> quarantined;

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

// The activation for the envelope's entity, spawned if there is none; an error for an
// unknown kind.
caf::expected<activation*> activation_for(self_pointer self, const std::string& key,
                                          const entity_envelope& env) {
  auto& st = self->state;
  auto i = st.active.find(key);
  if (i != st.active.end()) {
    i->second.last_used = clock_type::now();
    st.lru.splice(st.lru.end(), st.lru, i->second.lru);
    return &i->second;
  }
  auto kind = st.kinds->find(env.kind);
  if (kind == st.kinds->end())
    return make_error(runtime_errc::unknown_kind, "no entity kind \"" + env.kind + "\"");
  auto handle = kind->second(self->system(), env.id, st.ctx);
  self->monitor(handle);
  st.lru.push_back(key);
  auto* added =
      &st.active
           .emplace(key,
                    activation{handle, env.kind, clock_type::now(), std::prev(st.lru.end()), {}})
           .first->second;
  st.keys.emplace(caf::actor_cast<caf::actor_addr>(handle), key);
  ++st.per_kind[env.kind];
  st.probe->activated(env.kind);
  // The newcomer sits at the back, so eviction never takes it.
  while (st.active.size() > st.limits.max_active)
    passivate(self, st.active.find(st.lru.front()), "evicted");
  return added;  // unordered_map nodes stay put when others are erased
}

// The entity answered (or failed) one request of `handle`'s activation.
void answered(self_pointer self, const std::string& key, const envelope_handler& handle) {
  auto& st = self->state;
  auto i = st.active.find(key);
  if (i == st.active.end() || i->second.handle != handle || i->second.idle()) return;
  st.probe->answered(i->second.kind, clock_type::now() - i->second.oldest());
  i->second.pop();
}

// Drops `handle` if it is still the activation of its entity (the down handler may have been
// first); counts the failure once.
void drop_failed(self_pointer self, const envelope_handler& handle) {
  auto& st = self->state;
  auto k = st.keys.find(handle.address());
  if (k == st.keys.end()) return;
  auto i = st.active.find(k->second);
  self->demonitor(handle.address());
  st.probe->failed(i->second.kind);
  forget(self, i);
}

// The entity failed while handling this very message (see `guarded`).
bool failed_on_it(const caf::error& err) {
  return err.category() == runtime_category &&
         err.code() == static_cast<uint8_t>(runtime_errc::entity_failed);
}

bool corrupt(const caf::error& err) {
  return err.category() == persistence::errc_category &&
         err.code() == static_cast<uint8_t>(persistence::errc::corrupt_stream);
}

// Refuses `key` with `err` for the configured time: every activation would stop again.
void quarantine(self_pointer self, const std::string& key, const caf::error& err) {
  auto& st = self->state;
  auto until = clock_type::now() + st.limits.corrupt_quarantine;
  auto [it, fresh] = st.quarantined.try_emplace(key, err, until);
  if (!fresh) it->second = {err, until};
}

// The message never reached a live activation: it sat in the mailbox of one that stopped (for
// instance because the message ahead of it was poison). Not the message's fault.
bool bounced(const caf::error& err) {
  return err.category() == caf::atom("exit") ||
         (err.category() == caf::atom("system") &&
          err.code() == static_cast<uint8_t>(caf::sec::request_receiver_down));
}

// A bounced message is redelivered at once; this many times at most, so that an entity that
// cannot even start does not loop forever.
constexpr uint32_t max_bounces = 10;

void park(self_pointer self, delivery& d) {
  auto& st = self->state;
  messages::DeadLetter letter;
  letter.set_kind(d.env.kind);
  letter.set_id(d.env.id);
  letter.set_type(d.env.type);
  letter.set_error(d.last_error);
  letter.set_attempts(d.attempts);
  letter.set_parked_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count());
  letter.set_node(st.ctx.node);
  st.dead.push_front(letter);
  if (st.dead.size() > st.limits.dead_letter_capacity) st.dead.pop_back();
  st.probe->parked(d.env.kind);
  st.log->error("registry", "message parked as a dead letter",
                {{"entity", entity_key(d.env)},
                 {"type", d.env.type},
                 {"attempts", std::to_string(d.attempts)},
                 {"error", d.last_error}});
  d.promise.deliver(make_error(runtime_errc::parked, d.env.type + " failed " +
                                                         std::to_string(d.attempts) +
                                                         " times and was parked: " + d.last_error));
}

// Sends the delivery with `ticket` to its entity's activation (spawning one if needed).
void deliver(self_pointer self, uint64_t ticket) {
  auto& st = self->state;
  auto di = st.deliveries.find(ticket);
  if (di == st.deliveries.end()) return;
  auto& d = di->second;
  auto key = entity_key(d.env);
  if (auto q = st.quarantined.find(key); q != st.quarantined.end()) {
    if (clock_type::now() < q->second.second) {
      d.promise.deliver(q->second.first);
      st.deliveries.erase(di);
      return;
    }
    st.quarantined.erase(q);
  }
  auto act = activation_for(self, key, d.env);
  if (!act) {
    d.promise.deliver(act.error());
    st.deliveries.erase(di);
    return;
  }
  auto& a = **act;
  auto now = clock_type::now();
  // Bounded mailbox: when the oldest request still waiting at this entity is older than the
  // limit, refuse new work instead of queueing it without bound.
  if (!a.idle() && now - a.oldest() > st.limits.max_queue_age) {
    auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - a.oldest());
    st.probe->overloaded(a.kind);
    d.promise.deliver(make_error(
        runtime_errc::overloaded,
        key + " is overloaded: its oldest request waits " + std::to_string(age.count()) + " ms"));
    st.deliveries.erase(di);
    return;
  }
  a.in_flight.push_back(now);
  auto timeout = st.limits.default_timeout;
  if (d.env.deadline_ms > 0) {
    auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    timeout =
        std::max(std::chrono::milliseconds{1}, std::chrono::milliseconds{d.env.deadline_ms} - wall);
  }
  // The delivery keeps the envelope for a redelivery; the entity gets a copy.
  self->request(a.handle, timeout, d.env)
      .then(
          [self, ticket, key, handle = a.handle](std::string& reply) {
            answered(self, key, handle);
            auto i = self->state.deliveries.find(ticket);
            i->second.promise.deliver(std::move(reply));
            self->state.deliveries.erase(i);
          },
          [self, ticket, key, failed = a.handle](caf::error& err) {
            answered(self, key, failed);
            auto& st = self->state;
            auto i = st.deliveries.find(ticket);
            auto& d = i->second;
            if (bounced(err) && ++d.bounces <= max_bounces) {
              drop_failed(self, failed);
              deliver(self, ticket);
              return;
            }
            if (corrupt(err)) quarantine(self, key, err);
            if (!failed_on_it(err)) {
              d.promise.deliver(std::move(err));
              st.deliveries.erase(i);
              return;
            }
            drop_failed(self, failed);
            ++d.attempts;
            d.last_error = error_detail(err);
            if (d.attempts >= st.limits.max_attempts) {
              park(self, d);
              st.deliveries.erase(i);
              return;
            }
            auto backoff = st.limits.retry_backoff * (1u << (d.attempts - 1));
            self->delayed_send(self, backoff, retry_atom_v, ticket);
          });
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
    if (corrupt(msg.reason)) {
      st.log->error("registry", "entity stopped: its stream cannot be read by this version",
                    {{"entity", k->second},
                     {"error", error_detail(msg.reason)},
                     {"refused_for_ms", std::to_string(st.limits.corrupt_quarantine.count())}});
      quarantine(self, k->second, msg.reason);
      st.probe->corrupt(i->second.kind);
    } else {
      st.log->warn("registry", "entity failed; it restarts on its next message",
                   {{"entity", k->second}, {"reason", self->system().render(msg.reason)}});
      st.probe->failed(i->second.kind);
    }
    forget(self, i);
  });
  self->delayed_send(self, limits.sweep_interval, sweep_atom_v);
  return {
      [self](entity_envelope& env) {
        auto promise = self->make_response_promise<std::string>();
        auto ticket = ++self->state.next_ticket;
        self->state.deliveries.emplace(ticket, delivery{std::move(env), promise, 0, 0, {}});
        deliver(self, ticket);
        return promise;
      },
      [self](retry_atom, uint64_t ticket) { deliver(self, ticket); },
      [self](dead_atom) {
        messages::DeadLetters out;
        for (const auto& letter : self->state.dead) *out.add_letters() = letter;
        return out.SerializeAsString();
      },
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
        auto now = clock_type::now();
        std::erase_if(st.quarantined, [now](const auto& q) { return q.second.second <= now; });
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
