#pragma once

// Shared by the outbox relay and projection tests: a scratch database, a Redis of the test's
// own, and helpers to append counter events and read what the stream holds.

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "messages/debug.pb.h"
#include "messages/errors.hpp"
#include "persistence/event_feed.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/outbox_relay.hpp"
#include "persistence/redis_client.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/test_cluster.hpp"

namespace chorus::test {

inline std::string counter_incremented(int by) {
  messages::CounterIncremented ev;
  ev.set_by(by);
  return ev.SerializeAsString();
}

inline new_event increment(int by) {
  return new_event{messages::CounterIncremented::descriptor()->full_name(),
                   counter_incremented(by)};
}

struct feed_fixture {
  feed_fixture() : db(real_storage().postgres_port) {
    auto migrated = persistence::apply_migrations(db.dsn());
    if (!migrated) FAIL("migrations failed: " << error_detail(migrated.error()));
    persistence::redis_client_config cfg;
    cfg.url = redis.url();
    cfg.connect_timeout = std::chrono::milliseconds{200};
    cfg.command_timeout = std::chrono::milliseconds{500};
    cfg.backoff_max = std::chrono::milliseconds{200};
    auto made = persistence::redis_client::make(cfg);
    if (!made) FAIL("cannot make a redis client: " << error_detail(made.error()));
    client = *made;
  }

  [[nodiscard]] std::shared_ptr<persistence::redis_client> new_client() const {
    persistence::redis_client_config cfg = client->config();
    return *persistence::redis_client::make(cfg);
  }

  [[nodiscard]] persistence::outbox_relay_config relay_config() const {
    persistence::outbox_relay_config cfg;
    cfg.dsn = db.dsn();
    cfg.stream = stream;
    cfg.batch = 20;
    cfg.poll = std::chrono::milliseconds{20};
    cfg.backoff_max = std::chrono::milliseconds{200};
    return cfg;
  }

  /// Appends `by` to counter `id`; returns the event's global position.
  int64_t append(const std::string& id, int by) {
    auto stream_name = "counter/" + id;
    auto& v = versions[stream_name];
    auto done = journal.append(stream_name, v, {increment(by)});
    if (!done) FAIL("append failed: " << error_detail(done.error()));
    v = *done;
    auto read = journal.read(stream_name, v - 1, 1);
    REQUIRE(read);
    REQUIRE(read->size() == 1);
    positions.push_back(read->front().global_position);
    return read->front().global_position;
  }

  /// The global positions of the stream's entries, in stream order (duplicates kept).
  [[nodiscard]] std::vector<int64_t> stream_positions() const {
    std::vector<int64_t> out;
    auto reply = client->command({"XRANGE", stream, "-", "+"});
    if (!reply || !reply->is_array()) return out;
    for (const auto& entry : reply->elements) {
      persistence::stream_fields fields;
      const auto& kv = entry.elements.at(1).elements;
      for (size_t i = 0; i + 1 < kv.size(); i += 2) fields.emplace_back(kv[i].str, kv[i + 1].str);
      auto e = persistence::decode_feed_entry(fields);
      REQUIRE(e);
      out.push_back(e->at.position);
    }
    return out;
  }

  /// Rows of a query on the scratch database, as text.
  [[nodiscard]] std::vector<std::vector<std::string>> query(const std::string& sql) const {
    pqxx::connection c{db.dsn()};
    pqxx::read_transaction tx{c};
    std::vector<std::vector<std::string>> out;
    for (const auto& row : tx.exec(sql)) {
      std::vector<std::string> values;
      for (const auto& f : row) values.push_back(f.is_null() ? "" : f.c_str());
      out.push_back(values);
    }
    return out;
  }

  scratch_database db;
  redis_server redis;
  std::shared_ptr<persistence::redis_client> client;
  std::string stream = "chorus:events:test";
  persistence::journal_pg journal{db.dsn()};
  std::map<std::string, int64_t> versions;
  std::vector<int64_t> positions;  ///< of every append, in append order
};

}  // namespace chorus::test
