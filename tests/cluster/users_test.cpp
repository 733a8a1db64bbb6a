#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "messages/users.pb.h"
#include "nodes/placement.hpp"
#include "tests/support/process.hpp"
#include "tests/support/replies.hpp"
#include "tests/support/test_cluster.hpp"

using namespace chorus;
using namespace std::chrono_literals;

namespace {

using test::error_is;
using test::has;
using test::parse_json;

using headers = std::vector<std::pair<std::string, std::string>>;

/// A name no other test run uses (the database is per cluster, Redis limits are shared).
std::string unique(const std::string& base) {
  static std::mt19937_64 rng{std::random_device{}()};
  return base + std::to_string(rng() % 1000000000);
}

headers bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

test::http_reply post_json(uint16_t port, const std::string& path, const std::string& body,
                           const headers& h = {}) {
  return test::http_call(port, "POST", path, body, h);
}

test::http_reply sign_up(uint16_t port, const std::string& name,
                         const std::string& password = "correct horse battery") {
  return post_json(port, "/v1/auth/register",
                   R"({"username":")" + name + R"(","email":")" + name +
                       R"(@example.org","password":")" + password + R"("})");
}

test::http_reply log_in(uint16_t port, const std::string& name,
                        const std::string& password = "correct horse battery",
                        const headers& h = {}) {
  return post_json(port, "/v1/auth/login",
                   R"({"username":")" + name + R"(","password":")" + password + R"("})", h);
}

/// Registers and logs in; the user and its token.
std::pair<messages::Me, std::string> member(uint16_t port, const std::string& name) {
  auto reg = sign_up(port, name);
  REQUIRE_MESSAGE(reg.status == 201, reg.body);
  auto login = parse_json<messages::LoginResult>(log_in(port, name));
  REQUIRE(login);
  return {login->user(), login->token()};
}

}  // namespace

TEST_CASE("register, log in, read /v1/me, log out: the token then stops working") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto name = unique("Ann");
  auto reg = sign_up(port, name);
  REQUIRE_MESSAGE(reg.status == 201, reg.body);
  auto created = parse_json<messages::Me>(reg);
  REQUIRE(created);
  CHECK(created->username() == name);
  CHECK(created->email() == name + "@example.org");
  CHECK(std::vector<std::string>(created->roles().begin(), created->roles().end()) ==
        std::vector<std::string>{"listener"});
  CHECK(reg.header("Location") == "/v1/users/" + created->id());
  CHECK_FALSE(has(reg.body, "argon2"));  // the hash never leaves the server

  auto login = log_in(port, name);
  REQUIRE_MESSAGE(login.status == 200, login.body);
  CHECK(login.header("Cache-Control") == "no-store");
  auto result = parse_json<messages::LoginResult>(login);
  REQUIRE(result);
  CHECK(result->token().size() == 43);
  CHECK(result->user().id() == created->id());

  auto me = test::http_call(port, "GET", "/v1/me", "", bearer(result->token()), "");
  REQUIRE_MESSAGE(me.status == 200, me.body);
  auto mine = parse_json<messages::Me>(me);
  REQUIRE(mine);
  CHECK(mine->id() == created->id());
  CHECK(mine->username() == name);

  auto out = test::http_call(port, "POST", "/v1/auth/logout", "", bearer(result->token()), "");
  CHECK(out.status == 204);
  auto after = test::http_call(port, "GET", "/v1/me", "", bearer(result->token()), "");
  CHECK(error_is(after, 401, "unauthenticated"));
  CHECK(after.header("WWW-Authenticate") == "Bearer");
  // Without a token, with a malformed one, with a made-up one: 401 each time.
  CHECK(error_is(test::http_call(port, "GET", "/v1/me", "", {}, ""), 401, "unauthenticated"));
  CHECK(error_is(test::http_call(port, "GET", "/v1/me", "", bearer("x"), ""), 401,
                 "unauthenticated"));
  CHECK(error_is(test::http_call(port, "GET", "/v1/me", "", bearer(std::string(43, 'A')), ""), 401,
                 "unauthenticated"));
}

