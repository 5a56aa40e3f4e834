"""Oracle for spatialid's .pt and safetensors files: Python's torch and
safetensors read what C++ wrote, and C++ reads what torch.save wrote.

Every comparison is exact: key types and order, dtypes, shapes, and the bit
pattern of every element (NaNs included).
"""
import collections
import os
import struct
import subprocess
import sys
import unittest
import zipfile

import torch

# run_py_test.py puts only this file's folder on sys.path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import oracle_lib  # noqa: E402

TOOL = oracle_lib.runfile("tests/io/torch_file_tool")


def values(n, dtype):
    return ((torch.arange(n, dtype=torch.int64) * 37) % 255 - 127).to(torch.float32).div(4).to(dtype)


def float32_patterns(n):
    u = (torch.arange(n, dtype=torch.int64) * 2654435761) & 0xFFFFFFFF
    u = torch.where(u >= 2**31, u - 2**32, u)
    return u.to(torch.int32).view(torch.float32)


def sample():
    """The dict torch_file_tool --mode=sample writes, built in Python."""
    d = {}
    d[12] = {"universal": {(3, 0, 224): values(4096, torch.float32),
                           (0, 3, 74): values(4096, torch.float16),
                           (1, 1, 124): values(4096, torch.bfloat16)}}
    d[0] = {}
    d[-7] = {"x": torch.tensor(2.5, dtype=torch.float32)}
    d[2**40] = {(): torch.empty(0, dtype=torch.float32)}
    d["frög ✓"] = {(5,): values(6, torch.float16).reshape(2, 3),
                   (1, 2, 3, 4, 5): torch.empty(3, 0, 2, dtype=torch.bfloat16)}
    d[(-1, 2**33)] = {"nested": {"deeper": {"deepest": values(3, torch.float32)}}}
    d["bits"] = {"f16": torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.float16),
                 "bf16": torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.bfloat16),
                 "f32": float32_patterns(100000)}
    d["big"] = values(300 * 257, torch.float32).reshape(300, 257)
    d["noncontig"] = values(35, torch.float32).reshape(7, 5).t()
    shared = values(10, torch.float32)
    d["shared"] = {"a": shared, "b": shared}
    d["other"] = {"f64": values(5, torch.float64),
                  "i64": torch.arange(-3, 3, dtype=torch.int64) * 2**40,
                  "i32": torch.arange(-3, 3, dtype=torch.int32),
                  "i16": torch.arange(-3, 3, dtype=torch.int16),
                  "i8": torch.arange(-3, 3, dtype=torch.int8),
                  "u8": torch.arange(250, 256, dtype=torch.int32).to(torch.uint8),
                  "bool": (torch.arange(6) % 2).to(torch.bool)}
    d["many"] = {i: torch.full((1,), float(i)) for i in range(1500)}
    return d


_BITS = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
         torch.float64: torch.int64}


class Comparer:
    def __init__(self, test):
        self.test = test
        self.leaves = 0

    def same(self, got, want, path="root"):
        t = self.test
        if isinstance(want, dict):
            t.assertIsInstance(got, dict, path)
            t.assertEqual(list(got.keys()), list(want.keys()), f"{path}: keys or their order differ")
            for k in want:
                t.assertIs(type(got_key(got, k)), type(k), f"{path}: key {k!r} has another type")
                self.same(got[k], want[k], f"{path}[{k!r}]")
            return
        t.assertIsInstance(got, torch.Tensor, path)
        t.assertEqual(got.device.type, "cpu", path)
        t.assertEqual(got.dtype, want.dtype, path)
        t.assertEqual(tuple(got.shape), tuple(want.shape), path)
        t.assertFalse(got.requires_grad, path)
        if want.dtype in _BITS:
            equal = torch.equal(got.contiguous().view(_BITS[want.dtype]),
                                want.contiguous().view(_BITS[want.dtype]))
        else:
            equal = torch.equal(got, want)
        t.assertTrue(equal, f"{path}: values differ")
        self.leaves += 1


def got_key(d, k):
    for key in d:
        if key == k and type(key) is type(k):
            return key
    return None


def walk_tensors(d):
    if isinstance(d, dict):
        for v in d.values():
            yield from walk_tensors(v)
    else:
        yield d


