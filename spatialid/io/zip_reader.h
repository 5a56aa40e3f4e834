// Reads stored (uncompressed) zip archives such as PyTorch's .pt files.
//
// Everything is located through the central directory (so data descriptors,
// as torch.save writes them, need no special care) and every offset and
// length read from the file is checked against the bytes actually present:
// a truncated or corrupt archive is an error naming the file, never an
// out-of-bounds read. zip64 sizes, offsets and end records are understood;
// compressed or encrypted entries are refused with a clear message.
//
// `ZipReader` parses bytes it does not own, typically a `ReadOnlyMapping`.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(ReadOnlyMapping file, ReadOnlyMapping::Open(path));
//   SPATIALID_ASSIGN_OR_RETURN(ZipReader zip, ZipReader::Parse(file.bytes(), path));
//   const ZipEntry* e = zip.Find("archive/data.pkl");
//   SPATIALID_ASSIGN_OR_RETURN(auto bytes, zip.Read(*e));
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/zip_crc32.h"

namespace spatialid::io {

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // first payload byte, from the start of the archive
  uint64_t size = 0;
  uint32_t crc32 = 0;
};

class ZipReader {
 public:
  // `label` names the archive in error messages (usually its path).
  static absl::StatusOr<ZipReader> Parse(std::span<const uint8_t> bytes, std::string label) {
    ZipReader r(bytes, std::move(label));
    absl::Status s = r.ParseDirectory();
    if (!s.ok()) return s;
    return r;
  }

  const std::string& label() const { return label_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }

  // nullptr when no entry has this exact name.
  const ZipEntry* Find(std::string_view name) const {
    auto it = index_.find(absl::string_view(name.data(), name.size()));
    return it == index_.end() ? nullptr : &entries_[it->second];
  }

  // The payload of `e` (a view into the archive bytes), CRC-checked.
  absl::StatusOr<std::span<const uint8_t>> Read(const ZipEntry& e, bool verify_crc = true) const {
    std::span<const uint8_t> data = bytes_.subspan(e.data_offset, e.size);
    if (verify_crc) {
      uint32_t crc = Crc32(data.data(), data.size());
      if (crc != e.crc32) {
        return absl::DataLossError(absl::StrCat(label_, ": zip entry ", e.name,
                                                " is corrupt (CRC-32 mismatch)"));
      }
    }
    return data;
  }

 private:
  ZipReader(std::span<const uint8_t> bytes, std::string label)
      : bytes_(bytes), label_(std::move(label)) {}

  absl::Status Corrupt(absl::string_view what) const {
    return absl::DataLossError(
        absl::StrCat(label_, ": not a valid zip archive (.pt file): ", what));
  }

  bool Has(uint64_t offset, uint64_t n) const {
    return offset <= bytes_.size() && n <= bytes_.size() - offset;
  }
  uint16_t U16(uint64_t o) const {
    uint16_t v;
    std::memcpy(&v, bytes_.data() + o, 2);
    return v;
  }
  uint32_t U32(uint64_t o) const {
    uint32_t v;
    std::memcpy(&v, bytes_.data() + o, 4);
    return v;
  }
  uint64_t U64(uint64_t o) const {
    uint64_t v;
    std::memcpy(&v, bytes_.data() + o, 8);
    return v;
  }

