# Writes OUT: http_edge/openapi.json as a C++ string, so the binary serves its own API document
# and needs no source tree. Run by the build (see CMakeLists.txt) whenever the document changes.
file(READ "${IN}" doc)
string(FIND "${doc}" ")chorus_openapi\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )chorus_openapi\"")
endif()
file(WRITE "${OUT}.tmp" "// Generated from http_edge/openapi.json by embed_openapi.cmake.\n#include \"http_edge/openapi.hpp\"\n\nnamespace chorus::edge {\n\nstd::string_view openapi_document() {\n  static constexpr std::string_view doc = R\"chorus_openapi(${doc})chorus_openapi\";\n  return doc;\n}\n\n}  // namespace chorus::edge\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
