#pragma once

namespace chorus {

/// The version every node reports in /statusz and chorus_node_info.
inline constexpr const char* chorus_version = "0.1.0";

}  // namespace chorus