TEST_CASE(
    "registration refuses a taken username (any case) or email, weak and common passwords, and "
    "bad bodies, each in the one error shape") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto name = unique("bob");
  REQUIRE(sign_up(port, name).status == 201);
  std::string upper = name;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  auto again =
      post_json(port, "/v1/auth/register",
                R"({"username":")" + upper +
                    R"(","email":"other@example.org","password":"correct horse battery"})");
  CHECK(error_is(again, 409, "username_taken"));
  auto same_mail = post_json(port, "/v1/auth/register",
                             R"({"username":")" + unique("carl") + R"(","email":")" + name +
                                 R"(@EXAMPLE.org","password":"correct horse battery"})");
  CHECK(error_is(same_mail, 409, "email_taken"));
  // The username the failed attempt claimed first was released: it can register now.
  auto other = unique("dora");
  auto freed = post_json(port, "/v1/auth/register",
                         R"({"username":")" + other + R"(","email":")" + other +
                             R"(@example.org","password":"correct horse battery"})");
  CHECK(freed.status == 201);

  auto with_password = [&](const std::string& pw) {
    auto n = unique("eve");
    return post_json(port, "/v1/auth/register",
                     R"({"username":")" + n + R"(","email":")" + n +
                         R"(@example.org","password":")" + pw + R"("})");
  };
  CHECK(error_is(with_password("short"), 422, "weak_password"));
  CHECK(error_is(with_password(std::string(129, 'x')), 422, "weak_password"));
  CHECK(error_is(with_password("password1"), 422, "weak_password"));  // a common one
  CHECK(with_password("ünïcödé-pässwörd").status == 201);             // no composition rules

  CHECK(error_is(post_json(port, "/v1/auth/register", "{not json"), 400, "malformed_json"));
  CHECK(error_is(post_json(port, "/v1/auth/register", R"({"username":"x"})"), 422, "validation"));
  CHECK(error_is(post_json(port, "/v1/auth/register",
                           R"({"username":42,"email":"a@b.c","password":"correct horse battery"})"),
                 422, "validation"));
  CHECK(error_is(post_json(port, "/v1/auth/register",
                           R"({"username":"okname","email":"a@b.c","password":"correct horse )"
                           R"(battery","admin":true})"),
                 422, "validation"));
  CHECK(error_is(post_json(port, "/v1/auth/register",
                           R"({"username":"no spaces","email":"a@b.c","password":"correct horse )"
                           R"(battery"})"),
                 422, "validation"));
  CHECK(error_is(post_json(port, "/v1/auth/register",
                           R"({"username":"okname2","email":"not-an-address","password":)"
                           R"("correct horse battery"})"),
                 422, "validation"));
  CHECK(error_is(
      test::http_call(port, "POST", "/v1/auth/register", R"({"username":"x"})", {}, "text/plain"),
      415, "unsupported_media_type"));
}

TEST_CASE(
    "login: a wrong password and an unknown user get the same 401, and repeated failures are "
    "throttled with 429 + Retry-After for that account only") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto name = unique("fay");
  REQUIRE(sign_up(port, name).status == 201);
  auto wrong = log_in(port, name, "wrong password here");
  auto unknown = log_in(port, unique("nobody"), "wrong password here");
  CHECK(error_is(wrong, 401, "invalid_credentials"));
  CHECK(error_is(unknown, 401, "invalid_credentials"));
  // Same message for both: the answer does not tell which accounts exist.
  auto message = [](const std::string& body) { return body.substr(0, body.find("request_id")); };
  CHECK(message(wrong.body) == message(unknown.body));

  int throttled = 0;
  test::http_reply last;
  for (int i = 0; i < 12; ++i) {
    last = log_in(port, name, "wrong password here");
    if (last.status == 429) {
      ++throttled;
      break;
    }
  }
  REQUIRE(throttled == 1);
  CHECK(error_is(last, 429, "too_many_attempts"));
  CHECK(!last.header("Retry-After").empty());
  // Another account from the same address is not locked out.
  auto other = unique("gus");
  REQUIRE(sign_up(port, other).status == 201);
  CHECK(log_in(port, other).status == 200);
}

