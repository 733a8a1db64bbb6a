#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

namespace chorus {

/// An event to append: protobuf type name, bytes, and JSON metadata (trace context, causation).
struct new_event {
  std::string type;
  std::string payload;
  std::string metadata_json = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_event& x) {
  return f(caf::meta::type_name("chorus::new_event"), x.type, x.payload, x.metadata_json);
}

/// An event as stored.
struct stored_event {
  std::string stream;
  int64_t version = 0;          ///< 1-based position within the stream
  int64_t global_position = 0;  ///< position in the whole journal (commit order not guaranteed)
  std::string type;
  std::string payload;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stored_event& x) {
  return f(caf::meta::type_name("chorus::stored_event"), x.stream, x.version, x.global_position,
           x.type, x.payload);
}

/// What an entity needs to restore itself: the latest snapshot (when `snapshot_version` > 0)
/// and the events after it, oldest first. `version` is the stream's version after them all.
struct loaded_stream {
  int64_t snapshot_version = 0;
  std::string snapshot_type;
  std::string snapshot_payload;
  std::vector<stored_event> events;
  int64_t version = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, loaded_stream& x) {
  return f(caf::meta::type_name("chorus::loaded_stream"), x.snapshot_version, x.snapshot_type,
           x.snapshot_payload, x.events, x.version);
}

}  // namespace chorus
