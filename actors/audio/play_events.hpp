#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace chorus::persistence {
class redis_client;
}

namespace chorus::messages {
class PlayEvent;
}

namespace chorus::audio {

class audio_probe;

/// The Redis stream that play events go to: `chorus:plays:<cluster name>`.
std::string play_stream_name(const std::string& cluster);

/// Publishes play events to the event bus (a Redis stream, trimmed to about `max_entries`)
/// for the analytics domain. Best effort by design: a play is not a write a user was promised,
/// so while Redis is unreachable events are dropped (counted as lost in the probe) instead of
/// slowing the stream down. `emit` never waits for Redis: events queue (at most `max_queued`;
/// beyond, they are lost) for a thread of the log's own that publishes what has queued in one
/// round trip (a Lua script of XADDs: at thousands of plays a second, one XADD per play cost
/// the stream route a tenth of its throughput). Owned by main();
/// `emit` is called on edge workers.
class play_event_log {
 public:
  play_event_log(std::shared_ptr<persistence::redis_client> redis, std::string stream,
                 audio_probe* probe, size_t max_entries = 1000000, size_t max_queued = 10000);
  ~play_event_log();
  play_event_log(const play_event_log&) = delete;
  play_event_log& operator=(const play_event_log&) = delete;

  void emit(const messages::PlayEvent& ev);

 private:
  void run();

  std::shared_ptr<persistence::redis_client> redis_;
  std::string stream_;
  audio_probe* probe_;
  size_t max_entries_;
  size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable wake_;
  /// One stream entry: the track and kind in plain fields (for consumers that filter without
  /// parsing) and the serialized PlayEvent.
  struct entry {
    std::string track;
    std::string kind;
    std::string payload;
  };
  std::deque<entry> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace chorus::audio