class CppWritesPythonReads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(oracle_lib.tmpdir(), "cpp_writes")
        os.makedirs(cls.dir, exist_ok=True)
        cls.path = os.path.join(cls.dir, "sample.pt")
        oracle_lib.run([TOOL, "--mode=sample", f"--out={cls.path}"])

    def test_weights_only_load_matches_every_value(self):
        got = torch.load(self.path, weights_only=True)
        c = Comparer(self)
        c.same(got, sample())
        self.assertEqual(c.leaves, 3 + 1 + 1 + 2 + 1 + 3 + 1 + 1 + 2 + 7 + 1500)

    def test_same_tensor_shares_one_storage(self):
        got = torch.load(self.path, weights_only=True)
        a, b = got["shared"]["a"], got["shared"]["b"]
        self.assertEqual(a.untyped_storage().data_ptr(), b.untyped_storage().data_ptr())

    def test_zip_is_valid_and_aligned_like_torch(self):
        with zipfile.ZipFile(self.path) as z:
            self.assertIsNone(z.testzip())  # every CRC-32 checks out
            names = z.namelist()
            self.assertEqual(names[:4], ["archive/data.pkl", "archive/.format_version",
                                         "archive/.storage_alignment", "archive/byteorder"])
            self.assertEqual(z.read("archive/version"), b"3\n")
            self.assertEqual(z.read("archive/byteorder"), b"little")
            with open(self.path, "rb") as f:
                for info in z.infolist():
                    f.seek(info.header_offset + 26)
                    n, m = struct.unpack("<HH", f.read(4))
                    self.assertEqual((info.header_offset + 30 + n + m) % 64, 0, info.filename)
        # Same bytes for the same dict: the file is reproducible.
        again = os.path.join(self.dir, "again.pt")
        oracle_lib.run([TOOL, "--mode=sample", f"--out={again}"])
        with open(self.path, "rb") as f1, open(again, "rb") as f2:
            self.assertEqual(f1.read(), f2.read())

    def test_torch_offset_calculation_and_mmap(self):
        # torch can compute storage offsets from miniz's layout instead of
        # asking the zip reader; TORCH_SERIALIZATION_DEBUG makes it assert
        # that both agree for every storage.
        from torch.utils.serialization import config
        os.environ["TORCH_SERIALIZATION_DEBUG"] = "1"
        config.load.calculate_storage_offsets = True
        try:
            got = torch.load(self.path, weights_only=True)
        finally:
            config.load.calculate_storage_offsets = False
            del os.environ["TORCH_SERIALIZATION_DEBUG"]
        Comparer(self).same(got, sample())
        Comparer(self).same(torch.load(self.path, weights_only=True, mmap=True), sample())

    def test_zip64_form(self):
        path = os.path.join(self.dir, "zip64.pt")
        oracle_lib.run([TOOL, "--mode=sample", f"--out={path}", "--zip64_threshold=1"])
        with zipfile.ZipFile(path) as z:
            self.assertIsNone(z.testzip())
        with open(path, "rb") as f:
            self.assertIn(b"PK\x06\x06", f.read())
        Comparer(self).same(torch.load(path, weights_only=True), sample())

    def test_unwritable_folder_is_a_clear_error(self):
        proc = subprocess.run([TOOL, "--mode=sample", "--out=/nonexistent_dir/x.pt"],
                              capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("/nonexistent_dir", proc.stderr)
        self.assertIn("does not exist", proc.stderr)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1)


