#include "persistence/journal_actor.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "persistence/errc.hpp"
#include "persistence/journal_probe.hpp"

namespace chorus::persistence {

namespace {

using clock = std::chrono::steady_clock;

/// Worker threads with one journal each. Jobs run in order of posting on whichever worker is
/// free; when a job is done the worker tells the actor (`done_atom`, job number), which then
/// finishes it on its own thread. Owned by the actor's state; the threads hold only the actor's
/// address, so they never keep it alive.
class worker_pool {
 public:
  using job = std::function<void(journal&)>;

  worker_pool(journal_factory factory, size_t threads, caf::actor_addr owner)
      : owner_(std::move(owner)) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this, j = factory()] { run(*j); });
  }

  ~worker_pool() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  void post(uint64_t id, job fn) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      queue_.emplace_back(id, std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void run(journal& j) {
    for (;;) {
      std::pair<uint64_t, job> next;
      {
        std::unique_lock<std::mutex> lock{mtx_};
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        next = std::move(queue_.front());
        queue_.pop_front();
      }
      next.second(j);
      if (auto hdl = caf::actor_cast<caf::actor>(owner_))
        caf::anon_send(hdl, done_atom_v, next.first);
    }
  }

  caf::actor_addr owner_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, job>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

struct waiting_append {
  append_request request;
  caf::typed_response_promise<int64_t> promise;
  clock::time_point since;
};

struct journal_state {
  journal_options options;
  journal_probe* probe = nullptr;
  std::unique_ptr<worker_pool> pool;
  std::deque<waiting_append> waiting;
  size_t batches_in_flight = 0;
  size_t appends_in_flight = 0;
  /// Streams answered since the last linger ended and not yet back with their next append: the
  /// writers (entities) a free connection may expect soon.
  std::unordered_set<std::string> coming_back;
  /// A version of each stream known to exist: committed by this actor or read through it.
  /// Events are never deleted, so an append at or below it skips that part of the check
  /// (append_request::expected_exists). Forgotten all at once when it grows past
  /// known_versions_max, which only brings the check back, and after any failed batch or load:
  /// the database may have come back as another (a failed-over standby that lacks commits).
  std::unordered_map<std::string, int64_t> known_versions;
  /// The linger in force (its flush message carries the number), 0: none.
  uint64_t linger = 0;
  uint64_t next_linger = 0;
  uint64_t next_job = 0;
  /// What to do on the actor's thread when a job is done.
  std::unordered_map<uint64_t, std::function<void()>> finishers;

  static inline const char* name = "chorus.journal";
};

using journal_self = journal_actor::stateful_pointer<journal_state>;

constexpr size_t known_versions_max = 200000;
/// coming_back is forgotten past this many streams (only while batches keep filling to
/// max_batch and no linger ever ends).
constexpr size_t coming_back_max = 65536;

void know(journal_state& st, const std::string& stream, int64_t version) {
  if (version <= 0) return;
  if (st.known_versions.size() >= known_versions_max) st.known_versions.clear();
  auto& v = st.known_versions[stream];
  v = std::max(v, version);
}

void post(journal_self self, worker_pool::job work, std::function<void()> finish) {
  auto& st = self->state;
  auto id = ++st.next_job;
  st.finishers.emplace(id, std::move(finish));
  st.pool->post(id, std::move(work));
}

/// Starts group commits while connections are free, one append per stream in a batch (a second
/// append to the same stream waits for the next one). A batch takes its share of the writers
/// about: those waiting, in flight and answered but not yet back, over the connections. While
/// fewer wait, a free connection waits for the answered ones to come back, up to
/// options.linger; then (`force`) everything waiting goes, up to max_batch. So the connections
/// carry even batches in turn, instead of one leaving with the first writer back and the rest
/// waiting a whole commit for the next.
void dispatch(journal_self self, bool force = false) {
  auto& st = self->state;
  while (st.batches_in_flight < st.options.connections && !st.waiting.empty()) {
    auto writers = st.waiting.size() + st.appends_in_flight + st.coming_back.size();
    auto share = (writers + st.options.connections - 1) / st.options.connections;
    auto lingers = !force && st.options.linger.count() > 0;
    auto limit = lingers ? std::min(st.options.max_batch, share) : st.options.max_batch;
    if (lingers && st.waiting.size() < limit) {
      if (st.linger == 0) {
        st.linger = ++st.next_linger;
        self->delayed_send(self, st.options.linger, flush_atom_v, st.linger);
      }
      return;
    }
    st.linger = 0;
    force = false;
    auto batch = std::make_shared<std::vector<waiting_append>>();
    std::unordered_set<std::string> streams;
    std::deque<waiting_append> later;
    while (!st.waiting.empty() && batch->size() < limit) {
      auto& next = st.waiting.front();
      if (streams.insert(next.request.stream).second)
        batch->push_back(std::move(next));
      else
        later.push_back(std::move(next));
      st.waiting.pop_front();
    }
    for (auto it = later.rbegin(); it != later.rend(); ++it) st.waiting.push_front(std::move(*it));
    ++st.batches_in_flight;
    st.appends_in_flight += batch->size();
    auto requests = std::make_shared<std::vector<append_request>>();
    for (auto& w : *batch) {
      auto known = st.known_versions.find(w.request.stream);
      w.request.expected_exists =
          known != st.known_versions.end() && known->second >= w.request.expected_version;
      requests->push_back(w.request);
    }
    auto result = std::make_shared<caf::expected<std::vector<bool>>>(std::vector<bool>{});
    auto started = std::make_shared<clock::time_point>();
    auto finished = std::make_shared<clock::time_point>();
    post(
        self,
        [requests, result, started, finished](journal& j) {
          *started = clock::now();
          *result = j.append_batch(*requests);
          *finished = clock::now();
        },
        [self, batch, result, started, finished] {
          auto& st = self->state;
          --st.batches_in_flight;
          st.appends_in_flight -= batch->size();
          if (st.probe != nullptr) {
            if (*result)
              st.probe->batch(batch->size(), *finished - *started);
            else
              st.probe->failed("append");
          }
          auto now = clock::now();
          if (st.options.linger.count() > 0) {
            if (st.coming_back.size() > coming_back_max) st.coming_back.clear();
            for (const auto& w : *batch) st.coming_back.insert(w.request.stream);
          }
          if (!*result) st.known_versions.clear();
          for (size_t i = 0; i < batch->size(); ++i) {
            auto& w = (*batch)[i];
            if (!*result) {
              w.promise.deliver(result->error());
            } else if ((**result)[i]) {
              if (st.probe != nullptr) st.probe->appended(now - w.since);
              auto version =
                  w.request.expected_version + static_cast<int64_t>(w.request.events.size());
              know(st, w.request.stream, version);
              w.promise.deliver(version);
            } else {
              if (st.probe != nullptr) st.probe->conflict();
              w.promise.deliver(make_error(errc::version_conflict,
                                           w.request.stream + ": not at expected version " +
                                               std::to_string(w.request.expected_version)));
            }
          }
          dispatch(self);
        });
  }
}

journal_actor::behavior_type journal_behavior(journal_self self, journal_factory factory,
                                              journal_options options, journal_probe* probe) {
  auto& st = self->state;
  if (options.connections == 0) options.connections = 1;
  if (options.max_batch == 0) options.max_batch = 1;
  st.options = options;
  st.probe = probe;
  st.pool = std::make_unique<worker_pool>(std::move(factory), options.connections, self->address());
  return {
      [self](append_atom, std::string& stream, int64_t expected,
             std::vector<new_event>& events) -> caf::result<int64_t> {
        auto rp = self->make_response_promise<int64_t>();
        if (events.empty()) {
          rp.deliver(expected);
          return rp;
        }
        self->state.coming_back.erase(stream);
        self->state.waiting.push_back(waiting_append{
            append_request{std::move(stream), expected, std::move(events)}, rp, clock::now()});
        dispatch(self);
        return rp;
      },
      [self](load_atom, std::string& stream, int64_t after) -> caf::result<loaded_stream> {
        auto rp = self->make_response_promise<loaded_stream>();
        auto result = std::make_shared<caf::expected<loaded_stream>>(loaded_stream{});
        post(
            self, [stream, after, result](journal& j) { *result = j.load(stream, after); },
            [self, rp, result, stream, after]() mutable {
              auto* probe = self->state.probe;
              if (!*result) {
                self->state.known_versions.clear();
                if (probe != nullptr) probe->failed("load");
                rp.deliver(result->error());
                return;
              }
              if (probe != nullptr)
                probe->loaded((*result)->events.size(), (*result)->snapshot_version > 0);
              // Read from the start, or up to an event read now: that version exists.
              if (after == 0 || !(*result)->events.empty())
                know(self->state, stream, (*result)->version);
              rp.deliver(std::move(**result));
            });
        return rp;
      },
      [self](snapshot_atom, std::string& stream, int64_t version, std::string& type,
             std::string& payload) {
        auto err = std::make_shared<caf::error>();
        post(
            self,
            [stream = std::move(stream), version, type = std::move(type),
             payload = std::move(payload),
             err](journal& j) { *err = j.save_snapshot(stream, version, type, payload); },
            [self, err] {
              if (auto* probe = self->state.probe) {
                if (*err)
                  probe->failed("snapshot");
                else
                  probe->snapshot_saved();
              }
            });
      },
      [self](flush_atom, uint64_t linger) {
        auto& st = self->state;
        if (linger != st.linger) return;
        st.linger = 0;
        st.coming_back.clear();  // who has not come back by now is not coming soon
        dispatch(self, true);
      },
      [self](done_atom, uint64_t id) {
        auto& finishers = self->state.finishers;
        auto it = finishers.find(id);
        if (it == finishers.end()) return;
        auto finish = std::move(it->second);
        finishers.erase(it);
        finish();
      },
  };
}

}  // namespace

journal_actor spawn_journal(caf::actor_system& sys, journal_factory factory,
                            journal_options options, journal_probe* probe) {
  return sys.spawn(journal_behavior, std::move(factory), options, probe);
}

}  // namespace chorus::persistence
