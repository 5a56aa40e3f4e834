// The nested dicts spatialid's .pt files hold, as a C++ value type.
//
// The reference pipeline and the paper's other experiments exchange files
// like `{12: {"universal": {(3, 0, 224): tensor}}}`: dict keys are Python
// ints, strs or tuples of ints, values are dicts or CPU tensors. `PtKey`,
// `PtValue` and `PtDict` model exactly that, keep insertion order (as
// Python dicts do, so files list keys in the order they were built), and
// index like the Python they mirror:
//
//   PtDict ids;
//   ids[12]["universal"][PtKey::Tuple(3, 0, 224)] = at::zeros({4096});
//   const at::Tensor& v = ids.at(12).at("universal").at(PtKey::Tuple(3, 0, 224)).tensor();
//   for (const auto& [layer, per_token] : ids) ...
//
// `operator[]` creates missing levels as empty dicts; `at()` throws
// std::out_of_range naming the key (like std::map::at) and `find()` returns
// nullptr instead. Copies are deep for the dict structure and shallow for
// tensors (at::Tensor is a reference), so copying a dict of IDs is cheap.
#pragma once

#include <compare>
#include <concepts>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace spatialid::io {

// A dict key: a Python int, str or tuple of ints. Distinct types never
// compare equal (the int 1, the str "1" and the tuple (1,) are three keys).
class PtKey {
 public:
  using IntTuple = std::vector<int64_t>;

  template <std::integral T>
    requires(!std::same_as<T, bool>)
  PtKey(T v) : v_(static_cast<int64_t>(v)) {}  // NOLINT: implicit, so ids[12] reads naturally
  PtKey(std::string s) : v_(std::move(s)) {}   // NOLINT
  PtKey(std::string_view s) : v_(std::string(s)) {}  // NOLINT
  PtKey(const char* s) : v_(std::string(s)) {}       // NOLINT

  // The tuple key (a, b, c, ...).
  template <std::integral... T>
  static PtKey Tuple(T... v) {
    return FromTuple(IntTuple{static_cast<int64_t>(v)...});
  }
  static PtKey FromTuple(IntTuple t) {
    PtKey k(int64_t{0});
    k.v_ = std::move(t);
    return k;
  }

  bool is_int() const { return v_.index() == 0; }
  bool is_string() const { return v_.index() == 1; }
  bool is_tuple() const { return v_.index() == 2; }
  // Accessors throw std::bad_variant_access on the wrong type.
  int64_t as_int() const { return std::get<0>(v_); }
  const std::string& as_string() const { return std::get<1>(v_); }
  const IntTuple& as_tuple() const { return std::get<2>(v_); }

  // Python's repr: 12, 'universal', (3, 0, 224), (5,).
  std::string ToString() const {
    if (is_int()) return absl::StrCat(as_int());
    if (is_string()) return absl::StrCat("'", as_string(), "'");
    const IntTuple& t = as_tuple();
    return absl::StrCat("(", absl::StrJoin(t, ", "), t.size() == 1 ? ",)" : ")");
  }

  friend bool operator==(const PtKey& a, const PtKey& b) { return a.v_ == b.v_; }
  // Orders ints before strs before tuples; within a type, naturally.
  friend std::strong_ordering operator<=>(const PtKey& a, const PtKey& b) {
    if (a.v_.index() != b.v_.index()) return a.v_.index() <=> b.v_.index();
    if (a.is_int()) return a.as_int() <=> b.as_int();
    if (a.is_string()) return a.as_string().compare(b.as_string()) <=> 0;
    return a.as_tuple() <=> b.as_tuple();
  }
  template <typename H>
  friend H AbslHashValue(H h, const PtKey& k) {
    // Debian's abseil hashes absl::variant, not std::variant: hash the parts.
    if (k.is_int()) return H::combine(std::move(h), size_t{0}, k.as_int());
    if (k.is_string()) return H::combine(std::move(h), size_t{1}, k.as_string());
    return H::combine(std::move(h), size_t{2}, k.as_tuple());
  }

 private:
  std::variant<int64_t, std::string, IntTuple> v_;
};

class PtDict;

// A dict value: a nested dict or a tensor. Default-constructed, it is an
// empty dict, so `d[k1][k2] = t` builds the levels it walks through.
class PtValue {
 public:
  PtValue();
  PtValue(at::Tensor t);  // NOLINT: implicit, so `d[k] = tensor` works
  PtValue(PtDict d);      // NOLINT
  PtValue(const PtValue& other);
  PtValue(PtValue&& other) noexcept = default;
  PtValue& operator=(const PtValue& other);
  PtValue& operator=(PtValue&& other) noexcept = default;
  ~PtValue();

