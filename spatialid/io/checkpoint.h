// A Hugging Face model folder's weights, and loading a module's parameters
// by their Hugging Face names.
//
// `Checkpoint::Open(dir)` finds the weights the way transformers does:
// `model.safetensors.index.json` (sharded: `weight_map` name -> shard file;
// every shard must exist and hold the names mapped to it), else
// `model.safetensors`, else every `*.safetensors` in the folder (a name in two
// files is an error). Shards are memory-mapped once and shared by copies.
//
// `StateDictLoader` is how a model takes its weights: each `Take` names a
// Hugging Face key and the shape the module expects; problems are collected
// rather than returned one at a time, and `Finish` reports every missing,
// wrong-shape and unexpected key at once (as ScaleLLM does), so porting a
// model needs one run to see all naming mistakes.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(model_dir));
//   StateDictLoader loader(ckpt, at::kHalf, at::kCPU);
//   loader.IgnorePrefix("lm_head.");
//   at::Tensor w = loader.Take("model.embed_tokens.weight", {vocab, hidden});
//   SPATIALID_RETURN_IF_ERROR(loader.Finish());
#pragma once

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/io/json_file.h"
#include "spatialid/io/safetensors.h"

namespace spatialid::io {

class Checkpoint {
 public:
  static constexpr char kIndexFile[] = "model.safetensors.index.json";
  static constexpr char kSingleFile[] = "model.safetensors";

  static absl::StatusOr<Checkpoint> Open(const std::string& model_dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(model_dir, ec)) {
      return absl::NotFoundError(absl::StrCat(model_dir, ": not a model folder"));
    }
    Checkpoint ckpt;
    ckpt.dir_ = model_dir;
    const fs::path dir(model_dir);
    if (fs::is_regular_file(dir / kIndexFile, ec)) {
      absl::Status s = ckpt.OpenIndex((dir / kIndexFile).string());
      if (!s.ok()) return s;
      return ckpt;
    }
    std::vector<std::string> files;
    if (fs::is_regular_file(dir / kSingleFile, ec)) {
      files.push_back((dir / kSingleFile).string());
    } else {
      for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        if (e.path().extension() == ".safetensors" && e.is_regular_file(ec)) {
          files.push_back(e.path().string());
        }
      }
      std::sort(files.begin(), files.end());
    }
    if (files.empty()) {
      return absl::NotFoundError(absl::StrCat(model_dir, ": no ", kIndexFile, ", ", kSingleFile,
                                              " or *.safetensors file"));
    }
    for (const std::string& f : files) {
      absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(f);
      if (!file.ok()) return file.status();
      const int shard = static_cast<int>(ckpt.shards_.size());
      for (const auto& [name, info] : file->header().tensors) {
        auto [it, inserted] = ckpt.where_.emplace(name, shard);
        if (!inserted) {
          return absl::InvalidArgumentError(absl::StrCat(
              model_dir, ": tensor \"", name, "\" is in both ",
              fs::path(ckpt.shards_[it->second].path()).filename().string(), " and ",
              fs::path(f).filename().string()));
        }
      }
      ckpt.shards_.push_back(std::move(*file));
    }
    return ckpt;
  }

  bool Has(std::string_view name) const { return where_.find(name) != where_.end(); }

  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    names.reserve(where_.size());
    for (const auto& [name, shard] : where_) names.push_back(name);
    return names;
  }

  // Header facts (dtype, shape) of `name` without loading it; nullptr if absent.
  const SafetensorsTensorInfo* Info(std::string_view name) const {
    auto it = where_.find(name);
    return it == where_.end() ? nullptr : shards_[it->second].Find(name);
  }

  absl::StatusOr<at::Tensor> Load(std::string_view name, at::ScalarType dtype,
                                  at::Device device) const {
    auto it = where_.find(name);
    if (it == where_.end()) {
      return absl::NotFoundError(absl::StrCat(dir_, ": no weight \"", internal::AsAbsl(name), "\""));
    }
    return shards_[it->second].Load(name, dtype, device);
  }

  const std::string& dir() const { return dir_; }
  // The safetensors files backing this checkpoint, in the order opened.
  const std::vector<SafetensorsFile>& files() const { return shards_; }

 private:
  Checkpoint() = default;

  absl::Status OpenIndex(const std::string& index_path) {
    namespace fs = std::filesystem;
    absl::StatusOr<nlohmann::json> parsed = ReadJsonFile(index_path);
    if (!parsed.ok()) return parsed.status();
    const nlohmann::json& index = *parsed;
    if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": expected an object with a \"weight_map\" object"));
    }
    std::map<std::string, int> shard_of_file;
    const nlohmann::json& weight_map = index.at("weight_map");
    for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
      if (!it.value().is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path, ": weight_map.", it.key(), ": expected a file name"));
      }
      const std::string& file = it.value().get_ref<const std::string&>();
      // Shards are siblings of the index; a path elsewhere is refused so a
      // hostile index cannot make us map arbitrary files.
      const fs::path rel(file);
      if (file.empty() || rel.is_absolute() || rel.has_parent_path() || file == "." ||
          file == "..") {
        return absl::InvalidArgumentError(absl::StrCat(
            index_path, ": weight_map.", it.key(), ": \"", file, "\" is not a file name in ", dir_));
      }
      auto [pos, inserted] = shard_of_file.emplace(file, static_cast<int>(shards_.size()));
      if (inserted) {
        const std::string shard_path = (fs::path(dir_) / rel).string();
        std::error_code ec;
        if (!fs::is_regular_file(shard_path, ec)) {
          return absl::NotFoundError(absl::StrCat(index_path, ": shard ", file, " (for \"",
                                                  it.key(), "\") does not exist"));
        }
        absl::StatusOr<SafetensorsFile> shard = SafetensorsFile::Open(shard_path);
        if (!shard.ok()) return shard.status();
        shards_.push_back(std::move(*shard));
      }
      if (!shards_[pos->second].Has(it.key())) {
        return absl::InvalidArgumentError(absl::StrCat(
            index_path, ": weight_map puts \"", it.key(), "\" in ", file, ", which lacks it"));
      }
      where_.emplace(it.key(), pos->second);
    }
    return absl::OkStatus();
  }

  std::string dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, int, std::less<>> where_;  // name -> index in shards_
};