TEST_CASE(
    "a session works on every node, a new login rotates the token, and an account survives the "
    "loss of the node that held it") {
  test::test_cluster c{3};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto name = unique("hal");
  auto [me, token] = member(c.at(0).http_port, name);
  for (size_t i = 0; i < 3; ++i) {
    auto r = test::http_call(c.at(i).http_port, "GET", "/v1/me", "", bearer(token), "");
    CHECK_MESSAGE(r.status == 200, r.body);
  }
  auto patched = test::http_call(c.at(1).http_port, "PATCH", "/v1/me",
                                 R"({"display_name":"Hal 9000"})", bearer(token));
  REQUIRE_MESSAGE(patched.status == 200, patched.body);

  // Logging in again while signed in ends the old session.
  auto second = parse_json<messages::LoginResult>(
      log_in(c.at(2).http_port, name, "correct horse battery", bearer(token)));
  REQUIRE(second);
  CHECK(second->token() != token);
  CHECK(test::http_call(c.at(0).http_port, "GET", "/v1/me", "", bearer(token), "").status == 401);
  token = second->token();

  // Kill the node that owns the user entity: the account, its change and the session come back
  // on the others.
  std::vector<std::string> names{"n1", "n2", "n3"};
  auto owner = names[*rendezvous_owner("user/" + me.id(), names)];
  size_t victim = owner == "n1" ? 0 : owner == "n2" ? 1 : 2;
  c.at(victim).process->signal(SIGKILL);
  size_t survivor = (victim + 1) % 3;
  REQUIRE(test::eventually(10s, [&] { return c.sees(survivor, owner, "down"); }));
  std::optional<messages::Me> after;
  REQUIRE(test::eventually(10s, [&] {
    after = parse_json<messages::Me>(
        test::http_call(c.at(survivor).http_port, "GET", "/v1/me", "", bearer(token), ""));
    return after && !after->id().empty();
  }));
  CHECK(after->display_name() == "Hal 9000");
  CHECK(after->username() == name);
}

TEST_CASE(
    "profiles: PATCH /v1/me changes name and bio, others see the profile without the email, and "
    "bad bodies are refused") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto [me, token] = member(port, unique("ida"));
  auto ok = test::http_call(port, "PATCH", "/v1/me",
                            R"({"display_name":"Ida","bio":"Plays the theremin."})", bearer(token));
  REQUIRE_MESSAGE(ok.status == 200, ok.body);
  auto profile = test::http_get(port, "/v1/users/" + me.id());
  REQUIRE(profile.status == 200);
  auto p = parse_json<messages::UserProfile>(profile);
  REQUIRE(p);
  CHECK(p->display_name() == "Ida");
  CHECK(p->bio() == "Plays the theremin.");
  CHECK_FALSE(has(profile.body, "@example.org"));
  CHECK(error_is(test::http_get(port, "/v1/users/" + std::string(32, '0')), 404, "not_found"));

  auto patch = [&](const std::string& body, const std::string& type = "application/json") {
    return test::http_call(port, "PATCH", "/v1/me", body, bearer(token), type);
  };
  CHECK(error_is(patch("{"), 400, "malformed_json"));
  CHECK(error_is(patch(R"({"display_name":7})"), 422, "validation"));
  CHECK(error_is(patch(R"({"bio":")" + std::string(1001, 'b') + R"("})"), 422, "validation"));
  CHECK(error_is(patch(R"({"email":"new@example.org"})"), 422, "validation"));
  CHECK(error_is(patch("{}"), 422, "validation"));
  CHECK(error_is(patch(R"({"bio":"x"})", "text/plain"), 415, "unsupported_media_type"));
  // Anonymous: 401 before any body rule.
  CHECK(error_is(test::http_call(port, "PATCH", "/v1/me", "{", {}), 401, "unauthenticated"));
}

TEST_CASE(
    "roles: with approval on, an artist request waits until an admin named in cluster.conf "
    "approves it, and nobody else may approve") {
  test::test_cluster c{1};
  auto admin_name = unique("root");
  c.set_section("chorus.users", "admins=[\"" + admin_name + "\"]\nartist-approval=true\n");
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto [admin, admin_token] = member(port, admin_name);
  CHECK(std::set<std::string>(admin.roles().begin(), admin.roles().end()) ==
        std::set<std::string>{"listener", "admin"});
  auto [artist, artist_token] = member(port, unique("jo"));
  auto asked = parse_json<messages::Me>(
      test::http_call(port, "POST", "/v1/me/artist", "", bearer(artist_token), ""));
  REQUIRE(asked);
  CHECK(asked->artist_status() == "pending");
  CHECK(asked->roles_size() == 1);
  auto path = "/v1/admin/users/" + artist.id() + "/artist";
  CHECK(error_is(test::http_call(port, "POST", path, "", bearer(artist_token), ""), 403,
                 "forbidden"));
  CHECK(error_is(test::http_call(port, "POST", path, "", {}, ""), 401, "unauthenticated"));
  auto approved =
      parse_json<messages::Me>(test::http_call(port, "POST", path, "", bearer(admin_token), ""));
  REQUIRE(approved);
  CHECK(approved->artist_status() == "approved");
  auto profile =
      parse_json<messages::UserProfile>(test::http_get(port, "/v1/users/" + artist.id()));
  REQUIRE(profile);
  CHECK(std::set<std::string>(profile->roles().begin(), profile->roles().end()) ==
        std::set<std::string>{"listener", "artist"});
}

