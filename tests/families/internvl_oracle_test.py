"""spatialid's InternVL3 family against transformers 5.3.0 (the oracle).

A tiny random-weight InternVLForConditionalGeneration (fixed seed) with every
switch the real InternVL3-*-hf checkpoints use: 448 px tiles of patch 14,
InternViT with LayerNorm, q/k/v biases, layer scale and mean pooling (no final
norm), vision feature layer -1 with the class token dropped, pixel shuffle
0.5 (256 tokens per patch), the LayerNorm/GELU projector, a Qwen2 decoder with
q/k/v biases, grouped key/value heads, dynamic-NTK RoPE (theta 1e6, factor 2)
and tied embeddings (no lm_head in the file). The real Qwen tokenizer files
get <img>, </img>, <IMG_CONTEXT> (and <video>) as special tokens, as the
conversion script adds them; the processor is InternVLProcessor with a
GotOcr2ImageProcessorFast (448, ImageNet mean/std, bicubic, 1..12 patches)
and the 481-byte hub chat template. A second checkpoint turns on the
switches of other InternVL towers (QK-norm, RMSNorm layers, a final
LayerNorm, no q/k/v bias, vision feature layer -1 and -2).

Images: two 720x480 grid-style PNGs (objects on transparency, read with
.convert("RGB"), so a 3x2 grid + thumbnail = 7 patches), an 896x896 one (the
reference's canvas: 2x2 + thumbnail = 5 patches, 1280 image tokens) and an
odd-sized noise image.

The shared checks (tests/python/family_oracle.py) run with InternVL's
parameters: every hidden state in fp32 and bf16 (batch 1 within the bound),
image features, early stopping, the text-only forward, C++ pixels end to
end, naming schemes, the planned forward, the whole extractor against the
reference recipe. InternVL's own: pixels and patch counts against both
GOT-OCR2 processors, tile grids against get_optimal_tiled_canvas, prompt ids
against the processor, the other vision switches, real config spellings and
error reporting.
"""
import json
import os
import random
import shutil
import sys
import unittest

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import family_oracle  # noqa: E402
import oracle_lib  # noqa: E402
from family_oracle import PROMPT_TEXT  # noqa: E402

# The hub's chat_template.jinja (481 bytes; docs/model_facts.md section 1.4).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)
GOT_SETTINGS = dict(do_resize=True, size={"height": 448, "width": 448}, resample=3, do_rescale=True,
                    rescale_factor=1 / 255, do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                    image_std=[0.229, 0.224, 0.225], do_convert_rgb=True, min_patches=1, max_patches=12)
NUM_TEXT_LAYERS = 3
HIDDEN = 64
FP32 = family_oracle.REL_BOUND["float32"]


def make_images(folder):
    """Two 720x480 grid-style RGBA PNGs, an 896x896 one and an odd noise PNG."""
    def blob(size, colour, seed):
        big = Image.new("RGBA", (size * 4, size * 4), (0, 0, 0, 0))
        d = ImageDraw.Draw(big)
        rng = random.Random(seed)
        d.ellipse([size * 0.4, size * 0.9, size * 3.6, size * 3.4], fill=colour)
        for _ in range(3):
            x, y = rng.uniform(0.5, 3.0) * size, rng.uniform(0.3, 2.8) * size
            d.ellipse([x, y, x + size * 0.6, y + size * 0.6], fill=(255, 255, 255, 255))
        return big.resize((size, size), Image.LANCZOS)

    camel, frog = blob(160, (201, 150, 80, 255), 1), blob(120, (60, 170, 70, 255), 2)
    paths = []
    for i, (cx, fx) in enumerate([(30, 520), (500, 40)]):
        canvas = Image.new("RGBA", (720, 480), (0, 0, 0, 0))
        canvas.paste(camel, (cx, 260), mask=camel)
        canvas.paste(frog, (fx, 60 + 80 * i), mask=frog)
        paths.append(os.path.join(folder, f"grid_{i}.png"))
        canvas.save(paths[-1])
    canvas = Image.new("RGBA", (896, 896), (0, 0, 0, 0))
    canvas.paste(camel, (20, 700), mask=camel)
    canvas.paste(frog, (680, 40), mask=frog)
    paths.append(os.path.join(folder, "grid_896.png"))
    canvas.save(paths[-1])
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, size=(333, 999, 3), dtype=np.uint8)  # 3x1 tiles + thumbnail
    noise[40:200, 100:700] = [20, 30, 240]  # a sharp edge across tiles
    paths.append(os.path.join(folder, "noise.png"))
    Image.fromarray(noise).save(paths[-1])
    return paths


