// A restricted pickle machine for the data.pkl record of .pt files.
//
// It runs the opcodes Python's pickler and torch.save emit for nested dicts
// of tensors (protocol 2, plus the protocol-4 forms a
// `torch.save(..., pickle_protocol=4)` produces) and builds a small tree of
// `PickleNode`s. Like torch.load(weights_only=True) it calls nothing: the
// only globals it accepts are the handful torch uses to describe tensors
// (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`,
// `collections.OrderedDict`, `torch.<Type>Storage`), which it interprets
// itself. Tensors come out as descriptions (storage key, dtype name,
// offset, sizes, strides); turning them into at::Tensors is the .pt
// reader's job, so this header needs no libtorch.
//
// Every read is bounds-checked and every malformed construct is an error
// naming the source and byte offset. Memo entries are shared nodes, as in
// Python, so a dict stored once and referenced twice is one object. Nodes
// live in one arena owned by the `PickleTree` and point at each other with
// plain pointers: a hostile file can build cycles or million-deep chains,
// and neither may turn into a recursive destructor.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(PickleTree tree, ParsePickle(bytes, "x.pt:data.pkl"));
//   if (tree.root->kind == PickleNode::Kind::kDict) ...
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace spatialid::io {

struct PickleNode;
using PickleRef = PickleNode*;

struct PickleNode {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,     // items = key0, value0, key1, value1, ... in insertion order
    kGlobal,   // text = "module.name"
    kStorage,  // a persistent id: ('storage', type, key, location, numel)
    kTensor,   // _rebuild_tensor_v2(storage, offset, sizes, strides, ...)
  };
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;  // kInt; kStorage: numel; kTensor: storage offset
  double real = 0;
  std::string text;     // kString; kGlobal; kStorage: the storage key
  std::string storage_type;  // kStorage: e.g. "FloatStorage"
  std::string location;      // kStorage: e.g. "cpu", "cuda:0"
  std::vector<PickleRef> items;        // kTuple, kList, kDict; kTensor: items[0] = storage
  std::vector<int64_t> sizes, strides;  // kTensor
};

// The result of a pickle: every node it created and the one STOP returned.
struct PickleTree {
  std::vector<std::unique_ptr<PickleNode>> nodes;
  const PickleNode* root = nullptr;
};

// Human-readable name of a node kind, for error messages.
inline const char* PickleKindName(PickleNode::Kind k) {
  switch (k) {
    case PickleNode::Kind::kNone: return "None";
    case PickleNode::Kind::kBool: return "bool";
    case PickleNode::Kind::kInt: return "int";
    case PickleNode::Kind::kFloat: return "float";
    case PickleNode::Kind::kString: return "str";
    case PickleNode::Kind::kTuple: return "tuple";
    case PickleNode::Kind::kList: return "list";
    case PickleNode::Kind::kDict: return "dict";
    case PickleNode::Kind::kGlobal: return "global";
    case PickleNode::Kind::kStorage: return "storage";
    case PickleNode::Kind::kTensor: return "tensor";
  }
  return "?";
}

// The storage classes torch.save names, by element size in bytes.
inline int PickleStorageElementSize(std::string_view type) {
  if (type == "FloatStorage" || type == "IntStorage") return 4;
  if (type == "HalfStorage" || type == "BFloat16Storage" || type == "ShortStorage") return 2;
  if (type == "DoubleStorage" || type == "LongStorage") return 8;
  if (type == "ByteStorage" || type == "CharStorage" || type == "BoolStorage") return 1;
  return 0;
}

namespace pickle_internal {

class Machine {
 public:
  Machine(std::span<const uint8_t> bytes, const std::string& label) : in_(bytes), label_(label) {}

