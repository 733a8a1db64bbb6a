#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "actors/audio/media.hpp"
#include "tests/support/process.hpp"

// The in-process FFmpeg pipeline against real audio made by the ffmpeg CLI in the test: every
// accepted container is probed and transcoded; each rendition must decode, last as long as the
// source (within 50 ms) and the loudness must match `ffmpeg -af ebur128` (within 0.5 LU).
// Hostile files are refused with a reason and nothing crashes.

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
