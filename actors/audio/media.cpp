#include "actors/audio/media.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/dict.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

namespace chorus::audio {

namespace {

using clock_type = std::chrono::steady_clock;

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// ---- RAII for FFmpeg's C objects ----

struct input_closer {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
struct codec_freer {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct frame_freer {
  void operator()(AVFrame* p) const { av_frame_free(&p); }
};
struct packet_freer {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct swr_freer {
  void operator()(SwrContext* p) const { swr_free(&p); }
};
struct fifo_freer {
  void operator()(AVAudioFifo* p) const { av_audio_fifo_free(p); }
};
struct graph_freer {
  void operator()(AVFilterGraph* p) const { avfilter_graph_free(&p); }
};
struct sws_freer {
  void operator()(SwsContext* p) const { sws_freeContext(p); }
};
struct output_closer {
  void operator()(AVFormatContext* p) const {
    if (p->pb != nullptr) avio_closep(&p->pb);
    avformat_free_context(p);
  }
};

using input_ptr = std::unique_ptr<AVFormatContext, input_closer>;
using codec_ptr = std::unique_ptr<AVCodecContext, codec_freer>;
using frame_ptr = std::unique_ptr<AVFrame, frame_freer>;
using packet_ptr = std::unique_ptr<AVPacket, packet_freer>;
using swr_ptr = std::unique_ptr<SwrContext, swr_freer>;
using fifo_ptr = std::unique_ptr<AVAudioFifo, fifo_freer>;
using graph_ptr = std::unique_ptr<AVFilterGraph, graph_freer>;
using output_ptr = std::unique_ptr<AVFormatContext, output_closer>;
using sws_ptr = std::unique_ptr<SwsContext, sws_freer>;

// FFmpeg logs to stderr; a node's log is JSON lines. Errors come back as values instead.
void silence_ffmpeg() {
  static std::once_flag quiet;
  std::call_once(quiet, [] { av_log_set_level(AV_LOG_QUIET); });
}

struct dict {
  AVDictionary* d = nullptr;
  ~dict() { av_dict_free(&d); }
  void set(const char* k, const std::string& v) { av_dict_set(&d, k, v.c_str(), 0); }
};

// libavformat asks this between reads: a job past its budget stops there.
struct deadline {
  clock_type::time_point at;
  const std::atomic<bool>* cancel = nullptr;
  static int check(void* self) {
    auto* d = static_cast<deadline*>(self);
    return clock_type::now() > d->at || (d->cancel != nullptr && d->cancel->load()) ? 1 : 0;
  }
  [[nodiscard]] bool over() const { return check(const_cast<deadline*>(this)) != 0; }
};

/// The opened input and its best audio stream.
struct opened {
  input_ptr fmt;
  int stream = -1;
  const AVCodec* decoder = nullptr;
  std::unique_ptr<deadline> until;
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

caf::expected<opened> open_input(const std::string& path, const media_limits& limits) {
  silence_ffmpeg();
  opened out;
  out.until =
      std::make_unique<deadline>(deadline{clock_type::now() + limits.budget, limits.cancel});
  AVFormatContext* raw = avformat_alloc_context();
  if (raw == nullptr) return make_error(audio_errc::transcode_failed, "out of memory");
  raw->interrupt_callback = {&deadline::check, out.until.get()};
  std::string whitelist;
  for (const auto& d : allowed_demuxers()) whitelist += (whitelist.empty() ? "" : ",") + d;
  dict opts;
  // Only the file itself: no playlist, concat script or URL inside it can make libavformat
  // open anything else; and only the demuxers of the allow-list.
  opts.set("protocol_whitelist", "file");
  opts.set("format_whitelist", whitelist);
  opts.set("probesize", std::to_string(limits.probe_size));
  opts.set("analyzeduration", std::to_string(int64_t{10} * AV_TIME_BASE));
  int rc = avformat_open_input(&raw, path.c_str(), nullptr, &opts.d);
  if (rc < 0) {
    // avformat_open_input frees the context on failure.
    if (out.until && out.until->over())
      return make_error(audio_errc::timed_out, "probing took too long");
    return make_error(
        audio_errc::unsupported_format,
        "not an accepted audio file (mp3, flac, wav, ogg, m4a, aiff): " + av_error(rc));
  }
  out.fmt.reset(raw);
  if (!allowed_demuxers().empty()) {
    bool allowed = false;
    std::string name = out.fmt->iformat->name;
    for (const auto& d : allowed_demuxers())
      if (name == d || name.rfind(d + ",", 0) == 0) allowed = true;
    if (!allowed)
      return make_error(audio_errc::unsupported_format, "container " + name + " is not accepted");
  }
  rc = avformat_find_stream_info(out.fmt.get(), nullptr);
  if (rc < 0) return make_error(audio_errc::invalid_media, "unreadable streams: " + av_error(rc));
  rc = av_find_best_stream(out.fmt.get(), AVMEDIA_TYPE_AUDIO, -1, -1, &out.decoder, 0);
  if (rc < 0 || out.decoder == nullptr)
    return make_error(audio_errc::invalid_media, "no decodable audio stream");
  out.stream = rc;
  return out;
}

}  // namespace

const std::vector<std::string>& allowed_demuxers() {
  static const std::vector<std::string> names{"mp3", "flac", "wav", "ogg", "mov", "aiff"};
  return names;
}

const std::vector<rendition_spec>& default_ladder() {
  static const std::vector<rendition_spec> ladder{{"opus", "high", 160000}, {"opus", "low", 96000},
                                                  {"aac", "high", 256000},  {"aac", "low", 128000},
                                                  {"mp3", "high", 320000},  {"mp3", "low", 128000}};
  return ladder;
}

std::string mime_of(const std::string& format) {
  if (format == "opus") return "audio/ogg; codecs=opus";
  if (format == "aac") return "audio/mp4";
  return "audio/mpeg";
}

std::string extension_of(const std::string& format) {
  if (format == "opus") return "opus";
  if (format == "aac") return "m4a";
  return "mp3";
}

caf::expected<media_info> probe(const std::string& path, const media_limits& limits) {
  auto in = open_input(path, limits);
  if (!in) return in.error();
  const AVStream* st = in->fmt->streams[in->stream];
  const AVCodecParameters* par = st->codecpar;
  media_info info;
  info.container = in->fmt->iformat->name;
  info.codec = avcodec_get_name(par->codec_id);
  info.channels = par->ch_layout.nb_channels;
  info.sample_rate = par->sample_rate;
  info.bit_rate = in->fmt->bit_rate;
  if (in->fmt->duration != AV_NOPTS_VALUE && in->fmt->duration > 0)
    info.duration_s = static_cast<double>(in->fmt->duration) / AV_TIME_BASE;
  else if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
    info.duration_s = static_cast<double>(st->duration) * av_q2d(st->time_base);
  if (info.channels < 1 || info.channels > limits.max_channels)
    return make_error(audio_errc::unsupported_stream,
                      std::to_string(info.channels) + " channels (at most " +
                          std::to_string(limits.max_channels) + ")");
  if (info.sample_rate < limits.min_sample_rate || info.sample_rate > limits.max_sample_rate)
    return make_error(audio_errc::unsupported_stream,
                      "sample rate " + std::to_string(info.sample_rate) + " Hz (accepted " +
                          std::to_string(limits.min_sample_rate) + ".." +
                          std::to_string(limits.max_sample_rate) + ")");
  if (info.duration_s > static_cast<double>(limits.max_duration.count()))
    return make_error(audio_errc::too_long,
                      "longer than " + std::to_string(limits.max_duration.count()) + " s");
  auto take_tags = [&info](AVDictionary* d) {
    const AVDictionaryEntry* e = nullptr;
    while ((e = av_dict_get(d, "", e, AV_DICT_IGNORE_SUFFIX)) != nullptr) {
      auto key = lower(e->key);
      std::string value = e->value;
      if (value.size() > 1000) value.resize(1000);
      if (key.size() <= 64 && info.tags.count(key) == 0) info.tags.emplace(key, value);
    }
  };
  take_tags(in->fmt->metadata);
  take_tags(st->metadata);
  for (unsigned i = 0; i < in->fmt->nb_streams; ++i) {
    const AVStream* s = in->fmt->streams[i];
    if ((s->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0 && s->attached_pic.size > 0 &&
        s->attached_pic.size <= (16 << 20)) {
      info.cover_art.assign(reinterpret_cast<const char*>(s->attached_pic.data),
                            static_cast<size_t>(s->attached_pic.size));
      break;
    }
  }
  return info;
}

namespace {

/// One rendition being written: encoder, resampler to its format, FIFO of frame_size chunks,
/// muxer.
struct encoder_chain {
  rendition out;
  output_ptr oc;
  AVStream* st = nullptr;
  codec_ptr enc;
  swr_ptr swr;
  fifo_ptr fifo;
  int frame_size = 1024;
  int64_t next_pts = 0;
  int64_t samples = 0;
};

caf::error encode_frame(encoder_chain& c, AVFrame* frame, AVPacket* pkt) {
  int rc = avcodec_send_frame(c.enc.get(), frame);
  if (rc < 0)
    return make_error(audio_errc::transcode_failed,
                      c.out.spec.format + ": encoding failed: " + av_error(rc));
  for (;;) {
    rc = avcodec_receive_packet(c.enc.get(), pkt);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return {};
    if (rc < 0)
      return make_error(audio_errc::transcode_failed,
                        c.out.spec.format + ": encoding failed: " + av_error(rc));
    av_packet_rescale_ts(pkt, c.enc->time_base, c.st->time_base);
    pkt->stream_index = c.st->index;
    rc = av_interleaved_write_frame(c.oc.get(), pkt);
    if (rc < 0)
      return make_error(audio_errc::transcode_failed,
                        c.out.spec.format + ": writing failed: " + av_error(rc));
  }
}

// Encodes whole frames from the FIFO (all that is left, when `flush`).
caf::error drain_fifo(encoder_chain& c, AVPacket* pkt, bool flush) {
  while (av_audio_fifo_size(c.fifo.get()) >= c.frame_size ||
         (flush && av_audio_fifo_size(c.fifo.get()) > 0)) {
    int n = std::min(av_audio_fifo_size(c.fifo.get()), c.frame_size);
    frame_ptr f{av_frame_alloc()};
    f->nb_samples = n;
    f->format = c.enc->sample_fmt;
    f->sample_rate = c.enc->sample_rate;
    if (av_channel_layout_copy(&f->ch_layout, &c.enc->ch_layout) < 0 ||
        av_frame_get_buffer(f.get(), 0) < 0)
      return make_error(audio_errc::transcode_failed, "out of memory");
    if (av_audio_fifo_read(c.fifo.get(), reinterpret_cast<void**>(f->data), n) < n)
      return make_error(audio_errc::transcode_failed, "audio FIFO read failed");
    f->pts = c.next_pts;
    c.next_pts += n;
    c.samples += n;
    if (auto err = encode_frame(c, f.get(), pkt)) return err;
  }
  return {};
}

// Resamples `in` (nullptr: flush the resampler) into the chain's FIFO.
caf::error feed(encoder_chain& c, const AVFrame* in) {
  int in_samples = in != nullptr ? in->nb_samples : 0;
  int cap = swr_get_out_samples(c.swr.get(), in_samples);
  if (cap <= 0) return {};
  uint8_t** buf = nullptr;
  int linesize = 0;
  if (av_samples_alloc_array_and_samples(&buf, &linesize, c.enc->ch_layout.nb_channels, cap,
                                         c.enc->sample_fmt, 0) < 0)
    return make_error(audio_errc::transcode_failed, "out of memory");
  int n = swr_convert(c.swr.get(), buf, cap,
                      in != nullptr ? const_cast<const uint8_t**>(in->extended_data) : nullptr,
                      in_samples);
  caf::error err;
  if (n < 0)
    err = make_error(audio_errc::transcode_failed, "resampling failed: " + av_error(n));
  else if (n > 0 && av_audio_fifo_write(c.fifo.get(), reinterpret_cast<void**>(buf), n) < n)
    err = make_error(audio_errc::transcode_failed, "audio FIFO write failed");
  av_freep(&buf[0]);
  av_freep(&buf);
  return err;
}

int pick_rate(const AVCodec* codec, int source) {
  if (std::string{codec->name} == "libopus") return 48000;
  int want = source % 11025 == 0 ? 44100 : 48000;
  if (codec->supported_samplerates == nullptr) return want;
  for (const int* r = codec->supported_samplerates; *r != 0; ++r)
    if (*r == want) return want;
  return codec->supported_samplerates[0];
}

caf::expected<std::unique_ptr<encoder_chain>> open_chain(const rendition_spec& spec,
                                                         const std::string& dir,
                                                         const AVCodecContext* dec) {
  auto c = std::make_unique<encoder_chain>();
  c->out.spec = spec;
  c->out.path = dir + "/" + spec.format + "-" + spec.quality + "." + extension_of(spec.format);
  const char* codec_name = spec.format == "opus"  ? "libopus"
                           : spec.format == "aac" ? "aac"
                                                  : "libmp3lame";
  const char* muxer = spec.format == "opus" ? "ogg" : spec.format == "aac" ? "ipod" : "mp3";
  const AVCodec* codec = avcodec_find_encoder_by_name(codec_name);
  if (codec == nullptr)
    return make_error(audio_errc::transcode_failed, std::string{"no encoder "} + codec_name);
  AVFormatContext* oc = nullptr;
  if (avformat_alloc_output_context2(&oc, nullptr, muxer, c->out.path.c_str()) < 0 || oc == nullptr)
    return make_error(audio_errc::transcode_failed, std::string{"no muxer "} + muxer);
  c->oc.reset(oc);
  c->enc.reset(avcodec_alloc_context3(codec));
  if (!c->enc) return make_error(audio_errc::transcode_failed, "out of memory");
  auto& e = *c->enc;
  e.bit_rate = spec.bit_rate;
  e.sample_rate = pick_rate(codec, dec->sample_rate);
  e.sample_fmt = codec->sample_fmts != nullptr ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
  // Stereo, or mono for a mono source: more channels are folded down by the resampler.
  av_channel_layout_default(&e.ch_layout, dec->ch_layout.nb_channels >= 2 ? 2 : 1);
  e.time_base = AVRational{1, e.sample_rate};
  if ((c->oc->oformat->flags & AVFMT_GLOBALHEADER) != 0) e.flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  int rc = avcodec_open2(&e, codec, nullptr);
  if (rc < 0)
    return make_error(audio_errc::transcode_failed,
                      std::string{codec_name} + " refused its settings: " + av_error(rc));
  c->frame_size = e.frame_size > 0 ? e.frame_size : 1024;
  c->st = avformat_new_stream(c->oc.get(), nullptr);
  if (c->st == nullptr) return make_error(audio_errc::transcode_failed, "out of memory");
  if (avcodec_parameters_from_context(c->st->codecpar, &e) < 0)
    return make_error(audio_errc::transcode_failed, "encoder parameters");
  c->st->time_base = e.time_base;
  SwrContext* swr = nullptr;
  // FFmpeg 5.1 declares the layouts non-const; it only reads them.
  rc = swr_alloc_set_opts2(&swr, &e.ch_layout, e.sample_fmt, e.sample_rate,
                           const_cast<AVChannelLayout*>(&dec->ch_layout), dec->sample_fmt,
                           dec->sample_rate, 0, nullptr);
  c->swr.reset(swr);
  if (rc < 0 || swr_init(c->swr.get()) < 0)
    return make_error(audio_errc::transcode_failed, "resampler: " + av_error(rc));
  c->fifo.reset(av_audio_fifo_alloc(e.sample_fmt, e.ch_layout.nb_channels, c->frame_size * 4));
  if (!c->fifo) return make_error(audio_errc::transcode_failed, "out of memory");
  rc = avio_open(&c->oc->pb, c->out.path.c_str(), AVIO_FLAG_WRITE);
  if (rc < 0)
    return make_error(audio_errc::transcode_failed,
                      "cannot write " + c->out.path + ": " + av_error(rc));
  dict opts;
  if (spec.format == "aac") opts.set("movflags", "+faststart");
  rc = avformat_write_header(c->oc.get(), &opts.d);
  if (rc < 0)
    return make_error(audio_errc::transcode_failed, spec.format + " header: " + av_error(rc));
  c->out.sample_rate = e.sample_rate;
  c->out.channels = e.ch_layout.nb_channels;
  return c;
}

/// The loudness scan: abuffer -> ebur128 (peak=true, metadata=1) -> abuffersink; the integrated
/// loudness and true peak of the last frame out are the whole programme's.
struct loudness_scan {
  graph_ptr graph{avfilter_graph_alloc()};
  AVFilterContext* src = nullptr;
  AVFilterContext* sink = nullptr;
  double integrated = -70;
  double true_peak = 0;
  bool seen = false;

  caf::error open(const AVCodecContext* dec) {
    if (!graph) return make_error(audio_errc::transcode_failed, "out of memory");
    char layout[128] = {};
    av_channel_layout_describe(&dec->ch_layout, layout, sizeof layout);
    char args[512];
    std::snprintf(args, sizeof args,
                  "time_base=1/%d:sample_rate=%d:sample_fmt=%s:channel_layout=%s", dec->sample_rate,
                  dec->sample_rate, av_get_sample_fmt_name(dec->sample_fmt), layout);
    int rc = avfilter_graph_create_filter(&src, avfilter_get_by_name("abuffer"), "in", args,
                                          nullptr, graph.get());
    AVFilterContext* scan = nullptr;
    if (rc >= 0)
      rc = avfilter_graph_create_filter(&scan, avfilter_get_by_name("ebur128"), "scan",
                                        "peak=true:metadata=1:framelog=verbose", nullptr,
                                        graph.get());
    if (rc >= 0)
      rc = avfilter_graph_create_filter(&sink, avfilter_get_by_name("abuffersink"), "out", nullptr,
                                        nullptr, graph.get());
    if (rc >= 0) rc = avfilter_link(src, 0, scan, 0);
    if (rc >= 0) rc = avfilter_link(scan, 0, sink, 0);
    if (rc >= 0) rc = avfilter_graph_config(graph.get(), nullptr);
    if (rc < 0) return make_error(audio_errc::transcode_failed, "ebur128: " + av_error(rc));
    return {};
  }

  caf::error push(AVFrame* frame) {
    int rc = av_buffersrc_add_frame_flags(src, frame, AV_BUFFERSRC_FLAG_KEEP_REF);
    if (rc < 0) return make_error(audio_errc::transcode_failed, "ebur128: " + av_error(rc));
    frame_ptr out{av_frame_alloc()};
    for (;;) {
      rc = av_buffersink_get_frame(sink, out.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return {};
      if (rc < 0) return make_error(audio_errc::transcode_failed, "ebur128: " + av_error(rc));
      if (auto* e = av_dict_get(out->metadata, "lavfi.r128.I", nullptr, 0)) {
        integrated = std::atof(e->value);
        seen = true;
      }
      if (auto* e = av_dict_get(out->metadata, "lavfi.r128.true_peak", nullptr, 0))
        true_peak = std::atof(e->value);
      av_frame_unref(out.get());
    }
  }
};

/// Peaks of |sample| over 10 ms blocks, folded into `points` slices at the end.
struct waveform_scan {
  int rate = 0;
  int block = 0;
  int in_block = 0;
  float current = 0;
  std::vector<float> blocks;

  void push(const AVFrame* f) {
    int ch = f->ch_layout.nb_channels;
    auto fmt = static_cast<AVSampleFormat>(f->format);
    bool planar = av_sample_fmt_is_planar(fmt) != 0;
    auto packed = av_get_packed_sample_fmt(fmt);
    for (int i = 0; i < f->nb_samples; ++i) {
      for (int c = 0; c < ch; ++c) {
        const uint8_t* base = planar ? f->extended_data[c] : f->extended_data[0];
        int idx = planar ? i : i * ch + c;
        float v = 0;
        switch (packed) {
          case AV_SAMPLE_FMT_U8:
            v = (static_cast<float>(base[idx]) - 128.f) / 128.f;
            break;
          case AV_SAMPLE_FMT_S16:
            v = static_cast<float>(reinterpret_cast<const int16_t*>(base)[idx]) / 32768.f;
            break;
          case AV_SAMPLE_FMT_S32:
            v = static_cast<float>(reinterpret_cast<const int32_t*>(base)[idx]) / 2147483648.f;
            break;
          case AV_SAMPLE_FMT_FLT:
            v = reinterpret_cast<const float*>(base)[idx];
            break;
          case AV_SAMPLE_FMT_DBL:
            v = static_cast<float>(reinterpret_cast<const double*>(base)[idx]);
            break;
          case AV_SAMPLE_FMT_S64:
            v = static_cast<float>(
                static_cast<double>(reinterpret_cast<const int64_t*>(base)[idx]) /
                9223372036854775808.0);
            break;
          default:
            break;
        }
        current = std::max(current, std::fabs(v));
      }
      if (++in_block == block) {
        blocks.push_back(std::min(current, 1.f));
        current = 0;
        in_block = 0;
      }
    }
  }

  std::vector<float> fold(size_t points) {
    if (in_block > 0) blocks.push_back(std::min(current, 1.f));
    std::vector<float> out(points, 0.f);
    if (blocks.empty()) return out;
    for (size_t p = 0; p < points; ++p) {
      size_t from = p * blocks.size() / points;
      size_t to = std::max(from + 1, (p + 1) * blocks.size() / points);
      for (size_t i = from; i < to && i < blocks.size(); ++i) out[p] = std::max(out[p], blocks[i]);
    }
    return out;
  }
};

/// A rendition's own thread: it resamples, encodes and writes the frames the decoding thread
/// hands it (shared, reference-counted, read-only), through a bounded queue, so the renditions
/// of one job encode in parallel while the source is decoded once.
class chain_worker {
 public:
  explicit chain_worker(encoder_chain& chain) : chain_(chain), thread_([this] { run(); }) {}
  ~chain_worker() { finish(); }
  chain_worker(const chain_worker&) = delete;
  chain_worker& operator=(const chain_worker&) = delete;

  /// Queues a reference to `frame` (waits while the queue is full).
  void push(const AVFrame* frame) {
    AVFrame* ref = av_frame_clone(frame);
    std::unique_lock<std::mutex> lock{mutex_};
    space_.wait(lock, [this] { return queue_.size() < capacity; });
    queue_.push_back(ref);
    ready_.notify_one();
  }

  /// Ends the input, waits for the rendition to be finished (flushed, trailer written) and
  /// returns its error, if any. Idempotent.
  caf::error finish() {
    {
      std::lock_guard<std::mutex> lock{mutex_};
      if (!ended_) {
        ended_ = true;
        ready_.notify_one();
      }
    }
    if (thread_.joinable()) thread_.join();
    return err_;
  }

 private:
  static constexpr size_t capacity = 32;

  void run() {
    packet_ptr pkt{av_packet_alloc()};
    for (;;) {
      AVFrame* f = nullptr;
      {
        std::unique_lock<std::mutex> lock{mutex_};
        ready_.wait(lock, [this] { return !queue_.empty() || ended_; });
        if (queue_.empty()) break;
        f = queue_.front();
        queue_.pop_front();
        space_.notify_one();
      }
      if (!err_) {
        err_ = feed(chain_, f);
        if (!err_) err_ = drain_fifo(chain_, pkt.get(), false);
      }
      av_frame_free(&f);
    }
    if (err_) return;
    // Flush: the resampler, the FIFO (a short last frame), the encoder, the trailer.
    err_ = feed(chain_, nullptr);
    if (!err_) err_ = drain_fifo(chain_, pkt.get(), true);
    if (!err_) err_ = encode_frame(chain_, nullptr, pkt.get());
    if (!err_) {
      int rc = av_write_trailer(chain_.oc.get());
      if (rc < 0)
        err_ = make_error(audio_errc::transcode_failed,
                          chain_.out.spec.format + " trailer: " + av_error(rc));
      avio_closep(&chain_.oc->pb);
    }
  }

  encoder_chain& chain_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable space_;
  std::deque<AVFrame*> queue_;
  bool ended_ = false;
  caf::error err_;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace

caf::expected<transcode_result> transcode(const std::string& input, const std::string& out_dir,
                                          const std::vector<rendition_spec>& ladder,
                                          const media_limits& limits, size_t points) {
  auto started = clock_type::now();
  auto in = open_input(input, limits);
  if (!in) return in.error();
  AVStream* st = in->fmt->streams[in->stream];
  codec_ptr dec{avcodec_alloc_context3(in->decoder)};
  if (!dec) return make_error(audio_errc::transcode_failed, "out of memory");
  if (avcodec_parameters_to_context(dec.get(), st->codecpar) < 0)
    return make_error(audio_errc::invalid_media, "unusable codec parameters");
  dec->pkt_timebase = st->time_base;
  int rc = avcodec_open2(dec.get(), in->decoder, nullptr);
  if (rc < 0) return make_error(audio_errc::invalid_media, "cannot decode: " + av_error(rc));
  if (dec->ch_layout.nb_channels < 1 || dec->ch_layout.nb_channels > limits.max_channels ||
      dec->sample_rate < limits.min_sample_rate || dec->sample_rate > limits.max_sample_rate)
    return make_error(audio_errc::unsupported_stream, "channels or sample rate out of range");
  if (dec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
    av_channel_layout_default(&dec->ch_layout, dec->ch_layout.nb_channels);

  std::error_code fs_err;
  std::filesystem::create_directories(out_dir, fs_err);
  std::vector<std::unique_ptr<encoder_chain>> chains;
  std::vector<std::unique_ptr<chain_worker>> workers;
  auto cleanup = [&chains, &workers] {
    for (auto& w : workers) (void)w->finish();
    workers.clear();
    for (auto& c : chains) {
      c->oc.reset();
      std::error_code ec;
      std::filesystem::remove(c->out.path, ec);
    }
  };
  for (const auto& spec : ladder) {
    auto c = open_chain(spec, out_dir, dec.get());
    if (!c) {
      cleanup();
      return c.error();
    }
    chains.push_back(std::move(*c));
  }
  loudness_scan loud;
  if (auto err = loud.open(dec.get())) {
    cleanup();
    return err;
  }
  for (auto& c : chains) workers.push_back(std::make_unique<chain_worker>(*c));
  waveform_scan wave;
  wave.rate = dec->sample_rate;
  wave.block = std::max(1, dec->sample_rate / 100);

  packet_ptr pkt{av_packet_alloc()};
  frame_ptr frame{av_frame_alloc()};
  int64_t decoded = 0;
  auto max_samples = static_cast<int64_t>(limits.max_duration.count()) * dec->sample_rate;
  auto fail = [&](caf::error err) -> caf::expected<transcode_result> {
    cleanup();
    return err;
  };
  // MP4/M4A state their exact length (the edit list): the AAC decoder's last frame carries
  // padding beyond it, which would lengthen every rendition. Other containers' durations may be
  // estimates, so only this one trims.
  int64_t exact = -1;
  if (std::string{in->fmt->iformat->name}.rfind("mov,", 0) == 0 && st->duration > 0)
    exact = av_rescale_q(st->duration, st->time_base, AVRational{1, dec->sample_rate});
  auto on_frame = [&]() -> caf::error {
    if (exact >= 0 && decoded + frame->nb_samples > exact)
      frame->nb_samples = static_cast<int>(std::max<int64_t>(0, exact - decoded));
    if (frame->nb_samples == 0) return {};
    decoded += frame->nb_samples;
    if (decoded > max_samples)
      return make_error(audio_errc::too_long,
                        "longer than " + std::to_string(limits.max_duration.count()) + " s");
    if (in->until->over())
      return make_error(audio_errc::timed_out, "the job ran past its time budget");
    for (auto& w : workers) w->push(frame.get());
    wave.push(frame.get());
    return loud.push(frame.get());
  };
  auto receive_all = [&]() -> caf::error {
    for (;;) {
      int r = avcodec_receive_frame(dec.get(), frame.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return {};
      if (r < 0) return make_error(audio_errc::invalid_media, "decoding failed: " + av_error(r));
      auto err = on_frame();
      av_frame_unref(frame.get());
      if (err) return err;
    }
  };
  int corrupt = 0;
  for (;;) {
    rc = av_read_frame(in->fmt.get(), pkt.get());
    if (rc == AVERROR_EOF) break;
    if (rc < 0) {
      if (in->until->over())
        return fail(make_error(audio_errc::timed_out, "the job ran past its time budget"));
      return fail(make_error(audio_errc::invalid_media, "unreadable data: " + av_error(rc)));
    }
    if (pkt->stream_index == in->stream) {
      rc = avcodec_send_packet(dec.get(), pkt.get());
      // A damaged packet here and there is skipped (as players do); many are a broken file.
      if (rc < 0 && rc != AVERROR(EAGAIN) && ++corrupt > 100) {
        av_packet_unref(pkt.get());
        return fail(make_error(audio_errc::invalid_media, "too many undecodable packets"));
      }
      if (auto err = receive_all()) {
        av_packet_unref(pkt.get());
        return fail(err);
      }
    }
    av_packet_unref(pkt.get());
  }
  avcodec_send_packet(dec.get(), nullptr);
  if (auto err = receive_all()) return fail(err);
  if (decoded == 0) return fail(make_error(audio_errc::invalid_media, "no audio in the file"));

  for (auto& w : workers)
    if (auto err = w->finish()) return fail(err);
  workers.clear();
  if (av_buffersrc_add_frame_flags(loud.src, nullptr, 0) >= 0) {
    frame_ptr out{av_frame_alloc()};
    while (av_buffersink_get_frame(loud.sink, out.get()) >= 0) {
      if (auto* e = av_dict_get(out->metadata, "lavfi.r128.I", nullptr, 0)) {
        loud.integrated = std::atof(e->value);
        loud.seen = true;
      }
      if (auto* e = av_dict_get(out->metadata, "lavfi.r128.true_peak", nullptr, 0))
        loud.true_peak = std::atof(e->value);
      av_frame_unref(out.get());
    }
  }

  transcode_result result;
  result.duration_s = static_cast<double>(decoded) / dec->sample_rate;
  result.integrated_lufs = loud.integrated;
  result.true_peak_dbtp = loud.true_peak > 0 ? 20 * std::log10(loud.true_peak) : -144.0;
  result.waveform = wave.fold(points);
  for (auto& c : chains) {
    c->out.duration_s = static_cast<double>(c->samples) / c->out.sample_rate;
    std::error_code ec;
    c->out.size = static_cast<int64_t>(std::filesystem::file_size(c->out.path, ec));
    result.renditions.push_back(c->out);
  }
  result.seconds_taken = std::chrono::duration<double>(clock_type::now() - started).count();
  return result;
}

// ---- Cover art ----

namespace {

struct picture_header {
  AVCodecID codec = AV_CODEC_ID_NONE;
  int width = 0;
  int height = 0;
  /// False for a JPEG without its end-of-image marker: cut short (the decoder would fill in the
  /// missing part grey and say nothing when only the last few bytes are gone).
  bool complete = true;
};

uint8_t byte_at(const std::string& b, size_t i) {
  return static_cast<uint8_t>(b[i]);
}

int be16(const std::string& b, size_t i) {
  return (byte_at(b, i) << 8) | byte_at(b, i + 1);
}

// The dimensions a JPEG declares in its frame header (SOFn), found by walking the marker segments
// that come before it; nothing when the walk leaves the data or meets a scan first.
std::optional<picture_header> jpeg_header(const std::string& b) {
  size_t pos = 2;
  while (pos + 4 <= b.size()) {
    if (byte_at(b, pos) != 0xFF) return std::nullopt;
    uint8_t marker = byte_at(b, pos + 1);
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      pos += 2;
      continue;
    }
    if (marker == 0xD8 || marker == 0xD9 || marker == 0xDA) return std::nullopt;
    auto length = static_cast<size_t>(be16(b, pos + 2));
    if (length < 2) return std::nullopt;
    // SOF0..SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range.
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (length < 8 || pos + 9 > b.size()) return std::nullopt;
      // Entropy-coded data stuffs every FF with 00, so FF D9 after the frame header is the EOI
      // (an EXIF thumbnail's own EOI comes before it).
      bool complete = b.find("\xFF\xD9", pos + 2 + length) != std::string::npos;
      return picture_header{AV_CODEC_ID_MJPEG, be16(b, pos + 7), be16(b, pos + 5), complete};
    }
    pos += 2 + length;
  }
  return std::nullopt;
}

// The dimensions in a PNG's IHDR, which must be its first chunk.
std::optional<picture_header> png_header(const std::string& b) {
  if (b.size() < 8 + 8 + 13 + 4 || b.compare(12, 4, "IHDR") != 0) return std::nullopt;
  auto be32 = [&b](size_t i) {
    return (uint32_t{byte_at(b, i)} << 24) | (uint32_t{byte_at(b, i + 1)} << 16) |
           (uint32_t{byte_at(b, i + 2)} << 8) | uint32_t{byte_at(b, i + 3)};
  };
  uint32_t w = be32(16);
  uint32_t h = be32(20);
  // PNG allows up to 2^31 - 1; anything that large is over every limit anyway.
  constexpr uint32_t cap = 1u << 30;
  return picture_header{AV_CODEC_ID_PNG, static_cast<int>(std::min(w, cap)),
                        static_cast<int>(std::min(h, cap)), true};
}

// What the magic bytes and the header say `art` is, or why it is refused.
caf::expected<picture_header> read_header(const std::string& art, const cover_limits& limits) {
  if (art.empty()) return make_error(audio_errc::invalid_media, "the cover art is empty");
  if (art.size() > limits.max_bytes)
    return make_error(audio_errc::invalid_media, "the cover art is larger than " +
                                                     std::to_string(limits.max_bytes) + " bytes");
  static const std::string jpeg_magic{"\xFF\xD8\xFF"};
  static const std::string png_magic{"\x89PNG\r\n\x1A\n"};
  std::optional<picture_header> header;
  if (art.compare(0, jpeg_magic.size(), jpeg_magic) == 0)
    header = jpeg_header(art);
  else if (art.compare(0, png_magic.size(), png_magic) == 0)
    header = png_header(art);
  else
    return make_error(audio_errc::invalid_media, "the cover art is not a JPEG or PNG");
  if (!header) return make_error(audio_errc::invalid_media, "the cover art has no valid header");
  if (!header->complete) return make_error(audio_errc::invalid_media, "the cover art is cut short");
  if (header->width < 1 || header->height < 1 || header->width > limits.max_side ||
      header->height > limits.max_side)
    return make_error(audio_errc::invalid_media,
                      "the cover art is " + std::to_string(header->width) + "x" +
                          std::to_string(header->height) + " (at most " +
                          std::to_string(limits.max_side) + " on either side)");
  return *header;
}

caf::expected<frame_ptr> decode_picture(const std::string& art, const picture_header& header,
                                        const cover_limits& limits) {
  const AVCodec* codec = avcodec_find_decoder(header.codec);
  if (codec == nullptr)
    return make_error(audio_errc::transcode_failed,
                      std::string{"no decoder "} + avcodec_get_name(header.codec));
  codec_ptr dec{avcodec_alloc_context3(codec)};
  if (!dec) return make_error(audio_errc::transcode_failed, "out of memory");
  dec->thread_count = 1;
  // The header was checked, but the decoder reads its own: it refuses before allocating.
  dec->max_pixels = int64_t{limits.max_side} * limits.max_side;
  // A damaged picture is refused rather than shown half grey.
  dec->err_recognition = AV_EF_EXPLODE;
  int rc = avcodec_open2(dec.get(), codec, nullptr);
  if (rc < 0) return make_error(audio_errc::transcode_failed, "image decoder: " + av_error(rc));
  packet_ptr pkt{av_packet_alloc()};
  if (!pkt) return make_error(audio_errc::transcode_failed, "out of memory");
  if (art.size() > static_cast<size_t>(INT_MAX - AV_INPUT_BUFFER_PADDING_SIZE))
    return make_error(audio_errc::invalid_media, "the cover art is too large");
  // av_new_packet adds the zeroed padding the decoders may read past the end.
  rc = av_new_packet(pkt.get(), static_cast<int>(art.size()));
  if (rc < 0) return make_error(audio_errc::transcode_failed, "out of memory");
  std::memcpy(pkt->data, art.data(), art.size());
  rc = avcodec_send_packet(dec.get(), pkt.get());
  if (rc < 0)
    return make_error(audio_errc::invalid_media, "the cover art does not decode: " + av_error(rc));
  rc = avcodec_send_packet(dec.get(), nullptr);
  if (rc < 0 && rc != AVERROR_EOF)
    return make_error(audio_errc::invalid_media, "the cover art does not decode: " + av_error(rc));
  frame_ptr frame{av_frame_alloc()};
  if (!frame) return make_error(audio_errc::transcode_failed, "out of memory");
  rc = avcodec_receive_frame(dec.get(), frame.get());
  if (rc < 0)
    return make_error(audio_errc::invalid_media, "the cover art does not decode: " + av_error(rc));
  if ((frame->flags & AV_FRAME_FLAG_CORRUPT) != 0 || frame->decode_error_flags != 0)
    return make_error(audio_errc::invalid_media, "the cover art is damaged");
  if (frame->width < 1 || frame->height < 1 || frame->width > limits.max_side ||
      frame->height > limits.max_side || frame->format == AV_PIX_FMT_NONE)
    return make_error(audio_errc::invalid_media, "the cover art decodes to an unusable picture");
  return frame;
}

// Converts `src` into `dst` (allocated by the caller: format, width, height set) with libswscale.
caf::error convert(const AVFrame* src, AVFrame* dst) {
  sws_ptr sws{sws_getContext(src->width, src->height, static_cast<AVPixelFormat>(src->format),
                             dst->width, dst->height, static_cast<AVPixelFormat>(dst->format),
                             SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr,
                             nullptr)};
  if (!sws) {
    const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(src->format));
    return make_error(audio_errc::transcode_failed,
                      std::string{"no conversion from "} + (name != nullptr ? name : "?"));
  }
  // A full-range (JPEG) grey or YUV source that libswscale cannot tell from its format (range
  // means nothing to RGB).
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(src->format));
  if (src->color_range == AVCOL_RANGE_JPEG && desc != nullptr &&
      (desc->flags & AV_PIX_FMT_FLAG_RGB) == 0) {
    int* inv = nullptr;
    int* table = nullptr;
    int src_range = 0;
    int dst_range = 0;
    int brightness = 0;
    int contrast = 0;
    int saturation = 0;
    if (sws_getColorspaceDetails(sws.get(), &inv, &src_range, &table, &dst_range, &brightness,
                                 &contrast, &saturation) < 0 ||
        sws_setColorspaceDetails(sws.get(), inv, 1, table, dst_range, brightness, contrast,
                                 saturation) < 0)
      return make_error(audio_errc::transcode_failed, "colour range conversion");
  }
  int rc = sws_scale(sws.get(), src->data, src->linesize, 0, src->height, dst->data, dst->linesize);
  if (rc <= 0) return make_error(audio_errc::transcode_failed, "scaling failed: " + av_error(rc));
  return {};
}

caf::expected<frame_ptr> alloc_picture(AVPixelFormat format, int width, int height) {
  frame_ptr f{av_frame_alloc()};
  if (!f) return make_error(audio_errc::transcode_failed, "out of memory");
  f->format = format;
  f->width = width;
  f->height = height;
  if (av_frame_get_buffer(f.get(), 0) < 0)
    return make_error(audio_errc::transcode_failed, "out of memory");
  return f;
}

// A picture with transparency, as RGBA composited onto white (a JPEG has no alpha, and libswscale
// would drop it, leaving whatever colour the transparent pixels happen to hold: often black).
caf::expected<frame_ptr> flatten(const AVFrame* src) {
  auto rgba = alloc_picture(AV_PIX_FMT_RGBA, src->width, src->height);
  if (!rgba) return rgba.error();
  if (auto err = convert(src, rgba->get())) return err;
  AVFrame* f = rgba->get();
  for (int y = 0; y < f->height; ++y) {
    uint8_t* p = f->data[0] + static_cast<ptrdiff_t>(y) * f->linesize[0];
    for (int x = 0; x < f->width; ++x, p += 4) {
      int alpha = p[3];
      for (int c = 0; c < 3; ++c)
        p[c] = static_cast<uint8_t>((p[c] * alpha + 255 * (255 - alpha) + 127) / 255);
      p[3] = 255;
    }
  }
  return std::move(*rgba);
}

caf::expected<std::string> encode_jpeg(const AVFrame* src, int width, int height) {
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
  if (codec == nullptr) return make_error(audio_errc::transcode_failed, "no encoder mjpeg");
  codec_ptr enc{avcodec_alloc_context3(codec)};
  if (!enc) return make_error(audio_errc::transcode_failed, "out of memory");
  enc->width = width;
  enc->height = height;
  // The full-range 4:2:0 of ordinary JPEG files, which every browser shows.
  enc->pix_fmt = AV_PIX_FMT_YUVJ420P;
  enc->color_range = AVCOL_RANGE_JPEG;
  enc->time_base = AVRational{1, 1};
  enc->thread_count = 1;
  // A fixed quantiser (2 is best, 31 worst): 3 keeps covers sharp at a modest size.
  enc->flags |= AV_CODEC_FLAG_QSCALE;
  enc->global_quality = FF_QP2LAMBDA * 3;
  int rc = avcodec_open2(enc.get(), codec, nullptr);
  if (rc < 0)
    return make_error(audio_errc::transcode_failed, "mjpeg refused its settings: " + av_error(rc));
  auto dst = alloc_picture(AV_PIX_FMT_YUVJ420P, width, height);
  if (!dst) return dst.error();
  AVFrame* f = dst->get();
  f->color_range = AVCOL_RANGE_JPEG;
  if (auto err = convert(src, f)) return err;
  f->pts = 0;
  f->quality = enc->global_quality;
  rc = avcodec_send_frame(enc.get(), f);
  if (rc >= 0) rc = avcodec_send_frame(enc.get(), nullptr);
  if (rc < 0)
    return make_error(audio_errc::transcode_failed, "JPEG encoding failed: " + av_error(rc));
  packet_ptr pkt{av_packet_alloc()};
  if (!pkt) return make_error(audio_errc::transcode_failed, "out of memory");
  std::string jpeg;
  for (;;) {
    rc = avcodec_receive_packet(enc.get(), pkt.get());
    if (rc == AVERROR_EOF) break;
    if (rc < 0)
      return make_error(audio_errc::transcode_failed, "JPEG encoding failed: " + av_error(rc));
    jpeg.append(reinterpret_cast<const char*>(pkt->data), static_cast<size_t>(pkt->size));
    av_packet_unref(pkt.get());
  }
  if (jpeg.empty())
    return make_error(audio_errc::transcode_failed, "the JPEG encoder gave nothing");
  return jpeg;
}

// Fits width x height in a size x size box, keeping the aspect ratio, never enlarging.
std::pair<int, int> fit(int width, int height, int size) {
  if (width <= size && height <= size) return {width, height};
  auto scaled = [size](int side, int longest) {
    return std::max(1, static_cast<int>(std::lround(static_cast<double>(side) * size / longest)));
  };
  if (width >= height) return {size, scaled(height, width)};
  return {scaled(width, height), size};
}

}  // namespace

const std::vector<int>& default_cover_sizes() {
  static const std::vector<int> sizes{96, 300, 600};
  return sizes;
}

caf::expected<std::vector<cover_image>> resize_cover(const std::string& art,
                                                     const std::vector<int>& sizes,
                                                     const cover_limits& limits) {
  silence_ffmpeg();
  for (int size : sizes)
    if (size < 1 || size > limits.max_side)
      return make_error(audio_errc::transcode_failed,
                        "cover size " + std::to_string(size) + " out of range");
  auto header = read_header(art, limits);
  if (!header) return header.error();
  auto picture = decode_picture(art, *header, limits);
  if (!picture) return picture.error();
  const AVFrame* source = picture->get();
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(source->format));
  if (desc == nullptr)
    return make_error(audio_errc::invalid_media, "the cover art decodes to an unknown format");
  frame_ptr flat;
  if ((desc->flags & (AV_PIX_FMT_FLAG_ALPHA | AV_PIX_FMT_FLAG_PAL)) != 0) {
    auto f = flatten(source);
    if (!f) return f.error();
    flat = std::move(*f);
    source = flat.get();
    picture->reset();  // up to 8192x8192 at 8 bytes a pixel: not kept twice
  }
  std::vector<cover_image> out;
  for (int size : sizes) {
    auto dims = fit(source->width, source->height, size);
    int width = dims.first;
    int height = dims.second;
    cover_image image{size, width, height, {}};
    // Sizes above the source's give the same picture: encode it once.
    auto same = std::find_if(out.begin(), out.end(), [&](const cover_image& i) {
      return i.width == width && i.height == height;
    });
    if (same != out.end()) {
      image.jpeg = same->jpeg;
    } else {
      auto jpeg = encode_jpeg(source, width, height);
      if (!jpeg) return jpeg.error();
      image.jpeg = std::move(*jpeg);
    }
    out.push_back(std::move(image));
  }
  return out;
}

}  // namespace chorus::audio