TEST_CASE(
    "follows: follow and unfollow, followers and following pages with a cursor, and the refusals") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto [star, star_token] = member(port, unique("star"));
  std::vector<std::pair<messages::Me, std::string>> fans;
  for (int i = 0; i < 5; ++i) fans.push_back(member(port, unique("fan")));
  for (auto& [fan, token] : fans) {
    auto r =
        test::http_call(port, "POST", "/v1/users/" + star.id() + "/follow", "", bearer(token), "");
    REQUIRE_MESSAGE(r.status == 204, r.body);
    // Following twice changes nothing.
    CHECK(test::http_call(port, "POST", "/v1/users/" + star.id() + "/follow", "", bearer(token), "")
              .status == 204);
  }
  auto first_fan = parse_json<messages::Me>(
      test::http_call(port, "GET", "/v1/me", "", bearer(fans[0].second), ""));
  REQUIRE(first_fan);
  CHECK(first_fan->following_count() == 1);

  // The lists come from a projection: they catch up within moments.
  auto followers = [&](const std::string& query) {
    return parse_json<messages::FollowPage>(
        test::http_get(port, "/v1/users/" + star.id() + "/followers" + query));
  };
  REQUIRE(test::eventually(10s, [&] {
    auto all = followers("?limit=100");
    return all && all->users_size() == 5;
  }));
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page = followers("?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor));
    REQUIRE(page);
    for (const auto& u : page->users()) CHECK(seen.insert(u.id()).second);
    cursor = page->next_cursor();
    ++pages;
  } while (!cursor.empty() && pages < 10);
  CHECK(pages == 3);
  CHECK(seen.size() == 5);
  auto following = parse_json<messages::FollowPage>(
      test::http_get(port, "/v1/users/" + fans[0].first.id() + "/following"));
  REQUIRE(following);
  REQUIRE(following->users_size() == 1);
  CHECK(following->users(0).id() == star.id());

  auto gone = test::http_call(port, "DELETE", "/v1/users/" + star.id() + "/follow", "",
                              bearer(fans[0].second), "");
  CHECK(gone.status == 204);
  CHECK(test::eventually(10s, [&] {
    auto all = followers("?limit=100");
    return all && all->users_size() == 4;
  }));

  auto follow = [&](const std::string& id, const headers& h) {
    return test::http_call(port, "POST", "/v1/users/" + id + "/follow", "", h, "");
  };
  CHECK(error_is(follow(star.id(), {}), 401, "unauthenticated"));
  CHECK(error_is(follow(star.id(), bearer(star_token)), 422, "validation"));  // oneself
  CHECK(error_is(follow(std::string(32, 'f'), bearer(star_token)), 404, "not_found"));
  CHECK(error_is(test::http_get(port, "/v1/users/" + star.id() + "/followers?limit=0"), 422,
                 "validation"));
  CHECK(error_is(test::http_get(port, "/v1/users/" + star.id() + "/followers?cursor=bogus"), 422,
                 "validation"));
}

TEST_CASE("every mutating user route refuses an anonymous call with 401") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto id = std::string(32, 'a');
  const std::vector<std::pair<std::string, std::string>> routes{
      {"POST", "/v1/auth/logout"},
      {"PATCH", "/v1/me"},
      {"POST", "/v1/me/artist"},
      {"POST", "/v1/admin/users/" + id + "/artist"},
      {"POST", "/v1/users/" + id + "/follow"},
      {"DELETE", "/v1/users/" + id + "/follow"},
  };
  for (const auto& [method, path] : routes) {
    auto r = test::http_call(port, method, path, "{}", {});
    CHECK_MESSAGE(error_is(r, 401, "unauthenticated"), method << " " << path << ": " << r.body);
  }
}

