// Fuzzes the untrusted layers of the `.pt` reader (ParseTorchFile in
// spatialid/io/torch_file_reader.h): the zip container, its records and CRCs,
// and the pickle machine over data.pkl. The last step, turning storages into
// at::Tensor, needs libtorch, which the sanitizer build cannot link; it only
// runs on what these layers already accepted.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "spatialid/io/pickle_reader.h"
#include "spatialid/io/zip_reader.h"

namespace {

using spatialid::io::ZipEntry;
using spatialid::io::ZipReader;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckNamesLabel(const absl::Status& s) {
  Check(s.message().find("fuzz.pt") != std::string_view::npos);
}

// Visits the tree (memo references can share nodes, so the walk is bounded).
void Walk(const spatialid::io::PickleNode* n, int depth, size_t* budget) {
  if (n == nullptr || depth > 64 || *budget == 0) return;
  --*budget;
  (void)spatialid::io::PickleKindName(n->kind);
  for (const auto* child : n->items) Walk(child, depth + 1, budget);
}

void WalkTree(const spatialid::io::PickleTree& tree) {
  size_t budget = 100000;
  Walk(tree.root, 0, &budget);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  // The bytes as a bare pickle (what data.pkl holds).
  {
    auto tree = spatialid::io::ParsePickle(bytes, "fuzz.pt:archive/data.pkl");
    if (tree.ok()) {
      WalkTree(*tree);
    } else {
      CheckNamesLabel(tree.status());
    }
  }
  // The bytes as a .pt zip, following ParseTorchFile's record lookups.
  auto zip = ZipReader::Parse(bytes, "fuzz.pt");
  if (!zip.ok()) {
    CheckNamesLabel(zip.status());
    return 0;
  }
  for (const ZipEntry& e : zip->entries()) {
    for (bool crc : {true, false}) {
      auto b = zip->Read(e, crc);
      if (!b.ok()) CheckNamesLabel(b.status());
    }
  }
  if (zip->entries().empty()) return 0;
  const std::string& first = zip->entries().front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) return 0;
  const ZipEntry* pkl = zip->Find(first.substr(0, slash) + "/data.pkl");
  if (pkl == nullptr) return 0;
  auto pkl_bytes = zip->Read(*pkl, /*verify_crc=*/false);
  if (!pkl_bytes.ok()) return 0;
  auto tree = spatialid::io::ParsePickle(*pkl_bytes, "fuzz.pt:" + pkl->name);
  if (tree.ok()) {
    WalkTree(*tree);
  } else {
    CheckNamesLabel(tree.status());
  }
  return 0;
}