  absl::StatusOr<PickleTree> Run() {
    while (true) {
      if (pos_ >= in_.size()) return Error("ends without a STOP opcode (truncated?)");
      op_at_ = pos_;
      const uint8_t op = in_[pos_++];
      absl::Status s;
      switch (op) {
        case 0x80: {  // PROTO
          uint8_t v;
          s = Byte(&v);
          if (s.ok() && v > 5) s = Error(absl::StrCat("unknown pickle protocol ", v));
          break;
        }
        case 0x95: {  // FRAME: a length prefix only
          uint64_t n;
          s = Fixed(&n);
          break;
        }
        case '.': {  // STOP
          if (!marks_.empty()) return Error("STOP inside an open MARK");
          if (stack_.size() != 1) {
            return Error(absl::StrCat("STOP with ", stack_.size(), " items on the stack"));
          }
          PickleTree tree;
          tree.root = stack_.back();
          tree.nodes = std::move(arena_);
          return tree;
        }
        case '(': marks_.push_back(stack_.size()); break;
        case '}': Push(New(PickleNode::Kind::kDict)); break;
        case ']': Push(New(PickleNode::Kind::kList)); break;
        case ')': Push(New(PickleNode::Kind::kTuple)); break;
        case 'N': Push(New(PickleNode::Kind::kNone)); break;
        case 0x88:
        case 0x89: {
          auto n = New(PickleNode::Kind::kBool);
          n->boolean = op == 0x88;
          Push(n);
          break;
        }
        case 'K': {
          uint8_t v;
          s = Byte(&v);
          if (s.ok()) PushInt(v);
          break;
        }
        case 'M': {
          uint16_t v;
          s = Fixed(&v);
          if (s.ok()) PushInt(v);
          break;
        }
        case 'J': {
          int32_t v;
          s = Fixed(&v);
          if (s.ok()) PushInt(v);
          break;
        }
        case 0x8a: s = Long1(); break;
        case 'G': {  // BINFLOAT, big-endian
          uint64_t bits;
          s = Fixed(&bits);
          if (s.ok()) {
            bits = __builtin_bswap64(bits);
            auto n = New(PickleNode::Kind::kFloat);
            std::memcpy(&n->real, &bits, 8);
            Push(n);
          }
          break;
        }
        case 'X': {
          uint32_t n;
          s = Fixed(&n);
          if (s.ok()) s = PushString(n);
          break;
        }
        case 0x8c: {  // SHORT_BINUNICODE
          uint8_t n;
          s = Byte(&n);
          if (s.ok()) s = PushString(n);
          break;
        }
        case 0x8d: {  // BINUNICODE8
          uint64_t n;
          s = Fixed(&n);
          if (s.ok()) s = PushString(n);
          break;
        }
        case 't': s = TupleFromMark(); break;
        case 0x85: s = TupleOf(1); break;
        case 0x86: s = TupleOf(2); break;
        case 0x87: s = TupleOf(3); break;
        case 'q': {
          uint8_t i;
          s = Byte(&i);
          if (s.ok()) s = MemoPut(i);
          break;
        }
        case 'r': {
          uint32_t i;
          s = Fixed(&i);
          if (s.ok()) s = MemoPut(i);
          break;
        }
        case 0x94: s = MemoPut(static_cast<uint32_t>(memo_.size())); break;  // MEMOIZE
        case 'h': {
          uint8_t i;
          s = Byte(&i);
          if (s.ok()) s = MemoGet(i);
          break;
        }
        case 'j': {
          uint32_t i;
          s = Fixed(&i);
          if (s.ok()) s = MemoGet(i);
          break;
        }
        case 'c': s = GlobalFromLines(); break;
        case 0x93: s = StackGlobal(); break;
        case 'R': s = Reduce(); break;
        case 'Q': s = PersistentId(); break;
        case 's': s = SetItem(); break;
        case 'u': s = SetItems(); break;
        case 'a': s = Append(); break;
        case 'e': s = Appends(); break;
        default:
          return Error(absl::StrFormat("unsupported pickle opcode 0x%02x", op));
      }
      if (!s.ok()) return s;
    }
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::DataLossError(
        absl::StrCat(label_, ": malformed pickle at byte ", op_at_, ": ", what));
  }

