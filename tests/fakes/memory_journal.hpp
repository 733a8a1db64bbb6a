#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "persistence/journal.hpp"
#include "persistence/journal_actor.hpp"

namespace chorus::test {

/// The journal in memory, for unit tests and the no-storage runtime benchmark only: the same
/// expected-version rule as PostgreSQL, no durability. Every journal made by `factory()` shares
/// one store; thread-safe.
class memory_journal_store {
 public:
  persistence::journal_factory factory();

  /// Events of a stream, for assertions.
  std::vector<stored_event> events(const std::string& stream);

  /// When set, every operation fails with postgres_unavailable (a storage outage).
  void set_unavailable(bool down);

  struct stream_data {
    std::vector<stored_event> events;
    int64_t snapshot_version = 0;
    std::string snapshot_type, snapshot_payload;
  };

  std::mutex mtx;
  std::map<std::string, stream_data> streams;
  int64_t next_position = 0;
  bool unavailable = false;
};

}  // namespace chorus::test
