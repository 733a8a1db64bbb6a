#include "persistence/audio_library.hpp"

#include <chrono>
#include <string_view>

#include "common/clock.hpp"
#include "messages/errors.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/pg_errors.hpp"
#include "persistence/pg_reader.hpp"
#include "persistence/redis_cache.hpp"

namespace chorus::persistence {

namespace {

constexpr std::string_view track_prefix = "track/";
constexpr std::string_view library_prefix = "library/";
constexpr std::string_view playlist_prefix = "playlist/";

std::string rfc3339_or_empty(const pqxx::field& f) {
  return f.is_null() ? std::string{} : rfc3339(f.as<int64_t>());
}

/// Reads rows `id, owner, title, artist, visibility, status, created_ms, ready_ms, at_ms, key_ms`
/// into a page of at most `limit` (the query asked for limit + 1 to know whether more follow).
messages::TrackPage track_page(const pqxx::result& rows, int limit) {
  messages::TrackPage page;
  for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
    const auto& row = rows[i];
    if (i == limit) {
      // The cursor is the key of the last row shown.
      const auto& last = rows[i - 1];
      page.set_next_cursor(last[9].as<std::string>() + "." + last[0].as<std::string>());
      break;
    }
    auto* t = page.add_tracks();
    t->set_id(row[0].as<std::string>());
    t->set_owner(row[1].as<std::string>());
    t->set_title(row[2].as<std::string>());
    t->set_artist(row[3].as<std::string>());
    t->set_visibility(row[4].as<std::string>());
    t->set_status(row[5].as<std::string>());
    t->set_created_at(rfc3339(row[6].as<int64_t>()));
    t->set_ready_at(rfc3339_or_empty(row[7]));
    t->set_at(rfc3339_or_empty(row[8]));
  }
  return page;
}

/// One UPDATE of row `id` of `table` that sets the columns whose value is present (an edit
/// event's optional fields); nothing when none is.
caf::error update_present(
    sql_tx& tx, const char* table, const std::string& id,
    std::initializer_list<std::pair<const char*, const std::string*>> columns) {
  std::string sets;
  std::vector<std::string> params{id};
  for (const auto& [column, value] : columns) {
    if (value == nullptr) continue;
    params.push_back(*value);
    sets +=
        (sets.empty() ? "" : ", ") + std::string{column} + " = $" + std::to_string(params.size());
  }
  if (sets.empty()) return {};
  return sql_done(
      tx.exec(std::string{"UPDATE "} + table + " SET " + sets + " WHERE id = $1", params));
}

caf::error apply_track(const std::string& id, const stored_event& e, sql_tx& tx) {
  if (messages::TrackUploaded ev; event_as(e, ev))
    return sql_done(tx.exec(
        "INSERT INTO library_tracks (id, owner, title, artist, visibility, status, created_ms) "
        "VALUES ($1, $2, $3, $4, $5, 'uploaded', $6::bigint) ON CONFLICT (id) DO NOTHING",
        {id, ev.owner(), ev.title(), ev.artist(), ev.visibility(), std::to_string(ev.at_ms())}));
  if (messages::TrackProcessing ev; event_as(e, ev))
    return sql_done(tx.exec("UPDATE library_tracks SET status = 'processing' WHERE id = $1", {id}));
  if (messages::TrackReady ev; event_as(e, ev)) {
    auto artist = ev.tags().count("artist") > 0 ? ev.tags().at("artist") : std::string{};
    // Events of older versions carry no time: the projection's own clock stands in.
    auto at = ev.at_ms() > 0 ? ev.at_ms() : unix_ms_now();
    return sql_done(
        tx.exec("UPDATE library_tracks SET status = 'ready', ready_ms = $2::bigint, "
                "artist = CASE WHEN artist = '' THEN $3 ELSE artist END WHERE id = $1",
                {id, std::to_string(at), artist}));
  }
  if (messages::TrackFailed ev; event_as(e, ev))
    return sql_done(tx.exec("UPDATE library_tracks SET status = 'failed' WHERE id = $1", {id}));
  if (messages::TrackEdited ev; event_as(e, ev))
    return update_present(tx, "library_tracks", id,
                          {{"title", ev.has_title() ? &ev.title() : nullptr},
                           {"artist", ev.has_artist() ? &ev.artist() : nullptr},
                           {"visibility", ev.has_visibility() ? &ev.visibility() : nullptr}});
  if (messages::TrackCommented ev; event_as(e, ev))
    return sql_done(
        tx.exec("INSERT INTO library_comments (track, id, author, body, at_s, created_ms) "
                "VALUES ($1, $2::bigint, $3, $4, $5::double precision, $6::bigint) "
                "ON CONFLICT (track, id) DO NOTHING",
                {id, std::to_string(ev.id()), ev.author(), ev.text(), std::to_string(ev.at_s()),
                 std::to_string(ev.at_ms())}));
  return {};
}

/// One like/repost row in or out, and the track's count moved only when the row did.
caf::error set_mark(sql_tx& tx, const char* table, const char* counter, const std::string& user,
                    const std::string& track, int64_t at_ms, bool on) {
  std::string sql =
      on ? std::string{"WITH changed AS (INSERT INTO "} + table +
               " (user_id, track, at_ms) VALUES ($1, $2, $3::bigint) ON CONFLICT DO NOTHING "
               "RETURNING 1) "
         : std::string{"WITH changed AS (DELETE FROM "} + table +
               " WHERE user_id = $1 AND track = $2 AND $3::bigint IS NOT NULL RETURNING 1) ";
  sql += std::string{"INSERT INTO library_stats (track, "} + counter + ") SELECT $2, count(*) * " +
         (on ? "1" : "-1") +
         " FROM changed HAVING count(*) > 0 ON CONFLICT (track) DO UPDATE SET " + counter +
         " = library_stats." + counter + " + EXCLUDED." + counter;
  return sql_done(tx.exec(sql, {user, track, std::to_string(at_ms)}));
}

caf::error apply_library(const std::string& user, const stored_event& e, sql_tx& tx) {
  if (messages::LibraryLiked ev; event_as(e, ev))
    return set_mark(tx, "library_likes", "likes", user, ev.track(), ev.at_ms(), true);
  if (messages::LibraryUnliked ev; event_as(e, ev))
    return set_mark(tx, "library_likes", "likes", user, ev.track(), 0, false);
  if (messages::LibraryReposted ev; event_as(e, ev))
    return set_mark(tx, "library_reposts", "reposts", user, ev.track(), ev.at_ms(), true);
  if (messages::LibraryUnreposted ev; event_as(e, ev))
    return set_mark(tx, "library_reposts", "reposts", user, ev.track(), 0, false);
  return {};
}

caf::error apply_playlist(const std::string& id, const stored_event& e, sql_tx& tx) {
  if (messages::PlaylistCreated ev; event_as(e, ev))
    return sql_done(tx.exec(
        "INSERT INTO library_playlists (id, owner, title, visibility, item_count, created_ms) "
        "VALUES ($1, $2, $3, $4, 0, $5::bigint) ON CONFLICT (id) DO NOTHING",
        {id, ev.owner(), ev.title(), ev.visibility(), std::to_string(ev.at_ms())}));
  if (messages::PlaylistEdited ev; event_as(e, ev))
    return update_present(tx, "library_playlists", id,
                          {{"title", ev.has_title() ? &ev.title() : nullptr},
                           {"visibility", ev.has_visibility() ? &ev.visibility() : nullptr}});
  if (messages::PlaylistItemAdded ev; event_as(e, ev))
    return sql_done(
        tx.exec("UPDATE library_playlists SET item_count = item_count + 1 WHERE id = $1", {id}));
  if (messages::PlaylistItemRemoved ev; event_as(e, ev))
    return sql_done(
        tx.exec("UPDATE library_playlists SET item_count = item_count - 1 WHERE id = $1", {id}));
  if (messages::PlaylistDeleted ev; event_as(e, ev))
    return sql_done(tx.exec("DELETE FROM library_playlists WHERE id = $1", {id}));
  return {};
}

}  // namespace

