"""A full disk while the real binaries write: grid_data's PNGs, the .pt files
of batch_extraction and small_id_grid, a shard's unit files and the merge's
outputs.

The disk fills up through an LD_PRELOAD shim (tests/cli/enospc_shim.c):
writes to files under the run's output folder fail with ENOSPC once they
have taken a byte budget (cut short at the line, as the kernel does), or,
as on filesystems that allocate late, fsync() or close() fails instead.
Each run must stop with exit 1 and one error line naming the file it could
not write and saying the disk is full; leave no temporary and no
half-written file (every file there is byte-identical to a clean run's);
and a rerun of the same command with space again must resume (files already
written are kept, not redone) and end byte-identical to a clean run.
"""
import os
import shutil
import sys
import unittest

import oracle_lib

sys.path.insert(0, os.path.dirname(oracle_lib.runfile("tests/cli/model_fixture.py")))
import model_fixture as fx  # noqa: E402

SHIM = oracle_lib.runfile("tests/cli/libenospc_shim.so")
MERGE_SHARDS = oracle_lib.runfile("examples/merge_shards")
FULL = "No space left on device"


def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def full_disk_env(out, after, on="write"):
    env = dict(os.environ, LD_PRELOAD=SHIM, SPATIALID_ENOSPC_PATH=os.path.abspath(out),
               SPATIALID_ENOSPC_AFTER=str(after), SPATIALID_ENOSPC_ON=on)
    return env


class FullDiskTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = os.path.join(oracle_lib.tmpdir(), "cli_full_disk")
        cls.model_dir, cls.images = fx.make_inputs(cls.tmp)
        cls.objects = os.path.join(cls.tmp, "objects")
        cls.clean = {}

    # --- helpers ---

    def grid_args(self, out):
        return [fx.GRID_DATA, f"--objects_dir={self.objects}", f"--out={out}", "--pairs=camel_frog",
                "--sizes=16", "--cell=32", "--threads=2"]

    def model_args(self, binary, out, *extra):
        return [binary, "--model=llava-7b", f"--model_dir={self.model_dir}", f"--images={self.images}",
                f"--out={out}", "--dtype=float32", "--batch_size=8", "--quiet", *extra]

    def clean_run(self, key, args_for):
        """A run with space, once per kind: the bytes every other run must match."""
        if key not in self.clean:
            out = os.path.join(self.tmp, "clean_" + key)
            shutil.rmtree(out, ignore_errors=True)
            oracle_lib.run(args_for(out))
            self.clean[key] = out
        return self.clean[key]

    def fails_for_full_disk(self, args, out, after, on="write"):
        """Runs args on a disk that fills up; returns the file its error names."""
        proc = fx.run(args, env=full_disk_env(out, after, on))
        err = proc.stderr.strip()
        self.assertEqual(proc.returncode, 1, f"{args}: exit {proc.returncode}\n{err}")
        for sign in fx.CRASH_SIGNS:
            self.assertNotIn(sign, err)
        lines = err.splitlines()
        self.assertTrue(lines, "no error message")
        last = lines[-1]
        print(f"{os.path.basename(str(args[0]))} on a full disk ({on}, {after} bytes): {last}")
        self.assertIn(FULL, last)
        self.assertIn("cannot write " + os.path.abspath(out), last)
        named = last.split("cannot write ", 1)[1].split(":", 1)[0]
        self.assertTrue(named.startswith(os.path.abspath(out)), last)
        return named

    def assert_whole_files_only(self, out, clean):
        """No temporary, and every file byte-identical to the clean run's."""
        left = files(out)
        self.assertEqual([f for f in left if ".tmp." in f], [], "temporaries left behind")
        for f in left:
            self.assertTrue(os.path.exists(os.path.join(clean, f)), f"{f}: not a clean run's file")
            self.assertEqual(read(os.path.join(out, f)), read(os.path.join(clean, f)),
                             f"{f}: half-written or different")
        return left

    def assert_same_as_clean(self, out, clean):
        self.assertEqual(files(out), files(clean))
        self.assert_whole_files_only(out, clean)

    def out_dir(self, name):
        out = os.path.join(self.tmp, name)
        shutil.rmtree(out, ignore_errors=True)
        return out

    # --- grid_data: PNGs (two threads writing) ---

    def test_grid_data_pngs(self):
        clean = self.clean_run("grid", self.grid_args)
        total = sum(os.path.getsize(os.path.join(clean, f)) for f in files(clean))
        out = self.out_dir("grid")
        named = self.fails_for_full_disk(self.grid_args(out), out, total // 3)
        self.assertTrue(named.endswith(".png"), named)
        done = self.assert_whole_files_only(out, clean)
        self.assertGreater(len(done), 0)
        self.assertLess(len(done), 240)
        proc = oracle_lib.run(self.grid_args(out))
        self.assertIn(f"{len(done)} of 240 images already exist", proc.stderr)
        self.assert_same_as_clean(out, clean)

    # --- .pt files ---

    def test_batch_extraction_pt_files(self):
        clean = self.clean_run("batch", lambda o: self.model_args(fx.BATCH_EXTRACTION, o))
        first = os.path.join("camel_frog", "llava-7b.pt")
        second = os.path.join("dog_cake", "llava-7b.pt")
        out = self.out_dir("batch")
        # Room for the first pair's file and half the second's.
        after = os.path.getsize(os.path.join(clean, first)) + os.path.getsize(os.path.join(clean, second)) // 2
        named = self.fails_for_full_disk(self.model_args(fx.BATCH_EXTRACTION, out), out, after)
        self.assertEqual(named, os.path.join(os.path.abspath(out), second))
        self.assertEqual(self.assert_whole_files_only(out, clean), [first])
        stamp = os.stat(os.path.join(out, first)).st_mtime_ns
        oracle_lib.run(self.model_args(fx.BATCH_EXTRACTION, out))
        self.assertEqual(os.stat(os.path.join(out, first)).st_mtime_ns, stamp,
                         "the rerun redid the pair it had finished")
        self.assert_same_as_clean(out, clean)

    def test_late_allocation_failures_at_fsync_and_close(self):
        # Writes succeed, then fsync() (or close()) reports the full disk:
        # the writer must check both, or a file of holes gets renamed into place.
        clean = self.clean_run("grid_id", lambda o: self.model_args(
            fx.SMALL_ID_GRID, o, "--pairs=camel_frog"))
        for on, what in (("fsync", "fsync failed"), ("close", "close failed")):
            with self.subTest(on=on):
                out = self.out_dir("grid_id_" + on)
                args = self.model_args(fx.SMALL_ID_GRID, out, "--pairs=camel_frog")
                named = self.fails_for_full_disk(args, out, 0, on=on)
                self.assertTrue(named.endswith(".pt"), named)
                self.assertEqual(self.assert_whole_files_only(out, clean), [])
                proc = fx.run(args)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assert_same_as_clean(out, clean)
        # The message says which call failed.
        out = self.out_dir("grid_id_message")
        proc = fx.run(self.model_args(fx.SMALL_ID_GRID, out, "--pairs=camel_frog"),
                      env=full_disk_env(out, 0, "fsync"))
        self.assertIn(f"fsync failed: {FULL}", proc.stderr)

    # --- shards: unit files, then the merge ---

    def shard_args(self, out):
        return self.model_args(fx.BATCH_EXTRACTION, out, "--shard=0", "--num_shards=1")

    def test_shard_unit_files_and_merge(self):
        def sharded_and_merged(out):
            oracle_lib.run(self.shard_args(out))
            return [MERGE_SHARDS, f"--out={out}", "--model=llava-7b", "--quiet"]
        clean = self.clean_run("shards", sharded_and_merged)
        shard = os.path.join(".shards", "llava-7b", "shard-0-of-1")
        run_json = os.path.join(shard, "run.json")
        unit1 = os.path.join(shard, "camel_frog.0-240.pt")
        unit2 = os.path.join(shard, "dog_cake.0-240.pt")
        size = lambda f: os.path.getsize(os.path.join(clean, f))  # noqa: E731
        out = self.out_dir("shards")
        named = self.fails_for_full_disk(self.shard_args(out), out,
                                         size(run_json) + size(unit1) + size(unit2) // 2)
        self.assertEqual(named, os.path.join(os.path.abspath(out), unit2))
        self.assertEqual(self.assert_whole_files_only(out, clean), sorted([run_json, unit1]))
        stamp = os.stat(os.path.join(out, unit1)).st_mtime_ns
        oracle_lib.run(self.shard_args(out))
        self.assertEqual(os.stat(os.path.join(out, unit1)).st_mtime_ns, stamp,
                         "the rerun redid the unit it had finished")
        # The merge on a disk with room for the first pair's file only.
        merge = [MERGE_SHARDS, f"--out={out}", "--model=llava-7b", "--quiet"]
        pair1 = os.path.join("camel_frog", "llava-7b.pt")
        named = self.fails_for_full_disk(merge, out, size(pair1) + 10)
        self.assertEqual(named, os.path.join(os.path.abspath(out), "dog_cake", "llava-7b.pt"))
        self.assert_whole_files_only(out, clean)
        oracle_lib.run(merge)
        self.assert_same_as_clean(out, clean)


if __name__ == "__main__":
    unittest.main()
