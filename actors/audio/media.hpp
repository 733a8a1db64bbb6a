#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "messages/errors.hpp"

// FFmpeg in-process: the validation of untrusted media and the one-decode transcode ladder.
// Plain functions for a worker thread (they block for the length of the job): never call them
// on an actor scheduler thread.

namespace chorus::audio {

/// Why a media job refused or failed. The edge maps them to HTTP (415, 422, 503).
enum class audio_errc : uint8_t {
  none = 0,
  /// Not one of the accepted containers (mp3, flac, wav, ogg, mp4/m4a, aiff), or not media.
  unsupported_format,
  /// An accepted container whose contents are broken or carry no usable audio.
  invalid_media,
  /// Longer than the limit.
  too_long,
  /// Channels or sample rate outside the limits.
  unsupported_stream,
  /// The job ran past its wall-clock budget.
  timed_out,
  /// Encoding or writing a rendition failed (the input was fine).
  transcode_failed,
};

constexpr caf::atom_value audio_category = caf::atom("audio");

inline caf::error make_error(audio_errc code, std::string detail) {
  return make_detailed_error(code, audio_category, std::move(detail));
}

/// What an upload may be.
struct media_limits {
  std::chrono::seconds max_duration{3 * 3600};
  int max_channels = 8;
  int min_sample_rate = 8000;
  int max_sample_rate = 192000;
  /// Bytes libavformat may read to identify the format and its streams.
  int64_t probe_size = 5 << 20;
  /// Wall-clock time one probe or transcode may take.
  std::chrono::seconds budget{600};
  /// When set and true, a running job stops at its next read or frame (node shutdown).
  const std::atomic<bool>* cancel = nullptr;
};

/// The demuxers an upload may use (libavformat names; "mov" is mp4/m4a).
const std::vector<std::string>& allowed_demuxers();

struct media_info {
  std::string container;  ///< the demuxer that read it, e.g. "flac", "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;      ///< e.g. "flac", "mp3", "pcm_s16le"
  int channels = 0;
  int sample_rate = 0;
  double duration_s = 0;  ///< 0 when the container does not say (checked while decoding)
  int64_t bit_rate = 0;
  /// Tags, lowercase keys: title, artist, album, genre, date, ...
  std::map<std::string, std::string> tags;
  /// The embedded cover art (an attached picture), as stored; empty when none.
  std::string cover_art;
};

/// Opens `path` with only the file protocol and the allowed demuxers, under `limits`, and
/// describes its best audio stream.
caf::expected<media_info> probe(const std::string& path, const media_limits& limits);

/// One rung of the ladder.
struct rendition_spec {
  std::string format;   ///< "opus" (Ogg), "aac" (M4A, fast-start), "mp3" (with a Xing/LAME header)
  std::string quality;  ///< "high" or "low"
  int64_t bit_rate = 0;
};

/// Opus 160k/96k, AAC 256k/128k, MP3 320k/128k.
const std::vector<rendition_spec>& default_ladder();

/// The MIME type of a rendition format; the file extension.
std::string mime_of(const std::string& format);
std::string extension_of(const std::string& format);

struct rendition {
  rendition_spec spec;
  std::string path;  ///< the finished file
  int64_t size = 0;
  double duration_s = 0;  ///< samples encoded / sample rate
  int sample_rate = 0;
  int channels = 0;
};

struct transcode_result {
  std::vector<rendition> renditions;
  double duration_s = 0;        ///< of the decoded source
  double integrated_lufs = 0;   ///< EBU R128 integrated loudness (libavfilter ebur128)
  double true_peak_dbtp = 0;    ///< EBU R128 true peak
  std::vector<float> waveform;  ///< `points` peaks in 0..1 (max |sample| over each slice)
  double seconds_taken = 0;     ///< wall clock
};

/// Decodes `input` once and feeds every rendition of `ladder` (written into `out_dir`), the
/// loudness scan and the waveform from the same samples. Renditions are finished files (their
/// headers carry the duration) or nothing: on failure the partial files are removed.
caf::expected<transcode_result> transcode(const std::string& input, const std::string& out_dir,
                                          const std::vector<rendition_spec>& ladder,
                                          const media_limits& limits, size_t points = 1800);

/// What a cover art may be.
struct cover_limits {
  /// Bytes of the stored picture.
  size_t max_bytes = 16 << 20;
  /// Pixels on either side of the source (checked in its header, before decoding).
  int max_side = 8192;
};

/// One JPEG rendition of a cover art.
struct cover_image {
  int size = 0;   ///< the box it fits in (size x size), as asked
  int width = 0;  ///< its own dimensions: never larger than the source's
  int height = 0;
  std::string jpeg;
};

/// The cover sizes the platform serves: 96, 300 and 600 (list, player, full view).
const std::vector<int>& default_cover_sizes();

/// Decodes `art` (a JPEG or PNG, told by its magic bytes; anything else is `invalid_media`)
/// under `limits` and encodes one baseline JPEG per entry of `sizes`, in that order, fitting a
/// size x size box with the aspect ratio kept and never upscaled (a smaller source keeps its own
/// dimensions). Transparency is flattened onto white. Sizes outside 1..max_side are
/// `transcode_failed`.
caf::expected<std::vector<cover_image>> resize_cover(
    const std::string& art, const std::vector<int>& sizes = default_cover_sizes(),
    const cover_limits& limits = {});

}  // namespace chorus::audio
