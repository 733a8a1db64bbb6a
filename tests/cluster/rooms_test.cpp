#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "messages/social.pb.h"
#include "nodes/placement.hpp"
#include "tests/support/accounts.hpp"
#include "tests/support/replies.hpp"
#include "tests/support/test_cluster.hpp"
#include "tests/support/ws_client.hpp"

// Chat rooms against real nodes: who may read and post, moderation, idempotent sends, ordering
// under concurrent senders on different nodes, live delivery over /v1/ws with catch-up after a
// reconnect, unread counts, and a room's node killed mid-conversation.

using namespace chorus;
using namespace std::chrono_literals;
using test::error_is;
using test::field;
using test::parse_json;
using test::ws_client;

namespace {

using user = test::signed_in_user;

std::string create_room(uint16_t port, const user& owner, const std::string& kind,
                        const std::vector<std::string>& members, const std::string& name = "room") {
  std::string list;
  for (const auto& m : members) list += (list.empty() ? "\"" : ",\"") + m + "\"";
  auto body = R"({"kind":")" + kind + "\"" +
              (kind == "direct" ? std::string{} : R"(,"name":")" + name + "\"") +
              R"(,"members":[)" + list + "]}";
  auto r = test::call_as(port, "POST", "/v1/rooms", owner, body);
  REQUIRE_MESSAGE(r.status == 201, r.body);
  return parse_json<messages::RoomInfo>(r)->id();
}

test::http_reply post(uint16_t port, const std::string& room, const user& u,
                      const std::string& text, const std::string& client_id) {
  return test::call_as(port, "POST", "/v1/rooms/" + room + "/messages", u,
                       R"({"text":")" + text + R"(","client_id":")" + client_id + "\"}");
}

std::vector<messages::ChatMessage> history(uint16_t port, const std::string& room, const user& u,
                                           const std::string& query = "") {
  auto r = test::call_as(port, "GET", "/v1/rooms/" + room + "/messages" + query, u);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  auto page = parse_json<messages::ChatMessagePage>(r);
  REQUIRE(page);
  return {page->messages().begin(), page->messages().end()};
}

/// Every message of the room, oldest first, paging backwards 100 at a time.
std::vector<messages::ChatMessage> all_history(uint16_t port, const std::string& room,
                                               const user& u) {
  std::vector<messages::ChatMessage> out;
  int64_t before = 0;
  for (;;) {
    auto page = history(port, room, u,
                        "?limit=100" + (before > 0 ? "&before=" + std::to_string(before) : ""));
    if (page.empty()) break;
    out.insert(out.begin(), page.begin(), page.end());
    before = page.front().seq();
    if (before == 1) break;
  }
  return out;
}

std::string subscribe(const std::string& topic) {
  return R"({"type":"subscribe","topic":")" + topic + R"("})";
}

