// ./chorus bench runtime — the entity runtime next to raw CAF, in one run.
//
// The "raw" side sends the same envelope to counter actors spawned directly (as many as ours
// address), and ours goes through the node's entity_gateway as the edge does: the handler work
// is identical, so each ratio is the cost of routing (placement check, directory, bookkeeping).
// There are two raw peers: requests with a 30 s timeout, as ours carry a deadline (CAF 0.17's
// actor clock keeps it, ours a deadline_wheel), and requests with no timeout at all.
//   (a) same node: through the gateway's fast path vs a raw request to the actor
//   (b) other node (a forked process, BASP over loopback): gateway -> the remote registry (the
//       envelope is not redeliverable, so no hop through the local router) vs a raw remote
//       request to an actor published by that process
//   (c) cold activation latency (first message to a new id) vs warm, p50/p99
//   (d) resident memory per idle entity, 1,000,000 entities via the registry vs 1,000,000 plain
//       actors
// Prints medians of alternating rounds and ratios. Not a test: it asserts nothing.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <prometheus/registry.h>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include "actors/debug/counter_entity.hpp"
#include "actors/event_sourced.hpp"
#include "common/json_log.hpp"
#include "messages/debug.pb.h"
#include "nodes/cluster_config.hpp"
#include "nodes/entity_probe.hpp"
#include "nodes/entity_registry.hpp"
#include "nodes/node_system_config.hpp"
#include "nodes/router.hpp"
#include "persistence/journal_actor.hpp"
#include "tests/fakes/memory_journal.hpp"

using namespace chorus;
using namespace std::chrono;
using clock_type = steady_clock;

