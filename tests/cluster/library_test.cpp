#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "messages/audio.pb.h"
#include "messages/users.pb.h"
#include "tests/support/accounts.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_conn.hpp"
#include "tests/support/replies.hpp"
#include "tests/support/test_cluster.hpp"

// The audio library against real nodes: track metadata, cover art and waveform, comments, likes,
// reposts, the artist's and the fan's lists and feed, playlists, signed stream URLs with their
// play events, and an upload that trickles in.

using namespace chorus;
using namespace std::chrono_literals;

namespace {

using test::error_is;
using test::has;
using test::parse_json;
using test::raw_conn;

using headers = std::vector<std::pair<std::string, std::string>>;

headers with(headers h, const std::string& name, const std::string& value) {
  h.emplace_back(name, value);
  return h;
}

/// A 3-second sine as MP3 in `dir`; with `cover`, an 800x400 red PNG embedded as its picture.
std::string make_mp3(const test::temp_dir& dir, bool cover) {
  auto mp3 = dir.path() + (cover ? "/with-cover.mp3" : "/plain.mp3");
  std::vector<std::string> argv{"ffmpeg", "-v",    "error", "-y",
                                "-f",     "lavfi", "-i",    "sine=f=440:d=3"};
  if (cover) {
    auto png = dir.path() + "/cover.png";
    auto made = test::run({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                           "color=c=red:s=800x400", "-frames:v", "1", png});
    REQUIRE_MESSAGE(made.exit_code == 0, made.output);
    for (const char* a : {"-i", png.c_str(), "-map", "0", "-map", "1", "-c:v", "png",
                          "-disposition:v", "attached_pic"})
      argv.emplace_back(a);
  }
  for (const char* a : {"-c:a", "libmp3lame", mp3.c_str()}) argv.emplace_back(a);
  auto made = test::run(argv);
  REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  return test::read_file(mp3);
}

constexpr const char* boundary = "chorus-test-boundary-7d1f";

/// A multipart/form-data body: `fields` as text parts, then the "file" part when `file` is given.
std::string form(const std::vector<std::pair<std::string, std::string>>& fields,
                 const std::optional<std::string>& file = std::nullopt,
                 const std::string& file_type = "audio/mpeg",
                 const std::string& file_name = "song.mp3", bool closed = true) {
  std::string out;
  for (const auto& [name, value] : fields)
    out += std::string{"--"} + boundary + "\r\nContent-Disposition: form-data; name=\"" + name +
           "\"\r\n\r\n" + value + "\r\n";
  if (file)
    out += std::string{"--"} + boundary +
           "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + file_name +
           "\"\r\nContent-Type: " + file_type + "\r\n\r\n" + *file + "\r\n";
  if (closed) out += std::string{"--"} + boundary + "--\r\n";
  return out;
}

const std::string form_type = std::string{"multipart/form-data; boundary="} + boundary;

/// POST /v1/tracks: raw audio (Content-Type audio/...) or a form (form_type).
test::http_reply upload(uint16_t port, const std::string& body, const std::string& type,
                        const headers& h) {
  return test::http_call(port, "POST", "/v1/tracks", body, h, type);
}

/// Uploads a raw MP3 with `title` and `visibility`; REQUIREs 202. The track's id.
std::string upload_raw(uint16_t port, const std::string& token, const std::string& audio,
                       const std::string& title, const std::string& visibility) {
  auto h =
      with(with(test::bearer(token), "X-Track-Title", title), "X-Track-Visibility", visibility);
  auto r = upload(port, audio, "audio/mpeg", h);
  REQUIRE_MESSAGE(r.status == 202, r.body);
  auto t = parse_json<messages::TrackInfo>(r.body);
  REQUIRE(t);
  return t->id();
}

/// Waits (as the owner) until the track is ready or failed; REQUIREs ready.
messages::TrackInfo ready_track(uint16_t port, const std::string& token, const std::string& id) {
  std::optional<messages::TrackInfo> track;
  CHECK(test::eventually(120s, [&] {
    track = parse_json<messages::TrackInfo>(
        test::http_get(port, "/v1/tracks/" + id, test::bearer(token)).body);
    return track && (track->status() == "ready" || track->status() == "failed");
  }));
  REQUIRE(track);
  REQUIRE_MESSAGE(track->status() == "ready", track->failure());
  return *track;
}

/// The ids of a list of tracks, in order.
std::vector<std::string> ids_of(const messages::TrackPage& page) {
  std::vector<std::string> out;
  for (const auto& t : page.tracks()) out.push_back(t.id());
  return out;
}

/// Whether GET `path` (with `h`) eventually answers a TrackPage that satisfies `want`.
template <class Predicate>
bool list_eventually(uint16_t port, const std::string& path, const headers& h, Predicate want) {
  std::vector<std::string> last;
  bool ok = test::eventually(20s, [&] {
    auto page = parse_json<messages::TrackPage>(test::http_get(port, path, h).body);
    if (!page) return false;
    last = ids_of(*page);
    return want(last);
  });
  if (!ok) MESSAGE(path << " last listed " << last.size() << " tracks");
  return ok;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

/// The tracks of a playlist's items, in order.
std::vector<std::string> tracks_of(const messages::PlaylistInfo& p) {
  std::vector<std::string> out;
  for (const auto& item : p.items()) out.push_back(item.track());
  return out;
}

/// The item id of `track` in the playlist (-1 when absent).
int64_t item_of(const messages::PlaylistInfo& p, const std::string& track) {
  for (const auto& item : p.items())
    if (item.track() == track) return item.item_id();
  return -1;
}

/// Hex HMAC-SHA256 of `data` under `key`, as a client holding the key signs a stream URL.
std::string hmac_hex(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 0xf];
  }
  return out;
}