def python_dicts():
    """Structures torch.save writes: views sharing storage, offsets, strides."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(8, 16, generator=g)
    half = torch.randn(5, 7, generator=g).to(torch.float16)
    return {
        "views": {
            12: {"universal": {(x, y, 224): base[x * 2 + y % 2] for x in range(4) for y in range(2)}},
            "column": base[:, 3],
            "transposed": base.t(),
            "narrow": base[2:5, 4:9],
            "half_t": half.t(),
        },
        "dtypes": {
            "bf16": torch.randn(33, generator=g).to(torch.bfloat16),
            "f16": torch.randn(3, 4, 5, generator=g).to(torch.float16),
            "f32_big": torch.randn(20000, generator=g),
            "scalar": torch.tensor(7.0),
            "empty": torch.empty(0, 4),
            "i64": torch.tensor([-(2**62), 0, 2**62]),
            "bool": torch.tensor([True, False, True]),
        },
        "od": collections.OrderedDict([("b", torch.ones(2)), ("a", torch.zeros(2))]),
        (1, 2, 3): {(): torch.arange(3.0), (7,): {}},
        -(2**50): {"x": torch.full((2, 2), -0.0)},
        "shared_dict": None,  # filled below
    }


class PythonWritesCppReads(unittest.TestCase):
    def roundtrip(self, obj, name, **save_kw):
        d = os.path.join(oracle_lib.tmpdir(), "py_writes")
        os.makedirs(d, exist_ok=True)
        src, dst = os.path.join(d, f"{name}.pt"), os.path.join(d, f"{name}_cpp.pt")
        torch.save(obj, src, **save_kw)
        oracle_lib.run([TOOL, "--mode=rewrite", f"--in={src}", f"--out={dst}"])
        return torch.load(dst, weights_only=True)

    def expected(self):
        obj = python_dicts()
        inner = {"k": torch.arange(4.0)}
        obj["shared_dict"] = {"first": inner, "second": inner}  # BINGET of a dict
        return obj

    def test_every_value_survives(self):
        obj = self.expected()
        c = Comparer(self)
        got = self.roundtrip(obj, "structures")
        c.same(got, {k: (dict(v) if isinstance(v, collections.OrderedDict) else v)
                     for k, v in obj.items()})
        self.assertGreater(c.leaves, 20)

    def test_pickle_protocol_4(self):
        obj = self.expected()
        got = self.roundtrip(obj, "protocol4", pickle_protocol=4)
        Comparer(self).same(got, {k: (dict(v) if isinstance(v, collections.OrderedDict) else v)
                                  for k, v in obj.items()})

    def test_many_keys_and_memo_slots(self):
        # > 256 memo slots (LONG_BINPUT/LONG_BINGET) and SETITEMS batches of 1000.
        obj = {i: {"t": torch.tensor([float(i)])} for i in range(2500)}
        Comparer(self).same(self.roundtrip(obj, "many"), obj)

    def test_legacy_format_is_refused_clearly(self):
        d = os.path.join(oracle_lib.tmpdir(), "py_writes")
        os.makedirs(d, exist_ok=True)
        src = os.path.join(d, "legacy.pt")
        torch.save({1: torch.ones(2)}, src, _use_new_zipfile_serialization=False)
        proc = subprocess.run([TOOL, "--mode=rewrite", f"--in={src}", f"--out={src}.out"],
                              capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("legacy", proc.stderr)
        self.assertIn(src, proc.stderr)

    def test_malformed_python_files(self):
        d = os.path.join(oracle_lib.tmpdir(), "py_writes")
        os.makedirs(d, exist_ok=True)
        src = os.path.join(d, "good.pt")
        torch.save({1: {"a": torch.randn(100)}}, src)
        data = open(src, "rb").read()
        cases = {
            "truncated.pt": (data[: len(data) // 2], "end-of-central-directory"),
            "list.pt": (None, "has type list"),
            "float_key.pt": (None, "key of type float"),
        }
        torch.save({1: [torch.ones(1)]}, os.path.join(d, "list.pt"))
        torch.save({1.5: torch.ones(1)}, os.path.join(d, "float_key.pt"))
        with open(os.path.join(d, "truncated.pt"), "wb") as f:
            f.write(cases["truncated.pt"][0])
        for name, (_, message) in cases.items():
            path = os.path.join(d, name)
            proc = subprocess.run([TOOL, "--mode=rewrite", f"--in={path}", f"--out={path}.out"],
                                  capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, name)
            self.assertIn(message, proc.stderr, name)
            self.assertIn(path, proc.stderr, name)
            self.assertFalse(os.path.exists(path + ".out"), name)


class SafetensorsWriter(unittest.TestCase):
    def test_python_safetensors_loads_it(self):
        from safetensors import safe_open
        from safetensors.torch import load_file
        path = os.path.join(oracle_lib.tmpdir(), "sample.safetensors")
        oracle_lib.run([TOOL, "--mode=safetensors_sample", f"--out={path}"])
        got = load_file(path)
        want = {
            "layer.12.universal": values(4096, torch.float32),
            "f16": values(1000, torch.float16).reshape(10, 100),
            "bf16.bits": torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.bfloat16),
            "scalar": torch.tensor(-1.25),
            "empty": torch.empty(0, 3, dtype=torch.float16),
            "noncontig": values(12, torch.float32).reshape(3, 4).t(),
        }
        self.assertEqual(sorted(got), sorted(want))
        c = Comparer(self)
        for k in want:
            c.same(got[k], want[k], k)
        with safe_open(path, framework="pt") as f:
            self.assertEqual(f.metadata(), {"model": "llava-7b", "format": "pt"})
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
        self.assertEqual(n % 8, 0)


if __name__ == "__main__":
    unittest.main()
