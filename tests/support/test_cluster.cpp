#include "tests/support/test_cluster.hpp"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <google/protobuf/util/json_util.h>
#include <random>

#include <httplib.h>

#include "nodes/cluster_config.hpp"
#include "nodes/node_system_config.hpp"

namespace chorus::test {

std::string node_binary() {
  if (const char* env = std::getenv("CHORUS_NODE_BIN"); env != nullptr && *env != '\0') return env;
  return CHORUS_TEST_NODE_BIN;
}

storage_endpoints real_storage() {
  const char* env = std::getenv("CHORUS_CONF");
  std::string path = env != nullptr && *env != '\0' ? env : CHORUS_TEST_SOURCE_DIR "/cluster.conf";
  node_system_config caf_cfg;
  auto cfg = load_cluster_config(path, caf_cfg.caf_options());
  if (!cfg) throw std::runtime_error("cannot read " + path + " for the storage endpoints");
  return {cfg->storage.dsns.at("user"), cfg->storage.redis_url, cfg->storage.postgres_port,
          cfg->storage.redis_port};
}

std::string storage_section(const std::string& postgres_dsn, const std::string& redis_url) {
  auto s = real_storage();
  if (!postgres_dsn.empty()) s.postgres_dsn = postgres_dsn;
  if (!redis_url.empty()) s.redis_url = redis_url;
  std::ostringstream out;
  out << "[chorus.storage]\n"
      << "postgres-port=" << s.postgres_port << "\nredis-port=" << s.redis_port << "\n";
  for (const auto& domain : storage_domains())
    out << domain << "-dsn=\"" << s.postgres_dsn << "\"\n";
  out << "redis-url=\"" << s.redis_url << "\"\n";
  return out.str();
}

namespace {

http_reply to_reply(const httplib::Result& res) {
  http_reply out;
  if (!res) {
    out.body = "(no answer: " + httplib::to_string(res.error()) + ")";
    return out;
  }
  out.status = res->status;
  out.body = res->body;
  for (const auto& [k, v] : res->headers) out.headers.emplace_back(k, v);
  return out;
}

}  // namespace

http_reply http_post(uint16_t port, const std::string& path, const std::string& body,
                     const std::vector<std::pair<std::string, std::string>>& headers) {
  httplib::Client cli{"127.0.0.1", port};
  cli.set_connection_timeout(1, 0);
  cli.set_read_timeout(10, 0);
  httplib::Headers h;
  for (const auto& [k, v] : headers) h.emplace(k, v);
  return to_reply(cli.Post(path.c_str(), h, body, "application/json"));
}

http_reply http_call(uint16_t port, const std::string& method, const std::string& path,
                     const std::string& body,
                     const std::vector<std::pair<std::string, std::string>>& headers,
                     const std::string& content_type) {
  httplib::Client cli{"127.0.0.1", port};
  cli.set_connection_timeout(1, 0);
  cli.set_read_timeout(10, 0);
  httplib::Request req;
  req.method = method;
  req.path = path;
  for (const auto& [k, v] : headers) req.headers.emplace(k, v);
  if (!content_type.empty()) req.headers.emplace("Content-Type", content_type);
  req.body = body;
  return to_reply(cli.send(req));
}

double metric_value(const std::string& exposition, const std::string& series) {
  auto pos = exposition.find("\n" + series + " ");
  if (pos == std::string::npos) return 0;
  return std::stod(exposition.substr(pos + series.size() + 2));
}

std::string http_reply::header(const std::string& name) const {
  for (const auto& [k, v] : headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
  return {};
}

http_reply http_get(uint16_t port, const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
  httplib::Client cli{"127.0.0.1", port};
  cli.set_connection_timeout(1, 0);
  cli.set_read_timeout(5, 0);
  httplib::Headers h;
  for (const auto& [k, v] : headers) h.emplace(k, v);
  return to_reply(cli.Get(path.c_str(), h));
}

test_cluster::test_cluster(size_t n, std::string postgres_dsn, std::string redis_url)
    : postgres_dsn_(std::move(postgres_dsn)), redis_url_(std::move(redis_url)) {
  if (postgres_dsn_.empty()) {
    database_ = std::make_unique<scratch_database>(real_storage().postgres_port);
    postgres_dsn_ = database_->dsn();
  }
  conf_path_ = dir_.path() + "/cluster.conf";
  // A name of its own: cluster-wide state in the shared Redis (rate limits) is kept per cluster.
  name_ = "test-" + std::to_string(std::random_device{}() % 100000000);
  for (size_t i = 0; i < n; ++i)
    nodes_.push_back(node{"n" + std::to_string(i + 1), free_port(), free_port(), free_port(),
                          free_port(), nullptr});
  write_conf();
}

size_t test_cluster::add_node() {
  nodes_.push_back(node{"n" + std::to_string(nodes_.size() + 1), free_port(), free_port(),
                        free_port(), free_port(), nullptr});
  write_conf();
  return nodes_.size() - 1;
}

void test_cluster::set_entities_section(std::string keys) {
  set_section("chorus.entities", std::move(keys));
}

void test_cluster::set_roles(size_t i, std::string roles) {
  at(i).roles = std::move(roles);
  write_conf();
}

void test_cluster::set_section(const std::string& name, std::string keys) {
  if (keys.empty())
    sections_.erase(name);
  else
    sections_[name] = std::move(keys);
  write_conf();
}

void test_cluster::write_conf() {
  std::ostringstream conf;
  conf << "[chorus]\ncluster-name=\"" << name_
       << "\"\ndata-dir=\"data\"\ndebug-endpoints=true\nnodes=[\n";
  for (const auto& nd : nodes_)
    conf << "  {name=\"" << nd.name << "\", host=\"127.0.0.1\", actor-port=" << nd.actor_port
         << ", http-port=" << nd.http_port << ", ws-port=" << nd.ws_port
         << ", metrics-port=" << nd.metrics_port << ", roles=["
         << (nd.roles.empty() ? R"("edge", "entity", "transcode")" : nd.roles) << "]},\n";
  conf << "]\n[chorus.membership]\ndial-timeout=1s\nretry-min=50ms\nretry-max=500ms\n";
  for (const auto& [name, keys] : sections_) conf << "[" << name << "]\n" << keys;
  // Tests send thousands of requests from one address: per-address rate limits are off unless
  // a test sets [chorus.edge] itself (then cluster.conf's defaults apply to what it omits).
  if (sections_.count("chorus.edge") == 0)
    conf << "[chorus.edge]\nread-limit=0\nwrite-limit=0\nuser-read-limit=0\nuser-write-limit=0\n";
  conf << storage_section(postgres_dsn_, redis_url_)
       << "[middleman]\nheartbeat-interval=200ms\nconnection-timeout=1200ms\n"
       << "[scheduler]\nmax-threads=2\n";
  // Write then rename, so a node reloading never reads half a file.
  write_file(conf_path_ + ".tmp", conf.str());
  std::rename((conf_path_ + ".tmp").c_str(), conf_path_.c_str());
}

void test_cluster::start(size_t i) {
  auto& nd = at(i);
  nd.process.reset();  // reaps a previous incarnation
  nd.process = std::make_unique<child_process>(
      std::vector<std::string>{node_binary(), "--config", conf_path_, "--node", nd.name},
      output_of(i));
}

void test_cluster::start_all() {
  for (size_t i = 0; i < size(); ++i) start(i);
}

std::optional<messages::NodeStatus> test_cluster::status(size_t i) {
  auto reply = get(i, "/statusz");
  if (reply.status != 200) return std::nullopt;
  messages::NodeStatus out;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(reply.body, &out, opts).ok())
    return std::nullopt;
  return out;
}

bool test_cluster::sees(size_t i, const std::string& peer, const std::string& state) {
  auto st = status(i);
  if (!st) return false;
  for (const auto& p : st->peers())
    if (p.name() == peer) return p.state() == state;
  return false;
}

bool test_cluster::converged(std::chrono::milliseconds timeout) {
  return eventually(timeout, [this] {
    for (size_t i = 0; i < size(); ++i) {
      if (!at(i).process) continue;                 // never started
      if (!at(i).process->running()) return false;  // exited: not converged, say so

      auto st = status(i);
      if (!st || st->peers_up() != size() - 1) return false;
      // Ready too: storage answers and the schema is current, so a test that hangs or kills a
      // node next does not catch it holding the migration lock.
      if (get(i, "/readyz").status != 200) return false;
    }
    return true;
  });
}

std::string test_cluster::log_of(size_t i) const {
  return dir_.path() + "/data/logs/" + nodes_.at(i).name + ".log";
}

std::string test_cluster::output_of(size_t i) const {
  return dir_.path() + "/" + nodes_.at(i).name + ".out";
}

}  // namespace chorus::test