  bool is_dict() const { return dict_ != nullptr; }
  bool is_tensor() const { return dict_ == nullptr; }

  // Throw std::logic_error when the value has the other type.
  const at::Tensor& tensor() const;
  PtDict& dict();
  const PtDict& dict() const;

  // Dict access through the value, so `d[12]["universal"]` chains.
  PtValue& operator[](const PtKey& key);
  const PtValue& at(const PtKey& key) const;
  PtValue& at(const PtKey& key);
  // nullptr when this is a tensor or the key is absent.
  const PtValue* find(const PtKey& key) const;

 private:
  std::unique_ptr<PtDict> dict_;  // set iff this value is a dict
  at::Tensor tensor_;
};

class PtDict {
 public:
  using Entry = std::pair<const PtKey, PtValue>;
  using const_iterator = std::deque<Entry>::const_iterator;
  using iterator = std::deque<Entry>::iterator;

  PtDict() = default;
  PtDict(std::initializer_list<std::pair<PtKey, PtValue>> items) {
    for (const auto& [k, v] : items) insert_or_assign(k, v);
  }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  bool contains(const PtKey& key) const { return index_.contains(key); }

  // Insertion order, like a Python dict.
  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.end(); }
  iterator begin() { return entries_.begin(); }
  iterator end() { return entries_.end(); }

  PtValue* find(const PtKey& key) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries_[it->second].second;
  }
  const PtValue* find(const PtKey& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries_[it->second].second;
  }
  const PtValue& at(const PtKey& key) const {
    const PtValue* v = find(key);
    if (v == nullptr) throw std::out_of_range(absl::StrCat("PtDict has no key ", key.ToString()));
    return *v;
  }
  PtValue& at(const PtKey& key) {
    return const_cast<PtValue&>(static_cast<const PtDict&>(*this).at(key));
  }

  // The value at `key`, inserted as an empty dict when absent.
  PtValue& operator[](const PtKey& key) {
    if (PtValue* v = find(key)) return *v;
    index_.emplace(key, entries_.size());
    entries_.emplace_back(key, PtValue());
    return entries_.back().second;
  }

  // Sets `key` to `value`; an existing key keeps its position (Python semantics).
  PtValue& insert_or_assign(const PtKey& key, PtValue value) {
    PtValue& slot = (*this)[key];
    slot = std::move(value);
    return slot;
  }

 private:
  std::deque<Entry> entries_;  // a deque never moves entries, so growing copies nothing
  absl::flat_hash_map<PtKey, size_t> index_;
};

// ---- PtValue, now that PtDict is complete ----

inline PtValue::PtValue() : dict_(std::make_unique<PtDict>()) {}
inline PtValue::PtValue(at::Tensor t) : tensor_(std::move(t)) {}
inline PtValue::PtValue(PtDict d) : dict_(std::make_unique<PtDict>(std::move(d))) {}
inline PtValue::PtValue(const PtValue& other)
    : dict_(other.dict_ ? std::make_unique<PtDict>(*other.dict_) : nullptr),
      tensor_(other.tensor_) {}
inline PtValue& PtValue::operator=(const PtValue& other) {
  if (this != &other) {
    dict_ = other.dict_ ? std::make_unique<PtDict>(*other.dict_) : nullptr;
    tensor_ = other.tensor_;
  }
  return *this;
}
inline PtValue::~PtValue() = default;

inline const at::Tensor& PtValue::tensor() const {
  if (is_dict()) throw std::logic_error("PtValue is a dict, not a tensor");
  return tensor_;
}
inline PtDict& PtValue::dict() {
  if (!is_dict()) throw std::logic_error("PtValue is a tensor, not a dict");
  return *dict_;
}
inline const PtDict& PtValue::dict() const {
  if (!is_dict()) throw std::logic_error("PtValue is a tensor, not a dict");
  return *dict_;
}
inline PtValue& PtValue::operator[](const PtKey& key) { return dict()[key]; }
inline const PtValue& PtValue::at(const PtKey& key) const { return dict().at(key); }
inline PtValue& PtValue::at(const PtKey& key) { return dict().at(key); }
inline const PtValue* PtValue::find(const PtKey& key) const {
  return is_dict() ? dict_->find(key) : nullptr;
}

}  // namespace spatialid::io
