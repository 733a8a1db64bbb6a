#include "actors/audio/play_events.hpp"

#include <vector>

#include "actors/audio/audio_probe.hpp"
#include "messages/audio.pb.h"
#include "persistence/redis_client.hpp"

namespace chorus::audio {

namespace {

// Events published in one round trip at most.
constexpr size_t max_batch = 256;

// KEYS[1]: the stream. ARGV: max entries (approximate trim), the event type, then per event its
// track, kind and payload.
const persistence::redis_script publish_script{R"lua(
for i = 3, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[2],
             'track', ARGV[i], 'kind', ARGV[i + 1], 'payload', ARGV[i + 2])
end
return (#ARGV - 2) / 3
)lua"};

}  // namespace

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
      queue_.push_back(entry{ev.track(), ev.kind(), ev.SerializeAsString()});
      wake_.notify_one();
      return;
    }
  }
  if (probe_ != nullptr) probe_->play_event(false);
}

void play_event_log::run() {
  for (;;) {
    std::vector<entry> batch;
    {
      std::unique_lock<std::mutex> lock{mutex_};
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        // Shutting down: what is still queued is not worth delaying the node's exit for.
        for (size_t i = 0; probe_ != nullptr && i < queue_.size(); ++i) probe_->play_event(false);
        return;
      }
      while (!queue_.empty() && batch.size() < max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<std::string> args{std::to_string(max_entries_),
                                  messages::PlayEvent::descriptor()->full_name()};
    for (auto& e : batch) {
      args.push_back(std::move(e.track));
      args.push_back(std::move(e.kind));
      args.push_back(std::move(e.payload));
    }
    auto added = redis_->eval_script(publish_script, {stream_}, args);
    for (size_t i = 0; probe_ != nullptr && i < batch.size(); ++i)
      probe_->play_event(static_cast<bool>(added));
  }
}

}  // namespace chorus::audio
