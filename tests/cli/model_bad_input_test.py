"""Bad-input matrix for the model binaries, small_id_grid and batch_extraction.

Each broken input must end the run with a positive exit status (no signal),
no sign of a C++ abort, and exactly one line on stderr (the runs are
--quiet) naming the offending file or flag and what was expected.
"""
import json
import os
import sys
import unittest

import oracle_lib

sys.path.insert(0, os.path.dirname(oracle_lib.runfile("tests/cli/model_fixture.py")))
import model_fixture as fx  # noqa: E402

BINARIES = {"small_id_grid": fx.SMALL_ID_GRID, "batch_extraction": fx.BATCH_EXTRACTION}


class ModelBadInputTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = os.path.join(oracle_lib.tmpdir(), "cli_model_bad_input")
        cls.model_dir, cls.images = fx.make_inputs(cls.tmp)

    def args(self, binary, **flags):
        values = {"model": "llava-7b", "model_dir": self.model_dir, "images": self.images,
                  "pairs": "camel_frog", "out": os.path.join(self.tmp, "out_" + binary),
                  "dtype": "float32"}
        values.update(flags)
        return [BINARIES[binary], "--quiet", "--batch_size=4",
                *[f"--{k}={v}" for k, v in values.items() if v is not None]]

    def fails(self, binary, *expected, extra=(), **flags):
        """Runs a binary; asserts a clean failure with one stderr line holding each expected text."""
        args = self.args(binary, **flags) + list(extra)
        return fx.assert_one_line_failure(self, fx.run(args), args, *expected,
                                          prefixes=(f"{binary}: error: ", "ERROR: "))

    def both(self, *expected, **flags):
        for binary in BINARIES:
            self.fails(binary, *expected, **flags)

    # --- images ---

    def test_missing_images_folder(self):
        missing = os.path.join(self.tmp, "no_such_images")
        self.both(missing, "not found", images=missing)

    def test_empty_images_folder(self):
        empty = os.path.join(self.tmp, "empty_images")
        os.makedirs(empty, exist_ok=True)
        self.both(empty, "no grid images", "expected pair folders", images=empty, pairs=None)

    def test_unknown_pair(self):
        self.both("camel_unicorn", pairs="camel_unicorn")

    def test_missing_layouts(self):
        images = fx.copy_images(self.images, self.tmp, "missing_layouts")
        os.remove(os.path.join(images, "camel_frog", "0_0", "1_0_16.png"))
        for f in os.listdir(os.path.join(images, "camel_frog", "2_2")):
            os.remove(os.path.join(images, "camel_frog", "2_2", f))
        self.both(os.path.join(images, "camel_frog"), "16 of 240 expected layouts are missing",
                  "0_0/1_0_16.png", images=images)

    def test_truncated_png(self):
        images = fx.copy_images(self.images, self.tmp, "truncated_png")
        path = os.path.join(images, "camel_frog", "1_1", "2_3_16.png")
        fx.rewrite(os.path.dirname(path), os.path.basename(path), lambda d: d[: len(d) // 2])
        self.both(path, "not a readable PNG", images=images)

    def test_not_a_png(self):
        images = fx.copy_images(self.images, self.tmp, "not_png")
        path = os.path.join(images, "camel_frog", "3_3", "0_0_16.png")
        with open(path, "wb") as f:
            f.write(b"GIF89a, or rather not an image at all\n")
        self.both(path, "not a readable PNG", images=images)

    def test_unusual_image_size_is_resized(self):
        # The processor resizes any image (as transformers does): a 1x1 and
        # a 300x7 layout among 16x16 ones must run, not crash.
        from PIL import Image
        images = fx.copy_images(self.images, self.tmp, "odd_sizes")
        Image.new("RGB", (1, 1), (9, 9, 9)).save(os.path.join(images, "camel_frog", "0_0", "0_1_16.png"))
        Image.new("RGB", (300, 7), (9, 9, 9)).save(os.path.join(images, "camel_frog", "0_0", "0_2_16.png"))
        for binary in BINARIES:
            out = os.path.join(self.tmp, "out_odd_" + binary)
            proc = fx.run(self.args(binary, images=images, out=out, layers="0"))
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertTrue(os.path.exists(os.path.join(out, "llava-7b.pt")))

    # --- flags ---

    def test_target_word_not_in_prompt(self):
        line = self.fails("small_id_grid", "zebra", "is not in the prompt", targets="zebra")
        self.assertLess(len(line), 1000)  # the 576 image tokens are elided

    def test_unknown_alias(self):
        self.both("gemma-9b", "unknown model alias", "gemma-4b", model="gemma-9b")

    def test_bad_flag_values(self):
        self.both("--dtype=float64", "expected", dtype="float64")
        self.both("layers '99'", "outside 0..3", layers="99")
        self.both("--pooling=max", "expected", pooling="max")

    def test_unknown_flag_and_stray_argument(self):
        for binary in BINARIES:
            self.fails(binary, "no_such_flag", extra=["--no_such_flag=1"])
            self.fails(binary, "unexpected argument 'stray'", extra=["stray"])

    # --- checkpoint ---

    def test_missing_model_dir(self):
        missing = os.path.join(self.tmp, "no_such_model")
        self.both(missing, "--model_dir folder not found", model_dir=missing)

    def test_checkpoint_of_another_family(self):
        config = os.path.join(self.model_dir, "config.json")
        self.both(config, 'model_type "llava"', "--model=qwen2-2b", 'expected model_type "qwen2_vl"',
                  "use --model=llava-7b", model="qwen2-2b")
        self.both(config, 'expected model_type "internvl"', model="internvl-1b")

        def as_qwen(folder):
            fx.rewrite(folder, "config.json", lambda d: json.dumps(
                dict(json.loads(d), model_type="qwen2_vl")).encode())
        qwen = fx.model_variant(self.model_dir, "qwen_config", as_qwen)
        self.both(os.path.join(qwen, "config.json"), 'model_type "qwen2_vl"', "--model=llava-7b",
                  "use --model=qwen2-2b", model_dir=qwen)

    def test_truncated_safetensors_header(self):
        d = fx.model_variant(self.model_dir, "cut_header",
                             lambda f: fx.rewrite(f, "model.safetensors", lambda b: b[:100]))
        self.both(os.path.join(d, "model.safetensors"), "truncated", model_dir=d)

    def test_truncated_safetensors_data(self):
        d = fx.model_variant(self.model_dir, "cut_data",
                             lambda f: fx.rewrite(f, "model.safetensors", lambda b: b[: len(b) // 2]))
        self.both(os.path.join(d, "model.safetensors"), "run past the data area", model_dir=d)

    def test_malformed_config_json(self):
        d = fx.model_variant(self.model_dir, "bad_config",
                             lambda f: fx.rewrite(f, "config.json", lambda b: b[: len(b) // 2]))
        self.both(os.path.join(d, "config.json") + ":", "invalid JSON", model_dir=d)

    def test_config_json_without_model_type(self):
        def drop(folder):
            fx.rewrite(folder, "config.json", lambda d: json.dumps(
                {k: v for k, v in json.loads(d).items() if k != "model_type"}).encode())
        d = fx.model_variant(self.model_dir, "no_model_type", drop)
        self.both(os.path.join(d, "config.json"), 'no "model_type"', model_dir=d)

    def test_malformed_tokenizer_json(self):
        d = fx.model_variant(self.model_dir, "bad_tokenizer",
                             lambda f: fx.rewrite(f, "tokenizer.json", lambda b: b[:1000]))
        self.both(os.path.join(d, "tokenizer.json"), "not valid JSON", model_dir=d)

    def test_missing_tokenizer_json(self):
        d = fx.model_variant(self.model_dir, "no_tokenizer",
                             lambda f: os.remove(os.path.join(f, "tokenizer.json")))
        self.both(os.path.join(d, "tokenizer.json"), model_dir=d)

    # --- output ---

    def test_output_folder_cannot_be_created(self):
        # A path under a regular file fails even for root.
        blocker = os.path.join(self.tmp, "a_file.txt")
        with open(blocker, "w") as f:
            f.write("x")
        out = os.path.join(blocker, "sub")
        self.both(out, "cannot create the --out folder", out=out)

    def test_output_not_writable(self):
        # An output file name taken by a folder fails for every user.
        for binary, taken in (("small_id_grid", "llava-7b.pt"),
                              ("batch_extraction", os.path.join("camel_frog", "llava-7b.pt"))):
            out = os.path.join(self.tmp, "taken_" + binary)
            os.makedirs(os.path.join(out, taken), exist_ok=True)
            self.fails(binary, os.path.join(out, taken), out=out, layers="0")
        # A read-only parent (mode 0500) stops every user but root.
        if os.geteuid() != 0:
            parent = os.path.join(self.tmp, "read_only")
            os.makedirs(parent, exist_ok=True)
            os.chmod(parent, 0o500)
            try:
                self.both(os.path.join(parent, "sub"), "cannot create the --out folder",
                          out=os.path.join(parent, "sub"))
                self.both(parent, "not writable", out=parent)
            finally:
                os.chmod(parent, 0o700)


if __name__ == "__main__":
    unittest.main()
