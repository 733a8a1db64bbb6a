#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <random>
#include <string>

#include "messages/live.hpp"
#include "messages/users.pb.h"
#include "tests/support/accounts.hpp"
#include "tests/support/test_cluster.hpp"
#include "tests/support/ws_client.hpp"

// /v1/ws against real nodes: authentication, topics a user may hold, live delivery from an
// entity on any node, server pings and idle close, and slow readers dropped.

using namespace chorus;
using namespace std::chrono_literals;

namespace {

using test::field;
using test::ws_client;
using headers = std::vector<std::pair<std::string, std::string>>;

double metric(uint16_t metrics_port, const std::string& series) {
  return test::metric_value(test::http_get(metrics_port, "/metrics").body, series);
}

/// The next "followed" event (the notifications that follows also make are skipped).
std::optional<std::string> next_followed(ws_client& ws) {
  for (int i = 0; i < 10; ++i) {
    auto m = ws.next();
    if (!m || test::field(m, "data.type") == "followed") return m;
  }
  return std::nullopt;
}

std::string subscribe(const std::string& topic) {
  return R"({"type":"subscribe","topic":")" + topic + R"("})";
}

test::http_reply follow(uint16_t port, const std::string& whom, const std::string& token) {
  return test::http_call(port, "POST", "/v1/users/" + whom + "/follow", "",
                         {{"Authorization", "Bearer " + token}});
}

}  // namespace

TEST_CASE(
    "WebSocket: a user hears of a new follower live on whichever node it is connected to, may "
    "hold only its own topics, and needs a valid token") {
  test::test_cluster c{2};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto [star, star_token] = test::member(p0, test::unique_name("star"));
  auto [fan, fan_token] = test::member(p1, test::unique_name("fan"));

  // No token, a malformed one, an unknown one: refused before the upgrade.
  CHECK(ws_client{p1, "/v1/ws", ""}.status() == 401);
  CHECK(ws_client{p1, "/v1/ws", "not-a-token"}.status() == 401);
  CHECK(ws_client{p1, "/v1/ws", std::string(43, 'A')}.status() == 401);
  // A plain GET is told to upgrade.
  auto plain = test::http_get(p1, "/v1/ws");
  CHECK(plain.status == 426);
  CHECK(plain.body.find(R"("code":"upgrade_required")") != std::string::npos);

  ws_client star_ws{p1, "/v1/ws", star_token};
  REQUIRE(star_ws.status() == 101);
  auto mine = notifications_topic(star.id());
  star_ws.send(subscribe(mine));
  auto ok = star_ws.next();
  CHECK(field(ok, "type") == "subscribed");
  CHECK(field(ok, "topic") == mine);

  // Someone else's notifications, a topic that does not exist, garbage, an unknown command:
  // each refused with a reason, and the connection stays usable.
  star_ws.send(subscribe(notifications_topic(fan.id())));
  auto refused = star_ws.next();
  CHECK(field(refused, "type") == "error");
  CHECK(field(refused, "code") == "forbidden_topic");
  star_ws.send(subscribe("rooms/lobby"));
  CHECK(field(star_ws.next(), "code") == "unknown_topic");
  star_ws.send("{not json");
  CHECK(field(star_ws.next(), "code") == "malformed_json");
  star_ws.send(R"({"type":"shout"})");
  CHECK(field(star_ws.next(), "code") == "unknown_type");
  star_ws.send(R"({"type":"ping"})");
  CHECK(field(star_ws.next(), "type") == "pong");

  // The fan follows through the other node: the fan's user entity (on either node) publishes,
  // the hubs fan out, and the star's connection on node 2 hears it.
  auto followed = follow(p0, star.id(), fan_token);
  REQUIRE_MESSAGE(followed.status == 204, followed.body);
  auto ev = next_followed(star_ws);
  CHECK(field(ev, "type") == "event");
  CHECK(field(ev, "topic") == mine);
  CHECK(field(ev, "data.type") == "followed");
  CHECK(field(ev, "data.by") == fan.id());
  CHECK(field(ev, "data.username") == fan.username());

  // Following again changes nothing and says nothing: the next event is the next follower's.
  REQUIRE(follow(p0, star.id(), fan_token).status == 204);
  auto [third, third_token] = test::member(p0, test::unique_name("third"));
  REQUIRE(follow(p1, star.id(), third_token).status == 204);
  CHECK(field(next_followed(star_ws), "data.by") == third.id());

  // A browser cannot set headers on a WebSocket: the token may come as ?access_token=.
  ws_client browser{p0, "/v1/ws?access_token=" + fan_token, ""};
  CHECK(browser.status() == 101);
  browser.send(subscribe(notifications_topic(fan.id())));
  CHECK(field(browser.next(), "type") == "subscribed");

  CHECK(metric(c.at(1).metrics_port, "chorus_ws_connections") >= 1);
  CHECK(metric(c.at(0).metrics_port, "chorus_ws_connections") >= 1);
}

