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
odd-sized noise image. Checks: pixels and patch counts against both
GOT-OCR2 processors, tile grids against get_optimal_tiled_canvas, prompt ids
against the processor, every hidden state at several positions in fp32 and
bf16, image features, early stopping, the text-only forward, checkpoint
naming schemes, real config spellings and error reporting.
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
import oracle_lib  # noqa: E402

CLI = oracle_lib.runfile("tests/families/internvl_forward_cli")
PROMPT_TEXT = "Is the frog to the left or right of the camel?"
# The hub's chat_template.jinja (481 bytes; MODELS.md section 1.4).
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
# fp32 must agree to 1e-4 of the activation scale (DESIGN.md); bf16 to the
# stated looser bound, against transformers run in bf16.
REL_BOUND = {"float32": 1e-4, "bfloat16": 2e-2}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


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


def scale_of(t):
    return max(float(t.abs().max()), 1e-12)


class InternVLOracleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.dir = os.path.join(oracle_lib.tmpdir(), "internvl_oracle")
        shutil.rmtree(cls.dir, ignore_errors=True)
        os.makedirs(cls.dir)
        cls.model_dir = os.path.join(cls.dir, "tiny-internvl")
        cls.tok = make_tokenizer()
        cls.model = build_checkpoint(cls.model_dir, cls.tok)
        from transformers import AutoProcessor, GotOcr2ImageProcessorFast
        cls.processor = AutoProcessor.from_pretrained(cls.model_dir)
        assert isinstance(cls.processor.image_processor, GotOcr2ImageProcessorFast)
        cls.image_token_id = cls.model.config.image_token_id
        cls.images = make_images(cls.dir)
        cls.rgb = [Image.open(p).convert("RGB") for p in cls.images]
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT_TEXT}]}]
        cls.prompt = cls.processor.apply_chat_template(messages, add_generation_prompt=True)
        assert cls.prompt == ("<|im_start|>user\n<IMG_CONTEXT>\n" + PROMPT_TEXT +
                              "<|im_end|>\n<|im_start|>assistant\n"), cls.prompt
        # Batch of the two 720x480 grid images (one token layout).
        inputs = cls.processor(images=cls.rgb[:2], text=[cls.prompt, cls.prompt], return_tensors="pt")
        cls.input_ids = inputs["input_ids"]
        cls.pixel_values = inputs["pixel_values"]
        cls.num_patches = [7, 7]
        assert cls.pixel_values.shape[0] == 14, cls.pixel_values.shape
        ids = cls.input_ids[0].tolist()
        tokens = cls.tok.convert_ids_to_tokens(ids)
        cls.targets = {}
        for word in ("frog", "left", "right"):
            last = cls.tok.convert_ids_to_tokens(cls.tok(" " + word, add_special_tokens=False)["input_ids"])[-1]
            cls.targets[word] = tokens.index(last)
        image_positions = [i for i, t in enumerate(ids) if t == cls.image_token_id]
        assert len(image_positions) == 7 * 256, len(image_positions)
        cls.positions = sorted({0, 1, image_positions[0] - 1, image_positions[0], image_positions[300],
                                image_positions[7 * 256 - 256], image_positions[-1], image_positions[-1] + 1,
                                *cls.targets.values(), len(ids) - 1})
        cls.px_file = cls.save_pixels("pixels", cls.pixel_values, cls.num_patches)
        cls.px1_file = cls.save_pixels("pixels1", cls.pixel_values[:7], cls.num_patches[:1])
        cls.hf_cache = {}
        print(f"\nprompt tokens: {len(ids)}; targets {cls.targets}; positions {cls.positions}")

    # -- helpers -----------------------------------------------------------

    @classmethod
    def save_pixels(cls, name, pixel_values, num_patches):
        path = os.path.join(cls.dir, name + ".safetensors")
        save_file({"pixel_values": pixel_values.contiguous(),
                   # float32: the C++ safetensors reader takes floating-point tensors.
                   "num_patches": torch.tensor(num_patches, dtype=torch.float32)}, path)
        return path

    def cli(self, name, **flags):
        out = os.path.join(self.dir, name + ".safetensors")
        args = [CLI, f"--out={out}", "--threads=2"]
        for k, v in flags.items():
            args.append(f"--{k}" if v is True else f"--{k}={v}")
        proc = oracle_lib.run(args)
        return (load_file(out) if os.path.exists(out) else None), proc.stdout

    def cli_json(self, **flags):
        args = [CLI] + [f"--{k}={v}" for k, v in flags.items()]
        return json.loads(oracle_lib.run(args).stdout.strip().splitlines()[-1])

    def request(self, name, input_ids, positions, layers):
        path = os.path.join(self.dir, name + ".json")
        with open(path, "w") as f:
            json.dump({"input_ids": input_ids.tolist(), "positions": list(positions),
                       "layers": list(layers)}, f)
        return path

    def hf_hidden(self, dtype_name, text_only=False, model_dir=None, pixel_values=None, input_ids=None):
        """transformers' hidden states, batch 1 per image as the reference runs."""
        model_dir = model_dir or self.model_dir
        key = (dtype_name, text_only, model_dir)
        if key not in self.hf_cache:
            from transformers import InternVLForConditionalGeneration
            model = InternVLForConditionalGeneration.from_pretrained(model_dir, dtype=DTYPES[dtype_name]).eval()
            pixel_values = self.pixel_values if pixel_values is None else pixel_values
            input_ids = self.input_ids if input_ids is None else input_ids
            rows = []
            with torch.no_grad():
                if text_only:
                    out = model(input_ids=self.text_ids, output_hidden_states=True)
                    rows.append(torch.stack(out.hidden_states)[:, 0])
                else:
                    start = 0
                    for b in range(input_ids.shape[0]):
                        n = self.num_patches[b]
                        out = model(input_ids=input_ids[b:b + 1],
                                    pixel_values=pixel_values[start:start + n].to(DTYPES[dtype_name]),
                                    output_hidden_states=True)
                        start += n
                        rows.append(torch.stack(out.hidden_states)[:, 0])
            self.hf_cache[key] = torch.stack(rows, 1)  # [layers, batch, seq, hidden]
        return self.hf_cache[key]

    def compare(self, ours, ref, label, rel_bound):
        """Per hidden state: max |diff| against rel_bound x max |activation|."""
        worst_abs, worst_rel = 0.0, 0.0
        for layer in range(ref.shape[0]):
            diff = float((ours[layer].float() - ref[layer].float()).abs().max())
            rel = diff / scale_of(ref[layer].float())
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
            self.assertLessEqual(rel, rel_bound, f"{label}: state {layer}: max abs diff {diff:.3e} is "
                                 f"{rel:.2e} of the scale {scale_of(ref[layer].float()):.3e}")
        print(f"{label}: worst max-abs diff {worst_abs:.3e}, worst relative {worst_rel:.3e} (bound {rel_bound:.0e})")
        return worst_abs, worst_rel

    def run_forward(self, dtype_name, positions, layers, name, model_dir=None, px_file=None, **extra):
        req = self.request(name, self.input_ids, positions, layers)
        flags = dict(model_dir=model_dir or self.model_dir, request=req, dtype=dtype_name)
        if not extra.pop("text_only", False):
            flags["pixels"] = px_file or self.px_file
        else:
            flags["text_only"] = True
        flags.update(extra)
        return self.cli(name, **flags)

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
        ours = json.loads(oracle_lib.run([CLI, "--mode=grids", f"--request={path}"]).stdout.strip())
        ref = [list(get_optimal_tiled_canvas((h, w), (448, 448), lo, hi)) for h, w, lo, hi in cases]
        mismatches = [(c, o, r) for c, o, r in zip(cases, ours, ref) if o != r]
        print(f"tile grids: {len(cases) - len(mismatches)} of {len(cases)} match get_optimal_tiled_canvas")
        self.assertEqual(mismatches, [])
        self.assertEqual(ours[0], [2, 2])

    def test_prompt_ids_match_processor(self):
        """Template + ImagePromptFor expansion + tokenizer == InternVLProcessor's ids."""
        for index, expect_patches in ((0, 7), (2, 5)):
            got = self.cli_json(mode="prompt", model_dir=self.model_dir, images=self.images[index])
            ref = self.processor(images=[self.rgb[index]], text=[self.prompt], return_tensors="pt")
            ref_ids = ref["input_ids"][0].tolist()
            self.assertEqual(got["num_patches"], [expect_patches])
            self.assertEqual(got["tokens_per_image"], 256 * expect_patches)
            self.assertEqual(ref_ids.count(self.image_token_id), 256 * expect_patches)
            self.assertEqual(got["image_token_id"], self.image_token_id)
            self.assertEqual(got["ids"], ref_ids, f"image {index}: ids differ from InternVLProcessor's")
            print(f"prompt ids for {os.path.basename(self.images[index])} ({self.rgb[index].size[0]}x"
                  f"{self.rgb[index].size[1]}): {len(ref_ids)} ids equal the processor's; "
                  f"{got['tokens_per_image']} image tokens")
        self.assertEqual(got["tokens_per_image"], 1280, "an 896x896 image must give 1280 image tokens")

    def test_extractor_pipeline_matches_transformers(self):
        """extract::Extractor<InternVL>: prompt, targets and rows as the reference computes them."""
        out = os.path.join(self.dir, "extract.safetensors")
        proc = oracle_lib.run([CLI, "--mode=extract", f"--model_dir={self.model_dir}", "--dtype=float32",
                               f"--images={','.join(self.images[:2])}", f"--out={out}", "--threads=2"])
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(info["ids"], self.input_ids[0].tolist())
        got = load_file(out)
        ref = self.hf_hidden("float32")
        for word, position in self.targets.items():
            self.assertEqual(info["positions"][word], [position], word)
            self.assertEqual(tuple(got[f"target_{word}"].shape), (NUM_TEXT_LAYERS + 1, 2, HIDDEN))
            self.compare(got[f"target_{word}"].unsqueeze(2), ref[:, :, [position]],
                         f"extractor '{word}' fp32", REL_BOUND["float32"])

    # -- hidden states -----------------------------------------------------

    def check_dtype(self, dtype_name):
        layers = list(range(NUM_TEXT_LAYERS + 1))
        ref = self.hf_hidden(dtype_name)[:, :, self.positions]
        got, _ = self.run_forward(dtype_name, self.positions, layers, f"fwd_{dtype_name}")
        ours = got["hidden_states"]
        self.assertEqual(ours.dtype, DTYPES[dtype_name])
        self.assertEqual(tuple(ours.shape), (len(layers), 2, len(self.positions), HIDDEN))
        self.compare(ours, ref, f"hidden states {dtype_name}, batch 2", REL_BOUND[dtype_name])
        # Batch 1, as the reference runs it.
        req = self.request(f"b1_{dtype_name}", self.input_ids[:1], self.positions, layers)
        one, _ = self.cli(f"b1_{dtype_name}", model_dir=self.model_dir, request=req, dtype=dtype_name,
                          pixels=self.px1_file)
        mismatches = int((one["hidden_states"] != ref[:, :1]).sum())
        print(f"hidden states {dtype_name}, batch 1: {mismatches} of {ref[:, :1].numel()} values differ "
              f"from transformers")
        self.compare(one["hidden_states"], ref[:, :1], f"hidden states {dtype_name}, batch 1",
                     REL_BOUND[dtype_name])

    def test_hidden_states_fp32(self):
        self.check_dtype("float32")

    def test_hidden_states_bf16(self):
        self.check_dtype("bfloat16")

    def test_image_features_fp32(self):
        got, _ = self.run_forward("float32", [self.targets["frog"]], [NUM_TEXT_LAYERS], "feat",
                                  image_features=True)
        with torch.no_grad():
            ref = self.model.model.get_image_features(pixel_values=self.pixel_values).pooler_output
        self.assertEqual(tuple(got["image_features"].shape), (14, 256, HIDDEN))
        self.compare(got["image_features"].unsqueeze(0), ref.unsqueeze(0), "image features fp32",
                     REL_BOUND["float32"])

    def test_stopping_early_changes_nothing(self):
        full, _ = self.run_forward("float32", self.positions, list(range(NUM_TEXT_LAYERS + 1)), "full")
        frog = self.targets["frog"]
        first_image = self.positions[3]
        # The last case ends before the image: the vision tower is skipped.
        cases = [([frog], [0, 2]), ([frog, first_image], [1]), ([first_image], [NUM_TEXT_LAYERS]), ([1], [0, 1])]
        worst = 0.0
        for positions, layers in cases:
            part, _ = self.run_forward("float32", positions, layers, "part")
            cols = [self.positions.index(p) for p in positions]
            expect = full["hidden_states"][layers][:, :, cols]
            diff = float((part["hidden_states"] - expect).abs().max())
            worst = max(worst, diff / scale_of(expect))
        print(f"early stop vs full forward: worst relative diff {worst:.3e}")
        self.assertLessEqual(worst, 1e-5)

    def test_text_only_forward(self):
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        self.assertEqual(prompt, "<|im_start|>user\n" + PROMPT_TEXT + "<|im_end|>\n<|im_start|>assistant\n")
        type(self).text_ids = self.processor.tokenizer(prompt, return_tensors="pt")["input_ids"]
        n = self.text_ids.shape[1]
        positions = [0, n // 2, n - 1]
        req = self.request("text", self.text_ids, positions, range(NUM_TEXT_LAYERS + 1))
        got, _ = self.cli("text", model_dir=self.model_dir, request=req, dtype="float32", text_only=True)
        ref = self.hf_hidden("float32", text_only=True)[:, :, positions]
        self.compare(got["hidden_states"], ref, "text-only fp32", REL_BOUND["float32"])

    def test_cpp_pixels_end_to_end(self):
        """Images -> C++ processor -> forward equals transformers' processor -> model."""
        req = self.request("e2e", self.input_ids, self.positions, [0, NUM_TEXT_LAYERS])
        got, _ = self.cli("e2e", model_dir=self.model_dir, request=req, dtype="float32",
                          images=",".join(self.images[:2]))
        self.assertEqual(got["num_patches"].tolist(), self.num_patches)
        ref = self.hf_hidden("float32")[[0, NUM_TEXT_LAYERS]][:, :, self.positions]
        self.compare(got["hidden_states"], ref, "end to end fp32", REL_BOUND["float32"])

    def test_other_vision_switches(self):
        """QK-norm, RMSNorm layers, a final LayerNorm, no q/k/v bias; feature layers -1 and -2."""
        for layer in (-1, -2):
            folder = os.path.join(self.dir, f"variant_{-layer}")
            shutil.rmtree(folder, ignore_errors=True)
            model = build_checkpoint(folder, self.tok, seed=99, vision_overrides=dict(
                use_qk_norm=True, norm_type="rms_norm", use_mean_pooling=False, attention_bias=False,
                layer_norm_eps=1e-5, vision_feature_layer=layer))
            names = load_file(os.path.join(folder, "model.safetensors"))
            self.assertIn("vision_tower.layernorm.weight", names)
            self.assertIn("vision_tower.encoder.layer.0.attention.q_norm.weight", names)
            self.assertNotIn("vision_tower.encoder.layer.0.attention.q_proj.bias", names)
            layers = list(range(NUM_TEXT_LAYERS + 1)) if layer == -1 else [0]
            got, _ = self.run_forward("float32", self.positions, layers, f"variant_{-layer}", model_dir=folder,
                                      image_features=True)
            with torch.no_grad():
                feats = model.model.get_image_features(pixel_values=self.pixel_values).pooler_output
            self.compare(got["image_features"].unsqueeze(0), feats.unsqueeze(0),
                         f"variant (feature layer {layer}) image features fp32", REL_BOUND["float32"])
            if layer == -1:  # the decoder is the same for both; check it once
                ref = self.hf_hidden("float32", model_dir=folder)[:, :, self.positions]
                self.compare(got["hidden_states"], ref, f"variant (feature layer {layer}) hidden states fp32",
                             REL_BOUND["float32"])
            del model

    # -- checkpoints and configs -------------------------------------------

    def test_checkpoint_naming_schemes(self):
        """Hub/save_pretrained, module (>= 4.52) and bare InternVLModel names load alike."""
        weights = load_file(os.path.join(self.model_dir, "model.safetensors"))
        self.assertIn("language_model.model.embed_tokens.weight", weights, "save_pretrained naming changed")
        self.assertFalse(any("lm_head" in k for k in weights), "tied embeddings: no lm_head in the file")
        renames = {
            "module": [("language_model.model.", "model.language_model."),
                       ("vision_tower.", "model.vision_tower."),
                       ("multi_modal_projector.", "model.multi_modal_projector.")],
            "bare": [("language_model.model.", "language_model.")],
        }
        req = self.request("names", self.input_ids, self.positions, [1, NUM_TEXT_LAYERS])
        base, _ = self.cli("names_legacy", model_dir=self.model_dir, request=req, pixels=self.px_file)
        for scheme, rules in renames.items():
            folder = os.path.join(self.dir, f"ckpt_{scheme}")
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(self.model_dir, folder)
            renamed = {}
            for k, v in weights.items():
                for old, new in rules:
                    if k.startswith(old):
                        k = new + k[len(old):]
                        break
                renamed[k] = v
            if scheme == "module":  # an untied head, as the big checkpoints have
                renamed["lm_head.weight"] = weights["language_model.model.embed_tokens.weight"].clone()
            save_file(renamed, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
            got, _ = self.cli(f"names_{scheme}", model_dir=folder, request=req, pixels=self.px_file)
            self.assertTrue(torch.equal(got["hidden_states"], base["hidden_states"]), scheme)
        # Sharded like the real downloads.
        folder = os.path.join(self.dir, "ckpt_sharded")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.model_dir, folder)
        os.remove(os.path.join(folder, "model.safetensors"))
        names = sorted(weights)
        shards = [names[: len(names) // 2], names[len(names) // 2:]]
        weight_map = {}
        for i, part in enumerate(shards):
            file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file({k: weights[k] for k in part}, os.path.join(folder, file), metadata={"format": "pt"})
            weight_map.update({k: file for k in part})
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)
        got, _ = self.cli("names_sharded", model_dir=folder, request=req, pixels=self.px_file)
        self.assertTrue(torch.equal(got["hidden_states"], base["hidden_states"]), "sharded")
        # A missing weight is reported by name.
        folder = os.path.join(self.dir, "ckpt_missing")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.model_dir, folder)
        broken = dict(weights)
        del broken["vision_tower.encoder.layer.1.lambda_2"]
        save_file(broken, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        with self.assertRaises(AssertionError) as ctx:
            self.cli("missing", model_dir=folder, request=req, pixels=self.px_file)
        self.assertIn("missing (vision_tower.encoder.layer.1.lambda_2)", str(ctx.exception))

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
            folder = os.path.join(self.dir, f"real_config_{name}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(cfg, f)
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
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn("sequence 0 holds 1791 image tokens", str(ctx.exception))
        # Patches that do not add up to the pixels.
        wrong = self.save_pixels("pixels_wrong", self.pixel_values, [7, 6])
        req = self.request("bad1", self.input_ids, [0], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad1", model_dir=self.model_dir, request=req, pixels=wrong)
        self.assertIn("num_patches adds up to 13 but pixel_values holds 14", str(ctx.exception))
        # A position past the end.
        req = self.request("bad2", self.input_ids, [self.input_ids.shape[1]], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad2", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn("outside the sequence", str(ctx.exception))
        # A checkpoint of another family.
        other = os.path.join(self.dir, "not_internvl")
        shutil.rmtree(other, ignore_errors=True)
        shutil.copytree(self.model_dir, other)
        with open(os.path.join(other, "config.json")) as f:
            cfg = json.load(f)
        cfg["model_type"] = "llava"
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(cfg, f)
        with self.assertRaises(AssertionError) as ctx:
            self.cli("other", model_dir=other, request=req, pixels=self.px_file)
        self.assertIn('model_type: expected "internvl", got "llava"', str(ctx.exception))
        # Sliding-window attention is refused with a message naming the file.
        cfg["model_type"] = "internvl"
        cfg["text_config"]["use_sliding_window"] = True
        cfg["text_config"]["sliding_window"] = 4096
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(cfg, f)
        with self.assertRaises(AssertionError) as ctx:
            self.cli("sliding", model_dir=other, request=req, pixels=self.px_file)
        self.assertIn("config.json: text_config: use_sliding_window is on", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
