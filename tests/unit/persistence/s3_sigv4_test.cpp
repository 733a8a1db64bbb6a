#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "persistence/s3_sigv4.hpp"
#include "persistence/sha256.hpp"

// Expected values are AWS's worked examples: the S3 API reference, "Authenticating Requests: Using
// the Authorization Header (AWS Signature Version 4)" (examplebucket, 2013-05-24), and the signing
// key example of the Signature Version 4 documentation.

using namespace chorus::persistence;

namespace {

const sigv4::credentials aws_example{"AKIAIOSFODNN7EXAMPLE",
                                     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
constexpr const char* example_time = "20130524T000000Z";
constexpr const char* example_host = "examplebucket.s3.amazonaws.com";

std::string signature_of(const std::string& authorization) {
  return authorization.substr(authorization.rfind("Signature=") + 10);
}

sigv4::request get_object_example() {
  return {"GET",
          "/test.txt",
          {},
          {{"Host", example_host},
           {"Range", "bytes=0-9"},
           {"x-amz-content-sha256", std::string{sigv4::empty_payload_hash}},
           {"x-amz-date", example_time}},
          std::string{sigv4::empty_payload_hash}};
}

}  // namespace

TEST_CASE("SHA-256 of the empty string and of AWS's PUT example body are the published ones") {
  CHECK(sha256_hex("") == sigv4::empty_payload_hash);
  CHECK(sha256_hex("Welcome to Amazon S3.") ==
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  sha256_stream pieces;
  pieces.update("Welcome to ");
  pieces.update("Amazon S3.");
  CHECK(pieces.hex_digest() == sha256_hex("Welcome to Amazon S3."));
}

TEST_CASE(
    "the signing key of AWS's example secret, date, region and service is the published one") {
  auto key = sigv4::signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1",
                                "iam");
  CHECK(to_hex(key) == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

TEST_CASE("the S3 GET object example gives AWS's canonical request, string to sign and header") {
  auto request = get_object_example();
  auto canonical = sigv4::canonical_request(request);
  CHECK(canonical ==
        "GET\n"
        "/test.txt\n"
        "\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "range:bytes=0-9\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n"
        "\n"
        "host;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto scope = sigv4::credential_scope("20130524", "us-east-1", "s3");
  CHECK(sigv4::string_to_sign(example_time, scope, canonical) ==
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  CHECK(sigv4::authorization(aws_example, example_time, "us-east-1", "s3", request) ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("the S3 PUT object example signs an encoded key, a body hash and extra headers") {
  auto body_hash = sha256_hex("Welcome to Amazon S3.");
  sigv4::request request{"PUT",
                         sigv4::uri_encode("/test$file.text", false),
                         {},
                         {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                          {"Host", example_host},
                          {"x-amz-date", example_time},
                          {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                          {"x-amz-content-sha256", body_hash}},
                         body_hash};
  CHECK(request.canonical_uri == "/test%24file.text");
  auto scope = sigv4::credential_scope("20130524", "us-east-1", "s3");
  CHECK(sigv4::string_to_sign(example_time, scope, sigv4::canonical_request(request)) ==
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  auto auth = sigv4::authorization(aws_example, example_time, "us-east-1", "s3", request);
  CHECK(auth.find("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,") !=
        std::string::npos);
  CHECK(signature_of(auth) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST_CASE("a bare query parameter is signed with an empty value (GET bucket lifecycle example)") {
  sigv4::request request{"GET",
                         "/",
                         {{"lifecycle", ""}},
                         {{"Host", example_host},
                          {"x-amz-date", example_time},
                          {"x-amz-content-sha256", std::string{sigv4::empty_payload_hash}}},
                         std::string{sigv4::empty_payload_hash}};
  CHECK(sigv4::canonical_query(request.query) == "lifecycle=");
  CHECK(signature_of(sigv4::authorization(aws_example, example_time, "us-east-1", "s3", request)) ==
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST_CASE("query parameters are signed sorted whatever their order (list objects example)") {
  sigv4::request request{"GET",
                         "/",
                         {{"prefix", "J"}, {"max-keys", "2"}},
                         {{"Host", example_host},
                          {"x-amz-date", example_time},
                          {"x-amz-content-sha256", std::string{sigv4::empty_payload_hash}}},
                         std::string{sigv4::empty_payload_hash}};
  CHECK(sigv4::canonical_query(request.query) == "max-keys=2&prefix=J");
  CHECK(signature_of(sigv4::authorization(aws_example, example_time, "us-east-1", "s3", request)) ==
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST_CASE("any change to the request or the secret changes the signature") {
  auto request = get_object_example();
  auto reference = sigv4::authorization(aws_example, example_time, "us-east-1", "s3", request);
  auto other_range = request;
  other_range.headers[1].second = "bytes=0-10";
  CHECK(sigv4::authorization(aws_example, example_time, "us-east-1", "s3", other_range) !=
        reference);
  auto wrong_secret = aws_example;
  wrong_secret.secret_key.back() = 'X';
  CHECK(sigv4::authorization(wrong_secret, example_time, "us-east-1", "s3", request) != reference);
  CHECK(sigv4::authorization(aws_example, example_time, "eu-west-1", "s3", request) != reference);
}

TEST_CASE("header names are lower-cased and values trimmed before signing") {
  sigv4::request request{
      "GET", "/", {}, {{"X-Amz-Meta-A", "  two   words  "}, {"HOST", "h"}}, "UNSIGNED-PAYLOAD"};
  CHECK(sigv4::canonical_request(request) ==
        "GET\n/\n\nhost:h\nx-amz-meta-a:two words\n\nhost;x-amz-meta-a\nUNSIGNED-PAYLOAD");
}

TEST_CASE("URI encoding keeps unreserved characters and encodes every other byte in upper case") {
  CHECK(sigv4::uri_encode("AZaz09-._~", true) == "AZaz09-._~");
  CHECK(sigv4::uri_encode("a b+c=d&e", true) == "a%20b%2Bc%3Dd%26e");
  CHECK(sigv4::uri_encode("blobs/ab cd", false) == "blobs/ab%20cd");
  CHECK(sigv4::uri_encode("blobs/ab", true) == "blobs%2Fab");
  CHECK(sigv4::uri_encode("\xc3\xa9", true) == "%C3%A9");
  CHECK(sigv4::canonical_query({{"uploadId", "a/b+c=="}, {"partNumber", "2"}}) ==
        "partNumber=2&uploadId=a%2Fb%2Bc%3D%3D");
}

TEST_CASE("x-amz-date is the UTC time in the compact ISO 8601 form") {
  using namespace std::chrono;
  CHECK(sigv4::amz_date(system_clock::time_point{seconds{1369353600}}) == "20130524T000000Z");
  CHECK(sigv4::amz_date(system_clock::time_point{seconds{951782400 + 3723}}) == "20000229T010203Z");
}