TEST_CASE(
    "WebSocket: a client that stops reading is disconnected once its queue is full, while a "
    "client reading the same topic gets every event in order") {
  test::test_cluster c{1};
  c.set_section("chorus.edge", "read-limit=0\nwrite-limit=0\nws-max-queued-bytes=65536\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto port = c.at(0).http_port;
  auto [user, token] = test::member(port, test::unique_name("reader"));
  auto topic = notifications_topic(user.id());

  ws_client slow{port, "/v1/ws", token, 4096};
  REQUIRE(slow.status() == 101);
  slow.send(subscribe(topic));
  REQUIRE(field(slow.next(), "type") == "subscribed");
  ws_client fast{port, "/v1/ws", token};
  REQUIRE(fast.status() == 101);
  fast.send(subscribe(topic));
  REQUIRE(field(fast.next(), "type") == "subscribed");

  // 40 rounds of 10 events of 4 KiB: 1.6 MB in all, far more than the kernel buffers plus the
  // 64 KiB queue of a client that reads nothing; the reading client never has more than one
  // round (40 KB) waiting.
  int seq = 0;
  for (int round = 0; round < 40; ++round) {
    auto r = test::http_call(port, "POST", "/v1/debug/live",
                             R"({"topic":")" + topic + R"(","count":10,"bytes":4096})");
    REQUIRE_MESSAGE(r.status == 202, r.body);
    for (int i = 0; i < 10; ++i, ++seq) {
      auto m = fast.next();
      REQUIRE_MESSAGE(field(m, "type") == "event", "round " << round << ": " << m.value_or(""));
      CHECK(field(m, "data.seq") == std::to_string(i));
    }
  }
  CHECK(test::eventually(10s, [&] {
    return metric(c.at(0).metrics_port, R"(chorus_ws_disconnects_total{reason="slow_reader"})") ==
           1;
  }));
  // The slow client gets what was sent before it was dropped, then the end.
  int got = 0;
  while (field(slow.next(), "type") == "event") ++got;
  CHECK(slow.ended());
  CHECK(got < 400);
  // The reading client is still connected.
  fast.send(R"({"type":"ping"})");
  CHECK(field(fast.next(), "type") == "pong");
}

TEST_CASE(
    "WebSocket: the server pings a quiet connection, a client that answers stays connected, one "
    "that never answers is closed after the idle timeout") {
  test::test_cluster c{1};
  c.set_section("chorus.edge", "read-limit=0\nwrite-limit=0\nws-idle-timeout=1s\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto port = c.at(0).http_port;
  auto [user, token] = test::member(port, test::unique_name("quiet"));

  ws_client silent{port, "/v1/ws", token};  // never reads: never answers a ping
  REQUIRE(silent.status() == 101);
  ws_client lively{port, "/v1/ws", token};
  REQUIRE(lively.status() == 101);
  // Pings come every half timeout (0.5 s) of silence; four of them span twice the timeout.
  CHECK(lively.await_pings(4, 20s));
  lively.send(R"({"type":"ping"})");
  CHECK(field(lively.next(), "type") == "pong");
  CHECK(test::eventually(10s, [&] {
    return metric(c.at(0).metrics_port, R"(chorus_ws_disconnects_total{reason="idle"})") == 1;
  }));
  CHECK(silent.next(5s) == std::nullopt);
  CHECK(silent.ended());
}

TEST_CASE("WebSocket: logging out ends the connections opened with that session") {
  test::test_cluster c{1};
  c.set_section("chorus.edge", "read-limit=0\nwrite-limit=0\nws-session-check=300ms\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto port = c.at(0).http_port;
  auto [user, token] = test::member(port, test::unique_name("leaver"));
  ws_client ws{port, "/v1/ws", token};
  REQUIRE(ws.status() == 101);
  ws.send(subscribe(notifications_topic(user.id())));
  REQUIRE(field(ws.next(), "type") == "subscribed");
  // Still connected across several checks while the session lives.
  ws.send(R"({"type":"ping"})");
  CHECK(field(ws.next(), "type") == "pong");
  auto out =
      test::http_call(port, "POST", "/v1/auth/logout", "", {{"Authorization", "Bearer " + token}});
  REQUIRE_MESSAGE(out.status == 204, out.body);
  CHECK(ws.next(10s) == std::nullopt);
  CHECK(ws.ended());
  CHECK(metric(c.at(0).metrics_port, R"(chorus_ws_disconnects_total{reason="session_ended"})") ==
        1);
}