  absl::Status ParseDirectory() {
    constexpr uint64_t kEndSize = 22;
    if (bytes_.size() < kEndSize) {
      return Corrupt(absl::StrCat("file has ", bytes_.size(),
                                  " bytes, too short for an end-of-central-directory record "
                                  "(truncated?)"));
    }
    // The end record is the last 22 bytes plus a comment of at most 64 KiB;
    // take the last signature whose comment length reaches exactly the end.
    uint64_t end = UINT64_MAX;
    const uint64_t lowest = bytes_.size() > kEndSize + 0xFFFF ? bytes_.size() - kEndSize - 0xFFFF : 0;
    for (uint64_t p = bytes_.size() - kEndSize + 1; p-- > lowest;) {
      if (U32(p) == 0x06054b50 && p + kEndSize + U16(p + 20) == bytes_.size()) {
        end = p;
        break;
      }
    }
    if (end == UINT64_MAX) {
      return Corrupt("no end-of-central-directory record (truncated, or not a zip file)");
    }
    if (U16(end + 4) != 0 || U16(end + 6) != 0) return Corrupt("multi-disk archives are not supported");
    uint64_t count = U16(end + 10);
    uint64_t cd_size = U32(end + 12);
    uint64_t cd_offset = U32(end + 16);
    uint64_t cd_limit = end;  // the directory ends where the end records begin
    if (end >= 20 && U32(end - 20) == 0x07064b50) {
      const uint64_t z64 = U64(end - 20 + 8);
      if (!Has(z64, 56) || z64 + 56 > end - 20 || U32(z64) != 0x06064b50) {
        return Corrupt("zip64 end-of-central-directory locator points outside the file");
      }
      count = U64(z64 + 32);
      cd_size = U64(z64 + 40);
      cd_offset = U64(z64 + 48);
      cd_limit = z64;
    }
    if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) {
      return Corrupt(absl::StrCat("central directory (offset ", cd_offset, ", ", cd_size,
                                  " bytes) lies outside the file"));
    }
    if (count > cd_size / 46) {
      return Corrupt(absl::StrCat("central directory claims ", count, " entries in ", cd_size,
                                  " bytes"));
    }
    entries_.reserve(count);
    uint64_t p = cd_offset;
    const uint64_t cd_end = cd_offset + cd_size;
    for (uint64_t i = 0; i < count; ++i) {
      if (p > cd_end || cd_end - p < 46 || U32(p) != 0x02014b50) {
        return Corrupt(absl::StrCat("central directory entry ", i, " is malformed"));
      }
      const uint16_t flags = U16(p + 8);
      const uint16_t method = U16(p + 10);
      const uint32_t crc = U32(p + 16);
      uint64_t csize = U32(p + 20);
      uint64_t usize = U32(p + 24);
      const uint64_t name_len = U16(p + 28);
      const uint64_t extra_len = U16(p + 30);
      const uint64_t comment_len = U16(p + 32);
      uint64_t header = U32(p + 42);
      if (cd_end - p - 46 < name_len + extra_len + comment_len) {
        return Corrupt(absl::StrCat("central directory entry ", i, " runs past the directory"));
      }
      std::string name(reinterpret_cast<const char*>(bytes_.data() + p + 46), name_len);
      // zip64 extra: 8-byte values for exactly the fields saturated above, in order.
      for (uint64_t x = p + 46 + name_len, xe = x + extra_len; x + 4 <= xe;) {
        const uint16_t id = U16(x);
        const uint64_t len = U16(x + 2);
        if (len > xe - x - 4) return Corrupt(absl::StrCat("extra field of ", name, " is malformed"));
        if (id == 0x0001) {
          uint64_t q = x + 4;
          const uint64_t qe = q + len;
          for (uint64_t* field : {&usize, &csize, &header}) {
            if (*field != 0xFFFFFFFFu) continue;
            if (qe - q < 8) return Corrupt(absl::StrCat("zip64 field of ", name, " is too short"));
            *field = U64(q);
            q += 8;
          }
        }
        x += 4 + len;
      }
      if (flags & 0x0001) return Corrupt(absl::StrCat("entry ", name, " is encrypted"));
      if (method != 0) {
        return absl::UnimplementedError(
            absl::StrCat(label_, ": zip entry ", name, " is compressed (method ", method,
                         "); only stored entries, as torch.save writes them, are supported"));
      }
      if (csize != usize) {
        return Corrupt(absl::StrCat("stored entry ", name, " has compressed size ", csize,
                                    " but size ", usize));
      }
      // The local header repeats the name; its own extra field (torch's
      // alignment padding) decides where the payload starts.
      if (!Has(header, 30) || U32(header) != 0x04034b50) {
        return Corrupt(absl::StrCat("local header of ", name, " is missing (offset ", header, ")"));
      }
      const uint64_t local_name = U16(header + 26);
      const uint64_t local_extra = U16(header + 28);
      const uint64_t data = header + 30 + local_name + local_extra;
      if (local_name != name.size() || !Has(header + 30, local_name) ||
          std::memcmp(bytes_.data() + header + 30, name.data(), local_name) != 0) {
        return Corrupt(absl::StrCat("local header of ", name, " names a different entry"));
      }
      if (!Has(data, usize) || data + usize > cd_offset) {
        return Corrupt(absl::StrCat("entry ", name, " (", usize, " bytes at offset ", data,
                                    ") runs past the end of the data (truncated?)"));
      }
      if (!index_.emplace(name, entries_.size()).second) {
        return Corrupt(absl::StrCat("entry ", name, " appears twice"));
      }
      entries_.push_back(ZipEntry{std::move(name), data, usize, crc});
      p += 46 + name_len + extra_len + comment_len;
    }
    return absl::OkStatus();
  }

  std::span<const uint8_t> bytes_;
  std::string label_;
  std::vector<ZipEntry> entries_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// A file mapped read-only for as long as this object lives (moving it keeps
// the mapping). An empty file maps to an empty span.
class ReadOnlyMapping {
 public:
  static absl::StatusOr<ReadOnlyMapping> Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      std::string msg = absl::StrCat(path, ": cannot open (", std::strerror(err), ")");
      return err == ENOENT ? absl::NotFoundError(msg) : absl::PermissionDeniedError(msg);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
    }
    ReadOnlyMapping m;
    m.size_ = static_cast<size_t>(st.st_size);
    if (m.size_ > 0) {
      void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return absl::InternalError(absl::StrCat(path, ": mmap failed (", std::strerror(err), ")"));
      }
      m.data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
    return m;
  }

  ReadOnlyMapping(ReadOnlyMapping&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  ReadOnlyMapping& operator=(ReadOnlyMapping&& o) noexcept {
    if (this != &o) {
      Unmap();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ReadOnlyMapping(const ReadOnlyMapping&) = delete;
  ReadOnlyMapping& operator=(const ReadOnlyMapping&) = delete;
  ~ReadOnlyMapping() { Unmap(); }

  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  ReadOnlyMapping() = default;
  void Unmap() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = nullptr;
  }

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace spatialid::io
