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

#include "common/clock.hpp"
#include "messages/errors.hpp"
#include "messages/node.pb.h"
#include "nodes/entity_probe.hpp"
#include "persistence/errc.hpp"

namespace chorus {

namespace {

using clock_type = std::chrono::steady_clock;

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
  // The activations: published in the directory (the one map of them), in LRU order here, and
  // by actor address for down messages. Keys point at the directory's stored keys.
  std::shared_ptr<entity_directory> dir;
  std::list<const std::string*> lru;  // front: least recently used, as the registry last saw
  std::unordered_map<caf::actor_addr, const std::string*> keys;
  std::map<std::string, uint64_t> per_kind;
  size_t active = 0;
  // Every message on its way to an entity or waiting for a redelivery, by ticket: callbacks
  // carry the ticket, not a copy of the envelope.
  std::unordered_map<uint64_t, delivery> deliveries;
  uint64_t next_ticket = 0;
  std::deque<messages::DeadLetter> dead;  // newest at the front
  // Entities whose stream cannot be read, with the error and until when they are refused.
  std::unordered_map<std::string, std::pair<caf::error, clock_type::time_point>> quarantined;
  deadline_wheel* wheel = nullptr;

  static inline const char* name = "chorus.entity_registry";
};

using self_pointer = entity_registry_actor::stateful_pointer<registry_state>;

void forget(self_pointer self, const std::string* key, activation_cell& cell) {
  auto& st = self->state;
  st.keys.erase(cell.handle().address());
  st.lru.erase(cell.lru);
  if (--st.per_kind[cell.kind()] == 0) st.per_kind.erase(cell.kind());
  --st.active;
  st.dir->erase(*key);
}

void passivate(self_pointer self, const std::string* key, activation_cell& cell,
               const char* reason) {
  self->demonitor(cell.handle().address());
  self->send_exit(cell.handle(), caf::exit_reason::user_shutdown);
  self->state.probe->passivated(cell.kind(), reason);
  forget(self, key, cell);
}

// The front of the LRU list if it was last used before `used_before`, else nothing. An
// activation that callers used directly since the registry last looked (its cell's last_used
// moved) goes to the back instead, once (second chance): the order follows every use without
// the registry seeing each request. `skip` is never returned.
std::pair<const std::string*, std::shared_ptr<activation_cell>> least_recently_used(
    self_pointer self, int64_t used_before, const std::string* skip = nullptr) {
  auto& st = self->state;
  for (auto budget = st.lru.size(); budget > 0; --budget) {
    auto* key = st.lru.front();
    auto cell = st.dir->find(*key);
    auto used = cell->last_used();
    if (key != skip && used == cell->seen_used) {
      // The list is ordered by seen_used: when the front is too recent, so is the rest.
      if (used >= used_before) break;
      return {key, std::move(cell)};
    }
    cell->seen_used = used;
    st.lru.splice(st.lru.end(), st.lru, cell->lru);
  }
  return {nullptr, nullptr};
}

// The activation for the envelope's entity, spawned if there is none; an error for an
// unknown kind.
caf::expected<std::shared_ptr<activation_cell>> activation_for(self_pointer self,
                                                               const std::string& key,
                                                               const entity_envelope& env,
                                                               int64_t now) {
  auto& st = self->state;
  if (auto cell = st.dir->find(key)) {
    cell->seen_used = now;
    st.lru.splice(st.lru.end(), st.lru, cell->lru);
    return cell;
  }
  auto kind = st.kinds->find(env.kind);
  if (kind == st.kinds->end())
    return make_error(runtime_errc::unknown_kind, "no entity kind \"" + env.kind + "\"");
  auto handle = kind->second(self->system(), env.id, st.ctx);
  self->monitor(handle);
  auto cell = std::make_shared<activation_cell>(handle, kind->first, now);
  cell->seen_used = now;
  auto* stored = st.dir->insert(key, cell);
  st.lru.push_back(stored);
  cell->lru = std::prev(st.lru.end());
  st.keys.emplace(handle.address(), stored);
  ++st.per_kind[env.kind];
  ++st.active;
  st.probe->activated(env.kind);
  // The newcomer is never the one evicted.
  while (st.active > st.limits.max_active) {
    auto [victim, victim_cell] = least_recently_used(self, INT64_MAX, stored);
    if (victim == nullptr) break;
    passivate(self, victim, *victim_cell, "evicted");
  }
  return cell;
}

// Drops `handle` if it is still the activation of its entity (the down handler may have been
// first); counts the failure once.
void drop_failed(self_pointer self, const envelope_handler& handle) {
  auto& st = self->state;
  auto k = st.keys.find(handle.address());
  if (k == st.keys.end()) return;
  auto* key = k->second;
  auto cell = st.dir->find(*key);
  self->demonitor(handle.address());
  st.probe->failed(cell->kind());
  forget(self, key, *cell);
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

// The entity failed on the delivery with `ticket` (its attempts already counted): parked after
// the last attempt, else redelivered after a back-off that doubles with each attempt.
void after_failure(self_pointer self, uint64_t ticket) {
  auto& st = self->state;
  auto i = st.deliveries.find(ticket);
  auto& d = i->second;
  if (d.attempts >= st.limits.max_attempts) {
    park(self, d);
    st.deliveries.erase(i);
    return;
  }
  auto backoff = st.limits.retry_backoff * (1u << (d.attempts - 1));
  self->delayed_send(self, backoff, retry_atom_v, ticket);
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
  auto now = steady_ns_now();
  auto act = activation_for(self, key, d.env, now);
  if (!act) {
    d.promise.deliver(act.error());
    st.deliveries.erase(di);
    return;
  }
  auto cell = std::move(*act);
  // Bounded mailbox: when the oldest request still waiting at this entity is older than the
  // limit, refuse new work instead of queueing it without bound.
  if (auto age = cell->admit(now, std::chrono::nanoseconds{st.limits.max_queue_age}.count())) {
    st.probe->overloaded(cell->kind());
    d.promise.deliver(overloaded_error(key, *age));
    st.deliveries.erase(di);
    return;
  }
  auto timeout = st.limits.default_timeout;
  if (d.env.deadline_ms > 0) {
    auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    timeout =
        std::max(std::chrono::milliseconds{1}, std::chrono::milliseconds{d.env.deadline_ms} - wall);
  }
  // The delivery keeps the envelope for a redelivery; the entity gets a copy.
  request_within<std::string>(self, *st.wheel, cell->handle(), timeout, d.env)
      .then(
          [self, ticket, cell](std::string& reply) {
            self->state.probe->answered(cell->kind(),
                                        std::chrono::nanoseconds{cell->answered(steady_ns_now())});
            auto i = self->state.deliveries.find(ticket);
            i->second.promise.deliver(std::move(reply));
            self->state.deliveries.erase(i);
          },
          [self, ticket, key, cell](caf::error& err) {
            self->state.probe->answered(cell->kind(),
                                        std::chrono::nanoseconds{cell->answered(steady_ns_now())});
            auto& st = self->state;
            auto i = st.deliveries.find(ticket);
            auto& d = i->second;
            if (bounced(err) && ++d.bounces <= max_bounces) {
              drop_failed(self, cell->handle());
              deliver(self, ticket);
              return;
            }
            if (corrupt(err)) quarantine(self, key, err);
            if (!failed_on_it(err)) {
              d.promise.deliver(std::move(err));
              st.deliveries.erase(i);
              return;
            }
            drop_failed(self, cell->handle());
            ++d.attempts;
            d.last_error = error_detail(err);
            after_failure(self, ticket);
          });
}

entity_registry_actor::behavior_type registry(self_pointer self, const entity_kinds* kinds,
                                              entity_context ctx, registry_limits limits,
                                              entity_probe* probe, json_log* log,
                                              std::shared_ptr<entity_directory> dir,
                                              deadline_wheel* wheel) {
  auto& st = self->state;
  st.wheel = wheel;
  st.kinds = kinds;
  st.ctx = std::move(ctx);
  st.limits = limits;
  st.probe = probe;
  st.log = log;
  st.dir = std::move(dir);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto k = st.keys.find(msg.source);
    if (k == st.keys.end()) return;
    auto* key = k->second;
    auto cell = st.dir->find(*key);
    if (corrupt(msg.reason)) {
      st.log->error("registry", "entity stopped: its stream cannot be read by this version",
                    {{"entity", *key},
                     {"error", error_detail(msg.reason)},
                     {"refused_for_ms", std::to_string(st.limits.corrupt_quarantine.count())}});
      quarantine(self, *key, msg.reason);
      st.probe->corrupt(cell->kind());
    } else {
      st.log->warn("registry", "entity failed; it restarts on its next message",
                   {{"entity", *key}, {"reason", self->system().render(msg.reason)}});
      st.probe->failed(cell->kind());
    }
    forget(self, key, *cell);
  });
  // The registry stops with its node: so do the activations it spawned. They are not linked to
  // it (one failing must not take the registry down), so without this they would idle on and
  // hold the actor system's shutdown until something else ended them.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (!msg.reason) return;  // a linked actor that ended normally: nothing to do (CAF's default)
    auto& st = self->state;
    for (const auto& [addr, key] : st.keys)
      if (auto cell = st.dir->find(*key)) self->send_exit(cell->handle(), msg.reason);
    self->quit(msg.reason);
  });
  self->delayed_send(self, limits.sweep_interval, sweep_atom_v);
  return {
      [self](entity_envelope& env) -> caf::result<std::string> {
        // A node-local service (not an entity): handed over as it is.
        const auto& services = self->state.ctx.services;
        if (auto svc = services.find(env.kind); svc != services.end())
          return self->delegate(svc->second, std::move(env));
        auto promise = self->make_response_promise<std::string>();
        auto ticket = ++self->state.next_ticket;
        self->state.deliveries.emplace(ticket, delivery{std::move(env), promise, 0, 0, {}});
        deliver(self, ticket);
        return promise;
      },
      [self](redeliver_atom, entity_envelope& env, uint32_t attempts, std::string& last_error) {
        auto promise = self->make_response_promise<std::string>();
        auto ticket = ++self->state.next_ticket;
        self->state.deliveries.emplace(
            ticket,
            delivery{std::move(env), promise, std::max(attempts, 1u), 0, std::move(last_error)});
        after_failure(self, ticket);
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
        auto cutoff = steady_ns_now() - std::chrono::nanoseconds{st.limits.idle_timeout}.count();
        for (;;) {
          auto [key, cell] = least_recently_used(self, cutoff);
          if (key == nullptr) break;
          passivate(self, key, *cell, "idle");
        }
        auto now = clock_type::now();
        std::erase_if(st.quarantined, [now](const auto& q) { return q.second.second <= now; });
        self->delayed_send(self, st.limits.sweep_interval, sweep_atom_v);
      },
  };
}

}  // namespace

bool failed_on_it(const caf::error& err) {
  return err.category() == runtime_category &&
         err.code() == static_cast<uint8_t>(runtime_errc::entity_failed);
}

bool bounced(const caf::error& err) {
  return err.category() == caf::atom("exit") ||
         (err.category() == caf::atom("system") &&
          err.code() == static_cast<uint8_t>(caf::sec::request_receiver_down));
}

caf::error overloaded_error(const std::string& key, int64_t age_ns) {
  return make_error(runtime_errc::overloaded, key + " is overloaded: its oldest request waits " +
                                                  std::to_string(age_ns / 1000000) + " ms");
}

entity_registry_actor spawn_entity_registry(caf::actor_system& sys, const entity_kinds& kinds,
                                            entity_context ctx, registry_limits limits,
                                            entity_probe& probe, json_log& log,
                                            std::shared_ptr<entity_directory> dir,
                                            deadline_wheel& wheel) {
  for (const auto& [kind, factory] : kinds) probe.add_kind(kind);
  return sys.spawn(registry, &kinds, std::move(ctx), limits, &probe, &log, std::move(dir), &wheel);
}

}  // namespace chorus