/// The next live event of kind `kind` (other frames skipped), or nothing.
std::optional<std::string> next_event(ws_client& ws, const std::string& kind,
                                      std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = ws.next(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()));
    if (!m) return std::nullopt;
    if (field(m, "type") == "event" && field(m, "data.kind") == kind) return m;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE(
    "rooms: members read and post, non-members and banned or muted users cannot, and bad "
    "messages are refused with a clear error") {
  test::test_cluster c{2};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto owner = test::new_user(p0, "owner");
  auto friend_ = test::new_user(p1, "friend");
  auto stranger = test::new_user(p1, "stranger");

  auto group = create_room(p0, owner, "group", {friend_.id});
  auto room =
      parse_json<messages::RoomInfo>(test::call_as(p1, "GET", "/v1/rooms/" + group, friend_));
  REQUIRE(room);
  CHECK(room->role() == "member");
  CHECK(room->member_count() == 2);
  CHECK(room->kind() == "group");

  // A group is invisible to others: they can neither read nor post nor join.
  CHECK(error_is(test::call_as(p1, "GET", "/v1/rooms/" + group, stranger), 404, "not_found"));
  CHECK(error_is(post(p1, group, stranger, "hi", "s1"), 404, "not_found"));
  CHECK(error_is(test::call_as(p1, "GET", "/v1/rooms/" + group + "/messages", stranger), 404,
                 "not_found"));
  CHECK(error_is(test::call_as(p1, "POST", "/v1/rooms/" + group + "/join", stranger), 404,
                 "not_found"));
  // Members may not invite into a group; its owner may.
  auto invite = R"({"user":")" + stranger.id + "\"}";
  CHECK(error_is(test::call_as(p1, "POST", "/v1/rooms/" + group + "/members", friend_, invite), 403,
                 "forbidden"));
  CHECK(error_is(test::call_as(p1, "POST", "/v1/rooms/" + group + "/members", owner,
                               R"({"user":"00000000000000000000000000000000"})"),
                 422, "validation"));

  // Posting: 201 with its seq; the same client id again is the same message (200).
  auto first = post(p1, group, friend_, "hello", "c-1");
  REQUIRE_MESSAGE(first.status == 201, first.body);
  auto m1 = parse_json<messages::ChatMessage>(first);
  CHECK(m1->seq() == 1);
  CHECK(m1->author() == friend_.id);
  auto again = post(p0, group, friend_, "hello", "c-1");
  CHECK(again.status == 200);
  CHECK(parse_json<messages::ChatMessage>(again)->seq() == 1);
  auto second = post(p0, group, owner, "hi there", "c-1");  // another author's own c-1
  CHECK(parse_json<messages::ChatMessage>(second)->seq() == 2);
  CHECK(history(p0, group, owner).size() == 2);

  // Bad input: a clear error, nothing posted.
  auto path = "/v1/rooms/" + group + "/messages";
  CHECK(error_is(test::call_as(p0, "POST", path, owner, "{not json"), 400, "malformed_json"));
  CHECK(
      error_is(test::call_as(p0, "POST", path, owner, R"({"client_id":"x"})"), 422, "validation"));
  CHECK(error_is(test::call_as(p0, "POST", path, owner, R"({"text":"no id"})"), 422, "validation"));
  CHECK(error_is(test::call_as(p0, "POST", path, owner, R"({"text":5,"client_id":"x"})"), 422,
                 "validation"));
  CHECK(
      error_is(test::call_as(p0, "POST", path, owner, R"({"text":"a","client_id":"x","extra":1})"),
               422, "validation"));
  CHECK(error_is(post(p0, group, owner, std::string(4001, 'a'), "big"), 422, "validation"));
  CHECK(post(p0, group, owner, std::string(4000, 'a'), "max").status == 201);
  CHECK(error_is(
      test::call_as(p0, "POST", path, owner, R"({"text":"x","client_id":"r","reply_to":99})"), 422,
      "validation"));
  CHECK(error_is(test::http_call(p0, "POST", path, R"({"text":"x","client_id":"y"})"), 401,
                 "unauthenticated"));
  CHECK(error_is(test::call_as(p0, "GET", path + "?limit=0", owner), 422, "validation"));
  CHECK(error_is(test::call_as(p0, "GET", path + "?before=x", owner), 422, "validation"));
  CHECK(history(p0, group, owner).size() == 3);

  // Edit and delete: the author edits; another member may not; a moderator may delete.
  auto edit_path = "/v1/rooms/" + group + "/messages/1";
  CHECK(
      error_is(test::call_as(p0, "PATCH", edit_path, owner, R"({"text":"x"})"), 403, "forbidden"));
  auto edited = test::call_as(p1, "PATCH", edit_path, friend_, R"({"text":"hello, edited"})");
  REQUIRE_MESSAGE(edited.status == 200, edited.body);
  CHECK(parse_json<messages::ChatMessage>(edited)->edited_at() != "");
  CHECK(error_is(test::call_as(p1, "DELETE", "/v1/rooms/" + group + "/messages/2", friend_), 403,
                 "forbidden"));
  CHECK(test::call_as(p0, "DELETE", edit_path, owner).status == 204);
  auto h = history(p1, group, friend_);
  CHECK(h[0].deleted());
  CHECK(h[0].text().empty());
  CHECK(h[1].text() == "hi there");

  // Public rooms: anyone may see and join, must join before posting; bans keep a user out.
  auto lobby = create_room(p0, owner, "public", {}, "lobby");
  CHECK(error_is(post(p1, lobby, stranger, "hi", "s1"), 403, "forbidden"));
  CHECK(test::call_as(p1, "POST", "/v1/rooms/" + lobby + "/join", stranger).status == 200);
  CHECK(post(p1, lobby, stranger, "hi", "s1").status == 201);
  CHECK(error_is(test::call_as(p1, "POST", "/v1/rooms/" + lobby + "/bans", stranger,
                               R"({"user":")" + owner.id + "\"}"),
                 403, "forbidden"));
  CHECK(test::call_as(p0, "POST", "/v1/rooms/" + lobby + "/bans", owner,
                      R"({"user":")" + stranger.id + "\"}")
            .status == 200);
  CHECK(error_is(post(p1, lobby, stranger, "still here?", "s2"), 403, "forbidden"));
  CHECK(error_is(test::call_as(p1, "POST", "/v1/rooms/" + lobby + "/join", stranger), 403,
                 "forbidden"));
  CHECK(test::call_as(p0, "DELETE", "/v1/rooms/" + lobby + "/bans/" + stranger.id, owner).status ==
        204);
  CHECK(test::call_as(p1, "POST", "/v1/rooms/" + lobby + "/join", stranger).status == 200);

  // Mute and slow mode.
  CHECK(test::call_as(p0, "POST", "/v1/rooms/" + lobby + "/mutes", owner,
                      R"({"user":")" + stranger.id + R"(","seconds":600})")
            .status == 200);
  CHECK(error_is(post(p1, lobby, stranger, "muted?", "s3"), 403, "forbidden"));
  CHECK(test::call_as(p0, "POST", "/v1/rooms/" + lobby + "/mutes", owner,
                      R"({"user":")" + stranger.id + R"(","seconds":0})")
            .status == 200);
  CHECK(post(p1, lobby, stranger, "back", "s4").status == 201);
  CHECK(
      error_is(test::call_as(p1, "PATCH", "/v1/rooms/" + lobby, stranger, R"({"slow_mode_s":60})"),
               403, "forbidden"));
  CHECK(test::call_as(p0, "PATCH", "/v1/rooms/" + lobby, owner, R"({"slow_mode_s":60})").status ==
        200);
  CHECK(error_is(post(p1, lobby, stranger, "too soon", "s5"), 429, "too_many_attempts"));
  CHECK(post(p0, lobby, owner, "owners are exempt", "o1").status == 201);

  // Reports reach the moderators only.
  CHECK(test::call_as(p0, "POST", "/v1/rooms/" + lobby + "/messages/1/reports", owner,
                      R"({"reason":"spam"})")
            .status == 201);
  CHECK(error_is(test::call_as(p1, "GET", "/v1/rooms/" + lobby + "/reports", stranger), 403,
                 "forbidden"));
  auto reports = parse_json<messages::MessageReportPage>(
      test::call_as(p0, "GET", "/v1/rooms/" + lobby + "/reports", owner));
  REQUIRE(reports);
  REQUIRE(reports->reports_size() == 1);
  CHECK(reports->reports(0).reason() == "spam");

  // The owner cannot leave; a member can, and then reads nothing more.
  CHECK(
      error_is(test::call_as(p0, "POST", "/v1/rooms/" + group + "/leave", owner), 409, "conflict"));
  CHECK(test::call_as(p1, "POST", "/v1/rooms/" + group + "/leave", friend_).status == 200);
  CHECK(error_is(test::call_as(p1, "GET", "/v1/rooms/" + group + "/messages", friend_), 404,
                 "not_found"));

  // A direct room is the same room from either side.
  auto dm = create_room(p0, owner, "direct", {friend_.id});
  auto other_side = test::call_as(p1, "POST", "/v1/rooms", friend_,
                                  R"({"kind":"direct","members":[")" + owner.id + "\"]}");
  CHECK(other_side.status == 200);
  CHECK(parse_json<messages::RoomInfo>(other_side)->id() == dm);
  CHECK(error_is(test::call_as(p0, "POST", "/v1/rooms", owner,
                               R"({"kind":"direct","members":[")" + owner.id + "\"]}"),
                 422, "validation"));
}

