#include <doctest/doctest.h>

#include <string>

#include "messages/errors.hpp"
#include "nodes/cluster_config.hpp"
#include "nodes/node_system_config.hpp"
#include "tests/support/process.hpp"

using namespace chorus;

namespace {

const std::string good = R"([chorus]
cluster-name="demo"
data-dir="state"
nodes=[
  {name="n1", host="127.0.0.1", actor-port=4201, http-port=8080, ws-port=8090, metrics-port=9201, roles=["edge", "entity"]},
  {name="n2", host="10.0.0.2", actor-port=4201, http-port=8080, ws-port=8090, metrics-port=9201, roles=["transcode"]},
]
[chorus.membership]
dial-timeout=3s
retry-min=20ms
retry-max=2s
[chorus.storage]
postgres-port=55432
redis-port=56379
user-dsn="postgresql://chorus@127.0.0.1:55432/users"
audio-dsn="postgresql://chorus@127.0.0.1:55432/audio"
social-dsn="postgresql://chorus@127.0.0.1:55432/social"
commerce-dsn="postgresql://chorus@127.0.0.1:55432/commerce"
analytics-dsn="postgresql://chorus@127.0.0.1:55432/analytics"
redis-url="redis://127.0.0.1:56379/0"
[middleman]
heartbeat-interval=500ms
connection-timeout=2s
)";

caf::expected<cluster_config> parse(const std::string& text) {
  node_system_config caf_cfg;
  return parse_cluster_config(text, "/etc/chorus/test.conf", caf_cfg.caf_options());
}

// Replaces the first occurrence of `from` in the good file.
std::string good_with(const std::string& from, const std::string& to) {
  auto text = good;
  auto pos = text.find(from);
  REQUIRE(pos != std::string::npos);
  return text.replace(pos, from.size(), to);
}

std::string error_of(const std::string& text) {
  auto cfg = parse(text);
  REQUIRE_FALSE(cfg);
  return error_detail(cfg.error());
}

}  // namespace

TEST_CASE("a valid cluster.conf becomes a typed config with every node and DSN") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->cluster_name == "demo");
  CHECK(cfg->data_dir == "/etc/chorus/state");
  REQUIRE(cfg->nodes.size() == 2);
  CHECK(cfg->nodes[0].name.str() == "n1");
  CHECK(cfg->nodes[0].http_port == 8080);
  CHECK(cfg->nodes[0].has_role("entity"));
  CHECK_FALSE(cfg->nodes[1].has_role("entity"));
  CHECK(cfg->nodes[1].host == "10.0.0.2");
  CHECK(cfg->membership.dial_timeout == std::chrono::seconds{3});
  CHECK(cfg->membership.retry_min == std::chrono::milliseconds{20});
  CHECK(cfg->storage.dsns.at("audio") == "postgresql://chorus@127.0.0.1:55432/audio");
  CHECK(cfg->storage.redis_url == "redis://127.0.0.1:56379/0");
  CHECK(cfg->find(node_name{"n2"}) == &cfg->nodes[1]);
  CHECK(cfg->find(node_name{"n9"}) == nullptr);
}

TEST_CASE("the repository's default cluster.conf describes n1, n2, n3 on HTTP ports 8080-8082") {
  node_system_config caf_cfg;
  auto cfg = load_cluster_config(CHORUS_TEST_SOURCE_DIR "/cluster.conf", caf_cfg.caf_options());
  // doctest evaluates a message eagerly; error() of a value is undefined, so test first.
  if (!cfg) FAIL(error_detail(cfg.error()));
  REQUIRE(cfg->nodes.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(cfg->nodes[i].name.str() == "n" + std::to_string(i + 1));
    CHECK(cfg->nodes[i].host == "127.0.0.1");
    CHECK(cfg->nodes[i].http_port == 8080 + i);
  }
}

TEST_CASE("membership timings default when the section is absent") {
  auto text = good;
  auto from = text.find("[chorus.membership]");
  auto to = text.find("[chorus.storage]");
  text.erase(from, to - from);
  auto cfg = parse(text);
  REQUIRE(cfg);
  CHECK(cfg->membership.dial_timeout == std::chrono::seconds{2});
  CHECK(cfg->membership.retry_max == std::chrono::seconds{1});
}

