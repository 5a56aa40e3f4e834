// An output file that appears under its final name only when complete.
//
// Every file writer (.pt, safetensors, PNG, JSON) streams into an
// `AtomicOutputFile`: bytes go to a temporary file beside the target (named
// by temporary_name.h), and `Commit()` flushes, fsyncs and renames it into
// place. A run that is killed, a full disk or an error leaves the previous
// file (or no file) untouched, never half of a new one; a failed write or
// commit removes the temporary at once, as the destructor removes an
// uncommitted one, and the error names the target and the system's reason
// ("cannot write out/x.pt: No space left on device").
//
// `Sync::kNoFsync` skips the fsync for data sets of many small files that a
// rerun can redraw (the grid images), where an fsync each would dominate the
// run time; the rename still makes them appear whole or not at all.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto out, AtomicOutputFile::Create(path));
//   SPATIALID_RETURN_IF_ERROR(out.Write(bytes.data(), bytes.size()));
//   SPATIALID_RETURN_IF_ERROR(out.Commit());
//   // or, for bytes already in memory:
//   SPATIALID_RETURN_IF_ERROR(WriteFileAtomically(path, bytes));
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/temporary_name.h"

namespace spatialid::io {

class AtomicOutputFile {
 public:
  enum class Sync { kFsync, kNoFsync };

  // Opens a fresh temporary file in the target's folder. Fails with a message
  // naming the path when the folder is missing or not writable.
  static absl::StatusOr<AtomicOutputFile> Create(std::string path, Sync sync = Sync::kFsync) {
    namespace fs = std::filesystem;
    if (path.empty()) return absl::InvalidArgumentError("output path is empty");
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": is a folder, expected a file path"));
    }
    fs::path parent = fs::path(path).parent_path();
    if (parent.empty()) parent = ".";
    if (!fs::is_directory(parent, ec)) {
      return absl::NotFoundError(
          absl::StrCat("cannot write ", path, ": folder ", parent.string(), " does not exist"));
    }
    std::string temp = TemporaryPathFor(path);
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      int err = errno;
      return ErrnoStatus(err, absl::StrCat("cannot write ", path, ": creating a file in folder ",
                                           parent.string(), " failed"));
    }
    return AtomicOutputFile(std::move(path), std::move(temp), fd, sync);
  }

  AtomicOutputFile(AtomicOutputFile&& other) noexcept { *this = std::move(other); }
  AtomicOutputFile& operator=(AtomicOutputFile&& other) noexcept {
    if (this != &other) {
      Abandon();
      path_ = std::move(other.path_);
      temp_ = std::move(other.temp_);
      fd_ = std::exchange(other.fd_, -1);
      written_ = other.written_;
      buffer_ = std::move(other.buffer_);
      failed_ = other.failed_;
      sync_ = other.sync_;
    }
    return *this;
  }
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;
  ~AtomicOutputFile() { Abandon(); }

  const std::string& path() const { return path_; }
  // Bytes written so far (the offset the next byte lands at).
  uint64_t position() const { return written_; }

  absl::Status Write(const void* data, size_t n) {
    if (failed_) return absl::FailedPreconditionError(absl::StrCat(path_, ": earlier write failed"));
    if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": file is closed"));
    const char* p = static_cast<const char*>(data);
    written_ += n;
    // Small pieces (headers, pickle bytes) are gathered; tensor payloads go
    // straight to the kernel without a copy.
    if (buffer_.size() + n <= kBufferBytes) {
      buffer_.insert(buffer_.end(), p, p + n);
      return absl::OkStatus();
    }
    absl::Status s = Flush();
    if (!s.ok()) return s;
    if (n <= kBufferBytes) {
      buffer_.insert(buffer_.end(), p, p + n);
      return absl::OkStatus();
    }
    return WriteAll(p, n);
  }

  // Flushes, fsyncs and renames the temporary file onto `path()`.
  absl::Status Commit() {
    if (failed_) return absl::FailedPreconditionError(absl::StrCat(path_, ": earlier write failed"));
    if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": file is closed"));
    absl::Status s = Flush();
    if (s.ok() && sync_ == Sync::kFsync && ::fsync(fd_) != 0) {
      s = ErrnoStatus(errno, absl::StrCat("cannot write ", path_, ": fsync failed"));
    }
    int fd = std::exchange(fd_, -1);
    if (fd >= 0 && ::close(fd) != 0 && s.ok()) {
      s = ErrnoStatus(errno, absl::StrCat("cannot write ", path_, ": close failed"));
    }
    if (s.ok() && ::rename(temp_.c_str(), path_.c_str()) != 0) {
      s = ErrnoStatus(errno, absl::StrCat("cannot write ", path_, ": renaming ", temp_, " failed"));
    }
    if (!s.ok()) ::unlink(temp_.c_str());
    return s;
  }

 private:
  static constexpr size_t kBufferBytes = size_t{1} << 20;

  AtomicOutputFile(std::string path, std::string temp, int fd, Sync sync)
      : path_(std::move(path)), temp_(std::move(temp)), fd_(fd), sync_(sync) {
    buffer_.reserve(kBufferBytes);
  }

  static absl::Status ErrnoStatus(int err, absl::string_view what) {
    std::string msg = absl::StrCat(what, ": ", std::strerror(err));
    switch (err) {
      case EACCES:
      case EPERM:
      case EROFS:
        return absl::PermissionDeniedError(msg);
      case ENOENT:
        return absl::NotFoundError(msg);
      case ENOSPC:
      case EDQUOT:
        return absl::ResourceExhaustedError(msg);
      default:
        return absl::InternalError(msg);
    }
  }

  absl::Status Flush() {
    if (buffer_.empty()) return absl::OkStatus();
    absl::Status s = WriteAll(buffer_.data(), buffer_.size());
    buffer_.clear();
    return s;
  }

  absl::Status WriteAll(const char* p, size_t n) {
    while (n > 0) {
      ssize_t k = ::write(fd_, p, n > (size_t{1} << 30) ? (size_t{1} << 30) : n);
      if (k < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        // Nothing of a failed file is kept, not even until the destructor.
        failed_ = true;
        Abandon();
        return ErrnoStatus(err, absl::StrCat("cannot write ", path_));
      }
      p += k;
      n -= static_cast<size_t>(k);
    }
    return absl::OkStatus();
  }

  void Abandon() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
      ::unlink(temp_.c_str());
    }
  }

  std::string path_;
  std::string temp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  std::vector<char> buffer_;
  bool failed_ = false;
  Sync sync_ = Sync::kFsync;
};

// Writes `bytes` to `path` whole or not at all, creating its parent folders.
inline absl::Status WriteFileAtomically(const std::string& path, std::string_view bytes,
                                        AtomicOutputFile::Sync sync = AtomicOutputFile::Sync::kFsync) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::PermissionDeniedError(absl::StrCat("cannot write ", path, ": cannot create folder ",
                                                      parent.string(), " (", ec.message(), ")"));
    }
  }
  absl::StatusOr<AtomicOutputFile> out = AtomicOutputFile::Create(path, sync);
  if (!out.ok()) return out.status();
  absl::Status s = out->Write(bytes.data(), bytes.size());
  return s.ok() ? out->Commit() : s;
}

}  // namespace spatialid::io
