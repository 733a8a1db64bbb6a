#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/caf_types.hpp"
#include "messages/journal_types.hpp"
#include "persistence/journal.hpp"

namespace chorus::persistence {

class journal_probe;

/// A node's door to one journal database. Entities send it their appends and loads and await
/// the answer (`request(...).await`), so an entity handles nothing else until its events are
/// committed. Node-local: never sent to another node.
using journal_actor = caf::typed_actor<
    /// Appends the events to the stream at the expected version (0: new stream); answers the new
    /// version once committed, or `errc::version_conflict` / `errc::postgres_unavailable`.
    caf::replies_to<append_atom, std::string, int64_t, std::vector<new_event>>::with<int64_t>,
    /// Restores a stream: after_version 0 = latest snapshot + later events; otherwise the events
    /// after that version only.
    caf::replies_to<load_atom, std::string, int64_t>::with<loaded_stream>,
    /// Stores a snapshot (stream, version, type, payload); best effort, no answer.
    caf::reacts_to<snapshot_atom, std::string, int64_t, std::string, std::string>,
    /// Internal: a worker finished the job with this number.
    caf::reacts_to<done_atom, uint64_t>,
    /// Internal: a free connection stops waiting for more appends (the linger's number).
    caf::reacts_to<flush_atom, uint64_t>>;

/// Makes the journal one worker thread uses (one PostgreSQL connection each).
using journal_factory = std::function<std::unique_ptr<journal>()>;

struct journal_options {
  /// Worker threads, each with its own connection: at most this many transactions at once.
  size_t connections = 2;
  /// Appends per group commit at most.
  size_t max_batch = 256;
  /// How long a free connection may wait for the writers its last batches answered to come back
  /// with their next appends, so that a batch does not leave with the first of them alone.
  std::chrono::microseconds linger{300};
};

/// Spawns a journal actor. Group commit: appends that arrive while every connection is busy
/// wait and then go together, in one transaction and one round trip, to the next free
/// connection; each is acknowledged only after that transaction committed. Blocking calls run
/// on the actor's own worker threads, never on CAF's scheduler. `probe` (may be null) must
/// outlive the actor.
journal_actor spawn_journal(caf::actor_system& sys, journal_factory factory,
                            journal_options options, journal_probe* probe);

}  // namespace chorus::persistence
