#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "messages/node.pb.h"
#include "tests/support/postgres_server.hpp"
#include "tests/support/process.hpp"

namespace chorus::test {

/// The storage DSNs of the cluster.conf that ./chorus started (CHORUS_CONF, else the
/// repository's cluster.conf): tests talk to the real PostgreSQL and Redis.
struct storage_endpoints {
  std::string postgres_dsn;
  std::string redis_url;
  uint16_t postgres_port = 0;
  uint16_t redis_port = 0;
};
storage_endpoints real_storage();

/// The [chorus.storage] section of a generated cluster.conf pointing at real_storage(), with
/// every domain's DSN set to `postgres_dsn` and the Redis URL to `redis_url` when given.
std::string storage_section(const std::string& postgres_dsn = "",
                            const std::string& redis_url = "");

struct http_reply {
  int status = 0;    ///< 0 when the node could not be reached
  std::string body;  ///< with status 0, why there was no answer
  std::string header(const std::string& name) const;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// GET http://127.0.0.1:port/path with short timeouts.
http_reply http_get(uint16_t port, const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& headers = {});

/// POST http://127.0.0.1:port/path with a JSON body.
http_reply http_post(uint16_t port, const std::string& path, const std::string& body = "",
                     const std::vector<std::pair<std::string, std::string>>& headers = {});

/// Any method ("GET", "POST", "PATCH", "PUT", "DELETE") with an optional body of
/// `content_type` (none when empty).
http_reply http_call(uint16_t port, const std::string& method, const std::string& path,
                     const std::string& body = "",
                     const std::vector<std::pair<std::string, std::string>>& headers = {},
                     const std::string& content_type = "application/json");

/// The value of one series (`name{labels}` exactly as exposed) in a Prometheus text page; 0 when
/// absent.
double metric_value(const std::string& exposition, const std::string& series);

/// A cluster of real chorus-node processes on free ports, with its own cluster.conf and data
/// dir in a temp directory, and the real PostgreSQL and Redis. Its journal lives in a database
/// of its own (dropped afterwards) unless `postgres_dsn` names one; `redis_url` replaces the
/// shared Redis. Nodes are killed on destruction.
class test_cluster {
 public:
  explicit test_cluster(size_t nodes, std::string postgres_dsn = "", std::string redis_url = "");

  struct node {
    std::string name;
    uint16_t actor_port, http_port, ws_port, metrics_port;
    std::unique_ptr<child_process> process;
    /// Its roles in cluster.conf, e.g. R"("edge", "entity")"; empty: all three.
    std::string roles = {};
  };

  [[nodiscard]] size_t size() const { return nodes_.size(); }
  [[nodiscard]] const std::string& conf_path() const { return conf_path_; }
  /// The cluster-name of its cluster.conf ("test-<random>").
  [[nodiscard]] const std::string& name() const { return name_; }
  node& at(size_t i) { return nodes_.at(i); }

  /// Adds a node with free ports and rewrites cluster.conf; start it and SIGHUP the others to
  /// reload. Returns its index.
  size_t add_node();

  /// Sets the keys of the `[chorus.entities]` section ("idle-timeout=300ms\n...") and rewrites
  /// cluster.conf; call before starting nodes. Empty (the default): no section, defaults apply.
  void set_entities_section(std::string keys);

  /// Gives node i these roles (e.g. R"("edge", "entity")") and rewrites cluster.conf; call
  /// before starting it.
  void set_roles(size_t i, std::string roles);

  /// Sets the keys of section `name` (e.g. "chorus.users") like set_entities_section. Without
  /// a "chorus.edge" section the cluster runs with per-address rate limits off.
  void set_section(const std::string& name, std::string keys);

  /// The DSN every domain of this cluster uses (its scratch database unless one was given).
  [[nodiscard]] const std::string& postgres_dsn() const { return postgres_dsn_; }

  /// Starts node i (again). Does not wait.
  void start(size_t i);
  void start_all();

  /// The node's /statusz, or nothing when it does not answer.
  std::optional<messages::NodeStatus> status(size_t i);

  /// Whether node i reports `peer` in `state` ("up"/"down").
  bool sees(size_t i, const std::string& peer, const std::string& state);

  /// Waits until every started node runs, sees every other node as up and is ready (/readyz);
  /// false when one has exited.
  bool converged(std::chrono::milliseconds timeout);

  http_reply get(size_t i, const std::string& path) { return http_get(at(i).http_port, path); }

  [[nodiscard]] std::string log_of(size_t i) const;
  [[nodiscard]] std::string output_of(size_t i) const;

 private:
  void write_conf();

  temp_dir dir_;
  std::unique_ptr<scratch_database> database_;
  std::string postgres_dsn_;
  std::string redis_url_;
  std::string conf_path_;
  std::string name_;
  std::map<std::string, std::string> sections_;
  std::vector<node> nodes_;
};

/// Path of the chorus-node binary under test.
std::string node_binary();

}  // namespace chorus::test