/// The value of query parameter `name` in `url`.
std::string param_of(const std::string& url, const std::string& name) {
  auto at = url.find(name + "=");
  if (at == std::string::npos) return {};
  at += name.size() + 1;
  return url.substr(at, url.find('&', at) - at);
}

/// `url` with query parameter `name` set to `value`.
std::string with_param(const std::string& url, const std::string& name, const std::string& value) {
  auto at = url.find(name + "=");
  REQUIRE(at != std::string::npos);
  at += name.size() + 1;
  auto end = url.find('&', at);
  return url.substr(0, at) + value + (end == std::string::npos ? "" : url.substr(end));
}

/// The sum over the cluster's nodes of one metrics series.
double cluster_metric(test::test_cluster& c, const std::string& series) {
  double sum = 0;
  for (size_t i = 0; i < c.size(); ++i)
    sum += test::metric_value(test::http_get(c.at(i).metrics_port, "/metrics").body, series);
  return sum;
}

}  // namespace

TEST_CASE(
    "library: a multipart upload with cover art gets three cover sizes and a waveform, its "
    "owner edits its metadata, fans comment, like and repost it, and the artist's lists and a "
    "follower's feed show public tracks only") {
  test::temp_dir dir;
  auto with_cover = make_mp3(dir, true);
  auto plain = make_mp3(dir, false);

  test::test_cluster c{2};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto [artist, token] = test::member(p0, test::unique_name("band"), true);
  auto [fan, fan_token] = test::member(p1, test::unique_name("fan"), false);
  auto owner = test::bearer(token);
  auto listener = test::bearer(fan_token);

  // The form: a file part and the metadata as fields.
  std::vector<std::pair<std::string, std::string>> fields{
      {"title", "Red Sky"}, {"tags", "rock, night"}, {"release_date", "2026-01-02"}};
  auto accepted = upload(p0, form(fields, with_cover), form_type, owner);
  REQUIRE_MESSAGE(accepted.status == 202, accepted.body);
  auto created = parse_json<messages::TrackInfo>(accepted.body);
  REQUIRE(created);
  auto id = created->id();
  CHECK(created->title() == "Red Sky");
  CHECK(created->release_date() == "2026-01-02");
  REQUIRE(created->tags_size() == 2);
  CHECK(created->tags(0) == "rock");
  CHECK(created->tags(1) == "night");
  // The second, private track: the raw audio as the body.
  auto hidden = upload_raw(p1, token, plain, "Demo", "private");

  // Forms that are refused before any track exists.
  std::string zip = std::string{"PK\x03\x04", 4} + std::string(2000, '\x11');
  CHECK(error_is(upload(p0, form(fields, zip, "application/zip", "song.zip"), form_type, owner),
                 415, "unsupported_media_type"));
  CHECK(error_is(upload(p0,
                        form(fields, std::string{"just some words, no sound at all\n"},
                             "text/plain", "notes.txt"),
                        form_type, owner),
                 415, "unsupported_media_type"));
  CHECK(error_is(upload(p0, form(fields), form_type, owner), 422, "validation"));
  CHECK(error_is(
      upload(p0, form(fields, with_cover, "audio/mpeg", "song.mp3", false), form_type, owner), 422,
      "validation"));
  CHECK(
      error_is(upload(p0, form({{"title", "Red Sky"}, {"release_date", "2026-02-30"}}, with_cover),
                      form_type, owner),
               422, "validation"));
  CHECK(error_is(
      upload(p0, form({{"title", "Red Sky"}, {"tags", "a,b,c,d,e,f,g,h,i,j,k"}}, with_cover),
             form_type, owner),
      422, "validation"));
  // Metadata must be text: a title that is not UTF-8 is refused before anything is stored.
  CHECK(error_is(upload(p0, form({{"title", "Red \xff\xfe Sky"}}, with_cover), form_type, owner),
                 422, "validation"));

  auto track = ready_track(p0, token, id);
  ready_track(p0, token, hidden);

  // Cover art in three sizes, each keeping the 2:1 shape.
  REQUIRE(track.covers_size() == 3);
  std::vector<std::vector<int>> sizes;
  for (const auto& cov : track.covers()) sizes.push_back({cov.size(), cov.width(), cov.height()});
  CHECK(sizes == std::vector<std::vector<int>>{{96, 96, 48}, {300, 300, 150}, {600, 600, 300}});
  CHECK(track.covers(0).url() == "/v1/tracks/" + id + "/cover?size=96");
  auto small = test::http_get(p1, track.covers(0).url());
  CHECK(small.status == 200);
  CHECK(small.header("Content-Type") == "image/jpeg");
  CHECK(small.body.rfind("\xFF\xD8", 0) == 0);
  CHECK(error_is(test::http_get(p1, "/v1/tracks/" + id + "/cover?size=123"), 404, "not_found"));
  auto waveform = test::http_get(p1, "/v1/tracks/" + id + "/waveform");
  CHECK(waveform.status == 200);
  CHECK(has(waveform.header("Content-Type"), "application/json"));
  CHECK(has(waveform.body, R"("points":1800)"));

  // Metadata: only the owner edits it, with a JSON object of known, well-typed fields.
  auto patch = [&](const std::string& body, const headers& h,
                   const std::string& type = "application/json") {
    return test::http_call(p1, "PATCH", "/v1/tracks/" + id, body, h, type);
  };
  auto edited =
      patch(R"({"title":"Red Dawn","tags":["dawn","synth"],"visibility":"unlisted"})", owner);
  CHECK_MESSAGE(edited.status == 200, edited.body);
  auto now = parse_json<messages::TrackInfo>(test::http_get(p0, "/v1/tracks/" + id).body);
  REQUIRE(now);
  CHECK(now->title() == "Red Dawn");
  CHECK(std::vector<std::string>(now->tags().begin(), now->tags().end()) ==
        std::vector<std::string>{"dawn", "synth"});
  CHECK(now->visibility() == "unlisted");
  CHECK(now->release_date() == "2026-01-02");
  // The artist's own list shows the edit (title and visibility in one event).
  CHECK(test::eventually(20s, [&] {
    auto page = parse_json<messages::TrackPage>(
        test::http_get(p0, "/v1/users/" + artist.id() + "/tracks", owner).body);
    if (!page) return false;
    for (const auto& t : page->tracks())
      if (t.id() == id) return t.title() == "Red Dawn" && t.visibility() == "unlisted";
    return false;
  }));
  CHECK(error_is(patch(R"({"title":"Mine now"})", listener), 403, "forbidden"));
  CHECK(error_is(patch(R"({"title":"Mine now"})", {}), 401, "unauthenticated"));
  CHECK(error_is(patch(R"({"title":)", owner), 400, "malformed_json"));
  CHECK(error_is(patch(R"({"colour":"red"})", owner), 422, "validation"));
  CHECK(error_is(patch(R"({"title":5})", owner), 422, "validation"));
  CHECK(
      error_is(patch(R"({"title":")" + std::string(201, 't') + R"("})", owner), 422, "validation"));
  CHECK(error_is(patch(R"({"visibility":"secret"})", owner), 422, "validation"));
  CHECK(
      error_is(patch(R"({"title":"Plain"})", owner, "text/plain"), 415, "unsupported_media_type"));
  CHECK(error_is(patch("{}", owner), 422, "validation"));

  // Reposts: an unlisted track cannot be reposted, a public one can.
  auto repost = test::http_call(p1, "PUT", "/v1/tracks/" + id + "/repost", "", listener);
  CHECK(error_is(repost, 422, "validation"));
  CHECK(patch(R"({"visibility":"public"})", owner).status == 200);
  repost = test::http_call(p1, "PUT", "/v1/tracks/" + id + "/repost", "", listener);
  CHECK_MESSAGE(repost.status == 200, repost.body);
  auto reposted = parse_json<messages::LibraryChange>(repost.body);
  REQUIRE(reposted);
  CHECK(reposted->changed());

  // Comments: posted once per client id, numbered from 1, listed oldest first.
  auto comment = [&](const std::string& body, const headers& h) {
    return test::http_call(p0, "POST", "/v1/tracks/" + id + "/comments", body, h);
  };
  auto first = comment(R"({"text":"Lovely intro","at_s":1.5,"client_id":"c1"})", listener);
  CHECK_MESSAGE(first.status == 201, first.body);
  auto c1 = parse_json<messages::TrackComment>(first.body);
  REQUIRE(c1);
  CHECK(has(first.body, R"("id":"1")"));
  CHECK(c1->author() == fan.id());
  CHECK(c1->at_s() == 1.5);
  auto again = comment(R"({"text":"Lovely intro","at_s":1.5,"client_id":"c1"})", listener);
  CHECK(again.status == 201);
  CHECK(parse_json<messages::TrackComment>(again.body)->id() == 1);
  auto second = comment(R"({"text":"Great ending","client_id":"c2"})", listener);
  CHECK_MESSAGE(second.status == 201, second.body);
  CHECK(has(second.body, R"("id":"2")"));
  // Another author's "c1" is another comment, not a retry of the fan's.
  auto owners_c1 = comment(R"({"text":"Thanks!","client_id":"c1"})", owner);
  CHECK_MESSAGE(owners_c1.status == 201, owners_c1.body);
  CHECK(has(owners_c1.body, R"("id":"3")"));
  CHECK(error_is(comment(R"({"text":")" + std::string(2001, 'x') + R"("})", listener), 422,
                 "validation"));
  CHECK(error_is(comment(R"({"text":"Anonymous praise"})", {}), 401, "unauthenticated"));
  CHECK(error_is(comment(R"({"text":"Too late","at_s":10})", listener), 422, "validation"));
  std::optional<messages::CommentPage> comments;
  CHECK(test::eventually(20s, [&] {
    comments = parse_json<messages::CommentPage>(
        test::http_get(p1, "/v1/tracks/" + id + "/comments").body);
    return comments && comments->comments_size() >= 3;
  }));
  REQUIRE(comments);
  REQUIRE(comments->comments_size() == 3);
  CHECK(comments->comments(2).author() == artist.id());
  CHECK(comments->comments(0).id() == 1);
  CHECK(comments->comments(0).text() == "Lovely intro");
  CHECK(comments->comments(1).id() == 2);
  CHECK(comments->comments(1).text() == "Great ending");

  // Likes: idempotent, counted on the track and listed among the fan's likes.
  auto like = [&](const char* method) {
    auto r = test::http_call(p1, method, "/v1/tracks/" + id + "/like", "", listener);
    CHECK_MESSAGE(r.status == 200, r.body);
    auto change = parse_json<messages::LibraryChange>(r.body);
    return change && change->changed();
  };
  auto like_count_is = [&](int64_t n) {
    return test::eventually(20s, [&] {
      auto t = parse_json<messages::TrackInfo>(test::http_get(p0, "/v1/tracks/" + id).body);
      return t && t->like_count() == n;
    });
  };
  CHECK(like("PUT"));
  CHECK_FALSE(like("PUT"));
  CHECK(like_count_is(1));
  CHECK(list_eventually(p0, "/v1/users/" + fan.id() + "/likes", {},
                        [&](const auto& ids) { return ids == std::vector<std::string>{id}; }));
  CHECK(like("DELETE"));
  CHECK(like_count_is(0));
  CHECK(list_eventually(p0, "/v1/users/" + fan.id() + "/likes", {},
                        [&](const auto& ids) { return ids.empty(); }));

  // The artist's tracks: public and ready ones for everyone, all of them for the artist.
  auto tracks_path = "/v1/users/" + artist.id() + "/tracks";
  CHECK(list_eventually(p1, tracks_path, {},
                        [&](const auto& ids) { return ids == std::vector<std::string>{id}; }));
  CHECK(list_eventually(p1, tracks_path, listener,
                        [&](const auto& ids) { return ids == std::vector<std::string>{id}; }));
  CHECK(list_eventually(p1, tracks_path, owner, [&](const auto& ids) {
    return ids.size() == 2 && contains(ids, id) && contains(ids, hidden);
  }));

  // The feed: the followed artist's public tracks.
  auto follow = test::http_call(p1, "POST", "/v1/users/" + artist.id() + "/follow", "", listener);
  CHECK_MESSAGE(follow.status == 204, follow.body);
  CHECK(list_eventually(p1, "/v1/me/feed", listener,
                        [&](const auto& ids) { return ids == std::vector<std::string>{id}; }));
  CHECK(error_is(test::http_get(p1, "/v1/me/feed"), 401, "unauthenticated"));
  CHECK(error_is(test::http_get(p1, "/v1/me/feed?limit=0", listener), 422, "validation"));
  CHECK(error_is(test::http_get(p1, "/v1/me/feed?cursor=garbage", listener), 422, "validation"));
  // A cursor too large for its number is refused, and the lists keep working afterwards.
  CHECK(error_is(test::http_get(p1, tracks_path + "?cursor=9999999999999999999.x"), 422,
                 "validation"));
  CHECK(error_is(
      test::http_get(p1, "/v1/users/" + fan.id() + "/following?cursor=9999999999999999999.x"), 422,
      "validation"));
  CHECK(list_eventually(p1, tracks_path, {},
                        [&](const auto& ids) { return ids == std::vector<std::string>{id}; }));
}

