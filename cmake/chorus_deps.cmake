# Every third-party dependency of Chorus is found here, once, and exposed as an imported target.
# All of them come from Debian 12 packages (scripts/bootstrap installs them); nothing is vendored.

find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)

# CAF 0.17.6 ships neither a CMake config nor a .pc file: wrap its libraries ourselves.
find_path(CAF_INCLUDE_DIR caf/actor_system.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
if(NOT TARGET caf::core)
  add_library(caf::core SHARED IMPORTED)
  set_target_properties(caf::core PROPERTIES
    IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(caf::io SHARED IMPORTED)
  set_target_properties(caf::io PROPERTIES
    IMPORTED_LOCATION "${CAF_IO_LIBRARY}"
    INTERFACE_LINK_LIBRARIES "caf::core;Threads::Threads")
endif()

find_package(Protobuf REQUIRED)

pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
# FFmpeg 5.1 in-process (actors/audio): validation, the transcode ladder and cover art resizing.
pkg_check_modules(AV REQUIRED IMPORTED_TARGET
  libavformat libavcodec libavfilter libswresample libswscale libavutil)
# cpp-httplib is a compiled library whose class layout depends on the defines in its .pc file.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(doctest CONFIG REQUIRED)
# libcurl (OpenSSL flavour) for the notification channels (actors/social): SMTP and webhooks.
find_package(CURL REQUIRED)
