#include <doctest/doctest.h>

#include <set>
#include <string>
#include <utility>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <prometheus/registry.h>
#include <caf/actor_system.hpp>

#include "common/json_log.hpp"
#include "http_edge/edge_server.hpp"
#include "http_edge/live_connections.hpp"
#include "http_edge/openapi.hpp"
#include "http_edge/room_routes.hpp"
#include "http_edge/track_routes.hpp"
#include "http_edge/user_routes.hpp"
#include "messages/errors.hpp"
#include "nodes/node_system_config.hpp"

using namespace chorus;

namespace {

// The routes never run here: only their registration is looked at.
struct no_entities final : entity_gateway {
  void ask(caf::event_based_actor*, entity_envelope, std::chrono::milliseconds,
           reply_handler done) const override {
    done(make_error(runtime_errc::no_owner, "not in this test"));
  }
};

using route_set = std::set<std::pair<std::string, std::string>>;  // (method, path)

route_set documented_routes() {
  google::protobuf::Struct doc;
  REQUIRE(google::protobuf::util::JsonStringToMessage(std::string{edge::openapi_document()}, &doc)
              .ok());
  route_set out;
  for (const auto& [path, item] : doc.fields().at("paths").struct_value().fields())
    for (const auto& [method, op] : item.struct_value().fields())
      if (method != "parameters") out.emplace(method, path);
  return out;
}

}  // namespace

TEST_CASE(
    "every route the edge serves is in the OpenAPI document with its method, and the document "
    "lists no route the edge does not serve") {
  node_system_config cfg;
  caf::actor_system sys{cfg};
  prometheus::Registry metrics;
  json_log log{"openapi-test"};
  no_entities entities;
  edge::edge_config ec;
  ec.host = "127.0.0.1";
  ec.debug_endpoints = true;
  edge::health_hooks hooks{[] { return caf::expected<messages::NodeStatus>{caf::error{}}; },
                           [] { return messages::ReadyReport{}; },
                           [] { return caf::expected<messages::DeadLetters>{caf::error{}}; },
                           nullptr};
  edge::edge_server edge{
      ec, hooks, sys, entities, metrics, log, std::make_shared<edge::live_connections>()};
  edge.add_routes([](edge::edge_api& api) { edge::add_user_routes(api, {}); });
  edge.add_routes([](edge::edge_api& api) { edge::add_track_routes(api, {}); });
  edge.add_routes([](edge::edge_api& api) { edge::add_room_routes(api, {}); });
  edge.add_routes([](edge::edge_api& api) { edge::add_notification_routes(api); });
  route_set served;
  for (const auto& r : edge.routes()) served.emplace(r.method, r.name);
  auto documented = documented_routes();
  for (const auto& r : served)
    CHECK_MESSAGE(documented.count(r) == 1, r.first << " " << r.second << " is not documented");
  for (const auto& r : documented)
    CHECK_MESSAGE(served.count(r) == 1, r.first << " " << r.second << " is documented, not served");
  CHECK(served.size() >= 20);
}