TEST_CASE(
    "library: a listener keeps playlists, adds, moves and removes tracks in order, nobody else "
    "changes them, a private one stays hidden, and a deleted one is gone") {
  test::temp_dir dir;
  auto audio = make_mp3(dir, false);

  test::test_cluster c{2};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto [artist, artist_token] = test::member(p0, test::unique_name("band"), true);
  auto [fan, fan_token] = test::member(p1, test::unique_name("curator"), false);
  auto [other, other_token] = test::member(p0, test::unique_name("stranger"), false);
  auto me = test::bearer(fan_token);
  auto stranger = test::bearer(other_token);
  auto t1 = upload_raw(p0, artist_token, audio, "One", "public");
  auto t2 = upload_raw(p0, artist_token, audio, "Two", "public");
  auto t3 = upload_raw(p0, artist_token, audio, "Three", "public");
  auto secret = upload_raw(p0, artist_token, audio, "Secret", "private");

  auto create = [&](const std::string& body, const headers& h) {
    return test::http_call(p0, "POST", "/v1/playlists", body, h);
  };
  auto made = create(R"({"title":"Night Mix","visibility":"private"})", me);
  REQUIRE_MESSAGE(made.status == 201, made.body);
  auto mix = parse_json<messages::PlaylistInfo>(made.body);
  REQUIRE(mix);
  CHECK(made.header("Location") == "/v1/playlists/" + mix->id());
  CHECK(mix->owner() == fan.id());
  CHECK(mix->visibility() == "private");
  auto path = "/v1/playlists/" + mix->id();

  // Private: its owner sees it, nobody else learns that it exists.
  CHECK(error_is(test::http_get(p1, path), 404, "not_found"));
  CHECK(error_is(test::http_get(p1, path, stranger), 404, "not_found"));
  CHECK(test::http_get(p1, path, me).status == 200);

  // Each change answers the playlist; a GET then shows the same order.
  auto order_is = [&](const test::http_reply& r, int status, std::vector<std::string> want) {
    CHECK_MESSAGE(r.status == status, r.body);
    auto answered = parse_json<messages::PlaylistInfo>(r.body);
    auto got = parse_json<messages::PlaylistInfo>(test::http_get(p1, path, me).body);
    return answered && got && tracks_of(*answered) == want && tracks_of(*got) == want;
  };
  auto add = [&](const std::string& body, const headers& h, const std::string& on = "") {
    return test::http_call(p1, "POST", (on.empty() ? path : on) + "/items", body, h);
  };
  auto item_path = [&](int64_t item, const std::string& on = "") {
    return (on.empty() ? path : on) + "/items/" + std::to_string(item);
  };
  CHECK(order_is(add(R"({"track":")" + t1 + R"("})", me), 201, {t1}));
  CHECK(order_is(add(R"({"track":")" + t2 + R"("})", me), 201, {t1, t2}));
  CHECK(order_is(add(R"({"track":")" + t3 + R"(","position":0})", me), 201, {t3, t1, t2}));
  auto now = parse_json<messages::PlaylistInfo>(test::http_get(p1, path, me).body);
  REQUIRE(now);
  auto i1 = item_of(*now, t1);
  auto i2 = item_of(*now, t2);
  auto i3 = item_of(*now, t3);
  CHECK(order_is(test::http_call(p0, "PATCH", item_path(i2), R"({"position":0})", me), 200,
                 {t2, t3, t1}));
  CHECK(order_is(test::http_call(p0, "DELETE", item_path(i3), "", me), 200, {t2, t1}));

  // Somebody else's private playlist is not there for them, whatever they try.
  CHECK(error_is(add(R"({"track":")" + t3 + R"("})", stranger), 404, "not_found"));
  CHECK(error_is(test::http_call(p0, "PATCH", item_path(i1), R"({"position":0})", stranger), 404,
                 "not_found"));
  CHECK(error_is(test::http_call(p0, "DELETE", item_path(i1), "", stranger), 404, "not_found"));
  CHECK(error_is(test::http_call(p0, "DELETE", path, "", stranger), 404, "not_found"));
  CHECK(order_is(test::http_get(p1, path, me), 200, {t2, t1}));

  // What cannot be added, and bodies that are refused.
  CHECK(error_is(add(R"({"track":")" + std::string(32, 'e') + R"("})", me), 404, "not_found"));
  CHECK(error_is(add(R"({"track":")" + secret + R"("})", me), 404, "not_found"));
  CHECK(error_is(create(R"({"description":"no title"})", me), 422, "validation"));
  CHECK(error_is(create(R"({"title":)", me), 400, "malformed_json"));
  CHECK(error_is(create(R"({"title":"Mix","colour":"blue"})", me), 422, "validation"));
  CHECK(error_is(add(R"({"track":")" + t3 + R"(","position":-1})", me), 422, "validation"));
  CHECK(error_is(add(R"({"track":")" + t3 + R"(","position":"x"})", me), 422, "validation"));
  CHECK(error_is(add(R"({"track":")" + t3 + R"(","colour":"blue"})", me), 422, "validation"));
  CHECK(error_is(test::http_call(p0, "DELETE", path + "/items/abc", "", me), 404, "not_found"));
  CHECK(error_is(test::http_call(p0, "PATCH", path + "/items/abc", R"({"position":0})", me), 404,
                 "not_found"));
  CHECK(order_is(test::http_get(p1, path, me), 200, {t2, t1}));

  // A public playlist: anyone sees it, still only its owner changes it.
  auto open_made = create(R"({"title":"Open Mix"})", me);
  REQUIRE_MESSAGE(open_made.status == 201, open_made.body);
  auto open = parse_json<messages::PlaylistInfo>(open_made.body);
  REQUIRE(open);
  CHECK(open->visibility() == "public");
  auto open_path = "/v1/playlists/" + open->id();
  auto added = add(R"({"track":")" + t1 + R"("})", me, open_path);
  CHECK_MESSAGE(added.status == 201, added.body);
  auto with_t1 = parse_json<messages::PlaylistInfo>(added.body);
  REQUIRE(with_t1);
  auto open_item = item_of(*with_t1, t1);
  CHECK(test::http_get(p0, open_path).status == 200);
  CHECK(error_is(add(R"({"track":")" + t2 + R"("})", stranger, open_path), 403, "forbidden"));
  CHECK(error_is(
      test::http_call(p0, "PATCH", item_path(open_item, open_path), R"({"position":0})", stranger),
      403, "forbidden"));
  CHECK(error_is(test::http_call(p0, "DELETE", item_path(open_item, open_path), "", stranger), 403,
                 "forbidden"));
  CHECK(error_is(test::http_call(p0, "DELETE", open_path, "", stranger), 403, "forbidden"));
  auto still = parse_json<messages::PlaylistInfo>(test::http_get(p0, open_path).body);
  REQUIRE(still);
  CHECK(tracks_of(*still) == std::vector<std::string>{t1});

  // The owner's list of playlists: the public one for everyone, both for the owner.
  auto playlists = [&](const headers& h) {
    std::vector<std::string> out;
    auto page = parse_json<messages::PlaylistPage>(
        test::http_get(p0, "/v1/users/" + fan.id() + "/playlists", h).body);
    if (page)
      for (const auto& p : page->playlists()) out.push_back(p.id());
    return out;
  };
  auto lists_exactly = [&](const headers& h, std::vector<std::string> want) {
    std::sort(want.begin(), want.end());
    return test::eventually(20s, [&] {
      auto got = playlists(h);
      std::sort(got.begin(), got.end());
      return got == want;
    });
  };
  CHECK(lists_exactly({}, {open->id()}));
  CHECK(lists_exactly(stranger, {open->id()}));
  CHECK(lists_exactly(me, {open->id(), mix->id()}));
  // A rename and a visibility change reach the list in one edit.
  auto renamed = test::http_call(p0, "PATCH", open_path,
                                 R"({"title":"Open Road","visibility":"private"})", me);
  CHECK_MESSAGE(renamed.status == 200, renamed.body);
  CHECK(test::eventually(20s, [&] {
    auto page = parse_json<messages::PlaylistPage>(
        test::http_get(p0, "/v1/users/" + fan.id() + "/playlists", me).body);
    if (!page) return false;
    for (const auto& p : page->playlists())
      if (p.id() == open->id()) return p.title() == "Open Road" && p.visibility() == "private";
    return false;
  }));
  CHECK(lists_exactly(stranger, {}));

  // Deleted: gone for its owner too, and from the lists.
  auto deleted = test::http_call(p1, "DELETE", path, "", me);
  CHECK(deleted.status == 204);
  CHECK(deleted.body.empty());
  CHECK(error_is(test::http_get(p0, path, me), 404, "not_found"));
  CHECK(lists_exactly(me, {open->id()}));
}

