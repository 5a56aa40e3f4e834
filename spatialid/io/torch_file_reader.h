// Reads .pt files holding nested dicts of tensors: spatialid's own (see
// torch_file_writer.h) and those Python's torch.save writes for such dicts.
//
// The zip archive is located through its central directory
// (zip_reader.h), `<archive>/data.pkl` runs on a restricted pickle machine
// that calls nothing (pickle_reader.h), and each persistent-id storage
// `<archive>/data/<key>` is copied into a CPU tensor; tensors are views of
// their storage with the pickled offset, sizes and strides, so tensors that
// shared a storage in Python share one here. Keys must be ints, strs or
// tuples of ints and values dicts or tensors; anything else, and every
// inconsistency (a truncated file, a CRC mismatch, a view reaching past
// its storage, a missing record), is an error naming the file and where in
// the structure it happened. Nothing is trusted before it is checked.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(PtDict ids, ReadTorchDict("embeds/llava-7b.pt"));
//   at::Tensor v = ids.at(12).at("universal").at(PtKey::Tuple(3, 0, 224)).tensor();
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/pickle_reader.h"
#include "spatialid/io/torch_file_dict.h"
#include "spatialid/io/zip_reader.h"

namespace spatialid::io {

struct TorchFileReadOptions {
  bool verify_crc = true;
  // Dicts nested deeper than this are refused (spatial-ID files use 3).
  int max_depth = 64;
};

namespace torch_file_internal {

inline at::ScalarType StorageScalarType(std::string_view type) {
  if (type == "FloatStorage") return at::kFloat;
  if (type == "HalfStorage") return at::kHalf;
  if (type == "BFloat16Storage") return at::kBFloat16;
  if (type == "DoubleStorage") return at::kDouble;
  if (type == "LongStorage") return at::kLong;
  if (type == "IntStorage") return at::kInt;
  if (type == "ShortStorage") return at::kShort;
  if (type == "CharStorage") return at::kChar;
  if (type == "ByteStorage") return at::kByte;
  if (type == "BoolStorage") return at::kBool;
  return at::ScalarType::Undefined;
}

class Loader {
 public:
  Loader(const ZipReader& zip, std::string prefix, size_t node_budget,
         const TorchFileReadOptions& options)
      : zip_(zip), prefix_(std::move(prefix)), budget_(node_budget), options_(options) {}

  absl::StatusOr<PtValue> Value(const PickleNode* n, const std::string& where, int depth) {
    if (budget_-- == 0) {
      return Error(where, "the pickle references its objects more often than it defines them "
                          "(cyclic or exponentially shared structure)");
    }
    if (n->kind == PickleNode::Kind::kTensor) {
      auto t = Tensor(n, where);
      if (!t.ok()) return t.status();
      return PtValue(*std::move(t));
    }
    if (n->kind != PickleNode::Kind::kDict) {
      return Error(where, absl::StrCat("has type ", PickleKindName(n->kind),
                                       "; only dicts and tensors are read"));
    }
    if (depth >= options_.max_depth) {
      return Error(where, absl::StrCat("dicts nest deeper than ", options_.max_depth, " levels"));
    }
    PtDict d;
    for (size_t i = 0; i + 1 < n->items.size(); i += 2) {
      auto key = Key(n->items[i], where);
      if (!key.ok()) return key.status();
      const std::string inner = absl::StrCat(where, "[", key->ToString(), "]");
      auto v = Value(n->items[i + 1], inner, depth + 1);
      if (!v.ok()) return v.status();
      d.insert_or_assign(*key, *std::move(v));
    }
    return PtValue(std::move(d));
  }

 private:
  absl::Status Error(const std::string& where, absl::string_view what) const {
    return absl::DataLossError(absl::StrCat(
        zip_.label(), ": ", where.empty() ? "the top-level value" : absl::StrCat("value ", where),
        " ", what));
  }

  absl::StatusOr<PtKey> Key(const PickleNode* k, const std::string& where) const {
    switch (k->kind) {
      case PickleNode::Kind::kInt: return PtKey(k->integer);
      case PickleNode::Kind::kString: return PtKey(k->text);
      case PickleNode::Kind::kTuple: {
        PtKey::IntTuple t;
        for (const PickleNode* v : k->items) {
          if (v->kind != PickleNode::Kind::kInt) {
            return Error(where, "has a tuple key with a non-int element; keys must be ints, "
                                "strs or tuples of ints");
          }
          t.push_back(v->integer);
        }
        return PtKey::FromTuple(std::move(t));
      }
      default:
        return Error(where, absl::StrCat("has a key of type ", PickleKindName(k->kind),
                                         "; keys must be ints, strs or tuples of ints"));
    }
  }

