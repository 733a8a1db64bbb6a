// chorus-node: one process of a Chorus cluster.
//
//   chorus-node --config cluster.conf --node n1   run node n1
//   chorus-node --config cluster.conf --check     validate the file and exit
//   chorus-node --config cluster.conf --describe  print the file as shell variables for ./chorus
//
// Exit codes: 0 clean stop (SIGTERM/SIGINT), 2 bad arguments or configuration, 3 a port is
// taken or a listener cannot start.

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include "actors/audio/audio.hpp"
#include "actors/audio/audio_probe.hpp"
#include "actors/audio/library_query.hpp"
#include "actors/audio/play_events.hpp"
#include "actors/deadline_wheel.hpp"
#include "actors/debug/counter_entity.hpp"
#include "actors/social/notifier.hpp"
#include "actors/social/social.hpp"
#include "actors/users/follows_query.hpp"
#include "actors/users/users.hpp"
#include "common/json_log.hpp"
#include "http_edge/actor_bridge.hpp"
#include "http_edge/edge_server.hpp"
#include "http_edge/live_connections.hpp"
#include "http_edge/room_routes.hpp"
#include "http_edge/track_routes.hpp"
#include "http_edge/user_routes.hpp"
#include "messages/audio.pb.h"
#include "messages/errors.hpp"
#include "nodes/cluster_config.hpp"
#include "nodes/entity_probe.hpp"
#include "nodes/entity_registry.hpp"
#include "nodes/live_hub.hpp"
#include "nodes/membership_actor.hpp"
#include "nodes/node_health.hpp"
#include "nodes/node_probe.hpp"
#include "nodes/node_system_config.hpp"
#include "nodes/router.hpp"
#include "nodes/transcode_dispatcher.hpp"
#include "nodes/version.hpp"
#include "persistence/audio_library.hpp"
#include "persistence/blob_store_fs.hpp"
#include "persistence/blob_store_s3.hpp"
#include "persistence/counter_totals_projection.hpp"
#include "persistence/event_feed.hpp"
#include "persistence/follows.hpp"
#include "persistence/journal_actor.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/journal_probe.hpp"
#include "persistence/notify_store.hpp"
#include "persistence/outbox_relay.hpp"
#include "persistence/presence.hpp"
#include "persistence/projection.hpp"
#include "persistence/rate_limiter.hpp"
#include "persistence/redis_cache.hpp"
#include "persistence/redis_client.hpp"
#include "persistence/reminder_actor.hpp"
#include "persistence/reminder_pg.hpp"
#include "persistence/reminder_probe.hpp"
#include "persistence/schema_migrator.hpp"
#include "persistence/social_chat.hpp"

namespace {

struct arguments {
  std::string config = "cluster.conf";
  std::string node;
  bool check = false;
  bool describe = false;
};

const char* usage =
    "usage: chorus-node [--config FILE] (--node NAME | --check | --describe)\n"
    "  --config FILE  cluster description (default: cluster.conf)\n"
    "  --node NAME    run the node called NAME in FILE\n"
    "  --check        validate FILE and exit\n"
    "  --describe     print FILE as shell variables (used by ./chorus)\n"
    "  --version      print the version\n";

bool parse_arguments(int argc, char** argv, arguments& out) {
  std::vector<std::string> args{argv + 1, argv + argc};
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "chorus-node: %s needs a value\n%s", a.c_str(), usage);
        return false;
      }
      dst = args[++i];
      return true;
    };
    if (a == "--config") {
      if (!value(out.config)) return false;
    } else if (a == "--node") {
      if (!value(out.node)) return false;
    } else if (a == "--check") {
      out.check = true;
    } else if (a == "--describe") {
      out.describe = true;
    } else if (a == "--version") {
      std::printf("chorus-node %s\n", chorus::chorus_version);
      std::exit(0);
    } else if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "chorus-node: unknown argument '%s'\n%s", a.c_str(), usage);
      return false;
    }
  }
  if (out.node.empty() && !out.check && !out.describe) {
    std::fprintf(stderr, "chorus-node: --node NAME is required\n%s", usage);
    return false;
  }
  return true;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string{"'\\''"} : std::string(1, c);
  return out + "'";
}

