"""spatialid's typed configs against transformers' own config classes.

Each case writes a config.json (with save_pretrained, or by hand in the
shapes hub checkpoints use), loads it with transformers and with
`config_dump`, and compares every field the C++ side reports with
`getattr` on the transformers object (sub-configs recursively, RoPE
dictionaries key by key). It also checks that every `__init__` argument of
each transformers class has a C++ field, so a forgotten field fails.
"""
import copy
import inspect
import json
import os
import random
import shutil
import subprocess
import sys
import unittest

import transformers as T

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import oracle_lib  # noqa: E402

DUMP = oracle_lib.runfile("tests/config/config_dump")

FAMILIES = {
    "llava": T.LlavaConfig,
    "internvl": T.InternVLConfig,
    "qwen2_vl": T.Qwen2VLConfig,
    "qwen2_5_vl": T.Qwen2_5_VLConfig,
    "gemma3": T.Gemma3Config,
    "mllama": T.MllamaConfig,
}
PROCESSORS = {
    "clip": T.CLIPImageProcessor,
    "got_ocr2": T.GotOcr2ImageProcessor,
    "qwen2_vl": T.Qwen2VLImageProcessor,
    "gemma3": T.Gemma3ImageProcessor,
    "mllama": T.MllamaImageProcessor,
}
# __init__ arguments that are not config values (handled by the base class).
NOT_FIELDS = {"self", "kwargs", "text_config", "vision_config", "rope_parameters"}


