#include <doctest/doctest.h>

#include <caf/sec.hpp>

#include "http_edge/error_table.hpp"
#include "messages/errors.hpp"
#include "persistence/errc.hpp"

using namespace chorus;

TEST_CASE("storage outages become 503 with Retry-After") {
  auto e = edge::to_http(persistence::make_error(persistence::errc::postgres_unavailable, "x"));
  CHECK(e.status == 503);
  CHECK(e.code == "storage_unavailable");
  CHECK(e.retry_after_seconds > 0);
}

TEST_CASE("an actor that does not answer in time becomes 503 timeout") {
  auto e = edge::to_http(caf::make_error(caf::sec::request_timeout));
  CHECK(e.status == 503);
  CHECK(e.code == "timeout");
}

TEST_CASE("an error the table does not know becomes 500 internal without detail") {
  auto e = edge::to_http(caf::make_error(caf::sec::unexpected_message));
  CHECK(e.status == 500);
  CHECK(e.code == "internal");
  CHECK(e.retry_after_seconds == 0);
}

TEST_CASE("the error body has the one shape with code, message and request id") {
  CHECK(edge::error_body("not_found", "no \"such\" route", "abc") ==
        R"({"error":{"code":"not_found","message":"no \"such\" route","request_id":"abc"}})");
}

TEST_CASE("an overloaded entity or a cluster with no owner becomes 503 with Retry-After") {
  for (auto code : {runtime_errc::overloaded, runtime_errc::no_owner}) {
    auto e = edge::to_http(make_error(code, "x"));
    CHECK(e.status == 503);
    CHECK(e.retry_after_seconds > 0);
  }
}

TEST_CASE("a parked message becomes 422, which tells the client not to retry") {
  auto e = edge::to_http(make_error(runtime_errc::parked, "x"));
  CHECK(e.status == 422);
  CHECK(e.code == "message_parked");
  CHECK(e.retry_after_seconds == 0);
}

TEST_CASE("a write that kept losing the race for its entity becomes 409 conflict") {
  auto e = edge::to_http(persistence::make_error(persistence::errc::version_conflict, "counter/x"));
  CHECK(e.status == 409);
  CHECK(e.code == "conflict");
  CHECK(e.retry_after_seconds == 0);
}

TEST_CASE("blob store errors: missing is 404, a range past the end 416, unreachable 503") {
  using persistence::errc;
  CHECK(edge::to_http(persistence::make_error(errc::blob_not_found, "x")).status == 404);
  CHECK(edge::to_http(persistence::make_error(errc::blob_bad_range, "x")).status == 416);
  auto down = edge::to_http(persistence::make_error(errc::blob_unavailable, "x"));
  CHECK(down.status == 503);
  CHECK(down.retry_after_seconds > 0);
  CHECK(edge::to_http(persistence::make_error(errc::blob_error, "x")).status == 500);
}
