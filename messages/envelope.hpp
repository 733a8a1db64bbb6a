#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

namespace chorus {

/// What travels to an entity: its address (kind, id), the protobuf message type name and bytes,
/// and the caller's deadline and trace context. CAF carries only this; a new command is a
/// .proto change, and nodes of two versions can still exchange envelopes.
struct entity_envelope {
  std::string kind;         ///< entity kind, e.g. "counter"
  std::string id;           ///< entity id within the kind
  std::string type;         ///< full protobuf name of `payload`, e.g. "chorus.messages.CounterGet"
  std::string payload;      ///< serialized protobuf message
  std::string traceparent;  ///< W3C traceparent of the caller ("" when none)
  int64_t deadline_ms = 0;  ///< Unix time in ms after which the caller no longer waits; 0: none
  /// The sender made delivering this twice harmless (a read, or a command carrying an
  /// idempotency key): the router may then redeliver it to a new owner when the old one is lost
  /// mid-request, or hold it until an owner exists, instead of failing it.
  bool redeliverable = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entity_envelope& x) {
  return f(caf::meta::type_name("chorus::entity_envelope"), x.kind, x.id, x.type, x.payload,
           x.traceparent, x.deadline_ms, x.redeliverable);
}

/// Anything that takes an envelope and answers with the reply's protobuf bytes: an entity, a
/// node's entity registry, a node's router. Failures are caf::error values (runtime_errc or a
/// domain's own enum).
using envelope_handler = caf::typed_actor<caf::replies_to<entity_envelope>::with<std::string>>;

/// The routing key of an entity: "kind/id".
inline std::string entity_key(const entity_envelope& e) {
  return e.kind + "/" + e.id;
}

}  // namespace chorus
