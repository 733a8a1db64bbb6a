#include <memory>

#include <caf/typed_event_based_actor.hpp>

#include "actors/entity_messages.hpp"
#include "actors/social/social.hpp"
#include "messages/errors.hpp"
#include "messages/social.pb.h"
#include "persistence/social_chat.hpp"

namespace chorus::social {

namespace {

template <class T>
caf::result<std::string> bytes_of(caf::expected<T> x) {
  if (!x) return std::move(x.error());
  return x->SerializeAsString();
}

envelope_handler::behavior_type social_query(envelope_handler::pointer,
                                             std::shared_ptr<persistence::social_chat_reader> db) {
  return {[db](entity_envelope& env) -> caf::result<std::string> {
    messages::SocialQuery q;
    if (!parse_as(env, q))
      return make_error(runtime_errc::unknown_message_type, "social query: " + env.type);
    if (q.what() == "history") {
      if (q.from() < 1 || q.to() < q.from() || q.to() - q.from() >= max_history_page)
        return make_error(domain_errc::validation, "history range out of bounds");
      return bytes_of(db->history(q.subject(), q.from(), q.to()));
    }
    if (q.what() == "rooms") {
      if (q.limit() < 1 || q.limit() > 100)
        return make_error(domain_errc::validation, "limit must be 1..100");
      return bytes_of(db->rooms(q.subject(), q.cursor(), q.limit()));
    }
    return make_error(domain_errc::validation, "unknown social query " + q.what());
  }};
}

}  // namespace

envelope_handler spawn_social_query(caf::actor_system& sys, std::string social_dsn) {
  auto db = std::make_shared<persistence::social_chat_reader>(std::move(social_dsn));
  return sys.spawn<caf::detached>(social_query, std::move(db));
}

}  // namespace chorus::social
