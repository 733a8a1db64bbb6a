#include "actors/debug/counter_entity.hpp"

#include <chrono>
#include <stdexcept>
#include <thread>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/debug.pb.h"
#include "messages/errors.hpp"

namespace chorus::debug {

namespace {

struct counter_state {
  std::string id;
  entity_context ctx;
  int32_t value = 0;

  static inline const char* name = "chorus.debug.counter";
};

std::string reply(const counter_state& st) {
  messages::CounterValue out;
  out.set_id(st.id);
  out.set_value(st.value);
  out.set_node(st.ctx.node);
  return out.SerializeAsString();
}

envelope_handler::behavior_type counter(envelope_handler::stateful_pointer<counter_state> self,
                                        std::string id, entity_context ctx) {
  self->state.id = std::move(id);
  self->state.ctx = std::move(ctx);
  return {
      guarded(self,
              [self](entity_envelope& env) -> caf::expected<std::string> {
                auto& st = self->state;
                if (env.type == messages::CounterIncrement::descriptor()->full_name()) {
                  messages::CounterIncrement cmd;
                  if (!cmd.ParseFromString(env.payload))
                    return make_error(runtime_errc::bad_payload, "CounterIncrement does not parse");
                  st.value += cmd.by() == 0 ? 1 : cmd.by();
                  return reply(st);
                }
                if (env.type == messages::CounterGet::descriptor()->full_name()) return reply(st);
                if (env.type == messages::CounterBusy::descriptor()->full_name()) {
                  messages::CounterBusy cmd;
                  if (!cmd.ParseFromString(env.payload) || cmd.ms() < 0 || cmd.ms() > 5000)
                    return make_error(runtime_errc::bad_payload, "CounterBusy.ms must be 0..5000");
                  // Debug only: holds a scheduler thread on purpose, like a slow handler would.
                  std::this_thread::sleep_for(std::chrono::milliseconds{cmd.ms()});
                  return reply(st);
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
