#include "actors/users/follows_query.hpp"

#include <ctime>
#include <memory>

#include <caf/typed_event_based_actor.hpp>

#include "actors/entity_messages.hpp"
#include "common/clock.hpp"
#include "messages/errors.hpp"
#include "messages/users.pb.h"
#include "persistence/follows.hpp"

namespace chorus::users {

namespace {

envelope_handler::behavior_type follows_query(envelope_handler::pointer,
                                              std::shared_ptr<persistence::follows_reader> db) {
  return {[db](entity_envelope& env) -> caf::result<std::string> {
    messages::FollowListQuery q;
    if (!parse_as(env, q))
      return make_error(runtime_errc::unknown_message_type, "follows query: " + env.type);
    if (q.limit() < 1 || q.limit() > 100)
      return make_error(domain_errc::validation, "limit must be 1..100");
    auto rows = db->list(q.user_id(), q.followers(), q.cursor(), q.limit());
    if (!rows) return std::move(rows.error());
    messages::FollowPage page;
    for (const auto& r : rows->rows) {
      auto* e = page.add_users();
      e->set_id(r.user_id);
      e->set_since(rfc3339(r.since_ms));
    }
    page.set_next_cursor(rows->next_cursor);
    return page.SerializeAsString();
  }};
}

}  // namespace

envelope_handler spawn_follows_query(caf::actor_system& sys, std::string dsn) {
  return sys.spawn<caf::detached>(follows_query,
                                  std::make_shared<persistence::follows_reader>(std::move(dsn)));
}

}  // namespace chorus::users
