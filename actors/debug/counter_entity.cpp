#include "actors/debug/counter_entity.hpp"

#include <cctype>
#include <chrono>
#include <deque>
#include <memory>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/event_sourced.hpp"
#include "messages/debug.pb.h"
#include "messages/errors.hpp"

namespace chorus::debug {

namespace {

// Idempotency keys remembered per counter.
constexpr size_t key_window_size = 1000;

// How often an increment that lost a race to another activation is decided again.
constexpr int max_conflict_retries = 3;

/// The idempotency keys a counter remembers, oldest first. Allocated on the first key: a
/// default std::deque allocates, and most of a node's million idle counters never see a key.
struct key_window {
  std::deque<std::string> order;
  std::unordered_set<std::string> set;
};

/// The counter's state as the journal sees it.
struct counter_model {
  int32_t value = 0;
  std::unique_ptr<key_window> keys;

  void reset() {
    value = 0;
    keys.reset();
  }

  [[nodiscard]] bool seen(const std::string& key) const {
    return !key.empty() && keys && keys->set.count(key) > 0;
  }

  void remember(const std::string& key) {
    if (key.empty()) return;
    if (!keys) keys = std::make_unique<key_window>();
    if (!keys->set.insert(key).second) return;
    keys->order.push_back(key);
    if (keys->order.size() > key_window_size) {
      keys->set.erase(keys->order.front());
      keys->order.pop_front();
    }
  }

  bool restore(const std::string& type, const std::string& payload) {
    messages::CounterSnapshot snap;
    if (type != messages::CounterSnapshot::descriptor()->full_name() ||
        !snap.ParseFromString(payload))
      return false;
    value = snap.value();
    for (const auto& k : snap.recent_keys()) remember(k);
    return true;
  }

  bool apply(const std::string& type, const std::string& payload) {
    messages::CounterIncremented ev;
    if (type != messages::CounterIncremented::descriptor()->full_name() ||
        !ev.ParseFromString(payload))
      return false;
    value += ev.by();
    remember(ev.key());
    return true;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const {
    messages::CounterSnapshot snap;
    snap.set_value(value);
    if (keys)
      for (const auto& k : keys->order) snap.add_recent_keys(k);
    return {messages::CounterSnapshot::descriptor()->full_name(), snap.SerializeAsString()};
  }
};

/// Per activation; kept small (a node may hold a million idle counters): only what the counter
/// needs from its entity_context is copied.
struct counter_state {
  std::string id;
  std::string node;
  int64_t snapshot_every = 0;
  persistence::journal_actor journal;
  persistence::reminder_actor reminders;
  event_stream stream;
  counter_model model;

