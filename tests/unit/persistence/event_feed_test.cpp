#include <doctest/doctest.h>

#include "persistence/event_feed.hpp"

using namespace chorus;
using namespace chorus::persistence;

TEST_CASE("a feed entry decodes to the event it was encoded from, bytes intact") {
  feed_event e{{42, 7}, stored_event{"counter/x", 3, 7, "t", std::string("a\0b", 3)}};
  auto back = decode_feed_entry(encode_feed_entry(e));
  REQUIRE(back);
  CHECK(back->at == e.at);
  CHECK(back->event.stream == "counter/x");
  CHECK(back->event.version == 3);
  CHECK(back->event.global_position == 7);
  CHECK(back->event.payload == std::string("a\0b", 3));
}

TEST_CASE("a feed entry with a missing or malformed field does not decode") {
  feed_event e{{1, 2}, stored_event{"s", 1, 2, "t", "p"}};
  auto fields = encode_feed_entry(e);
  CHECK_FALSE(decode_feed_entry({}));
  auto bad = fields;
  bad[0].second = "12x";
  CHECK_FALSE(decode_feed_entry(bad));
  bad = fields;
  bad.pop_back();
  CHECK_FALSE(decode_feed_entry(bad));
}

TEST_CASE("feed positions order by transaction first, then by global position") {
  CHECK(feed_position{1, 9} < feed_position{2, 3});
  CHECK(feed_position{2, 3} < feed_position{2, 4});
  CHECK(feed_position{} < feed_position{0, 1});
}
