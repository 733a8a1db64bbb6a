#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <string>
#include <vector>

#include "messages/errors.hpp"
#include "nodes/placement.hpp"
#include "persistence/reminder_pg.hpp"
#include "tests/support/counters.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace std::chrono_literals;
using test::parse_counter;

namespace {

std::string owner_of(const std::string& id) {
  std::vector<std::string> nodes{"n1", "n2", "n3"};
  return nodes[*rendezvous_owner("counter/" + id, nodes)];
}

double metric(test::test_cluster& c, size_t i, const std::string& series) {
  return test::metric_value(test::http_get(c.at(i).metrics_port, "/metrics").body, series);
}

// Whether the reminder is still stored (pending or leased); nothing when the query failed.
std::optional<bool> pending(test::test_cluster& c, const std::string& id, const std::string& name) {
  persistence::reminder_pg store{c.postgres_dsn()};
  auto found = store.find("counter", id, name);
  if (!found) return std::nullopt;
  return found->has_value();
}

std::string remind_body(int after_ms, int by, const std::string& name) {
  return R"({"after_ms": )" + std::to_string(after_ms) + R"(, "by": )" + std::to_string(by) +
         R"(, "name": ")" + name + R"("})";
}

}  // namespace

TEST_CASE(
    "a reminder fires after its counter was passivated: it re-activates the counter and "
    "increments it exactly once") {
  test::test_cluster c{1};
  c.set_entities_section("idle-timeout=300ms\nsweep-interval=100ms\nreminder-poll=100ms\n");
  c.start_all();
  REQUIRE(test::eventually(20s, [&] { return c.get(0, "/healthz").status == 200; }));
  auto stored = test::http_post(c.at(0).http_port, "/v1/debug/counters/sleeper/remind",
                                remind_body(2000, 5, "wake"));
  auto v = parse_counter(stored);
  if (!v) FAIL("remind refused: " << stored.status << " " << stored.body);
  CHECK(v->value() == 0);
  CHECK(pending(c, "sleeper", "wake") == true);

  const std::string activations = R"(chorus_entity_activations_total{kind="counter"})";
  const std::string idle = R"(chorus_entity_passivations_total{kind="counter",reason="idle"})";
  // Passivated while the reminder waits, before it is due.
  REQUIRE(test::eventually(10s, [&] { return metric(c, 0, idle) >= 1; }));
  CHECK(metric(c, 0, activations) == 1);
  // Nobody asks the counter: the reminder alone activates it again, and is then deleted.
  REQUIRE(test::eventually(15s, [&] { return metric(c, 0, activations) == 2; }));
  REQUIRE(test::eventually(10s, [&] { return pending(c, "sleeper", "wake") == false; }));
  auto after = parse_counter(c.get(0, "/v1/debug/counters/sleeper"));
  REQUIRE(after);
  CHECK(after->value() == 5);
  auto database = c.postgres_dsn().substr(c.postgres_dsn().rfind('/') + 1);
  CHECK(metric(c, 0, R"(chorus_reminders_scheduled_total{database=")" + database + R"("})") == 1);
  CHECK(metric(c, 0, R"(chorus_reminders_fired_total{database=")" + database + R"("})") == 1);
  CHECK(metric(c, 0, R"(chorus_reminders_failed_total{database=")" + database + R"("})") == 0);
}

TEST_CASE(
    "a reminder stored by an entity on a node killed before it is due fires on the new "
    "owner, once") {
  test::test_cluster c{3};
  c.set_entities_section("reminder-poll=100ms\n");
  c.start_all();
  REQUIRE(c.converged(20s));
  std::string id;
  for (int i = 0; id.empty(); ++i)
    if (owner_of("r" + std::to_string(i)) == "n3") id = "r" + std::to_string(i);
  auto stored = test::http_post(c.at(0).http_port, "/v1/debug/counters/" + id + "/remind",
                                remind_body(3000, 7, "failover"));
  auto v = parse_counter(stored);
  if (!v) FAIL("remind refused: " << stored.status << " " << stored.body);
  CHECK(v->node() == "n3");
  CHECK(pending(c, id, "failover") == true);  // stored once acknowledged
  c.at(2).process->signal(SIGKILL);           // long before it is due
  REQUIRE(test::eventually(5s, [&] { return c.sees(0, "n3", "down"); }));

  std::optional<messages::CounterValue> now;
  REQUIRE(test::eventually(40s, [&] {
    now = parse_counter(c.get(0, "/v1/debug/counters/" + id));
    return now && now->value() != 0;
  }));
  CHECK(now->node() != "n3");
  CHECK(now->value() == 7);
  REQUIRE(test::eventually(10s, [&] { return pending(c, id, "failover") == false; }));
  auto after = parse_counter(c.get(1, "/v1/debug/counters/" + id));
  REQUIRE(after);
  CHECK(after->value() == 7);
}

TEST_CASE("the remind route refuses bad bodies with 400 in the one error shape") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(test::eventually(20s, [&] { return c.get(0, "/healthz").status == 200; }));
  auto refused = [&](const std::string& body, const std::string& words) {
    CAPTURE(body);
    auto r = test::http_post(c.at(0).http_port, "/v1/debug/counters/x/remind", body);
    CHECK(r.status == 400);
    CHECK(r.body.find(R"({"error":{"code":"invalid_body")") != std::string::npos);
    CHECK(r.body.find(words) != std::string::npos);
  };
  refused("{not json", "JSON object");
  refused("[1, 2]", "JSON object");
  refused(R"({"after_ms": "100", "by": 1, "name": "a"})", "after_ms must be an integer");
  refused(R"({"after_ms": 1.5, "by": 1, "name": "a"})", "after_ms must be an integer");
  refused(R"({"after_ms": -1, "by": 1, "name": "a"})", "0..86400000");
  refused(R"({"after_ms": 86400001, "by": 1, "name": "a"})", "0..86400000");
  refused(R"({"after_ms": 10, "by": "2", "name": "a"})", "by must be an integer");
  refused(R"({"after_ms": 10, "by": 1})", "name must be");
  refused(R"({"after_ms": 10, "by": 1, "name": ""})", "name must be");
  refused(R"({"after_ms": 10, "by": 1, "name": 5})", "name must be");
  refused(R"({"after_ms": 10, "by": 1, "name": "a b"})", "name must be");
  refused(R"({"after_ms": 10, "by": 1, "name": ")" + std::string(65, 'n') + R"("})",
          "name must be");
  refused(R"({"after_ms": 10, "by": 1, "name": "a", "extra": true})", "unknown field extra");
  refused(R"({"by": 1, "name": "a"})", "after_ms is required");
  auto bad_id = test::http_post(c.at(0).http_port, "/v1/debug/counters/a%20b/remind",
                                remind_body(10, 1, "a"));
  CHECK(bad_id.status == 400);
  auto ok = test::http_post(c.at(0).http_port, "/v1/debug/counters/x/remind",
                            R"({"after_ms": 86400000, "name": "far-future.1"})");
  CHECK(ok.status == 200);
}
