#include "http_edge/track_routes.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <regex>
#include <set>

#include "actors/audio/audio.hpp"
#include "actors/users/passwords.hpp"
#include "actors/users/users.hpp"
#include "common/clock.hpp"
#include "http_edge/json_body.hpp"
#include "http_edge/multipart.hpp"
#include "http_edge/user_routes.hpp"
#include "messages/audio.pb.h"
#include "messages/users.pb.h"
#include "persistence/blob_store.hpp"
#include "persistence/s3_sigv4.hpp"
#include "persistence/sha256.hpp"

// The audio domain's routes: uploads (streamed to a file by the edge, never held in memory),
// track metadata. The transcode runs elsewhere (a node's transcoder); the track's status moves
// uploaded -> processing -> ready | failed.

namespace chorus::edge {

namespace {

using config_ptr = std::shared_ptr<const track_routes_config>;

caf::error no_track() {
  return make_error(domain_errc::not_found, "no such track");
}

/// "YYYY-MM-DD" naming a real day (or "": none).
bool valid_date(const std::string& s) {
  if (s.empty()) return true;
  static const std::regex shape{R"(\d{4}-\d{2}-\d{2})"};
  if (!std::regex_match(s, shape)) return false;
  std::tm tm{};
  tm.tm_year = std::stoi(s.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(s.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(s.substr(8, 2));
  auto copy = tm;
  if (timegm(&copy) == -1) return false;
  return copy.tm_mday == tm.tm_mday && copy.tm_mon == tm.tm_mon && tm.tm_year >= -1900 + 1000;
}

/// Tags from a comma-separated header: trimmed, non-empty, at most 10 of at most 32 bytes.
std::optional<std::vector<std::string>> tags_of(const std::string& header) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= header.size() && !header.empty()) {
    auto end = header.find(',', start);
    if (end == std::string::npos) end = header.size();
    auto tag = header.substr(start, end - start);
    while (!tag.empty() && tag.front() == ' ') tag.erase(0, 1);
    while (!tag.empty() && tag.back() == ' ') tag.pop_back();
    if (tag.empty() || tag.size() > 32) return std::nullopt;
    out.push_back(tag);
    start = end + 1;
  }
  if (out.size() > 10) return std::nullopt;
  return out;
}

/// `?format=opus|aac|mp3&quality=high|low` (opus and high by default); ("", "") when either
/// is something else.
std::pair<std::string, std::string> rendition_params(const http_request& req) {
  auto format = req.has_param("format") ? req.get_param_value("format") : "opus";
  auto quality = req.has_param("quality") ? req.get_param_value("quality") : "high";
  if ((format != "opus" && format != "aac" && format != "mp3") ||
      (quality != "high" && quality != "low"))
    return {};
  return {format, quality};
}

/// The signature of a stream URL: hex HMAC-SHA256 over track, format, quality and expiry.
std::string stream_signature(const std::string& key, const std::string& id,
                             const std::string& format, const std::string& quality,
                             const std::string& expires) {
  return persistence::to_hex(
      persistence::sigv4::hmac_sha256(key, id + "\n" + format + "\n" + quality + "\n" + expires));
}

bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

/// Serves a small blob (waveform, cover) with a strong ETag; from its file when the store
/// keeps files.
void send_blob(const track_routes_config& cfg, const http_request& req, http_response& res,
               const std::string& rid, const std::string& blob_hex, const char* type,
               bool is_private) {
  auto blob = persistence::blob_id::parse(blob_hex);
  if (!blob || !cfg.blobs) return send_error(res, make_error(domain_errc::not_found, "none"), rid);
  auto etag = "\"" + blob->hex() + "\"";
  res.set_header("ETag", etag);
  res.set_header("Cache-Control",
                 is_private ? "private, max-age=3600" : "public, max-age=31536000, immutable");
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  std::string bytes;
  auto read = cfg.blobs->read(*blob, 0, persistence::blob_to_end, [&bytes](std::string_view c) {
    bytes.append(c);
    return bytes.size() <= (size_t{8} << 20);
  });
  if (!read) return send_error(res, read.error(), rid);
  res.set_content(std::move(bytes), type);
}

/// A track as clients see it: the blob names of its waveform and covers are the edge's
/// business (clients use the URLs).
messages::TrackInfo& public_view(messages::TrackInfo& t) {
  t.clear_waveform_blob();
  for (auto& c : *t.mutable_covers()) c.clear_blob();
  return t;
}

}  // namespace

std::optional<messages::TrackInfo> visible_track(edge_api& api, const http_request& req,
                                                 http_response& res, const std::string& rid,
                                                 const std::string& id) {
  if (!valid_entity_id(id)) {
    send_error(res, no_track(), rid);
    return std::nullopt;
  }
  auto track =
      ask_reply<messages::TrackInfo>(api, audio::track_kind, id, messages::TrackGet{}, rid);
  if (!track) {
    send_error(res, track.error(), rid);
    return std::nullopt;
  }
  if (track->visibility() != "private") return std::move(*track);
  auto caller = signed_in_if_sent(api, req, res, rid);
  if (res.status == 429) return std::nullopt;
  if (caller == track->owner()) return std::move(*track);
  send_error(res, no_track(), rid);
  return std::nullopt;
}

void add_track_routes(edge_api& api, track_routes_config config) {
  auto cfg = std::make_shared<const track_routes_config>(std::move(config));
  // POST /v1/tracks: the raw audio as the body (Content-Type audio/*), the title in
  // X-Track-Title, optionally X-Track-Visibility (public, unlisted, private), X-Track-Artist,
  // X-Track-Album, X-Track-Genre, X-Track-Tags (comma-separated), X-Track-Release-Date; or a
  // multipart/form-data form with a "file" part and fields of those names (title, visibility,
  // artist, album, genre, tags, release_date). The edge streams the body to a file under the
  // size limit (the form's file part is copied out of it, never into memory); it is probed (a clear
  // 415/422 now rather than a failed track later), stored in the blob store and handed to a new
  // track, whose job is then on its way. 202 + TrackInfo.
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
        // The metadata comes from headers (raw body) or from the form's fields (multipart),
        // with the same names: X-Track-Title or "title", and so on.
        auto type = lower_ascii(req.get_header_value("Content-Type"));
        std::string audio_path = req.body_file;
        uint64_t audio_size = req.body_size;
        std::map<std::string, std::string> meta;
        for (const auto& [field, header] :
             std::initializer_list<std::pair<const char*, const char*>>{
                 {"title", "X-Track-Title"},
                 {"visibility", "X-Track-Visibility"},
                 {"artist", "X-Track-Artist"},
                 {"album", "X-Track-Album"},
                 {"genre", "X-Track-Genre"},
                 {"tags", "X-Track-Tags"},
                 {"release_date", "X-Track-Release-Date"}})
          if (req.has_header(header)) meta[field] = req.get_header_value(header);
        // Removes the extracted file part once answered.
        struct remove_after {
          std::string path;
          ~remove_after() {
            if (!path.empty()) std::remove(path.c_str());
          }
        } extracted;
        if (type.rfind("multipart/form-data", 0) == 0) {
          auto boundary = multipart_boundary(req.get_header_value("Content-Type"));
          if (!boundary)
            return send_error(res, {422, "validation", 0},
                              "multipart/form-data needs a boundary parameter", rid);
          extracted.path = req.body_file + ".audio";
          auto form = parse_multipart_file(req.body_file, *boundary, extracted.path);
          if (!form) return send_error(res, form.error(), rid);
          if (!form->has_file)
            return send_error(res, {422, "validation", 0}, "the form has no \"file\" part", rid);
          for (const auto& [key, value] : form->fields) {
            static const std::set<std::string> known{"title", "visibility", "artist",      "album",
                                                     "genre", "tags",       "release_date"};
            if (known.count(key) == 0)
              return send_error(res, {422, "validation", 0}, "unknown form field " + key, rid);
            meta[key] = value;
          }
          if (meta.count("title") == 0 && !form->file_name.empty()) {
            // A browser form without a title: the file's name without its path and extension.
            auto name = form->file_name.substr(form->file_name.find_last_of("/\\") + 1);
            meta["title"] = name.substr(0, name.rfind('.') == 0 ? name.size() : name.rfind('.'));
          }
          audio_path = extracted.path;
          audio_size = form->file_size;
        } else if (type.rfind("audio/", 0) != 0 && type.rfind("application/octet-stream", 0) != 0) {
          return send_error(res, {415, "unsupported_media_type", 0},
                            "send the audio as the body with Content-Type audio/..., or a "
                            "multipart/form-data form with a \"file\" part",
                            rid);
        }
        for (const auto& [key, value] : meta)
          if (!valid_utf8(value))
            return send_error(res, {422, "validation", 0}, key + " is not UTF-8 text", rid);
        auto title = meta["title"];
        auto visibility = lower_ascii(meta.count("visibility") ? meta["visibility"] : "public");
        auto artist = meta["artist"];
        auto album = meta["album"];
        auto genre = meta["genre"];
        auto release = meta["release_date"];
        auto tags = tags_of(meta["tags"]);
        if (title.empty() || title.size() > 200)
          return send_error(res, {422, "validation", 0}, "the title must be 1..200 bytes", rid);
        if (visibility != "public" && visibility != "unlisted" && visibility != "private")
          return send_error(res, {422, "validation", 0},
                            "visibility must be public, unlisted or private", rid);
        if (artist.size() > 200 || album.size() > 200 || genre.size() > 64)
          return send_error(res, {422, "validation", 0},
                            "artist and album are at most 200 bytes, genre 64", rid);
        if (!tags)
          return send_error(res, {422, "validation", 0},
                            "tags: at most 10 comma-separated tags of 1..32 bytes", rid);
        if (!valid_date(release))
          return send_error(res, {422, "validation", 0},
                            "the release date must be a date, YYYY-MM-DD", rid);
        if (audio_size == 0)
          return send_error(res, {422, "validation", 0}, "the audio is empty", rid);
        auto info = audio::probe(audio_path, cfg->limits);
        if (!info) return send_error(res, info.error(), rid);
        if (!cfg->blobs)
          return send_error(res, make_error(runtime_errc::no_owner, "no blob store"), rid);
        auto blob = cfg->blobs->put_file(audio_path);
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
        for (auto& t : *tags) cmd.add_tags(t);
        cmd.set_release_date(release);
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
        res.set_content(to_json(public_view(track)), json_type);
      });

  // GET /v1/tracks/{id}/stream?format=opus|aac|mp3&quality=high|low: a rendition, with HTTP
  // Range (206, suffix ranges, 416 past the end; of several ranges the first), exact
  // Content-Length, a strong ETag (the blob's SHA-256: the bytes never change) and long
  // caching; sent from the file in chunks. Private tracks only for their owner, or through a
  // signed URL (&expires=&sig=, from /stream-url). Each answered request is a play event.
  api.route(
      http_method::get, R"(/v1/tracks/([^/]+)/stream)", "/v1/tracks/{id}/stream",
      [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
        auto id = req.matches[1].str();
        auto [format, quality] = rendition_params(req);
        if (format.empty())
          return send_error(res, {422, "validation", 0},
                            "format must be opus, aac or mp3 and quality high or low", rid);
        if (!valid_entity_id(id)) return send_error(res, no_track(), rid);
        bool is_signed = req.has_param("sig") || req.has_param("expires");
        int64_t expires = 0;
        if (is_signed) {
          auto exp = req.get_param_value("expires");
          bool digits =
              !exp.empty() && exp.size() <= 12 &&
              std::all_of(exp.begin(), exp.end(), [](unsigned char c) { return std::isdigit(c); });
          if (cfg->stream_url_key.empty() || !digits ||
              !same_secret(req.get_param_value("sig"),
                           stream_signature(cfg->stream_url_key, id, format, quality, exp)))
            return send_error(
                res, make_error(domain_errc::forbidden, "the URL's signature is not valid"), rid);
          expires = std::stoll(exp);
          if (expires * 1000 <= unix_ms_now())
            return send_error(res, make_error(domain_errc::forbidden, "the signed URL expired"),
                              rid);
        }
        std::optional<messages::TrackInfo> track;
        if (is_signed) {
          auto t =
              ask_reply<messages::TrackInfo>(api, audio::track_kind, id, messages::TrackGet{}, rid);
          if (!t) return send_error(res, t.error(), rid);
          track = std::move(*t);
        } else {
          track = visible_track(api, req, res, rid, id);
          if (!track) return;
        }
        bool is_private = track->visibility() == "private";
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
        if (is_signed) {
          // Cacheable (by a CDN too, for public tracks) until the URL expires.
          auto left = std::max<int64_t>(0, expires - unix_ms_now() / 1000);
          res.set_header("Cache-Control", std::string{is_private ? "private" : "public"} +
                                              ", max-age=" + std::to_string(left));
        } else {
          res.set_header("Cache-Control", is_private ? "private, max-age=3600"
                                                     : "public, max-age=31536000, immutable");
        }
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
        if (cfg->plays && req.method != "HEAD") {
          messages::PlayEvent ev;
          ev.set_track(id);
          ev.set_user(is_private && !is_signed ? track->owner()
                                               : signed_in_if_sent(api, req, res, rid));
          ev.set_format(format);
          ev.set_quality(quality);
          ev.set_kind(first == 0 ? "started" : "progressed");
          ev.set_offset(static_cast<int64_t>(first));
          ev.set_position_s(size == 0 ? 0.0
                                      : track->duration_s() * static_cast<double>(first) /
                                            static_cast<double>(size));
          ev.set_at_ms(unix_ms_now());
          ev.set_request_id(rid);
          ev.set_node(cfg->node);
          if (res.status == 429) return;  // the listener's account is over its rate limit
          cfg->plays(ev);
        }
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

  // GET /v1/tracks/{id}/stream-url?format&quality: a signed URL of one rendition, valid
  // without a bearer token until it expires (stream-url-ttl), so a player or a CDN can use it.
  api.route(
      http_method::get, R"(/v1/tracks/([^/]+)/stream-url)", "/v1/tracks/{id}/stream-url",
      [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
        auto [format, quality] = rendition_params(req);
        if (format.empty())
          return send_error(res, {422, "validation", 0},
                            "format must be opus, aac or mp3 and quality high or low", rid);
        auto id = req.matches[1].str();
        auto track = visible_track(api, req, res, rid, id);
        if (!track) return;
        if (cfg->stream_url_key.empty())
          return send_error(res, make_error(domain_errc::not_found, "signed URLs are off here"),
                            rid);
        if (track->status() != "ready")
          return send_error(res,
                            make_error(domain_errc::conflict,
                                       "the track is " + track->status() + ", not ready to stream"),
                            rid);
        auto expires_ms = unix_ms_now() + cfg->stream_url_ttl.count() * 1000;
        auto expires = std::to_string(expires_ms / 1000);
        messages::StreamUrl out;
        out.set_url("/v1/tracks/" + id + "/stream?format=" + format + "&quality=" + quality +
                    "&expires=" + expires +
                    "&sig=" + stream_signature(cfg->stream_url_key, id, format, quality, expires));
        out.set_expires_at(rfc3339(expires_ms / 1000 * 1000));
        res.set_header("Cache-Control", "no-store");
        res.set_content(to_json(out), json_type);
      });

  // GET /v1/tracks/{id}/waveform: the peaks as JSON {"points": N, "peaks": [0..1, ...]}.
  api.route(http_method::get, R"(/v1/tracks/([^/]+)/waveform)", "/v1/tracks/{id}/waveform",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto track = visible_track(api, req, res, rid, req.matches[1].str());
              if (!track) return;
              if (track->waveform_url().empty())
                return send_error(
                    res,
                    make_error(domain_errc::not_found,
                               "the track has no waveform (it is " + track->status() + ")"),
                    rid);
              send_blob(*cfg, req, res, rid, track->waveform_blob(), json_type,
                        track->visibility() == "private");
            });

  // GET /v1/tracks/{id}/cover?size=96|300|600: the cover art, a JPEG.
  api.route(http_method::get, R"(/v1/tracks/([^/]+)/cover)", "/v1/tracks/{id}/cover",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto size = req.has_param("size") ? req.get_param_value("size") : "300";
              auto track = visible_track(api, req, res, rid, req.matches[1].str());
              if (!track) return;
              for (const auto& c : track->covers())
                if (std::to_string(c.size()) == size)
                  return send_blob(*cfg, req, res, rid, c.blob(), "image/jpeg",
                                   track->visibility() == "private");
              send_error(res,
                         make_error(domain_errc::not_found, track->covers().empty()
                                                                ? "the track has no cover art"
                                                                : "size must be 96, 300 or 600"),
                         rid);
            });

  // GET /v1/tracks/{id}: public and unlisted tracks for anyone, private ones for their owner
  // (anyone else gets the same 404 as for a track that does not exist). Likes and reposts come
  // from the library read model; when it cannot answer, the track is shown without them.
  api.route(http_method::get, R"(/v1/tracks/([^/]+))", "/v1/tracks/{id}",
            [&api, cfg](const http_request& req, http_response& res, const std::string& rid) {
              auto id = req.matches[1].str();
              auto track = visible_track(api, req, res, rid, id);
              if (!track) return;
              if (cfg->library) {
                messages::LibraryQuery q;
                q.set_what("stats");
                q.set_subject(id);
                auto bytes = api.ask_service(cfg->library, envelope_for("library", id, q, rid));
                messages::TrackStats stats;
                if (bytes && stats.ParseFromString(*bytes)) {
                  track->set_like_count(stats.likes());
                  track->set_repost_count(stats.reposts());
                }
              }
              res.set_header("Cache-Control", "no-cache");
              res.set_content(to_json(public_view(*track)), json_type);
            });

  // PATCH /v1/tracks/{id}: the owner changes title, artist, album, genre, tags, visibility,
  // release_date. 200 + TrackInfo.
  api.route(
      http_method::patch, R"(/v1/tracks/([^/]+))", "/v1/tracks/{id}",
      [&api](const http_request& req, http_response& res, const std::string& rid) {
        auto who = signed_in(api, req, res, rid);
        if (!who) return send_auth_error(res, who.error(), rid);
        auto body = json_object(
            req, {"title", "artist", "album", "genre", "tags", "visibility", "release_date"});
        if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
        const auto& o = std::get<google::protobuf::Struct>(body);
        auto title = string_field(o, "title", 1, 200);
        auto artist = string_field(o, "artist", 0, 200);
        auto album = string_field(o, "album", 0, 200);
        auto genre = string_field(o, "genre", 0, 64);
        auto visibility = string_field(o, "visibility", 1, 16);
        auto release = string_field(o, "release_date", 0, 10);
        auto tags = string_list_field(o, "tags", 10, 32);
        if (auto* r = first_refusal(title, artist, album, genre, visibility, release, tags))
          return send_refusal(res, *r, rid);
        if (auto& v = value_of(visibility);
            v && *v != "public" && *v != "unlisted" && *v != "private")
          return send_error(res, {422, "validation", 0},
                            "visibility must be public, unlisted or private", rid);
        if (auto& d = value_of(release); d && !valid_date(*d))
          return send_error(res, {422, "validation", 0}, "release_date must be YYYY-MM-DD", rid);
        if (o.fields().empty())
          return send_error(res, {422, "validation", 0}, "send at least one field to change", rid);
        auto track = visible_track(api, req, res, rid, req.matches[1].str());
        if (!track) return;
        messages::TrackEdit cmd;
        cmd.set_by(who->user_id());
        if (auto& v = value_of(title)) cmd.set_title(*v);
        if (auto& v = value_of(artist)) cmd.set_artist(*v);
        if (auto& v = value_of(album)) cmd.set_album(*v);
        if (auto& v = value_of(genre)) cmd.set_genre(*v);
        if (auto& v = value_of(visibility)) cmd.set_visibility(*v);
        if (auto& v = value_of(release)) cmd.set_release_date(*v);
        if (auto& v = value_of(tags)) {
          cmd.set_set_tags(true);
          for (const auto& t : *v) cmd.add_tags(t);
        }
        auto edited =
            ask_reply<messages::TrackInfo>(api, audio::track_kind, req.matches[1].str(), cmd, rid);
        if (!edited) return send_error(res, edited.error(), rid);
        res.set_content(to_json(public_view(*edited)), json_type);
      });

  // POST /v1/tracks/{id}/comments {"text", "at_s"?, "client_id"?}: 201 + the comment.
  api.route(http_method::post, R"(/v1/tracks/([^/]+)/comments)", "/v1/tracks/{id}/comments",
            [&api](const http_request& req, http_response& res, const std::string& rid) {
              auto who = signed_in(api, req, res, rid);
              if (!who) return send_auth_error(res, who.error(), rid);
              auto body = json_object(req, {"text", "at_s", "client_id"});
              if (auto* r = std::get_if<refusal>(&body)) return send_refusal(res, *r, rid);
              const auto& o = std::get<google::protobuf::Struct>(body);
              auto text = string_field(o, "text", 1, 2000);
              auto at = number_field(o, "at_s", 0, 24 * 3600);
              auto client_id = string_field(o, "client_id", 1, 64);
              if (auto* r = first_refusal(text, at, client_id)) return send_refusal(res, *r, rid);
              if (!value_of(text))
                return send_error(res, {422, "validation", 0}, "text is required", rid);
              auto id = req.matches[1].str();
              if (!visible_track(api, req, res, rid, id)) return;
              messages::TrackCommentPost cmd;
              cmd.set_author(who->user_id());
              cmd.set_text(*value_of(text));
              cmd.set_at_s(value_of(at).value_or(-1));
              cmd.set_client_id(value_of(client_id).value_or(""));
              auto env = envelope_for(audio::track_kind, id, cmd, rid);
              // With a client id a redelivery is recognised; without one it could post twice.
              env.redeliverable = cmd.client_id().size() > 0;
              auto bytes = api.ask_entity(std::move(env));
              if (!bytes) return send_error(res, bytes.error(), rid);
              messages::TrackComment c;
              c.ParseFromString(*bytes);
              res.status = 201;
              res.set_content(to_json(c), json_type);
            });

  // PUT/DELETE /v1/tracks/{id}/like and /repost: the caller likes (reposts) the track or takes
  // it back; idempotent. 200 {"changed", "on"}.
  auto mark = [&api](const char* what, bool on) {
    return [&api, what, on](const http_request& req, http_response& res, const std::string& rid) {
      auto who = signed_in(api, req, res, rid);
      if (!who) return send_auth_error(res, who.error(), rid);
      auto id = req.matches[1].str();
      auto track = visible_track(api, req, res, rid, id);
      if (!track) return;
      if (std::string{what} == "repost" && on && track->visibility() != "public")
        return send_error(res, {422, "validation", 0}, "only public tracks can be reposted", rid);
      messages::LibrarySet cmd;
      cmd.set_track(id);
      cmd.set_what(what);
      cmd.set_on(on);
      cmd.set_track_owner(track->owner());
      auto env = envelope_for(audio::library_kind, who->user_id(), cmd, rid);
      env.redeliverable = true;  // setting a mark twice is setting it once
      api.answer_from_entity<messages::LibraryChange>(std::move(env), res, rid);
    };
  };
  api.route(http_method::put, R"(/v1/tracks/([^/]+)/like)", "/v1/tracks/{id}/like",
            mark("like", true));
  api.route(http_method::del, R"(/v1/tracks/([^/]+)/like)", "/v1/tracks/{id}/like",
            mark("like", false));
  api.route(http_method::put, R"(/v1/tracks/([^/]+)/repost)", "/v1/tracks/{id}/repost",
            mark("repost", true));
  api.route(http_method::del, R"(/v1/tracks/([^/]+)/repost)", "/v1/tracks/{id}/repost",
            mark("repost", false));

  add_library_routes(api, cfg);
}

}  // namespace chorus::edge
