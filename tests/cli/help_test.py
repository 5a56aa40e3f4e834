"""--help of every binary in examples/: exit 0 and every flag of its own listed
with its explanation.

The flag names come from the ABSL_FLAG definitions in the binary's sources
(its main file, the examples/ headers it includes and their .cc files), so
a new flag that --help does not show fails here.
"""
import os
import re
import subprocess
import unittest

import oracle_lib

BINARIES = ["small_id_grid", "batch_extraction", "merge_shards", "fig5", "grid_data",
            "extraction_data", "tokenize", "compose_extractor"]
FLAG_DEF = re.compile(r"\bABSL_FLAG\(\s*[^,]+?,\s*(\w+)\s*,")
LOCAL_INCLUDE = re.compile(r'^#include "examples/(\w+)\.h"', re.M)


def source(name):
    path = oracle_lib.runfile(os.path.join("examples", name))
    with open(path) as f:
        return f.read()


def sources_of(binary):
    """The binary's main file plus every examples/ header it reaches and their .cc files."""
    files, todo = [], [binary + ".cc"]
    while todo:
        name = todo.pop()
        if name in files:
            continue
        files.append(name)
        for stem in LOCAL_INCLUDE.findall(source(name)):
            todo.append(stem + ".h")
            if os.path.exists(oracle_lib.runfile(f"examples/{stem}.cc")):
                todo.append(stem + ".cc")
    return files


class HelpTest(unittest.TestCase):

    def test_every_examples_source_is_visible_to_this_test(self):
        # The sources reach the test as runfiles listed in BUILD.bazel; one
        # missing there would hide its flags from the checks below.
        listed = set(re.findall(r'"(\w+\.(?:cc|h))"', source("BUILD.bazel")))
        self.assertIn("experiment_main.cc", listed)
        for name in sorted(listed):
            self.assertTrue(os.path.exists(oracle_lib.runfile(f"examples/{name}")),
                            f"examples/{name} is not in help_test's data")

    def test_shared_flag_files_are_found(self):
        self.assertIn("experiment_main.cc", sources_of("small_id_grid"))
        self.assertIn("grid_job_main.h", sources_of("grid_data"))

    def check_help(self, binary):
        flags = sorted({f for name in sources_of(binary) for f in FLAG_DEF.findall(source(name))})
        self.assertGreaterEqual(len(flags), 3, f"{binary}: too few flags parsed from its sources")
        proc = subprocess.run([oracle_lib.runfile(f"examples/{binary}"), "--help"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, f"{binary} --help: exit {proc.returncode}\n"
                                             f"{proc.stdout}{proc.stderr}")
        out = proc.stdout
        missing = [f for f in flags if not re.search(rf"--{f} \(\S", out)]
        self.assertEqual(missing, [], f"{binary} --help lacks these flags or their "
                                      f"explanations:\n{out}")
        self.assertNotIn("No flags matched", out)
        print(f"{binary} --help: {len(flags)} flags, each explained")
        return flags

    def test_small_id_grid(self):
        flags = self.check_help("small_id_grid")
        self.assertIn("targets", flags)

    def test_batch_extraction(self):
        flags = self.check_help("batch_extraction")
        self.assertIn("num_shards", flags)

    def test_merge_shards(self):
        self.check_help("merge_shards")

    def test_fig5(self):
        self.check_help("fig5")

    def test_grid_data(self):
        flags = self.check_help("grid_data")
        self.assertIn("local_variation", flags)  # from grid_job_main.h's macro

    def test_extraction_data(self):
        self.check_help("extraction_data")

    def test_tokenize(self):
        self.check_help("tokenize")

    def test_compose_extractor(self):
        flags = self.check_help("compose_extractor")
        self.assertIn("pooling", flags)

    def test_help_lists_no_library_flags(self):
        # Only the binary's own flags: abseil's --flagfile and friends stay in --helpfull.
        out = subprocess.run([oracle_lib.runfile("examples/small_id_grid"), "--help"],
                             capture_output=True, text=True, timeout=60).stdout
        self.assertNotIn("--flagfile", out)
        self.assertIn("--flagfile", subprocess.run(
            [oracle_lib.runfile("examples/small_id_grid"), "--helpfull"],
            capture_output=True, text=True, timeout=60).stdout)


if __name__ == "__main__":
    unittest.main()