def fresh(name):
    path = os.path.join(oracle_lib.tmpdir(), name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def cpp_dump(path, family="auto"):
    return json.loads(oracle_lib.run([DUMP, f"--config={path}", f"--family={family}"]).stdout)


def cpp_error(args):
    proc = subprocess.run([DUMP] + args, capture_output=True, text=True)
    assert proc.returncode != 0, f"config_dump accepted {args}: {proc.stdout[:300]}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def write_json(d, obj, name="config.json"):
    with open(os.path.join(d, name), "w") as f:
        json.dump(obj, f, indent=1)


def as_list(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


class Comparer:
    def __init__(self, test):
        self.test = test
        self.count = 0

    def rope(self, cpp, py, where):
        self.test.assertIsInstance(py, dict, where)
        for k, v in cpp.items():
            if v is None:
                self.test.assertIsNone(py.get(k), f"{where}.{k}: C++ has none, transformers {py.get(k)!r}")
            else:
                self.test.assertIn(k, py, f"{where}.{k}: only C++ has it ({v!r})")
                self.value(v, py[k], f"{where}.{k}")
        for k, v in py.items():
            if k == "type":  # the legacy spelling of rope_type, folded into it
                continue
            self.test.assertIsNotNone(cpp.get(k), f"{where}.{k}: transformers has {v!r}, C++ does not")

    def value(self, cpp, py, where):
        self.count += 1
        if isinstance(py, tuple):
            py = list(py)
        if isinstance(py, list) and py and isinstance(py[0], tuple):
            py = [list(x) for x in py]
        if isinstance(py, float) or isinstance(cpp, float):
            self.test.assertIsNotNone(py, where)
            self.test.assertEqual(float(cpp), float(py), where)
        else:
            self.test.assertEqual(cpp, py, where)

    def config(self, cpp, py, where):
        for key, cval in cpp.items():
            w = f"{where}.{key}" if where else key
            if key in ("text_config", "vision_config"):
                self.config(cval, getattr(py, key), w)
                continue
            if key == "rope_parameters":
                pr = py.rope_parameters
                if set(cval) <= {"full_attention", "sliding_attention"} and isinstance(cval.get("full_attention"), dict):
                    for lt, sub in cval.items():
                        self.rope(sub, pr[lt], f"{w}.{lt}")
                else:
                    self.rope(cval, pr, w)
                self.count += 1
                continue
            if key == "dtype":
                pv = getattr(py, "dtype", None)
                self.value(cval, None if pv is None else str(pv).replace("torch.", ""), w)
                continue
            if key in ("eos_token_id", "vision_feature_layer"):
                self.value(cval, as_list(getattr(py, key)), w)
                continue
            if key == "sliding_window_pattern":
                pv = getattr(py, "sliding_window_pattern", None)
                if pv is None:
                    pv = getattr(py, "_sliding_window_pattern")
                self.value(cval, pv, w)
                continue
            self.test.assertTrue(hasattr(py, key), f"{w}: transformers' {type(py).__name__} has no such attribute")
            self.value(cval, getattr(py, key), w)

    def processor(self, cpp, py, where):
        for key, cval in cpp.items():
            w = f"{where}.{key}"
            pv = getattr(py, key, None)
            if key in ("size", "crop_size"):
                self.rope(cval, dict(pv), w)  # same None-tolerant dict comparison
                self.count += 1
            elif key in ("image_mean", "image_std") and not isinstance(pv, (list, tuple)):
                self.value(cval, [pv] * 3, w)
            elif key == "resample":
                self.value(cval, int(pv), w)
            elif key == "image_processor_type":
                continue  # stored in the file, not an attribute
            else:
                self.value(cval, pv, w)


def init_args(cls):
    return [p for p in inspect.signature(cls.__init__).parameters if p not in NOT_FIELDS]


class ConfigOracleTest(unittest.TestCase):
    def compare_dir(self, d, family="auto", cls=None):
        py = (cls or T.AutoConfig).from_pretrained(d)
        cpp = cpp_dump(d, family)
        c = Comparer(self)
        c.config(cpp, py, "")
        return c.count, cpp, py

    def test_defaults_of_every_family(self):
        total = 0
        for name, cls in FAMILIES.items():
            with self.subTest(family=name):
                d = fresh(f"defaults_{name}")
                cls().save_pretrained(d)
                n, cpp, _ = self.compare_dir(d)
                self.assertEqual(cpp["model_type"], cls.model_type)
                total += n
        self.assertGreater(total, 250)

    def test_every_init_argument_has_a_field(self):
        for name, cls in FAMILIES.items():
            d = fresh(f"fields_{name}")
            cls().save_pretrained(d)
            cpp = cpp_dump(d)
            py = cls()
            for part, sub in (("", None), ("text_config", "text_config"), ("vision_config", "vision_config")):
                obj = py if sub is None else getattr(py, sub)
                fields = cpp if sub is None else cpp[sub]
                for arg in init_args(type(obj)):
                    if arg == "num_attention_heads" and type(obj).__name__ == "MllamaVisionConfig":
                        arg = "attention_heads"  # stored under this name
                    with self.subTest(family=name, part=part, arg=arg):
                        self.assertIn(arg, fields, f"{type(obj).__name__}.{arg} has no C++ field")

    def test_non_default_values(self):
        cases = {
            "llava": T.LlavaConfig(
                vision_config={"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3,
                               "num_attention_heads": 4, "image_size": 56, "patch_size": 8,
                               "layer_norm_eps": 3e-6, "hidden_act": "gelu", "projection_dim": 32},
                text_config={"model_type": "llama", "vocab_size": 321, "hidden_size": 48,
                             "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 6,
                             "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-5,
                             "max_position_embeddings": 4096, "rope_theta": 12345.0,
                             "rope_scaling": {"type": "linear", "factor": 2.0},
                             "tie_word_embeddings": True, "pad_token_id": 0, "eos_token_id": [2, 7],
                             "attention_bias": True, "mlp_bias": True},
                image_token_index=320, vision_feature_layer=[-3, -1], vision_feature_select_strategy="full",
                image_seq_length=49, projector_hidden_act="silu", multimodal_projector_bias=False,
                dtype="float16"),
            "internvl": T.InternVLConfig(
                vision_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                               "intermediate_size": 100, "image_size": 112, "patch_size": [16, 16],
                               "norm_type": "rms_norm", "use_qk_norm": True, "attention_bias": True,
                               "layer_scale_init_value": 0.5, "use_mean_pooling": False},
                text_config={"model_type": "qwen2", "vocab_size": 500, "hidden_size": 64,
                             "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4,
                             "num_key_value_heads": None, "use_sliding_window": True, "sliding_window": 64,
                             "max_window_layers": 2, "rope_theta": 1e6,
                             "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}, "bos_token_id": 5},
                image_token_id=499, image_seq_length=64, downsample_ratio=0.25, vision_feature_layer=-2,
                dtype="bfloat16"),
            "qwen2_vl": T.Qwen2VLConfig(
                vision_config={"depth": 3, "embed_dim": 64, "hidden_size": 48, "mlp_ratio": 2.5, "num_heads": 4,
                               "patch_size": 7, "spatial_merge_size": 3, "temporal_patch_size": 1},
                text_config={"vocab_size": 700, "hidden_size": 48, "intermediate_size": 64,
                             "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 3,
                             "rope_parameters": {"rope_type": "default", "rope_theta": 5e5,
                                                 "mrope_section": [2, 3, 3]},
                             "max_position_embeddings": 1000, "eos_token_id": 9},
                image_token_id=600, video_token_id=601, vision_start_token_id=602, vision_end_token_id=603,
                tie_word_embeddings=True),
            "qwen2_5_vl": T.Qwen2_5_VLConfig(
                vision_config={"depth": 4, "hidden_size": 32, "intermediate_size": 40, "num_heads": 2,
                               "out_hidden_size": 48, "window_size": 56, "fullatt_block_indexes": [1, 3],
                               "tokens_per_second": 2, "hidden_act": "gelu"},
                text_config={"vocab_size": 800, "hidden_size": 48, "intermediate_size": 64,
                             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                             "rope_scaling": {"type": "mrope", "mrope_section": [4, 1, 1]},
                             "rope_theta": 250000.0, "rms_norm_eps": 1e-6}),
            "gemma3": T.Gemma3Config(
                text_config={"vocab_size": 1000, "hidden_size": 64, "intermediate_size": 80,
                             "num_hidden_layers": 7, "num_attention_heads": 2, "num_key_value_heads": 1,
                             "head_dim": 32, "sliding_window": 16, "sliding_window_pattern": 3,
                             "query_pre_attn_scalar": 32, "final_logit_softcapping": 30.0,
                             "rope_theta": 2e5, "rope_local_base_freq": 5e3,
                             "rope_scaling": {"rope_type": "linear", "factor": 4.0},
                             "eos_token_id": [1, 106]},
                vision_config={"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                               "num_attention_heads": 2, "image_size": 64, "patch_size": 8},
                mm_tokens_per_image=4, boi_token_index=990, eoi_token_index=991, image_token_index=999),
            "mllama": T.MllamaConfig(
                vision_config={"hidden_size": 32, "num_hidden_layers": 4, "num_global_layers": 2,
                               "num_attention_heads": 2, "intermediate_size": 40, "vision_output_dim": 96,
                               "image_size": 56, "patch_size": 14, "max_num_tiles": 2,
                               "supported_aspect_ratios": [[1, 1], [1, 2], [2, 1]],
                               "intermediate_layers_indices": [0, 2]},
                text_config={"vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 5,
                             "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 48,
                             "cross_attention_layers": [1, 3], "max_position_embeddings": 2048,
                             "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                              "high_freq_factor": 4.0, "original_max_position_embeddings": 512},
                             "eos_token_id": [1, 2, 3]},
                image_token_index=299),
        }
        for name, cfg in cases.items():
            with self.subTest(family=name):
                d = fresh(f"nondefault_{name}")
                cfg.save_pretrained(d)
                n, cpp, py = self.compare_dir(d)
                self.assertGreater(n, 20)
                # Spot checks that the values really are the non-default ones.
                if name == "gemma3":
                    self.assertEqual(cpp["text_config"]["layer_types"][:3],
                                     ["sliding_attention", "sliding_attention", "full_attention"])
                    self.assertEqual(cpp["text_config"]["rope_parameters"]["sliding_attention"]["rope_theta"], 5e3)
                    self.assertEqual(cpp["text_config"]["rope_parameters"]["full_attention"]["factor"], 4.0)
                if name == "mllama":
                    self.assertEqual(cpp["text_config"]["rope_parameters"]["rope_type"], "llama3")
                    self.assertEqual(cpp["vision_config"]["attention_heads"], 2)
                if name == "qwen2_5_vl":
                    self.assertEqual(cpp["text_config"]["rope_parameters"]["mrope_section"], [4, 1, 1])
                    self.assertEqual(cpp["text_config"]["rope_parameters"]["rope_type"], "default")

    def test_hub_style_legacy_files(self):
        """config.json shapes written by transformers 4 (the checkpoints' own files)."""
        cases = {
            "llava": {
                "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100,
                "image_token_index": 32000, "model_type": "llava", "pad_token_id": 32001,
                "projector_hidden_act": "gelu",
                "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                                "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                                "torch_dtype": "float16", "vocab_size": 32064},
                "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
                "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                                  "model_type": "clip_vision_model", "num_attention_heads": 16,
                                  "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768,
                                  "vocab_size": 32000},
                "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064},
            "qwen2_vl": {
                "architectures": ["Qwen2VLForConditionalGeneration"], "attention_dropout": 0.0,
                "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
                "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
                "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 1536, "initializer_range": 0.02,
                "intermediate_size": 8960, "max_position_embeddings": 32768, "max_window_layers": 28,
                "model_type": "qwen2_vl", "num_attention_heads": 12, "num_hidden_layers": 28,
                "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
                "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
                "transformers_version": "4.41.2", "use_cache": True, "use_sliding_window": False,
                "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16,
                                  "in_chans": 3, "hidden_size": 1536, "patch_size": 14,
                                  "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2},
                "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 151936},
            "qwen2_5_vl": {
                "architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0,
                "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
                "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
                "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
                "intermediate_size": 11008, "max_position_embeddings": 128000, "max_window_layers": 70,
                "model_type": "qwen2_5_vl", "num_attention_heads": 16, "num_hidden_layers": 36,
                "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
                "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
                "use_cache": True, "use_sliding_window": False,
                "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280,
                                  "intermediate_size": 3420, "num_heads": 16, "in_chans": 3,
                                  "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2,
                                  "spatial_patch_size": 14, "window_size": 112,
                                  "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
                                  "temporal_patch_size": 2},
                "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 151936},
            "gemma3": {
                "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
                "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
                "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
                "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                                "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                                "sliding_window": 1024},
                "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
                "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                                  "model_type": "siglip_vision_model", "num_attention_heads": 16,
                                  "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False}},
            "mllama": {
                "architectures": ["MllamaForConditionalGeneration"], "image_token_index": 128256,
                "model_type": "mllama",
                "text_config": {"model_type": "mllama_text_model", "vocab_size": 128256, "hidden_size": 4096,
                                "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8,
                                "intermediate_size": 14336, "rope_theta": 500000.0,
                                "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                                 "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                                "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
                                "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16"},
                "torch_dtype": "bfloat16",
                "vision_config": {"model_type": "mllama_vision_model", "attention_heads": 16, "hidden_size": 1280,
                                  "image_size": 560, "max_num_tiles": 4, "num_global_layers": 8,
                                  "num_hidden_layers": 32, "vision_output_dim": 7680,
                                  "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2],
                                                              [3, 1], [4, 1]]}},
            "internvl": {
                "architectures": ["InternVLForConditionalGeneration"], "downsample_ratio": 0.5,
                "image_seq_length": 256, "image_token_id": 151667, "model_type": "internvl",
                "projector_hidden_act": "gelu",
                "text_config": {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
                                "max_position_embeddings": 32768, "max_window_layers": 70, "model_type": "qwen2",
                                "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
                                "rope_scaling": {"factor": 2.0, "rope_type": "dynamic", "type": "dynamic"},
                                "rope_theta": 1000000.0, "sliding_window": 32768, "use_sliding_window": False,
                                "vocab_size": 151674, "bos_token_id": 151643, "eos_token_id": 151645},
                "torch_dtype": "bfloat16",
                "vision_config": {"architectures": ["InternVisionModel"], "hidden_size": 1024, "image_size": [448, 448],
                                  "model_type": "internvl_vision", "num_attention_heads": 16,
                                  "num_hidden_layers": 24, "patch_size": [14, 14], "intermediate_size": 4096,
                                  "layer_scale_init_value": 0.1, "norm_type": "layer_norm"},
                "vision_feature_layer": -1, "vision_feature_select_strategy": "default"},
        }
        for name, obj in cases.items():
            with self.subTest(family=name):
                d = fresh(f"hub_{name}")
                write_json(d, obj)
                n, cpp, py = self.compare_dir(d)
                self.assertGreater(n, 20)
        # Figures the families rely on, straight from the checkpoints' files.
        self.assertEqual(cpp_dump(os.path.join(oracle_lib.tmpdir(), "hub_qwen2_vl"))["text_config"]
                         ["rope_parameters"]["mrope_section"], [16, 24, 24])
        g = cpp_dump(os.path.join(oracle_lib.tmpdir(), "hub_gemma3"))["text_config"]
        self.assertEqual(g["rope_parameters"]["full_attention"]["rope_theta"], 1e6)
        self.assertEqual(g["rope_parameters"]["sliding_attention"]["rope_theta"], 1e4)
        self.assertEqual(g["layer_types"].count("full_attention"), 5)

    def test_random_field_deletions_fall_back_to_transformers_defaults(self):
        rng = random.Random(1234)
        runs = 0
        for name, cls in FAMILIES.items():
            d0 = fresh(f"del_src_{name}")
            cls().save_pretrained(d0)
            with open(os.path.join(d0, "config.json")) as f:
                full = json.load(f)
            for trial in range(4):
                obj = copy.deepcopy(full)
                for part in (obj, obj.get("text_config"), obj.get("vision_config")):
                    if not isinstance(part, dict):
                        continue
                    for k in list(part):
                        if k != "model_type" and rng.random() < 0.6:
                            del part[k]
                if trial == 3:  # a bare file: everything from defaults
                    obj = {"model_type": full["model_type"]}
                with self.subTest(family=name, trial=trial):
                    d = fresh(f"del_{name}_{trial}")
                    write_json(d, obj)
                    self.compare_dir(d)
                    runs += 1
        self.assertEqual(runs, 24)

    def test_wrong_types_and_missing_fields_are_clear_errors(self):
        d = fresh("errors")
        path = os.path.join(d, "config.json")
        cases = [
            ({"model_type": "llava", "text_config": {"hidden_size": "4096"}},
             "config.json: text_config.hidden_size: expected an integer, got \"4096\""),
            ({"model_type": "gemma3", "text_config": {"rope_scaling": {"rope_type": "linear"}}},
             "text_config.rope_parameters.full_attention: rope_type \"linear\" needs factor"),
            ({"model_type": "mllama", "vision_config": {"supported_aspect_ratios": [[1, 2, 3]]}},
             "vision_config.supported_aspect_ratios: each entry must be [rows, cols]"),
            ({"model_type": "qwen2_vl", "use_sliding_window": "no"},
             "config.json: use_sliding_window: expected a boolean, got \"no\""),
            ({"model_type": "internvl", "vision_config": {"image_size": [448]}},
             "vision_config.image_size: expected an integer or a list of 2 integers"),
            ({"model_type": "llava", "vision_config": {"model_type": "siglip_vision_model"}},
             "vision_config.model_type: \"siglip_vision_model\" is not supported here"),
            ({"model_type": "llava", "vision_feature_select_strategy": "cls"},
             "vision_feature_select_strategy: expected \"default\" or \"full\""),
            ({"text_config": {}}, "config.json: model_type: required field is missing"),
            ({"model_type": "bert"}, "model_type \"bert\" is not supported (supported: llava, qwen2_vl, "
                                     "qwen2_5_vl, mllama, internvl, gemma3)"),
            ([1, 2], "config.json: expected a JSON object, got [1,2]"),
            ({"model_type": "gemma3", "text_config": {"layer_types": ["full_attention"]}},
             "text_config.layer_types: 1 entries but num_hidden_layers is 26"),
        ]
        for obj, needle in cases:
            with self.subTest(needle=needle):
                with open(path, "w") as f:
                    json.dump(obj, f)
                msg = cpp_error([f"--config={path}"])
                self.assertIn(needle, msg)
                self.assertIn(path, msg)
        with open(path, "w") as f:
            f.write('{\n  "model_type": "llava",\n  "text_config": {,}\n}\n')
        self.assertIn(f"{path}:3:19: invalid JSON", cpp_error([f"--config={path}"]))
        with open(path, "w") as f:
            json.dump({"model_type": "llava"}, f)
        self.assertIn("model_type: expected \"mllama\", got \"llava\"",
                      cpp_error([f"--config={path}", "--family=mllama"]))
        self.assertIn("cannot open", cpp_error([f"--config={d}/absent"]))


class ProcessorOracleTest(unittest.TestCase):
    def compare(self, kind, d):
        py = PROCESSORS[kind].from_pretrained(d)
        cpp = json.loads(oracle_lib.run([DUMP, f"--preprocessor={d}", f"--processor={kind}"]).stdout)
        c = Comparer(self)
        c.processor(cpp, py, kind)
        for arg in init_args(PROCESSORS[kind]):
            self.assertIn(arg, cpp, f"{kind}: {arg} has no C++ field")
        return c.count, cpp

    def test_defaults_and_non_defaults(self):
        non_default = {
            "clip": dict(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 320}, resample=2,
                         do_center_crop=False, image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6],
                         rescale_factor=0.5, do_convert_rgb=False),
            "got_ocr2": dict(size={"height": 448, "width": 448}, crop_to_patches=True, min_patches=2,
                             max_patches=6, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]),
            "qwen2_vl": dict(min_pixels=3136, max_pixels=12845056, patch_size=16, merge_size=1,
                             temporal_patch_size=1, do_normalize=False),
            "gemma3": dict(size={"height": 896, "width": 896}, do_pan_and_scan=True, pan_and_scan_min_crop_size=128,
                           pan_and_scan_max_num_crops=3, pan_and_scan_min_ratio_to_activate=1.5, resample=3),
            "mllama": dict(size={"height": 560, "width": 560}, max_image_tiles=2, resample=3,
                           do_convert_rgb=False),
        }
        total = 0
        for kind, cls in PROCESSORS.items():
            for label, kw in (("defaults", {}), ("custom", non_default[kind])):
                with self.subTest(kind=kind, values=label):
                    d = fresh(f"pp_{kind}_{label}")
                    cls(**kw).save_pretrained(d)
                    n, cpp = self.compare(kind, d)
                    total += n
        self.assertGreater(total, 100)

    def test_hub_style_files(self):
        files = {
            "clip": {"crop_size": 336, "do_center_crop": True, "do_normalize": True, "do_resize": True,
                     "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
                     "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 336},
            "qwen2_vl": {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                         "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                         "image_std": [0.26862954, 0.26130258, 0.27577711],
                         "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor"},
            "gemma3": {"do_convert_rgb": None, "do_normalize": True, "do_pan_and_scan": None, "do_rescale": True,
                       "do_resize": True, "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Gemma3ImageProcessor",
                       "image_seq_length": 256, "image_std": [0.5, 0.5, 0.5], "pan_and_scan_max_num_crops": None,
                       "pan_and_scan_min_crop_size": None, "pan_and_scan_min_ratio_to_activate": None,
                       "processor_class": "Gemma3Processor", "resample": 2, "rescale_factor": 0.00392156862745098,
                       "size": {"height": 896, "width": 896}},
            "mllama": {"do_convert_rgb": True, "do_normalize": True, "do_pad": True, "do_rescale": True,
                       "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                       "image_processor_type": "MllamaImageProcessor",
                       "image_std": [0.26862954, 0.26130258, 0.27577711], "max_image_tiles": 4, "resample": 2,
                       "rescale_factor": 0.00392156862745098, "size": {"height": 560, "width": 560}},
            "got_ocr2": {"crop_to_patches": False, "do_convert_rgb": True, "do_normalize": True,
                         "do_rescale": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
                         "image_std": [0.229, 0.224, 0.225], "max_patches": 12, "min_patches": 1, "resample": 3,
                         "rescale_factor": 0.00392156862745098, "size": {"height": 448, "width": 448}},
        }
        for kind, obj in files.items():
            with self.subTest(kind=kind):
                d = fresh(f"pp_hub_{kind}")
                write_json(d, obj, "preprocessor_config.json")
                self.compare(kind, d)
        clip_dir = os.path.join(oracle_lib.tmpdir(), "pp_hub_clip")
        cpp = json.loads(oracle_lib.run([DUMP, f"--preprocessor={clip_dir}", "--processor=clip"]).stdout)
        self.assertEqual(cpp["size"]["shortest_edge"], 336)
        self.assertEqual(cpp["crop_size"]["height"], 336)

    def test_processor_errors(self):
        d = fresh("pp_errors")
        path = os.path.join(d, "preprocessor_config.json")
        for kind, obj, needle in [
            ("qwen2_vl", {"size": {"shortest_edge": 10}}, "size: must contain shortest_edge and longest_edge"),
            ("clip", {"crop_size": {"h": 3}}, "crop_size: keys {h} are not one of"),
            ("mllama", {"size": {"shortest_edge": 5}}, "size: must contain height and width"),
            ("mllama", {"do_pad": False}, "do_pad: false is not supported"),
            ("gemma3", {"image_mean": "grey"}, "image_mean: expected a number, got \"grey\""),
        ]:
            with self.subTest(kind=kind):
                write_json(d, obj, "preprocessor_config.json")
                msg = cpp_error([f"--preprocessor={path}", f"--processor={kind}"])
                self.assertIn(needle, msg)
                self.assertIn(path, msg)


if __name__ == "__main__":
    unittest.main()