TEST_CASE("a session ends after its idle time without use") {
  test::test_cluster c{1};
  c.set_section("chorus.users", "session-idle=1500ms\nsession-max=1h\n");
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto [me, token] = member(port, unique("kim"));
  CHECK(test::http_call(port, "GET", "/v1/me", "", bearer(token), "").status == 200);
  // The expiry is about time itself, so the test waits for the clock (any request would count
  // as use and keep the session alive).
  auto started = std::chrono::steady_clock::now();
  REQUIRE(
      test::eventually(10s, [&] { return std::chrono::steady_clock::now() - started > 1700ms; }));
  CHECK(test::http_call(port, "GET", "/v1/me", "", bearer(token), "").status == 401);
}

TEST_CASE(
    "every mutating route in the served OpenAPI document refuses an anonymous call with 401, "
    "unless the document marks it public") {
  test::test_cluster c{1};
  c.start_all();
  REQUIRE(c.converged(20s));
  auto port = c.at(0).http_port;
  auto served = c.get(0, "/v1/openapi.json");
  REQUIRE(served.status == 200);
  CHECK(served.header("Content-Type").find("application/json") != std::string::npos);
  google::protobuf::Struct doc;
  REQUIRE(google::protobuf::util::JsonStringToMessage(served.body, &doc).ok());
  CHECK(doc.fields().at("openapi").string_value().rfind("3.", 0) == 0);
  auto has_security = [](const google::protobuf::Struct& op) {
    auto it = op.fields().find("security");
    // An operation without its own `security` inherits the document's (bearer).
    return it == op.fields().end() || it->second.list_value().values_size() > 0;
  };
  int mutating = 0, refused = 0, public_ops = 0;
  for (const auto& [path, item] : doc.fields().at("paths").struct_value().fields()) {
    for (const auto& [method, op_value] : item.struct_value().fields()) {
      if (method != "post" && method != "put" && method != "patch" && method != "delete") continue;
      ++mutating;
      const auto& op = op_value.struct_value();
      if (!has_security(op)) {
        ++public_ops;
        continue;
      }
      // Fill path parameters with a well-formed id that names nobody.
      std::string concrete = path;
      for (auto open = concrete.find('{'); open != std::string::npos; open = concrete.find('{'))
        concrete.replace(open, concrete.find('}', open) - open + 1, std::string(32, 'a'));
      std::string upper;
      for (char ch : method) upper += static_cast<char>(std::toupper(ch));
      auto r = test::http_call(port, upper, concrete, "{}", {});
      CHECK_MESSAGE(error_is(r, 401, "unauthenticated"),
                    upper << " " << concrete << ": " << r.status << " " << r.body);
      ++refused;
    }
  }
  MESSAGE(mutating << " mutating operations, " << refused << " refused anonymously, " << public_ops
                   << " public");
  CHECK(refused >= 6);
  // Register and log in are public by nature; the demo counter routes are public while
  // debug-endpoints is on.
  CHECK(public_ops >= 2);
}

