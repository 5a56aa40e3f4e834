// Memory-mapped safetensors files and their tensors as libtorch tensors.
//
// `SafetensorsFile::Open` maps a file, validates its header (see
// safetensors_header.h) and hands out tensors. When the stored dtype is the
// requested one, the target device is the CPU and the bytes are aligned for
// the element type, the tensor aliases the mapping (no copy) and keeps it
// alive through its deleter; otherwise it is converted with `.to()`. The
// mapping is private and writable, so writing to such a tensor changes only
// this process's copy-on-write pages, never the file.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor w, f.Load("lm_head.weight", at::kHalf, at::kCPU));
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/safetensors_header.h"

namespace spatialid::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; big-endian hosts are not supported");

// A whole file mapped read-write private (copy-on-write). Move-only; unmaps on
// destruction.
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::NotFoundError(absl::StrCat(path, ": cannot open (", std::strerror(errno), ")"));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": cannot stat (", std::strerror(err), ")"));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
    }
    MappedFile m;
    m.path_ = path;
    m.size_ = static_cast<size_t>(st.st_size);
    if (m.size_ > 0) {
      void* p = ::mmap(nullptr, m.size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        return absl::InternalError(absl::StrCat(path, ": mmap failed (", std::strerror(err), ")"));
      }
      m.data_ = static_cast<char*>(p);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
    return m;
  }

  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept
      : path_(std::move(o.path_)), data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      Unmap();
      path_ = std::move(o.path_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~MappedFile() { Unmap(); }

  const std::string& path() const { return path_; }
  char* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const { return {data_, size_}; }

 private:
  void Unmap() {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::string path_;
  char* data_ = nullptr;
  size_t size_ = 0;
};

// The libtorch scalar type of a loadable safetensors dtype.
inline absl::StatusOr<at::ScalarType> ToScalarType(SafetensorsDtype d) {
  switch (d) {
    case SafetensorsDtype::kF32: return at::kFloat;
    case SafetensorsDtype::kF16: return at::kHalf;
    case SafetensorsDtype::kBF16: return at::kBFloat16;
    default:
      return absl::UnimplementedError(
          absl::StrCat("dtype ", internal::AsAbsl(SafetensorsDtypeName(d)), " is not supported (F32, F16, BF16 are)"));
  }
}

// One safetensors file: a shared mapping plus its validated header. Copies
// share the mapping.
class SafetensorsFile {
 public:
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path) {
    absl::StatusOr<MappedFile> mapped = MappedFile::Open(path);
    if (!mapped.ok()) return mapped.status();
    auto shared = std::make_shared<MappedFile>(std::move(*mapped));
    absl::StatusOr<SafetensorsHeader> header = ParseSafetensorsHeader(shared->view(), path);
    if (!header.ok()) return header.status();
    SafetensorsFile f;
    f.mapping_ = std::move(shared);
    f.header_ = std::make_shared<const SafetensorsHeader>(std::move(*header));
    return f;
  }

  const std::string& path() const { return mapping_->path(); }
  const SafetensorsHeader& header() const { return *header_; }
  bool Has(std::string_view name) const { return header_->Find(name) != nullptr; }
  const SafetensorsTensorInfo* Find(std::string_view name) const { return header_->Find(name); }

  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    names.reserve(header_->tensors.size());
    for (const auto& [name, info] : header_->tensors) names.push_back(name);
    return names;
  }

  // The tensor `name` as `dtype` on `device`. Aliases the mapping when no
  // conversion is needed (see the file comment).
  absl::StatusOr<at::Tensor> Load(std::string_view name, at::ScalarType dtype,
                                  at::Device device) const {
    const SafetensorsTensorInfo* info = header_->Find(name);
    if (info == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(path(), ": no tensor \"", internal::AsAbsl(name), "\""));
    }
    absl::StatusOr<at::ScalarType> stored = ToScalarType(info->dtype);
    if (!stored.ok()) {
      return absl::UnimplementedError(
          absl::StrCat(path(), ": tensor \"", info->name, "\": ", stored.status().message()));
    }
    char* ptr = mapping_->data() + info->begin;
    const auto options = at::TensorOptions().dtype(*stored).device(at::kCPU);
    at::Tensor view;
    const bool aligned =
        reinterpret_cast<uintptr_t>(ptr) % SafetensorsDtypeSize(info->dtype) == 0;
    if (aligned) {
      std::shared_ptr<MappedFile> keep = mapping_;
      view = at::from_blob(ptr, info->shape, [keep](void*) {}, options);
    } else {
      // from_blob needs element alignment; a misaligned tensor (possible in a
      // valid file with an odd header length) is copied out bytewise.
      view = at::empty(info->shape, options);
      if (info->num_bytes() > 0) std::memcpy(view.data_ptr(), ptr, info->num_bytes());
    }
    if (*stored == dtype && device.is_cpu()) return view;
    try {
      return view.to(device, dtype, /*non_blocking=*/false, /*copy=*/false);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat(path(), ": tensor \"", info->name, "\": conversion to ",
                                              at::toString(dtype), " on ", device.str(),
                                              " failed: ", e.what()));
    }
  }

 private:
  SafetensorsFile() = default;

  std::shared_ptr<MappedFile> mapping_;
  std::shared_ptr<const SafetensorsHeader> header_;
};

}  // namespace spatialid::io