TEST_CASE(
    "library: a signed stream URL plays a private track on any node without a token until it "
    "expires, a changed one is refused, and each play is an event in Redis and in the metrics") {
  test::temp_dir dir;
  auto audio = make_mp3(dir, false);
  const std::string key = "k3y-for-signing-stream-urls-0123456789ab";
  REQUIRE(key.size() == 40);

  test::test_cluster c{2};
  c.set_section("chorus.audio", "stream-url-key=\"" + key + "\"\nstream-url-ttl=10min\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto [artist, token] = test::member(p0, test::unique_name("band"), true);
  auto [fan, fan_token] = test::member(p1, test::unique_name("fan"), false);
  auto owner = test::bearer(token);

  auto id = upload_raw(p0, token, audio, "Private Song", "private");
  auto track = ready_track(p0, token, id);
  const messages::Rendition* opus = nullptr;
  for (const auto& r : track.renditions())
    if (r.format() == "opus" && r.quality() == "high") opus = &r;
  REQUIRE(opus != nullptr);

  // The owner asks for a URL; anyone holding it plays the rendition from any node.
  auto asked =
      test::http_get(p0, "/v1/tracks/" + id + "/stream-url?format=opus&quality=high", owner);
  REQUIRE_MESSAGE(asked.status == 200, asked.body);
  auto signed_url = parse_json<messages::StreamUrl>(asked.body);
  REQUIRE(signed_url);
  auto url = signed_url->url();
  REQUIRE(url.rfind("/v1/tracks/" + id + "/stream?", 0) == 0);
  CHECK_FALSE(signed_url->expires_at().empty());
  auto played = test::http_get(p1, url);
  CHECK(played.status == 200);
  CHECK(played.body.size() == static_cast<size_t>(opus->size()));
  CHECK(played.body.rfind("OggS", 0) == 0);
  CHECK(played.header("Cache-Control").rfind("private, max-age=", 0) == 0);
  auto part = test::http_get(p1, url, {{"Range", "bytes=1000-1999"}});
  CHECK(part.status == 206);
  CHECK(part.body == played.body.substr(1000, 1000));

  // A URL changed in any way is refused.
  auto sig = param_of(url, "sig");
  REQUIRE(sig.size() == 64);
  auto forged = sig;
  forged.back() = forged.back() == '0' ? '1' : '0';
  CHECK(error_is(test::http_get(p1, with_param(url, "sig", forged)), 403, "forbidden"));
  auto expires = param_of(url, "expires");
  auto later = std::to_string(std::stoll(expires) + 3600);
  CHECK(error_is(test::http_get(p1, with_param(url, "expires", later)), 403, "forbidden"));
  // Correctly signed but expired.
  auto past = std::to_string(std::time(nullptr) - 60);
  auto old_url = "/v1/tracks/" + id + "/stream?format=opus&quality=high&expires=" + past +
                 "&sig=" + hmac_hex(key, id + "\nopus\nhigh\n" + past);
  auto expired = test::http_get(p1, old_url);
  CHECK(error_is(expired, 403, "forbidden"));
  CHECK(has(expired.body, "expired"));
  // Only the owner gets URLs of a private track.
  CHECK(error_is(test::http_get(p1, "/v1/tracks/" + id + "/stream-url", test::bearer(fan_token)),
                 404, "not_found"));

  // A track still being processed has nothing to sign yet. Asked for at once after the upload;
  // if the cluster was faster than the request, there is nothing to check.
  auto fresh = upload_raw(p0, token, audio, "Fresh", "public");
  auto early = test::http_get(p0, "/v1/tracks/" + fresh + "/stream-url", owner);
  if (early.status == 200)
    MESSAGE("the fresh track was ready before its stream-url was asked for: 409 not checked");
  else
    CHECK(error_is(early, 409, "conflict"));

  // The plays of the private track as events on the cluster's Redis stream.
  auto events = [&] {
    return test::run({"redis-cli", "-u", test::real_storage().redis_url, "XRANGE",
                      "chorus:plays:" + c.name(), "-", "+"})
        .output;
  };
  std::string seen;
  CHECK(test::eventually(20s, [&] {
    seen = events();
    return has(seen, "track\n" + id + "\nkind\nstarted\n") &&
           has(seen, "track\n" + id + "\nkind\nprogressed\n");
  }));
  if (!has(seen, "progressed")) MESSAGE(seen);
  // ... and in the metrics, with the finished transcodes.
  CHECK(test::eventually(20s, [&] {
    return cluster_metric(c, R"(chorus_play_events_total{outcome="published"})") >= 2 &&
           cluster_metric(c, R"(chorus_transcode_jobs_total{outcome="done"})") >= 1 &&
           cluster_metric(c, "chorus_transcode_realtime_factor_count") >= 1;
  }));
  test::run({"redis-cli", "-u", test::real_storage().redis_url, "DEL", "chorus:plays:" + c.name()});
}

TEST_CASE(
    "library: an upload that stops sending is answered 408 after the client timeout, one that "
    "trickles is answered 408 once its grace is over, other clients are served meanwhile and no "
    "track is created") {
  test::test_cluster c{2};
  c.set_section("chorus.edge",
                "client-timeout=2s\nread-limit=0\nwrite-limit=0\nuser-read-limit=0\n"
                "user-write-limit=0\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto port = c.at(0).http_port;
  auto [artist, token] = test::member(port, test::unique_name("drip"), true);
  auto head =
      "POST /v1/tracks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
      "\r\nContent-Type: audio/mpeg\r\nX-Track-Title: Drip\r\nContent-Length: 1000000\r\n\r\n";

  // Sends ten bytes every 100 ms (`stop_after` times, then nothing) until the server answers;
  // checks meanwhile that the node answers others. The answer and how long it took.
  auto drip = [&](int stop_after, std::chrono::seconds deadline) {
    raw_conn conn{port};
    REQUIRE(conn.connected());
    REQUIRE(conn.send(head));
    auto start = std::chrono::steady_clock::now();
    int sent = 0;
    int healthy = 0;
    int asked = 0;
    while (std::chrono::steady_clock::now() - start < deadline) {
      if (sent < stop_after && !conn.send(std::string(10, '\x55'))) break;
      ++sent;
      if (conn.readable(100ms)) break;  // the client's pace, cut short by the server's answer
      if (sent % 10 == 0) {
        ++asked;
        healthy += test::http_get(port, "/healthz").status == 200 ? 1 : 0;
      }
    }
    auto answer = conn.read_all(3s);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(asked > 0);
    CHECK(healthy == asked);
    return std::make_pair(answer, took);
  };

  // Silent after 100 bytes: the client timeout (2 s) ends it.
  auto [stalled, stalled_took] = drip(10, 20s);
  CHECK_MESSAGE(stalled.rfind("HTTP/1.1 408", 0) == 0, "the edge answered [" << stalled << "]");
  CHECK(has(stalled, R"({"error":{"code":"request_timeout")"));
  CHECK(stalled_took < 6s);

  // 100 bytes a second, never silent for the client timeout: cut off once it has had the
  // upload's 30 s of grace to reach the minimum rate.
  auto [trickled, trickled_took] = drip(1 << 30, 60s);
  CHECK_MESSAGE(trickled.rfind("HTTP/1.1 408", 0) == 0, "the edge answered [" << trickled << "]");
  CHECK(has(trickled, R"({"error":{"code":"upload_too_slow")"));
  CHECK(trickled_took < 40s);

  auto page = parse_json<messages::TrackPage>(
      test::http_get(port, "/v1/users/" + artist.id() + "/tracks", test::bearer(token)).body);
  REQUIRE(page);
  CHECK(page->tracks_size() == 0);
}
