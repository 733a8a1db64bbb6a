#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errors.hpp"
#include "nodes/node_system_config.hpp"
#include "persistence/reminder_actor.hpp"
#include "persistence/reminder_pg.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;

namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// Stands in for the router: counts the envelopes it gets and fails the first `failures`.
struct fake_router {
  std::atomic<int> received{0};
  std::atomic<int> failures{0};
  std::string last_type, last_payload, last_key;
};

envelope_handler::behavior_type fake_router_behavior(std::shared_ptr<fake_router> seen) {
  return {
      [seen](entity_envelope& env) -> caf::result<std::string> {
        seen->last_type = env.type;
        seen->last_payload = env.payload;
        seen->last_key = env.kind + "/" + env.id;
        auto n = ++seen->received;
        if (n <= seen->failures) return make_error(runtime_errc::overloaded, "not now");
        return std::string{"ok"};
      },
  };
}

struct reminders_env {
  test::scratch_database db{test::real_storage().postgres_port};
  node_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<fake_router> seen = std::make_shared<fake_router>();
  reminder_actor actor;

  explicit reminders_env(reminder_options options) {
    auto dsn = db.dsn();
    actor = spawn_reminders(
        sys, [dsn] { return std::make_unique<reminder_pg>(dsn); }, options, nullptr, nullptr);
    caf::anon_send(actor, begin_atom_v, sys.spawn(fake_router_behavior, seen));
  }
  ~reminders_env() { caf::anon_send_exit(actor, caf::exit_reason::user_shutdown); }

  void remind(const std::string& name, int64_t due_ms) {
    caf::scoped_actor self{sys};
    self->request(actor, 10s, remind_atom_v, std::string{"counter"}, std::string{"c1"}, name,
                  due_ms, std::string{"t.Payload"}, std::string{"bytes"})
        .receive([&](int64_t stored) { CHECK(stored == due_ms); },
                 [&](caf::error& err) { FAIL("remind failed: " << error_detail(err)); });
  }

  std::optional<bool> pending(const std::string& name) {
    reminder_pg store{db.dsn()};
    auto found = store.find("counter", "c1", name);
    if (!found) return std::nullopt;
    return found->has_value();
  }
};

reminder_options fast() {
  reminder_options o;
  o.poll_interval = 50ms;
  o.lease = 300ms;
  o.delivery_timeout = 200ms;
  o.max_attempts = 3;
  return o;
}

}  // namespace

TEST_CASE("a due reminder is delivered through the router as its envelope and then deleted") {
  reminders_env env{fast()};
  env.remind("soon", now_ms() + 1500);  // later than the check below takes
  CHECK(env.pending("soon") == true);
  REQUIRE(test::eventually(5s, [&] { return env.seen->received == 1; }));
  CHECK(env.seen->last_key == "counter/c1");
  CHECK(env.seen->last_type == "t.Payload");
  CHECK(env.seen->last_payload == "bytes");
  REQUIRE(test::eventually(5s, [&] { return env.pending("soon") == false; }));
  CHECK(env.seen->received == 1);
}

TEST_CASE("a reminder whose delivery fails is delivered again after its lease") {
  reminders_env env{fast()};
  env.seen->failures = 2;
  env.remind("retry", now_ms());
  REQUIRE(test::eventually(10s, [&] { return env.pending("retry") == false; }));
  CHECK(env.seen->received == 3);
}

TEST_CASE("a reminder that keeps failing is parked after max_attempts claims") {
  reminders_env env{fast()};
  env.seen->failures = 1000;
  env.remind("poison", now_ms());
  REQUIRE(test::eventually(10s, [&] { return env.pending("poison") == false; }));
  CHECK(env.seen->received == 3);
}

TEST_CASE("a cancelled reminder is never delivered") {
  reminders_env env{fast()};
  env.remind("never", now_ms() + 1500);
  caf::scoped_actor self{env.sys};
  self->request(env.actor, 10s, cancel_atom_v, std::string{"counter"}, std::string{"c1"},
                std::string{"never"})
      .receive([&](bool was) { CHECK(was); },
               [&](caf::error& err) { FAIL("cancel failed: " << error_detail(err)); });
  // Deliveries of due reminders keep working meanwhile: one scheduled after the cancelled one's
  // due time is delivered, and it is the only one.
  env.remind("later", now_ms() + 2000);
  REQUIRE(test::eventually(5s, [&] { return env.pending("later") == false; }));
  CHECK(env.seen->received == 1);
}