std::string track_stats_key(const std::string& track) {
  return "track-stats:" + track;
}

projection audio_library_projection(std::shared_ptr<redis_cache> cache) {
  projection p;
  if (cache)
    p.committed = [cache](const stored_event& e) {
      if (e.stream.rfind(library_prefix, 0) != 0) return;
      std::string track;
      if (messages::LibraryLiked ev; event_as(e, ev)) track = ev.track();
      if (messages::LibraryUnliked ev; event_as(e, ev)) track = ev.track();
      if (messages::LibraryReposted ev; event_as(e, ev)) track = ev.track();
      if (messages::LibraryUnreposted ev; event_as(e, ev)) track = ev.track();
      // A failed invalidation is remembered by the cache and replayed; nothing to do here.
      if (!track.empty()) (void)cache->invalidate(track_stats_key(track));
    };
  p.name = "audio_library";
  p.schema = {
      "CREATE TABLE IF NOT EXISTS library_tracks (id text PRIMARY KEY, owner text NOT NULL, "
      "title text NOT NULL, artist text NOT NULL, visibility text NOT NULL, status text NOT "
      "NULL, created_ms bigint NOT NULL, ready_ms bigint)",
      "CREATE INDEX IF NOT EXISTS library_tracks_by_owner ON library_tracks (owner, created_ms "
      "DESC, id DESC)",
      "CREATE INDEX IF NOT EXISTS library_tracks_ready ON library_tracks (owner, ready_ms DESC, "
      "id DESC) WHERE status = 'ready' AND visibility = 'public'",
      "CREATE TABLE IF NOT EXISTS library_likes (user_id text NOT NULL, track text NOT NULL, "
      "at_ms bigint NOT NULL, PRIMARY KEY (user_id, track))",
      "CREATE INDEX IF NOT EXISTS library_likes_by_user ON library_likes (user_id, at_ms DESC, "
      "track DESC)",
      "CREATE TABLE IF NOT EXISTS library_reposts (user_id text NOT NULL, track text NOT NULL, "
      "at_ms bigint NOT NULL, PRIMARY KEY (user_id, track))",
      "CREATE INDEX IF NOT EXISTS library_reposts_by_user ON library_reposts (user_id, at_ms "
      "DESC, track DESC)",
      "CREATE TABLE IF NOT EXISTS library_stats (track text PRIMARY KEY, likes bigint NOT NULL "
      "DEFAULT 0, reposts bigint NOT NULL DEFAULT 0)",
      "CREATE TABLE IF NOT EXISTS library_comments (track text NOT NULL, id bigint NOT NULL, "
      "author text NOT NULL, body text NOT NULL, at_s double precision NOT NULL, created_ms "
      "bigint NOT NULL, PRIMARY KEY (track, id))",
      "CREATE TABLE IF NOT EXISTS library_playlists (id text PRIMARY KEY, owner text NOT NULL, "
      "title text NOT NULL, visibility text NOT NULL, item_count integer NOT NULL, created_ms "
      "bigint NOT NULL)",
      "CREATE INDEX IF NOT EXISTS library_playlists_by_owner ON library_playlists (owner, "
      "created_ms DESC, id DESC)"};
  p.reset = [](sql_tx& tx) -> caf::error {
    for (const char* table : {"library_tracks", "library_likes", "library_reposts", "library_stats",
                              "library_comments", "library_playlists"})
      if (auto err = sql_done(tx.exec(std::string{"DELETE FROM "} + table))) return err;
    return {};
  };
  p.apply = [](const stored_event& e, sql_tx& tx) -> caf::error {
    auto rest = [&e](std::string_view prefix) { return e.stream.substr(prefix.size()); };
    caf::error err;
    if (e.stream.rfind(track_prefix, 0) == 0)
      err = apply_track(rest(track_prefix), e, tx);
    else if (e.stream.rfind(library_prefix, 0) == 0)
      err = apply_library(rest(library_prefix), e, tx);
    else if (e.stream.rfind(playlist_prefix, 0) == 0)
      err = apply_playlist(rest(playlist_prefix), e, tx);
    return err;
  };
  return p;
}

