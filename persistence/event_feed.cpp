#include "persistence/event_feed.hpp"

#include <charconv>

namespace chorus::persistence {

namespace {

template <class Int>
bool parse_int(const std::string& s, Int& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size() && !s.empty();
}

}  // namespace

stream_fields encode_feed_entry(const feed_event& e) {
  return {{"position", std::to_string(e.at.position)},
          {"txid", std::to_string(e.at.txid)},
          {"stream", e.event.stream},
          {"version", std::to_string(e.event.version)},
          {"type", e.event.type},
          {"payload", e.event.payload}};
}

std::optional<feed_event> decode_feed_entry(const stream_fields& fields) {
  feed_event out;
  int seen = 0;
  for (const auto& [key, value] : fields) {
    if (key == "position") {
      if (!parse_int(value, out.at.position)) return std::nullopt;
      out.event.global_position = out.at.position;
    } else if (key == "txid") {
      if (!parse_int(value, out.at.txid)) return std::nullopt;
    } else if (key == "stream") {
      out.event.stream = value;
    } else if (key == "version") {
      if (!parse_int(value, out.event.version)) return std::nullopt;
    } else if (key == "type") {
      out.event.type = value;
    } else if (key == "payload") {
      out.event.payload = value;
    } else {
      continue;  // a field added by a later version
    }
    ++seen;
  }
  if (seen != 6 || out.at.position <= 0 || out.event.stream.empty()) return std::nullopt;
  return out;
}

std::string feed_stream_name(const std::string& database) {
  return "chorus:events:" + database;
}

}  // namespace chorus::persistence
