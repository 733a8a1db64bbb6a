#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <optional>
#include <random>
#include <string>

#include <google/protobuf/util/json_util.h>

#include "messages/audio.pb.h"
#include "messages/users.pb.h"
#include "tests/support/accounts.hpp"
#include "tests/support/process.hpp"
#include "tests/support/replies.hpp"
#include "tests/support/test_cluster.hpp"

// Uploads against real nodes: audio made by the ffmpeg CLI in the test, streamed to the edge,
// probed, stored, transcoded by a node's transcoder and the track moving to ready.

using namespace chorus;
using namespace std::chrono_literals;

namespace {

using test::error_is;
using test::has;
using test::parse_json;

using headers = std::vector<std::pair<std::string, std::string>>;

test::http_reply upload(uint16_t port, const std::string& body, const std::string& type,
                        headers h) {
  return test::http_call(port, "POST", "/v1/tracks", body, h, type);
}

}  // namespace

TEST_CASE(
    "uploads: an artist's FLAC is accepted with 202, processed on a transcode node and ready "
    "with six renditions and its loudness, text, the wrong type, no title, non-artists and "
    "anonymous callers are refused, and a private track is its owner's alone") {
  test::temp_dir dir;
  auto flac = dir.path() + "/song.flac";
  auto made =
      test::run({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=4:r=44100",
                 "-ac", "2", "-metadata", "genre=Testcore", flac});
  REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  auto audio = test::read_file(flac);

  test::test_cluster c{2};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto [artist, token] = test::member(p0, test::unique_name("band"), true);
  auto [fan, fan_token] = test::member(p1, test::unique_name("fan"), false);
  auto titled = [](headers h, const std::string& title) {
    h.emplace_back("X-Track-Title", title);
    return h;
  };

  CHECK(error_is(upload(p0, audio, "audio/flac", titled({}, "Song")), 401, "unauthenticated"));
  CHECK(error_is(upload(p0, audio, "audio/flac", titled(test::bearer(fan_token), "Song")), 403,
                 "forbidden"));
  CHECK(error_is(upload(p0, audio, "text/plain", titled(test::bearer(token), "Song")), 415,
                 "unsupported_media_type"));
  CHECK(error_is(upload(p0, audio, "audio/flac", test::bearer(token)), 422, "validation"));
  CHECK(error_is(upload(p0, "", "audio/flac", titled(test::bearer(token), "Song")), 422,
                 "validation"));
  auto text = upload(p0, "These are words, not sound. Nothing to hear here at all.\n", "audio/mpeg",
                     titled(test::bearer(token), "Song"));
  CHECK(error_is(text, 415, "unsupported_media_type"));
  CHECK(text.body.find("not an accepted audio file") != std::string::npos);
  auto bad_vis = titled(test::bearer(token), "Song");
  bad_vis.emplace_back("X-Track-Visibility", "secret");
  CHECK(error_is(upload(p0, audio, "audio/flac", bad_vis), 422, "validation"));

  auto h = titled(test::bearer(token), "Night Drive");
  h.emplace_back("X-Track-Visibility", "private");
  auto accepted = upload(p1, audio, "audio/flac", h);
  REQUIRE_MESSAGE(accepted.status == 202, accepted.body);
  auto created = parse_json<messages::TrackInfo>(accepted.body);
  REQUIRE(created);
  CHECK(created->status() == "uploaded");
  CHECK(created->title() == "Night Drive");
  CHECK(created->owner() == artist.id());
  CHECK(accepted.header("Location") == "/v1/tracks/" + created->id());

  // Processing happens in the background: the owner polls until it settles.
  std::optional<messages::TrackInfo> track;
  CHECK(test::eventually(120s, [&] {
    auto r = test::http_get(p0, "/v1/tracks/" + created->id(), test::bearer(token));
    track = parse_json<messages::TrackInfo>(r.body);
    return track && (track->status() == "ready" || track->status() == "failed");
  }));
  REQUIRE(track);
  CHECK_MESSAGE(track->status() == "ready", track->failure());
  CHECK(track->renditions_size() == 6);
  CHECK(std::abs(track->duration_s() - 4.0) < 0.05);
  CHECK(track->loudness_lufs() < -10);
  CHECK(track->loudness_lufs() > -40);
  CHECK(track->genre() == "Testcore");  // from the file's tags
  for (const auto& r : track->renditions()) {
    CAPTURE(r.format());
    CHECK(r.blob().size() == 64);
    CHECK(r.size() > 1000);
    CHECK(std::abs(r.duration_s() - 4.0) < 0.05);
  }
  // Streaming, with Range, from the other node.
  auto stream = "/v1/tracks/" + created->id() + "/stream?format=opus&quality=low";
  const messages::Rendition* opus_low = nullptr;
  for (const auto& r : track->renditions())
    if (r.format() == "opus" && r.quality() == "low") opus_low = &r;
  REQUIRE(opus_low != nullptr);
  auto size = static_cast<size_t>(opus_low->size());
  auto ranged = [&](const std::string& range) {
    auto h2 = test::bearer(token);
    h2.emplace_back("Range", range);
    return test::http_get(p1, stream, h2);
  };
  auto whole = test::http_get(p1, stream, test::bearer(token));
  CHECK(whole.status == 200);
  CHECK(whole.body.size() == size);
  CHECK(whole.header("Content-Length") == std::to_string(size));
  CHECK(whole.header("Accept-Ranges") == "bytes");
  CHECK(whole.header("Content-Type") == "audio/ogg; codecs=opus");
  CHECK(whole.header("ETag") == "\"" + opus_low->blob() + "\"");
  CHECK(whole.body.rfind("OggS", 0) == 0);
  auto first = ranged("bytes=0-0");
  CHECK(first.status == 206);
  CHECK(first.body == "O");
  CHECK(first.header("Content-Range") == "bytes 0-0/" + std::to_string(size));
  auto last = ranged("bytes=-1");
  CHECK(last.status == 206);
  CHECK(last.body == whole.body.substr(size - 1));
  CHECK(last.header("Content-Range") == "bytes " + std::to_string(size - 1) + "-" +
                                            std::to_string(size - 1) + "/" + std::to_string(size));
  auto tail = ranged("bytes=100-");
  CHECK(tail.status == 206);
  CHECK(tail.body == whole.body.substr(100));
  auto middle = ranged("bytes=1000-1999");
  CHECK(middle.body == whole.body.substr(1000, 1000));
  auto past = ranged("bytes=" + std::to_string(size) + "-");
  CHECK(error_is(past, 416, "range_not_satisfiable"));
  CHECK(past.header("Content-Range") == "bytes */" + std::to_string(size));
  auto malformed = ranged("bytes=abc");
  CHECK(malformed.status == 200);
  CHECK(malformed.body.size() == size);
  auto h3 = test::bearer(token);
  h3.emplace_back("If-None-Match", whole.header("ETag"));
  CHECK(test::http_get(p1, stream, h3).status == 304);
  CHECK(error_is(test::http_get(p1, "/v1/tracks/" + created->id() + "/stream?format=flac",
                                test::bearer(token)),
                 422, "validation"));
  CHECK(error_is(test::http_get(p0, stream), 404, "not_found"));

  // Private: the owner sees it, nobody else does (not even that it exists).
  CHECK(error_is(test::http_get(p1, "/v1/tracks/" + created->id()), 404, "not_found"));
  CHECK(error_is(test::http_get(p1, "/v1/tracks/" + created->id(), test::bearer(fan_token)), 404,
                 "not_found"));
  CHECK(error_is(test::http_get(p1, "/v1/tracks/" + std::string(32, 'e')), 404, "not_found"));
}