audio_library_reader::audio_library_reader(std::string dsn, std::shared_ptr<redis_cache> cache)
    : db_(std::make_unique<pg_reader>(dsn)), cache_(std::move(cache)) {}

audio_library_reader::~audio_library_reader() = default;

namespace {

/// Whether the projection made its tables yet (before that, every list is empty).
bool has_tables(pqxx::transaction_base& tx) {
  return tx.exec("SELECT to_regclass('library_playlists') IS NOT NULL")[0][0].as<bool>();
}

constexpr const char* track_columns =
    "t.id, t.owner, t.title, t.artist, t.visibility, t.status, t.created_ms, t.ready_ms";

}  // namespace

caf::expected<messages::TrackPage> audio_library_reader::artist_tracks(const std::string& owner,
                                                                       bool include_private,
                                                                       const std::string& cursor,
                                                                       int limit) {
  auto after = parse_cursor(cursor);
  if (!after) return after.error();
  return db_->with([&](pqxx::connection& c) -> caf::expected<messages::TrackPage> {
    pqxx::read_transaction tx{c};
    if (!has_tables(tx)) return messages::TrackPage{};
    auto rows = tx.exec_params(
        std::string{"SELECT "} + track_columns +
            ", NULL, t.created_ms FROM library_tracks t WHERE t.owner = $1 AND ($2 OR "
            "(t.visibility = 'public' AND t.status = 'ready')) AND (t.created_ms, t.id) < "
            "($3::bigint, $4) ORDER BY t.created_ms DESC, t.id DESC LIMIT $5",
        owner, include_private, after->ms, after->id, limit + 1);
    return track_page(rows, limit);
  });
}

