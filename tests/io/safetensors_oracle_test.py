"""C++ safetensors loading against files written by Python's safetensors and transformers.

Every tensor the C++ checkpoint loader returns must be bit-identical to what
torch holds (for stored dtypes) or to torch's own `.to(dtype)` (conversions).
"""
import json
import os
import shutil
import subprocess
import sys
import unittest

import torch
from safetensors.torch import save_file

# run_py_test.py puts only this file's folder on sys.path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import oracle_lib  # noqa: E402

DUMP = oracle_lib.runfile("tests/io/safetensors_dump")
NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def fresh(name):
    path = os.path.join(oracle_lib.tmpdir(), name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def dump(model_dir, dtype="keep"):
    out = os.path.join(model_dir, f"dump_{dtype}.json")
    oracle_lib.run([DUMP, f"--model_dir={model_dir}", f"--dtype={dtype}", f"--out={out}"])
    with open(out) as f:
        return json.load(f)


def raw_hex(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()


def sample_tensors():
    g = torch.Generator().manual_seed(0)
    out = {}
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        tag = NAMES[dt].lower()
        out[f"{tag}.matrix"] = (torch.randn(7, 5, generator=g) * 30).to(dt)
        out[f"{tag}.vector"] = torch.randn(13, generator=g).to(dt)
        out[f"{tag}.scalar"] = torch.tensor(3.25).to(dt)
        out[f"{tag}.empty"] = torch.zeros(0, 4).to(dt)
    # Values where rounding matters: subnormals, infinities, halfway cases.
    out["f32.special"] = torch.tensor(
        [0.0, -0.0, 1e-40, float("inf"), -float("inf"), 65504.0, 65520.0, 1.0 + 2**-8, 3.0e38])
    return out


class SafetensorsOracleTest(unittest.TestCase):
    def check(self, tensors, got, dtype):
        self.assertEqual(sorted(got), sorted(tensors))
        for name, t in tensors.items():
            want = t if dtype is None else t.to(dtype)
            entry = got[name]
            self.assertEqual(entry["dtype"], NAMES[want.dtype], name)
            self.assertEqual(entry["shape"], list(want.shape), name)
            self.assertEqual(entry["hex"], raw_hex(want), f"{name} bytes differ")

    def test_single_file_stored_dtypes_bit_exact(self):
        d = fresh("single")
        tensors = sample_tensors()
        save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        self.check(tensors, dump(d), None)

    def test_conversions_match_torch(self):
        d = fresh("convert")
        tensors = sample_tensors()
        save_file(tensors, os.path.join(d, "model.safetensors"))
        for flag, dt in (("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)):
            with self.subTest(dtype=flag):
                self.check(tensors, dump(d, flag), dt)

    def test_sharded_index(self):
        d = fresh("sharded")
        tensors = sample_tensors()
        names = sorted(tensors)
        shards = [names[0::3], names[1::3], names[2::3]]
        weight_map = {}
        for i, part in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file({n: tensors[n] for n in part}, os.path.join(d, fname))
            weight_map.update({n: fname for n in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
        self.check(tensors, dump(d), None)

    def test_transformers_sharded_checkpoint(self):
        from transformers import LlamaConfig, LlamaForCausalLM
        d = fresh("transformers")
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        model.save_pretrained(d, max_shard_size="20KB")
        self.assertTrue(os.path.exists(os.path.join(d, "model.safetensors.index.json")))
        self.assertGreater(len([f for f in os.listdir(d) if f.endswith(".safetensors")]), 2)
        state = {k: v for k, v in model.state_dict().items()}
        self.check(state, dump(d), None)
        self.check(state, dump(d, "f32"), torch.float32)

    def test_hostile_files_are_one_line_errors(self):
        d = fresh("hostile")
        save_file({"w": torch.randn(8, 8)}, os.path.join(d, "model.safetensors"))
        path = os.path.join(d, "model.safetensors")
        data = open(path, "rb").read()
        failures = 0
        for cut in range(0, len(data), 7):
            with open(path, "wb") as f:
                f.write(data[:cut])
            proc = subprocess.run([DUMP, f"--model_dir={d}", f"--out={d}/x.json"],
                                             capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, f"truncated at {cut} accepted")
            self.assertIn("model.safetensors", proc.stderr)
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
            failures += 1
        self.assertGreater(failures, 30)

        save_file({"ids": torch.arange(4)}, path)
        proc = subprocess.run([DUMP, f"--model_dir={d}", "--dtype=f32", f"--out={d}/x.json"],
                                         capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn('"ids"', proc.stderr)
        self.assertIn("I64", proc.stderr)


if __name__ == "__main__":
    unittest.main()
