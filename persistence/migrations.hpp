#pragma once

#include <vector>

namespace chorus::persistence {

/// One schema migration: persistence/migrations/NNNN_what.sql, embedded at build time. Never
/// edit an applied file: add the next one.
struct migration {
  int version;
  const char* file;
  const char* sql;
};

/// Every migration, ordered by version.
const std::vector<migration>& migrations();

}  // namespace chorus::persistence
