#include "http_edge/track_routes.hpp"

#include <algorithm>
#include <cctype>

#include "actors/audio/audio.hpp"
#include "actors/users/passwords.hpp"
#include "actors/users/users.hpp"
#include "http_edge/user_routes.hpp"
#include "messages/audio.pb.h"
#include "messages/users.pb.h"
#include "persistence/blob_store.hpp"

// The audio domain's routes: uploads (streamed to a file by the edge, never held in memory),
// track metadata. The transcode runs elsewhere (a node's transcoder); the track's status moves
// uploaded -> processing -> ready | failed.

namespace chorus::edge {

namespace {

using config_ptr = std::shared_ptr<const track_routes_config>;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// A header's value, or `fallback` when absent; a refusal text when longer than `max`.
std::string header_or(const http_request& req, const char* key, const std::string& fallback) {
  return req.has_header(key) ? req.get_header_value(key) : fallback;
}

/// Whether the caller may see `track`: public and unlisted ones anyone, private ones their
/// owner. Otherwise the answer is in `res`: the same 404 as for a track that does not exist
/// (or the 429 of the account's rate limit).
bool may_see(edge_api& api, const http_request& req, http_response& res, const std::string& rid,
             const messages::TrackInfo& track) {
  if (track.visibility() != "private") return true;
  if (req.has_header("Authorization")) {
    auto who = signed_in(api, req, res, rid);
    if (res.status == 429) return false;
    if (who && who->user_id() == track.owner()) return true;
  }
  send_error(res, make_error(domain_errc::not_found, "no such track"), rid);
  return false;
}

}  // namespace

void add_track_routes(edge_api& api, track_routes_config config) {
  auto cfg = std::make_shared<const track_routes_config>(std::move(config));
  // POST /v1/tracks: the raw audio as the body (Content-Type audio/*), the title in
  // X-Track-Title, optionally X-Track-Visibility (public, unlisted, private), X-Track-Artist,
  // X-Track-Album, X-Track-Genre. The edge streams the body to a file under the size limit;
  // here it is probed (a clear 415/422 now rather than a failed track later), stored in the
  // blob store and handed to a new track, whose job is then on its way. 202 + TrackInfo.
  api.route_upload(
      http_method::post, "/v1/tracks", "/v1/tracks", cfg->max_upload_bytes,
      [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
        auto who = signed_in(api, req, res, rid);
        if (!who) return send_auth_error(res, who.error(), rid);
        // Roles are checked against the account now, not the session's copy from login.
        auto me = ask_reply<messages::Me>(api, users::user_kind, who->user_id(),
                                          messages::UserGetPrivate{}, rid);
        if (!me) return send_error(res, me.error(), rid);
        if (std::find(me->roles().begin(), me->roles().end(), "artist") == me->roles().end())
          return send_error(res, make_error(domain_errc::forbidden, "only artists upload tracks"),
                            rid);
        auto type = lower(req.get_header_value("Content-Type"));
        if (type.rfind("multipart/", 0) == 0)
          return send_error(res, {415, "unsupported_media_type", 0},
                            "send the audio itself as the body (Content-Type audio/...); "
                            "multipart uploads are not accepted yet",
                            rid);
        if (type.rfind("audio/", 0) != 0 && type.rfind("application/octet-stream", 0) != 0)
          return send_error(res, {415, "unsupported_media_type", 0},
                            "send the audio as the body with Content-Type audio/...", rid);
        auto title = header_or(req, "X-Track-Title", "");
        auto visibility = lower(header_or(req, "X-Track-Visibility", "public"));
        auto artist = header_or(req, "X-Track-Artist", "");
        auto album = header_or(req, "X-Track-Album", "");
        auto genre = header_or(req, "X-Track-Genre", "");
        if (title.empty() || title.size() > 200)
          return send_error(res, {422, "validation", 0}, "X-Track-Title must be 1..200 bytes", rid);
        if (visibility != "public" && visibility != "unlisted" && visibility != "private")
          return send_error(res, {422, "validation", 0},
                            "X-Track-Visibility must be public, unlisted or private", rid);
        if (artist.size() > 200 || album.size() > 200 || genre.size() > 64)
          return send_error(res, {422, "validation", 0},
                            "X-Track-Artist and X-Track-Album are at most 200 bytes, "
                            "X-Track-Genre 64",
                            rid);
        if (req.body_size == 0)
          return send_error(res, {422, "validation", 0}, "the body is empty", rid);
        auto info = audio::probe(req.body_file, cfg->limits);
        if (!info) return send_error(res, info.error(), rid);
        if (!cfg->blobs)
          return send_error(res, make_error(runtime_errc::no_owner, "no blob store"), rid);
        auto blob = cfg->blobs->put_file(req.body_file);
        if (!blob) return send_error(res, blob.error(), rid);
        messages::TrackCreate cmd;
        cmd.set_owner(who->user_id());
        cmd.set_title(title);
        cmd.set_visibility(visibility);
        cmd.set_upload_blob(blob->id.hex());
        cmd.set_upload_size(static_cast<int64_t>(blob->size));
        cmd.set_artist(artist.empty() ? me->display_name() : artist);
        cmd.set_album(album);
        cmd.set_genre(genre);
        // 128 random bits from libsodium: an unlisted track's id is its only secret.
        auto id = users::new_user_id();
        auto env = envelope_for(audio::track_kind, id, cmd, rid);
        env.redeliverable = true;  // a retried create of the same blob is recognised
        auto bytes = api.ask_entity(std::move(env));
        if (!bytes) return send_error(res, bytes.error(), rid);
        messages::TrackInfo track;
        if (!track.ParseFromString(*bytes))
          return send_error(res, make_error(runtime_errc::bad_payload, "unreadable TrackInfo"),
                            rid);
        res.status = 202;
        res.set_header("Location", "/v1/tracks/" + id);
        res.set_content(to_json(track), json_type);
      });

  // GET /v1/tracks/{id}/stream?format=opus|aac|mp3&quality=high|low: a rendition, with HTTP
  // Range (206, suffix ranges, 416 past the end; of several ranges the first), exact
  // Content-Length, a strong ETag (the blob's SHA-256: the bytes never change) and long
  // caching; sent from the file in chunks. Private tracks only for their owner.
  api.route(
      http_method::get, R"(/v1/tracks/([^/]+)/stream)", "/v1/tracks/{id}/stream",
      [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
        auto id = req.matches[1].str();
        auto format = req.has_param("format") ? req.get_param_value("format") : "opus";
        auto quality = req.has_param("quality") ? req.get_param_value("quality") : "high";
        if ((format != "opus" && format != "aac" && format != "mp3") ||
            (quality != "high" && quality != "low"))
          return send_error(res, {422, "validation", 0},
                            "format must be opus, aac or mp3 and quality high or low", rid);
        if (!valid_entity_id(id))
          return send_error(res, make_error(domain_errc::not_found, "no such track"), rid);
        auto track =
            ask_reply<messages::TrackInfo>(api, audio::track_kind, id, messages::TrackGet{}, rid);
        if (!track) return send_error(res, track.error(), rid);
        bool is_private = track->visibility() == "private";
        if (!may_see(api, req, res, rid, *track)) return;
        if (track->status() != "ready")
          return send_error(res,
                            make_error(domain_errc::conflict,
                                       "the track is " + track->status() + ", not ready to stream"),
                            rid);
        const messages::Rendition* r = nullptr;
        for (const auto& x : track->renditions())
          if (x.format() == format && x.quality() == quality) r = &x;
        auto blob = r == nullptr ? std::nullopt : persistence::blob_id::parse(r->blob());
        if (!blob || !cfg->blobs)
          return send_error(res, make_error(domain_errc::not_found, "no such rendition"), rid);
        auto size = static_cast<uint64_t>(r->size());
        auto etag = "\"" + blob->hex() + "\"";
        res.set_header("ETag", etag);
        res.set_header("Accept-Ranges", "bytes");
        res.set_header("Cache-Control", is_private ? "private, max-age=3600"
                                                   : "public, max-age=31536000, immutable");
        if (req.get_header_value("If-None-Match") == etag) {
          res.status = 304;
          return;
        }
        auto range = parse_range(req.get_header_value("Range"), size);
        if (range.kind == byte_range::unsatisfiable) {
          res.set_header("Content-Range", "bytes */" + std::to_string(size));
          return send_error(res, {416, "range_not_satisfiable", 0},
                            "the rendition has " + std::to_string(size) + " bytes", rid);
        }
        uint64_t first = range.kind == byte_range::part ? range.first : 0;
        uint64_t length = range.kind == byte_range::part ? range.last - first + 1 : size;
        res.headers.erase("Content-Type");
        res.set_header("Content-Type", r->mime());
        if (range.kind == byte_range::part) {
          res.status = 206;
          res.set_header("Content-Range", "bytes " + std::to_string(first) + "-" +
                                              std::to_string(first + length - 1) + "/" +
                                              std::to_string(size));
        }
        if (auto local = cfg->blobs->local_path(*blob)) {
          res.file_path = *local;
          res.file_offset = first;
          res.file_length = length;
          return;
        }
        // A remote store: the range is read through (at most 16 MiB at once; a larger
        // open range is answered in part, as Range allows).
        length = std::min<uint64_t>(length, uint64_t{16} << 20);
        std::string bytes;
        auto read = cfg->blobs->read(*blob, first, length, [&bytes](std::string_view c) {
          bytes.append(c);
          return true;
        });
        if (!read) return send_error(res, read.error(), rid);
        if (res.status == 206 || bytes.size() < size) {
          res.status = 206;
          res.headers.erase("Content-Range");
          res.set_header("Content-Range", "bytes " + std::to_string(first) + "-" +
                                              std::to_string(first + bytes.size() - 1) + "/" +
                                              std::to_string(size));
        }
        res.body = std::move(bytes);
      });

  // GET /v1/tracks/{id}: public and unlisted tracks for anyone, private ones for their owner
  // (anyone else gets the same 404 as for a track that does not exist).
  api.route(http_method::get, R"(/v1/tracks/([^/]+))", "/v1/tracks/{id}",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto id = req.matches[1].str();
              if (!valid_entity_id(id))
                return send_error(res, make_error(domain_errc::not_found, "no such track"), rid);
              auto track = ask_reply<messages::TrackInfo>(api, audio::track_kind, id,
                                                          messages::TrackGet{}, rid);
              if (!track) return send_error(res, track.error(), rid);
              if (!may_see(api, req, res, rid, *track)) return;
              res.set_header("Cache-Control", "no-cache");
              res.set_content(to_json(*track), json_type);
            });
}

}  // namespace chorus::edge