TEST_CASE(
    "rooms: concurrent senders on different nodes get one gapless order, every message once, "
    "and each sender's messages in the order it sent them") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE(c.converged(60s));
  std::vector<user> senders;
  for (size_t i = 0; i < 3; ++i) senders.push_back(test::new_user(c.at(i).http_port, "sender"));
  auto room = create_room(c.at(0).http_port, senders[0], "group", {senders[1].id, senders[2].id});

  constexpr int per_sender = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < senders.size(); ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < per_sender; ++k) {
        auto r = post(c.at(i).http_port, room, senders[i], "m" + std::to_string(k),
                      "s" + std::to_string(i) + "-" + std::to_string(k));
        if (r.status != 201) ++failures;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(failures == 0);

  auto h = history(c.at(2).http_port, room, senders[2], "?limit=100");
  REQUIRE(h.size() == 3 * per_sender);
  std::map<std::string, int> next_of;
  for (size_t i = 0; i < h.size(); ++i) {
    CHECK(h[i].seq() == static_cast<int64_t>(i + 1));
    auto& expected = next_of[h[i].author()];
    CHECK(h[i].text() == "m" + std::to_string(expected));
    ++expected;
  }
  CHECK(next_of.size() == 3);
}

TEST_CASE(
    "rooms: members on every node hear messages, edits and typing live, a reconnecting client "
    "catches up by sequence number and misses nothing, a banned member stops hearing, and a "
    "member connected on two nodes stays online until both connections close") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto alice = test::new_user(c.at(0).http_port, "alice");
  auto bob = test::new_user(c.at(1).http_port, "bob");
  auto carol = test::new_user(c.at(2).http_port, "carol");
  auto eve = test::new_user(c.at(2).http_port, "eve");
  auto room = create_room(c.at(0).http_port, alice, "group", {bob.id, carol.id});
  auto topic = "rooms/" + room;

  std::optional<ws_client> bob_ws;
  bob_ws.emplace(c.at(1).http_port, "/v1/ws", bob.token);
  REQUIRE(bob_ws->status() == 101);
  bob_ws->send(subscribe(topic));
  CHECK(field(bob_ws->next(), "type") == "subscribed");
  ws_client carol_ws{c.at(2).http_port, "/v1/ws", carol.token};
  carol_ws.send(subscribe(topic));
  CHECK(field(carol_ws.next(), "type") == "subscribed");
  // Not a member: refused.
  ws_client eve_ws{c.at(2).http_port, "/v1/ws", eve.token};
  eve_ws.send(subscribe(topic));
  CHECK(field(eve_ws.next(), "code") == "unknown_topic");

  // Posted on n1, heard on n2 and n3 in order.
  for (int k = 1; k <= 5; ++k)
    REQUIRE(
        post(c.at(0).http_port, room, alice, "live " + std::to_string(k), "a" + std::to_string(k))
            .status == 201);
  for (int k = 1; k <= 5; ++k) {
    auto ev = next_event(*bob_ws, "message");
    CHECK(field(ev, "data.message.seq") == std::to_string(k));
    CHECK(field(ev, "data.message.text") == "live " + std::to_string(k));
    CHECK(field(next_event(carol_ws, "message"), "data.message.seq") == std::to_string(k));
  }
  CHECK(test::call_as(c.at(0).http_port, "PATCH", "/v1/rooms/" + room + "/messages/5", alice,
                      R"({"text":"live 5!"})")
            .status == 200);
  CHECK(field(next_event(*bob_ws, "message_edited"), "data.message.text") == "live 5!");

  // Typing: another member sees who types.
  carol_ws.send(R"({"type":"typing","topic":")" + topic + R"("})");
  CHECK(field(next_event(*bob_ws, "typing"), "data.user") == carol.id);

  // Bob reads up to 5, drops his connection; messages go on meanwhile; he comes back on
  // another node, subscribes, then asks what came after 5: everything, once, in order.
  CHECK(parse_json<messages::RoomInfo>(test::call_as(c.at(1).http_port, "POST",
                                                     "/v1/rooms/" + room + "/read", bob,
                                                     R"({"seq":5})"))
            ->unread() == 0);
  bob_ws.reset();
  for (int k = 6; k <= 12; ++k)
    REQUIRE(post(c.at(2).http_port, room, carol, "while away " + std::to_string(k),
                 "c" + std::to_string(k))
                .status == 201);
  auto info = parse_json<messages::RoomInfo>(
      test::call_as(c.at(1).http_port, "GET", "/v1/rooms/" + room, bob));
  CHECK(info->unread() == 7);
  std::optional<ws_client> back;
  back.emplace(c.at(0).http_port, "/v1/ws", bob.token);
  back->send(subscribe(topic));
  CHECK(field(back->next(), "type") == "subscribed");
  REQUIRE(post(c.at(0).http_port, room, alice, "after return", "a13").status == 201);
  std::set<int64_t> seen;
  for (const auto& m : history(c.at(0).http_port, room, bob, "?after=5")) seen.insert(m.seq());
  auto live = next_event(*back, "message");
  seen.insert(std::stoll(field(live, "data.message.seq")));
  CHECK(seen.size() == 8);
  CHECK(*seen.begin() == 6);
  CHECK(*seen.rbegin() == 13);

  // The room list shows unread counts (from the read model: it catches up).
  CHECK(test::eventually(10s, [&] {
    auto rooms =
        parse_json<messages::RoomPage>(test::call_as(c.at(1).http_port, "GET", "/v1/rooms", bob));
    return rooms && rooms->rooms_size() == 1 && rooms->rooms(0).id() == room &&
           rooms->rooms(0).unread() == 8;
  }));

  // Carol is banned: her subscription ends on her node and she hears nothing more.
  CHECK(test::call_as(c.at(0).http_port, "POST", "/v1/rooms/" + room + "/bans", alice,
                      R"({"user":")" + carol.id + "\"}")
            .status == 200);
  bool told = false;
  for (int i = 0; i < 50 && !told; ++i) {
    auto m = carol_ws.next(5s);
    if (!m) break;
    told = field(m, "type") == "unsubscribed" && field(m, "reason") == "removed";
  }
  CHECK(told);
  REQUIRE(post(c.at(0).http_port, room, alice, "without carol", "a14").status == 201);
  CHECK(field(next_event(*back, "message"), "data.message.text") == "without carol");
  CHECK_FALSE(next_event(carol_ws, "message", 1s));

  // Presence: a connected member shows online in the member list.
  auto members = parse_json<messages::RoomMemberPage>(
      test::call_as(c.at(0).http_port, "GET", "/v1/rooms/" + room + "/members", alice));
  REQUIRE(members);
  for (const auto& m : members->members())
    if (m.user() == bob.id) CHECK(m.presence() == "online");

  // Presence over nodes: Bob connects on n2 too. When his n1 connection closes he is still
  // online, and a watcher on n3 hears so; when the n2 one closes, he is offline.
  ws_client watcher{c.at(2).http_port, "/v1/ws", alice.token};
  watcher.send(subscribe("presence/" + bob.id));
  CHECK(field(watcher.next(), "type") == "subscribed");
  std::optional<ws_client> bob_n2;
  bob_n2.emplace(c.at(1).http_port, "/v1/ws", bob.token);
  REQUIRE(bob_n2->status() == 101);
  // Bob's first connection on n2 announces him once n2's mark is stored.
  CHECK(field(next_event(watcher, "presence"), "data.status") == "online");
  back.reset();
  CHECK(field(next_event(watcher, "presence"), "data.status") == "online");
  members = parse_json<messages::RoomMemberPage>(
      test::call_as(c.at(0).http_port, "GET", "/v1/rooms/" + room + "/members", alice));
  REQUIRE(members);
  for (const auto& m : members->members())
    if (m.user() == bob.id) CHECK(m.presence() == "online");
  bob_n2.reset();
  CHECK(field(next_event(watcher, "presence"), "data.status") == "offline");
}

