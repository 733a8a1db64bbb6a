#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/process.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace std::chrono_literals;

namespace {

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

std::string diagnostics(test::test_cluster& c) {
  std::string out;
  for (size_t i = 0; i < c.size(); ++i)
    out += "---- " + c.at(i).name + " ----\n" + test::read_file(c.output_of(i)) +
           test::read_file(c.log_of(i));
  return out;
}

// Holds a listening socket on `port` for the lifetime of the object.
struct port_squatter {
  int fd = -1;
  explicit port_squatter(uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(fd, 1) == 0);
  }
  ~port_squatter() { ::close(fd); }
};

}  // namespace

TEST_CASE("three nodes started as separate processes each report the other two as peers") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE_MESSAGE(c.converged(20s), diagnostics(c));
  for (size_t i = 0; i < 3; ++i) {
    auto st = c.status(i);
    REQUIRE(st);
    CHECK(st->node() == c.at(i).name);
    CHECK(st->cluster() == c.name());
    CHECK(st->peers_up() == 2);
    CHECK(st->peers_size() == 2);
    CHECK(st->pid() == static_cast<uint32_t>(c.at(i).process->pid()));
    CHECK(c.get(i, "/healthz").status == 200);
    auto ready = c.get(i, "/readyz");
    CHECK_MESSAGE(ready.status == 200, ready.body);
    CHECK(has(ready.body, "\"ready\":true"));
  }
}

TEST_CASE("a node killed with SIGKILL is reported down by the others within 5 s, and returns") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE_MESSAGE(c.converged(20s), diagnostics(c));

  auto killed_at = std::chrono::steady_clock::now();
  c.at(0).process->signal(SIGKILL);
  CHECK(test::eventually(5s, [&] { return c.sees(1, "n1", "down") && c.sees(2, "n1", "down"); }));
  auto noticed = std::chrono::steady_clock::now() - killed_at;
  MESSAGE("kill -9 noticed after " << std::chrono::duration<double>(noticed).count() << " s");

  // Readiness names what is missing while the peer is gone.
  auto ready = c.get(1, "/readyz");
  CHECK(ready.status == 503);
  CHECK(has(ready.body, "peer n1"));
  CHECK(ready.header("Retry-After") == "1");

  // Restarted on the same ports right away (TIME_WAIT must not block the actor port).
  c.start(0);
  CHECK_MESSAGE(c.converged(20s), diagnostics(c));
}

TEST_CASE("a hung node (SIGSTOP) leaves the others' view within 2 s and returns on SIGCONT") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE_MESSAGE(c.converged(20s), diagnostics(c));
  c.at(2).process->signal(SIGSTOP);
  auto stopped_at = std::chrono::steady_clock::now();
  CHECK(test::eventually(2s, [&] { return c.sees(0, "n3", "down") && c.sees(1, "n3", "down"); }));
  MESSAGE("SIGSTOP noticed after "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count()
          << " s");
  c.at(2).process->signal(SIGCONT);
  CHECK_MESSAGE(c.converged(15s), diagnostics(c));
}

TEST_CASE("SIGTERM stops a node cleanly with exit code 0 and a last log line") {
  test::test_cluster c{2};
  c.start_all();
  REQUIRE_MESSAGE(c.converged(20s), diagnostics(c));
  c.at(1).process->signal(SIGTERM);
  auto code = c.at(1).process->wait_exit(15s);
  REQUIRE(code);
  CHECK(*code == 0);
  auto log = test::read_file(c.log_of(1));
  CHECK(has(log, R"("msg":"stopping","signal":"SIGTERM")"));
  CHECK(has(log, R"("msg":"stopped")"));
  CHECK(test::eventually(5s, [&] { return c.sees(0, "n2", "down"); }));
}

TEST_CASE("a node whose ports are taken exits non-zero naming the port") {
  test::test_cluster c{1};
  const auto& n = c.at(0);
  for (const auto& [key, port] :
       std::vector<std::pair<std::string, uint16_t>>{{"http-port", n.http_port},
                                                     {"ws-port", n.ws_port},
                                                     {"actor-port", n.actor_port},
                                                     {"metrics-port", n.metrics_port}}) {
    CAPTURE(key);
    port_squatter squat{port};
    c.start(0);
    auto code = c.at(0).process->wait_exit(15s);
    REQUIRE(code);
    CHECK(*code == 3);
    CHECK(has(test::read_file(c.output_of(0)),
              key + " " + std::to_string(port) + " on 127.0.0.1 cannot be bound"));
  }
}

