// Removing the temporary files a killed run left behind.
//
// Writers never produce half a file: they write `{file}.tmp.{pid}` (SavePng)
// or `{file}.tmp.{pid}.{n}` (AtomicOutputFile) and rename it into place. A
// run killed between the two leaves that temporary; a resumed run calls
// RemoveStaleTemporaries on its output folder first, so the folder ends as
// an uninterrupted run's would. A temporary whose pid is a live process
// other than this one is kept: it may belong to a run still writing there.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(int removed, io::RemoveStaleTemporaries(
//       out_dir, 2, [&](std::string_view final_name) { return final_name == "llava-7b.pt"; }));
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace spatialid::io {

// The pid and final name of a writer's temporary name, or pid -1.
struct TemporaryName {
  long pid = -1;
  std::string_view final_name;
};

inline TemporaryName ParseTemporaryName(std::string_view name) {
  const size_t at = name.rfind(".tmp.");
  if (at == std::string_view::npos || at == 0) return {};
  std::string_view rest = name.substr(at + 5);
  long pid = -1;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
  if (ec != std::errc() || p == rest.data() || pid <= 0) return {};
  std::string_view tail(p, rest.data() + rest.size() - p);
  if (!tail.empty()) {  // ".{n}" of AtomicOutputFile
    if (tail[0] != '.' || tail.size() == 1) return {};
    for (char c : tail.substr(1)) {
      if (c < '0' || c > '9') return {};
    }
  }
  return {pid, name.substr(0, at)};
}

inline bool IsOtherLiveProcess(long pid) {
  if (pid == static_cast<long>(::getpid())) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

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
    if (t.pid < 0 || !ours(t.final_name) || IsOtherLiveProcess(t.pid)) continue;
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
