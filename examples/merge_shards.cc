// Merges the shards of a batch extraction split over processes, GPUs or
// nodes (batch_extraction --shard/--num_shards, torchrun or Slurm) into the
// files a single run writes: {out}/{a}_{b}/{name}.pt, {out}/{name}.pt and
// {out}/{name}_x.pt / _y.pt. Refuses missing, incomplete or mismatched
// shards, naming the shard.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "examples/cli_flags.h"
#include "spatialid/extract/sharding.h"

ABSL_FLAG(std::string, out, "embeds/universal_id",
          "Output folder of the sharded run (its shards are in {out}/.shards/{name}).");
ABSL_FLAG(std::string, model, "llava-7b", "The run's --model alias (the file stem unless --name).");
ABSL_FLAG(std::string, name, "", "The run's --name, if it set one.");
ABSL_FLAG(int, axis_size, 224,
          "Object size whose IDs define the x/y axes. Default: the shards' --axis_size.");
ABSL_FLAG(bool, strict_axes, false,
          "Axes from differences with y2 > y1 only (as batch_extraction --strict_axes). "
          "Default: the shards' --strict_axes.");
ABSL_FLAG(bool, quiet, false, "No summary line.");

int main(int argc, char** argv) {
  std::vector<char*> rest = spatialid::examples::ParseFlags(
      argc, argv,
      "Merges the shard states of a sharded batch extraction into the files of one run.\n"
      "  merge_shards --out=embeds/universal_id --model=llava-7b");
  if (rest.size() > 1) {
    std::fprintf(stderr, "merge_shards: unexpected argument '%s' (see --help)\n", rest[1]);
    return 2;
  }
  const std::string name =
      absl::GetFlag(FLAGS_name).empty() ? absl::GetFlag(FLAGS_model) : absl::GetFlag(FLAGS_name);
  // Axis options given here override those the shards recorded.
  bool axis_flags_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (name.rfind('-', 0) != 0) continue;
    name = name.substr(name.find_first_not_of('-'));
    name = name.substr(0, name.find('='));
    if (name == "axis_size" || name == "strict_axes" || name == "nostrict_axes") {
      axis_flags_given = true;
    }
  }
  std::optional<spatialid::extract::AxisOptions> axes;
  if (axis_flags_given) {
    axes.emplace();
    axes->size = absl::GetFlag(FLAGS_axis_size);
    axes->strict = absl::GetFlag(FLAGS_strict_axes);
  }
  absl::Status s;
  try {
    s = spatialid::extract::MergeShards(absl::GetFlag(FLAGS_out), name, axes,
                                        absl::GetFlag(FLAGS_quiet));
  } catch (const std::exception& e) {
    s = absl::InternalError(e.what());
  }
  if (!s.ok()) {
    std::fprintf(stderr, "merge_shards: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