caf::expected<messages::TrackPage> audio_library_reader::feed(
    const std::vector<std::string>& owners, const std::string& cursor, int limit) {
  auto after = parse_cursor(cursor);
  if (!after) return after.error();
  if (owners.empty()) return messages::TrackPage{};
  return db_->with([&](pqxx::connection& c) -> caf::expected<messages::TrackPage> {
    pqxx::read_transaction tx{c};
    if (!has_tables(tx)) return messages::TrackPage{};
    std::string list = "{";
    for (size_t i = 0; i < owners.size(); ++i) {
      list += i > 0 ? ",\"" : "\"";
      for (char c : owners[i]) {
        if (c == '"' || c == '\\') list += '\\';
        list += c;
      }
      list += '"';
    }
    list += "}";
    auto rows = tx.exec_params(
        std::string{"SELECT "} + track_columns +
            ", t.ready_ms, t.ready_ms FROM library_tracks t WHERE t.owner = ANY($1::text[]) AND "
            "t.status = 'ready' AND t.visibility = 'public' AND (t.ready_ms, t.id) < "
            "($2::bigint, $3) ORDER BY t.ready_ms DESC, t.id DESC LIMIT $4",
        list, after->ms, after->id, limit + 1);
    return track_page(rows, limit);
  });
}

caf::expected<messages::TrackPage> audio_library_reader::liked(const std::string& user,
                                                               bool reposts,
                                                               const std::string& cursor,
                                                               int limit) {
  auto after = parse_cursor(cursor);
  if (!after) return after.error();
  return db_->with([&](pqxx::connection& c) -> caf::expected<messages::TrackPage> {
    pqxx::read_transaction tx{c};
    if (!has_tables(tx)) return messages::TrackPage{};
    std::string table = reposts ? "library_reposts" : "library_likes";
    // The key is (at_ms, track): track ids are the row's id column.
    auto rows = tx.exec_params(
        std::string{"SELECT "} + track_columns + ", l.at_ms, l.at_ms FROM " + table +
            " l JOIN library_tracks t ON t.id = l.track WHERE l.user_id = $1 AND t.visibility "
            "<> 'private' AND (l.at_ms, l.track) < ($2::bigint, $3) ORDER BY l.at_ms DESC, "
            "l.track DESC LIMIT $4",
        user, after->ms, after->id, limit + 1);
    return track_page(rows, limit);
  });
}