def make_tokenizer():
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(
        oracle_lib.tokenizer_dir("qwen3"),
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
    tok.add_tokens(["<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"], special_tokens=True)
    return tok


def build_checkpoint(model_dir, tok, vision_overrides=None, seed=1234, text_overrides=None):
    """A tiny InternVL model, its processor and transformers 5's files in model_dir.

    benchmarks/side_by_side.py --family=internvl builds its larger model here
    too (vision/text overrides)."""
    from transformers import (GotOcr2ImageProcessorFast, InternVLConfig, InternVLForConditionalGeneration,
                              InternVLProcessor, InternVLVideoProcessor, InternVLVisionConfig, Qwen2Config)
    torch.manual_seed(seed)
    vision = dict(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  attention_bias=True, use_qk_norm=False, norm_type="layer_norm", use_mean_pooling=True,
                  image_size=448, patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu",
                  layer_scale_init_value=0.1)
    vision.update(vision_overrides or {})
    feature_layer = vision.pop("vision_feature_layer", -1)
    text = dict(hidden_size=HIDDEN, intermediate_size=160, num_hidden_layers=NUM_TEXT_LAYERS,
                num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tok),
                max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=True,
                rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e6},
                eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
    text.update(text_overrides or {})
    text = Qwen2Config(**text)
    config = InternVLConfig(vision_config=InternVLVisionConfig(**vision), text_config=text,
                            image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5,
                            projector_hidden_act="gelu", vision_feature_layer=feature_layer,
                            vision_feature_select_strategy="default", image_seq_length=256)
    model = InternVLForConditionalGeneration(config).eval()
    # Default init leaves attention near uniform and layer scales, norms and
    # embeddings constant; random values make every weight count.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.mul_(3.0)
            if "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif "norm" in name or "lambda_" in name or "cls_token" in name or "position_embeddings" in name:
                p.copy_(0.5 * torch.randn_like(p))
    model.save_pretrained(model_dir)
    image_processor = GotOcr2ImageProcessorFast(**GOT_SETTINGS)
    processor = InternVLProcessor(image_processor=image_processor, tokenizer=tok,
                                  video_processor=InternVLVideoProcessor(), chat_template=CHAT_TEMPLATE,
                                  image_seq_length=256)
    processor.save_pretrained(model_dir)
    image_processor.save_pretrained(model_dir)  # preprocessor_config.json, as the hub has it
    return model