TEST_CASE(
    "rooms: every message acknowledged before the room's node is killed is in the history "
    "afterwards, including pages older than the room keeps in memory") {
  test::test_cluster c{3};
  // Three posters write more than a room keeps in memory without waiting for the per-member
  // limit.
  c.set_section("chorus.social", "message-limit=1000\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto owner = test::new_user(c.at(0).http_port, "owner");
  // A room owned by n3, so that n1 and n2 survive to serve it. Rooms are keyed by random ids:
  // make rooms until one lands there.
  std::string room;
  std::vector<std::string> nodes{"n1", "n2", "n3"};
  for (int i = 0; i < 40 && room.empty(); ++i) {
    auto id = create_room(c.at(0).http_port, owner, "group", {});
    if (nodes[*rendezvous_owner("room/" + id, nodes)] == "n3") room = id;
  }
  REQUIRE(!room.empty());
  // More messages than the room keeps in memory (256).
  std::vector<user> posters;
  for (int i = 0; i < 3; ++i) {
    posters.push_back(test::new_user(c.at(static_cast<size_t>(i % 2)).http_port, "poster"));
    REQUIRE(test::call_as(c.at(0).http_port, "POST", "/v1/rooms/" + room + "/members", owner,
                          R"({"user":")" + posters.back().id + "\"}")
                .status == 200);
  }
  std::vector<std::string> acked;
  for (int round = 0; round < 100; ++round)
    for (size_t i = 0; i < posters.size(); ++i) {
      auto text = "r" + std::to_string(round) + "p" + std::to_string(i);
      auto r = post(c.at(i % 2).http_port, room, posters[i], text, text);
      REQUIRE_MESSAGE(r.status == 201, r.body);
      acked.push_back(text);
    }
  c.at(2).process->signal(SIGKILL);
  REQUIRE(test::eventually(10s, [&] { return c.sees(0, "n3", "down"); }));

  // The room comes back on a surviving node from its journal; the oldest pages come from the
  // read model, which may still be catching up (503 until then).
  std::vector<messages::ChatMessage> h;
  CHECK(test::eventually(30s, [&] {
    auto r =
        test::call_as(c.at(1).http_port, "GET", "/v1/rooms/" + room + "/messages?limit=1", owner);
    if (r.status != 200) return false;
    h.clear();
    int64_t before = 0;
    for (;;) {
      auto path = "/v1/rooms/" + room + "/messages?limit=100" +
                  (before > 0 ? "&before=" + std::to_string(before) : "");
      auto page = test::call_as(c.at(1).http_port, "GET", path, owner);
      if (page.status != 200) return false;
      auto p = parse_json<messages::ChatMessagePage>(page);
      if (!p || p->messages_size() == 0) break;
      h.insert(h.begin(), p->messages().begin(), p->messages().end());
      before = p->messages(0).seq();
      if (before == 1) break;
    }
    return true;
  }));
  REQUIRE(h.size() == acked.size());
  for (size_t i = 0; i < h.size(); ++i) {
    CHECK(h[i].seq() == static_cast<int64_t>(i + 1));
    CHECK(h[i].text() == acked[i]);
  }
  // And it goes on from there.
  auto after = post(c.at(0).http_port, room, owner, "after the kill", "k1");
  REQUIRE_MESSAGE(after.status == 201, after.body);
  CHECK(parse_json<messages::ChatMessage>(after)->seq() == static_cast<int64_t>(acked.size() + 1));
  CHECK(all_history(c.at(0).http_port, room, owner).size() == acked.size() + 1);

  // A room keeps at most 1 MiB of its newest messages in memory: after 80 messages of 4,000
  // four-byte characters (16 KB each) the first of them has left it, so its author can no
  // longer edit it, while the newest can be.
  std::string big;
  for (int i = 0; i < 4000; ++i) big += "\xF0\x9F\x8E\xB5";  // U+1F3B5, a musical note
  std::vector<int64_t> seqs;
  for (int k = 0; k < 80; ++k) {
    auto r = post(c.at(0).http_port, room, owner, big, "big" + std::to_string(k));
    REQUIRE_MESSAGE(r.status == 201, r.body);
    seqs.push_back(parse_json<messages::ChatMessage>(r)->seq());
  }
  auto edit = [&](int64_t seq) {
    return test::call_as(c.at(1).http_port, "PATCH",
                         "/v1/rooms/" + room + "/messages/" + std::to_string(seq), owner,
                         R"({"text":"edited"})");
  };
  auto too_old = edit(seqs.front());
  CHECK(too_old.status == 409);
  CHECK(too_old.body.find("newest messages") != std::string::npos);
  CHECK(edit(seqs.back()).status == 200);
}

