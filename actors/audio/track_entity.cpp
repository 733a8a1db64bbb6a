#include <algorithm>
#include <chrono>
#include <map>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/audio/audio.hpp"
#include "actors/entity_messages.hpp"
#include "common/clock.hpp"
#include "messages/audio.pb.h"

// A track: created from an upload, transcoded by a node's transcoder, ready or failed. The job
// is durable through the track's own reminder "dispatch": stored before the track is created,
// it (re)sends the job; each dispatch stores the next one, due when the job should long be
// done, so a job lost with its node is sent again. Any attempt's result settles a processing
// track; answers after that are ignored.

namespace chorus::audio {

namespace {

constexpr int max_attempts = 3;
// Comment client ids remembered for deduplicating retried posts.
constexpr size_t max_comment_keys = 1000;
constexpr const char* dispatch_name = "dispatch";

/// A retried comment is recognised by its author's client id (two authors may pick the same).
std::string comment_key(const std::string& author, const std::string& client_id) {
  return author + "\n" + client_id;
}

struct track_model {
  messages::TrackInfo info;  ///< id/created_at/waveform_url filled when answered
  std::string upload_blob;
  int64_t created_at_ms = 0;
  std::string waveform_blob;
  std::map<std::string, int64_t> comment_keys;  ///< recent client ids -> comment id

  [[nodiscard]] bool exists() const { return !info.owner().empty(); }
  void reset() { *this = track_model{}; }

  bool restore(const std::string& type, const std::string& payload) {
    messages::TrackSnapshot s;
    if (!parse_as(type, payload, s)) return false;
    info = s.info();
    upload_blob = s.upload_blob();
    created_at_ms = s.created_at_ms();
    waveform_blob = s.waveform_blob();
    comment_keys = {s.recent_comment_keys().begin(), s.recent_comment_keys().end()};
    return true;
  }

