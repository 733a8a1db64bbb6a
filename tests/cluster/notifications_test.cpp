#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "messages/social.pb.h"
#include "tests/support/accounts.hpp"
#include "tests/support/replies.hpp"
#include "tests/support/smtp_sink.hpp"
#include "tests/support/test_cluster.hpp"
#include "tests/support/webhook_receiver.hpp"
#include "tests/support/ws_client.hpp"

// Notifications against real nodes: what makes one (a follow, a mention, a reply, a direct
// message while offline), the inbox and its read marks, live delivery, preferences, and the
// external channels: email received by a real SMTP server (direct messages as one digest) and
// provider webhooks that fail before they succeed.

using namespace chorus;
using namespace std::chrono_literals;
using test::error_is;
using test::field;
using test::parse_json;
using test::ws_client;

namespace {

using user = test::signed_in_user;

std::vector<messages::Notification> inbox(uint16_t port, const user& u,
                                          const std::string& query = "") {
  auto r = test::call_as(port, "GET", "/v1/me/notifications" + query, u);
  auto page = parse_json<messages::NotificationPage>(r);
  if (r.status != 200 || !page) return {};
  return {page->notifications().begin(), page->notifications().end()};
}

/// The inbox's notification of `type`, once it is there (within 20 s).
std::optional<messages::Notification> await_notification(uint16_t port, const user& u,
                                                         const std::string& type) {
  std::optional<messages::Notification> out;
  test::eventually(20s, [&] {
    for (const auto& n : inbox(port, u))
      if (n.type() == type) out = n;
    return out.has_value();
  });
  return out;
}

std::string create_room(uint16_t port, const user& owner, const std::string& body) {
  auto r = test::call_as(port, "POST", "/v1/rooms", owner, body);
  REQUIRE_MESSAGE(r.status == 201, r.body);
  return parse_json<messages::RoomInfo>(r)->id();
}

test::http_reply post(uint16_t port, const std::string& room, const user& u,
                      const std::string& extra) {
  return test::call_as(port, "POST", "/v1/rooms/" + room + "/messages", u, "{" + extra + "}");
}

}  // namespace