namespace {

entity_envelope get_envelope(const std::string& id) {
  messages::CounterGet cmd;
  return entity_envelope{debug::counter_kind,     id, cmd.GetDescriptor()->full_name(),
                         cmd.SerializeAsString(), "", 0};
}

// How one request is made: the raw side with a plain CAF request to a handle, ours through
// the node's entity_gateway (as the edge does). `answered(ok)` runs in the driver actor.
using sender = std::function<void(caf::event_based_actor*, entity_envelope,
                                  std::function<void(bool)> answered)>;

sender raw_request(envelope_handler dest, caf::duration timeout = caf::duration{seconds{30}}) {
  return [dest, timeout](caf::event_based_actor* self, entity_envelope env,
                         std::function<void(bool)> answered) {
    self->request(dest, timeout, std::move(env))
        .then([answered](std::string&) { answered(true); },
              [answered](caf::error&) { answered(false); });
  };
}

// Plain requests spread round-robin over `dests`, the way ours spread over as many entities:
// sixty-four actors with a message each are scheduled sixty-four times, one actor with
// sixty-four messages once, so the raw side must address as many actors as ours.
sender raw_spread(std::vector<envelope_handler> dests,
                  caf::duration timeout = caf::duration{seconds{30}}) {
  auto next = std::make_shared<size_t>(0);
  return
      [dests = std::move(dests), next, timeout](caf::event_based_actor* self, entity_envelope env,
                                                std::function<void(bool)> answered) {
        self->request(dests[(*next)++ % dests.size()], timeout, std::move(env))
            .then([answered](std::string&) { answered(true); },
                  [answered](caf::error&) { answered(false); });
      };
}

sender through(const entity_gateway& gateway) {
  return [&gateway](caf::event_based_actor* self, entity_envelope env,
                    std::function<void(bool)> answered) {
    gateway.ask(self, std::move(env), seconds{30},
                [answered](caf::expected<std::string> out) { answered(static_cast<bool>(out)); });
  };
}

// Requests with `in_flight` outstanding until `total` answered; returns answers per second.
// With in_flight == 1 it also fills `latencies` (microseconds) when given.
double drive(caf::actor_system& sys, const sender& send, size_t total, size_t in_flight,
             const std::function<entity_envelope(size_t)>& make,
             std::vector<double>* latencies = nullptr) {
  std::promise<double> done;
  auto result = done.get_future();
  sys.spawn([&](caf::event_based_actor* self) {
    struct run_state {
      size_t sent = 0, answered = 0, failed = 0;
      clock_type::time_point start = clock_type::now();
    };
    auto st = std::make_shared<run_state>();
    auto send_one = std::make_shared<std::function<void()>>();
    *send_one = [=, &done, &make, &send]() {
      auto i = st->sent++;
      auto t0 = clock_type::now();
      send(self, make(i), [=, &done](bool ok) {
        if (!ok) ++st->failed;
        if (ok && latencies != nullptr)
          latencies->push_back(duration<double, std::micro>(clock_type::now() - t0).count());
        if (++st->answered == total)
          done.set_value(
              st->failed > 0 ? 0 : total / duration<double>(clock_type::now() - st->start).count());
        else if (st->sent < total)
          (*send_one)();
      });
    };
    for (size_t k = 0; k < in_flight && k < total; ++k) (*send_one)();
  });
  return result.get();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

size_t resident_bytes() {
  std::ifstream statm{"/proc/self/statm"};
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

cluster_config make_config(const std::string& self_roles, const std::string& peer_roles) {
  std::string text =
      "[chorus]\ncluster-name=\"bench\"\nnodes=[{name=\"b1\", host=\"127.0.0.1\", "
      "actor-port=1, http-port=2, ws-port=3, metrics-port=4, roles=[" +
      self_roles +
      "]}, {name=\"b2\", host=\"127.0.0.1\", actor-port=5, http-port=6, ws-port=7, "
      "metrics-port=8, roles=[" +
      peer_roles + "]}]\n[chorus.storage]\n";
  for (const auto& d : storage_domains()) text += d + "-dsn=\"postgresql://unused/x\"\n";
  text += "redis-url=\"redis://127.0.0.1:1\"\n";
  node_system_config caf_cfg;
  return *parse_cluster_config(text, "bench.conf", caf_cfg.caf_options());
}

// The other node: publishes a registry and a plain counter, reports their ports on `fd`, and
// runs until its parent closes the pipe.
[[noreturn]] void serve_remote(int report_fd, int stop_fd) {
  node_system_config cfg;
  prometheus::Registry metrics;
  entity_probe probe{metrics};
  json_log log{"b2"};
  entity_kinds kinds{{debug::counter_kind, debug::counter_factory()}};
  test::memory_journal_store store;
  deadline_wheel deadlines;
  {
    caf::actor_system sys{cfg};
    registry_limits limits;
    entity_context ctx{
        "b2",
        {{debug::counter_domain, persistence::spawn_journal(sys, store.factory(), {}, nullptr)}}};
    ctx.deadlines = &deadlines;  // as in a node
    auto registry = spawn_entity_registry(sys, kinds, ctx, limits, probe, log,
                                          std::make_shared<entity_directory>("b2"), deadlines);
    auto plain = debug::counter_factory()(sys, "plain", ctx);
    auto p1 = sys.middleman().publish(registry, 0, "127.0.0.1");
    auto p2 = sys.middleman().publish(plain, 0, "127.0.0.1");
    uint16_t ports[2] = {p1 ? *p1 : uint16_t{0}, p2 ? *p2 : uint16_t{0}};
    if (::write(report_fd, ports, sizeof(ports)) != sizeof(ports)) std::_Exit(1);
    char c;
    while (::read(stop_fd, &c, 1) > 0) {
    }
    // The parent is done; nothing here needs an orderly shutdown.
    std::_Exit(0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  size_t entities = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1000000;

  // Fork the remote node before any thread exists in this process.
  int report[2], stop[2];
  if (::pipe(report) != 0 || ::pipe(stop) != 0) return 1;
  pid_t child = ::fork();
  if (child == 0) {
    ::close(report[0]);
    ::close(stop[1]);
    serve_remote(report[1], stop[0]);
  }
  ::close(report[1]);
  ::close(stop[0]);
  uint16_t remote_ports[2] = {0, 0};
  if (::read(report[0], remote_ports, sizeof(remote_ports)) != sizeof(remote_ports)) return 1;

  node_system_config cfg;
  prometheus::Registry metrics;
  entity_probe probe{metrics};
  json_log log{"b1"};
  entity_kinds kinds{{debug::counter_kind, debug::counter_factory()}};
  test::memory_journal_store store;
  auto local_cfg = make_config("\"entity\"", "\"edge\"");   // b1 owns everything
  auto remote_cfg = make_config("\"edge\"", "\"entity\"");  // b2 owns everything
  deadline_wheel deadlines;
  {
    caf::actor_system sys{cfg};
    registry_limits limits;
    limits.max_active = entities * 2 + 100000;
    limits.idle_timeout = hours{1};
    entity_context ctx{
        "b1",
        {{debug::counter_domain, persistence::spawn_journal(sys, store.factory(), {}, nullptr)}}};
    ctx.deadlines = &deadlines;  // as in a node
    auto local_dir = std::make_shared<entity_directory>("b1");
    auto remote_dir = std::make_shared<entity_directory>("b1");
    auto registry =
        spawn_entity_registry(sys, kinds, ctx, limits, probe, log, local_dir, deadlines);
    auto local_router = spawn_router(sys, local_cfg.nodes[0], registry, local_dir, deadlines);
    auto remote_router = spawn_router(sys, remote_cfg.nodes[0], registry, remote_dir, deadlines);
    auto plain = debug::counter_factory()(sys, "plain", ctx);
    std::vector<envelope_handler> plains;
    for (int i = 0; i < 64; ++i)
      plains.push_back(debug::counter_factory()(sys, "w" + std::to_string(i), ctx));
    auto remote_registry =
        sys.middleman().remote_actor<envelope_handler>("127.0.0.1", remote_ports[0]);
    auto remote_plain =
        sys.middleman().remote_actor<envelope_handler>("127.0.0.1", remote_ports[1]);
    if (!remote_registry || !remote_plain) {
      std::fprintf(stderr, "cannot reach the forked node\n");
      return 1;
    }
    caf::anon_send(remote_router, peer_up_atom_v, std::string{"b2"}, *remote_registry, true);
    // What the edge uses: the local gateway reaches b1's active entities directly; the remote
    // one finds that b2 owns everything and asks b2's registry.
    entity_router local_gateway{local_dir, local_router,         registry,
                                &probe,    limits.max_queue_age, deadlines};
    entity_router remote_gateway{remote_dir, remote_router,        registry,
                                 &probe,     limits.max_queue_age, deadlines};
    auto local_entry = through(local_gateway), remote_entry = through(remote_gateway);
    // Two raw peers: with a 30 s timeout like ours (CAF 0.17's actor clock keeps it), and with
    // none at all (no deadline: a caller whose answer is lost waits forever).
    auto plain_entry = raw_spread(plains), remote_plain_entry = raw_request(*remote_plain);
    auto plain_bare = raw_spread(plains, caf::infinite),
         remote_plain_bare = raw_request(*remote_plain, caf::infinite);

    // Warm up: activate the 64 ids used below on both sides, and the connections.
    auto ids = [](size_t i) { return get_envelope("w" + std::to_string(i % 64)); };
    auto plain_msg = [](size_t) { return get_envelope("plain"); };
    drive(sys, local_entry, 20000, 64, ids);
    drive(sys, remote_entry, 20000, 64, ids);
    drive(sys, remote_plain_entry, 20000, 64, plain_msg);

    // One comparison: ours and both raw peers, medians per side.
    struct row {
      const char* what;
      const sender* ours;
      const sender* raw;
      const sender* bare;
      size_t total, in_flight;
      std::vector<double> r_ours{}, r_raw{}, r_bare{};
    };
    std::vector<row> rows{
        {"(a) same node, 100 in flight", &local_entry, &plain_entry, &plain_bare, 200000, 100},
        {"(a) same node, 1 in flight", &local_entry, &plain_entry, &plain_bare, 20000, 1},
        {"(b) other node, 100 in flight", &remote_entry, &remote_plain_entry, &remote_plain_bare,
         100000, 100},
        {"(b) other node, 1 in flight", &remote_entry, &remote_plain_entry, &remote_plain_bare,
         5000, 1},
    };
    // The sides take turns going first across rounds: whatever one run leaves behind (the actor
    // clock's pending request timeouts, warm caches) must not always fall on the same side.
    for (int r = 0; r < rounds; ++r)
      for (auto& x : rows)
        for (int k = 0; k < 3; ++k) switch ((k + r) % 3) {
            case 0:
              x.r_ours.push_back(drive(sys, *x.ours, x.total, x.in_flight, ids));
              break;
            case 1:
              x.r_raw.push_back(drive(sys, *x.raw, x.total, x.in_flight, plain_msg));
              break;
            default:
              x.r_bare.push_back(drive(sys, *x.bare, x.total, x.in_flight, plain_msg));
          }
    std::printf(
        "runtime: medians of %d rounds   chorus  raw CAF (30 s timeout)  ratio  raw CAF (none)  "
        "ratio\n",
        rounds);
    for (const auto& x : rows) {
      auto ours = median(x.r_ours), raw = median(x.r_raw), bare = median(x.r_bare);
      std::printf("  %-32s %9.0f %13.0f %14.2f %12.0f %8.2f  req/s\n", x.what, ours, raw,
                  raw > 0 ? ours / raw : 0.0, bare, bare > 0 ? ours / bare : 0.0);
    }

    // (c) cold activation: the first message to each new id, one at a time, vs the same ids warm.
    std::vector<double> cold, warm;
    auto fresh = [](size_t i) { return get_envelope("cold" + std::to_string(i)); };
    drive(sys, local_entry, 20000, 1, fresh, &cold);
    drive(sys, local_entry, 20000, 1, fresh, &warm);
    std::printf("  %-46s %12.1f %12.1f %8.2f  us\n", "(c) p50 first message (cold) vs warm",
                percentile(cold, 0.5), percentile(warm, 0.5),
                percentile(cold, 0.5) / percentile(warm, 0.5));
    std::printf("  %-46s %12.1f %12.1f %8.2f  us\n", "(c) p99 first message (cold) vs warm",
                percentile(cold, 0.99), percentile(warm, 0.99),
                percentile(cold, 0.99) / percentile(warm, 0.99));

    // (d) memory per idle entity: 1M entities each asked once through the registry vs 1M plain
    // counters each asked once directly, both measured once settled: the request timeout each
    // activation's journal load leaves in the actor clock (journal_timeout) has fired, and
    // freed memory is handed back (malloc_trim), so what is counted is what an idle entity
    // keeps. The driver's own requests carry no timeout, for the same reason.
    auto settle = [] {
      std::this_thread::sleep_for(journal_timeout + seconds{1});  // a bench, not a test
      ::malloc_trim(0);
    };
    settle();
    auto before = resident_bytes();
    auto many = [](size_t i) { return get_envelope("m" + std::to_string(i)); };
    drive(sys, raw_request(registry, caf::infinite), entities, 1000, many);
    settle();
    auto ours = static_cast<double>(resident_bytes() - before) / entities;
    before = resident_bytes();
    std::vector<envelope_handler> plain_actors;
    plain_actors.reserve(entities);
    for (size_t i = 0; i < entities; ++i)
      plain_actors.push_back(debug::counter_factory()(sys, "p" + std::to_string(i), ctx));
    auto plain_get = [](size_t i) { return get_envelope("p" + std::to_string(i)); };
    drive(sys, raw_spread(plain_actors, caf::infinite), entities, 1000, plain_get);
    settle();
    auto raw = static_cast<double>(resident_bytes() - before) / entities;
    std::printf("  %-46s %12.0f %12.0f %8.2f  bytes\n", "(d) resident memory per idle entity", ours,
                raw, ours / raw);
    std::printf("      (%zu entities through the registry vs %zu plain actors)\n", entities,
                entities);
    // Done. Stopping two million actors one by one is not what is measured and takes minutes
    // on two cores: end the forked node, then leave without the actor system's orderly shutdown.
    ::close(stop[1]);
    int status = 0;
    ::waitpid(child, &status, 0);
    std::fflush(nullptr);
    std::_Exit(0);
  }
}