  bool apply(const std::string& type, const std::string& payload) {
    if (messages::TrackUploaded ev; parse_as(type, payload, ev)) {
      info.set_owner(ev.owner());
      info.set_title(ev.title());
      info.set_visibility(ev.visibility());
      info.set_artist(ev.artist());
      info.set_album(ev.album());
      info.set_genre(ev.genre());
      *info.mutable_tags() = ev.tags();
      info.set_release_date(ev.release_date());
      info.set_status("uploaded");
      upload_blob = ev.upload_blob();
      created_at_ms = ev.at_ms();
      return true;
    }
    if (messages::TrackProcessing ev; parse_as(type, payload, ev)) {
      info.set_status("processing");
      info.set_attempts(ev.attempt());
      return true;
    }
    if (messages::TrackReady ev; parse_as(type, payload, ev)) {
      info.set_status("ready");
      info.set_failure("");
      *info.mutable_renditions() = ev.renditions();
      info.set_duration_s(ev.duration_s());
      info.set_loudness_lufs(ev.loudness_lufs());
      info.set_true_peak_dbtp(ev.true_peak_dbtp());
      waveform_blob = ev.waveform_blob();
      *info.mutable_covers() = ev.covers();
      // Tags fill what the uploader left empty.
      auto tag = [&ev](const char* key) {
        auto it = ev.tags().find(key);
        return it == ev.tags().end() ? std::string{} : it->second;
      };
      if (info.artist().empty()) info.set_artist(tag("artist"));
      if (info.album().empty()) info.set_album(tag("album"));
      if (info.genre().empty()) info.set_genre(tag("genre"));
      return true;
    }
    if (messages::TrackEdited ev; parse_as(type, payload, ev)) {
      if (ev.has_title()) info.set_title(ev.title());
      if (ev.has_artist()) info.set_artist(ev.artist());
      if (ev.has_album()) info.set_album(ev.album());
      if (ev.has_genre()) info.set_genre(ev.genre());
      if (ev.has_visibility()) info.set_visibility(ev.visibility());
      if (ev.has_release_date()) info.set_release_date(ev.release_date());
      if (ev.set_tags()) *info.mutable_tags() = ev.tags();
      return true;
    }
    if (messages::TrackCommented ev; parse_as(type, payload, ev)) {
      info.set_comment_count(static_cast<int32_t>(ev.id()));
      if (!ev.client_id().empty()) {
        comment_keys[comment_key(ev.author(), ev.client_id())] = ev.id();
        if (comment_keys.size() > max_comment_keys) {
          auto oldest =
              std::min_element(comment_keys.begin(), comment_keys.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
          comment_keys.erase(oldest);
        }
      }
      return true;
    }
    if (messages::TrackFailed ev; parse_as(type, payload, ev)) {
      info.set_status("failed");
      info.set_failure(ev.reason());
      return true;
    }
    return false;
  }

  [[nodiscard]] std::pair<std::string, std::string> snapshot() const {
    messages::TrackSnapshot s;
    *s.mutable_info() = info;
    s.set_upload_blob(upload_blob);
    s.set_created_at_ms(created_at_ms);
    s.set_waveform_blob(waveform_blob);
    s.mutable_recent_comment_keys()->insert(comment_keys.begin(), comment_keys.end());
    return {type_of<messages::TrackSnapshot>(), s.SerializeAsString()};
  }
};

struct track_state {
  entity_base base;
  track_model model;
  persistence::reminder_actor reminders;
  envelope_handler transcoder;
  std::chrono::milliseconds job_timeout{600000};
  static inline const char* name = "chorus.audio.track";
};

using track_self = envelope_handler::stateful_pointer<track_state>;

caf::error no_track(const std::string& id) {
  return make_error(domain_errc::not_found, "no track " + id);
}

/// Stores (or replaces) the track's dispatch reminder, due `after` from now.
template <class Then>
void schedule_dispatch(track_self self, std::chrono::milliseconds after, Then then) {
  auto& st = self->state;
  if (!st.reminders) {
    then(make_error(runtime_errc::unknown_kind, "track: this node has no audio reminders"));
    return;
  }
  auto due = unix_ms_now() + after.count();
  self->request(st.reminders, journal_timeout, remind_atom_v, std::string{track_kind}, st.base.id,
                std::string{dispatch_name}, int64_t{due}, type_of<messages::TrackDispatch>(),
                messages::TrackDispatch{}.SerializeAsString())
      .then([then](int64_t) mutable { then(caf::error{}); },
            [then](caf::error& err) mutable { then(std::move(err)); });
}

void cancel_dispatch(track_self self) {
  auto& st = self->state;
  if (st.reminders)
    self->request(st.reminders, journal_timeout, cancel_atom_v, std::string{track_kind}, st.base.id,
                  std::string{dispatch_name})
        .then([](bool) {}, [](caf::error&) {});
}

/// Hands the job to this node's transcoder (fire and forget: the reminder is the safety net).
void send_job(track_self self) {
  auto& st = self->state;
  if (!st.transcoder) return;
  messages::TranscodeJob job;
  job.set_track(st.base.id);
  job.set_upload_blob(st.model.upload_blob);
  job.set_attempt(st.model.info.attempts());
  entity_envelope env;
  env.kind = "transcoder";
  env.id = st.base.id;
  env.type = type_of<messages::TranscodeJob>();
  env.payload = job.SerializeAsString();
  self->request(st.transcoder, std::chrono::seconds{10}, std::move(env))
      .then([](std::string&) {}, [](caf::error&) {});
}

}  // namespace

envelope_handler::behavior_type track(track_self self, std::string id, entity_context ctx) {
  auto& st = self->state;
  st.base = entity_base{track_kind, id, ctx, audio_domain};
  st.reminders = ctx.reminder(audio_domain);
  st.transcoder = ctx.transcoder;
  st.job_timeout = ctx.transcode_timeout;
  auto info_of = [self](const track_model& m) -> caf::expected<std::string> {
    if (!m.exists()) return no_track(self->state.base.id);
    auto out = m.info;
    out.set_id(self->state.base.id);
    out.set_created_at(rfc3339(m.created_at_ms));
    out.set_waveform_url(m.waveform_blob.empty()
                             ? std::string{}
                             : "/v1/tracks/" + self->state.base.id + "/waveform");
    out.set_waveform_blob(m.waveform_blob);
    for (auto& c : *out.mutable_covers())
      c.set_url("/v1/tracks/" + self->state.base.id + "/cover?size=" + std::to_string(c.size()));
    return out.SerializeAsString();
  };
  auto run = [self](auto decide, auto reply) { return run_command(self, decide, reply); };
  auto read = [](track_model&) { return no_events(); };
  return {guarded(self, [=](entity_envelope& env) -> caf::result<std::string> {
    auto& st = self->state;
    if (!st.base.journal) return no_journal(st.base);
    if (messages::TrackGet cmd; parse_as(env, cmd)) return run(read, info_of);
    if (messages::TrackCreate cmd; parse_as(env, cmd)) {
      if (cmd.owner().empty() || cmd.upload_blob().size() != 64 || cmd.title().empty())
        return make_error(domain_errc::validation, "TrackCreate needs owner, title, blob");
      // The reminder first: a track that exists always has its job on the way.
      auto rp = self->make_response_promise<std::string>();
      schedule_dispatch(self, std::chrono::milliseconds{0}, [=](caf::error err) mutable {
        if (err) {
          rp.deliver(std::move(err));
          return;
        }
        // The activation's own state (a copy of it in this closure would die with it).
        auto& live = self->state;
        execute(
            self, live.base.journal, live.base.stream, live.model, live.base.snapshot_every,
            [cmd](track_model& m) -> caf::expected<std::vector<new_event>> {
              if (m.exists()) {
                if (m.upload_blob == cmd.upload_blob()) return no_events();  // a retried create
                return make_error(domain_errc::conflict, "the track exists already");
              }
              messages::TrackUploaded ev;
              ev.set_owner(cmd.owner());
              ev.set_title(cmd.title());
              ev.set_visibility(cmd.visibility().empty() ? "public" : cmd.visibility());
              ev.set_upload_blob(cmd.upload_blob());
              ev.set_upload_size(cmd.upload_size());
              ev.set_artist(cmd.artist());
              ev.set_album(cmd.album());
              ev.set_genre(cmd.genre());
              *ev.mutable_tags() = cmd.tags();
              ev.set_release_date(cmd.release_date());
              ev.set_at_ms(unix_ms_now());
              return std::vector<new_event>{event_of(ev)};
            },
            info_of, rp);
      });
      return rp;
    }
    if (messages::TrackEdit cmd; parse_as(env, cmd)) {
      return run(
          [cmd, self](track_model& m) -> caf::expected<std::vector<new_event>> {
            if (!m.exists()) return no_track(self->state.base.id);
            if (cmd.by() != m.info.owner())
              return make_error(domain_errc::forbidden, "only the track's owner may edit it");
            messages::TrackEdited ev;
            ev.set_owner(m.info.owner());
            if (cmd.has_title()) ev.set_title(cmd.title());
            if (cmd.has_artist()) ev.set_artist(cmd.artist());
            if (cmd.has_album()) ev.set_album(cmd.album());
            if (cmd.has_genre()) ev.set_genre(cmd.genre());
            if (cmd.has_visibility()) ev.set_visibility(cmd.visibility());
            if (cmd.has_release_date()) ev.set_release_date(cmd.release_date());
            ev.set_set_tags(cmd.set_tags());
            *ev.mutable_tags() = cmd.tags();
            return std::vector<new_event>{event_of(ev)};
          },
          info_of);
    }
    if (messages::TrackCommentPost cmd; parse_as(env, cmd)) {
      if (cmd.author().empty() || cmd.text().empty())
        return make_error(domain_errc::validation, "a comment needs an author and text");
      auto answer = [self, cmd](const track_model& m) -> caf::expected<std::string> {
        messages::TrackComment c;
        auto key = m.comment_keys.find(comment_key(cmd.author(), cmd.client_id()));
        c.set_id(!cmd.client_id().empty() && key != m.comment_keys.end() ? key->second
                                                                         : m.info.comment_count());
        c.set_track(self->state.base.id);
        c.set_author(cmd.author());
        c.set_text(cmd.text());
        c.set_at_s(cmd.at_s() < 0 ? -1 : cmd.at_s());
        c.set_created_at(rfc3339(unix_ms_now()));
        return c.SerializeAsString();
      };
      return run(
          [cmd, self](track_model& m) -> caf::expected<std::vector<new_event>> {
            if (!m.exists()) return no_track(self->state.base.id);
            if (!cmd.client_id().empty() &&
                m.comment_keys.count(comment_key(cmd.author(), cmd.client_id())) > 0)
              return no_events();  // a retried post
            if (cmd.at_s() > m.info.duration_s() && m.info.status() == "ready")
              return make_error(domain_errc::validation, "at_s is past the end of the track");
            messages::TrackCommented ev;
            ev.set_id(m.info.comment_count() + 1);
            ev.set_author(cmd.author());
            ev.set_text(cmd.text());
            ev.set_at_s(cmd.at_s() < 0 ? -1 : cmd.at_s());
            ev.set_at_ms(unix_ms_now());
            ev.set_client_id(cmd.client_id());
            return std::vector<new_event>{event_of(ev)};
          },
          answer);
    }
    if (messages::TrackDispatch cmd; parse_as(env, cmd)) {
      // Due: send the job (again), or give up after max_attempts. The next dispatch is stored
      // before the job goes out, with a longer wait each attempt.
      auto rp = self->make_response_promise<std::string>();
      execute(
          self, st.base.journal, st.base.stream, st.model, st.base.snapshot_every,
          [](track_model& m) -> caf::expected<std::vector<new_event>> {
            if (!m.exists() || m.info.status() == "ready" || m.info.status() == "failed")
              return no_events();
            if (m.info.attempts() >= max_attempts) {
              messages::TrackFailed ev;
              ev.set_reason("transcoding did not finish after " + std::to_string(max_attempts) +
                            " attempts");
              return std::vector<new_event>{event_of(ev)};
            }
            messages::TrackProcessing ev;
            ev.set_attempt(m.info.attempts() + 1);
            ev.set_at_ms(unix_ms_now());
            return std::vector<new_event>{event_of(ev)};
          },
          [self, info_of](const track_model& m) -> caf::expected<std::string> {
            if (m.exists() && m.info.status() == "processing") {
              auto wait = self->state.job_timeout * m.info.attempts();
              schedule_dispatch(self, wait, [self](caf::error) { send_job(self); });
            }
            return info_of(m);
          },
          rp);
      return rp;
    }
    if (messages::TrackComplete cmd; parse_as(env, cmd)) {
      return run(
          [cmd](track_model& m) -> caf::expected<std::vector<new_event>> {
            // Any attempt's result will do while the track is processing (an older attempt
            // that finishes after a newer one was sent saves waiting for the newer one).
            if (!m.exists() || m.info.status() != "processing" || cmd.attempt() < 1 ||
                cmd.attempt() > m.info.attempts())
              return no_events();  // settled already, or not an attempt of this track
            messages::TrackReady ev;
            *ev.mutable_renditions() = cmd.renditions();
            ev.set_duration_s(cmd.duration_s());
            ev.set_loudness_lufs(cmd.loudness_lufs());
            ev.set_true_peak_dbtp(cmd.true_peak_dbtp());
            ev.set_waveform_blob(cmd.waveform_blob());
            *ev.mutable_tags() = cmd.tags();
            *ev.mutable_covers() = cmd.covers();
            ev.set_at_ms(unix_ms_now());
            return std::vector<new_event>{event_of(ev)};
          },
          [self, info_of](const track_model& m) {
            if (m.info.status() == "ready") cancel_dispatch(self);
            return info_of(m);
          });
    }
    if (messages::TrackFail cmd; parse_as(env, cmd)) {
      return run(
          [cmd](track_model& m) -> caf::expected<std::vector<new_event>> {
            if (!m.exists() || m.info.status() != "processing" ||
                cmd.attempt() != m.info.attempts() || !cmd.final())
              return no_events();  // retryable: the dispatch reminder sends it again
            messages::TrackFailed ev;
            ev.set_reason(cmd.reason());
            return std::vector<new_event>{event_of(ev)};
          },
          [self, cmd, info_of](const track_model& m) {
            if (m.info.status() == "failed") {
              cancel_dispatch(self);
            } else if (m.info.status() == "processing" && cmd.attempt() == m.info.attempts()) {
              // A retryable failure: try again soon rather than at the job timeout.
              schedule_dispatch(self, std::chrono::seconds{2 * m.info.attempts()},
                                [](caf::error) {});
            }
            return info_of(m);
          });
    }
    return unknown_message(st.base, env);
  })};
}

entity_factory track_factory() {
  return [](caf::actor_system& sys, const std::string& id, const entity_context& ctx) {
    return sys.spawn(track, id, ctx);
  };
}

}  // namespace chorus::audio
