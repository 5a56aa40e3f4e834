// Writes uncompressed ("stored") zip archives laid out the way torch.save
// lays out its .pt files.
//
// PyTorch's writer (miniz inside caffe2's PyTorchStreamWriter) gives each
// record a local header whose data start is padded to a 64-byte boundary
// with an extra field tagged "FB" full of 'Z' bytes, sets general-purpose
// bit 3 and follows each payload with a data descriptor (16 bytes, or 24
// with 64-bit sizes once the record or its offset reaches 4 GiB). torch.load
// can compute storage offsets from exactly that layout
// (torch.utils.serialization.config.load.calculate_storage_offsets), so
// this writer keeps it. Sizes and offsets that do not fit 32 bits use the
// zip64 extra field and zip64 end records as APPNOTE 4.5 describes.
//
// The writer streams: each record goes to the sink once (its CRC is taken
// from the same buffer), and the central directory is written by Finish().
//
// Example:
//   StringSink sink;
//   ZipWriter zip(&sink);
//   SPATIALID_RETURN_IF_ERROR(zip.AddRecord("archive/version", "3\n", 2));
//   SPATIALID_RETURN_IF_ERROR(zip.Finish());
#pragma once

#include <bit>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/zip_crc32.h"

namespace spatialid::io {

static_assert(std::endian::native == std::endian::little,
              "the zip and .pt writers emit little-endian records from host memory");

// Anything bytes can be appended to. AtomicOutputFile is the usual sink.
template <typename S>
concept ByteSink = requires(S& s, const void* p, size_t n) {
  { s.Write(p, n) } -> std::same_as<absl::Status>;
};

// A sink in memory, for tests and for small archives.
struct StringSink {
  std::string bytes;
  absl::Status Write(const void* p, size_t n) {
    bytes.append(static_cast<const char*>(p), n);
    return absl::OkStatus();
  }
};

struct ZipWriterOptions {
  // Each record's payload starts at a multiple of this (torch: 64).
  uint64_t alignment = 64;
  // Sizes and offsets >= this are written in zip64 form. The format's own
  // limit is 0xFFFFFFFF; tests lower it to exercise zip64 on small files.
  uint64_t zip64_threshold = 0xFFFFFFFFu;
};

template <ByteSink Sink>
class ZipWriter {
 public:
  explicit ZipWriter(Sink* sink, ZipWriterOptions options = {}) : sink_(sink), options_(options) {}

  // Appends one stored record. Names are UTF-8 paths with '/' separators.
  absl::Status AddRecord(std::string_view name, const void* data, uint64_t size) {
    if (finished_) return absl::FailedPreconditionError("zip archive already finished");
    if (name.empty() || name.size() > 0xFFFF) {
      return absl::InvalidArgumentError(absl::StrCat("zip record name of ", name.size(), " bytes"));
    }
    Entry e;
    e.name = std::string(name);
    e.header_offset = offset_;
    e.size = size;
    e.crc = Crc32(data, size);
    e.zip64 = size >= options_.zip64_threshold || offset_ >= options_.zip64_threshold;

    // Local header; crc and sizes follow the payload (bit 3), as miniz does.
    std::string h;
    Put32(h, 0x04034b50);
    Put16(h, e.zip64 ? 45 : 20);
    Put16(h, kFlags);
    Put16(h, 0);  // stored
    Put16(h, 0);  // time 00:00
    Put16(h, kDosDate);
    Put32(h, 0);
    Put32(h, 0);
    Put32(h, 0);
    Put16(h, static_cast<uint16_t>(name.size()));
    std::string extra;
    if (e.zip64) {
      // Present so readers expect 64-bit sizes in the data descriptor; the
      // values themselves are zero, as bit 3 requires.
      Put16(extra, 0x0001);
      Put16(extra, 16);
      Put64(extra, 0);
      Put64(extra, 0);
    }
    const uint64_t unpadded = offset_ + h.size() + 2 + name.size() + extra.size() + 4;
    const uint64_t pad = (options_.alignment - unpadded % options_.alignment) % options_.alignment;
    Put16(extra, 0x4246);  // "FB": PyTorch's padding field
    Put16(extra, static_cast<uint16_t>(pad));
    extra.append(pad, 'Z');
    if (extra.size() > 0xFFFF) return absl::InvalidArgumentError("zip alignment too large");
    Put16(h, static_cast<uint16_t>(extra.size()));
    h.append(name);
    h.append(extra);
    if (absl::Status s = Emit(h.data(), h.size()); !s.ok()) return s;
    if (absl::Status s = Emit(data, size); !s.ok()) return s;

    std::string dd;
    Put32(dd, 0x08074b50);
    Put32(dd, e.crc);
    if (e.zip64) {
      Put64(dd, size);
      Put64(dd, size);
    } else {
      Put32(dd, static_cast<uint32_t>(size));
      Put32(dd, static_cast<uint32_t>(size));
    }
    if (absl::Status s = Emit(dd.data(), dd.size()); !s.ok()) return s;
    entries_.push_back(std::move(e));
    return absl::OkStatus();
  }

  absl::Status AddRecord(std::string_view name, std::string_view bytes) {
    return AddRecord(name, bytes.data(), bytes.size());
  }