TEST_CASE("an unknown key in a chorus section is refused and named with the file") {
  auto err = error_of(good_with("data-dir=", "data-dirr=\"x\"\ndata-dir="));
  CHECK(err == "/etc/chorus/test.conf: chorus.data-dirr: unknown key");
  CHECK(error_of(good_with("dial-timeout", "dial-timeot")) ==
        "/etc/chorus/test.conf: chorus.membership.dial-timeot: unknown key");
}

TEST_CASE("an unknown key inside a node entry is refused with the entry's index") {
  CHECK(error_of(good_with("roles=[\"transcode\"]", "roles=[\"transcode\"], colour=\"red\"")) ==
        "/etc/chorus/test.conf: chorus.nodes[1].colour: unknown key");
}

TEST_CASE("an unknown or mistyped key in CAF's own sections is refused") {
  CHECK(error_of(good_with("connection-timeout=2s", "connection-timeout=2s\nhartbeat=1")) ==
        "/etc/chorus/test.conf: middleman.hartbeat: unknown key (not a CAF option)");
  auto err = error_of(good_with("heartbeat-interval=500ms", "heartbeat-interval=\"soon\""));
  CHECK(err.find("middleman.heartbeat-interval: expected timespan") != std::string::npos);
}

TEST_CASE("a duplicate node name is refused naming both entries") {
  CHECK(error_of(good_with("name=\"n2\"", "name=\"n1\"")) ==
        "/etc/chorus/test.conf: chorus.nodes[1].name: duplicate node name \"n1\" (also "
        "chorus.nodes[0])");
}

TEST_CASE("ports out of range are refused") {
  CHECK(error_of(good_with("http-port=8080", "http-port=70000")) ==
        "/etc/chorus/test.conf: chorus.nodes[0].http-port: 70000 is out of range 1..65535");
  CHECK(error_of(good_with("actor-port=4201", "actor-port=0")) ==
        "/etc/chorus/test.conf: chorus.nodes[0].actor-port: 0 is out of range 1..65535");
  CHECK(error_of(good_with("redis-port=56379", "redis-port=-5")) ==
        "/etc/chorus/test.conf: chorus.storage.redis-port: -5 is out of range 1..65535");
}

TEST_CASE("one port used twice on the same host is refused") {
  CHECK(error_of(good_with("ws-port=8090", "ws-port=8080")) ==
        "/etc/chorus/test.conf: chorus.nodes[0].ws-port: port 8080 is already used by "
        "chorus.nodes[0].http-port");
  CHECK(error_of(good_with("metrics-port=9201", "metrics-port=55432")) ==
        "/etc/chorus/test.conf: chorus.nodes[0].metrics-port: port 55432 is already used by "
        "chorus.storage.postgres-port");
}

TEST_CASE("wrongly typed values name the expected type") {
  auto err = error_of(good_with("http-port=8080", "http-port=\"8080\""));
  CHECK(err ==
        "/etc/chorus/test.conf: chorus.nodes[0].http-port: expected an integer, got "
        "string \"8080\"");
  err = error_of(good_with("roles=[\"transcode\"]", "roles=\"transcode\""));
  CHECK(err.find("chorus.nodes[1].roles: expected a list") != std::string::npos);
  err = error_of(good_with("dial-timeout=3s", "dial-timeout=3"));
  CHECK(err.find("chorus.membership.dial-timeout: expected a duration") != std::string::npos);
}

TEST_CASE("missing required keys are named") {
  CHECK(error_of(good_with("cluster-name=\"demo\"\n", "")) ==
        "/etc/chorus/test.conf: chorus.cluster-name: missing (required)");
  CHECK(error_of(good_with("host=\"10.0.0.2\", ", "")) ==
        "/etc/chorus/test.conf: chorus.nodes[1].host: missing (required)");
  CHECK(error_of(good_with("audio-dsn=", "audio-dsnx=")) ==
        "/etc/chorus/test.conf: chorus.storage.audio-dsn: missing (required)");
}