TEST_CASE("uploads over the size limit are refused while they arrive, with 413") {
  test::test_cluster c{1};
  c.set_section("chorus.audio", "max-upload-bytes=65536\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto port = c.at(0).http_port;
  auto [artist, token] = test::member(port, test::unique_name("big"), true);
  auto h = test::bearer(token);
  h.emplace_back("X-Track-Title", "Too long");
  auto r = upload(port, std::string(300000, '\x55'), "audio/wav", h);
  CHECK(error_is(r, 413, "payload_too_large"));
}

TEST_CASE(
    "a node killed in the middle of a transcode: the track's reminder sends the job again to a "
    "transcode node that is alive, and the track still reaches ready") {
  test::temp_dir dir;
  // Two minutes of audio: a job of a few seconds, long enough to kill its transcoder mid-job.
  auto flac = dir.path() + "/long.flac";
  auto made = test::run({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                         "sine=f=330:d=120:r=44100", "-ac", "2", flac},
                        120s);
  REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  auto audio = test::read_file(flac);

  test::test_cluster c{2};
  // Sent again 10 s (then 20 s) after a dispatch that did not finish.
  c.set_section("chorus.audio", "transcode-timeout=10s\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto [artist, token] = test::member(c.at(0).http_port, test::unique_name("sturdy"), true);
  auto h = test::bearer(token);
  h.emplace_back("X-Track-Title", "Survivor");
  auto accepted = upload(c.at(0).http_port, audio, "audio/flac", h);
  REQUIRE_MESSAGE(accepted.status == 202, accepted.body);
  auto id = parse_json<messages::TrackInfo>(accepted.body)->id();

  // The job runs on the transcoder the dispatcher picked (either node): find it by its work
  // directory, <data-dir>/work/<node>/<track>-<attempt>, and kill that node mid-job. Whether it
  // also owned the track or not, the track's reminder sends the job again.
  auto data_dir = std::filesystem::path{c.conf_path()}.parent_path() / "data" / "work";
  std::optional<size_t> victim;
  REQUIRE(test::eventually(30s, [&] {
    for (size_t i = 0; i < 2; ++i)
      if (std::filesystem::exists(data_dir / c.at(i).name / (id + "-1"))) victim = i;
    return victim.has_value();
  }));
  size_t survivor = 1 - *victim;
  c.at(*victim).process->signal(SIGKILL);
  REQUIRE(test::eventually(10s, [&] { return c.sees(survivor, c.at(*victim).name, "down"); }));

  std::optional<messages::TrackInfo> track;
  CHECK(test::eventually(180s, [&] {
    track = parse_json<messages::TrackInfo>(
        test::http_get(c.at(survivor).http_port, "/v1/tracks/" + id).body);
    return track && (track->status() == "ready" || track->status() == "failed");
  }));
  REQUIRE(track);
  CHECK_MESSAGE(track->status() == "ready", track->failure());
  CHECK(track->attempts() >= 2);
  CHECK(track->renditions_size() == 6);
  CHECK(std::abs(track->duration_s() - 120.0) < 0.05);
}

TEST_CASE(
    "a track owned by a node without the transcode role is transcoded on a node that has it, "
    "and that node's metrics count the job, its seconds and its real-time factor") {
  test::temp_dir dir;
  auto wav = dir.path() + "/short.wav";
  auto made = test::run(
      {"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=550:d=3:r=48000", wav});
  REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  test::test_cluster c{2};
  c.set_roles(0, R"("edge", "entity")");     // owns every track, transcodes nothing
  c.set_roles(1, R"("edge", "transcode")");  // hosts no entity
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto [artist, token] = test::member(p0, test::unique_name("split"), true);
  auto h = test::bearer(token);
  h.emplace_back("X-Track-Title", "Elsewhere");
  auto accepted = upload(p0, test::read_file(wav), "audio/wav", h);
  REQUIRE_MESSAGE(accepted.status == 202, accepted.body);
  auto id = parse_json<messages::TrackInfo>(accepted.body)->id();
  std::optional<messages::TrackInfo> track;
  CHECK(test::eventually(120s, [&] {
    track = parse_json<messages::TrackInfo>(test::http_get(p0, "/v1/tracks/" + id).body);
    return track && (track->status() == "ready" || track->status() == "failed");
  }));
  REQUIRE(track);
  CHECK_MESSAGE(track->status() == "ready", track->failure());
  CHECK(track->renditions_size() == 6);
  auto metrics = [&](size_t i) { return test::http_get(c.at(i).metrics_port, "/metrics").body; };
  auto done = R"(chorus_transcode_jobs_total{outcome="done"})";
  // The job is counted once its worker is through, a moment after the track heard of it.
  CHECK(test::eventually(10s, [&] {
    auto page = metrics(1);
    return test::metric_value(page, done) >= 1 &&
           test::metric_value(page, "chorus_transcode_realtime_factor_count") >= 1 &&
           test::metric_value(page, "chorus_transcode_job_seconds_count") >= 1;
  }));
  CHECK(test::metric_value(metrics(0), done) == 0);
  CHECK(test::metric_value(metrics(1), "chorus_transcode_queue_length") == 0);
}
