#include "actors/audio/play_events.hpp"

#include "actors/audio/audio_probe.hpp"
#include "messages/audio.pb.h"
#include "persistence/redis_streams.hpp"

namespace chorus::audio {

std::string play_stream_name(const std::string& cluster) {
  return "chorus:plays:" + cluster;
}

play_event_log::play_event_log(std::shared_ptr<persistence::redis_client> redis, std::string stream,
                               audio_probe* probe, size_t max_entries, size_t max_queued)
    : redis_(std::move(redis)),
      stream_(std::move(stream)),
      probe_(probe),
      max_entries_(max_entries),
      max_queued_(max_queued),
      thread_([this] { run(); }) {}

play_event_log::~play_event_log() {
  {
    std::lock_guard<std::mutex> lock{mutex_};
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void play_event_log::emit(const messages::PlayEvent& ev) {
  {
    std::lock_guard<std::mutex> lock{mutex_};
    if (queue_.size() < max_queued_) {
      queue_.push_back({{"type", messages::PlayEvent::descriptor()->full_name()},
                        {"track", ev.track()},
                        {"kind", ev.kind()},
                        {"payload", ev.SerializeAsString()}});
      wake_.notify_one();
      return;
    }
  }
  if (probe_ != nullptr) probe_->play_event(false);
}

void play_event_log::run() {
  for (;;) {
    persistence::stream_fields fields;
    {
      std::unique_lock<std::mutex> lock{mutex_};
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        // Shutting down: what is still queued is not worth delaying the node's exit for.
        for (size_t i = 0; probe_ != nullptr && i < queue_.size(); ++i) probe_->play_event(false);
        return;
      }
      fields = std::move(queue_.front());
      queue_.pop_front();
    }
    auto id = persistence::xadd(*redis_, stream_, fields, max_entries_);
    if (probe_ != nullptr) probe_->play_event(static_cast<bool>(id));
  }
}

}  // namespace chorus::audio