TEST_CASE("bad names, roles and orderings are refused") {
  CHECK(error_of(good_with("name=\"n2\"", "name=\"N 2\"")).find("must be 1..32 characters") !=
        std::string::npos);
  CHECK(error_of(good_with("[\"transcode\"]", "[\"dj\"]")).find("unknown role \"dj\"") !=
        std::string::npos);
  CHECK(error_of(good_with("retry-min=20ms", "retry-min=5s")) ==
        "/etc/chorus/test.conf: chorus.membership.retry-min: must not be larger than retry-max");
  CHECK(error_of(good_with("nodes=[", "nodes=[]\nnodez=[")).find("chorus.nodes: must list") !=
        std::string::npos);
}

TEST_CASE("a syntax error reports line and column") {
  auto err = error_of("[chorus]\ncluster-name=\"x\"\nnodes=[{name=\"a\",\n");
  CHECK(err.find("/etc/chorus/test.conf: line 4") == 0);
  CHECK(err.find("syntax error") != std::string::npos);
}

TEST_CASE("a missing file is reported with its path") {
  node_system_config caf_cfg;
  auto cfg = load_cluster_config("/nonexistent/cluster.conf", caf_cfg.caf_options());
  REQUIRE_FALSE(cfg);
  CHECK(error_detail(cfg.error()) == "/nonexistent/cluster.conf: cannot open the file");
}

TEST_CASE("chorus-node exits 2 naming the problem for each kind of bad file") {
  test::temp_dir dir;
  auto conf = dir.path() + "/bad.conf";
  struct bad_case {
    std::string from, to, expected;
  };
  for (const auto& c : std::vector<bad_case>{
           {"data-dir=", "colour=\"red\"\ndata-dir=", "chorus.colour: unknown key"},
           {"name=\"n2\"", "name=\"n1\"", "duplicate node name \"n1\""},
           {"http-port=8080", "http-port=65536",
            "chorus.nodes[0].http-port: 65536 is out of range"},
       }) {
    CAPTURE(c.expected);
    test::write_file(conf, good_with(c.from, c.to));
    auto result = test::run({CHORUS_TEST_NODE_BIN, "--config", conf, "--node", "n1"});
    CHECK(result.exit_code == 2);
    CHECK(result.output.find(conf) != std::string::npos);
    CHECK(result.output.find(c.expected) != std::string::npos);
  }
  auto result = test::run({CHORUS_TEST_NODE_BIN, "--config", conf + ".missing", "--check"});
  CHECK(result.exit_code == 2);
  CHECK(result.output.find("cannot open the file") != std::string::npos);
  test::write_file(conf, good);
  result = test::run({CHORUS_TEST_NODE_BIN, "--config", conf, "--node", "n7"});
  CHECK(result.exit_code == 2);
  CHECK(result.output.find("--node n7: no such node") != std::string::npos);
}

TEST_CASE("the relay settings default, parse, and are refused out of range naming the key") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->storage.relay_batch == 500);
  CHECK(cfg->storage.relay_poll == std::chrono::milliseconds{100});
  auto tuned = parse(good_with("redis-url=", "relay-batch=50\nrelay-poll=20ms\nredis-url="));
  REQUIRE(tuned);
  CHECK(tuned->storage.relay_batch == 50);
  CHECK(tuned->storage.relay_poll == std::chrono::milliseconds{20});
  CHECK(error_of(good_with("redis-url=", "relay-batch=20000\nredis-url=")) ==
        "/etc/chorus/test.conf: chorus.storage.relay-batch: must be 1..10000");
  CHECK(error_of(good_with("redis-url=", "relay-poll=0ms\nredis-url=")) ==
        "/etc/chorus/test.conf: chorus.storage.relay-poll: must be positive");
}

