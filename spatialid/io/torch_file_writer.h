// Writes `PtDict`s as PyTorch .pt files that torch.load(path,
// weights_only=True) reads back as the same nested dicts of CPU tensors.
//
// libtorch's own pickler cannot hash tuple keys, and the paper's files are
// keyed by tuples such as (3, 0, 224), so spatialid writes the format
// itself: a zip archive (zip_writer.h, laid out like torch.save's) holding
//   archive/data.pkl              the pickle (protocol 2) of the dict, each
//                                 tensor as torch._utils._rebuild_tensor_v2
//                                 over a persistent-id storage
//   archive/.format_version       "1"
//   archive/.storage_alignment    "64"
//   archive/byteorder             "little"
//   archive/data/0, data/1, ...   raw little-endian storage bytes
//   archive/version               "3\n"
//   archive/.data/serialization_id  40 digits (here: derived from the content,
//                                 so the same dict always gives the same file)
// Each tensor is stored contiguously in its own storage (the same tensor
// object appearing twice shares one, as in torch.save). Tensors on other
// devices are copied to the CPU. Supported dtypes: float32, float16,
// bfloat16, float64, int64, int32, int16, int8, uint8, bool.
//
// Files are written atomically (atomic_output_file.h).
//
// Example:
//   PtDict ids;
//   ids[12]["universal"][PtKey::Tuple(3, 0, 224)] = vector;
//   SPATIALID_RETURN_IF_ERROR(WriteTorchFile("out/llava-7b.pt", ids));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spatialid/io/atomic_output_file.h"
#include "spatialid/io/pickle_writer.h"
#include "spatialid/io/torch_file_dict.h"
#include "spatialid/io/zip_writer.h"

namespace spatialid::io {

struct TorchFileWriteOptions {
  // Top folder of the records (torch.save uses the file's stem; torch.load
  // accepts any name).
  std::string archive_name = "archive";
  ZipWriterOptions zip;
};

// torch's storage class for a dtype, or "" when .pt files cannot hold it here.
inline std::string_view TorchStorageTypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "FloatStorage";
    case at::kHalf: return "HalfStorage";
    case at::kBFloat16: return "BFloat16Storage";
    case at::kDouble: return "DoubleStorage";
    case at::kLong: return "LongStorage";
    case at::kInt: return "IntStorage";
    case at::kShort: return "ShortStorage";
    case at::kChar: return "CharStorage";
    case at::kByte: return "ByteStorage";
    case at::kBool: return "BoolStorage";
    default: return "";
  }
}

namespace torch_file_internal {

// Pickles the dict tree and collects the storages to write after it.
class Pickler {
 public:
  absl::Status Dict(const PtDict& d, const std::string& where) {
    w_.EmptyDict();
    w_.Put();
    // Python's pickler batches SETITEMS by 1000 and uses SETITEM for one pair.
    auto it = d.begin();
    size_t left = d.size();
    while (left > 0) {
      const size_t batch = left < 1000 ? left : 1000;
      if (batch > 1) w_.Mark();
      for (size_t i = 0; i < batch; ++i, ++it) {
        Key(it->first);
        const std::string inner = absl::StrCat(where, "[", it->first.ToString(), "]");
        if (absl::Status s = Value(it->second, inner); !s.ok()) return s;
      }
      if (batch > 1) {
        w_.SetItems();
      } else {
        w_.SetItem();
      }
      left -= batch;
    }
    return absl::OkStatus();
  }

  absl::Status Value(const PtValue& v, const std::string& where) {
    return v.is_dict() ? Dict(v.dict(), where) : Tensor(v.tensor(), where);
  }

  absl::Status Tensor(const at::Tensor& original, const std::string& where) {
    if (!original.defined()) {
      return absl::InvalidArgumentError(absl::StrCat("value ", where, " is an undefined tensor"));
    }
    const std::string_view storage_type = TorchStorageTypeName(original.scalar_type());
    if (storage_type.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "value ", where, " has dtype ", c10::toString(original.scalar_type()),
          "; .pt files here hold float32/16, bfloat16, float64, int64/32/16/8, uint8, bool"));
    }
    if (original.layout() != at::kStrided || original.is_quantized()) {
      return absl::InvalidArgumentError(absl::StrCat("value ", where, " is not a dense tensor"));
    }
    const void* identity = original.unsafeGetTensorImpl();
    auto [it, fresh] = storage_keys_.emplace(identity, storages_.size());
    if (fresh) {
      at::Tensor t = original;
      if (!t.device().is_cpu()) t = t.cpu();
      if (t.is_neg()) t = t.resolve_neg();
      t = t.contiguous();
      storages_.push_back(t);
    }
    const size_t key = it->second;
    const at::Tensor& stored = storages_[key];

