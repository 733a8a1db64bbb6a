#include "nodes/entity_directory.hpp"

#include <functional>
#include <mutex>

#include "nodes/placement.hpp"

namespace chorus {

std::optional<int64_t> activation_cell::admit(int64_t now_ns, int64_t max_age_ns) {
  last_used_.store(now_ns, std::memory_order_relaxed);
  lock();
  if (head_ < sent_.size() && now_ns - sent_[head_] > max_age_ns) {
    auto age = now_ns - sent_[head_];
    unlock();
    return age;
  }
  sent_.push_back(now_ns);
  unlock();
  return std::nullopt;
}

int64_t activation_cell::answered(int64_t now_ns) {
  lock();
  int64_t waited = 0;
  if (head_ < sent_.size()) {
    waited = now_ns - sent_[head_];
    if (++head_ == sent_.size()) {
      sent_.clear();
      head_ = 0;
    } else if (head_ >= 64 && head_ * 2 >= sent_.size()) {
      // An entity that is never idle never empties the queue: drop the answered half so that
      // the vector stays as long as the requests waiting, not as the requests ever made.
      sent_.erase(sent_.begin(), sent_.begin() + head_);
      head_ = 0;
    }
  }
  unlock();
  return waited;
}

entity_directory::entity_directory(std::string self) : self_(std::move(self)) {
  lists_.push_back(std::make_unique<const candidate_list>());
  candidates_.store(lists_.back().get());
}

void entity_directory::set_candidates(std::vector<std::string> sorted,
                                      std::vector<envelope_handler> registries) {
  registries.resize(sorted.size());
  std::lock_guard guard{lists_mutex_};
  lists_.push_back(std::make_unique<const candidate_list>(
      candidate_list{std::move(sorted), std::move(registries)}));
  candidates_.store(lists_.back().get(), std::memory_order_release);
  if (lists_.size() > kept_lists) lists_.pop_front();
}

std::optional<entity_directory::owner_ref> entity_directory::owner(std::string_view key) const {
  const auto& list = *candidates_.load(std::memory_order_acquire);
  auto i = rendezvous_owner(key, list.names);
  if (!i) return std::nullopt;
  if (list.names[*i] == self_) return owner_ref{true, {}};
  return owner_ref{false, list.registries[*i]};
}

entity_directory::shard& entity_directory::shard_of(const std::string& key) const {
  return shards_[std::hash<std::string>{}(key) % shards_.size()];
}

std::shared_ptr<activation_cell> entity_directory::find(const std::string& key) const {
  auto& s = shard_of(key);
  std::shared_lock guard{s.mutex};
  auto i = s.cells.find(key);
  return i == s.cells.end() ? nullptr : i->second;
}

const std::string* entity_directory::insert(const std::string& key,
                                            std::shared_ptr<activation_cell> cell) {
  auto& s = shard_of(key);
  std::unique_lock guard{s.mutex};
  return &s.cells.insert_or_assign(key, std::move(cell)).first->first;
}

void entity_directory::erase(std::string key) {
  auto& s = shard_of(key);
  std::unique_lock guard{s.mutex};
  s.cells.erase(key);
}

}  // namespace chorus
