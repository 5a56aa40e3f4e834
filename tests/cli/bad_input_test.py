"""Bad-input matrix: the real binaries given broken inputs.

Each case must exit with a positive status (no signal), print a clear error
naming the file or flag on stderr, and show no sign of a C++ abort.
"""
import os
import shutil
import subprocess
import unittest

from PIL import Image

import oracle_lib

GRID_DATA = oracle_lib.runfile("examples/grid_data")
TOKENIZE = oracle_lib.runfile("examples/tokenize")
CRASH_SIGNS = ("terminate called", "Segmentation fault", "Aborted", "core dumped",
               "AddressSanitizer", "stack trace", "Check failed")


class BadInputTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = os.path.join(oracle_lib.tmpdir(), "cli_bad_input")
        shutil.rmtree(cls.tmp, ignore_errors=True)
        os.makedirs(cls.tmp)
        cls.good = cls.folder("good", {"camel": cls.png(40, 40), "frog": cls.png(40, 40)})

    @classmethod
    def png(cls, w, h):
        path = os.path.join(cls.tmp, f"src_{w}x{h}.png")
        if not os.path.exists(path):
            Image.new("RGBA", (w, h), (200, 120, 30, 255)).save(path)
        with open(path, "rb") as f:
            return f.read()

    @classmethod
    def folder(cls, name, files):
        path = os.path.join(cls.tmp, name)
        os.makedirs(path, exist_ok=True)
        for stem, data in files.items():
            with open(os.path.join(path, stem + ".png"), "wb") as f:
                f.write(data)
        return path

    def fails(self, args, *expected, stdin=""):
        """Runs args, asserts a clean failure whose last stderr line holds each expected text."""
        proc = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              input=stdin, timeout=120)
        err = proc.stderr.strip()
        self.assertGreater(proc.returncode, 0, f"{args}: exit {proc.returncode}\n{err}")
        for sign in CRASH_SIGNS:
            self.assertNotIn(sign, err)
        self.assertTrue(err, f"{args}: no error message")
        last = err.splitlines()[-1]
        for text in expected:
            self.assertIn(text, last)
        print(f"{os.path.basename(str(args[0]))} -> exit {proc.returncode}: {last}")
        return last

    def grid(self, objects, out=None, *extra):
        out = out or os.path.join(self.tmp, "out_" + os.path.basename(objects))
        return [GRID_DATA, f"--objects_dir={objects}", f"--out={out}", "--sizes=16", "--cell=32",
                *extra]

    def test_missing_objects_folder(self):
        missing = os.path.join(self.tmp, "no_such_folder")
        self.fails(self.grid(missing), missing, "not found")

    def test_empty_objects_folder(self):
        empty = self.folder("empty", {})
        self.fails(self.grid(empty), empty, "camel_frog")

    def test_truncated_png(self):
        data = self.png(40, 40)
        objects = self.folder("truncated", {"camel": data, "frog": data[: len(data) // 2]})
        self.fails(self.grid(objects), os.path.join(objects, "frog.png"), "not a readable")

    def test_not_a_png(self):
        objects = self.folder("not_png", {"camel": self.png(40, 40), "frog": b"hello, not an image\n"})
        self.fails(self.grid(objects), os.path.join(objects, "frog.png"), "not a readable")

    def test_unusual_image_size_is_resized(self):
        # Objects of any size are scaled to --sizes: a 300x7 strip must draw, not crash.
        objects = self.folder("wide", {"camel": self.png(300, 7), "frog": self.png(40, 40)})
        out = os.path.join(self.tmp, "out_wide")
        proc = subprocess.run([str(a) for a in self.grid(objects, out)], capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        pngs = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f.endswith(".png")]
        self.assertEqual(len(pngs), 240)
        with Image.open(pngs[0]) as im:
            self.assertEqual(im.size, (128, 128))

    def test_unknown_pair(self):
        self.fails(self.grid(self.good, None, "--pairs=camel_unicorn"), "camel_unicorn")

    def test_output_folder_not_writable(self):
        blocker = os.path.join(self.tmp, "a_file.txt")
        with open(blocker, "w") as f:
            f.write("x")
        out = os.path.join(blocker, "sub")
        self.fails(self.grid(self.good, out), out)

    def test_unknown_flag(self):
        self.fails([GRID_DATA, "--no_such_flag=1"], "no_such_flag")
        self.fails([TOKENIZE, "--no_such_flag=1"], "no_such_flag")

    def test_missing_tokenizer(self):
        path = os.path.join(self.tmp, "missing", "tokenizer.json")
        self.fails([TOKENIZE, f"--tokenizer={path}"], path, stdin="hi\n")

    def test_malformed_tokenizer_json(self):
        path = os.path.join(self.tmp, "bad_tok", "tokenizer.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write('{"model": {"type": "BPE", "vocab": {')
        self.fails([TOKENIZE, f"--tokenizer={path}"], path, "JSON", stdin="hi\n")

    def test_tokenizer_json_without_model(self):
        path = os.path.join(self.tmp, "no_model", "tokenizer.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write('{"version": "1.0", "added_tokens": []}')
        self.fails([TOKENIZE, f"--tokenizer={path}"], path, stdin="hi\n")


if __name__ == "__main__":
    unittest.main()
