"""Regenerates the committed seed corpora and dictionaries under fuzz/.

Run with the project venv: `$SPATIALID_PYTHON fuzz/make_seed_corpus.py`.
Seeds are small valid inputs (and a few near-misses) so libFuzzer starts
from the formats' real structure instead of random bytes.
"""
import json
import os
import shutil
import struct
import tempfile

import torch
from safetensors.torch import save

import transformers as T

HERE = os.path.dirname(os.path.abspath(__file__))


def reset(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def safetensors_seeds():
    out = os.path.join(HERE, "corpus", "safetensors_header_fuzzer")
    reset(out)
    g = torch.Generator().manual_seed(0)
    files = {
        "f32_matrix": save({"w": torch.randn(2, 3, generator=g)}),
        "mixed_dtypes": save({"a": torch.randn(3, generator=g), "b": torch.randn(2, 2, generator=g).half(),
                              "c": torch.randn(1, generator=g).bfloat16()}, metadata={"format": "pt"}),
        "scalar_and_empty": save({"s": torch.tensor(1.5), "e": torch.zeros(0, 3)}),
        "int_dtypes": save({"i": torch.arange(3), "u": torch.zeros(2, dtype=torch.uint8),
                            "b": torch.ones(2, dtype=torch.bool)}),
    }

    def raw(header, data=b""):
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + data

    files["overlap"] = raw({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)
    files["wrong_length"] = raw({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 4]}}, b"\0" * 4)
    files["truncated"] = files["f32_matrix"][:-5]
    for name, blob in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


def config_seeds():
    out = os.path.join(HERE, "corpus", "config_json_fuzzer")
    reset(out)
    keys = set()
    small = dict(num_hidden_layers=2)
    configs = {
        "llava": T.LlavaConfig(text_config={"model_type": "llama", **small,
                                            "rope_scaling": {"rope_type": "linear", "factor": 2.0}}),
        "internvl": T.InternVLConfig(text_config={"model_type": "qwen2", **small, "use_sliding_window": True,
                                                  "max_window_layers": 1}),
        "qwen2_vl": T.Qwen2VLConfig(text_config={**small, "rope_scaling": {"type": "mrope",
                                                                            "mrope_section": [16, 24, 24]}}),
        "qwen2_5_vl": T.Qwen2_5_VLConfig(text_config=small),
        "gemma3": T.Gemma3Config(text_config={**small, "sliding_window_pattern": 2}),
        "mllama": T.MllamaConfig(text_config={**small, "cross_attention_layers": [1],
                                              "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0}}),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in configs.items():
            d = os.path.join(tmp, name)
            cfg.save_pretrained(d)
            with open(os.path.join(d, "config.json")) as f:
                obj = json.load(f)
            # Drop bulky generic fields so seeds stay small.
            for part in (obj, obj.get("text_config", {}), obj.get("vision_config", {})):
                for k in ("id2label", "label2id", "transformers_version", "architectures", "_name_or_path"):
                    part.pop(k, None)
            text = json.dumps(obj, separators=(",", ":"))
            with open(os.path.join(out, f"config_{name}.json"), "w") as f:
                f.write(text)
            collect_keys(obj, keys)
        processors = {
            "clip": T.CLIPImageProcessor(size={"shortest_edge": 336}, crop_size=336),
            "got_ocr2": T.GotOcr2ImageProcessor(size={"height": 448, "width": 448}, crop_to_patches=True),
            "qwen2_vl": T.Qwen2VLImageProcessor(min_pixels=3136, max_pixels=12845056),
            "gemma3": T.Gemma3ImageProcessor(size={"height": 896, "width": 896}),
            "mllama": T.MllamaImageProcessor(size={"height": 560, "width": 560}),
        }
        for name, p in processors.items():
            d = os.path.join(tmp, "pp_" + name)
            p.save_pretrained(d)
            with open(os.path.join(d, "preprocessor_config.json")) as f:
                obj = json.load(f)
            with open(os.path.join(out, f"preprocessor_{name}.json"), "w") as f:
                f.write(json.dumps(obj, separators=(",", ":")))
            collect_keys(obj, keys)
    legacy = {"model_type": "qwen2_vl", "hidden_size": 64, "num_hidden_layers": 2, "rope_theta": 1e6,
              "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "vision_config": {"depth": 2}}
    with open(os.path.join(out, "legacy_qwen2_vl.json"), "w") as f:
        f.write(json.dumps(legacy, separators=(",", ":")))
    keys |= {"rope_scaling", "rope_theta", "rope_local_base_freq", "type", "mrope_section", "factor",
             "low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "full_attention",
             "sliding_attention", "image_token_id", "boi_token_id", "eoi_token_id", "torch_dtype",
             "min_pixels", "max_pixels", "shortest_edge", "longest_edge", "height", "width", "max_height",
             "max_width", "num_attention_heads", "attention_heads", "short_factor", "long_factor"}
    with open(os.path.join(HERE, "dicts", "config_json.dict"), "w") as f:
        f.write("# Keys and tokens of config.json / preprocessor_config.json (fuzz/make_seed_corpus.py).\n")
        for tok in ["{", "}", "[", "]", ":", ",", "null", "true", "false", "-1", "0", "1e308", "4096",
                    "\"llava\"", "\"internvl\"", "\"qwen2_vl\"", "\"qwen2_5_vl\"", "\"gemma3\"", "\"mllama\"",
                    "\"linear\"", "\"llama3\"", "\"dynamic\"", "\"yarn\"", "\"longrope\"", "\"mrope\"",
                    "\"full_attention\"", "\"sliding_attention\""]:
            f.write(json.dumps(tok) + "\n")
        for k in sorted(keys):
            f.write(json.dumps(json.dumps(k)) + "\n")


def collect_keys(obj, keys):
    if isinstance(obj, dict):
        for k, v in obj.items():
            keys.add(k)
            collect_keys(v, keys)
    elif isinstance(obj, list):
        for v in obj:
            collect_keys(v, keys)


def safetensors_dict():
    with open(os.path.join(HERE, "dicts", "safetensors_header.dict"), "w") as f:
        f.write("# Tokens of safetensors headers (fuzz/make_seed_corpus.py).\n")
        for tok in ["\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"format\"", "\"pt\"",
                    "\"F32\"", "\"F16\"", "\"BF16\"", "\"I64\"", "\"U8\"", "\"BOOL\"", "\"F8_E4M3\"", "\"F64\"",
                    "[0,0]", "[]", "18446744073709551615", "9223372036854775807", "4294967296", "-1"]:
            f.write(json.dumps(tok) + "\n")


if __name__ == "__main__":
    safetensors_seeds()
    safetensors_dict()
    config_seeds()
    print("seed corpora and dictionaries written under", HERE)
