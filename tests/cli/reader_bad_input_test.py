"""Bad-input matrix for the binaries that read the extraction's .pt files:
fig5 (small_id_grid's files) and merge_shards (a sharded run's states).

Each broken input must end the run with a positive exit status (no signal),
no sign of a C++ abort, exactly one line on stderr naming the offending file
or flag and what was expected, and no output written: a refused merge leaves
no pair, universal or axis file, not even of the pairs before the broken one.
"""
import os
import shutil
import sys
import unittest

import oracle_lib

sys.path.insert(0, os.path.dirname(oracle_lib.runfile("tests/cli/model_fixture.py")))
import model_fixture as fx  # noqa: E402

FIG5 = oracle_lib.runfile("examples/fig5")
MERGE_SHARDS = oracle_lib.runfile("examples/merge_shards")
SHARDS = os.path.join(".shards", "llava-7b")


def outputs(root):
    """The files under root, shard states left out."""
    out = []
    for d, dirs, fs in os.walk(root):
        dirs[:] = [x for x in dirs if x != ".shards"]
        out += [os.path.relpath(os.path.join(d, f), root) for f in fs]
    return sorted(out)


class ReaderBadInputTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = os.path.join(oracle_lib.tmpdir(), "cli_reader_bad_input")
        cls.model_dir, cls.images = fx.make_inputs(cls.tmp)
        common = ["--model=llava-7b", f"--model_dir={cls.model_dir}", f"--images={cls.images}",
                  "--dtype=float32", "--batch_size=8", "--quiet"]
        # fig5's inputs: the grid experiment on one pair, with axes from the
        # drawn size (16); and without, so its axis files hold no axis.
        cls.grid = os.path.join(cls.tmp, "grid")
        oracle_lib.run([fx.SMALL_ID_GRID, *common, "--pairs=camel_frog", f"--out={cls.grid}",
                        "--axis_size=16"])
        cls.no_axes = os.path.join(cls.tmp, "no_axes")
        oracle_lib.run([fx.SMALL_ID_GRID, *common, "--pairs=camel_frog", f"--out={cls.no_axes}"])
        # merge_shards' inputs: two shards (one pair each) of a batch extraction,
        # and one shard of a run that kept other layers.
        cls.sharded = os.path.join(cls.tmp, "sharded")
        cls.other_layers = os.path.join(cls.tmp, "other_layers")
        for out, extra in ((cls.sharded, []), (cls.other_layers, ["--layers=0,2"])):
            for k in (0, 1):
                oracle_lib.run([fx.BATCH_EXTRACTION, *common, f"--out={out}", f"--shard={k}",
                                "--num_shards=2", *extra])
        cls.unit0 = os.path.join(SHARDS, "shard-0-of-2", "camel_frog.0-240.pt")
        cls.unit1 = os.path.join(SHARDS, "shard-1-of-2", "dog_cake.0-240.pt")

    def fails(self, args, *expected, out=None):
        """Runs args; asserts one clean error line holding each expected text,
        and, given `out`, that nothing was written there."""
        before = outputs(out) if out else None
        # absl's flag parser words its own errors ("ERROR: ...").
        line = fx.assert_one_line_failure(self, fx.run(args), args, *expected,
                                          prefixes=(f"{os.path.basename(str(args[0]))}: ", "ERROR: "))
        if out is not None:
            self.assertEqual(outputs(out), before, "a refused run wrote files")
        return line

    def copy(self, src, name):
        dst = os.path.join(self.tmp, name)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        return dst

    # --- fig5 ---

    def fig5(self, folder, *extra):
        return [FIG5, f"--dir={folder}", "--model=llava-7b", "--layer=2", "--sheet_layers=1-3",
                "--size=16", "--no_png", *extra]

    def test_fig5_reads_the_good_files(self):
        # The matrix below means something only if these files draw.
        out = self.copy(self.grid, "fig5_good")
        proc = fx.run(self.fig5(out, "--json"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for f in ("llava-7b_fig5.svg", "llava-7b_fig5_sheet.svg", "llava-7b_fig5.json"):
            self.assertTrue(os.path.exists(os.path.join(out, f)), f)

    def test_fig5_missing_folder_and_files(self):
        missing = os.path.join(self.tmp, "no_such_grid")
        self.fails(self.fig5(missing), os.path.join(missing, "llava-7b.pt"), "missing",
                   "run small_id_grid first")
        for stem in ("llava-7b.pt", "llava-7b_x.pt", "llava-7b_y.pt", "llava-7b_text.pt"):
            with self.subTest(missing=stem):
                out = self.copy(self.grid, "fig5_missing")
                os.remove(os.path.join(out, stem))
                self.fails(self.fig5(out), os.path.join(out, stem), "missing", out=out)

    def test_fig5_corrupt_files(self):
        for stem in ("llava-7b.pt", "llava-7b_x.pt", "llava-7b_text.pt"):
            for what, damage in (("truncated", lambda d: d[: len(d) // 2]),
                                 ("not a .pt", lambda d: b"camel,frog,0.5\n"),
                                 ("empty", lambda d: b"")):
                with self.subTest(file=stem, damage=what):
                    out = self.copy(self.grid, "fig5_corrupt")
                    fx.rewrite(out, stem, damage)
                    self.fails(self.fig5(out), os.path.join(out, stem), out=out)

    def test_fig5_files_of_the_wrong_kind(self):
        # An axis file where the IDs belong: a .pt, but {layer: {token: vector}}.
        out = self.copy(self.grid, "fig5_kind")
        shutil.copy(os.path.join(out, "llava-7b_x.pt"), os.path.join(out, "llava-7b.pt"))
        self.fails(self.fig5(out), os.path.join(out, "llava-7b.pt"), "expected", out=out)
        # IDs where the x axis belongs.
        out = self.copy(self.grid, "fig5_kind2")
        shutil.copy(os.path.join(out, "llava-7b.pt"), os.path.join(out, "llava-7b_x.pt"))
        self.fails(self.fig5(out), os.path.join(out, "llava-7b_x.pt"),
                   "expected {layer: {token: vector}}", out=out)
        # Axis files without axes (small_id_grid run with an --axis_size it did not draw).
        out = self.copy(self.no_axes, "fig5_no_axes")
        self.fails(self.fig5(out), os.path.join(out, "llava-7b_x.pt"), "holds no axis",
                   "--axis_size", out=out)

    def test_fig5_wrong_layer_token_and_flags(self):
        out = self.copy(self.grid, "fig5_flags")
        self.fails(self.fig5(out, "--layer=99"), "99", "layers in", "--layer", out=out)
        self.fails(self.fig5(out, "--token=zebra"), "zebra", out=out)
        self.fails(self.fig5(out, "--sheet_layers=eight"), "eight", out=out)
        self.fails(self.fig5(out, "--size=17"), os.path.join(out, "llava-7b.pt"), "17", out=out)
        self.fails([FIG5, "--no_such_flag=1"], "no_such_flag")
        self.fails([FIG5, f"--dir={out}", "stray"], "unexpected argument 'stray'")

    def test_fig5_output_not_writable(self):
        blocker = os.path.join(self.tmp, "a_file.txt")
        with open(blocker, "w") as f:
            f.write("x")
        target = os.path.join(blocker, "fig")
        self.fails(self.fig5(self.grid, f"--out={target}"), target)

    # --- merge_shards ---

    def merge(self, out, *extra):
        return [MERGE_SHARDS, f"--out={out}", "--model=llava-7b", "--quiet", *extra]

    def test_merge_reads_the_good_shards(self):
        out = self.copy(self.sharded, "merge_good")
        proc = fx.run(self.merge(out))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(outputs(out), sorted([os.path.join("camel_frog", "llava-7b.pt"),
                                               os.path.join("dog_cake", "llava-7b.pt"),
                                               "llava-7b.pt", "llava-7b_x.pt", "llava-7b_y.pt"]))

    def test_merge_missing_folders(self):
        missing = os.path.join(self.tmp, "no_such_run")
        self.fails(self.merge(missing), os.path.join(missing, SHARDS), "no shard folder")
        empty = os.path.join(self.tmp, "no_shards")
        os.makedirs(os.path.join(empty, SHARDS), exist_ok=True)
        self.fails(self.merge(empty), os.path.join(empty, SHARDS), "no finished shard", out=empty)

    def test_merge_corrupt_manifest(self):
        out = self.copy(self.sharded, "merge_manifest")
        manifest = os.path.join(out, SHARDS, "shard-1-of-2.json")
        fx.rewrite(os.path.dirname(manifest), os.path.basename(manifest), lambda d: d[: len(d) // 2])
        self.fails(self.merge(out), manifest, "not a spatialid shard manifest", out=out)

    def test_merge_corrupt_unit_file_is_found_before_anything_is_written(self):
        # The broken unit is the second pair's: a merge that checks each unit
        # only when it sums it has written the first pair's file by then.
        for what, damage in (("truncated", lambda d: d[: len(d) // 2]),
                             ("not a .pt", lambda d: b"half a file"),
                             ("empty", lambda d: b"")):
            with self.subTest(damage=what):
                out = self.copy(self.sharded, "merge_unit")
                unit = os.path.join(out, self.unit1)
                fx.rewrite(os.path.dirname(unit), os.path.basename(unit), damage)
                self.fails(self.merge(out), os.path.join(out, SHARDS, "shard-1-of-2"),
                           "bad unit file", unit, "--shard=1 --num_shards=2 --overwrite", out=out)

    def test_merge_unit_file_of_the_wrong_kind_or_shape(self):
        # A .pt of IDs (not a state) where a unit belongs.
        out = self.copy(self.sharded, "merge_kind")
        ids = os.path.join(self.tmp, "merge_kind_ids")
        shutil.rmtree(ids, ignore_errors=True)
        shutil.copytree(self.sharded, ids)
        oracle_lib.run(self.merge(ids))
        shutil.copy(os.path.join(ids, "dog_cake", "llava-7b.pt"), os.path.join(out, self.unit1))
        self.fails(self.merge(out), os.path.join(out, self.unit1), "not a spatial-ID pair state",
                   out=out)
        # A state of the right pair from a run that kept other layers.
        out = self.copy(self.sharded, "merge_shape")
        shutil.copy(os.path.join(self.other_layers, self.unit1), os.path.join(out, self.unit1))
        self.fails(self.merge(out), os.path.join(out, self.unit1), "holds layers 0,2",
                   "layers 0,1,2,3", out=out)

    def test_merge_missing_unit_file(self):
        out = self.copy(self.sharded, "merge_no_unit")
        os.remove(os.path.join(out, self.unit0))
        self.fails(self.merge(out), os.path.join(out, SHARDS, "shard-0-of-2"),
                   "camel_frog.0-240.pt", "--overwrite", out=out)

    def test_merge_flags(self):
        self.fails([MERGE_SHARDS, "--no_such_flag=1"], "no_such_flag")
        self.fails([MERGE_SHARDS, f"--out={self.sharded}", "stray"], "unexpected argument 'stray'")
        out = self.copy(self.sharded, "merge_name")
        self.fails(self.merge(out, "--name=other"), os.path.join(out, ".shards", "other"), out=out)


if __name__ == "__main__":
    unittest.main()