std::string shell_name(const std::string& node) {
  std::string out = node;
  for (auto& c : out)
    if (c == '-') c = '_';
  return out;
}

// The database name of a DSN, for metric labels: the URI's path or key=value's dbname.
std::string database_of(const std::string& dsn) {
  if (dsn.find("://") != std::string::npos) {
    auto slash = dsn.find('/', dsn.find("://") + 3);
    if (slash == std::string::npos) return "default";
    auto db = dsn.substr(slash + 1);
    db = db.substr(0, db.find('?'));
    return db.empty() ? "default" : db;
  }
  auto at = dsn.find("dbname=");
  if (at == std::string::npos) return "default";
  auto db = dsn.substr(at + 7);
  return db.substr(0, db.find(' '));
}

// Databases that ./chorus must create: those of DSNs pointing at the PostgreSQL it starts.
std::set<std::string> local_databases(const chorus::cluster_config& cfg) {
  std::set<std::string> out;
  auto port = ":" + std::to_string(cfg.storage.postgres_port) + "/";
  for (const auto& [domain, dsn] : cfg.storage.dsns) {
    auto at = dsn.find(port);
    auto local = dsn.find("@127.0.0.1" + port) != std::string::npos ||
                 dsn.find("@localhost" + port) != std::string::npos;
    if (!local || at == std::string::npos) continue;
    auto db = dsn.substr(at + port.size());
    db = db.substr(0, db.find('?'));
    if (!db.empty()) out.insert(db);
  }
  return out;
}

void describe(const chorus::cluster_config& cfg) {
  std::printf("CHORUS_CLUSTER=%s\n", shell_quote(cfg.cluster_name).c_str());
  std::printf("CHORUS_DATA_DIR=%s\n", shell_quote(cfg.data_dir).c_str());
  std::printf("CHORUS_PG_PORT=%u\n", cfg.storage.postgres_port);
  std::printf("CHORUS_REDIS_PORT=%u\n", cfg.storage.redis_port);
  std::string dbs;
  for (const auto& db : local_databases(cfg)) dbs += (dbs.empty() ? "" : " ") + db;
  std::printf("CHORUS_PG_DATABASES=%s\n", shell_quote(dbs).c_str());
  std::string names;
  for (const auto& n : cfg.nodes) names += (names.empty() ? "" : " ") + n.name.str();
  std::printf("CHORUS_NODES=%s\n", shell_quote(names).c_str());
  for (const auto& n : cfg.nodes) {
    auto v = "CHORUS_NODE_" + shell_name(n.name.str());
    std::printf("%s_HOST=%s\n", v.c_str(), shell_quote(n.host).c_str());
    std::printf("%s_ACTOR=%u\n%s_HTTP=%u\n%s_WS=%u\n%s_METRICS=%u\n", v.c_str(), n.actor_port,
                v.c_str(), n.http_port, v.c_str(), n.ws_port, v.c_str(), n.metrics_port);
  }
}

int fail(chorus::json_log& log, int code, const std::string& what) {
  std::fprintf(stderr, "chorus-node: %s\n", what.c_str());
  log.error("node", what);
  return code;
}