    w_.Global("torch._utils", "_rebuild_tensor_v2");
    w_.Mark();
    // Persistent id: ('storage', torch.<Type>Storage, key, location, numel).
    w_.Mark();
    w_.MemoString("storage");
    w_.Global("torch", storage_type);
    w_.String(absl::StrCat(key));
    w_.MemoString("cpu");
    w_.Int(stored.numel());
    w_.TupleFromMark();
    w_.PersistentId();
    w_.Int(0);  // storage offset
    IntTuple(stored.sizes());
    // Contiguous strides, computed so 0-sized dims get torch's own values.
    IntTuple(stored.strides());
    w_.Bool(false);  // requires_grad
    w_.Global("collections", "OrderedDict");
    w_.EmptyTuple();
    w_.Reduce();  // backward hooks: OrderedDict()
    w_.TupleFromMark();
    w_.Reduce();
    return absl::OkStatus();
  }

  std::string Finish() { return w_.Finish(); }
  const std::vector<at::Tensor>& storages() const { return storages_; }

 private:
  void Key(const PtKey& k) {
    if (k.is_int()) {
      w_.Int(k.as_int());
    } else if (k.is_string()) {
      w_.String(k.as_string());
    } else {
      const auto& t = k.as_tuple();
      if (t.size() > 3) w_.Mark();
      for (int64_t v : t) w_.Int(v);
      w_.Tuple(static_cast<int>(t.size()));
    }
  }

  void IntTuple(at::IntArrayRef v) {
    if (v.size() > 3) w_.Mark();
    for (int64_t x : v) w_.Int(x);
    w_.Tuple(static_cast<int>(v.size()));
  }

  PickleWriter w_;
  absl::flat_hash_map<const void*, size_t> storage_keys_;
  std::vector<at::Tensor> storages_;
};

template <ByteSink Sink>
absl::Status WriteArchive(Pickler& pickler, Sink* sink, const TorchFileWriteOptions& options) {
  const std::string pkl = pickler.Finish();
  ZipWriter<Sink> zip(sink, options.zip);
  const std::string& root = options.archive_name;
  auto add = [&](const std::string& name, std::string_view bytes) {
    return zip.AddRecord(absl::StrCat(root, "/", name), bytes);
  };
  absl::Status s = add("data.pkl", pkl);
  if (s.ok()) s = add(".format_version", "1");
  if (s.ok()) s = add(".storage_alignment", absl::StrCat(options.zip.alignment));
  if (s.ok()) s = add("byteorder", "little");
  const auto& storages = pickler.storages();
  for (size_t i = 0; s.ok() && i < storages.size(); ++i) {
    const at::Tensor& t = storages[i];
    s = zip.AddRecord(absl::StrCat(root, "/data/", i), t.data_ptr(), t.nbytes());
  }
  if (s.ok()) s = add("version", "3\n");
  if (s.ok()) {
    const uint64_t h = zip.ContentHash();
    s = add(".data/serialization_id",
            absl::StrFormat("%020u%020u", h, h * 0x9E3779B97F4A7C15ull + 1));
  }
  if (s.ok()) s = zip.Finish();
  return s;
}

template <typename Root>
absl::Status WriteRoot(const Root& root, const std::string& path,
                       const TorchFileWriteOptions& options) {
  try {
    Pickler pickler;
    absl::Status s;
    if constexpr (std::is_same_v<Root, PtDict>) {
      s = pickler.Dict(root, "dict");
    } else {
      s = pickler.Value(root, "value");
    }
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("cannot write ", path, ": ", s.message()));
    auto out = AtomicOutputFile::Create(path);
    if (!out.ok()) return out.status();
    s = WriteArchive(pickler, &*out, options);
    if (!s.ok()) return s;
    return out->Commit();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", e.what()));
  }
}

}  // namespace torch_file_internal

// Writes `dict` to `path` (atomically). The folder must exist.
inline absl::Status WriteTorchFile(const std::string& path, const PtDict& dict,
                                   const TorchFileWriteOptions& options = {}) {
  return torch_file_internal::WriteRoot(dict, path, options);
}

// Writes a dict or a lone tensor.
inline absl::Status WriteTorchFile(const std::string& path, const PtValue& value,
                                   const TorchFileWriteOptions& options = {}) {
  return torch_file_internal::WriteRoot(value, path, options);
}

// The bytes WriteTorchFile would write, in memory.
inline absl::StatusOr<std::string> SerializeTorchFile(const PtDict& dict,
                                                      const TorchFileWriteOptions& options = {}) {
  try {
    torch_file_internal::Pickler pickler;
    if (absl::Status s = pickler.Dict(dict, "dict"); !s.ok()) return s;
    StringSink sink;
    if (absl::Status s = torch_file_internal::WriteArchive(pickler, &sink, options); !s.ok()) {
      return s;
    }
    return std::move(sink.bytes);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot serialize a .pt file: ", e.what()));
  }
}

}  // namespace spatialid::io
