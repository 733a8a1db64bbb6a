// ./chorus bench persistence — the journal next to pgbench, in one run.
//
//   appends: 64 concurrent writers (like 64 entities, each awaiting its commit before the next
//     append) through the journal actor with group commit, vs pgbench with 64 clients running
//     the same single-row INSERT (same columns and payload size) against the same server.
//     Alternating rounds; medians of appends/s and latency, and the ratio ours/pgbench.
//   restore: loading a stream of 10,000 events, without a snapshot and from a snapshot.
//
//   feed: the outbox relay publishing the backlog the appends left, next to the journal's rate.
//
// Usage: persistence_bench DSN PGBENCH-CONN-ARGS PGBENCH [rounds] [seconds] [REDIS-URL].
// Not a test: asserts nothing.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/deadline_wheel.hpp"
#include "actors/event_sourced.hpp"
#include "nodes/node_system_config.hpp"
#include "persistence/journal_actor.hpp"
#include "persistence/journal_pg.hpp"
#include "persistence/outbox_relay.hpp"
#include "persistence/redis_client.hpp"

using namespace chorus;
using namespace chorus::persistence;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int writers = 64;
const std::string payload(64, 'x');  // a small event, like a counter's

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct round_result {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// 64 writers, each appending one event at a time to its own stream for `seconds`.
round_result run_ours(const std::string& dsn, int seconds, const std::string& run_id) {
  node_system_config cfg;
  deadline_wheel deadlines;  // as in a node: entities' journal deadlines (event_sourced.hpp)
  auto* wheel = &deadlines;
  caf::actor_system sys{cfg};
  journal_options options;  // the defaults of cluster.conf unless BENCH_JOURNAL_CONNECTIONS
  if (const char* env = std::getenv("BENCH_JOURNAL_CONNECTIONS"))
    options.connections = std::atoi(env);
  if (const char* env = std::getenv("BENCH_JOURNAL_LINGER_US"))
    options.linger = std::chrono::microseconds{std::atoi(env)};
  auto journal = spawn_journal(
      sys, [dsn] { return std::make_unique<journal_pg>(dsn); }, options, nullptr);
  auto latencies = std::make_shared<std::vector<std::vector<double>>>(writers);
  auto deadline = clock_type::now() + std::chrono::seconds{seconds};
  std::atomic<int> finished{0};
  auto start = clock_type::now();
  for (int w = 0; w < writers; ++w) {
    sys.spawn([=, &finished](caf::event_based_actor* self) {
      auto stream = "bench-" + run_id + "-" + std::to_string(w);
      auto version = std::make_shared<int64_t>(0);
      auto step = std::make_shared<std::function<void()>>();
      *step = [=, &finished] {
        if (clock_type::now() >= deadline) {
          ++finished;
          self->quit();
          return;
        }
        auto sent = clock_type::now();
        request_within<int64_t>(self, *wheel, journal, journal_timeout, append_atom_v, stream,
                                *version, std::vector<new_event>{{"bench.Event", payload, "{}"}})
            .then(
                [=](int64_t v) {
                  *version = v;
                  (*latencies)[w].push_back(
                      std::chrono::duration<double, std::milli>(clock_type::now() - sent).count());
                  (*step)();
                },
                [=, &finished](caf::error& err) {
                  std::fprintf(stderr, "append failed: %s\n", to_string(err).c_str());
                  ++finished;
                  self->quit();
                });
      };
      (*step)();
    });
  }
  while (finished < writers) std::this_thread::sleep_for(std::chrono::milliseconds{20});
  auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  std::vector<double> all;
  for (auto& l : *latencies) all.insert(all.end(), l.begin(), l.end());
  caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
  round_result out;
  out.per_second = static_cast<double>(all.size()) / elapsed;
  out.p50_ms = percentile(all, 0.50);
  out.p99_ms = percentile(all, 0.99);
  return out;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

double number_after(const std::string& text, const std::string& label) {
  auto at = text.find(label);
  if (at == std::string::npos) return 0;
  return std::atof(text.c_str() + at + label.size());
}

round_result run_pgbench(const std::string& pgbench, const std::string& conn, int seconds,
                         const std::string& script) {
  auto out = run_command(pgbench + " " + conn + " -n -c " + std::to_string(writers) + " -j 2 -T " +
                         std::to_string(seconds) + " -f " + script + " 2>&1");
  round_result r;
  r.per_second = number_after(out, "tps = ");
  r.p50_ms = number_after(out, "latency average = ");  // pgbench reports the mean only
  if (r.per_second == 0) std::fprintf(stderr, "pgbench failed:\n%s\n", out.c_str());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: persistence_bench DSN PGBENCH-CONN-ARGS PGBENCH [rounds] [s] [REDIS]\n");
    return 2;
  }
  std::string dsn = argv[1], conn = argv[2], pgbench = argv[3];
  int rounds = argc > 4 ? std::atoi(argv[4]) : 3;
  int seconds = argc > 5 ? std::atoi(argv[5]) : 5;
  auto run_id = std::to_string(std::random_device{}());

  // The peer's table: the events table's columns, no journal logic.
  run_command("psql " + conn +
              " -qc \"CREATE TABLE IF NOT EXISTS bench_inserts (id bigserial PRIMARY KEY, "
              "stream text NOT NULL, version bigint NOT NULL, type text NOT NULL, payload bytea "
              "NOT NULL, metadata jsonb NOT NULL DEFAULT '{}', recorded_at timestamptz NOT NULL "
              "DEFAULT now())\" 2>&1");
  auto script = "/tmp/chorus-pgbench-" + run_id + ".sql";
  {
    std::ofstream f{script};
    f << "INSERT INTO bench_inserts (stream, version, type, payload) VALUES ('pgbench-' || "
         ":client_id, 1, 'bench.Event', convert_to(repeat('x', 64), 'UTF8'));\n";
  }
  {
    // Schema first (the journal migrates on its first connection).
    journal_pg j{dsn};
    if (auto v = j.append("bench-" + run_id + "-warmup", 0, {{"bench.Event", payload, "{}"}}); !v) {
      std::fprintf(stderr, "journal unavailable: %s\n", to_string(v.error()).c_str());
      return 1;
    }
  }

  std::printf("appends: %d writers, %d rounds x %d s, alternating\n", writers, rounds, seconds);
  std::vector<double> ours_rate, ours_p50, ours_p99, peer_rate, peer_mean;
  for (int r = 0; r < rounds; ++r) {
    auto o = run_ours(dsn, seconds, run_id + "-" + std::to_string(r));
    auto p = run_pgbench(pgbench, conn, seconds, script);
    std::printf(
        "  round %d: journal %.0f appends/s (p50 %.2f ms, p99 %.2f ms) | pgbench %.0f "
        "inserts/s (mean %.2f ms)\n",
        r + 1, o.per_second, o.p50_ms, o.p99_ms, p.per_second, p.p50_ms);
    ours_rate.push_back(o.per_second);
    ours_p50.push_back(o.p50_ms);
    ours_p99.push_back(o.p99_ms);
    peer_rate.push_back(p.per_second);
    peer_mean.push_back(p.p50_ms);
  }
  std::remove(script.c_str());
  auto ours = median(ours_rate), peer = median(peer_rate);
  std::printf("\n  %-40s %12s %12s %8s\n", "", "journal", "pgbench", "ratio");
  std::printf("  %-40s %12.0f %12.0f %8.2f\n", "median appends (inserts) per second", ours, peer,
              peer > 0 ? ours / peer : 0.0);
  std::printf("  %-40s %12.2f %12.2f\n", "median latency ms (journal p50 | pgbench mean)",
              median(ours_p50), median(peer_mean));
  std::printf("  %-40s %12.2f %12s\n", "median p99 append latency ms", median(ours_p99), "-");

  // Restore: a stream of 10,000 events, loaded without and with a snapshot.
  journal_pg j{dsn};
  auto stream = "bench-restore-" + run_id;
  for (int64_t v = 0; v < 10000; v += 100) {
    std::vector<new_event> batch(100, new_event{"bench.Event", payload, "{}"});
    if (!j.append(stream, v, batch)) return 1;
  }
  std::vector<double> full, snap;
  for (int r = 0; r < 5; ++r) {
    auto t0 = clock_type::now();
    auto l = j.load(stream, 0);
    full.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    if (!l || l->events.size() != 10000) return 1;
  }
  if (j.save_snapshot(stream, 10000, "bench.Snapshot", std::string(1024, 's'))) return 1;
  for (int r = 0; r < 5; ++r) {
    auto t0 = clock_type::now();
    auto l = j.load(stream, 0);
    snap.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    if (!l || l->snapshot_version != 10000) return 1;
  }
  std::printf("\nrestore of a 10,000-event stream, median of 5:\n");
  std::printf("  without snapshot %.2f ms, from snapshot %.2f ms (ratio %.1fx)\n", median(full),
              median(snap), median(snap) > 0 ? median(full) / median(snap) : 0.0);

  // Feed: the outbox relay publishing the backlog the appends left (to a Redis stream of this
  // run, trimmed to ~100,000 entries, deleted after), for `seconds`, next to the journal's rate.
  // A relay slower than the journal lets the feed lag behind a sustained write load.
  if (argc > 6) {
    redis_client_config rc;
    rc.url = argv[6];
    auto client = redis_client::make(rc);
    if (!client) {
      std::fprintf(stderr, "redis: %s\n", to_string(client.error()).c_str());
      return 1;
    }
    outbox_relay_config cfg;
    cfg.dsn = dsn;
    cfg.stream = "chorus:bench:feed-" + run_id;
    cfg.maxlen_approx = 100000;  // batch: the default, as in cluster.conf (relay-batch)
    outbox_relay relay{cfg, *client};
    auto t0 = clock_type::now();
    auto until = t0 + std::chrono::seconds{seconds};
    while (clock_type::now() < until) {
      auto step = relay.step();
      if (!step) {
        std::fprintf(stderr, "relay: %s\n", to_string(step.error()).c_str());
        return 1;
      }
      if (*step == 0) break;  // the backlog is gone
    }
    auto elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
    auto rate = static_cast<double>(relay.published()) / elapsed;
    (*client)->del({cfg.stream});
    std::printf("\nfeed: the outbox relay published %llu events in %.1f s of backlog:\n",
                static_cast<unsigned long long>(relay.published()), elapsed);
    std::printf("  %.0f events/s, %.2f x the journal's median appends/s\n", rate,
                ours > 0 ? rate / ours : 0.0);
  }
  return 0;
}
