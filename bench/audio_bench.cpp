// `./chorus bench audio` (a): the whole ladder + loudness + waveform of one input in one decode
// (actors/audio/media.hpp), the way a transcode node runs it. Prints "seconds <wall>" and what
// it measured; bench/audio.sh runs it next to the ffmpeg CLI.
#include <cstdio>

#include "actors/audio/media.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: audio_bench INPUT OUT_DIR\n");
    return 2;
  }
  auto r = chorus::audio::transcode(argv[1], argv[2], chorus::audio::default_ladder(), {});
  if (!r) {
    std::fprintf(stderr, "transcode failed: %s\n", chorus::error_detail(r.error()).c_str());
    return 1;
  }
  std::printf("seconds %.3f audio %.1f lufs %.2f renditions %zu\n", r->seconds_taken, r->duration_s,
              r->integrated_lufs, r->renditions.size());
  return 0;
}
