#include "persistence/reminder_actor.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "common/json_log.hpp"
#include "messages/errors.hpp"
#include "persistence/errc.hpp"
#include "persistence/reminder_probe.hpp"

namespace chorus::persistence {

namespace {

/// The actor's one worker thread and its reminder store. Jobs run in order of posting; when one
/// is done the worker tells the actor (`done_atom`, job number), which finishes it on its own
/// thread. Owned by the actor's state; the thread holds only the actor's address, so it never
/// keeps the actor alive. (The journal actor's pool, with one thread: one connection is plenty
/// for a few statements per poll.)
class reminder_worker {
 public:
  using job = std::function<void(reminder_pg&)>;

  reminder_worker(const reminder_store_factory& factory, caf::actor_addr owner)
      : owner_(std::move(owner)), thread_([this, store = factory()] { run(*store); }) {}

  ~reminder_worker() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  reminder_worker(const reminder_worker&) = delete;
  reminder_worker& operator=(const reminder_worker&) = delete;

  void post(uint64_t id, job fn) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      queue_.emplace_back(id, std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void run(reminder_pg& store) {
    for (;;) {
      std::pair<uint64_t, job> next;
      {
        std::unique_lock<std::mutex> lock{mtx_};
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        next = std::move(queue_.front());
        queue_.pop_front();
      }
      next.second(store);
      if (auto hdl = caf::actor_cast<caf::actor>(owner_))
        caf::anon_send(hdl, done_atom_v, next.first);
    }
  }

  caf::actor_addr owner_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, job>> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything it uses exists
};

struct reminder_state {
  reminder_options options;
  json_log* log = nullptr;
  reminder_probe* probe = nullptr;
  std::unique_ptr<reminder_worker> worker;
  uint64_t next_job = 0;
  /// What to do on the actor's thread when a job is done.
  std::unordered_map<uint64_t, std::function<void()>> finishers;
  envelope_handler router;
  bool polling = false;   ///< begin_atom arrived: the poll timer runs
  bool claiming = false;  ///< a claim is on the worker
  bool store_down = false;

