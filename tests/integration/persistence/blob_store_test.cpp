#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "messages/errors.hpp"
#include "persistence/blob_store_fs.hpp"
#include "persistence/errc.hpp"
#include "tests/support/process.hpp"

using namespace chorus;
using namespace chorus::persistence;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t mib = 1ull << 20;

// Deterministic bytes, so a failure can be reproduced.
std::string make_bytes(size_t size, uint32_t seed) {
  std::mt19937 rng{seed};
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The SHA-256 by coreutils: a check independent of the code under test.
std::string sha256sum(const std::string& path) {
  auto r = test::run({"/usr/bin/sha256sum", path});
  REQUIRE(r.exit_code == 0);
  return r.output.substr(0, 64);
}

errc code_of(const caf::error& err) {
  return static_cast<errc>(err.code());
}

struct read_result {
  caf::expected<uint64_t> delivered{uint64_t{0}};
  std::string bytes;
  size_t chunks = 0;
  size_t largest_chunk = 0;
};

read_result read_range(blob_store& store, const blob_id& id, uint64_t offset,
                       uint64_t length = blob_to_end) {
  read_result out;
  out.delivered = store.read(id, offset, length, [&](std::string_view chunk) {
    out.bytes.append(chunk);
    ++out.chunks;
    out.largest_chunk = std::max(out.largest_chunk, chunk.size());
    return true;
  });
  return out;
}

// Blob files under a fs store's root, temp files excluded.
std::vector<std::string> blob_files(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    if (entry.path().parent_path() == fs::path{root} / "tmp") continue;
    out.push_back(entry.path().string());
  }
  return out;
}

size_t temp_files(const std::string& root) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(root + "/tmp")) ++n;
  return n;
}

std::unique_ptr<blob_store_fs> open_fs(const std::string& root) {
  auto store = blob_store_fs::open(root);
  REQUIRE_MESSAGE(store, error_detail(store.error()));
  return std::move(*store);
}

blob_id id_of(const std::string& hex) {
  auto id = blob_id::parse(hex);
  REQUIRE(id);
  return *id;
}

const std::string hello = "hello, blob store\n";
const std::string hello_sha256 = "c852dde0586c21e9f878c931b643fd6d4ebdf8eca3e1af296dbc7d8693f3cbc3";
const std::string absent_sha256(64, '0');

}  // namespace

TEST_CASE("a blob id is exactly 64 lowercase hex characters") {
  CHECK(blob_id::parse(hello_sha256));
  CHECK_FALSE(blob_id::parse(hello_sha256.substr(1)));
  CHECK_FALSE(blob_id::parse("C852DDE0586C21E9F878C931B643FD6D4EBDF8ECA3E1AF296DBC7D8693F3CBC3"));
  CHECK_FALSE(blob_id::parse("../../../../etc/passwd/0586c21e9f878c931b643fd6d4ebdf8eca3e1af29"));
}

TEST_CASE("the fs store names a blob by its SHA-256 and keeps it under sharded directories") {
  test::temp_dir dir;
  auto store = open_fs(blob_store_fs::default_root(dir.path()));
  write_bytes(dir.path() + "/in", hello);
  auto ref = store->put_file(dir.path() + "/in");
  REQUIRE_MESSAGE(ref, error_detail(ref.error()));
  CHECK(ref->id.hex() == hello_sha256);
  CHECK(ref->size == hello.size());
  auto path = store->local_path(ref->id);
  REQUIRE(path);
  CHECK(*path == dir.path() + "/blobs/c8/52/" + hello_sha256);
  CHECK(test::read_file(*path) == hello);
  CHECK(read_range(*store, ref->id, 0).bytes == hello);
  CHECK(store->exists(ref->id).value());
  CHECK(store->size(ref->id).value() == hello.size());
}

TEST_CASE("putting the same bytes twice, from a file and from a source, stores one file") {
  test::temp_dir dir;
  auto root = dir.path() + "/blobs";
  auto store = open_fs(root);
  write_bytes(dir.path() + "/in", hello);
  auto first = store->put_file(dir.path() + "/in");
  auto second = store->put_file(dir.path() + "/in");
  size_t given = 0;
  auto third = store->put([&](char* buffer, size_t capacity) -> caf::expected<size_t> {
    // Three bytes at a time: the name must not depend on how the bytes arrive.
    auto n = std::min({capacity, size_t{3}, hello.size() - given});
    hello.copy(buffer, n, given);
    given += n;
    return n;
  });
  REQUIRE(first);
  REQUIRE(second);
  REQUIRE(third);
  CHECK(*first == *second);
  CHECK(*first == *third);
  CHECK(blob_files(root).size() == 1);
  CHECK(temp_files(root) == 0);
}

