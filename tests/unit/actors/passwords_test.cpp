#include <doctest/doctest.h>

#include <fstream>
#include <set>

#include "actors/users/passwords.hpp"
#include "messages/errors.hpp"
#include "tests/support/process.hpp"

using namespace chorus;
using namespace chorus::users;

TEST_CASE(
    "passwords: 8..128 characters counted as characters, common ones and the username refused") {
  password_policy policy;
  policy.common = {"password1", "letmein123"};
  CHECK(is(check_password(policy, "seven77", "ann"), domain_errc::weak_password));
  CHECK_FALSE(check_password(policy, "eight888", "ann"));
  CHECK_FALSE(check_password(policy, std::string(128, 'x'), "ann"));
  CHECK(is(check_password(policy, std::string(129, 'x'), "ann"), domain_errc::weak_password));
  // Eight characters of two bytes each: long enough, counted in characters.
  CHECK_FALSE(check_password(policy, "ääääääää", "ann"));
  CHECK(is(check_password(policy, "ääää", "ann"), domain_errc::weak_password));
  CHECK(is(check_password(policy, "PassWord1", "ann"), domain_errc::weak_password));
  CHECK(is(check_password(policy, "AnnTheGreat", "annthegreat"), domain_errc::weak_password));
  // No composition rules: a long lowercase phrase is fine.
  CHECK_FALSE(check_password(policy, "correct horse battery staple", "ann"));
}

TEST_CASE(
    "the common password list is read lowercased, comments skipped, and a missing file named") {
  test::temp_dir dir;
  auto path = dir.path() + "/list.txt";
  {
    std::ofstream out{path};
    out << "#!comment: a list\nPassword\n123456\r\n\nqwerty\n";
  }
  auto list = load_common_passwords(path);
  REQUIRE(list);
  CHECK(*list == std::unordered_set<std::string>{"password", "123456", "qwerty"});
  auto missing = load_common_passwords(dir.path() + "/nope.txt");
  REQUIRE_FALSE(missing);
  CHECK(error_detail(missing.error()).find("nope.txt") != std::string::npos);
}

TEST_CASE("argon2id hashes verify only the right password, and a missing hash never verifies") {
  auto hash = hash_password("correct horse battery");
  REQUIRE(hash);
  CHECK(hash->rfind("$argon2id$v=19$m=19456,t=2,", 0) == 0);
  CHECK(verify_password(*hash, "correct horse battery"));
  CHECK_FALSE(verify_password(*hash, "correct horse batterz"));
  CHECK_FALSE(verify_password("", "correct horse battery"));
  auto again = hash_password("correct horse battery");
  REQUIRE(again);
  CHECK(*again != *hash);  // salted
}

TEST_CASE("session tokens are 43 base64url characters and never repeat, and user ids are 32 hex") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto t = new_session_token();
    CHECK(well_formed_token(t));
    CHECK(seen.insert(t).second);
  }
  CHECK_FALSE(well_formed_token("short"));
  CHECK_FALSE(well_formed_token(std::string(42, 'a') + "="));
  auto id = new_user_id();
  CHECK(id.size() == 32);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
}