// A start-up failure after the actor system exists: report and leave at once. Waiting for
// CAF's orderly shutdown here buys nothing and can block on the middleman's own actors.
[[noreturn]] void fail_fast(chorus::json_log& log, int code, const std::string& what) {
  fail(log, code, what);
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace chorus;
  arguments args;
  if (!parse_arguments(argc, argv, args)) return 2;

  node_system_config caf_cfg;
  auto loaded = load_cluster_config(args.config, caf_cfg.caf_options());
  if (!loaded) {
    std::fprintf(stderr, "chorus-node: %s\n", error_detail(loaded.error()).c_str());
    return 2;
  }
  const cluster_config& cfg = *loaded;
  if (args.describe) {
    describe(cfg);
    return 0;
  }
  if (args.check) {
    std::printf("%s: ok (%zu nodes)\n", cfg.path.c_str(), cfg.nodes.size());
    return 0;
  }
  const node_spec* self = cfg.find(node_name{args.node});
  if (self == nullptr) {
    std::string names;
    for (const auto& n : cfg.nodes) names += (names.empty() ? "" : ", ") + n.name.str();
    std::fprintf(stderr, "chorus-node: --node %s: no such node in %s (nodes: %s)\n",
                 args.node.c_str(), cfg.path.c_str(), names.c_str());
    return 2;
  }

  // Hand CAF its own sections ([middleman], [scheduler], ...), already checked above.
  {
    std::ifstream in{cfg.path};
    if (auto err = caf_cfg.parse(caf::actor_system_config::string_list{}, in)) {
      std::fprintf(stderr, "chorus-node: %s: %s\n", cfg.path.c_str(), caf_cfg.render(err).c_str());
      return 2;
    }
  }
  // CAF 0.17 never notices a hung peer without heartbeats; keep them on unless configured.
  if (caf::get_if(&caf_cfg.content, "middleman.heartbeat-interval") == nullptr)
    caf_cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds{500}});
  if (caf::get_if(&caf_cfg.content, "middleman.connection-timeout") == nullptr)
    caf_cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds{2}});

  // Block the signals we wait for before any thread starts, so every thread inherits the mask
  // and only sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  // A peer that resets a connection mid-answer must cost that connection, not the node:
  // sendfile(2) has no MSG_NOSIGNAL, so its EPIPE would otherwise come with a fatal SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  json_log log{self->name.str()};
  std::error_code ec;
  auto log_dir = cfg.data_dir + "/logs";
  std::filesystem::create_directories(log_dir, ec);
  if (ec || !log.open(log_dir + "/" + self->name.str() + ".log"))
    return fail(log, 2, "cannot write the log file under " + log_dir + " (chorus.data-dir)");
  log.info("node", "starting", {{"config", cfg.path}, {"version", chorus_version}});

  // Bind every listener before starting anything, so a taken port fails fast and clearly.
  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<prometheus::Exposer> exposer;
  auto metrics_addr = self->host + ":" + std::to_string(self->metrics_port);
  try {
    exposer = std::make_unique<prometheus::Exposer>(metrics_addr, 1);
  } catch (const std::exception& e) {
    return fail(log, 3,
                "metrics-port " + std::to_string(self->metrics_port) + " on " + self->host +
                    " cannot be bound (in use?): " + e.what());
  }
  node_probe probe{*registry, cfg, *self};
  entity_probe entities{*registry};
  audio::audio_probe audio_metrics{*registry};

  // The entity kinds this node hosts; the domains add theirs here.
  entity_kinds kinds;
  if (cfg.debug_endpoints) kinds.emplace(debug::counter_kind, debug::counter_factory());
  kinds.emplace(users::user_kind, users::user_factory());
  kinds.emplace(audio::track_kind, audio::track_factory());
  kinds.emplace(audio::library_kind, audio::library_factory());
  kinds.emplace(audio::playlist_kind, audio::playlist_factory());
  kinds.emplace(social::room_kind, social::room_factory());
  kinds.emplace(social::notifications_kind, social::notifications_factory());
  kinds.emplace(users::session_kind, users::session_factory());
  kinds.emplace(users::username_kind, users::claim_factory(users::username_kind));
  kinds.emplace(users::email_kind, users::claim_factory(users::email_kind));

  // Request deadlines of the entity runtime (instead of CAF's actor clock): outlives the system.
  deadline_wheel deadlines;
  caf::actor_system system{caf_cfg};

  // Entity nodes bring every database's schema up to date at start, in the background and
  // retrying, so a node starts (and answers 503 for storage-backed requests) while PostgreSQL is
  // still down; it reports ready once the schema is current.
  std::unique_ptr<persistence::schema_migrator> schema;
  if (self->has_role("entity")) {
    std::set<std::string> dsns;
    for (const auto& [domain, dsn] : cfg.storage.dsns) dsns.insert(dsn);
    schema = std::make_unique<persistence::schema_migrator>(
        std::vector<std::string>{dsns.begin(), dsns.end()});
    schema->start([&log](const std::string& dsn, const std::string& what, bool error) {
      if (error)
        log.error("storage", what, {{"database", database_of(dsn)}});
      else
        log.info("storage", what, {{"database", database_of(dsn)}});
    });
  }

  // One journal actor per distinct database; the domains that share one share the actor. Each
  // connects lazily (and, like every other connection, applies what is still pending).
  // The blob store: a shared directory or an S3 bucket (cluster.conf's chorus.storage).
  std::shared_ptr<persistence::blob_store> blobs;
  if (cfg.storage.blob_store == "s3") {
    persistence::blob_store_s3_config sc;
    sc.endpoint = cfg.storage.s3_endpoint;
    sc.region = cfg.storage.s3_region;
    sc.bucket = cfg.storage.s3_bucket;
    sc.key_prefix = cfg.storage.s3_prefix;
    if (const char* k = std::getenv("CHORUS_S3_ACCESS_KEY")) sc.access_key = k;
    if (const char* k = std::getenv("CHORUS_S3_SECRET_KEY")) sc.secret_key = k;
    auto store = persistence::blob_store_s3::open(sc);
    if (!store) fail_fast(log, 2, cfg.path + ": chorus.storage: " + error_detail(store.error()));
    blobs = std::move(*store);
  } else {
    auto store = persistence::blob_store_fs::open(cfg.storage.blob_dir);
    if (!store)
      fail_fast(log, 2, cfg.path + ": chorus.storage.blob-dir: " + error_detail(store.error()));
    blobs = std::move(*store);
  }

  entity_context ctx{self->name.str(), {}, static_cast<int64_t>(cfg.storage.snapshot_every)};
  ctx.deadlines = &deadlines;
  ctx.transcode_timeout = cfg.audio.transcode_timeout;
  ctx.room_message_limit = static_cast<int64_t>(cfg.social.message_limit);
  ctx.room_message_window = cfg.social.message_window;
  audio::media_limits media_limits;
  media_limits.max_duration =
      std::chrono::duration_cast<std::chrono::seconds>(cfg.audio.max_duration);
  // The transcoder reports to tracks through the router, which exists only further down: it
  // reads the handle from this slot, filled before any job can arrive.
  auto router_slot = std::make_shared<envelope_handler>();
  envelope_handler local_transcoder;
  if (self->has_role("transcode")) {
    audio::transcoder_config tc;
    tc.blobs = blobs;
    tc.router = router_slot;
    tc.workers = cfg.audio.transcode_workers;
    tc.work_dir = cfg.data_dir + "/work/" + self->name.str();
    tc.limits = media_limits;
    tc.probe = &audio_metrics;
    local_transcoder = audio::spawn_transcoder(system, std::move(tc));
  }
  // Tracks hand their jobs to the dispatcher, which picks a live transcode node (this one or
  // a peer): an entity node without the transcode role still gets its tracks transcoded.
  auto dispatcher = spawn_transcode_dispatcher(system, self->name.str(), local_transcoder);
  ctx.transcoder = caf::actor_cast<envelope_handler>(dispatcher);
  if (local_transcoder) ctx.services.emplace("transcoder", local_transcoder);
  // Live events: entities publish to this node's hub, which hands them to the WebSocket
  // connections here that subscribed and to every peer's hub (membership keeps it told).
  auto live = std::make_shared<edge::live_connections>();
  auto& from_peers = prometheus::BuildCounter()
                         .Name("chorus_live_peer_events_total")
                         .Help(
                             "Live events this node's hub received from peers (only for topics "
                             "its WebSocket clients hold)")
                         .Register(*registry)
                         .Add({});
  auto hub = spawn_live_hub(system, self->name.str(), live, &from_peers);
  live->set_interest([hub](const std::string& topic, bool on) {
    caf::anon_send(hub, live_interest{"", {topic}, on, false});
  });
  ctx.live = caf::actor_cast<live_hub>(hub);
  std::vector<std::unique_ptr<persistence::journal_probe>> journal_probes;
  std::vector<persistence::journal_actor> journals;
  // Likewise one reminder actor per distinct database: an entity's reminders live next to its
  // events. Each polls its database for due reminders once the router exists (below).
  std::vector<persistence::reminder_actor> reminders;
  std::vector<std::unique_ptr<persistence::reminder_probe>> reminder_probes;
  if (self->has_role("entity")) {
    std::map<std::string, persistence::journal_actor> by_dsn;
    std::map<std::string, persistence::reminder_actor> reminders_by_dsn;
    for (const auto& [domain, dsn] : cfg.storage.dsns) {
      auto& reminder = reminders_by_dsn[dsn];
      if (!reminder) {
        persistence::reminder_options options;
        options.poll_interval = cfg.entities.reminder_poll;
        reminder_probes.push_back(
            std::make_unique<persistence::reminder_probe>(*registry, database_of(dsn)));
        reminder = persistence::spawn_reminders(
            system, [dsn = dsn] { return std::make_unique<persistence::reminder_pg>(dsn); },
            options, &log, reminder_probes.back().get());
        reminders.push_back(reminder);
      }
      ctx.reminders.emplace(domain, reminder);
      auto& journal = by_dsn[dsn];
      if (!journal) {
        journal_probes.push_back(
            std::make_unique<persistence::journal_probe>(*registry, database_of(dsn)));
        persistence::journal_options options;
        options.connections = cfg.storage.journal_connections;
        options.linger = cfg.storage.journal_linger;
        journal = persistence::spawn_journal(
            system, [dsn = dsn] { return std::make_unique<persistence::journal_pg>(dsn); }, options,
            journal_probes.back().get());
        journals.push_back(journal);
      }
      ctx.journals.emplace(domain, journal);
    }
  }

  // One read-through cache of read models per node (Redis; every read is a miss while it is
  // down). Projections invalidate what they change once committed.
  // Each Redis user gets a client of its own (connections are not shared between a blocking
  // XREADGROUP and the rest), all from chorus.storage.redis-url.
  auto redis_for = [&](size_t pool) {
    persistence::redis_client_config rc;
    rc.url = cfg.storage.redis_url;
    rc.pool_size = pool;
    auto client = persistence::redis_client::make(rc);
    if (!client)
      fail_fast(log, 2, cfg.path + ": chorus.storage.redis-url: " + error_detail(client.error()));
    return *client;
  };
  persistence::redis_cache_config cache_cfg;
  cache_cfg.prefix = "chorus:cache:" + cfg.cluster_name + ":";
  auto read_cache = std::make_shared<persistence::redis_cache>(redis_for(2), cache_cfg);
  // Every entity node runs a relay per distinct database; the PostgreSQL advisory lock lets one
  // of them publish at a time, the others are standbys. The demo projection runs where its
  // events exist (debug endpoints on). Each gets its own thread and Redis client: XREADGROUP
  // blocks its connection, and relay failures must not take the cache's connections.
  std::vector<std::unique_ptr<persistence::outbox_relay>> relays;
  std::vector<std::unique_ptr<persistence::projector>> projectors;
  if (self->has_role("entity")) {
    auto relay_redis = redis_for(2);
    std::set<std::string> dsns;
    for (const auto& [domain, dsn] : cfg.storage.dsns) dsns.insert(dsn);
    for (const auto& dsn : dsns) {
      persistence::outbox_relay_config rc;
      rc.dsn = dsn;
      rc.stream = persistence::feed_stream_name(database_of(dsn));
      rc.batch = cfg.storage.relay_batch;
      rc.poll = cfg.storage.relay_poll;
      relays.push_back(std::make_unique<persistence::outbox_relay>(rc, relay_redis));
      relays.back()->start();
    }
    // Each projection runs where its domain's events are.
    auto project_on = [&](const std::string& dsn, persistence::projection p) {
      persistence::projector_config pc;
      pc.dsn = dsn;
      pc.stream = persistence::feed_stream_name(database_of(pc.dsn));
      pc.consumer = self->name.str();
      pc.batch = cfg.storage.relay_batch;
      pc.poll = cfg.storage.relay_poll;
      projectors.push_back(
          std::make_unique<persistence::projector>(pc, std::move(p), redis_for(1)));
      projectors.back()->start();
    };
    auto project = [&](const std::string& domain, persistence::projection p) {
      project_on(cfg.storage.dsns.at(domain), std::move(p));
    };
    // What should notify whom comes from every domain's events, in each database.
    for (const auto& dsn : dsns) project_on(dsn, persistence::notify_triggers_projection());
    project(social::social_domain, persistence::notify_delivery_projection());
    project(users::user_domain, persistence::follows_projection());
    project(audio::audio_domain, persistence::audio_library_projection(read_cache));
    project(social::social_domain, persistence::social_chat_projection());
    if (cfg.debug_endpoints)
      project(debug::counter_domain, persistence::counter_totals_projection());
  }

  registry_limits limits;
  limits.idle_timeout = cfg.entities.idle_timeout;
  limits.max_active = cfg.entities.max_active;
  limits.sweep_interval = cfg.entities.sweep_interval;
  limits.max_queue_age = cfg.entities.max_queue_age;
  auto directory = std::make_shared<entity_directory>(self->name.str());
  auto entity_registry =
      spawn_entity_registry(system, kinds, ctx, limits, entities, log, directory, deadlines);
  auto router = spawn_router(system, *self, entity_registry, directory, deadlines);
  *router_slot = caf::actor_cast<envelope_handler>(router);
  // The edge asks entities through this: straight to a local activation when there is one.
  entity_router gateway{directory, router, entity_registry, &entities, limits.max_queue_age,
                        deadlines};
  // Due reminders go through the router, so they reach each entity's current owner.
  for (const auto& reminder : reminders)
    caf::anon_send(reminder, begin_atom_v, caf::actor_cast<envelope_handler>(router));
  auto membership =
      spawn_membership(system, cfg, *self, entity_registry, router, hub, dispatcher, probe, log);

  // SO_REUSEADDR: a node restarted right after kill -9 must be able to bind through TIME_WAIT;
  // a port that another process listens on still fails.
  auto published =
      system.middleman().publish(membership, self->actor_port, self->host.c_str(), true);
  if (!published)
    fail_fast(log, 3,
              "actor-port " + std::to_string(self->actor_port) + " on " + self->host +
                  " cannot be bound (in use?): " + system.render(published.error()));

  node_health health{system, cfg, membership, entity_registry, schema.get()};
  edge::health_hooks hooks{[&] { return health.status(); }, [&] { return health.readiness(); },
                           [&] { return health.dead_letters(); },
                           [hub](const std::string& topic, const std::string& json) {
                             caf::anon_send(hub, live_event{topic, json});
                           }};
  // One rate limiter (GCRA in Redis, local fallback) for the edge's route classes and the
  // login and registration throttles.
  persistence::rate_limiter_config lc;
  // Clusters sharing one Redis keep their limits apart.
  lc.prefix = "chorus:rl:" + cfg.cluster_name + ":";
  auto limiter = std::make_shared<persistence::rate_limiter>(redis_for(4), lc);

  edge::edge_config edge_cfg;
  edge_cfg.host = self->host;
  edge_cfg.port = self->http_port;
  edge_cfg.debug_endpoints = cfg.debug_endpoints;
  edge_cfg.entity_timeout = cfg.entities.request_timeout;
  edge_cfg.cors_origins = cfg.edge.cors_origins;
  edge_cfg.read_limit = static_cast<int64_t>(cfg.edge.read_limit);
  edge_cfg.write_limit = static_cast<int64_t>(cfg.edge.write_limit);
  edge_cfg.user_read_limit = static_cast<int64_t>(cfg.edge.user_read_limit);
  edge_cfg.user_write_limit = static_cast<int64_t>(cfg.edge.user_write_limit);
  edge_cfg.limit_window = cfg.edge.limit_window;
  edge_cfg.ws_port = self->ws_port;
  edge_cfg.request_timeout = cfg.edge.client_timeout;
  edge_cfg.write_timeout = cfg.edge.client_timeout;
  edge_cfg.ws_idle_timeout = cfg.edge.ws_idle_timeout;
  edge_cfg.ws_max_queued_bytes = cfg.edge.ws_max_queued_bytes;
  edge_cfg.ws_session_check = cfg.edge.ws_session_check;
  edge_cfg.io_threads = edge_io_threads(cfg, *self, std::thread::hardware_concurrency());
  edge_cfg.upload_dir = cfg.data_dir + "/uploads/" + self->name.str();
  {
    std::error_code ec;
    std::filesystem::create_directories(edge_cfg.upload_dir, ec);
    if (ec) fail_fast(log, 2, "cannot create " + edge_cfg.upload_dir + ": " + ec.message());
  }
  edge_cfg.limiter = limiter;
  // Who is online: WebSocket connections mark it, room member lists show it.
  auto presence = std::make_shared<persistence::presence_store>(
      redis_for(2), self->name.str(), "chorus:presence:" + cfg.cluster_name + ":");
  edge_cfg.presence = presence;
  // Notifications: from the pending queues to the users' notification entities, and out
  // over email and the providers' webhooks; on every entity node (rows are leased).
  std::unique_ptr<social::notifier> notifier;
  if (self->has_role("entity")) {
    social::notifier_config nc;
    std::set<std::string> dsns;
    for (const auto& [domain, dsn] : cfg.storage.dsns) dsns.insert(dsn);
    nc.dsns = {dsns.begin(), dsns.end()};
    nc.social_dsn = cfg.storage.dsns.at(social::social_domain);
    nc.user_dsn = cfg.storage.dsns.at(users::user_domain);
    nc.router = caf::actor_cast<envelope_handler>(router);
    nc.presence = presence;
    nc.smtp.url = cfg.notify.smtp_url;
    nc.smtp.from = cfg.notify.smtp_from;
    nc.sms.url = cfg.notify.sms_webhook;
    nc.sms.secret = cfg.notify.webhook_secret;
    nc.push.url = cfg.notify.push_webhook;
    nc.push.secret = cfg.notify.webhook_secret;
    nc.digest_delay = cfg.notify.digest_delay;
    nc.retry_base = cfg.notify.retry_base;
    nc.retry_max = cfg.notify.retry_max;
    nc.max_attempts = static_cast<int>(cfg.notify.max_attempts);
    nc.poll = cfg.storage.relay_poll;
    nc.log = &log;
    notifier = std::make_unique<social::notifier>(system, std::move(nc));
    notifier->start();
  }
  edge::edge_server edge{edge_cfg, std::move(hooks), system, gateway, *registry, log, live};
  {
    edge::user_routes_config uc;
    uc.admins = {cfg.users.admins.begin(), cfg.users.admins.end()};
    uc.artist_approval = cfg.users.artist_approval;
    uc.session_idle = cfg.users.session_idle;
    uc.session_max = cfg.users.session_max;
    auto common = users::load_common_passwords(cfg.users.common_passwords);
    if (!common)
      fail_fast(log, 2,
                cfg.path + ": chorus.users.common-passwords: " + error_detail(common.error()) +
                    " (install Debian's john-data)");
    uc.passwords.common = std::move(*common);
    uc.limiter = limiter;
    uc.follows = users::spawn_follows_query(system, cfg.storage.dsns.at(users::user_domain));
    uc.blobs = blobs;
    edge.add_routes([&](edge::edge_api& api) { edge::add_user_routes(api, std::move(uc)); });
  }
  // Play events go to the event bus (a Redis stream) from a thread of their own.
  auto plays = std::make_unique<audio::play_event_log>(
      redis_for(1), audio::play_stream_name(cfg.cluster_name), &audio_metrics);
  {
    edge::track_routes_config tc;
    tc.blobs = blobs;
    tc.max_upload_bytes = cfg.audio.max_upload_bytes;
    tc.limits = media_limits;
    tc.library = audio::spawn_library_query(system, cfg.storage.dsns.at(audio::audio_domain),
                                            cfg.storage.dsns.at(users::user_domain), read_cache);
    tc.stream_url_key = cfg.audio.stream_url_key;
    tc.stream_url_ttl = std::chrono::duration_cast<std::chrono::seconds>(cfg.audio.stream_url_ttl);
    tc.node = self->name.str();
    tc.plays = [log = plays.get()](const messages::PlayEvent& ev) { log->emit(ev); };
    edge.add_routes([&](edge::edge_api& api) { edge::add_track_routes(api, std::move(tc)); });
  }
  {
    edge::room_routes_config rc;
    rc.query = social::spawn_social_query(system, cfg.storage.dsns.at(social::social_domain));
    rc.presence = presence;
    edge.add_routes([&](edge::edge_api& api) { edge::add_room_routes(api, std::move(rc)); });
    edge.add_routes([](edge::edge_api& api) { edge::add_notification_routes(api); });
  }
  if (auto err = edge.bind()) fail_fast(log, 3, error_detail(err));
  edge.start();
  exposer->RegisterCollectable(registry);
  caf::anon_send(membership, begin_atom_v);

  log.info("node", "started",
           {{"http", "http://" + self->host + ":" + std::to_string(self->http_port)},
            {"metrics", "http://" + metrics_addr + "/metrics"},
            {"actor_port", std::to_string(self->actor_port)}});

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      // Only the node list is live: other settings (this node's own ports, timings, storage)
      // need a restart, and a file that no longer validates is refused whole.
      auto fresh = load_cluster_config(args.config, caf_cfg.caf_options());
      if (!fresh) {
        log.error("node", "reload refused: " + error_detail(fresh.error()));
        continue;
      }
      const auto* me = fresh->find(self->name);
      if (me == nullptr || me->host != self->host || me->actor_port != self->actor_port) {
        log.error("node", "reload refused: this node was removed or its address changed in " +
                              cfg.path + "; stop it instead");
        continue;
      }
      caf::anon_send(membership, reload_atom_v, cluster_view(*fresh));
      log.info("node", "reloading cluster.conf", {{"nodes", std::to_string(fresh->nodes.size())}});
      continue;
    }
    log.info("node", "stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    break;
  }
  edge.stop();
  if (notifier) notifier->stop();
  exposer.reset();
  for (const auto& actor :
       {caf::actor_cast<caf::actor>(membership), caf::actor_cast<caf::actor>(router),
        caf::actor_cast<caf::actor>(entity_registry), caf::actor_cast<caf::actor>(hub),
        caf::actor_cast<caf::actor>(ctx.transcoder), caf::actor_cast<caf::actor>(local_transcoder)})
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  for (const auto& reminder : reminders)
    caf::anon_send_exit(reminder, caf::exit_reason::user_shutdown);
  for (const auto& journal : journals)
    caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
  for (auto& p : projectors) p->stop();
  for (auto& r : relays) r->stop();
  system.middleman().unpublish(membership, self->actor_port);
  log.info("node", "stopped");
  return 0;
}
