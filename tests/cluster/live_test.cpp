#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <random>
#include <string>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "messages/live.hpp"
#include "messages/users.pb.h"
#include "tests/support/accounts.hpp"
#include "tests/support/test_cluster.hpp"

// /v1/ws against real nodes: authentication, topics a user may hold, live delivery from an
// entity on any node, server pings and idle close, and slow readers dropped.

using namespace chorus;
using namespace std::chrono_literals;

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using headers = std::vector<std::pair<std::string, std::string>>;

/// A JSON object's field as text ("" when absent); numbers as integers.
std::string field(const std::optional<std::string>& json, const std::string& path) {
  if (!json) return "(no message)";
  google::protobuf::Struct s;
  if (!google::protobuf::util::JsonStringToMessage(*json, &s).ok()) return "(not JSON)";
  const google::protobuf::Struct* at = &s;
  std::string rest = path;
  for (;;) {
    auto dot = rest.find('.');
    auto key = rest.substr(0, dot);
    auto it = at->fields().find(key);
    if (it == at->fields().end()) return "";
    if (dot == std::string::npos) {
      const auto& v = it->second;
      if (v.kind_case() == google::protobuf::Value::kStringValue) return v.string_value();
      if (v.kind_case() == google::protobuf::Value::kNumberValue)
        return std::to_string(static_cast<int64_t>(v.number_value()));
      return "(other)";
    }
    if (it->second.kind_case() != google::protobuf::Value::kStructValue) return "";
    at = &it->second.struct_value();
    rest = rest.substr(dot + 1);
  }
}

/// A WebSocket client on its own io_context. Reads are asynchronous and run for a bounded
/// time, so a test never hangs and the client answers the server's pings while it reads (and
/// only then: a client whose next() is never called does not answer).
class ws_client {
 public:
  /// Connects to 127.0.0.1:port and upgrades `target`; with `token`, as a bearer. A small
  /// `rcvbuf` makes the client's kernel buffer little (slow-reader tests).
  ws_client(uint16_t port, const std::string& target, const std::string& token, int rcvbuf = 0) {
    auto& sock = ws_.next_layer();
    sock.open(tcp::v4());
    if (rcvbuf > 0) sock.set_option(net::socket_base::receive_buffer_size(rcvbuf));
    beast::error_code ec;
    sock.connect({net::ip::make_address("127.0.0.1"), port}, ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    ws_.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
      if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    }));
    ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::ping) ++pings_;
    });
    // The asynchronous handshake hands back the server's answer when it declines (Beast 1.74's
    // synchronous one does not).
    websocket::response_type res;
    bool done = false;
    ws_.async_handshake(res, "127.0.0.1:" + std::to_string(port), target,
                        [&](beast::error_code) { done = true; });
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc_.run_for(50ms);
    REQUIRE_MESSAGE(done, "no answer to the upgrade");
    status_ = res.result_int();
  }

  /// 101 once upgraded, else the status the server refused with.
  [[nodiscard]] int status() const { return status_; }
  [[nodiscard]] size_t pings() const { return pings_; }

  void send(const std::string& text) {
    beast::error_code ec;
    ws_.text(true);
    ws_.write(net::buffer(text), ec);
    CHECK_MESSAGE(!ec, ec.message());
  }

  /// The next text message, or nothing when the connection ended or `timeout` passed.
  std::optional<std::string> next(std::chrono::milliseconds timeout = 10s) {
    if (ended_) return std::nullopt;
    if (!reading_) {
      reading_ = true;
      ws_.async_read(buffer_, [this](beast::error_code ec, size_t) {
        reading_ = false;
        if (ec) {
          ended_ = true;
          return;
        }
        message_ = beast::buffers_to_string(buffer_.data());
        buffer_.consume(buffer_.size());
      });
    }
    ioc_.restart();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (reading_ && std::chrono::steady_clock::now() < deadline) ioc_.run_for(50ms);
    if (reading_ || ended_) return std::nullopt;
    return std::move(message_);
  }

  /// Keeps reading (answering pings) until `n` pings arrived; false after `timeout`.
  bool await_pings(size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pings_ < n && std::chrono::steady_clock::now() < deadline) {
      auto m = next(100ms);
      if (m) FAIL("unexpected message while waiting for pings: " << *m);
      if (ended_) return false;
    }
    return pings_ >= n;
  }

  [[nodiscard]] bool ended() const { return ended_; }

 private:
  net::io_context ioc_;
  websocket::stream<tcp::socket> ws_{ioc_};
  beast::flat_buffer buffer_;
  std::string message_;
  bool reading_ = false;
  bool ended_ = false;
  int status_ = 0;
  size_t pings_ = 0;
};

double metric(uint16_t metrics_port, const std::string& series) {
  return test::metric_value(test::http_get(metrics_port, "/metrics").body, series);
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
  auto ev = star_ws.next();
  CHECK(field(ev, "type") == "event");
  CHECK(field(ev, "topic") == mine);
  CHECK(field(ev, "data.type") == "followed");
  CHECK(field(ev, "data.by") == fan.id());
  CHECK(field(ev, "data.username") == fan.username());

  // Following again changes nothing and says nothing: the next event is the next follower's.
  REQUIRE(follow(p0, star.id(), fan_token).status == 204);
  auto [third, third_token] = test::member(p0, test::unique_name("third"));
  REQUIRE(follow(p1, star.id(), third_token).status == 204);
  CHECK(field(star_ws.next(), "data.by") == third.id());

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
