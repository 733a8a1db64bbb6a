#pragma once

#include <cstddef>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace chorus::audio {

/// Metrics of a node's audio domain: its transcoder and the play events its edge emits. Owned
/// by main() (or a test), outliving the transcoder and the edge; thread-safe (prometheus-cpp
/// metrics are atomic), called from transcoder workers and edge workers.
class audio_probe {
 public:
  explicit audio_probe(prometheus::Registry& registry);

  /// Jobs waiting for a worker now.
  void queued(size_t jobs);
  /// A job finished: `wall_s` seconds for `audio_s` seconds of audio.
  void job_done(double wall_s, double audio_s);
  /// A job failed (retryable or not).
  void job_failed(double wall_s);
  /// A job refused because the queue was full.
  void job_refused();
  /// A play event published to the event bus, or lost (the bus was unreachable).
  void play_event(bool published);

 private:
  prometheus::Gauge& queue_;
  prometheus::Counter& done_;
  prometheus::Counter& failed_;
  prometheus::Counter& refused_;
  prometheus::Histogram& seconds_;
  prometheus::Histogram& rtf_;
  prometheus::Counter& plays_published_;
  prometheus::Counter& plays_lost_;
};

}  // namespace chorus::audio
