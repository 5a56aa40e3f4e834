// The names of the temporary files writers create beside their targets.
//
// Every writer (AtomicOutputFile, and through it the PNG and .pt writers)
// writes `{file}.tmp.{pid}.{n}@{host}.{boot}` and renames it onto `{file}`
// when complete. The host and the first 8 characters of the kernel's boot id
// say whose it is: an output folder may be shared by processes on several
// nodes (a sharded run with --out on a network filesystem), where a pid means
// nothing, so a resumed run removes a temporary only when it was written on
// this host and its writer is gone (its pid is not running, or the machine
// has rebooted since). `n` tells apart the temporaries of one process.
//
// Example:
//   const std::string temp = io::TemporaryPathFor("out/llava-7b.pt");
//   io::TemporaryName t = io::ParseTemporaryName("llava-7b.pt.tmp.412.0@node7.1a2b3c4d");
//   // t.final_name == "llava-7b.pt", t.pid == 412, t.host == "node7", t.boot == "1a2b3c4d"
#pragma once

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace spatialid::io {

// Who writes this process's temporaries.
struct WriterHost {
  std::string host;  // gethostname(), with '@' and '/' replaced by '_'
  std::string boot;  // first 8 characters of /proc/sys/kernel/random/boot_id, or "0"
};

inline const WriterHost& ThisWriterHost() {
  static const WriterHost host = [] {
    WriterHost h;
    char name[256] = {0};
    if (::gethostname(name, sizeof(name) - 1) == 0) h.host = name;
    // '@' splits the name from the host, '/' would make a folder.
    for (char& c : h.host) {
      if (c == '@' || c == '/') c = '_';
    }
    if (h.host.empty()) h.host = "unknown-host";
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    if (in >> id) {
      for (char c : id) {
        if (h.boot.size() == 8) break;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) h.boot.push_back(c);
      }
    }
    if (h.boot.empty()) h.boot = "0";
    return h;
  }();
  return host;
}

// A fresh temporary path beside `path` for this process.
inline std::string TemporaryPathFor(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  const WriterHost& h = ThisWriterHost();
  return absl::StrCat(path, ".tmp.", static_cast<long>(::getpid()), ".", counter.fetch_add(1), "@",
                      h.host, ".", h.boot);
}

// The parts of a temporary's file name; pid -1 when it is not one.
struct TemporaryName {
  long pid = -1;
  std::string_view final_name;
  std::string_view host;
  std::string_view boot;
};

inline TemporaryName ParseTemporaryName(std::string_view name) {
  const size_t at = name.rfind('@');
  if (at == std::string_view::npos) return {};
  const std::string_view owner = name.substr(at + 1);
  const size_t dot = owner.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == owner.size()) return {};
  const std::string_view head = name.substr(0, at);
  const size_t tmp = head.rfind(".tmp.");
  if (tmp == std::string_view::npos || tmp == 0) return {};
  // "{pid}.{n}"
  const std::string_view rest = head.substr(tmp + 5);
  long pid = -1;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
  if (ec != std::errc() || p == rest.data() || pid <= 0) return {};
  const std::string_view n(p, rest.data() + rest.size() - p);
  if (n.size() < 2 || n[0] != '.') return {};
  for (char c : n.substr(1)) {
    if (c < '0' || c > '9') return {};
  }
  return {pid, head.substr(0, tmp), owner.substr(0, dot), owner.substr(dot + 1)};
}

// True when `t` was written on this host by a process that is gone: a pid
// that is not running (or is this process: a leftover of an earlier one
// with the same pid), or a boot before this one. Another host's temporary
// is never stale here: its writer may still be running there.
inline bool IsStaleTemporary(const TemporaryName& t) {
  if (t.pid < 0) return false;
  const WriterHost& h = ThisWriterHost();
  if (t.host != h.host) return false;
  if (t.boot != h.boot) return true;
  if (t.pid == static_cast<long>(::getpid())) return true;
  return ::kill(static_cast<pid_t>(t.pid), 0) != 0 && errno == ESRCH;
}

}  // namespace spatialid::io