  static inline const char* name = "chorus.debug.counter";
};

using counter_self = envelope_handler::stateful_pointer<counter_state>;
using reply_promise = caf::typed_response_promise<std::string>;

std::string reply(const counter_state& st) {
  messages::CounterValue out;
  out.set_id(st.id);
  out.set_value(st.model.value);
  out.set_node(st.node);
  return out.SerializeAsString();
}

/// Restores, then runs `fn()` -> caf::expected<std::string> and answers with it.
template <class F>
reply_promise answer_restored(counter_self self, F fn) {
  auto rp = self->make_response_promise<std::string>();
  auto& st = self->state;
  with_restored(self, st.journal, st.stream, st.model, [rp, fn](caf::error err) mutable {
    if (err) {
      rp.deliver(std::move(err));
      return;
    }
    caf::expected<std::string> out = fn();
    if (out)
      rp.deliver(std::move(*out));
    else
      rp.deliver(std::move(out.error()));
  });
  return rp;
}

void increment(counter_self self, messages::CounterIncrement cmd, reply_promise rp, int attempt) {
  auto& st = self->state;
  with_restored(self, st.journal, st.stream, st.model, [=](caf::error err) mutable {
    if (err) {
      rp.deliver(std::move(err));
      return;
    }
    auto& st = self->state;
    if (st.model.seen(cmd.key())) {
      rp.deliver(reply(st));  // applied before: the retry of a request whose answer got lost
      return;
    }
    messages::CounterIncremented ev;
    ev.set_by(cmd.by() == 0 ? 1 : cmd.by());
    ev.set_key(cmd.key());
    std::vector<new_event> events{new_event{messages::CounterIncremented::descriptor()->full_name(),
                                            ev.SerializeAsString(), "{}"}};
    persist(self, st.journal, st.stream, st.model, std::move(events), st.snapshot_every,
            [=](caf::error err) mutable {
              if (!err) {
                rp.deliver(reply(self->state));
                return;
              }
              bool conflict =
                  err.category() == persistence::errc_category &&
                  err.code() == static_cast<uint8_t>(persistence::errc::version_conflict);
              if (conflict && attempt < max_conflict_retries) {
                increment(self, std::move(cmd), std::move(rp), attempt + 1);
                return;
              }
              rp.deliver(std::move(err));
            });
  });
}

bool valid_reminder_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

/// Stores a reminder that increments this counter later, then answers the current value. The
/// reminder's increment carries the key "reminder:<name>", so a redelivery (reminders come at
/// least once) is recognised as applied.
reply_promise remind(counter_self self, const messages::CounterRemind& cmd) {
  auto rp = self->make_response_promise<std::string>();
  messages::CounterIncrement inc;
  inc.set_by(cmd.by() == 0 ? 1 : cmd.by());
  inc.set_key("reminder:" + cmd.name());
  using namespace std::chrono;
  auto due_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count() + cmd.after_ms();
  auto& st = self->state;
  with_restored(self, st.journal, st.stream, st.model,
                [self, rp, name = cmd.name(), due_ms, inc](caf::error err) mutable {
                  if (err) {
                    rp.deliver(std::move(err));
                    return;
                  }
                  auto& st = self->state;
                  self->request(st.reminders, journal_timeout, remind_atom_v,
                                std::string{counter_kind}, st.id, name, int64_t{due_ms},
                                messages::CounterIncrement::descriptor()->full_name(),
                                inc.SerializeAsString())
                      .await([self, rp](int64_t) mutable { rp.deliver(reply(self->state)); },
                             [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
                });
  return rp;
}

envelope_handler::behavior_type counter(counter_self self, std::string id, entity_context ctx) {
  auto& st = self->state;
  st.id = std::move(id);
  st.node = ctx.node;
  st.snapshot_every = ctx.snapshot_every;
  st.journal = ctx.journal(counter_domain);
  st.reminders = ctx.reminder(counter_domain);
  st.stream.name = std::string{counter_kind} + "/" + st.id;
  st.stream.deadlines = ctx.deadlines;
  return {
      guarded(self,
              [self](entity_envelope& env) -> caf::result<std::string> {
                if (!self->state.journal)
                  return make_error(runtime_errc::unknown_kind,
                                    "counter: this node has no analytics journal");
                if (env.type == messages::CounterIncrement::descriptor()->full_name()) {
                  messages::CounterIncrement cmd;
                  if (!cmd.ParseFromString(env.payload))
                    return make_error(runtime_errc::bad_payload, "CounterIncrement does not parse");
                  auto rp = self->make_response_promise<std::string>();
                  increment(self, std::move(cmd), rp, 0);
                  return rp;
                }
                if (env.type == messages::CounterGet::descriptor()->full_name())
                  return answer_restored(
                      self, [self]() -> caf::expected<std::string> { return reply(self->state); });
                if (env.type == messages::CounterRemind::descriptor()->full_name()) {
                  messages::CounterRemind cmd;
                  if (!cmd.ParseFromString(env.payload) || cmd.after_ms() < 0 ||
                      cmd.after_ms() > 86400000 || !valid_reminder_name(cmd.name()))
                    return make_error(runtime_errc::bad_payload,
                                      "CounterRemind: after_ms must be 0..86400000 and name "
                                      "1..64 of A-Z a-z 0-9 . _ -");
                  if (!self->state.reminders)
                    return make_error(runtime_errc::unknown_kind,
                                      "counter: this node has no analytics reminders");
                  return remind(self, cmd);
                }
                if (env.type == messages::CounterBusy::descriptor()->full_name()) {
                  messages::CounterBusy cmd;
                  if (!cmd.ParseFromString(env.payload) || cmd.ms() < 0 || cmd.ms() > 5000)
                    return make_error(runtime_errc::bad_payload, "CounterBusy.ms must be 0..5000");
                  // Debug only: holds a scheduler thread on purpose, like a slow handler would.
                  std::this_thread::sleep_for(std::chrono::milliseconds{cmd.ms()});
                  return reply(self->state);
                }
                if (env.type == messages::CounterPoison::descriptor()->full_name())
                  throw std::runtime_error("poisoned on purpose");
                return make_error(runtime_errc::unknown_message_type,
                                  "counter does not handle " + env.type);
              }),
  };
}

}  // namespace

entity_factory counter_factory() {
  return [](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(counter, id, ctx);
  };
}

}  // namespace chorus::debug
