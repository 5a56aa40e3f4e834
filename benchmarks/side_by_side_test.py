"""benchmarks/side_by_side.py end to end on a tiny LLaVA.

The harness measures the README's Performance figures, so it must run: the
reference recipe, the batched transformers setup and spatialid's planned
engine each finish every image of one pair, and spatialid's and
transformers' universal IDs equal the reference's (fp32). The reference's
target positions are lists (one per sub-token, for mean_of_subtokens); the
harness once indexed them as integers and stopped before timing anything.
"""
import json
import os
import re
import subprocess
import sys
import unittest

import oracle_lib

SIDE_BY_SIDE = oracle_lib.runfile("benchmarks/side_by_side.py")
MAKE_TINY = oracle_lib.runfile("tools/make_tiny_llava.py")
KEYS = ("reference_float32", "transformers_float32", "spatialid_float32_planned")


class SideBySideTest(unittest.TestCase):

    def test_three_methods_on_tiny_llava(self):
        tmp = os.path.join(oracle_lib.tmpdir(), "side_by_side")
        model = os.path.join(tmp, "model")
        oracle_lib.run([sys.executable, MAKE_TINY, model, "--size", "test", "--dtype", "float32", "--seed", "3"])
        summary_dir = os.path.join(tmp, "summary")
        args = [sys.executable, SIDE_BY_SIDE, "--family=llava", "--size=test", f"--model_dir={model}",
                "--pairs=1", "--dtypes=float32", "--methods=reference,transformers,spatialid",
                "--engines=planned", "--threads=2", f"--work_dir={os.path.join(tmp, 'work')}",
                f"--summary_dir={summary_dir}",
                f"--batch_extraction={oracle_lib.runfile('examples/batch_extraction')}",
                f"--grid_data={oracle_lib.runfile('examples/grid_data')}",
                f"--reference={oracle_lib.runfile('tests/reference/spatial_id_reference.py')}",
                f"--objects_dir={os.path.dirname(oracle_lib.runfile('tools/gpu_check/assets/objects/camel.png'))}"]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=1200)
        self.assertEqual(proc.returncode, 0, f"side_by_side failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        with open(os.path.join(summary_dir, "side_by_side_llava_test_cpu.json")) as f:
            summary = json.load(f)
        for key in KEYS:
            r = summary["results"][key]
            self.assertTrue(r["complete"], key)
            self.assertEqual(r["images"], summary["images"], key)
            self.assertGreater(r["rate"], 0, key)
        self.assertEqual(summary["images"], 144)
        # The report's last column: universal IDs relative to the reference's scale.
        rows = [line for line in summary["report"].splitlines() if line.startswith("| (b)") or
                line.startswith("| (c)")]
        self.assertEqual(len(rows), 2, summary["report"])
        for row in rows:
            parity = row.rstrip(" |").rsplit("|", 1)[-1].strip()
            self.assertRegex(parity, r"^\d\.\de[-+]\d\d$", row)
            self.assertLess(float(parity), 1e-3, row)
        print(summary["report"])


if __name__ == "__main__":
    unittest.main()