// Takes weights from a Checkpoint, which must outlive the loader.
class StateDictLoader {
 public:
  StateDictLoader(const Checkpoint& ckpt, at::ScalarType dtype, at::Device device)
      : ckpt_(ckpt), dtype_(dtype), device_(device) {}

  // The tensor converted to the loader's dtype/device; on a missing or
  // wrong-shape key records the problem and returns an undefined tensor.
  at::Tensor Take(const std::string& name, at::IntArrayRef expected_shape) {
    return TakeImpl(name, expected_shape, dtype_, /*optional=*/false);
  }
  // Same, for weights whose absence is allowed (undefined if absent).
  at::Tensor TakeOptional(const std::string& name, at::IntArrayRef expected_shape) {
    return TakeImpl(name, expected_shape, dtype_, /*optional=*/true);
  }
  // Take with a dtype override (e.g. keep norms in fp32).
  at::Tensor Take(const std::string& name, at::IntArrayRef expected_shape, at::ScalarType dtype) {
    return TakeImpl(name, expected_shape, dtype, /*optional=*/false);
  }

  // Names under these prefixes are expected but unused (e.g. "lm_head.").
  void IgnorePrefix(std::string prefix) { ignored_prefixes_.push_back(std::move(prefix)); }

  // OK, or one error naming the folder and listing missing, wrong-shape,
  // unloadable and unexpected keys (the first kListed of each, with counts).
  absl::Status Finish() const {
    std::vector<std::string> unexpected;
    for (const std::string& name : ckpt_.Names()) {
      if (taken_.count(name) > 0) continue;
      bool ignored = false;
      for (const std::string& p : ignored_prefixes_) {
        if (name.compare(0, p.size(), p) == 0) {
          ignored = true;
          break;
        }
      }
      if (!ignored) unexpected.push_back(name);
    }
    if (missing_.empty() && wrong_shape_.empty() && failed_.empty() && unexpected.empty()) {
      return absl::OkStatus();
    }
    std::string msg = absl::StrCat(ckpt_.dir(), ": weights do not match the model:");
    auto list = [&](absl::string_view what, const std::vector<std::string>& items) {
      if (items.empty()) return;
      absl::StrAppend(&msg, " ", items.size(), " ", what, " (");
      const size_t n = std::min(items.size(), kListed);
      absl::StrAppend(&msg, absl::StrJoin(items.begin(), items.begin() + n, ", "));
      if (items.size() > n) absl::StrAppend(&msg, ", ... ", items.size() - n, " more");
      absl::StrAppend(&msg, ");");
    };
    list("missing", missing_);
    list("wrong-shape", wrong_shape_);
    list("unloadable", failed_);
    list("unexpected", unexpected);
    msg.pop_back();
    return absl::InvalidArgumentError(msg);
  }

  static constexpr size_t kListed = 20;

 private:
  at::Tensor TakeImpl(const std::string& name, at::IntArrayRef expected_shape,
                      at::ScalarType dtype, bool optional) {
    const SafetensorsTensorInfo* info = ckpt_.Info(name);
    if (info == nullptr) {
      if (!optional) missing_.push_back(name);
      return at::Tensor();
    }
    taken_.insert(name);
    if (!std::equal(info->shape.begin(), info->shape.end(), expected_shape.begin(),
                    expected_shape.end())) {
      wrong_shape_.push_back(absl::StrCat(name, " ", internal::FormatShape(info->shape),
                                          " vs expected ",
                                          internal::FormatShape(expected_shape.vec())));
      return at::Tensor();
    }
    absl::StatusOr<at::Tensor> t = ckpt_.Load(name, dtype, device_);
    if (!t.ok()) {
      failed_.push_back(std::string(t.status().message()));
      return at::Tensor();
    }
    return *std::move(t);
  }

  const Checkpoint& ckpt_;
  at::ScalarType dtype_;
  at::Device device_;
  std::vector<std::string> ignored_prefixes_;
  std::unordered_set<std::string> taken_;
  std::vector<std::string> missing_;
  std::vector<std::string> wrong_shape_;
  std::vector<std::string> failed_;
};

}  // namespace spatialid::io
