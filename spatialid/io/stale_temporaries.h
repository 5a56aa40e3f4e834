// Removing the temporary files a killed run left behind.
//
// Writers never produce half a file: they write a temporary
// `{file}.tmp.{pid}.{n}@{host}.{boot}` (temporary_name.h) and rename it into
// place. A run killed between the two leaves that temporary; a resumed run
// calls RemoveStaleTemporaries on its output folder first, so the folder ends
// as an uninterrupted run's would. Only temporaries whose writer is gone are
// removed: written on this host, by a pid that is not running or before the
// last reboot. Those of a live process, and every one written on another
// host (a shard running on another node of a shared --out), are kept, as
// are names in no known format.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(int removed, io::RemoveStaleTemporaries(
//       out_dir, 2, [&](std::string_view final_name) { return final_name == "llava-7b.pt"; }));
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/temporary_name.h"

namespace spatialid::io {

// Removes, under `folder` down to `max_depth` folder levels (0: the folder
// itself) and skipping hidden folders, the temporaries of dead writers whose
// final name `ours` accepts. Returns how many it removed; a missing folder
// holds none.
inline absl::StatusOr<int> RemoveStaleTemporaries(
    const std::string& folder, int max_depth,
    const std::function<bool(std::string_view final_name)>& ours) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return 0;
  int removed = 0;
  fs::recursive_directory_iterator it(folder, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      if (it.depth() >= max_depth || name.empty() || name[0] == '.') it.disable_recursion_pending();
      continue;
    }
    const TemporaryName t = ParseTemporaryName(name);
    if (t.pid < 0 || !ours(t.final_name) || !IsStaleTemporary(t)) continue;
    std::error_code rm_ec;
    if (!fs::remove(it->path(), rm_ec) && rm_ec) {
      return absl::PermissionDeniedError(absl::StrCat(
          it->path().string(), ": cannot remove this temporary file of an interrupted run (",
          rm_ec.message(), ")"));
    }
    ++removed;
  }
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(folder, ": cannot list the folder (", ec.message(), ")"));
  }
  return removed;
}

}  // namespace spatialid::io