TEST_CASE(
    "notifications: a follow, a mention and a reply reach the user's inbox and its WebSocket on "
    "another node, a direct message does not while the user is online, read marks stick, and "
    "bad requests are refused") {
  test::test_cluster c{2};
  c.set_roles(1, R"("edge")");  // one notifier: rows are handled in order
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto alice = test::new_user(p0, "alice");
  auto bob = test::new_user(p1, "bob");

  ws_client ws{p1, "/v1/ws", bob.token};
  REQUIRE(ws.status() == 101);
  ws.send(R"({"type":"subscribe","topic":"users/)" + bob.id + R"(/notifications"})");
  CHECK(field(ws.next(), "type") == "subscribed");

  REQUIRE(test::call_as(p0, "POST", "/v1/users/" + bob.id + "/follow", alice).status == 204);
  auto followed = await_notification(p1, bob, "new_follower");
  REQUIRE(followed);
  CHECK(followed->actor() == alice.id);
  CHECK_FALSE(followed->read());
  bool heard = false;
  for (int i = 0; i < 5 && !heard; ++i) {
    auto m = ws.next(10s);
    heard = field(m, "data.type") == "notification" &&
            field(m, "data.notification.type") == "new_follower";
  }
  CHECK(heard);

  auto room =
      create_room(p0, alice, R"({"kind":"group","name":"band","members":[")" + bob.id + R"("]})");
  // A direct message to someone online makes no notification; the mention after it does.
  auto dm = create_room(p0, alice, R"({"kind":"direct","members":[")" + bob.id + R"("]})");
  REQUIRE(post(p0, dm, alice, R"("text":"you there?","client_id":"d1")").status == 201);
  REQUIRE(post(p0, room, alice,
               R"("text":"hey @bob","client_id":"m1","mentions":[")" + bob.id + R"("])")
              .status == 201);
  auto mention = await_notification(p1, bob, "mention");
  REQUIRE(mention);
  CHECK(mention->room() == room);
  CHECK(mention->seq() == 1);
  CHECK(mention->text() == "hey @bob");
  for (const auto& n : inbox(p1, bob)) CHECK(n.type() != "direct_message");
  // A reply notifies the author replied to.
  REQUIRE(post(p1, room, bob, R"("text":"hi!","client_id":"b1","reply_to":1)").status == 201);
  auto reply = await_notification(p0, alice, "reply");
  REQUIRE(reply);
  CHECK(reply->actor() == bob.id);

  // Read marks: one by id, then all.
  auto page =
      parse_json<messages::NotificationPage>(test::call_as(p1, "GET", "/v1/me/notifications", bob));
  REQUIRE(page);
  CHECK(page->unread() == 2);
  auto one = test::call_as(p1, "POST", "/v1/me/notifications/read", bob,
                           R"({"ids":[")" + followed->id() + R"("]})");
  CHECK(parse_json<messages::NotificationPage>(one)->unread() == 1);
  CHECK(inbox(p1, bob, "?unread=true").size() == 1);
  auto all = test::call_as(p1, "POST", "/v1/me/notifications/read", bob, R"({"all":true})");
  CHECK(parse_json<messages::NotificationPage>(all)->unread() == 0);
  CHECK(inbox(p1, bob, "?unread=true").empty());
  CHECK(inbox(p1, bob).size() == 2);

  // Bad requests.
  CHECK(error_is(test::http_get(p1, "/v1/me/notifications"), 401, "unauthenticated"));
  CHECK(error_is(test::call_as(p1, "GET", "/v1/me/notifications?unread=maybe", bob), 422,
                 "validation"));
  CHECK(error_is(test::call_as(p1, "GET", "/v1/me/notifications?limit=0", bob), 422, "validation"));
  CHECK(error_is(test::call_as(p1, "POST", "/v1/me/notifications/read", bob, "{}"), 422,
                 "validation"));
  CHECK(error_is(test::call_as(p1, "POST", "/v1/me/notifications/read", bob, R"({"all":"yes"})"),
                 422, "validation"));
  CHECK(error_is(test::call_as(p1, "POST", "/v1/me/notifications/read", bob, "{nope"), 400,
                 "malformed_json"));
  auto prefs = "/v1/me/notifications/preferences";
  CHECK(error_is(test::call_as(p1, "PUT", prefs, bob, R"({"channels":{"gossip":{"email":true}}})"),
                 422, "validation"));
  CHECK(error_is(test::call_as(p1, "PUT", prefs, bob, R"({"quiet_start_min":"late"})"), 422,
                 "validation"));
  CHECK(error_is(test::call_as(p1, "PUT", prefs, bob, R"({"quiet_start_min":2000})"), 422,
                 "validation"));
  CHECK(error_is(test::call_as(p1, "PUT", prefs, bob, R"({"phone":"12"})"), 422, "validation"));
  CHECK(error_is(test::call_as(p1, "PUT", prefs, bob, R"({"colour":"blue"})"), 422, "validation"));
  CHECK(error_is(test::http_call(p1, "PUT", prefs, "{}"), 401, "unauthenticated"));

  // An artist bob follows publishes a track: once it is ready, bob hears of it.
  test::temp_dir dir;
  auto flac = dir.path() + "/song.flac";
  auto made = test::run(
      {"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=3:r=44100", flac});
  REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  auto artist = test::new_user(p0, "artist", true);
  REQUIRE(test::call_as(p1, "POST", "/v1/users/" + artist.id + "/follow", bob).status == 204);
  auto h = test::bearer(artist.token);
  h.emplace_back("X-Track-Title", "First Light");
  auto uploaded = test::http_call(p0, "POST", "/v1/tracks", test::read_file(flac), h, "audio/flac");
  REQUIRE_MESSAGE(uploaded.status == 202, uploaded.body);
  std::optional<messages::Notification> released;
  CHECK(test::eventually(60s, [&] {
    for (const auto& n : inbox(p1, bob))
      if (n.type() == "new_track") released = n;
    return released.has_value();
  }));
  REQUIRE(released);
  CHECK(released->actor() == artist.id);
  CHECK(released->text() == "First Light");
  auto kept = parse_json<messages::NotifyPreferences>(test::call_as(p1, "GET", prefs, bob));
  REQUIRE(kept);
  CHECK(kept->channels().empty());
}