  PickleRef New(PickleNode::Kind k) {
    arena_.push_back(std::make_unique<PickleNode>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  void Push(PickleRef n) { stack_.push_back(std::move(n)); }
  void PushInt(int64_t v) {
    auto n = New(PickleNode::Kind::kInt);
    n->integer = v;
    Push(n);
  }

  absl::Status Need(uint64_t n) const {
    if (n > in_.size() - pos_) return Error("operand runs past the end (truncated?)");
    return absl::OkStatus();
  }
  absl::Status Byte(uint8_t* v) {
    if (absl::Status s = Need(1); !s.ok()) return s;
    *v = in_[pos_++];
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Fixed(T* v) {
    if (absl::Status s = Need(sizeof(T)); !s.ok()) return s;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status PushString(uint64_t n) {
    if (absl::Status s = Need(n); !s.ok()) return s;
    auto node = New(PickleNode::Kind::kString);
    node->text.assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    Push(node);
    return absl::OkStatus();
  }

  absl::Status Long1() {
    uint8_t n;
    if (absl::Status s = Byte(&n); !s.ok()) return s;
    if (absl::Status s = Need(n); !s.ok()) return s;
    if (n > 8) return Error(absl::StrCat("integer of ", n, " bytes does not fit 64 bits"));
    uint64_t u = 0;
    for (int i = 0; i < n; ++i) u |= uint64_t{in_[pos_ + i]} << (8 * i);
    if (n > 0 && n < 8 && (in_[pos_ + n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign-extend
    pos_ += n;
    PushInt(static_cast<int64_t>(u));
    return absl::OkStatus();
  }

  absl::StatusOr<PickleRef> Pop() {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= floor) return Error("stack underflow");
    PickleRef n = std::move(stack_.back());
    stack_.pop_back();
    return n;
  }
  absl::StatusOr<std::vector<PickleRef>> PopMark() {
    if (marks_.empty()) return Error("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PickleRef> items(std::make_move_iterator(stack_.begin() + m),
                                 std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  absl::StatusOr<PickleRef> Top() const {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= floor) return Error("stack underflow");
    return stack_.back();
  }

  absl::Status TupleFromMark() {
    auto items = PopMark();
    if (!items.ok()) return items.status();
    auto t = New(PickleNode::Kind::kTuple);
    t->items = *std::move(items);
    Push(t);
    return absl::OkStatus();
  }
  absl::Status TupleOf(size_t n) {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) return Error("stack underflow");
    auto t = New(PickleNode::Kind::kTuple);
    t->items.assign(std::make_move_iterator(stack_.end() - n), std::make_move_iterator(stack_.end()));
    stack_.resize(stack_.size() - n);
    Push(t);
    return absl::OkStatus();
  }

  absl::Status MemoPut(uint32_t i) {
    auto top = Top();
    if (!top.ok()) return top.status();
    memo_[i] = *top;
    return absl::OkStatus();
  }
  absl::Status MemoGet(uint32_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end()) return Error(absl::StrCat("memo slot ", i, " was never stored"));
    Push(it->second);
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Line() {
    const uint8_t* start = in_.data() + pos_;
    const void* nl = std::memchr(start, '\n', in_.size() - pos_);
    if (nl == nullptr) return Error("GLOBAL name is not terminated (truncated?)");
    std::string s(reinterpret_cast<const char*>(start), static_cast<const uint8_t*>(nl) - start);
    pos_ += s.size() + 1;
    return s;
  }

  absl::Status PushGlobal(const std::string& module, const std::string& name) {
    const bool allowed =
        (module == "torch._utils" &&
         (name == "_rebuild_tensor_v2" || name == "_rebuild_parameter")) ||
        (module == "collections" && name == "OrderedDict") ||
        (module == "torch" && PickleStorageElementSize(name) > 0);
    if (!allowed) {
      return Error(absl::StrCat("global ", module, ".", name,
                                " is not allowed (only tensors in dicts are read)"));
    }
    auto g = New(PickleNode::Kind::kGlobal);
    g->text = absl::StrCat(module, ".", name);
    Push(g);
    return absl::OkStatus();
  }

  absl::Status GlobalFromLines() {
    auto module = Line();
    if (!module.ok()) return module.status();
    auto name = Line();
    if (!name.ok()) return name.status();
    return PushGlobal(*module, *name);
  }

  absl::Status StackGlobal() {
    auto name = Pop();
    if (!name.ok()) return name.status();
    auto module = Pop();
    if (!module.ok()) return module.status();
    if ((*name)->kind != PickleNode::Kind::kString || (*module)->kind != PickleNode::Kind::kString) {
      return Error("STACK_GLOBAL needs two strings");
    }
    return PushGlobal((*module)->text, (*name)->text);
  }

  static bool IsIntTuple(const PickleRef& n) {
    if (n->kind != PickleNode::Kind::kTuple) return false;
    for (const auto& i : n->items) {
      if (i->kind != PickleNode::Kind::kInt) return false;
    }
    return true;
  }

  absl::Status Reduce() {
    auto args = Pop();
    if (!args.ok()) return args.status();
    auto fn = Pop();
    if (!fn.ok()) return fn.status();
    if ((*fn)->kind != PickleNode::Kind::kGlobal || (*args)->kind != PickleNode::Kind::kTuple) {
      return Error(absl::StrCat("REDUCE of a ", PickleKindName((*fn)->kind), " with a ",
                                PickleKindName((*args)->kind)));
    }
    const std::string& f = (*fn)->text;
    const std::vector<PickleRef>& a = (*args)->items;
    if (f == "collections.OrderedDict") {
      if (!a.empty()) return Error("OrderedDict called with arguments");
      Push(New(PickleNode::Kind::kDict));
      return absl::OkStatus();
    }
    if (f == "torch._utils._rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() != 6 && a.size() != 7) {
        return Error(absl::StrCat("_rebuild_tensor_v2 with ", a.size(), " arguments"));
      }
      if (a[0]->kind != PickleNode::Kind::kStorage || a[1]->kind != PickleNode::Kind::kInt ||
          !IsIntTuple(a[2]) || !IsIntTuple(a[3]) || a[4]->kind != PickleNode::Kind::kBool ||
          a[2]->items.size() != a[3]->items.size()) {
        return Error("_rebuild_tensor_v2 arguments are not (storage, int, sizes, strides, bool, ...)");
      }
      auto t = New(PickleNode::Kind::kTensor);
      t->items = {a[0]};
      t->integer = a[1]->integer;
      for (const auto& v : a[2]->items) t->sizes.push_back(v->integer);
      for (const auto& v : a[3]->items) t->strides.push_back(v->integer);
      Push(t);
      return absl::OkStatus();
    }
    if (f == "torch._utils._rebuild_parameter") {
      // (data, requires_grad, backward_hooks): a Parameter is read as its tensor.
      if (a.size() != 3 || a[0]->kind != PickleNode::Kind::kTensor) {
        return Error("_rebuild_parameter arguments are not (tensor, bool, hooks)");
      }
      Push(a[0]);
      return absl::OkStatus();
    }
    return Error(absl::StrCat("cannot call ", f));
  }

  absl::Status PersistentId() {
    auto pid = Pop();
    if (!pid.ok()) return pid.status();
    const auto& a = (*pid)->items;
    if ((*pid)->kind != PickleNode::Kind::kTuple || a.size() != 5 ||
        a[0]->kind != PickleNode::Kind::kString || a[0]->text != "storage" ||
        a[1]->kind != PickleNode::Kind::kGlobal || a[2]->kind != PickleNode::Kind::kString ||
        a[3]->kind != PickleNode::Kind::kString || a[4]->kind != PickleNode::Kind::kInt) {
      return Error("persistent id is not ('storage', type, key, location, numel)");
    }
    const std::string& type = a[1]->text;
    if (type.rfind("torch.", 0) != 0) return Error(absl::StrCat("storage type ", type));
    if (a[4]->integer < 0) return Error("negative storage size");
    auto s = New(PickleNode::Kind::kStorage);
    s->storage_type = type.substr(6);
    s->text = a[2]->text;
    s->location = a[3]->text;
    s->integer = a[4]->integer;
    Push(s);
    return absl::OkStatus();
  }

  absl::Status SetItem() {
    auto v = Pop();
    if (!v.ok()) return v.status();
    auto k = Pop();
    if (!k.ok()) return k.status();
    auto d = Top();
    if (!d.ok()) return d.status();
    if ((*d)->kind != PickleNode::Kind::kDict) return Error("SETITEM on a non-dict");
    (*d)->items.push_back(*std::move(k));
    (*d)->items.push_back(*std::move(v));
    return absl::OkStatus();
  }

  absl::Status SetItems() {
    auto items = PopMark();
    if (!items.ok()) return items.status();
    auto d = Top();
    if (!d.ok()) return d.status();
    if ((*d)->kind != PickleNode::Kind::kDict) return Error("SETITEMS on a non-dict");
    if (items->size() % 2 != 0) return Error("SETITEMS with an odd number of items");
    for (auto& i : *items) (*d)->items.push_back(std::move(i));
    return absl::OkStatus();
  }

  absl::Status Append() {
    auto v = Pop();
    if (!v.ok()) return v.status();
    auto l = Top();
    if (!l.ok()) return l.status();
    if ((*l)->kind != PickleNode::Kind::kList) return Error("APPEND on a non-list");
    (*l)->items.push_back(*std::move(v));
    return absl::OkStatus();
  }

  absl::Status Appends() {
    auto items = PopMark();
    if (!items.ok()) return items.status();
    auto l = Top();
    if (!l.ok()) return l.status();
    if ((*l)->kind != PickleNode::Kind::kList) return Error("APPENDS on a non-list");
    for (auto& i : *items) (*l)->items.push_back(std::move(i));
    return absl::OkStatus();
  }

  std::span<const uint8_t> in_;
  const std::string& label_;
  size_t pos_ = 0;
  size_t op_at_ = 0;
  std::vector<PickleRef> stack_;
  std::vector<size_t> marks_;
  absl::flat_hash_map<uint32_t, PickleRef> memo_;
  std::vector<std::unique_ptr<PickleNode>> arena_;
};

}  // namespace pickle_internal

// Runs the pickle in `bytes`; `label` names it in errors (e.g. "x.pt:archive/data.pkl").
inline absl::StatusOr<PickleTree> ParsePickle(std::span<const uint8_t> bytes,
                                              const std::string& label) {
  return pickle_internal::Machine(bytes, label).Run();
}

}  // namespace spatialid::io
