// Emits Python pickle opcodes (protocol 2), the subset torch.save uses.
//
// torch.load(weights_only=True) runs a restricted unpickler that accepts
// only protocol-2 opcodes (no FRAME, MEMOIZE, SHORT_BINUNICODE or
// STACK_GLOBAL), so this emitter sticks to them. It is a thin opcode layer:
// callers (the .pt writer) decide the structure. Globals are memoised and
// re-used with BINGET like Python's pickler does, which keeps a file of a
// few thousand tensors compact.
//
// Example (the pickle of `{1: (2, 3)}`):
//   PickleWriter w;
//   w.EmptyDict();
//   w.Int(1); w.Int(2); w.Int(3); w.Tuple(2);
//   w.SetItem();
//   std::string bytes = w.Finish();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"

namespace spatialid::io {

class PickleWriter {
 public:
  PickleWriter() {
    out_.push_back('\x80');  // PROTO
    out_.push_back('\x02');
  }

  void None() { out_.push_back('N'); }
  void Bool(bool b) { out_.push_back(b ? '\x88' : '\x89'); }  // NEWTRUE / NEWFALSE
  void EmptyDict() { out_.push_back('}'); }
  void EmptyTuple() { out_.push_back(')'); }
  void Mark() { out_.push_back('('); }

  void Int(int64_t v) {
    if (v >= 0 && v < 256) {
      out_.push_back('K');  // BININT1
      out_.push_back(static_cast<char>(v));
    } else if (v >= 0 && v < 65536) {
      out_.push_back('M');  // BININT2
      Append(static_cast<uint16_t>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_.push_back('J');  // BININT
      Append(static_cast<int32_t>(v));
    } else {
      // LONG1: minimal little-endian two's complement.
      uint8_t bytes[8];
      uint64_t u = static_cast<uint64_t>(v);
      for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(u >> (8 * i));
      int n = 8;
      while (n > 1 && ((bytes[n - 1] == 0x00 && !(bytes[n - 2] & 0x80)) ||
                       (bytes[n - 1] == 0xFF && (bytes[n - 2] & 0x80)))) {
        --n;
      }
      out_.push_back('\x8a');
      out_.push_back(static_cast<char>(n));
      out_.append(reinterpret_cast<const char*>(bytes), n);
    }
  }

  // A str (UTF-8 bytes), as BINUNICODE.
  void String(std::string_view s) {
    out_.push_back('X');
    Append(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }

  // Builds a tuple of the top `n` stack items; for n > 3 the caller must
  // have pushed a Mark() before them.
  void Tuple(int n) {
    switch (n) {
      case 0: out_.push_back(')'); break;
      case 1: out_.push_back('\x85'); break;
      case 2: out_.push_back('\x86'); break;
      case 3: out_.push_back('\x87'); break;
      default: out_.push_back('t'); break;
    }
  }
  // TUPLE from the last mark, whatever the count.
  void TupleFromMark() { out_.push_back('t'); }

  void SetItem() { out_.push_back('s'); }
  void SetItems() { out_.push_back('u'); }  // pairs since the last mark
  void Reduce() { out_.push_back('R'); }
  void PersistentId() { out_.push_back('Q'); }  // BINPERSID

  // `module.name`, emitted once and fetched from the memo afterwards.
  void Global(std::string_view module, std::string_view name) {
    std::string key = std::string(module) + "\n" + std::string(name) + "\n";
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      Get(it->second);
      return;
    }
    out_.push_back('c');
    out_.append(key);
    memo_.emplace(std::move(key), Put());
  }

  // A str that recurs (e.g. "storage", "cpu"), memoised like a global.
  void MemoString(std::string_view s) {
    std::string key = "\x01" + std::string(s);  // cannot collide with a global's key
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      Get(it->second);
      return;
    }
    String(s);
    memo_.emplace(std::move(key), Put());
  }

  // Stores the top of the stack in the next memo slot and returns the slot.
  uint32_t Put() {
    uint32_t slot = next_memo_++;
    if (slot < 256) {
      out_.push_back('q');
      out_.push_back(static_cast<char>(slot));
    } else {
      out_.push_back('r');
      Append(slot);
    }
    return slot;
  }

  void Get(uint32_t slot) {
    if (slot < 256) {
      out_.push_back('h');
      out_.push_back(static_cast<char>(slot));
    } else {
      out_.push_back('j');
      Append(slot);
    }
  }

  // Appends STOP and returns the pickle.
  std::string Finish() {
    out_.push_back('.');
    return std::move(out_);
  }

 private:
  template <typename T>
  void Append(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }

  std::string out_;
  absl::flat_hash_map<std::string, uint32_t> memo_;
  uint32_t next_memo_ = 0;
};

}  // namespace spatialid::io