TEST_CASE(
    "rooms: a message crosses the network once per node whose clients hold the room, however "
    "many they are, and not at all to a node where nobody holds it") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto alice = test::new_user(c.at(0).http_port, "alice");
  auto bob = test::new_user(c.at(1).http_port, "bob");
  // A room owned by n1, so that its events start there.
  std::string room;
  std::vector<std::string> nodes{"n1", "n2", "n3"};
  for (int i = 0; i < 40 && room.empty(); ++i) {
    auto id = create_room(c.at(0).http_port, alice, "group", {bob.id});
    if (nodes[*rendezvous_owner("room/" + id, nodes)] == "n1") room = id;
  }
  REQUIRE(!room.empty());
  // Two of bob's clients on n2.
  std::vector<std::unique_ptr<ws_client>> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(std::make_unique<ws_client>(c.at(1).http_port, "/v1/ws", bob.token));
    clients.back()->send(subscribe("rooms/" + room));
    REQUIRE(field(clients.back()->next(), "type") == "subscribed");
  }
  auto peer_events = [&](size_t i) {
    return test::metric_value(test::http_get(c.at(i).metrics_port, "/metrics").body,
                              "chorus_live_peer_events_total");
  };
  auto n2_before = peer_events(1);
  auto n3_before = peer_events(2);
  for (int k = 1; k <= 5; ++k)
    REQUIRE(post(c.at(0).http_port, room, alice, "m" + std::to_string(k), "f" + std::to_string(k))
                .status == 201);
  for (auto& ws : clients)
    for (int k = 1; k <= 5; ++k)
      CHECK(field(next_event(*ws, "message"), "data.message.seq") == std::to_string(k));
  CHECK(peer_events(1) - n2_before == 5);
  CHECK(peer_events(2) - n3_before == 0);
}