TEST_CASE("journal-linger defaults to 300us, may be 0 (off), and is refused above 10ms") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->storage.journal_linger == std::chrono::microseconds{300});
  auto off = parse(good_with("redis-url=", "journal-linger=0us\nredis-url="));
  REQUIRE(off);
  CHECK(off->storage.journal_linger.count() == 0);
  auto tuned = parse(good_with("redis-url=", "journal-linger=2ms\nredis-url="));
  REQUIRE(tuned);
  CHECK(tuned->storage.journal_linger == std::chrono::microseconds{2000});
  CHECK(error_of(good_with("redis-url=", "journal-linger=20ms\nredis-url=")) ==
        "/etc/chorus/test.conf: chorus.storage.journal-linger: must be 0..10000us");
  CHECK(error_of(good_with("redis-url=", "journal-linger=300\nredis-url="))
            .find("chorus.storage.journal-linger: expected a duration") != std::string::npos);
}

TEST_CASE("reminder-poll defaults to 1s, is read from chorus.entities and must be 1ms..1min") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->entities.reminder_poll == std::chrono::seconds{1});
  cfg = parse(good_with("[chorus.membership]",
                        "[chorus.entities]\nreminder-poll=250ms\n"
                        "[chorus.membership]"));
  REQUIRE(cfg);
  CHECK(cfg->entities.reminder_poll == std::chrono::milliseconds{250});
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.entities]\nreminder-poll=2min\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.entities.reminder-poll: must be at most 1min");
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.entities]\nreminder-poll=0s\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.entities.reminder-poll: must be positive");
}

TEST_CASE("request-timeout defaults to 5s, is read from chorus.entities and must be 100ms..5min") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->entities.request_timeout == std::chrono::seconds{5});
  cfg = parse(good_with("[chorus.membership]",
                        "[chorus.entities]\nrequest-timeout=20s\n[chorus.membership]"));
  REQUIRE(cfg);
  CHECK(cfg->entities.request_timeout == std::chrono::seconds{20});
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.entities]\nrequest-timeout=50ms\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.entities.request-timeout: must be 100ms..5min");
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.entities]\nrequest-timeout=\"soon\"\n[chorus.membership]"))
            .find("chorus.entities.request-timeout") != std::string::npos);
}

TEST_CASE("snapshot-every defaults to 100, is read from chorus.storage and must be a count") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->storage.snapshot_every == 100);
  cfg = parse(good_with("redis-url=", "snapshot-every=25\nredis-url="));
  REQUIRE(cfg);
  CHECK(cfg->storage.snapshot_every == 25);
  CHECK(error_of(good_with("redis-url=", "snapshot-every=\"often\"\nredis-url=")) ==
        "/etc/chorus/test.conf: chorus.storage.snapshot-every: expected an integer, got string "
        "\"often\"");
  CHECK(error_of(good_with("redis-url=", "snapshot-every=0\nredis-url=")) ==
        "/etc/chorus/test.conf: chorus.storage.snapshot-every: 0 must be at least 1");
}

TEST_CASE(
    "cors-origins defaults to the web app's dev server and refuses anything but plain origins") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->edge.cors_origins ==
        std::vector<std::string>{"http://localhost:5173", "http://127.0.0.1:5173"});
  cfg = parse(good_with("[chorus.membership]",
                        "[chorus.edge]\ncors-origins=[\"https://app.example.org\", "
                        "\"http://10.0.0.7:8443\"]\n[chorus.membership]"));
  REQUIRE(cfg);
  CHECK(cfg->edge.cors_origins ==
        std::vector<std::string>{"https://app.example.org", "http://10.0.0.7:8443"});
  for (const std::string bad : {"\"*\"", "\"https://app.example.org/\"", "\"ftp://x.org\"",
                                "\"https://x.org:99999\"", "\"https://\"", "1"}) {
    auto err = error_of(good_with(
        "[chorus.membership]", "[chorus.edge]\ncors-origins=[" + bad + "]\n[chorus.membership]"));
    CHECK_MESSAGE(err.find("chorus.edge.cors-origins") != std::string::npos, bad << ": " << err);
  }
  CHECK(error_of(good_with("[chorus.membership]", "[chorus.edge]\ncors=1\n[chorus.membership]"))
            .find("chorus.edge.cors: unknown key") != std::string::npos);
}