caf::expected<messages::CommentPage> audio_library_reader::comments(const std::string& track,
                                                                    const std::string& cursor,
                                                                    int limit) {
  int64_t after = 0;
  if (!cursor.empty()) {
    bool ok = cursor.size() <= 18;
    for (char ch : cursor) ok = ok && ch >= '0' && ch <= '9';
    if (!ok) return make_error(domain_errc::validation, "cursor is not one this server made");
    after = std::stoll(cursor);
  }
  return db_->with([&](pqxx::connection& c) -> caf::expected<messages::CommentPage> {
    pqxx::read_transaction tx{c};
    messages::CommentPage page;
    if (!has_tables(tx)) return page;
    auto rows = tx.exec_params(
        "SELECT id, author, body, at_s, created_ms FROM library_comments WHERE track = $1 AND "
        "id > $2::bigint ORDER BY id LIMIT $3",
        track, after, limit + 1);
    for (const auto& row : rows) {
      if (page.comments_size() == limit) {
        page.set_next_cursor(std::to_string(page.comments(limit - 1).id()));
        break;
      }
      auto* m = page.add_comments();
      m->set_id(row[0].as<int64_t>());
      m->set_track(track);
      m->set_author(row[1].as<std::string>());
      m->set_text(row[2].as<std::string>());
      m->set_at_s(row[3].as<double>());
      m->set_created_at(rfc3339(row[4].as<int64_t>()));
    }
    return page;
  });
}

caf::expected<messages::PlaylistPage> audio_library_reader::playlists(const std::string& owner,
                                                                      bool include_private,
                                                                      const std::string& cursor,
                                                                      int limit) {
  auto after = parse_cursor(cursor);
  if (!after) return after.error();
  return db_->with([&](pqxx::connection& c) -> caf::expected<messages::PlaylistPage> {
    pqxx::read_transaction tx{c};
    messages::PlaylistPage page;
    if (!has_tables(tx)) return page;
    auto rows = tx.exec_params(
        "SELECT id, owner, title, visibility, item_count, created_ms FROM library_playlists "
        "WHERE owner = $1 AND ($2 OR visibility = 'public') AND (created_ms, id) < ($3::bigint, "
        "$4) ORDER BY created_ms DESC, id DESC LIMIT $5",
        owner, include_private, after->ms, after->id, limit + 1);
    for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
      if (i == limit) {
        page.set_next_cursor(rows[i - 1][5].as<std::string>() + "." +
                             rows[i - 1][0].as<std::string>());
        break;
      }
      auto* p = page.add_playlists();
      p->set_id(rows[i][0].as<std::string>());
      p->set_owner(rows[i][1].as<std::string>());
      p->set_title(rows[i][2].as<std::string>());
      p->set_visibility(rows[i][3].as<std::string>());
      p->set_item_count(rows[i][4].as<int>());
      p->set_created_at(rfc3339(rows[i][5].as<int64_t>()));
    }
    return page;
  });
}

caf::expected<messages::TrackStats> audio_library_reader::stats(const std::string& track) {
  if (!cache_) return load_stats(track);
  auto bytes = cache_->get_or_load(track_stats_key(track), std::chrono::minutes{1},
                                   [&]() -> caf::expected<std::string> {
                                     auto s = load_stats(track);
                                     if (!s) return s.error();
                                     return s->SerializeAsString();
                                   });
  if (!bytes) return bytes.error();
  messages::TrackStats out;
  if (!out.ParseFromString(*bytes))
    return make_error(errc::storage_error, "unreadable cached counts of " + track);
  return out;
}

caf::expected<messages::TrackStats> audio_library_reader::load_stats(const std::string& track) {
  return db_->with([&](pqxx::connection& c) -> caf::expected<messages::TrackStats> {
    pqxx::read_transaction tx{c};
    messages::TrackStats out;
    if (!has_tables(tx)) return out;
    auto rows = tx.exec_params("SELECT likes, reposts FROM library_stats WHERE track = $1", track);
    if (!rows.empty()) {
      out.set_likes(rows[0][0].as<int64_t>());
      out.set_reposts(rows[0][1].as<int64_t>());
    }
    return out;
  });
}

}  // namespace chorus::persistence