TEST_CASE(
    "notifications: emails reach a real SMTP server, direct messages to an offline user arrive "
    "as one digest, and webhooks that fail twice still get each notification exactly once by "
    "id") {
  test::smtp_sink smtp;
  const std::string secret = "test-webhook-secret-0123456789";
  test::webhook_receiver hooks{{secret, 2}};
  test::test_cluster c{2};
  c.set_roles(1, R"("edge")");
  c.set_section("chorus.notify", "smtp-url=\"" + smtp.url() + "\"\nsms-webhook=\"" + hooks.url() +
                                     "\"\npush-webhook=\"" + hooks.url() + "\"\nwebhook-secret=\"" +
                                     secret +
                                     "\"\ndigest-delay=5s\nretry-base=50ms\nretry-max=400ms\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto alice = test::new_user(p0, "alice");
  auto bob = test::new_user(p1, "bob");

  auto saved = test::call_as(p1, "PUT", "/v1/me/notifications/preferences", bob,
                             R"({"channels":{"new_follower":{"email":true,"push":true},)"
                             R"("direct_message":{"email":true},"mention":{"sms":true}},)"
                             R"("phone":"+15551234567","push_token":"device-1"})");
  REQUIRE_MESSAGE(saved.status == 200, saved.body);
  CHECK(parse_json<messages::NotifyPreferences>(saved)->email() == bob.email);

  // A follow: an email and a push.
  REQUIRE(test::call_as(p0, "POST", "/v1/users/" + bob.id + "/follow", alice).status == 204);
  auto followed = await_notification(p1, bob, "new_follower");
  REQUIRE(followed);
  std::vector<test::smtp_sink::message> mail;
  CHECK(test::eventually(20s, [&] {
    mail = smtp.messages();
    return !mail.empty();
  }));
  REQUIRE(mail.size() == 1);
  CHECK(mail[0].rcpt_to == std::vector<std::string>{bob.email});
  CHECK(test::has(mail[0].raw, "Subject: You have a new follower"));
  CHECK(test::has(mail[0].raw, "Message-ID: <" + followed->id() + "@"));
  // The push webhook failed twice (500) and then took it: once.
  std::vector<test::webhook_receiver::delivery> pushed;
  CHECK(test::eventually(20s, [&] {
    pushed = hooks.deliveries();
    return !pushed.empty();
  }));
  REQUIRE(pushed.size() == 1);
  CHECK(pushed[0].id == followed->id());
  CHECK(test::has(pushed[0].body, R"("to":"device-1")"));

  // A mention: an SMS through its webhook, after two failures, once.
  auto room =
      create_room(p0, alice, R"({"kind":"group","name":"band","members":[")" + bob.id + R"("]})");
  REQUIRE(post(p0, room, alice,
               R"("text":"@bob look","client_id":"m1","mentions":[")" + bob.id + R"("])")
              .status == 201);
  auto mention = await_notification(p1, bob, "mention");
  REQUIRE(mention);
  CHECK(test::eventually(20s, [&] { return hooks.deliveries().size() == 2; }));
  auto all = hooks.deliveries();
  REQUIRE(all.size() == 2);
  CHECK(all[1].id == mention->id());
  CHECK(test::has(all[1].body, R"("to":"+15551234567")"));

  // Three direct messages while bob is offline: one digest email with all three.
  auto dm = create_room(p0, alice, R"({"kind":"direct","members":[")" + bob.id + R"("]})");
  for (const auto* text : {"first dm", "second dm", "third dm"})
    REQUIRE(
        post(p0, dm, alice, std::string{R"("text":")"} + text + R"(","client_id":")" + text + "\"")
            .status == 201);
  CHECK(test::eventually(30s, [&] { return smtp.messages().size() == 2; }));
  mail = smtp.messages();
  REQUIRE(mail.size() == 2);
  CHECK_MESSAGE(test::has(mail[1].raw, "Subject: 3 new direct messages"),
                test::read_file(c.log_of(0)));
  for (const auto* text : {"first dm", "second dm", "third dm"})
    CHECK_MESSAGE(test::has(mail[1].raw, text), mail[1].raw);
  CHECK(inbox(p1, bob).size() == 5);
  // Nothing more arrives: each notification went once per channel.
  CHECK(hooks.deliveries().size() == 2);
  CHECK(smtp.messages().size() == 2);
}
