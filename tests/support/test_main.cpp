#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>

int main(int argc, char** argv) {
  // A server that refuses a request early (413) closes while the client still sends: the write
  // must fail with EPIPE, not kill the test binary with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  return doctest::Context(argc, argv).run();
}