TEST_CASE("every node's metrics port serves text that promtool accepts") {
  test::test_cluster c{2};
  c.start_all();
  REQUIRE_MESSAGE(c.converged(20s), diagnostics(c));
  // Some traffic so that the HTTP families have samples.
  CHECK(c.get(0, "/healthz").status == 200);
  CHECK(c.get(0, "/nope").status == 404);
  for (size_t i = 0; i < c.size(); ++i) {
    auto metrics = test::http_get(c.at(i).metrics_port, "/metrics");
    REQUIRE(metrics.status == 200);
    CHECK(has(metrics.body, "chorus_peer_up{peer=\"n" + std::to_string(2 - i) + "\"} 1"));
    CHECK(has(metrics.body, "chorus_node_info{"));
    test::temp_dir dir;
    test::write_file(dir.path() + "/metrics.txt", metrics.body);
    auto check =
        test::run({"/bin/sh", "-c", "promtool check metrics < " + dir.path() + "/metrics.txt"});
    CHECK_MESSAGE(check.exit_code == 0, check.output);
  }
  auto metrics = test::http_get(c.at(0).metrics_port, "/metrics");
  CHECK(has(metrics.body,
            R"(chorus_http_requests_total{method="GET",route="/healthz",status="200"} 1)"));
  CHECK(has(metrics.body,
            R"(chorus_http_requests_total{method="GET",route="unmatched",status="404"} 1)"));
}

TEST_CASE("every answer carries a request id, echoed when the client sends a sane one") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(test::eventually(20s, [&] { return c.get(0, "/healthz").status == 200; }));
  auto generated = c.get(0, "/healthz").header("X-Request-Id");
  CHECK(generated.size() == 32);
  auto echoed = test::http_get(c.at(0).http_port, "/healthz", {{"X-Request-Id", "abc-123"}});
  CHECK(echoed.header("X-Request-Id") == "abc-123");
  auto hostile =
      test::http_get(c.at(0).http_port, "/healthz", {{"X-Request-Id", std::string(500, 'x')}});
  CHECK(hostile.header("X-Request-Id").size() == 32);
}

TEST_CASE("an unknown route answers 404 in the one error shape") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(test::eventually(20s, [&] { return c.get(0, "/healthz").status == 200; }));
  auto reply = c.get(0, "/v1/nothing-here");
  CHECK(reply.status == 404);
  CHECK(has(
      reply.body,
      R"({"error":{"code":"not_found","message":"GET /v1/nothing-here: no such route","request_id":")"));
}

TEST_CASE("a burst of 128 clients connecting at once is accepted: none waits for a SYN retry") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(test::eventually(20s, [&] { return c.get(0, "/healthz").status == 200; }));
  // http_get gives up connecting after 1 s, the first SYN retransmit: a dropped SYN shows.
  std::vector<int> statuses(128);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < statuses.size(); ++i)
    clients.emplace_back([&, i] { statuses[i] = c.get(0, "/healthz").status; });
  for (auto& t : clients) t.join();
  CHECK(std::count(statuses.begin(), statuses.end(), 200) == 128);
}

