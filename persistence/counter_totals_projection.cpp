#include "persistence/counter_totals_projection.hpp"

#include <string>

#include "messages/debug.pb.h"
#include "persistence/errc.hpp"

namespace chorus::persistence {

namespace {

constexpr std::string_view counter_prefix = "counter/";

}  // namespace

projection counter_totals_projection() {
  projection p;
  p.name = "counter_totals";
  p.schema = {
      "CREATE TABLE IF NOT EXISTS counter_totals ("
      "id text PRIMARY KEY, value bigint NOT NULL, position bigint NOT NULL)"};
  p.reset = [](sql_tx& tx) -> caf::error {
    auto done = tx.exec("DELETE FROM counter_totals");
    return done ? caf::error{} : done.error();
  };
  p.apply = [](const stored_event& e, sql_tx& tx) -> caf::error {
    if (e.stream.rfind(counter_prefix, 0) != 0 ||
        e.type != messages::CounterIncremented::descriptor()->full_name())
      return {};
    messages::CounterIncremented ev;
    if (!ev.ParseFromString(e.payload))
      // Stops the projection at this event rather than skipping it: a read model that silently
      // misses an event is worse than one that visibly stalls.
      return make_error(errc::storage_error, "counter_totals: unreadable event at position " +
                                                 std::to_string(e.global_position));
    auto done = tx.exec(
        "INSERT INTO counter_totals (id, value, position) VALUES ($1, $2::bigint, $3::bigint) "
        "ON CONFLICT (id) DO UPDATE SET value = counter_totals.value + EXCLUDED.value, "
        "position = EXCLUDED.position",
        {e.stream.substr(counter_prefix.size()), std::to_string(ev.by()),
         std::to_string(e.global_position)});
    return done ? caf::error{} : done.error();
  };
  return p;
}

}  // namespace chorus::persistence