class InternVLOracleTest(family_oracle.FamilyOracle, unittest.TestCase):
    FAMILY = "internvl"
    NUM_TEXT_LAYERS = NUM_TEXT_LAYERS
    HIDDEN = HIDDEN
    REL_BOUND = {k: family_oracle.REL_BOUND[k] for k in ("float32", "bfloat16")}
    # Batch 1 runs the vision tower over 7 patches as one batch where
    # transformers does too, but the decoder's GEMMs block differently.
    BATCH1 = "bound"
    FEATURE_SHAPE = (14, 256, HIDDEN)
    test_zz_throughput_report = None  # side_by_side.py --family=internvl measures it

    @classmethod
    def prepare(cls):
        cls.model_dir = os.path.join(cls.dir, "tiny-internvl")
        cls.tok = make_tokenizer()
        build_checkpoint(cls.model_dir, cls.tok)
        from transformers import GotOcr2ImageProcessorFast
        cls.processor = cls.load_processor(cls.model_dir, GotOcr2ImageProcessorFast)
        cls.image_token = cls.processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
        cls.images = make_images(cls.dir)
        cls.batch_images = cls.images[:2]
        cls.rgb = [Image.open(p).convert("RGB") for p in cls.images]
        cls.prompt = cls.user_prompt(cls.processor)
        assert cls.prompt == ("<|im_start|>user\n<IMG_CONTEXT>\n" + PROMPT_TEXT +
                              "<|im_end|>\n<|im_start|>assistant\n"), cls.prompt
        # Batch of the two 720x480 grid images (one token layout).
        cls.inputs = cls.processor(images=cls.rgb[:2], text=[cls.prompt, cls.prompt], return_tensors="pt")
        cls.input_ids = cls.inputs["input_ids"]
        cls.pixel_values = cls.inputs["pixel_values"]
        cls.num_patches = [7, 7]
        assert cls.pixel_values.shape[0] == 14, cls.pixel_values.shape
        ids = cls.input_ids[0].tolist()
        tokens = cls.tok.convert_ids_to_tokens(ids)
        cls.targets = {}
        for word in ("frog", "left", "right"):
            last = cls.tok.convert_ids_to_tokens(cls.tok(" " + word, add_special_tokens=False)["input_ids"])[-1]
            cls.targets[word] = tokens.index(last)
        image_positions = [i for i, t in enumerate(ids) if t == cls.image_token]
        assert len(image_positions) == 7 * 256, len(image_positions)
        cls.positions = sorted({0, 1, image_positions[0] - 1, image_positions[0], image_positions[300],
                                image_positions[7 * 256 - 256], image_positions[-1], image_positions[-1] + 1,
                                *cls.targets.values(), len(ids) - 1})
        cls.px_file = cls.save_patches("pixels", cls.pixel_values, cls.num_patches)
        cls.px1_file = cls.save_patches("pixels1", cls.pixel_values[:7], cls.num_patches[:1])
        print(f"\nprompt tokens: {len(ids)}; targets {cls.targets}; positions {cls.positions}")

    @classmethod
    def save_patches(cls, name, pixel_values, num_patches):
        path = os.path.join(cls.dir, name + ".safetensors")
        save_file({"pixel_values": pixel_values.contiguous(),
                   # float32: the C++ safetensors reader takes floating-point tensors.
                   "num_patches": torch.tensor(num_patches, dtype=torch.float32)}, path)
        return path

    def image_token_id(self):
        return self.image_token

    def hf_row_kwargs(self, inputs, b, dtype_name):
        # Each row's own patches, batch 1 per image as the reference runs.
        start = sum(self.num_patches[:b])
        return {"input_ids": inputs["input_ids"][b:b + 1],
                "pixel_values": inputs["pixel_values"][start:start + self.num_patches[b]].to(
                    family_oracle.DTYPES[dtype_name])}

    # -- pixels and prompts ------------------------------------------------

    def test_pixels_match_transformers5_fast_processor(self):
        from transformers import AutoImageProcessor, GotOcr2ImageProcessorFast
        auto = AutoImageProcessor.from_pretrained(self.model_dir)
        self.assertIsInstance(auto, GotOcr2ImageProcessorFast)
        # crop_to_patches=True is what InternVLProcessor passes.
        ref = auto(self.rgb, crop_to_patches=True, return_tensors="pt")
        got, _ = self.cli("px_fast", mode="preprocess", model_dir=self.model_dir, images=",".join(self.images))
        self.assertEqual(got["num_patches"].tolist(), ref["num_patches"].tolist())
        self.assertEqual(got["num_patches"].tolist(), [7, 7, 5, 4])
        diff = float((got["pixel_values"] - ref["pixel_values"]).abs().max())
        print(f"pixels vs GotOcr2ImageProcessorFast: patches {[int(n) for n in got['num_patches'].tolist()]}, "
              f"max abs diff {diff:.3e} over {ref['pixel_values'].numel()} values")
        self.assertEqual(got["pixel_values"].shape, ref["pixel_values"].shape)
        self.assertEqual(diff, 0.0)
        # processor_config.json alone (transformers 5's layout) gives the same settings.
        alt = os.path.join(self.dir, "processor_only")
        shutil.rmtree(alt, ignore_errors=True)
        os.makedirs(alt)
        shutil.copy(os.path.join(self.model_dir, "processor_config.json"), alt)
        got2, _ = self.cli("px_fast2", mode="preprocess", model_dir=alt, images=",".join(self.images))
        self.assertTrue(torch.equal(got2["pixel_values"], got["pixel_values"]))
        # preprocessor_config.json as a transformers 4.52 fast processor wrote
        # it for the hub (crop_to_patches false: InternVLProcessor forces it).
        hub = os.path.join(self.dir, "hub_preprocessor")
        shutil.rmtree(hub, ignore_errors=True)
        os.makedirs(hub)
        with open(os.path.join(hub, "preprocessor_config.json"), "w") as f:
            json.dump({"crop_size": None, "crop_to_patches": False, "data_format": "channels_first",
                       "default_to_square": True, "device": None, "do_center_crop": None, "do_convert_rgb": True,
                       "do_normalize": True, "do_rescale": True, "do_resize": True,
                       "image_mean": [0.485, 0.456, 0.406], "image_processor_type": "GotOcr2ImageProcessorFast",
                       "image_std": [0.229, 0.224, 0.225], "input_data_format": None, "max_patches": 12,
                       "min_patches": 1, "processor_class": "InternVLProcessor", "resample": 3,
                       "rescale_factor": 0.00392156862745098, "return_tensors": None,
                       "size": {"height": 448, "width": 448}}, f)
        got3, _ = self.cli("px_hub", mode="preprocess", model_dir=hub, images=",".join(self.images))
        self.assertTrue(torch.equal(got3["pixel_values"], got["pixel_values"]))

    def test_pixels_match_slow_pillow_processor(self):
        from transformers import GotOcr2ImageProcessor, GotOcr2ImageProcessorFast
        ref = GotOcr2ImageProcessor(**GOT_SETTINGS)(self.rgb, crop_to_patches=True, return_tensors="pt")
        fast = GotOcr2ImageProcessorFast(**GOT_SETTINGS)(self.rgb, crop_to_patches=True, return_tensors="pt")
        got, _ = self.cli("px_slow", mode="preprocess", model_dir=self.model_dir, images=",".join(self.images),
                          resize="pillow")
        self.assertEqual(got["num_patches"].tolist(), ref["num_patches"].tolist())
        diff = float((got["pixel_values"] - ref["pixel_values"]).abs().max())
        gap = float((fast["pixel_values"] - ref["pixel_values"]).abs().max())
        print(f"pixels vs GotOcr2ImageProcessor (Pillow): max abs diff {diff:.3e}; "
              f"fast vs slow processors differ by up to {gap:.3e}")
        self.assertLessEqual(diff, 1e-6)
        self.assertGreater(gap, 1e-3, "the two processors should differ; the test would not tell them apart")

    def test_tile_grids_match_transformers(self):
        from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas
        rng = random.Random(3)
        cases = [[896, 896, 1, 12], [448, 448, 1, 12], [480, 720, 1, 12], [1, 5000, 1, 12], [5000, 1, 1, 12],
                 [300, 900, 1, 12], [224, 224, 1, 12], [897, 896, 1, 12], [600, 800, 2, 6], [896, 896, 1, 1],
                 [1000, 1000, 4, 9], [100, 300, 1, 3]]
        cases += [[rng.randint(1, 3000), rng.randint(1, 3000), rng.randint(1, 4), rng.randint(4, 16)]
                  for _ in range(400)]
        path = os.path.join(self.dir, "grids.json")
        with open(path, "w") as f:
            json.dump(cases, f)
        ours = json.loads(oracle_lib.run([self.tool, "--mode=grids", f"--request={path}"]).stdout.strip())
        ref = [list(get_optimal_tiled_canvas((h, w), (448, 448), lo, hi)) for h, w, lo, hi in cases]
        mismatches = [(c, o, r) for c, o, r in zip(cases, ours, ref) if o != r]
        print(f"tile grids: {len(cases) - len(mismatches)} of {len(cases)} match get_optimal_tiled_canvas")
        self.assertEqual(mismatches, [])
        self.assertEqual(ours[0], [2, 2])

    def test_prompt_ids_match_processor(self):
        """Template + the image expansion + tokenizer == InternVLProcessor's ids."""
        for index, expect_patches in ((0, 7), (2, 5)):
            got = self.cli_json(mode="prompt", model_dir=self.model_dir, question=PROMPT_TEXT,
                                images=self.images[index])
            ref = self.processor(images=[self.rgb[index]], text=[self.prompt], return_tensors="pt")
            ref_ids = ref["input_ids"][0].tolist()
            self.assertEqual(got["num_patches"], [expect_patches])
            self.assertEqual(got["tokens_per_image"], 256 * expect_patches)
            self.assertEqual(ref_ids.count(self.image_token), 256 * expect_patches)
            self.assertEqual(got["image_token_id"], self.image_token)
            self.assertEqual(got["ids"], ref_ids, f"image {index}: ids differ from InternVLProcessor's")
            print(f"prompt ids for {os.path.basename(self.images[index])} ({self.rgb[index].size[0]}x"
                  f"{self.rgb[index].size[1]}): {len(ref_ids)} ids equal the processor's; "
                  f"{got['tokens_per_image']} image tokens")
        self.assertEqual(got["tokens_per_image"], 1280, "an 896x896 image must give 1280 image tokens")

    # -- hidden states -----------------------------------------------------

    def early_stop_cases(self):
        frog = self.targets["frog"]
        first_image = self.positions[3]
        # The last case ends before the image: the vision tower is skipped.
        return [([frog], [0, 2]), ([frog, first_image], [1]), ([first_image], [NUM_TEXT_LAYERS]), ([1], [0, 1])]

    def test_text_only_forward(self):
        prompt = self.user_prompt(self.processor, with_image=False)
        self.assertEqual(prompt, "<|im_start|>user\n" + PROMPT_TEXT + "<|im_end|>\n<|im_start|>assistant\n")
        text_ids = self.processor.tokenizer(prompt, return_tensors="pt")["input_ids"]
        n = text_ids.shape[1]
        self.check_text_only(text_ids, [0, n // 2, n - 1])

    def test_cpp_pixels_end_to_end(self):
        """Images -> C++ processor -> forward equals transformers' processor -> model."""
        got = self.check_cpp_pixels()
        self.assertEqual(got["num_patches"].tolist(), self.num_patches)
        self.assertTrue(torch.equal(got["pixel_values"], self.inputs["pixel_values"]))

    def test_other_vision_switches(self):
        """QK-norm, RMSNorm layers, a final LayerNorm, no q/k/v bias; feature layers -1 and -2."""
        for layer in (-1, -2):
            folder = os.path.join(self.dir, f"variant_{-layer}")
            shutil.rmtree(folder, ignore_errors=True)
            build_checkpoint(folder, self.tok, seed=99, vision_overrides=dict(
                use_qk_norm=True, norm_type="rms_norm", use_mean_pooling=False, attention_bias=False,
                layer_norm_eps=1e-5, vision_feature_layer=layer))
            names = load_file(os.path.join(folder, "model.safetensors"))
            self.assertIn("vision_tower.layernorm.weight", names)
            self.assertIn("vision_tower.encoder.layer.0.attention.q_norm.weight", names)
            self.assertNotIn("vision_tower.encoder.layer.0.attention.q_proj.bias", names)
            layers = list(range(NUM_TEXT_LAYERS + 1)) if layer == -1 else [0]
            got, _ = self.run_forward("float32", self.positions, layers, f"variant_{-layer}", model_dir=folder,
                                      image_features=True)
            feats = self.hf_image_features(self.inputs, folder)
            self.compare(got["image_features"].unsqueeze(0), feats.unsqueeze(0),
                         f"variant (feature layer {layer}) image features fp32", FP32)
            if layer == -1:  # the decoder is the same for both; check it once
                ref = self.hf_hidden("float32", model_dir=folder)[:, :, self.positions]
                self.compare(got["hidden_states"], ref, f"variant (feature layer {layer}) hidden states fp32", FP32)

    # -- checkpoints and configs -------------------------------------------

    def test_checkpoint_naming_schemes(self):
        """Hub/save_pretrained, module (>= 4.52) and bare InternVLModel names load alike."""
        weights = self.check_naming_schemes(
            renames={
                "module": [("language_model.model.", "model.language_model."),
                           ("vision_tower.", "model.vision_tower."),
                           ("multi_modal_projector.", "model.multi_modal_projector.")],
                "bare": [("language_model.model.", "language_model.")],
            },
            # An untied head, as the big checkpoints have.
            untied_head=("module", "language_model.model.embed_tokens.weight"),
            sharded=True,
            missing=["vision_tower.encoder.layer.1.lambda_2"],
            needles="missing (vision_tower.encoder.layer.1.lambda_2)")
        self.assertIn("language_model.model.embed_tokens.weight", weights, "save_pretrained naming changed")
        self.assertFalse(any("lm_head" in k for k in weights), "tied embeddings: no lm_head in the file")

    def test_real_internvl3_configs_resolve_like_transformers(self):
        """config.json spelled as the 4.52-era hub files are (rope_scaling, torch_dtype)."""
        from transformers import InternVLConfig
        sizes = {"1b": (896, 24, 14, 2, 4864, 151674), "8b": (3584, 28, 28, 4, 18944, 151674),
                 "14b": (5120, 48, 40, 8, 13824, 151674)}
        for name, (hidden, layers, heads, kv, inter, vocab) in sizes.items():
            text = {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
                    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": hidden,
                    "initializer_range": 0.02, "intermediate_size": inter, "max_position_embeddings": 32768,
                    "max_window_layers": 70, "model_type": "qwen2", "num_attention_heads": heads,
                    "num_hidden_layers": layers, "num_key_value_heads": kv, "rms_norm_eps": 1e-06,
                    "rope_scaling": {"factor": 2.0, "rope_type": "dynamic", "type": "dynamic"},
                    "rope_theta": 1000000.0, "sliding_window": None, "torch_dtype": "bfloat16",
                    "use_cache": True, "use_sliding_window": False, "vocab_size": vocab}
            vision = {"architectures": ["InternVisionModel"], "attention_bias": True, "attention_dropout": 0.0,
                      "dropout": 0.0, "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": 1024,
                      "image_size": [448, 448], "initializer_factor": 0.1, "initializer_range": 1e-10,
                      "intermediate_size": 4096, "layer_norm_eps": 1e-06, "layer_scale_init_value": 0.1,
                      "model_type": "internvl_vision", "norm_type": "layer_norm", "num_attention_heads": 16,
                      "num_channels": 3, "num_hidden_layers": 24, "patch_size": [14, 14],
                      "projection_dropout": 0.0, "torch_dtype": "bfloat16", "use_absolute_position_embeddings": True,
                      "use_mask_token": False, "use_mean_pooling": True, "use_qk_norm": False}
            cfg = {"architectures": ["InternVLForConditionalGeneration"], "downsample_ratio": 0.5,
                   "image_seq_length": 256, "image_token_id": 151667, "model_type": "internvl",
                   "projector_hidden_act": "gelu", "text_config": text, "torch_dtype": "bfloat16",
                   "transformers_version": "4.52.0.dev0", "vision_config": vision, "vision_feature_layer": -1,
                   "vision_feature_select_strategy": "default"}
            folder = self.write_config(f"real_config_{name}", cfg)
            ours = self.cli_json(mode="config", model_dir=folder)
            hf = InternVLConfig.from_pretrained(folder)
            t, v = hf.text_config, hf.vision_config
            rope = t.rope_parameters
            expect = {"num_layers": t.num_hidden_layers, "hidden_size": t.hidden_size,
                      "intermediate_size": t.intermediate_size, "num_heads": t.num_attention_heads,
                      "num_kv_heads": t.num_key_value_heads, "head_dim": t.hidden_size // t.num_attention_heads,
                      "vocab_size": t.vocab_size, "rms_norm_eps": t.rms_norm_eps,
                      "rope_theta": rope["rope_theta"], "rope_dynamic": rope["rope_type"] == "dynamic",
                      "rope_factor": rope["factor"], "max_position_embeddings": t.max_position_embeddings,
                      "vision_layers": v.num_hidden_layers, "vision_hidden_size": v.hidden_size,
                      "image_size": v.image_size[0], "patch_size": v.patch_size[0], "use_qk_norm": v.use_qk_norm,
                      "use_mean_pooling": v.use_mean_pooling,
                      "tokens_per_patch": int((v.image_size[0] // v.patch_size[0]) * hf.downsample_ratio) ** 2,
                      "image_token_id": hf.image_token_id, "dtype": "BFloat16",
                      "vision_feature_layer": [hf.vision_feature_layer]}
            self.assertEqual(ours, expect, name)
            print(f"internvl-{name} config: {ours['num_layers']} layers x {ours['hidden_size']}, rope theta "
                  f"{ours['rope_theta']:.0f} dynamic x{ours['rope_factor']}, {ours['tokens_per_patch']} tokens "
                  f"per patch, {ours['dtype']}")

    def test_bad_inputs_are_errors(self):
        # Image-token count that does not match the images.
        ids = self.input_ids[:, :-1].clone()
        ids[:, self.positions[3]] = 1
        req = self.request("bad", ids, [0], [0])
        self.cli_error("bad", "sequence 0 holds 1791 image tokens", model_dir=self.model_dir, request=req,
                       pixels=self.px_file)
        # Patches that do not add up to the pixels.
        wrong = self.save_patches("pixels_wrong", self.pixel_values, [7, 6])
        req = self.request("bad1", self.input_ids, [0], [0])
        self.cli_error("bad1", "num_patches adds up to 13 but pixel_values holds 14", model_dir=self.model_dir,
                       request=req, pixels=wrong)
        # A position past the end.
        req = self.request("bad2", self.input_ids, [self.input_ids.shape[1]], [0])
        self.cli_error("bad2", "outside the sequence", model_dir=self.model_dir, request=req, pixels=self.px_file)
        # A checkpoint of another family.
        other, cfg = self.check_other_family_refused("llava", 'model_type: expected "internvl", got "llava"',
                                                     request=req, pixels=self.px_file)
        # Sliding-window attention is refused with a message naming the file.
        cfg["model_type"] = "internvl"
        cfg["text_config"]["use_sliding_window"] = True
        cfg["text_config"]["sliding_window"] = 4096
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.cli_error("sliding", "config.json: text_config: use_sliding_window is on", model_dir=other,
                       request=req, pixels=self.px_file)


if __name__ == "__main__":
    unittest.main()