  absl::StatusOr<at::Tensor> Storage(const PickleNode* s, const std::string& where) {
    const at::ScalarType dtype = StorageScalarType(s->storage_type);
    if (dtype == at::ScalarType::Undefined) {
      return Error(where, absl::StrCat("uses unsupported storage type torch.", s->storage_type));
    }
    auto cached = storages_.find(s->text);
    if (cached != storages_.end()) {
      if (cached->second.scalar_type() != dtype || cached->second.numel() != s->integer) {
        return Error(where, absl::StrCat("reuses storage ", s->text, " with another type or size"));
      }
      return cached->second;
    }
    const std::string record = absl::StrCat(prefix_, "/data/", s->text);
    const ZipEntry* e = zip_.Find(record);
    if (e == nullptr) return Error(where, absl::StrCat("needs record ", record, ", which is missing"));
    const uint64_t element = static_cast<uint64_t>(at::elementSize(dtype));
    const uint64_t numel = static_cast<uint64_t>(s->integer);
    if (numel > e->size / element || numel * element != e->size) {
      return Error(where, absl::StrCat("storage ", s->text, " claims ", numel, " elements of ",
                                       element, " bytes but record ", record, " has ", e->size,
                                       " bytes"));
    }
    auto bytes = zip_.Read(*e, options_.verify_crc);
    if (!bytes.ok()) return bytes.status();
    at::Tensor t = at::empty({static_cast<int64_t>(numel)}, at::TensorOptions().dtype(dtype));
    if (e->size > 0) std::memcpy(t.data_ptr(), bytes->data(), e->size);
    storages_.emplace(s->text, t);
    return t;
  }

  absl::StatusOr<at::Tensor> Tensor(const PickleNode* n, const std::string& where) {
    auto storage = Storage(n->items[0], where);
    if (!storage.ok()) return storage.status();
    const int64_t available = storage->numel();
    const int64_t offset = n->integer;
    if (offset < 0 || offset > available) {
      return Error(where, absl::StrCat("has storage offset ", offset, " outside its storage of ",
                                       available, " elements"));
    }
    // The last element the view touches must lie inside the storage.
    bool empty = false;
    int64_t last = offset;
    for (size_t i = 0; i < n->sizes.size(); ++i) {
      const int64_t size = n->sizes[i], stride = n->strides[i];
      if (size < 0 || stride < 0) return Error(where, "has a negative size or stride");
      if (size == 0) empty = true;
      int64_t reach;
      if (size > 0 && (__builtin_mul_overflow(size - 1, stride, &reach) ||
                       __builtin_add_overflow(last, reach, &last))) {
        return Error(where, "has sizes and strides that overflow");
      }
    }
    if (!empty && last >= available) {
      return Error(where, absl::StrCat("reaches element ", last, " of a storage of ", available,
                                       " elements"));
    }
    return storage->as_strided(n->sizes, n->strides, offset);
  }

  const ZipReader& zip_;
  std::string prefix_;
  size_t budget_;
  const TorchFileReadOptions& options_;
  absl::flat_hash_map<std::string, at::Tensor> storages_;
};

}  // namespace torch_file_internal

// Parses .pt bytes; `label` names them in errors (usually the path).
inline absl::StatusOr<PtValue> ParseTorchFile(std::span<const uint8_t> bytes, std::string label,
                                              const TorchFileReadOptions& options = {}) {
  auto zip = ZipReader::Parse(bytes, label);
  if (!zip.ok()) {
    if (!bytes.empty() && bytes[0] == 0x80) {
      return absl::UnimplementedError(absl::StrCat(
          label, ": a legacy (pre-zip) torch.save file; re-save it with a current torch"));
    }
    return zip.status();
  }
  if (zip->entries().empty()) return absl::DataLossError(absl::StrCat(label, ": empty zip archive"));
  // Like torch: every record lives under the first record's top folder.
  const std::string& first = zip->entries().front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) {
    return absl::DataLossError(absl::StrCat(label, ": not a .pt archive (record ", first,
                                            " is not inside an archive folder)"));
  }
  const std::string prefix = first.substr(0, slash);
  const ZipEntry* pkl = zip->Find(prefix + "/data.pkl");
  if (pkl == nullptr) {
    return absl::DataLossError(
        absl::StrCat(label, ": not a .pt archive (no ", prefix, "/data.pkl record)"));
  }
  if (const ZipEntry* order = zip->Find(prefix + "/byteorder")) {
    auto b = zip->Read(*order, options.verify_crc);
    if (!b.ok()) return b.status();
    if (std::string_view(reinterpret_cast<const char*>(b->data()), b->size()) != "little") {
      return absl::UnimplementedError(
          absl::StrCat(label, ": only little-endian .pt files are supported"));
    }
  }
  auto pkl_bytes = zip->Read(*pkl, options.verify_crc);
  if (!pkl_bytes.ok()) return pkl_bytes.status();
  auto tree = ParsePickle(*pkl_bytes, absl::StrCat(label, ":", pkl->name));
  if (!tree.ok()) return tree.status();
  try {
    torch_file_internal::Loader loader(*zip, prefix, tree->nodes.size(), options);
    return loader.Value(tree->root, "", 0);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(label, ": ", e.what()));
  }
}

// Reads a .pt file holding a dict or a tensor.
inline absl::StatusOr<PtValue> ReadTorchFile(const std::string& path,
                                             const TorchFileReadOptions& options = {}) {
  auto file = ReadOnlyMapping::Open(path);
  if (!file.ok()) return file.status();
  // Tensors are copies, so the mapping may go once parsing is done.
  return ParseTorchFile(file->bytes(), path, options);
}

// Reads a .pt file whose top level must be a dict.
inline absl::StatusOr<PtDict> ReadTorchDict(const std::string& path,
                                            const TorchFileReadOptions& options = {}) {
  auto v = ReadTorchFile(path, options);
  if (!v.ok()) return v.status();
  if (!v->is_dict()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": holds a tensor, expected a dict"));
  }
  return std::move(v->dict());
}

}  // namespace spatialid::io