TEST_CASE(
    "rooms: every room and notification endpoint that takes a body refuses malformed JSON, "
    "unknown keys, wrong types, oversized fields and anonymous callers, and changes nothing") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p = c.at(0).http_port;
  auto owner = test::new_user(p, "owner");
  auto other = test::new_user(p, "other");
  auto room = create_room(p, owner, "public", {other.id}, "lobby");
  auto base = "/v1/rooms/" + room;
  REQUIRE(post(p, room, owner, "first", "c1").status == 201);
  struct endpoint {
    std::string method;
    std::string path;
    std::string wrong_type;  ///< a body whose field has the wrong type
    std::string oversized;   ///< a body whose field is too long or out of range
  };
  const std::string big(5000, 'x');
  std::vector<endpoint> endpoints{
      {"POST", "/v1/rooms", R"({"kind":"group","name":7})",
       R"({"kind":"group","name":")" + big + "\"}"},
      {"PATCH", base, R"({"slow_mode_s":"slow"})", R"({"slow_mode_s":99999})"},
      {"POST", base + "/members", R"({"user":5})", R"({"user":")" + big + "\"}"},
      {"PUT", base + "/members/" + other.id, R"({"role":true})", R"({"role":")" + big + "\"}"},
      {"POST", base + "/bans", R"({"user":[]})", R"({"user":")" + big + "\"}"},
      {"POST", base + "/mutes", R"({"user":")" + other.id + R"(","seconds":"long"})",
       R"({"user":")" + other.id + R"(","seconds":99999999999})"},
      {"POST", base + "/messages", R"({"text":"x","client_id":"c","mentions":"all"})",
       R"({"text":"x","client_id":")" + big + "\"}"},
      {"PATCH", base + "/messages/1", R"({"text":{}})", R"({"text":")" + big + "\"}"},
      {"POST", base + "/messages/1/reports", R"({"reason":1})", R"({"reason":")" + big + "\"}"},
      {"POST", base + "/read", R"({"seq":"1"})", R"({"seq":-1})"},
      {"POST", "/v1/me/notifications/read", R"({"ids":"all"})",
       R"({"ids":[")" + std::string(201, 'a') + "\"]}"},
      {"PUT", "/v1/me/notifications/preferences", R"({"phone":12})",
       R"({"push_token":")" + big + "\"}"},
  };
  for (const auto& e : endpoints) {
    CAPTURE(e.method);
    CAPTURE(e.path);
    CHECK(error_is(test::call_as(p, e.method, e.path, owner, "{not json"), 400, "malformed_json"));
    CHECK(error_is(test::call_as(p, e.method, e.path, owner, "[1,2]"), 400, "malformed_json"));
    CHECK(error_is(test::call_as(p, e.method, e.path, owner, R"({"surprise":1})"), 422,
                   "validation"));
    CHECK(error_is(test::call_as(p, e.method, e.path, owner, e.wrong_type), 422, "validation"));
    CHECK(error_is(test::call_as(p, e.method, e.path, owner, e.oversized), 422, "validation"));
    CHECK(error_is(test::http_call(p, e.method, e.path, "{}"), 401, "unauthenticated"));
    CHECK(error_is(
        test::http_call(p, e.method, e.path, "{}", test::bearer(owner.token), "text/plain"), 415,
        "unsupported_media_type"));
  }
  // Members who may not: a plain member of the room on the moderators' endpoints.
  for (const auto& [method, path, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"PATCH", base, R"({"slow_mode_s":5})"},
           {"POST", base + "/bans", R"({"user":")" + owner.id + "\"}"},
           {"POST", base + "/mutes", R"({"user":")" + owner.id + R"(","seconds":5})"},
           {"PUT", base + "/members/" + owner.id, R"({"role":"member"})"},
           {"GET", base + "/reports", ""},
       }) {
    CAPTURE(path);
    CHECK(error_is(test::call_as(p, method, path, other, body), 403, "forbidden"));
  }
  // Nothing changed.
  auto info = parse_json<messages::RoomInfo>(test::call_as(p, "GET", base, owner));
  REQUIRE(info);
  CHECK(info->last_seq() == 1);
  CHECK(info->slow_mode_s() == 0);
  CHECK(info->member_count() == 2);
  CHECK(info->name() == "lobby");
}