  static inline const char* name = "chorus.reminders";
};

using reminder_self = reminder_actor::stateful_pointer<reminder_state>;

void post(reminder_self self, reminder_worker::job work, std::function<void()> finish) {
  auto& st = self->state;
  auto id = ++st.next_job;
  st.finishers.emplace(id, std::move(finish));
  st.worker->post(id, std::move(work));
}

std::string key_of(const stored_reminder& r) {
  return r.kind + "/" + r.id + "#" + r.name;
}

void warn(reminder_self self, const std::string& what, const stored_reminder& r,
          const caf::error& err) {
  if (auto* log = self->state.log)
    log->warn("reminders", what,
              {{"reminder", key_of(r)},
               {"attempts", std::to_string(r.attempts)},
               {"error", error_detail(err)}});
}

/// Deletes a delivered (or parked) reminder unless it was rescheduled since the claim.
void complete(reminder_self self, const stored_reminder& r) {
  auto done = std::make_shared<caf::expected<bool>>(false);
  post(
      self,
      [r, done](reminder_pg& store) { *done = store.complete(r.kind, r.id, r.name, r.due_at_us); },
      [self, r, done] {
        // Not deleted: the reminder is delivered again when its lease ends (at least once).
        if (!*done) warn(self, "delivered reminder not completed", r, done->error());
      });
}

void deliver(reminder_self self, const stored_reminder& r) {
  auto& st = self->state;
  if (r.attempts > st.options.max_attempts) {
    warn(self, "reminder parked after too many attempts", r,
         make_error(errc::storage_error, "dropped"));
    if (st.probe != nullptr) st.probe->parked();
    complete(self, r);
    return;
  }
  using namespace std::chrono;
  entity_envelope env;
  env.kind = r.kind;
  env.id = r.id;
  env.type = r.payload_type;
  env.payload = r.payload;
  env.deadline_ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch() +
                                                st.options.delivery_timeout)
                        .count();
  self->request(st.router, st.options.delivery_timeout, std::move(env))
      .then(
          [self, r](const std::string&) {
            if (auto* probe = self->state.probe) probe->fired();
            complete(self, r);
          },
          [self, r](caf::error& err) {
            if (auto* probe = self->state.probe) probe->failed();
            warn(self, "reminder delivery failed; retried when its lease ends", r, err);
          });
}

void poll(reminder_self self) {
  auto& st = self->state;
  if (st.claiming || !st.router) return;
  st.claiming = true;
  auto claimed =
      std::make_shared<caf::expected<std::vector<stored_reminder>>>(std::vector<stored_reminder>{});
  auto batch = st.options.batch;
  auto lease = st.options.lease;
  post(
      self,
      [claimed, batch, lease](reminder_pg& store) { *claimed = store.claim_due(batch, lease); },
      [self, claimed] {
        auto& st = self->state;
        st.claiming = false;
        bool full = false;
        if (!*claimed) {
          // Logged once per outage, not once per poll.
          if (!st.store_down && st.log != nullptr)
            st.log->warn("reminders", "cannot claim due reminders",
                         {{"error", error_detail(claimed->error())}});
          st.store_down = true;
        } else {
          if (st.store_down && st.log != nullptr)
            st.log->info("reminders", "claiming due reminders again");
          st.store_down = false;
          full = (*claimed)->size() >= st.options.batch;
          for (const auto& r : **claimed) deliver(self, r);
        }
        if (full)
          self->send(self, poll_atom_v);
        else
          self->delayed_send(self, st.options.poll_interval, poll_atom_v);
      });
}

reminder_actor::behavior_type reminder_behavior(reminder_self self, reminder_store_factory factory,
                                                reminder_options options, json_log* log,
                                                reminder_probe* probe) {
  auto& st = self->state;
  if (options.batch == 0) options.batch = 1;
  st.options = options;
  st.log = log;
  st.probe = probe;
  st.worker = std::make_unique<reminder_worker>(factory, self->address());
  return {
      [self](remind_atom, std::string& kind, std::string& id, std::string& name, int64_t due_ms,
             std::string& type, std::string& payload) -> caf::result<int64_t> {
        auto rp = self->make_response_promise<int64_t>();
        auto err = std::make_shared<caf::error>();
        post(
            self,
            [=, kind = std::move(kind), id = std::move(id), name = std::move(name),
             type = std::move(type), payload = std::move(payload)](reminder_pg& store) {
              *err = store.schedule(kind, id, name, due_ms, type, payload);
            },
            [self, rp, err, due_ms]() mutable {
              if (*err) {
                rp.deliver(std::move(*err));
                return;
              }
              if (auto* probe = self->state.probe) probe->scheduled();
              rp.deliver(due_ms);
            });
        return rp;
      },
      [self](cancel_atom, std::string& kind, std::string& id,
             std::string& name) -> caf::result<bool> {
        auto rp = self->make_response_promise<bool>();
        auto out = std::make_shared<caf::expected<bool>>(false);
        post(
            self,
            [=, kind = std::move(kind), id = std::move(id),
             name = std::move(name)](reminder_pg& store) { *out = store.cancel(kind, id, name); },
            [rp, out]() mutable {
              if (*out)
                rp.deliver(**out);
              else
                rp.deliver(out->error());
            });
        return rp;
      },
      [self](begin_atom, envelope_handler& router) {
        auto& st = self->state;
        st.router = std::move(router);
        if (!st.polling) {
          st.polling = true;
          poll(self);
        }
      },
      [self](poll_atom) { poll(self); },
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

reminder_actor spawn_reminders(caf::actor_system& sys, reminder_store_factory factory,
                               reminder_options options, json_log* log, reminder_probe* probe) {
  return sys.spawn(reminder_behavior, std::move(factory), options, log, probe);
}

}  // namespace chorus::persistence