TEST_CASE(
    "rate limits per account: a signed-in user's requests share one budget across nodes and "
    "addresses, past it 429 with Retry-After, and other users keep theirs") {
  test::test_cluster c{2};
  c.set_section("chorus.edge",
                "read-limit=0\nwrite-limit=0\nuser-read-limit=3\nuser-write-limit=2\n");
  c.start_all();
  REQUIRE(c.converged(60s));
  auto [busy, busy_token] = member(c.at(0).http_port, unique("busy"));
  auto [calm, calm_token] = member(c.at(1).http_port, unique("calm"));
  for (int i = 0; i < 3; ++i) {
    auto r =
        test::http_get(c.at(static_cast<size_t>(i % 2)).http_port, "/v1/me", bearer(busy_token));
    CHECK(r.status == 200);
    CHECK(r.header("RateLimit-Policy") == R"("user-read";q=3;w=60)");
    CHECK(r.header("RateLimit").rfind("\"user-read\";r=" + std::to_string(2 - i) + ";t=", 0) == 0);
  }
  auto over = test::http_get(c.at(1).http_port, "/v1/me", bearer(busy_token));
  CHECK(error_is(over, 429, "rate_limited"));
  CHECK(has(over.body, "this account"));
  CHECK(std::stoi(over.header("Retry-After")) >= 1);
  // Another account has its own budget; writes are a class of their own.
  CHECK(test::http_get(c.at(1).http_port, "/v1/me", bearer(calm_token)).status == 200);
  auto f1 = test::http_call(c.at(0).http_port, "POST", "/v1/users/" + calm.id() + "/follow", "",
                            bearer(busy_token));
  CHECK(f1.status == 204);
  CHECK(f1.header("RateLimit-Policy") == R"("user-write";q=2;w=60)");
  CHECK(test::http_call(c.at(1).http_port, "DELETE", "/v1/users/" + calm.id() + "/follow", "",
                        bearer(busy_token))
            .status == 204);
  CHECK(error_is(test::http_call(c.at(0).http_port, "POST", "/v1/users/" + calm.id() + "/follow",
                                 "", bearer(busy_token)),
                 429, "rate_limited"));
  // Anonymous calls are not counted against anyone: they are refused as before.
  CHECK(error_is(test::http_get(c.at(0).http_port, "/v1/me"), 401, "unauthenticated"));
}

TEST_CASE(
    "avatars: a user puts an image, anyone reads it from any node with an ETag, the wrong type, "
    "a disguised file, an empty or oversized body are refused, and removing it leaves a 404") {
  test::test_cluster c{2};
  c.start_all();
  REQUIRE(c.converged(60s));
  auto p0 = c.at(0).http_port;
  auto p1 = c.at(1).http_port;
  auto [owner, token] = member(p0, unique("painter"));
  // A valid 1x1 PNG.
  const unsigned char png_bytes[] = {
      0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48,
      0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
      0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78,
      0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00,
      0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82};
  std::string png(reinterpret_cast<const char*>(png_bytes), sizeof png_bytes);
  auto put = [&](const std::string& body, const std::string& type, const headers& h) {
    return test::http_call(p0, "PUT", "/v1/me/avatar", body, h, type);
  };

  CHECK(error_is(put(png, "image/png", {}), 401, "unauthenticated"));
  CHECK(error_is(put(png, "text/plain", bearer(token)), 415, "unsupported_media_type"));
  CHECK(error_is(put("", "image/png", bearer(token)), 422, "validation"));
  CHECK(error_is(put("<?php echo 1; ?>", "image/png", bearer(token)), 422, "validation"));
  CHECK(error_is(put(png, "image/jpeg", bearer(token)), 422, "validation"));
  CHECK(error_is(put(png + std::string(2 << 20, 'x'), "image/png", bearer(token)), 413,
                 "payload_too_large"));

  auto set = put(png, "image/png", bearer(token));
  REQUIRE_MESSAGE(set.status == 200, set.body);
  auto me = parse_json<messages::Me>(set);
  REQUIRE(me);
  CHECK(me->avatar_url().rfind("/v1/users/" + owner.id() + "/avatar?v=", 0) == 0);
  // The public profile names the same URL; anyone fetches the bytes from any node.
  auto profile = parse_json<messages::UserProfile>(test::http_get(p1, "/v1/users/" + owner.id()));
  REQUIRE(profile);
  CHECK(profile->avatar_url() == me->avatar_url());
  auto img = test::http_get(p1, me->avatar_url());
  CHECK(img.status == 200);
  CHECK(img.body == png);
  CHECK(img.header("Content-Type") == "image/png");
  CHECK(img.header("X-Content-Type-Options") == "nosniff");
  auto etag = img.header("ETag");
  CHECK(etag.size() == 66);
  CHECK(test::http_get(p0, me->avatar_url(), {{"If-None-Match", etag}}).status == 304);

  auto removed = test::http_call(p1, "DELETE", "/v1/me/avatar", "", bearer(token));
  REQUIRE(removed.status == 200);
  auto after = parse_json<messages::Me>(removed);
  REQUIRE(after);
  CHECK(after->avatar_url().empty());
  CHECK(error_is(test::http_get(p0, "/v1/users/" + owner.id() + "/avatar"), 404, "not_found"));
  CHECK(error_is(test::http_get(p0, "/v1/users/" + std::string(32, '0') + "/avatar"), 404,
                 "not_found"));
}