TEST_CASE(
    "read-limit, write-limit and limit-window are read from chorus.edge, 0 turns a class off") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->edge.read_limit == 1200);
  CHECK(cfg->edge.write_limit == 300);
  CHECK(cfg->edge.limit_window == std::chrono::minutes{1});
  CHECK(cfg->edge.user_read_limit == 1200);
  CHECK(cfg->edge.user_write_limit == 300);
  cfg = parse(good_with("[chorus.membership]",
                        "[chorus.edge]\nread-limit=0\nwrite-limit=10\nlimit-window=10s\n"
                        "user-read-limit=7\nuser-write-limit=0\n[chorus.membership]"));
  REQUIRE(cfg);
  CHECK(cfg->edge.user_read_limit == 7);
  CHECK(cfg->edge.user_write_limit == 0);
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.edge]\nuser-write-limit=2000000\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.edge.user-write-limit: must be 0..1000000 (0: no limit)");
  CHECK(cfg->edge.read_limit == 0);
  CHECK(cfg->edge.write_limit == 10);
  CHECK(cfg->edge.limit_window == std::chrono::seconds{10});
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.edge]\nread-limit=-1\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.edge.read-limit: -1 must not be negative");
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.edge]\nlimit-window=2h\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.edge.limit-window: must be 1s..1h");
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.edge]\nwrite-limit=\"lots\"\n[chorus.membership]"))
            .find("chorus.edge.write-limit") != std::string::npos);
}

TEST_CASE(
    "client-timeout, ws-idle-timeout, ws-max-queued-bytes and ws-session-check are read from "
    "chorus.edge and "
    "checked against their ranges") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->edge.client_timeout == std::chrono::seconds{10});
  CHECK(cfg->edge.ws_idle_timeout == std::chrono::seconds{60});
  CHECK(cfg->edge.ws_max_queued_bytes == 1024 * 1024);
  cfg = parse(good_with("[chorus.membership]",
                        "[chorus.edge]\nclient-timeout=2s\nws-idle-timeout=500ms\n"
                        "ws-max-queued-bytes=65536\nws-session-check=5s\n[chorus.membership]"));
  REQUIRE(cfg);
  CHECK(cfg->edge.ws_session_check == std::chrono::seconds{5});
  CHECK(cfg->edge.client_timeout == std::chrono::seconds{2});
  CHECK(cfg->edge.ws_idle_timeout == std::chrono::milliseconds{500});
  CHECK(cfg->edge.ws_max_queued_bytes == 65536);
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.edge]\nclient-timeout=50ms\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.edge.client-timeout: must be 200ms..10min");
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.edge]\nws-idle-timeout=2h\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.edge.ws-idle-timeout: must be 200ms..1h");
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.edge]\nws-max-queued-bytes=100\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.edge.ws-max-queued-bytes: must be 4096..1073741824");
}

TEST_CASE(
    "io-threads: 0 shares the host's cores among its edge nodes, a number is taken as it is, and "
    "more than 64 is refused") {
  // n1 is the only edge node on 127.0.0.1 (n2, elsewhere, transcodes).
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->edge.io_threads == 0);
  CHECK(edge_io_threads(*cfg, cfg->nodes[0], 8) == 8);
  // A second edge node on the same host halves it; a transcode-only one there does not count.
  const std::string n2 =
      R"(host="10.0.0.2", actor-port=4201, http-port=8080, ws-port=8090, metrics-port=9201, roles=["transcode"])";
  auto shared = good;
  shared.replace(
      shared.find(n2), n2.size(),
      R"(host="127.0.0.1", actor-port=4202, http-port=8081, ws-port=8091, metrics-port=9202, roles=["edge"]},
  {name="n3", host="127.0.0.1", actor-port=4203, http-port=8082, ws-port=8092, metrics-port=9203, roles=["transcode"])");
  cfg = parse(shared);
  REQUIRE(cfg);
  REQUIRE(cfg->nodes.size() == 3);
  CHECK(edge_io_threads(*cfg, cfg->nodes[0], 8) == 4);
  CHECK(edge_io_threads(*cfg, cfg->nodes[1], 3) == 1);
  CHECK(edge_io_threads(*cfg, cfg->nodes[0], 1) == 1);
  cfg = parse(good_with("[chorus.membership]", "[chorus.edge]\nio-threads=3\n[chorus.membership]"));
  REQUIRE(cfg);
  CHECK(edge_io_threads(*cfg, cfg->nodes[0], 64) == 3);
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.edge]\nio-threads=65\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.edge.io-threads: must be 0..64 (0: the host's cores over "
        "its edge nodes)");
}

