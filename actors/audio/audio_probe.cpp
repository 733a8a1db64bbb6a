#include "actors/audio/audio_probe.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace chorus::audio {

namespace {

prometheus::Counter& jobs(prometheus::Registry& r, const char* outcome) {
  return prometheus::BuildCounter()
      .Name("chorus_transcode_jobs_total")
      .Help("Transcode jobs by outcome (done, failed, refused: the queue was full)")
      .Register(r)
      .Add({{"outcome", outcome}});
}

prometheus::Counter& plays(prometheus::Registry& r, const char* outcome) {
  return prometheus::BuildCounter()
      .Name("chorus_play_events_total")
      .Help("Play events of the stream route: published to the event bus, or lost")
      .Register(r)
      .Add({{"outcome", outcome}});
}

}  // namespace

audio_probe::audio_probe(prometheus::Registry& r)
    : queue_(prometheus::BuildGauge()
                 .Name("chorus_transcode_queue_length")
                 .Help("Transcode jobs waiting for a worker on this node")
                 .Register(r)
                 .Add({})),
      done_(jobs(r, "done")),
      failed_(jobs(r, "failed")),
      refused_(jobs(r, "refused")),
      seconds_(prometheus::BuildHistogram()
                   .Name("chorus_transcode_job_seconds")
                   .Help("Wall-clock seconds per transcode job (the whole ladder of one track)")
                   .Register(r)
                   .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 20, 40, 80, 160,
                                                                    320, 640})),
      rtf_(prometheus::BuildHistogram()
               .Name("chorus_transcode_realtime_factor")
               .Help("Seconds of audio transcoded per wall-clock second, per finished job")
               .Register(r)
               .Add({}, prometheus::Histogram::BucketBoundaries{1, 5, 10, 20, 50, 100, 200, 500})),
      plays_published_(plays(r, "published")),
      plays_lost_(plays(r, "lost")) {}

void audio_probe::queued(size_t n) {
  queue_.Set(static_cast<double>(n));
}

void audio_probe::job_done(double wall_s, double audio_s) {
  done_.Increment();
  seconds_.Observe(wall_s);
  if (wall_s > 0) rtf_.Observe(audio_s / wall_s);
}

void audio_probe::job_failed(double wall_s) {
  failed_.Increment();
  seconds_.Observe(wall_s);
}

void audio_probe::job_refused() {
  refused_.Increment();
}

void audio_probe::play_event(bool published) {
  (published ? plays_published_ : plays_lost_).Increment();
}

}  // namespace chorus::audio
