#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/message.h>
#include <caf/error.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/deadline_wheel.hpp"
#include "messages/journal_types.hpp"
#include "persistence/errc.hpp"
#include "persistence/journal_actor.hpp"

namespace chorus {

/// Where one activation of an event-sourced entity stands in its stream. Lives in the entity's
/// state; only the entity's own actor touches it.
struct event_stream {
  std::string name;            ///< the stream: "kind/id"
  int64_t version = 0;         ///< the last event applied to the state
  bool restored = false;       ///< false until the first load succeeded
  int64_t since_snapshot = 0;  ///< events applied since the last snapshot taken or loaded
  /// Keeps the deadlines of the journal requests (entity_context::deadlines); null: CAF's clock.
  deadline_wheel* deadlines = nullptr;
};

/// How long an entity waits for its journal: longer than a statement may run there.
inline constexpr std::chrono::seconds journal_timeout{20};

namespace detail {

/// `self->request(journal, journal_timeout, xs...).await(ok, err)`, with the deadline in the
/// stream's deadline wheel when it has one (CAF 0.17's clock costs every timed request dearly:
/// actors/deadline_wheel.hpp).
template <class Out, class Self, class OnOk, class OnErr, class... Ts>
void await_journal(Self* self, const persistence::journal_actor& journal, const event_stream& s,
                   OnOk ok, OnErr err, Ts&&... xs) {
  if (s.deadlines != nullptr)
    request_within<Out>(self, *s.deadlines, journal, journal_timeout, std::forward<Ts>(xs)...)
        .await(std::move(ok), std::move(err));
  else
    self->request(journal, journal_timeout, std::forward<Ts>(xs)...)
        .await(std::move(ok), std::move(err));
}

}  // namespace detail

/// A model is the entity's state as seen by the journal helpers below:
///   void reset();                                              // back to the empty state
///   bool restore(const std::string& type, const std::string& payload);  // from a snapshot
///   bool apply(const std::string& type, const std::string& payload);    // one event
///   std::pair<std::string, std::string> snapshot() const;      // (type, payload)
/// restore/apply answer false for bytes they cannot read; the entity then fails loudly instead
/// of serving a state that silently misses events.

namespace detail {

template <class Model>
caf::error replay(Model& model, event_stream& s, loaded_stream& loaded) {
  if (loaded.snapshot_version > 0) {
    model.reset();
    if (!model.restore(loaded.snapshot_type, loaded.snapshot_payload))
      return persistence::make_error(persistence::errc::corrupt_stream,
                                     s.name + ": unreadable snapshot " + loaded.snapshot_type);
    s.version = loaded.snapshot_version;
    s.since_snapshot = 0;
  }
  for (auto& e : loaded.events) {
    if (e.version != s.version + 1)
      return persistence::make_error(persistence::errc::corrupt_stream,
                                     s.name + ": event " + std::to_string(e.version) +
                                         " does not follow " + std::to_string(s.version));
    if (!model.apply(e.type, e.payload))
      return persistence::make_error(persistence::errc::corrupt_stream,
                                     s.name + ": unreadable event " + e.type);
    s.version = e.version;
    ++s.since_snapshot;
  }
  return {};
}

}  // namespace detail

/// Runs `then(error)` once the state is restored from the journal (at once when it already is).
/// While the load is outstanding the entity handles no other message (`await`), so messages are
/// served in arrival order against a restored state. A failed load leaves the entity
/// unrestored: the next message tries again.
template <class Self, class Model, class Then>
void with_restored(Self* self, const persistence::journal_actor& journal, event_stream& s,
                   Model& model, Then then) {
  if (s.restored) {
    then(caf::error{});
    return;
  }
  detail::await_journal<loaded_stream>(
      self, journal, s,
      [self, &s, &model, then](loaded_stream& loaded) mutable {
        model.reset();
        s.version = 0;
        s.since_snapshot = 0;
        if (auto err = detail::replay(model, s, loaded)) {
          // The stream cannot be read by this version: answer, then stop this activation
          // (the registry counts it and refuses the entity for a while) instead of serving
          // a state that misses events. The node and other entities carry on.
          auto stop = err;
          then(std::move(err));
          self->quit(std::move(stop));
          return;
        }
        s.restored = true;
        then(caf::error{});
      },
      [then](caf::error& err) mutable { then(std::move(err)); }, load_atom_v, s.name, int64_t{0});
}

/// Appends `events` at the entity's version and, once committed, applies them to the model and
/// calls `then(error)`. Nothing is applied before the commit, so a refused or failed append
/// leaves the state as it was. On `version_conflict` (another activation wrote meanwhile) the
/// entity catches up with the events it missed before `then` sees the conflict, so the caller
/// can decide again against the fresh state. Takes a snapshot every `snapshot_every` events.
template <class Self, class Model, class Then>
void persist(Self* self, const persistence::journal_actor& journal, event_stream& s, Model& model,
             std::vector<new_event> events, int64_t snapshot_every, Then then) {
  auto expected = s.version;
  detail::await_journal<int64_t>(
      self, journal, s,
      [self, journal, &s, &model, events, snapshot_every, then](int64_t version) mutable {
        for (auto& e : events) {
          if (!model.apply(e.type, e.payload)) {
            then(persistence::make_error(persistence::errc::storage_error,
                                         s.name + ": cannot apply own event " + e.type));
            return;
          }
          ++s.since_snapshot;
        }
        s.version = version;
        if (snapshot_every > 0 && s.since_snapshot >= snapshot_every) {
          auto [type, payload] = model.snapshot();
          self->send(journal, snapshot_atom_v, s.name, s.version, std::move(type),
                     std::move(payload));
          s.since_snapshot = 0;
        }
        then(caf::error{});
      },
      [self, journal, &s, &model, then](caf::error& err) mutable {
        bool conflict = err.category() == persistence::errc_category &&
                        err.code() == static_cast<uint8_t>(persistence::errc::version_conflict);
        if (!conflict) {
          // The outcome may be unknown (connection lost during commit): reload before the
          // next write instead of trusting the state.
          s.restored = false;
          then(std::move(err));
          return;
        }
        detail::await_journal<loaded_stream>(
            self, journal, s,
            [self, &s, &model, then, err](loaded_stream& missed) mutable {
              if (auto replay_err = detail::replay(model, s, missed)) {
                s.restored = false;
                auto stop = replay_err;
                then(std::move(replay_err));
                self->quit(std::move(stop));
                return;
              }
              then(std::move(err));
            },
            [&s, then](caf::error& load_err) mutable {
              s.restored = false;
              then(std::move(load_err));
            },
            load_atom_v, s.name, s.version);
      },
      append_atom_v, s.name, expected, events);
}

/// The event that records `msg` (its full protobuf type name and bytes, no metadata).
inline new_event event_of(const google::protobuf::Message& msg) {
  return new_event{msg.GetDescriptor()->full_name(), msg.SerializeAsString(), "{}"};
}

/// How often a command that lost a race to another activation is decided again.
inline constexpr int max_decide_attempts = 4;

/// Runs one command against the restored state and answers `rp`: `decide(model)` returns the
/// events the command causes (or an error, answered as is); once they are committed (at once
/// when there are none) `reply(model)` makes the answer. A command that lost the race for its
/// version to another activation is decided again against the caught-up state (up to
/// max_decide_attempts times, then the conflict is the answer).
///   decide: caf::expected<std::vector<new_event>>(Model&)
///   reply:  caf::expected<std::string>(const Model&)
template <class Self, class Model, class Decide, class Reply>
void execute(Self* self, const persistence::journal_actor& journal, event_stream& s, Model& model,
             int64_t snapshot_every, Decide decide, Reply reply,
             caf::typed_response_promise<std::string> rp, int attempt = 1) {
  auto answer = [rp](caf::expected<std::string> out) mutable {
    if (out)
      rp.deliver(std::move(*out));
    else
      rp.deliver(std::move(out.error()));
  };
  with_restored(self, journal, s, model, [=, &s, &model](caf::error err) mutable {
    if (err) {
      rp.deliver(std::move(err));
      return;
    }
    auto events = decide(model);
    if (!events) {
      rp.deliver(std::move(events.error()));
      return;
    }
    if (events->empty()) {
      answer(reply(model));
      return;
    }
    persist(self, journal, s, model, std::move(*events), snapshot_every,
            [=, &s, &model](caf::error err) mutable {
              if (!err) {
                answer(reply(model));
                return;
              }
              bool conflict =
                  err.category() == persistence::errc_category &&
                  err.code() == static_cast<uint8_t>(persistence::errc::version_conflict);
              if (conflict && attempt < max_decide_attempts) {
                execute(self, journal, s, model, snapshot_every, decide, reply, rp, attempt + 1);
                return;
              }
              rp.deliver(std::move(err));
            });
  });
}

}  // namespace chorus
