#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

namespace chorus::edge {

/// What one multipart/form-data body may hold besides its file part. The file part is bounded
/// by the edge's upload limit (the body on disk), never by these.
struct multipart_limits {
  size_t max_fields = 32;                      ///< parts other than the file part
  size_t max_field_bytes = size_t{64} * 1024;  ///< the value of one field
  /// The header block of one part with the end of its boundary line, line ends included.
  size_t max_header_bytes = size_t{8} * 1024;
  /// Bytes read from the body at once; not a limit of the form. Tests make it small so that
  /// delimiters fall across reads.
  size_t read_bytes = size_t{64} * 1024;
};

/// A multipart/form-data body (RFC 7578) with at most one file part, whose content is on disk.
struct multipart_form {
  std::map<std::string, std::string> fields;  ///< name -> value of the parts without a file
  std::string file_name;                      ///< the file part's filename= (may be empty)
  std::string file_type;                      ///< the file part's Content-Type ("" when absent)
  uint64_t file_size = 0;                     ///< bytes written to the output file
  bool has_file = false;                      ///< whether the body had the file part
};

/// The boundary parameter of a multipart/form-data Content-Type (media type and parameter name
/// without case, the value quoted or not), or nothing for another type or no boundary
/// parameter. The value is not checked here: parse_multipart_file refuses a bad one.
std::optional<std::string> multipart_boundary(std::string_view content_type);

/// Reads the multipart/form-data body in `body_path` in chunks of `limits.read_bytes`, writes the
/// content of the part named `file_part` to `file_path` (created or truncated, mode 0600) and
/// collects every other part as a field; the file content is never held in memory. A part that
/// carries a filename under another name is refused, as is a second `file_part`. The epilogue is
/// not read.
///
/// A malformed body or one past `limits` is `domain_errc::validation` with a detail that names
/// what is wrong; failing to read the body or write the file is `caf::sec::runtime_error`. A
/// failure after the file part began removes `file_path`.
caf::expected<multipart_form> parse_multipart_file(const std::string& body_path,
                                                   std::string_view boundary,
                                                   const std::string& file_path,
                                                   const std::string& file_part = "file",
                                                   const multipart_limits& limits = {});

}  // namespace chorus::edge