  // Writes the central directory and the end records. No record may follow.
  absl::Status Finish() {
    if (finished_) return absl::FailedPreconditionError("zip archive already finished");
    finished_ = true;
    const uint64_t cd_offset = offset_;
    const uint64_t limit = options_.zip64_threshold;
    std::string cd;
    for (const Entry& e : entries_) {
      const bool big_size = e.size >= limit;
      const bool big_offset = e.header_offset >= limit;
      std::string extra;
      if (big_size || big_offset) {
        Put16(extra, 0x0001);
        Put16(extra, static_cast<uint16_t>((big_size ? 16 : 0) + (big_offset ? 8 : 0)));
        if (big_size) {
          Put64(extra, e.size);  // uncompressed
          Put64(extra, e.size);  // compressed
        }
        if (big_offset) Put64(extra, e.header_offset);
      }
      const uint16_t version = e.zip64 || big_size || big_offset ? 45 : 20;
      Put32(cd, 0x02014b50);
      Put16(cd, static_cast<uint16_t>((3 << 8) | version));  // made by: Unix
      Put16(cd, version);
      Put16(cd, kFlags);
      Put16(cd, 0);
      Put16(cd, 0);
      Put16(cd, kDosDate);
      Put32(cd, e.crc);
      Put32(cd, big_size ? 0xFFFFFFFFu : static_cast<uint32_t>(e.size));
      Put32(cd, big_size ? 0xFFFFFFFFu : static_cast<uint32_t>(e.size));
      Put16(cd, static_cast<uint16_t>(e.name.size()));
      Put16(cd, static_cast<uint16_t>(extra.size()));
      Put16(cd, 0);  // comment
      Put16(cd, 0);  // disk
      Put16(cd, 0);  // internal attributes
      Put32(cd, 0100644u << 16);  // regular file, rw-r--r--
      Put32(cd, big_offset ? 0xFFFFFFFFu : static_cast<uint32_t>(e.header_offset));
      cd.append(e.name);
      cd.append(extra);
    }
    const uint64_t cd_size = cd.size();
    const uint64_t n = entries_.size();
    const bool zip64_end = n >= 0xFFFF || cd_offset >= limit || cd_size >= limit;
    std::string end;
    if (zip64_end) {
      const uint64_t record_offset = cd_offset + cd_size;
      Put32(end, 0x06064b50);
      Put64(end, 44);  // size of the rest of this record
      Put16(end, (3 << 8) | 45);
      Put16(end, 45);
      Put32(end, 0);
      Put32(end, 0);
      Put64(end, n);
      Put64(end, n);
      Put64(end, cd_size);
      Put64(end, cd_offset);
      Put32(end, 0x07064b50);  // locator
      Put32(end, 0);
      Put64(end, record_offset);
      Put32(end, 1);
    }
    Put32(end, 0x06054b50);
    Put16(end, 0);
    Put16(end, 0);
    Put16(end, static_cast<uint16_t>(zip64_end ? 0xFFFF : n));
    Put16(end, static_cast<uint16_t>(zip64_end ? 0xFFFF : n));
    Put32(end, zip64_end ? 0xFFFFFFFFu : static_cast<uint32_t>(cd_size));
    Put32(end, zip64_end ? 0xFFFFFFFFu : static_cast<uint32_t>(cd_offset));
    Put16(end, 0);  // comment
    if (absl::Status s = Emit(cd.data(), cd.size()); !s.ok()) return s;
    return Emit(end.data(), end.size());
  }

  // Bytes written so far.
  uint64_t offset() const { return offset_; }

  // A fingerprint of the records so far (names, sizes, CRCs): the .pt
  // writer derives a reproducible serialization id from it.
  uint64_t ContentHash() const {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    auto mix = [&h](const void* p, size_t n) {
      for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 0x100000001b3ull;
    };
    for (const Entry& e : entries_) {
      mix(e.name.data(), e.name.size());
      mix(&e.size, sizeof(e.size));
      mix(&e.crc, sizeof(e.crc));
    }
    return h;
  }

 private:
  // Bit 3: crc/sizes in a data descriptor; bit 11: names are UTF-8.
  static constexpr uint16_t kFlags = 0x0808;
  static constexpr uint16_t kDosDate = (1 << 5) | 1;  // 1980-01-01: fixed, so files are reproducible

  struct Entry {
    std::string name;
    uint64_t header_offset = 0;
    uint64_t size = 0;
    uint32_t crc = 0;
    bool zip64 = false;
  };

  static void Put16(std::string& s, uint16_t v) { s.append(reinterpret_cast<const char*>(&v), 2); }
  static void Put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
  static void Put64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }

  absl::Status Emit(const void* p, uint64_t n) {
    if (n == 0) return absl::OkStatus();
    absl::Status s = sink_->Write(p, static_cast<size_t>(n));
    if (s.ok()) offset_ += n;
    return s;
  }

  Sink* sink_;
  ZipWriterOptions options_;
  std::vector<Entry> entries_;
  uint64_t offset_ = 0;
  bool finished_ = false;
};

}  // namespace spatialid::io
