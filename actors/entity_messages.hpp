#pragma once

#include <string>

#include <google/protobuf/message.h>

#include "actors/entity_kind.hpp"
#include "actors/event_sourced.hpp"

namespace chorus {

/// The full protobuf type name of `Message`: what envelopes and events carry as their type.
template <class Message>
std::string type_of() {
  return Message::descriptor()->full_name();
}

template <class Message>
bool is_type(const std::string& type) {
  return type == Message::descriptor()->full_name();
}

/// Parses `payload` into `out` when `type` names `Message`.
template <class Message>
bool parse_as(const std::string& type, const std::string& payload, Message& out) {
  return is_type<Message>(type) && out.ParseFromString(payload);
}

/// Parses the envelope's payload into `out` when the envelope carries a `Message`.
template <class Message>
bool parse_as(const entity_envelope& env, Message& out) {
  return parse_as(env.type, env.payload, out);
}

/// What every event-sourced entity activation keeps of its context: who it is, its journal
/// and its place in its stream "<kind>/<id>".
struct entity_base {
  entity_base() = default;
  entity_base(const std::string& kind, const std::string& id, const entity_context& ctx,
              const std::string& domain)
      : kind(kind),
        id(id),
        journal(ctx.journal(domain)),
        snapshot_every(ctx.snapshot_every),
        stream{kind + "/" + id},
        live(ctx.live) {
    stream.deadlines = ctx.deadlines;
  }

  std::string kind;
  std::string id;
  persistence::journal_actor journal;
  int64_t snapshot_every = 0;
  event_stream stream;
  live_hub live;  ///< where live events for WebSocket clients go (may be invalid)
};

/// The answer of an entity whose node has no journal for its domain.
inline caf::error no_journal(const entity_base& b) {
  return make_error(runtime_errc::unknown_kind, b.kind + ": this node has no journal for it");
}

/// The answer to a message type the entity does not handle (or whose payload does not parse).
inline caf::error unknown_message(const entity_base& b, const entity_envelope& env) {
  return make_error(runtime_errc::unknown_message_type,
                    b.kind + " does not handle " + env.type + " (or it does not parse)");
}

/// Runs one command of an activation whose state has `base` (entity_base) and `model`:
/// `execute` with the activation's journal and stream, answered through a response promise.
template <class Self, class Decide, class Reply>
caf::result<std::string> run_command(Self* self, Decide decide, Reply reply) {
  auto& st = self->state;
  auto rp = self->template make_response_promise<std::string>();
  execute(self, st.base.journal, st.base.stream, st.model, st.base.snapshot_every,
          std::move(decide), std::move(reply), rp);
  return rp;
}

/// An `execute` decision that changes nothing.
inline caf::expected<std::vector<new_event>> no_events() {
  return std::vector<new_event>{};
}

}  // namespace chorus
