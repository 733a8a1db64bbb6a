#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/audio/audio.hpp"
#include "actors/audio/audio_probe.hpp"
#include "actors/entity_messages.hpp"
#include "messages/audio.pb.h"
#include "persistence/blob_store.hpp"

namespace chorus::audio {

namespace {

namespace fs = std::filesystem;

// Covers larger than this on a side are left out: decoding one takes memory by the side squared
// (8192 x 8192 needed ~900 MB), for art shown at 600 pixels at most.
const cover_limits cover_budget{size_t{16} << 20, 4096};

/// The jobs and the threads that run them; shared by the actor and the threads, stopped when
/// the actor goes (a running job is cancelled at its next frame).
class job_runner {
 public:
  job_runner(caf::actor_system& sys, transcoder_config cfg) : sys_(sys), cfg_(std::move(cfg)) {
    cfg_.limits.cancel = &stopping_;
    for (size_t i = 0; i < std::max<size_t>(1, cfg_.workers); ++i)
      threads_.emplace_back([this] { loop(); });
  }
  ~job_runner() { stop(); }
  job_runner(const job_runner&) = delete;
  job_runner& operator=(const job_runner&) = delete;

  bool offer(messages::TranscodeJob job) {
    std::lock_guard<std::mutex> lock{mutex_};
    if (queue_.size() >= cfg_.max_queued) {
      if (cfg_.probe != nullptr) cfg_.probe->job_refused();
      return false;
    }
    // The same attempt of the same track twice (a redelivered message) runs once.
    for (const auto& j : queue_)
      if (j.track() == job.track() && j.attempt() == job.attempt()) return true;
    queue_.push_back(std::move(job));
    if (cfg_.probe != nullptr) cfg_.probe->queued(queue_.size());
    ready_.notify_one();
    return true;
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock{mutex_};
      if (stopping_) return;
      stopping_ = true;
      ready_.notify_all();
    }
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  void loop() {
    for (;;) {
      messages::TranscodeJob job;
      {
        std::unique_lock<std::mutex> lock{mutex_};
        ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        if (cfg_.probe != nullptr) cfg_.probe->queued(queue_.size());
      }
      auto start = std::chrono::steady_clock::now();
      auto audio_s = run(job);
      std::chrono::duration<double> wall = std::chrono::steady_clock::now() - start;
      if (cfg_.probe == nullptr) continue;
      if (audio_s)
        cfg_.probe->job_done(wall.count(), *audio_s);
      else
        cfg_.probe->job_failed(wall.count());
    }
  }

  /// Tells the track (through the router, so its current owner gets it); a few tries, since a
  /// lost answer costs a whole job again (the track's reminder would redo it).
  void report(const std::string& track, const google::protobuf::Message& msg) {
    entity_envelope env;
    env.kind = track_kind;
    env.id = track;
    env.type = msg.GetDescriptor()->full_name();
    env.payload = msg.SerializeAsString();
    env.redeliverable = true;  // stale or repeated answers are ignored by the track
    caf::scoped_actor self{sys_};
    for (int attempt = 0; attempt < 5 && !stopping_; ++attempt) {
      bool done = false;
      self->request(*cfg_.router, std::chrono::seconds{10}, env)
          .receive([&done](std::string&) { done = true; }, [](caf::error&) {});
      if (done) return;
      std::this_thread::sleep_for(std::chrono::milliseconds{200 << attempt});
    }
  }

  std::optional<double> fail(const messages::TranscodeJob& job, const std::string& reason,
                             bool final) {
    messages::TrackFail f;
    f.set_attempt(job.attempt());
    f.set_reason(reason);
    f.set_final(final);
    report(job.track(), f);
    return std::nullopt;
  }

  /// Stores `bytes` as a blob.
  caf::expected<persistence::blob_ref> put_bytes(const std::string& bytes) {
    size_t offset = 0;
    return cfg_.blobs->put([&bytes, &offset](char* buf, size_t cap) {
      auto n = std::min(cap, bytes.size() - offset);
      std::memcpy(buf, bytes.data() + offset, n);
      offset += n;
      return caf::expected<size_t>{n};
    });
  }

