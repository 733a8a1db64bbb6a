#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "actors/audio/media.hpp"
#include "tests/support/process.hpp"

// The in-process FFmpeg pipeline against real audio made by the ffmpeg CLI in the test: every
// accepted container is probed and transcoded; each rendition must decode, last as long as the
// source (within 50 ms) and the loudness must match `ffmpeg -af ebur128` (within 0.5 LU).
// Hostile files are refused with a reason and nothing crashes. Cover art is resized into JPEGs
// that ffprobe reads back at the expected dimensions.

using namespace chorus;
using namespace std::chrono_literals;

namespace {

/// Makes `out` with the ffmpeg CLI from a lavfi source.
void make_audio(const std::string& source, const std::vector<std::string>& output_args,
                const std::string& out) {
  std::vector<std::string> argv{"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source};
  argv.insert(argv.end(), output_args.begin(), output_args.end());
  argv.push_back(out);
  auto r = test::run(argv, 120s);
  REQUIRE_MESSAGE(r.exit_code == 0, out << ": " << r.output);
}

/// ffprobe's duration of the file (the container's idea of it, as players see it).
double probe_duration(const std::string& path) {
  auto r = test::run({"ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                      "default=nw=1:nk=1", path});
  REQUIRE_MESSAGE(r.exit_code == 0, path << ": " << r.output);
  return std::stod(r.output);
}

/// Decodes the whole file; the decoder's complaints (empty when clean).
std::string decode_errors(const std::string& path) {
  auto r = test::run({"ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"}, 120s);
  return r.exit_code == 0 ? r.output : "exit " + std::to_string(r.exit_code) + ": " + r.output;
}

/// Integrated loudness by the ffmpeg CLI's ebur128 filter.
double cli_loudness(const std::string& path) {
  auto r = test::run(
      {"ffmpeg", "-hide_banner", "-nostats", "-i", path, "-af", "ebur128", "-f", "null", "-"},
      120s);
  std::smatch m;
  static const std::regex integrated{R"(I:\s+(-?[0-9.]+) LUFS)"};
  std::string out = r.output;
  double last = NAN;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), integrated);
       it != std::sregex_iterator(); ++it)
    last = std::stod((*it)[1]);
  REQUIRE_MESSAGE(!std::isnan(last), r.output);
  return last;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f{path, std::ios::binary};
  f << bytes;
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string le16(uint16_t v) {
  return std::string{static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
}

bool is(const caf::error& err, audio::audio_errc code) {
  return err && err.category() == audio::audio_category && err.code() == static_cast<uint8_t>(code);
}

/// Makes a one-frame picture `name` in `dir` with the ffmpeg CLI; its bytes.
std::string make_picture(const test::temp_dir& dir, const std::string& source,
                         const std::string& name, std::vector<std::string> args = {}) {
  auto path = dir.path() + "/" + name;
  args.insert(args.begin(), {"-frames:v", "1"});
  make_audio(source, args, path);
  return test::read_file(path);
}

/// ffprobe's "codec,width,height" of a picture held in memory.
std::string picture_shape(const test::temp_dir& dir, const std::string& bytes) {
  auto path = dir.path() + "/shape.jpg";
  write_bytes(path, bytes);
  auto r = test::run({"ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                      "-of", "csv=p=0", path});
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == '\r'))
    r.output.pop_back();
  return r.output;
}

/// A whole JPEG: starts with SOI, ends with EOI.
bool is_jpeg(const std::string& bytes) {
  return bytes.size() > 4 && bytes.compare(0, 2, "\xFF\xD8") == 0 &&
         bytes.compare(bytes.size() - 2, 2, "\xFF\xD9") == 0;
}

/// Checks that `covers` are the default sizes at the dimensions `expected` ("mjpeg,W,H" each).
void check_covers(const test::temp_dir& dir, const std::vector<audio::cover_image>& covers,
                  const std::vector<std::string>& expected) {
  REQUIRE(covers.size() == 3);
  for (size_t i = 0; i < covers.size(); ++i) {
    CAPTURE(i);
    CHECK(covers[i].size == audio::default_cover_sizes()[i]);
    CHECK(is_jpeg(covers[i].jpeg));
    CHECK(picture_shape(dir, covers[i].jpeg) == expected[i]);
    CHECK("mjpeg," + std::to_string(covers[i].width) + "," + std::to_string(covers[i].height) ==
          expected[i]);
    CHECK(decode_errors(dir.path() + "/shape.jpg").empty());
  }
}

}  // namespace

TEST_CASE(
    "every accepted container is probed and transcoded once into the whole ladder: each rendition "
    "decodes, lasts as long as the source within 50 ms, and the loudness matches the ffmpeg CLI "
    "within 0.5 LU") {
  test::temp_dir dir;
  struct input {
    const char* name;
    std::string source;
    std::vector<std::string> args;
    int channels;
    int rate;
    double seconds;  ///< what the generator made: the right answer for every duration
  };
  const std::string tone = "sine=f=440:d=7:r=44100";
  std::vector<input> inputs{
      {"tone.wav", tone, {"-ac", "2"}, 2, 44100, 7},
      {"tone.flac", tone, {"-ac", "2"}, 2, 44100, 7},
      {"tone.mp3", tone, {"-ac", "2", "-c:a", "libmp3lame", "-b:a", "192k"}, 2, 44100, 7},
      {"tone.ogg", tone, {"-ac", "2", "-c:a", "libvorbis"}, 2, 44100, 7},
      {"tone.m4a", tone, {"-ac", "2", "-c:a", "aac"}, 2, 44100, 7},
      {"tone.aiff", tone, {"-ac", "2"}, 2, 44100, 7},
      {"noise-8k-mono.wav", "anoisesrc=d=5:c=pink:r=8000:a=0.3", {"-ac", "1"}, 1, 8000, 5},
      {"noise-96k.flac", "anoisesrc=d=4:c=white:r=96000:a=0.2", {"-ac", "2"}, 2, 96000, 4},
      {"silence.wav", "anullsrc=r=48000:cl=stereo", {"-t", "3"}, 2, 48000, 3},
  };
  for (const auto& in : inputs) {
    CAPTURE(in.name);
    auto path = dir.path() + "/" + in.name;
    make_audio(in.source, in.args, path);
    audio::media_limits limits;
    auto info = audio::probe(path, limits);
    REQUIRE_MESSAGE(info, error_detail(info.error()));
    CHECK(info->channels == in.channels);
    CHECK(info->sample_rate == in.rate);
    auto source_duration = in.seconds;

    auto out = dir.path() + "/out-" + in.name;
    auto result = audio::transcode(path, out, audio::default_ladder(), limits);
    REQUIRE_MESSAGE(result, error_detail(result.error()));
    REQUIRE(result->renditions.size() == 6);
    CHECK(std::abs(result->duration_s - source_duration) < 0.05);
    for (const auto& r : result->renditions) {
      CAPTURE(r.path);
      CHECK(decode_errors(r.path).empty());
      CHECK(std::abs(probe_duration(r.path) - source_duration) < 0.05);
      CHECK(r.size == static_cast<int64_t>(std::filesystem::file_size(r.path)));
    }
    if (std::string{in.name} != "silence.wav") {
      CHECK(std::abs(result->integrated_lufs - cli_loudness(path)) < 0.5);
    } else {
      // Digital silence is below the gate: the scan says so rather than inventing a level.
      CHECK(result->integrated_lufs <= -70.0);
    }
    REQUIRE(result->waveform.size() == 1800);
    float loudest = 0;
    for (float p : result->waveform) loudest = std::max(loudest, p);
    // The waveform's loudest point is the sample peak: at most the true peak (which may lie well
    // above it between the samples of white noise near Nyquist).
    auto true_peak = std::pow(10.0, result->true_peak_dbtp / 20);
    if (std::string{in.name} == "silence.wav") {
      CHECK(loudest == 0.0f);
    } else {
      CHECK(loudest <= true_peak + 0.01);
      CHECK(loudest > 0.4 * true_peak);
    }
  }
}

TEST_CASE("tags and embedded cover art are read from the upload") {
  test::temp_dir dir;
  auto cover = dir.path() + "/cover.png";
  make_audio("color=c=red:s=64x64", {"-frames:v", "1"}, cover);
  auto plain = dir.path() + "/plain.mp3";
  make_audio("sine=f=330:d=2", {"-c:a", "libmp3lame"}, plain);
  auto tagged = dir.path() + "/tagged.mp3";
  auto r = test::run({"ffmpeg",
                      "-v",
                      "error",
                      "-y",
                      "-i",
                      plain,
                      "-i",
                      cover,
                      "-map",
                      "0",
                      "-map",
                      "1",
                      "-c",
                      "copy",
                      "-id3v2_version",
                      "3",
                      "-metadata",
                      "title=Night Drive",
                      "-metadata",
                      "artist=The Testers",
                      "-metadata",
                      "album=Fixtures",
                      "-metadata",
                      "genre=Synthwave",
                      "-disposition:v",
                      "attached_pic",
                      tagged});
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  auto info = audio::probe(tagged, {});
  REQUIRE_MESSAGE(info, error_detail(info.error()));
  CHECK(info->tags["title"] == "Night Drive");
  CHECK(info->tags["artist"] == "The Testers");
  CHECK(info->tags["album"] == "Fixtures");
  CHECK(info->tags["genre"] == "Synthwave");
  CHECK(info->cover_art.rfind("\x89PNG", 0) == 0);
}

TEST_CASE(
    "hostile and unacceptable files are refused with a reason: truncated, text named .mp3, a zip, "
    "an HLS playlist and a concat script disguised as audio, 10^9 channels, zero-length, too "
    "long") {
  test::temp_dir dir;
  auto p = [&dir](const char* name) { return dir.path() + "/" + name; };
  audio::media_limits limits;

  make_audio("sine=f=440:d=5", {"-ac", "2"}, p("whole.flac"));
  auto whole = test::read_file(p("whole.flac"));
  write_bytes(p("truncated.flac"), whole.substr(0, 2000));
  write_bytes(p("text.mp3"), "This is not audio at all, just words in a file.\n");
  REQUIRE(test::run({"python3", "-c",
                     "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); "
                     "z.writestr('a.txt','hello'); z.close()",
                     p("archive.mp3")})
              .exit_code == 0);
  write_bytes(p("playlist.mp3"), "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://" +
                                     p("whole.flac") + "\n#EXT-X-ENDLIST\n");
  write_bytes(p("concat.wav"), "ffconcat version 1.0\nfile '" + p("whole.flac") + "'\n");
  // A WAV header claiming 10^9 channels... the channel count field is 16 bits, so it claims
  // 65535 (the most it can) with an absurd byte rate to match.
  std::string wav = "RIFF" + le32(36 + 4) + "WAVE" + "fmt " + le32(16) + le16(1) + le16(65535) +
                    le32(44100) + le32(1000000000u) + le16(65535) + le16(16) + "data" + le32(4) +
                    std::string(4, '\0');
  write_bytes(p("channels.wav"), wav);
  write_bytes(p("empty.mp3"), "");

  CHECK(is(audio::probe(p("text.mp3"), limits).error(), audio::audio_errc::unsupported_format));
  CHECK(is(audio::probe(p("archive.mp3"), limits).error(), audio::audio_errc::unsupported_format));
  CHECK(is(audio::probe(p("playlist.mp3"), limits).error(), audio::audio_errc::unsupported_format));
  CHECK(is(audio::probe(p("concat.wav"), limits).error(), audio::audio_errc::unsupported_format));
  CHECK(is(audio::probe(p("empty.mp3"), limits).error(), audio::audio_errc::unsupported_format));
  auto channels = audio::probe(p("channels.wav"), limits);
  CHECK(!channels);
  // A truncated file may still probe (its header is intact); transcoding it either refuses it
  // or yields only what is there. Neither may crash.
  auto cut =
      audio::transcode(p("truncated.flac"), p("out-truncated"), audio::default_ladder(), limits);
  if (cut) CHECK(cut->duration_s < 5.0);
  CHECK(!audio::transcode(p("text.mp3"), p("out-text"), audio::default_ladder(), limits));

  // Too long: a 2-hour file passes, the same limit set to 1 hour refuses it.
  make_audio("anullsrc=r=8000:cl=mono", {"-t", "7200", "-c:a", "pcm_u8"}, p("long.wav"));
  auto two_hours = audio::probe(p("long.wav"), limits);
  REQUIRE_MESSAGE(two_hours, error_detail(two_hours.error()));
  CHECK(std::abs(two_hours->duration_s - 7200) < 1);
  audio::media_limits hour = limits;
  hour.max_duration = std::chrono::hours{1};
  CHECK(is(audio::probe(p("long.wav"), hour).error(), audio::audio_errc::too_long));
}

TEST_CASE(
    "a 1000x500 PNG or JPEG cover is resized into JPEGs of 96x48, 300x150 and 600x300 that ffprobe "
    "reads back at those dimensions") {
  test::temp_dir dir;
  for (std::string name : {"cover.png", "cover.jpg"}) {
    CAPTURE(name);
    auto art = make_picture(dir, "testsrc=s=1000x500", name);
    auto covers = audio::resize_cover(art);
    REQUIRE_MESSAGE(covers, error_detail(covers.error()));
    check_covers(dir, *covers, {"mjpeg,96,48", "mjpeg,300,150", "mjpeg,600,300"});
  }
  // Portrait keeps its aspect ratio too, on the other side.
  auto tall = audio::resize_cover(make_picture(dir, "testsrc=s=500x1000", "tall.jpg"), {300});
  REQUIRE_MESSAGE(tall, error_detail(tall.error()));
  REQUIRE(tall->size() == 1);
  CHECK(picture_shape(dir, tall->front().jpeg) == "mjpeg,150,300");
}

TEST_CASE("a cover smaller than a size is not upscaled: a 50x50 source gives 50x50 at every size") {
  test::temp_dir dir;
  auto covers = audio::resize_cover(make_picture(dir, "testsrc=s=50x50", "small.png"));
  REQUIRE_MESSAGE(covers, error_detail(covers.error()));
  check_covers(dir, *covers, {"mjpeg,50,50", "mjpeg,50,50", "mjpeg,50,50"});
}

TEST_CASE("a transparent PNG cover is flattened onto white, not onto black") {
  test::temp_dir dir;
  auto art = make_picture(dir, "color=c=black@0.0:s=64x64,format=rgba", "clear.png");
  auto covers = audio::resize_cover(art, {96});
  REQUIRE_MESSAGE(covers, error_detail(covers.error()));
  write_bytes(dir.path() + "/clear.jpg", covers->front().jpeg);
  auto r = test::run({"ffmpeg", "-v", "error", "-i", dir.path() + "/clear.jpg", "-f", "rawvideo",
                      "-pix_fmt", "gray", "-"});
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.output.size() == 64 * 64);
  for (char c : r.output) REQUIRE(static_cast<uint8_t>(c) >= 250);
}

TEST_CASE(
    "hostile cover art is refused as invalid media without a crash: empty, random bytes, a "
    "truncated JPEG, a GIF, PNG magic and garbage, JPEG magic and garbage, huge declared "
    "dimensions, too many bytes") {
  test::temp_dir dir;
  auto jpeg = make_picture(dir, "testsrc=s=320x240", "whole.jpg");
  auto png = make_picture(dir, "testsrc=s=320x240", "whole.png");
  auto gif = make_picture(dir, "testsrc=s=32x32", "cover.gif");
  auto wide = make_picture(dir, "color=c=blue:s=9000x8", "wide.png");
  std::mt19937 rng{20240601};
  auto random_bytes = [&rng](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  auto noise = random_bytes(4096);
  noise[0] = 'x';  // not by chance a magic
  // A real JPEG whose frame header (SOF0) claims 60000x60000.
  auto huge_jpeg = jpeg;
  auto sof = huge_jpeg.find("\xFF\xC0");
  REQUIRE(sof != std::string::npos);
  huge_jpeg.replace(sof + 5, 4, "\xEA\x60\xEA\x60");
  // A real PNG whose IHDR claims 100000x100000 (the CRC left wrong: refused before it matters).
  auto huge_png = png;
  huge_png.replace(16, 8, std::string{"\x00\x01\x86\xA0\x00\x01\x86\xA0", 8});
  struct hostile {
    std::string name;
    std::string bytes;
  };
  std::vector<hostile> inputs{
      {"empty", ""},
      {"random bytes", noise},
      {"a JPEG cut in half", jpeg.substr(0, jpeg.size() / 2)},
      {"a JPEG cut to its headers", jpeg.substr(0, 300)},
      {"a JPEG without its last 4 bytes", jpeg.substr(0, jpeg.size() - 4)},
      {"a JPEG without its end marker", jpeg.substr(0, jpeg.size() - 2)},
      {"a PNG cut in half", png.substr(0, png.size() / 2)},
      {"a PNG cut into its last chunk", png.substr(0, png.size() - 13)},
      {"a GIF", gif},
      {"PNG magic and garbage", std::string{"\x89PNG\r\n\x1A\n"} + random_bytes(2000)},
      {"PNG magic alone", std::string{"\x89PNG\r\n\x1A\n"}},
      {"JPEG magic and garbage", std::string{"\xFF\xD8\xFF"} + random_bytes(2000)},
      {"a JPEG claiming 60000x60000", huge_jpeg},
      {"a PNG claiming 100000x100000", huge_png},
      {"a real 9000x8 PNG", wide},
      {"17 MiB", std::string{"\xFF\xD8\xFF"} + std::string(17 << 20, '\0')},
  };
  for (const auto& in : inputs) {
    CAPTURE(in.name);
    auto covers = audio::resize_cover(in.bytes);
    REQUIRE(!covers);
    CHECK_MESSAGE(is(covers.error(), audio::audio_errc::invalid_media),
                  error_detail(covers.error()));
  }
  CHECK(is(audio::resize_cover(jpeg, {0}).error(), audio::audio_errc::transcode_failed));
}

TEST_CASE(
    "damaged copies of a real JPEG and PNG cover, bytes flipped or cut short, are resized or "
    "refused and never crash") {
  test::temp_dir dir;
  std::mt19937 rng{7};
  for (std::string name : {"fuzz.jpg", "fuzz.png"}) {
    CAPTURE(name);
    auto art = make_picture(dir, "testsrc=s=96x64", name);
    int refused = 0;
    for (int round = 0; round < 300; ++round) {
      auto bytes = art;
      int flips = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < flips; ++i) bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xff);
      if (round % 3 == 0) bytes.resize(rng() % bytes.size());
      auto covers = audio::resize_cover(bytes, {48});
      if (covers) {
        REQUIRE(covers->size() == 1);
        CHECK(is_jpeg(covers->front().jpeg));
        CHECK(covers->front().width <= 48);
      } else {
        ++refused;
        CHECK(is(covers.error(), audio::audio_errc::invalid_media));
      }
    }
    CHECK(refused > 0);
  }
}

TEST_CASE(
    "the cover art that probe reads from an mp3 with an attached JPEG is resized end to end") {
  test::temp_dir dir;
  auto cover = dir.path() + "/cover.jpg";
  make_audio("testsrc=s=800x600", {"-frames:v", "1"}, cover);
  auto plain = dir.path() + "/plain.mp3";
  make_audio("sine=f=330:d=2", {"-c:a", "libmp3lame"}, plain);
  auto tagged = dir.path() + "/tagged.mp3";
  auto r =
      test::run({"ffmpeg", "-v", "error", "-y", "-i", plain, "-i", cover, "-map", "0", "-map", "1",
                 "-c", "copy", "-id3v2_version", "3", "-disposition:v", "attached_pic", tagged});
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  auto info = audio::probe(tagged, {});
  REQUIRE_MESSAGE(info, error_detail(info.error()));
  REQUIRE(info->cover_art == test::read_file(cover));
  auto covers = audio::resize_cover(info->cover_art);
  REQUIRE_MESSAGE(covers, error_detail(covers.error()));
  check_covers(dir, *covers, {"mjpeg,96,72", "mjpeg,300,225", "mjpeg,600,450"});
}
