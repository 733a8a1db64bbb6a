#include "tests/fakes/memory_journal.hpp"

#include "persistence/errc.hpp"

namespace chorus::test {

namespace {

using persistence::errc;
using persistence::make_error;

class memory_journal : public persistence::journal {
 public:
  explicit memory_journal(memory_journal_store& store) : store_(store) {}

  caf::expected<int64_t> append(const std::string& stream, int64_t expected_version,
                                const std::vector<new_event>& events) override {
    auto done = append_batch({persistence::append_request{stream, expected_version, events}});
    if (!done) return done.error();
    if (!(*done)[0]) return make_error(errc::version_conflict, stream);
    return expected_version + static_cast<int64_t>(events.size());
  }

  caf::expected<std::vector<bool>> append_batch(
      const std::vector<persistence::append_request>& batch) override {
    std::lock_guard<std::mutex> guard{store_.mtx};
    if (store_.unavailable) return make_error(errc::postgres_unavailable, "memory journal down");
    std::vector<bool> out;
    for (const auto& req : batch) {
      auto& data = store_.streams[req.stream];
      auto current = static_cast<int64_t>(data.events.size());
      if (current != req.expected_version) {
        out.push_back(false);
        continue;
      }
      auto version = current;
      for (const auto& e : req.events)
        data.events.push_back(
            stored_event{req.stream, ++version, ++store_.next_position, e.type, e.payload});
      out.push_back(true);
    }
    return out;
  }

  caf::expected<std::vector<stored_event>> read(const std::string& stream, int64_t after_version,
                                                size_t limit) override {
    std::lock_guard<std::mutex> guard{store_.mtx};
    if (store_.unavailable) return make_error(errc::postgres_unavailable, "memory journal down");
    std::vector<stored_event> out;
    auto it = store_.streams.find(stream);
    if (it == store_.streams.end()) return out;
    for (const auto& e : it->second.events)
      if (e.version > after_version && out.size() < limit) out.push_back(e);
    return out;
  }

  caf::expected<loaded_stream> load(const std::string& stream, int64_t after_version) override {
    std::lock_guard<std::mutex> guard{store_.mtx};
    if (store_.unavailable) return make_error(errc::postgres_unavailable, "memory journal down");
    loaded_stream out;
    auto it = store_.streams.find(stream);
    if (it == store_.streams.end()) return out;
    const auto& data = it->second;
    auto from = after_version;
    if (after_version == 0 && data.snapshot_version > 0) {
      out.snapshot_version = data.snapshot_version;
      out.snapshot_type = data.snapshot_type;
      out.snapshot_payload = data.snapshot_payload;
      from = data.snapshot_version;
    }
    out.version = from;
    for (const auto& e : data.events)
      if (e.version > from) {
        out.events.push_back(e);
        out.version = e.version;
      }
    return out;
  }

  caf::error save_snapshot(const std::string& stream, int64_t version, const std::string& type,
                           const std::string& payload) override {
    std::lock_guard<std::mutex> guard{store_.mtx};
    if (store_.unavailable) return make_error(errc::postgres_unavailable, "memory journal down");
    auto& data = store_.streams[stream];
    if (version > data.snapshot_version) {
      data.snapshot_version = version;
      data.snapshot_type = type;
      data.snapshot_payload = payload;
    }
    return {};
  }

 private:
  memory_journal_store& store_;
};

}  // namespace

persistence::journal_factory memory_journal_store::factory() {
  return [this] { return std::make_unique<memory_journal>(*this); };
}

std::vector<stored_event> memory_journal_store::events(const std::string& stream) {
  std::lock_guard<std::mutex> guard{mtx};
  auto it = streams.find(stream);
  return it == streams.end() ? std::vector<stored_event>{} : it->second.events;
}

void memory_journal_store::set_unavailable(bool down) {
  std::lock_guard<std::mutex> guard{mtx};
  unavailable = down;
}

}  // namespace chorus::test
