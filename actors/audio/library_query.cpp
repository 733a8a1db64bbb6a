#include "actors/audio/library_query.hpp"

#include <memory>

#include <caf/typed_event_based_actor.hpp>

#include "actors/entity_messages.hpp"
#include "messages/audio.pb.h"
#include "messages/errors.hpp"
#include "persistence/audio_library.hpp"
#include "persistence/follows.hpp"

namespace chorus::audio {

namespace {

struct readers {
  persistence::audio_library_reader audio;
  persistence::follows_reader follows;
};

/// Whom `user` follows, up to max_feed_sources.
caf::expected<std::vector<std::string>> followees(persistence::follows_reader& db,
                                                  const std::string& user) {
  std::vector<std::string> out;
  std::string cursor;
  do {
    auto page = db.list(user, false, cursor, 100);
    if (!page) return page.error();
    for (const auto& r : page->rows) out.push_back(r.user_id);
    cursor = page->next_cursor;
  } while (!cursor.empty() && out.size() < static_cast<size_t>(max_feed_sources));
  return out;
}

template <class T>
caf::result<std::string> bytes_of(caf::expected<T> x) {
  if (!x) return std::move(x.error());
  return x->SerializeAsString();
}

envelope_handler::behavior_type library_query(envelope_handler::pointer,
                                              std::shared_ptr<readers> db) {
  return {[db](entity_envelope& env) -> caf::result<std::string> {
    messages::LibraryQuery q;
    if (!parse_as(env, q))
      return make_error(runtime_errc::unknown_message_type, "library query: " + env.type);
    const auto& what = q.what();
    if (what == "stats") return bytes_of(db->audio.stats(q.subject()));
    if (q.limit() < 1 || q.limit() > 100)
      return make_error(domain_errc::validation, "limit must be 1..100");
    if (what == "artist_tracks")
      return bytes_of(
          db->audio.artist_tracks(q.subject(), q.include_private(), q.cursor(), q.limit()));
    if (what == "likes" || what == "reposts")
      return bytes_of(db->audio.liked(q.subject(), what == "reposts", q.cursor(), q.limit()));
    if (what == "comments") return bytes_of(db->audio.comments(q.subject(), q.cursor(), q.limit()));
    if (what == "playlists")
      return bytes_of(db->audio.playlists(q.subject(), q.include_private(), q.cursor(), q.limit()));
    if (what == "feed") {
      auto sources = followees(db->follows, q.subject());
      if (!sources) return std::move(sources.error());
      return bytes_of(db->audio.feed(*sources, q.cursor(), q.limit()));
    }
    return make_error(domain_errc::validation, "unknown library query " + what);
  }};
}

}  // namespace

envelope_handler spawn_library_query(caf::actor_system& sys, std::string audio_dsn,
                                     std::string user_dsn,
                                     std::shared_ptr<persistence::redis_cache> cache) {
  auto db = std::shared_ptr<readers>(
      new readers{persistence::audio_library_reader{std::move(audio_dsn), std::move(cache)},
                  persistence::follows_reader{std::move(user_dsn)}});
  return sys.spawn<caf::detached>(library_query, std::move(db));
}

}  // namespace chorus::audio
