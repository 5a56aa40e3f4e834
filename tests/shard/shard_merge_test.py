"""Sharded batch extraction (--shard/--num_shards) merged by merge_shards must
equal one process's run: same files and keys, values within a few fp32 ulps.
Then the failure paths: a shard killed with SIGKILL and rerun alone, and the
merge's one-line refusals of missing, incomplete and mismatched shards."""
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

import oracle_lib

sys.path.insert(0, os.path.dirname(oracle_lib.runfile("tests/shard/shard_lib.py")))
import shard_lib as sl  # noqa: E402


class ShardMergeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.fx = sl.Fixture("shard_merge")
        # One complete 3-shard run (3 concurrent processes) that several
        # failure cases copy and damage.
        cls.three = os.path.join(cls.fx.tmp, "three")
        t = time.time()
        cls.fx.run_shards_concurrently(cls.three, 3)
        cls.three_seconds = time.time() - t

    def copy_of(self, src, name):
        dst = os.path.join(self.fx.tmp, name)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        for f in sl.output_files(dst):  # keep only the shard states
            os.remove(os.path.join(dst, f))
        return dst

    def shards_dir(self, out):
        return os.path.join(out, ".shards", sl.NAME)

    def merge_proc(self, out):
        return subprocess.run([sl.MERGE_SHARDS, f"--out={out}", f"--model={sl.NAME}"],
                              env=sl.clean_env(), capture_output=True, text=True)

    def shard(self, out, k, n, *extra, model_dir=None, check=True):
        args = [sl.BATCH_EXTRACTION, *self.fx.flags(model_dir), f"--out={out}", f"--shard={k}",
                f"--num_shards={n}", *extra]
        if check:
            return oracle_lib.run(args, env=sl.clean_env())
        return subprocess.run(args, env=sl.clean_env(), capture_output=True, text=True)

    # --- equality with the single run ---

    def test_three_concurrent_shards_merge_to_the_single_run(self):
        print(f"single run {self.fx.single_seconds:.1f} s; 3 concurrent shards "
              f"{self.three_seconds:.1f} s")
        manifests = sorted(f for f in os.listdir(self.shards_dir(self.three)) if f.endswith(".json"))
        self.assertEqual(manifests, [f"shard-{k}-of-3.json" for k in range(3)])
        out = self.copy_of(self.three, "three_merged")
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "3 shards over 3 pairs")

    def test_more_shards_than_pairs_split_pairs_by_layout(self):
        out = os.path.join(self.fx.tmp, "seven")
        self.fx.run_shards_concurrently(out, 7)
        # 7 shards over 3 pairs: each pair cut in 3 ranges of 48 layouts.
        units = sorted(f for d, _, fs in os.walk(self.shards_dir(out)) for f in fs if f.endswith(".pt"))
        self.assertEqual(len(units), 9, units)
        self.assertIn("camel_frog.48-96.pt", units)
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "7 shards over 3 pairs")

    def test_batch_extraction_merge_flag_needs_no_model(self):
        # Regression: --merge used to demand --model_dir (or the default
        # model) before it got to the merge, which loads no model.
        out = self.copy_of(self.three, "merge_flag")
        oracle_lib.run([sl.BATCH_EXTRACTION, "--merge", f"--out={out}", f"--name={sl.NAME}",
                        "--quiet"], env=sl.clean_env())
        sl.assert_same_as_single(self, self.fx, out, "batch_extraction --merge")

    def test_merge_takes_axis_options_from_the_shards(self):
        # Shards run with --strict_axes; a plain merge_shards (no axis flags)
        # must write the strict axes a single --strict_axes run writes.
        strict = os.path.join(self.fx.tmp, "single_strict")
        oracle_lib.run([sl.BATCH_EXTRACTION, *self.fx.flags(), f"--out={strict}",
                        "--strict_axes"], env=sl.clean_env())
        out = os.path.join(self.fx.tmp, "strict_shards")
        self.fx.run_shards_concurrently(out, 2, extra=["--strict_axes"])
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "--strict_axes shards, plain merge",
                                 single=strict)
        # An explicit merge flag still wins: the default axes again.
        self.fx.merge(out, "--strict_axes=false")
        sl.assert_same_as_single(self, self.fx, out, "same shards, merge --strict_axes=false")

    # --- a killed shard ---

    def test_killed_shard_is_refused_then_rerun_alone(self):
        out = os.path.join(self.fx.tmp, "killed")
        shutil.rmtree(out, ignore_errors=True)
        # 2 shards over 3 pairs: shard 0 has two units (camel_frog, frog_dog).
        self.shard(out, 1, 2)
        folder = os.path.join(self.shards_dir(out), "shard-0-of-2")
        proc = subprocess.Popen([sl.BATCH_EXTRACTION, *self.fx.flags(), f"--out={out}",
                                 "--shard=0", "--num_shards=2"], env=sl.clean_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = os.path.join(folder, "camel_frog.0-144.pt")
        deadline = time.time() + 120
        while not os.path.exists(first) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL, "shard 0 finished before the kill")
        self.assertTrue(os.path.exists(first))
        self.assertFalse(os.path.exists(folder + ".json"))
        # (b) incomplete: folder, no manifest.
        sl.assert_one_line_error(self, self.merge_proc(out), folder, "incomplete", "1 unit file",
                                 "--shard=0 --num_shards=2")
        # Regression: a rerun with other settings reused the killed run's unit
        # files and mixed two models; now the folder's run.json refuses it.
        other = self.fx.make_model("model_seed8", seed=8)
        bad = self.shard(out, 0, 2, model_dir=other, check=False)
        sl.assert_one_line_error(self, bad, folder, "other settings", "model_fingerprint",
                                 "--overwrite")
        # Temporaries a killed shard can leave (a unit or the manifest killed
        # between write and rename), named as AtomicOutputFile names them, of
        # a writer that is gone.
        dead = subprocess.Popen(["true"])
        dead.wait()
        stale = [oracle_lib.temporary_name(os.path.join(folder, "frog_dog.0-144.pt"), dead.pid),
                 oracle_lib.temporary_name(f"{folder}.json", dead.pid)]
        # The same names written by a shard on another node sharing --out
        # (a rerun there, say): its pid means nothing here, so it is kept.
        foreign = [oracle_lib.temporary_name(os.path.join(folder, "frog_dog.0-144.pt"), dead.pid,
                                             host="another-node", n=5)]
        for path in stale + foreign:
            with open(path, "wb") as f:
                f.write(b"half a file")
        # The same flags resume: the first unit is kept, not recomputed.
        stamp = os.stat(first).st_mtime_ns
        self.shard(out, 0, 2)
        self.assertEqual(os.stat(first).st_mtime_ns, stamp, "the finished unit was recomputed")
        for path in stale:
            self.assertFalse(os.path.exists(path), f"the rerun left {path}")
        for path in foreign:
            self.assertTrue(os.path.exists(path), f"the rerun removed another host's {path}")
            os.remove(path)
        leftovers = [os.path.join(d, f) for d, _, files in os.walk(self.shards_dir(out))
                     for f in files if ".tmp." in f]
        self.assertEqual(leftovers, [], "temporaries under .shards after the rerun")
        self.fx.merge(out)
        sl.assert_same_as_single(self, self.fx, out, "killed shard rerun alone")

    # --- refusals ---

    def test_missing_shard_is_refused(self):
        out = self.copy_of(self.three, "missing")
        shutil.rmtree(os.path.join(self.shards_dir(out), "shard-2-of-3"))
        os.remove(os.path.join(self.shards_dir(out), "shard-2-of-3.json"))
        sl.assert_one_line_error(self, self.merge_proc(out),
                                 os.path.join(self.shards_dir(out), "shard-2-of-3"), "missing",
                                 "--shard=2 --num_shards=3")
        self.assertEqual(sl.output_files(out), [], "a refused merge wrote files")

    def test_incomplete_shard_is_refused(self):
        out = self.copy_of(self.three, "incomplete")
        os.remove(os.path.join(self.shards_dir(out), "shard-1-of-3.json"))
        sl.assert_one_line_error(self, self.merge_proc(out),
                                 os.path.join(self.shards_dir(out), "shard-1-of-3"), "incomplete",
                                 "no manifest", "--shard=1 --num_shards=3")

    def test_deleted_unit_file_is_refused(self):
        out = self.copy_of(self.three, "deleted_unit")
        folder = os.path.join(self.shards_dir(out), "shard-1-of-3")
        os.remove(os.path.join(folder, "dog_camel.0-144.pt"))
        sl.assert_one_line_error(self, self.merge_proc(out), folder, "dog_camel.0-144.pt",
                                 "--overwrite")

    def test_shards_of_another_split_are_refused(self):
        out = self.copy_of(self.three, "two_splits")
        self.shard(out, 0, 2)  # a stale shard of a 2-way split in the same folder
        line = sl.assert_one_line_error(self, self.merge_proc(out), self.shards_dir(out),
                                        "two different splits", "shard-0-of-2.json")
        self.assertRegex(line, r"shard-\d-of-3\.json")

    def test_shards_of_another_run_are_refused(self):
        other = self.fx.make_model("model_other", seed=9)
        other_images = os.path.join(self.fx.tmp, "images_74")  # same pairs, other layouts
        oracle_lib.run([sl.GRID_DATA, f"--objects_dir={self.fx.objects}", f"--out={other_images}",
                        f"--pairs={','.join(sl.PAIRS)}", "--sizes=74", "--no_same_row_or_col"])
        cases = [
            ("model", {"model_dir": other}, (), "model_fingerprint"),
            ("layers", {}, ("--layers=0,2",), "layers"),
            ("images", {}, (f"--images={other_images}",), "layouts_fingerprint"),
            ("dtype", {}, ("--dtype=bfloat16",), "dtype"),
        ]
        for what, kw, extra, needle in cases:
            with self.subTest(what):
                out = self.copy_of(self.three, f"other_{what}")
                # A shard folder refuses a rerun with other settings...
                sl.assert_one_line_error(self, self.shard(out, 1, 3, *extra, check=False, **kw),
                                         os.path.join(self.shards_dir(out), "shard-1-of-3"),
                                         "other settings", needle)
                # ... and after --overwrite the merge refuses the mixture.
                self.shard(out, 1, 3, *extra, "--overwrite", **kw)
                sl.assert_one_line_error(self, self.merge_proc(out),
                                         os.path.join(self.shards_dir(out), "shard-1-of-3.json"),
                                         "different run than shard 0", needle)
                self.assertEqual(sl.output_files(out), [])

    def test_no_shards_and_bad_flags(self):
        empty = os.path.join(self.fx.tmp, "empty")
        os.makedirs(empty, exist_ok=True)
        sl.assert_one_line_error(self, self.merge_proc(empty),
                                 os.path.join(empty, ".shards", sl.NAME), "no shard folder")
        p = self.shard(os.path.join(self.fx.tmp, "bad"), 3, 3, check=False)
        sl.assert_one_line_error(self, p, "--shard=3 --num_shards=3")
        p = self.shard(os.path.join(self.fx.tmp, "bad"), 0, 2, "--averaging=reference",
                       check=False)
        sl.assert_one_line_error(self, p, "streaming")


if __name__ == "__main__":
    unittest.main()