TEST_CASE("the fs store reads ranges in chunks and stops when the sink says so") {
  test::temp_dir dir;
  auto store = open_fs(dir.path() + "/blobs");
  auto bytes = make_bytes(blob_chunk_size * 4 + 5, 1);
  write_bytes(dir.path() + "/in", bytes);
  auto ref = store->put_file(dir.path() + "/in");
  REQUIRE(ref);
  const auto& id = ref->id;

  auto all = read_range(*store, id, 0);
  CHECK(all.delivered.value() == bytes.size());
  CHECK(all.bytes == bytes);
  CHECK(all.chunks == 5);
  CHECK(all.largest_chunk == blob_chunk_size);

  CHECK(read_range(*store, id, 100, 50).bytes == bytes.substr(100, 50));
  CHECK(read_range(*store, id, bytes.size() - 10).bytes == bytes.substr(bytes.size() - 10));
  // A length past the end is cut at the end; a read at the very end is empty.
  CHECK(read_range(*store, id, bytes.size() - 3, 1000).bytes == bytes.substr(bytes.size() - 3));
  auto at_end = read_range(*store, id, bytes.size());
  CHECK(at_end.delivered.value() == 0);
  CHECK(at_end.chunks == 0);
  auto past_end = read_range(*store, id, bytes.size() + 1);
  REQUIRE_FALSE(past_end.delivered);
  CHECK(code_of(past_end.delivered.error()) == errc::blob_bad_range);

  size_t calls = 0;
  auto stopped = store->read(id, 0, blob_to_end, [&](std::string_view) { return ++calls < 2; });
  CHECK(stopped.value() == 2 * blob_chunk_size);
  CHECK(calls == 2);
}

TEST_CASE("a blob the fs store does not have is blob_not_found, and removing it is fine") {
  test::temp_dir dir;
  auto store = open_fs(dir.path() + "/blobs");
  auto id = id_of(absent_sha256);
  CHECK_FALSE(store->exists(id).value());
  auto size = store->size(id);
  REQUIRE_FALSE(size);
  CHECK(code_of(size.error()) == errc::blob_not_found);
  CHECK(error_detail(size.error()).find(absent_sha256) != std::string::npos);
  auto read = read_range(*store, id, 0);
  REQUIRE_FALSE(read.delivered);
  CHECK(code_of(read.delivered.error()) == errc::blob_not_found);
  CHECK_FALSE(store->remove(id));

  write_bytes(dir.path() + "/in", hello);
  auto ref = store->put_file(dir.path() + "/in");
  REQUIRE(ref);
  CHECK_FALSE(store->remove(ref->id));
  CHECK_FALSE(store->exists(ref->id).value());
}

TEST_CASE("a put whose source fails stores nothing and leaves no temp file") {
  test::temp_dir dir;
  auto root = dir.path() + "/blobs";
  auto store = open_fs(root);
  int calls = 0;
  auto ref = store->put([&](char* buffer, size_t capacity) -> caf::expected<size_t> {
    if (++calls > 3) return make_error(errc::blob_error, "the upload was cut");
    std::fill_n(buffer, capacity, 'x');
    return capacity;
  });
  REQUIRE_FALSE(ref);
  CHECK(error_detail(ref.error()) == "the upload was cut");
  CHECK(blob_files(root).empty());
  CHECK(temp_files(root) == 0);
  auto missing = store->put_file(dir.path() + "/no-such-file");
  REQUIRE_FALSE(missing);
  CHECK(code_of(missing.error()) == errc::blob_error);
  CHECK(error_detail(missing.error()).find("no-such-file") != std::string::npos);
}

TEST_CASE("a put killed mid-write leaves a temp file that the next open removes") {
  test::temp_dir dir;
  auto root = dir.path() + "/blobs";
  open_fs(root);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The crashing writer: streams 1 MiB, then hangs until killed.
    auto store = blob_store_fs::open(root);
    if (!store) ::_exit(1);
    size_t sent = 0;
    (void)(*store)->put([&](char* buffer, size_t capacity) -> caf::expected<size_t> {
      if (sent >= mib) ::pause();
      std::fill_n(buffer, capacity, 'y');
      sent += capacity;
      return capacity;
    });
    ::_exit(0);
  }
  bool writing = test::eventually(10s, [&] {
    for (const auto& e : fs::directory_iterator(root + "/tmp"))
      if (e.file_size() >= mib) return true;
    return false;
  });
  // A store opened now must leave the running put's temp file alone.
  auto during = open_fs(root);
  CHECK(during->removed_at_open() == 0);
  CHECK(temp_files(root) == 1);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(writing);
  auto after = open_fs(root);
  CHECK(after->removed_at_open() == 1);
  CHECK(temp_files(root) == 0);
  CHECK(blob_files(root).empty());
}

TEST_CASE("threads putting the same bytes at once all get the same blob, stored once") {
  test::temp_dir dir;
  auto root = dir.path() + "/blobs";
  auto store = open_fs(root);
  auto bytes = make_bytes(3 * mib + 17, 2);
  write_bytes(dir.path() + "/in", bytes);
  auto expected = sha256sum(dir.path() + "/in");
  constexpr int writers = 8;
  std::vector<std::optional<caf::expected<blob_ref>>> refs(writers);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < writers; ++i)
    threads.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      refs[i] = store->put_file(dir.path() + "/in");
    });
  go = true;
  for (auto& t : threads) t.join();
  for (const auto& ref : refs) {
    REQUIRE(ref);
    REQUIRE_MESSAGE(*ref, error_detail(ref->error()));
    CHECK((*ref)->id.hex() == expected);
    CHECK((*ref)->size == bytes.size());
  }
  CHECK(blob_files(root).size() == 1);
  CHECK(temp_files(root) == 0);
  CHECK(sha256sum(*store->local_path((*refs[0])->id)) == expected);
}