TEST_CASE(
    "CORS: a preflight from an allowed origin gets that origin with credentials, one from "
    "elsewhere is refused, and answers name the origin only when it is allowed") {
  test::test_cluster c{1};
  c.set_section("chorus.edge", "cors-origins=[\"http://localhost:5173\"]");
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  const std::string app = "http://localhost:5173", evil = "https://evil.example";
  auto preflight = [&](const std::string& origin) {
    return test::http_call(port, "OPTIONS", "/v1/me", "",
                           {{"Origin", origin},
                            {"Access-Control-Request-Method", "PATCH"},
                            {"Access-Control-Request-Headers", "authorization, content-type"}},
                           "");
  };
  auto ok = preflight(app);
  CHECK(ok.status == 204);
  CHECK(ok.header("Access-Control-Allow-Origin") == app);
  CHECK(ok.header("Access-Control-Allow-Credentials") == "true");
  CHECK(ok.header("Access-Control-Allow-Methods").find("PATCH") != std::string::npos);
  CHECK(ok.header("Access-Control-Allow-Headers").find("Authorization") != std::string::npos);
  CHECK(ok.header("Access-Control-Allow-Headers").find("Content-Type") != std::string::npos);
  CHECK(ok.header("Vary").find("Origin") != std::string::npos);
  CHECK(!ok.header("Access-Control-Max-Age").empty());

  auto refused = preflight(evil);
  CHECK(refused.status == 403);
  CHECK(refused.body.find(R"("code":"cors_origin_refused")") != std::string::npos);
  CHECK(refused.header("Access-Control-Allow-Origin").empty());

  // Actual requests, a success and an error: the origin comes back only when allowed.
  for (const std::string path : {"/healthz", "/v1/me"}) {
    auto from_app = test::http_get(port, path, {{"Origin", app}});
    CHECK(from_app.header("Access-Control-Allow-Origin") == app);
    CHECK(from_app.header("Access-Control-Allow-Credentials") == "true");
    CHECK(from_app.header("Access-Control-Expose-Headers").find("X-Request-Id") !=
          std::string::npos);
    CHECK(from_app.header("Vary").find("Origin") != std::string::npos);
    auto from_evil = test::http_get(port, path, {{"Origin", evil}});
    CHECK(from_evil.header("Access-Control-Allow-Origin").empty());
    CHECK(from_evil.header("Vary").find("Origin") != std::string::npos);
  }
  // An origin that differs only by its port is another origin.
  auto other_port = test::http_get(port, "/healthz", {{"Origin", "http://localhost:5174"}});
  CHECK(other_port.header("Access-Control-Allow-Origin").empty());
}

TEST_CASE(
    "rate limits per address and route class: every limited answer carries the RateLimit "
    "headers, the request past the limit gets 429 with Retry-After, probes are never limited") {
  test::test_cluster c{2};
  c.set_section("chorus.edge", "read-limit=5\nwrite-limit=3\nlimit-window=1min\n");
  c.start_all();
  REQUIRE(c.converged(20s));
  auto id = std::string(32, 'a');
  // Reads, alternating between the two nodes: the limit is cluster-wide.
  for (int i = 0; i < 5; ++i) {
    auto r = c.get(static_cast<size_t>(i % 2), "/v1/users/" + id);
    CHECK(r.status == 404);
    CHECK(r.header("RateLimit-Policy") == R"("read";q=5;w=60)");
    CHECK(r.header("RateLimit").rfind("\"read\";r=" + std::to_string(4 - i) + ";t=", 0) == 0);
    CHECK(r.header("X-RateLimit-Limit") == "5");
    CHECK(r.header("X-RateLimit-Remaining") == std::to_string(4 - i));
  }
  auto over = c.get(1, "/v1/users/" + id);
  CHECK(over.status == 429);
  CHECK(over.body.find(R"("code":"rate_limited")") != std::string::npos);
  CHECK(std::stoi(over.header("Retry-After")) >= 1);
  CHECK(std::stoi(over.header("Retry-After")) <= 12);  // one emission interval: 60 s / 5
  CHECK(over.header("X-RateLimit-Remaining") == "0");
  // Writes are a class of their own: still allowed after the reads ran out.
  for (int i = 0; i < 3; ++i) {
    auto w = test::http_post(c.at(0).http_port, "/v1/auth/logout");
    CHECK(w.status == 401);
    CHECK(w.header("RateLimit-Policy") == R"("write";q=3;w=60)");
  }
  CHECK(test::http_post(c.at(0).http_port, "/v1/auth/logout").status == 429);
  // Probes and the API document stay reachable and carry no policy.
  for (int i = 0; i < 10; ++i) {
    auto h = c.get(0, "/healthz");
    CHECK(h.status == 200);
    CHECK(h.header("RateLimit-Policy").empty());
  }
  CHECK(c.get(0, "/v1/openapi.json").status == 200);
  auto metrics = test::http_get(c.at(1).metrics_port, "/metrics").body;
  CHECK(metrics.find(R"(status="429")") != std::string::npos);
}