  /// Runs one job; the seconds of audio it transcoded, or nothing when it failed.
  std::optional<double> run(const messages::TranscodeJob& job) {
    auto dir = cfg_.work_dir + "/" + job.track() + "-" + std::to_string(job.attempt());
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir, ec);
    struct cleanup {
      std::string dir;
      ~cleanup() {
        std::error_code e;
        fs::remove_all(dir, e);
      }
    } guard{dir};
    auto id = persistence::blob_id::parse(job.upload_blob());
    if (!id) return fail(job, "the upload's blob name is malformed", true);
    // The upload as a local file: the store's own file when it keeps files, else a copy.
    std::string input;
    if (auto local = cfg_.blobs->local_path(*id); local && fs::exists(*local)) {
      input = *local;
    } else {
      input = dir + "/upload";
      auto* out = std::fopen(input.c_str(), "wb");
      if (out == nullptr) return fail(job, "cannot write the work directory", false);
      auto read = cfg_.blobs->read(*id, 0, persistence::blob_to_end, [out](std::string_view c) {
        return std::fwrite(c.data(), 1, c.size(), out) == c.size();
      });
      std::fclose(out);
      if (!read)
        return fail(job, "the upload cannot be read: " + error_detail(read.error()), false);
    }
    auto info = probe(input, cfg_.limits);
    if (!info) return fail(job, error_detail(info.error()), !is_retryable(info.error()));
    auto result = transcode(input, dir + "/out", default_ladder(), cfg_.limits);
    if (!result) return fail(job, error_detail(result.error()), !is_retryable(result.error()));
    messages::TrackComplete done;
    done.set_attempt(job.attempt());
    for (const auto& r : result->renditions) {
      auto ref = cfg_.blobs->put_file(r.path);
      if (!ref) return fail(job, "storing a rendition: " + error_detail(ref.error()), false);
      auto* out = done.add_renditions();
      out->set_format(r.spec.format);
      out->set_quality(r.spec.quality);
      out->set_blob(ref->id.hex());
      out->set_size(static_cast<int64_t>(ref->size));
      out->set_duration_s(r.duration_s);
      out->set_bit_rate(r.spec.bit_rate);
      out->set_mime(mime_of(r.spec.format));
    }
    // The waveform as JSON: {"points": N, "peaks": [0..1, ...]}.
    std::string json = R"({"points":)" + std::to_string(result->waveform.size()) + R"(,"peaks":[)";
    char num[16];
    for (size_t i = 0; i < result->waveform.size(); ++i) {
      std::snprintf(num, sizeof num, "%s%.3f", i == 0 ? "" : ",",
                    static_cast<double>(result->waveform[i]));
      json += num;
    }
    json += "]}";
    auto wave = put_bytes(json);
    if (!wave) return fail(job, "storing the waveform: " + error_detail(wave.error()), false);
    done.set_waveform_blob(wave->id.hex());
    done.set_duration_s(result->duration_s);
    done.set_loudness_lufs(result->integrated_lufs);
    done.set_true_peak_dbtp(result->true_peak_dbtp);
    for (const auto& [k, v] : info->tags)
      if (k == "title" || k == "artist" || k == "album" || k == "genre" || k == "date")
        (*done.mutable_tags())[k] = v;
    // Cover art: unreadable art is left out rather than failing the track over it.
    if (!info->cover_art.empty()) {
      if (auto covers = resize_cover(info->cover_art, default_cover_sizes(), cover_budget)) {
        for (const auto& c : *covers) {
          auto ref = put_bytes(c.jpeg);
          if (!ref) return fail(job, "storing the cover: " + error_detail(ref.error()), false);
          auto* out = done.add_covers();
          out->set_size(c.size);
          out->set_width(c.width);
          out->set_height(c.height);
          out->set_blob(ref->id.hex());
        }
      }
    }
    report(job.track(), done);
    return result->duration_s;
  }

  static bool is_retryable(const caf::error& err) {
    if (err.category() != audio_category) return true;
    auto code = static_cast<audio_errc>(err.code());
    return code == audio_errc::timed_out || code == audio_errc::transcode_failed;
  }

  caf::actor_system& sys_;
  transcoder_config cfg_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<messages::TranscodeJob> queue_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

struct transcoder_state {
  std::shared_ptr<job_runner> runner;
  static inline const char* name = "chorus.audio.transcoder";
};

envelope_handler::behavior_type transcoder(
    envelope_handler::stateful_pointer<transcoder_state> self, transcoder_config cfg) {
  self->state.runner = std::make_shared<job_runner>(self->system(), std::move(cfg));
  self->attach_functor([runner = self->state.runner] { runner->stop(); });
  return {
      [self](entity_envelope& env) -> caf::result<std::string> {
        messages::TranscodeJob job;
        if (!parse_as(env, job) || job.track().empty())
          return make_error(runtime_errc::bad_payload, "the transcoder takes TranscodeJob");
        if (!self->state.runner->offer(std::move(job)))
          return make_error(runtime_errc::overloaded, "the transcode queue is full");
        return std::string{"queued"};
      },
  };
}

}  // namespace

envelope_handler spawn_transcoder(caf::actor_system& sys, transcoder_config cfg) {
  std::error_code ec;
  fs::create_directories(cfg.work_dir, ec);
  return sys.spawn<caf::detached>(transcoder, std::move(cfg));
}

}  // namespace chorus::audio
