#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/config_option_set.hpp>
#include <caf/expected.hpp>

#include "common/strong_id.hpp"

namespace chorus {

struct node_name_tag {};
/// The name of a node in cluster.conf, e.g. "n1".
using node_name = strong_id<node_name_tag>;

/// One `chorus.nodes` entry of cluster.conf.
struct node_spec {
  node_name name;
  std::string host;
  uint16_t actor_port = 0;    ///< CAF middleman (BASP) port
  uint16_t http_port = 0;     ///< REST edge: /healthz, /readyz, /statusz, /v1/...
  uint16_t ws_port = 0;       ///< a second listener of the same edge (/v1/ws is on both)
  uint16_t metrics_port = 0;  ///< Prometheus exposition
  std::vector<std::string> roles;

  [[nodiscard]] bool has_role(const std::string& role) const;
};

/// `chorus.membership`: how a node dials its peers.
struct membership_spec {
  std::chrono::milliseconds dial_timeout{2000};
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{1000};
};

/// `chorus.storage`: where PostgreSQL and Redis are.
struct storage_spec {
  uint16_t postgres_port = 55432;  ///< the PostgreSQL that ./chorus starts
  uint16_t redis_port = 56379;     ///< the Redis that ./chorus starts
  /// One DSN per domain: user, audio, social, commerce, analytics.
  std::map<std::string, std::string> dsns;
  std::string redis_url;
  /// Connections (and worker threads) of each journal: transactions in flight at once.
  size_t journal_connections = 2;
  /// How long a free journal connection may wait for the writers its last batches answered
  /// (persistence::journal_options::linger); 0 sends each batch as soon as a connection frees.
  std::chrono::microseconds journal_linger{300};
  /// Event-sourced entities store a snapshot every this many events.
  size_t snapshot_every = 100;
  /// Events each database's relay publishes per step, and a projection applies (1..10000).
  size_t relay_batch = 500;
  /// How often a relay (or a standby) looks for new outbox rows when the last step found none.
  std::chrono::milliseconds relay_poll{100};
  /// Where blobs (avatars, uploads, renditions) go: "fs" (a directory every node shares) or
  /// "s3" (credentials from CHORUS_S3_ACCESS_KEY / CHORUS_S3_SECRET_KEY, never the file).
  std::string blob_store = "fs";
  /// fs: the directory, absolute once loaded (default `<data-dir>/blobs`; relative to data-dir).
  std::string blob_dir;
  /// s3: scheme://host[:port], region, bucket, key prefix.
  std::string s3_endpoint;
  std::string s3_region = "us-east-1";
  std::string s3_bucket;
  std::string s3_prefix;
};

/// `chorus.entities`: activation limits of every node's entity registry.
struct entities_spec {
  std::chrono::milliseconds idle_timeout{60000};   ///< passivate after this long idle
  size_t max_active = 1000000;                     ///< least recently used evicted beyond this
  std::chrono::milliseconds sweep_interval{1000};  ///< how often idle entities are looked for
  std::chrono::milliseconds max_queue_age{2000};   ///< refuse work for an entity this far behind
  std::chrono::milliseconds reminder_poll{1000};   ///< how often due reminders are claimed
  /// How long the edge waits for an entity's answer (the envelope's deadline); a request that a
  /// lost owner held is handed to the new owner within it.
  std::chrono::milliseconds request_timeout{5000};
};

/// `chorus.edge`: what the HTTP edge allows.
struct edge_spec {
  /// Origins whose browser pages may call the API with credentials (CORS), exactly as a
  /// browser sends them: scheme://host[:port]. The default is the web app's dev server.
  std::vector<std::string> cors_origins{"http://localhost:5173", "http://127.0.0.1:5173"};
  /// Requests per client address and `limit_window`, cluster-wide: reads (GET) and writes
  /// (every other method). 0 turns the class off. Probes and the API document are never
  /// limited.
  size_t read_limit = 1200;
  size_t write_limit = 300;
  /// The same per signed-in account (counted where it signs in from anywhere); 0 turns off.
  size_t user_read_limit = 1200;
  size_t user_write_limit = 300;
  std::chrono::milliseconds limit_window{std::chrono::minutes{1}};
  /// A client must send a whole request within this, and a keep-alive connection may idle this
  /// long; a response must be taken within it too. Slow clients cost a socket, never a thread.
  std::chrono::milliseconds client_timeout{std::chrono::seconds{10}};
  /// WebSocket: the server pings after half of this without traffic and closes after all of it.
  std::chrono::milliseconds ws_idle_timeout{std::chrono::seconds{60}};
  /// WebSocket: how often the session behind a connection is checked again; a logged-out or
  /// expired session ends the connection.
  std::chrono::milliseconds ws_session_check{std::chrono::seconds{45}};
  /// WebSocket: events waiting for a client that does not read, beyond which it is dropped.
  size_t ws_max_queued_bytes = 1024 * 1024;
  /// Event loops (one thread each) that parse, write and hold the connections; 0: the host's
  /// cores shared among the edge nodes configured on that host, at least 1 (edge_io_threads).
  size_t io_threads = 0;
};

/// `chorus.audio`: uploads and transcoding.
struct audio_spec {
  /// Uploads larger than this are refused while they arrive (413).
  size_t max_upload_bytes = size_t{200} << 20;
  /// Longest accepted audio.
  std::chrono::milliseconds max_duration{std::chrono::hours{3}};
  /// Transcode jobs a `transcode` node runs at once (each encodes its renditions in parallel).
  size_t transcode_workers = 1;
  /// A job not finished after this (times the attempt) is sent again; 3 attempts at most.
  std::chrono::milliseconds transcode_timeout{std::chrono::minutes{10}};
  /// The HMAC-SHA256 key of signed stream URLs (at least 32 characters; the environment's
  /// CHORUS_STREAM_URL_KEY wins over the file). Empty: signed URLs are off.
  std::string stream_url_key;
  /// How long a signed stream URL is valid.
  std::chrono::milliseconds stream_url_ttl{std::chrono::hours{6}};
};

/// `chorus.social`: chat rooms.
struct social_spec {
  /// Messages one member may post in one room within `message-window` (moderators too).
  size_t message_limit = 10;
  std::chrono::milliseconds message_window{10000};
};

/// `chorus.notify`: how notifications leave Chorus.
struct notify_spec {
  /// The SMTP server of emails ("smtp://host:port" or "smtps://..."); empty: no email.
  std::string smtp_url;
  std::string smtp_from = "notifications@chorus.localhost";
  /// The SMS and push providers' webhook URLs (empty: off) and the key their bodies are signed
  /// with (HMAC-SHA256; CHORUS_WEBHOOK_SECRET wins over the file).
  std::string sms_webhook;
  std::string push_webhook;
  std::string webhook_secret;
  /// How long an email of a direct message waits for more (one digest email).
  std::chrono::milliseconds digest_delay{std::chrono::minutes{1}};
  /// Retries: retry-base doubling per attempt up to retry-max; max-attempts in all.
  std::chrono::milliseconds retry_base{1000};
  std::chrono::milliseconds retry_max{std::chrono::minutes{10}};
  size_t max_attempts = 10;
};

/// `chorus.users`: accounts and sessions.
struct users_spec {
  /// Usernames that get the admin role.
  std::vector<std::string> admins;
  /// Whether POST /v1/me/artist waits for an admin's approval.
  bool artist_approval = false;
  /// A session ends after this long without use...
  std::chrono::milliseconds session_idle{std::chrono::hours{24 * 14}};
  /// ...and this long after login regardless.
  std::chrono::milliseconds session_max{std::chrono::hours{24 * 90}};
  /// The list of common passwords refused at registration (one per line).
  std::string common_passwords = "/usr/share/john/password.lst";
};

/// The whole of cluster.conf's `chorus` section, validated. Immutable once loaded; every
/// component receives the part it needs by const reference.
struct cluster_config {
  std::string path;          ///< the file it was read from
  std::string cluster_name;  ///< `chorus.cluster-name`
  std::string data_dir;      ///< absolute; `chorus.data-dir` resolved against the file's folder
  membership_spec membership;
  entities_spec entities;
  storage_spec storage;
  users_spec users;
  audio_spec audio;
  social_spec social;
  notify_spec notify;
  edge_spec edge;
  bool debug_endpoints = false;  ///< `chorus.debug-endpoints`: serve /v1/debug/...
  std::vector<node_spec> nodes;

  /// The node called `name`, or nullptr.
  [[nodiscard]] const node_spec* find(const node_name& name) const;
};

/// The domains that have a DSN in `chorus.storage`.
const std::vector<std::string>& storage_domains();

/// Validates the text of a cluster.conf. `caf_options` are the options of the actor system
/// config (with the middleman loaded): keys in CAF's own sections are checked against them.
/// Errors name the file and the key: `cluster.conf: chorus.nodes[1].http-port: 70000 is out of
/// range 1..65535`.
caf::expected<cluster_config> parse_cluster_config(const std::string& text, const std::string& path,
                                                   const caf::config_option_set& caf_options);

/// The event loops `self`'s edge runs: `edge.io-threads`, or when that is 0, the host's `cores`
/// shared among the nodes with the edge role on `self`'s host, at least 1.
size_t edge_io_threads(const cluster_config& cfg, const node_spec& self, size_t cores);

/// Reads `path` and calls parse_cluster_config.
caf::expected<cluster_config> load_cluster_config(const std::string& path,
                                                  const caf::config_option_set& caf_options);

}  // namespace chorus
