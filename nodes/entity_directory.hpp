#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "messages/envelope.hpp"

namespace chorus {

/// One activation of an entity as every thread of its node sees it: the actor handle, when it
/// was last asked, and when each request now waiting at it was sent (the bounded mailbox).
/// Created by the node's entity registry when it spawns the activation and published in the
/// entity_directory; callers that reach the activation directly (entity_router's fast path)
/// record their requests here, so the registry's limits hold whoever sends.
class activation_cell {
 public:
  /// `kind` must outlive the cell (the registry's entity_kinds keys do); `now_ns` is the
  /// activation's first use.
  activation_cell(envelope_handler handle, const std::string& kind, int64_t now_ns)
      : handle_(std::move(handle)), kind_(&kind), last_used_(now_ns) {}

  [[nodiscard]] const envelope_handler& handle() const { return handle_; }
  [[nodiscard]] const std::string& kind() const { return *kind_; }

  /// A request is about to be sent at `now_ns` (steady clock). It is recorded, unless the oldest
  /// request still waiting is older than `max_age_ns`: then nothing is recorded and that age is
  /// returned, and the caller refuses the request (overloaded).
  std::optional<int64_t> admit(int64_t now_ns, int64_t max_age_ns);

  /// An answer (or error) for one request came back at `now_ns`. An actor answers in mailbox
  /// order, so it is the oldest's; returns how long that one waited (0 when none was recorded).
  int64_t answered(int64_t now_ns);

  /// When the activation was last asked (steady clock, ns).
  [[nodiscard]] int64_t last_used() const { return last_used_.load(std::memory_order_relaxed); }

  /// Registry-only bookkeeping: when the registry last looked at `last_used` for eviction and
  /// idle passivation, and the activation's place in its LRU list.
  int64_t seen_used = 0;
  std::list<const std::string*>::iterator lru;

 private:
  void lock() const {
    while (lock_.test_and_set(std::memory_order_acquire))
      while (lock_.test(std::memory_order_relaxed)) {
      }
  }
  void unlock() const { lock_.clear(std::memory_order_release); }

  envelope_handler handle_;
  const std::string* kind_;
  std::atomic<int64_t> last_used_{0};
  // Guards sent_/head_: held for a push or a pop, never across a call.
  mutable std::atomic_flag lock_ = ATOMIC_FLAG_INIT;
  uint32_t head_ = 0;
  // Send times of waiting requests, oldest first from head_. A vector, not a deque: an idle
  // activation must not carry the ~600 bytes an empty std::deque allocates.
  std::vector<int64_t> sent_;
};

/// A node's map of where entities are: which node owns a key now (rendezvous over the
/// candidates the router publishes) and which activations run here. Owned by main() through a
/// shared_ptr held by the router, the registry and every entity_router; thread-safe. The
/// registry is the only writer of activations and the router the only writer of candidates;
/// callers on any thread read both.
class entity_directory {
 public:
  explicit entity_directory(std::string self);

  /// The nodes that host entities now (sorted; this node included when it hosts them) and
  /// their entity registries, in the same order (this node's own entry is never used).
  void set_candidates(std::vector<std::string> sorted,
                      std::vector<envelope_handler> registries = {});

  /// Where `key` ("kind/id") lives under the current candidates: this node (`local`), or a
  /// peer whose registry is `registry` (null when the router did not publish it).
  struct owner_ref {
    bool local = false;
    envelope_handler registry;
  };
  /// The owner of `key`, or nothing when no node hosts entities.
  [[nodiscard]] std::optional<owner_ref> owner(std::string_view key) const;

  /// Whether this node owns `key` under the current candidates.
  [[nodiscard]] bool owns(std::string_view key) const {
    auto o = owner(key);
    return o && o->local;
  }

  /// The activation of `key` on this node, or nullptr.
  [[nodiscard]] std::shared_ptr<activation_cell> find(const std::string& key) const;

  /// Publishes an activation; returns the stored key, which stays valid until erase(key).
  const std::string* insert(const std::string& key, std::shared_ptr<activation_cell> cell);
  /// Takes the key by value: callers often pass the stored key itself.
  void erase(std::string key);

 private:
  struct shard {
    mutable std::shared_mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<activation_cell>> cells;
  };
  shard& shard_of(const std::string& key) const;

  std::string self_;
  // The current candidate list, read with one atomic load on every request. Published lists
  // are immutable and kept (the newest `kept_lists`) so that a reader that loaded a pointer
  // just before a change never sees it freed: lists change once per membership event, and a
  // reader holds its pointer for the length of one rendezvous computation. (std::atomic of a
  // shared_ptr costs a lock and two reference-count updates per read.)
  struct candidate_list {
    std::vector<std::string> names;
    std::vector<envelope_handler> registries;
  };
  static constexpr size_t kept_lists = 64;
  std::atomic<const candidate_list*> candidates_;
  std::mutex lists_mutex_;
  std::deque<std::unique_ptr<const candidate_list>> lists_;
  mutable std::array<shard, 64> shards_;
};

}  // namespace chorus