TEST_CASE("chorus.audio: upload size, longest audio, transcode workers and timeout, each checked") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->audio.max_upload_bytes == size_t{200} << 20);
  CHECK(cfg->audio.max_duration == std::chrono::hours{3});
  CHECK(cfg->audio.transcode_workers == 1);
  CHECK(cfg->audio.transcode_timeout == std::chrono::minutes{10});
  cfg = parse(good_with("[chorus.membership]",
                        "[chorus.audio]\nmax-upload-bytes=65536\nmax-duration=1h\n"
                        "transcode-workers=2\ntranscode-timeout=30s\n[chorus.membership]"));
  REQUIRE(cfg);
  CHECK(cfg->audio.max_upload_bytes == 65536);
  CHECK(cfg->audio.max_duration == std::chrono::hours{1});
  CHECK(cfg->audio.transcode_workers == 2);
  CHECK(cfg->audio.transcode_timeout == std::chrono::seconds{30});
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.audio]\ntranscode-workers=0\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.audio.transcode-workers: 0 must be at least 1");
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.audio]\nmax-upload-bytes=10\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.audio.max-upload-bytes: must be 1024..17179869184");
  CHECK(
      error_of(good_with("[chorus.membership]", "[chorus.audio]\ntranscode=1\n[chorus.membership]"))
          .find("chorus.audio.transcode: unknown key") != std::string::npos);
}

TEST_CASE(
    "chorus.social and chorus.notify: defaults, values read, and each refusal names its key") {
  auto cfg = parse(good);
  REQUIRE(cfg);
  CHECK(cfg->social.message_limit == 10);
  CHECK(cfg->social.message_window == std::chrono::seconds{10});
  CHECK(cfg->notify.smtp_url.empty());
  CHECK(cfg->notify.digest_delay == std::chrono::minutes{1});
  cfg = parse(good_with("[chorus.membership]",
                        "[chorus.social]\nmessage-limit=100\nmessage-window=1min\n"
                        "[chorus.notify]\nsmtp-url=\"smtp://127.0.0.1:2525\"\n"
                        "push-webhook=\"http://127.0.0.1:9/push\"\n"
                        "webhook-secret=\"0123456789abcdef\"\ndigest-delay=5s\n"
                        "[chorus.membership]"));
  REQUIRE(cfg);
  CHECK(cfg->social.message_limit == 100);
  CHECK(cfg->social.message_window == std::chrono::minutes{1});
  CHECK(cfg->notify.smtp_url == "smtp://127.0.0.1:2525");
  CHECK(cfg->notify.push_webhook == "http://127.0.0.1:9/push");
  CHECK(cfg->notify.digest_delay == std::chrono::seconds{5});
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.social]\nmessage-limit=0\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.social.message-limit: 0 must be at least 1");
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.notify]\nsmtp-url=\"mail.example.org\"\n[chorus.membership]"))
            .find("chorus.notify.smtp-url: must be smtp://") != std::string::npos);
  CHECK(error_of(good_with("[chorus.membership]",
                           "[chorus.notify]\nsms-webhook=\"http://x/sms\"\n[chorus.membership]")) ==
        "/etc/chorus/test.conf: chorus.notify.webhook-secret: must be at least 16 characters "
        "when a webhook is set");
  CHECK(error_of(good_with("[chorus.membership]", "[chorus.notify]\nsmtp=1\n[chorus.membership]"))
            .find("chorus.notify.smtp: unknown key") != std::string::npos);
}
