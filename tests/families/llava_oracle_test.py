"""spatialid's LLaVA-1.5 family against transformers 5.3.0 (the oracle).

A tiny random-weight LlavaForConditionalGeneration (fixed seed; real
geometry: 336 px images, patch 14, 576 image tokens, vision feature layer
-2, "default" strategy; a Llama decoder with the real Llama-2 tokenizer plus
<image>) is saved with save_pretrained. Images are made here: two objects on
a transparent canvas (the data engine's kind of PNG, opened with
.convert("RGB") so the background is black) and a noise image whose odd size
exercises resizing and cropping. The prompt is the reference's:
"USER: <image>\\nIs the frog to the left or right of the camel? ASSISTANT:".

Checks: pixels against both transformers processors; every hidden state at
several positions in fp32 / bf16 / fp16 (against transformers run in the
same dtype); early stopping; the text-only forward; the image features; the
checkpoint naming schemes; RoPE variants; error reporting. Figures are
printed (worst absolute and relative differences) and asserted.
"""
import json
import os
import shutil
import sys
import time
import unittest

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import oracle_lib  # noqa: E402

CLI = oracle_lib.runfile("tests/families/llava_forward_cli")
PROMPT_TEXT = "Is the frog to the left or right of the camel?"
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
CLIP_SETTINGS = dict(
    do_resize=True, size={"shortest_edge": 336}, resample=3, do_center_crop=True,
    crop_size={"height": 336, "width": 336}, do_rescale=True, rescale_factor=1 / 255,
    do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
    image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
NUM_TEXT_LAYERS = 4
# fp32 must agree to 1e-4 of the activation scale (DESIGN.md); half
# precisions to the stated looser bounds, against transformers in that dtype.
REL_BOUND = {"float32": 1e-4, "bfloat16": 2e-2, "float16": 4e-3}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def draw_object(size, kind, colour):
    """An RGBA object with soft (anti-aliased) edges on transparency."""
    big = Image.new("RGBA", (size * 4, size * 4), (0, 0, 0, 0))
    d = ImageDraw.Draw(big)
    if kind == "camel":
        d.ellipse([size * 0.4, size * 1.2, size * 3.6, size * 2.8], fill=colour)
        d.polygon([(size * 1.2, size * 1.3), (size * 1.6, size * 0.5), (size * 2.0, size * 1.3)], fill=colour)
        d.rectangle([size * 0.8, size * 2.6, size * 1.1, size * 3.9], fill=colour)
        d.rectangle([size * 2.9, size * 2.6, size * 3.2, size * 3.9], fill=colour)
    else:
        d.ellipse([size * 0.5, size * 0.8, size * 3.5, size * 3.6], fill=colour)
        d.ellipse([size * 0.9, size * 0.3, size * 1.7, size * 1.1], fill=(255, 255, 255, 255))
        d.ellipse([size * 2.3, size * 0.3, size * 3.1, size * 1.1], fill=(255, 255, 255, 255))
    return big.resize((size, size), Image.LANCZOS)


def make_images(folder):
    """Two grid-style PNGs (objects on a transparent canvas) and one noise PNG."""
    paths = []
    camel = draw_object(180, "camel", (201, 150, 80, 255))
    frog = draw_object(150, "frog", (60, 170, 70, 255))
    for i, (cx, fx) in enumerate([(40, 500), (480, 60)]):
        canvas = Image.new("RGBA", (720, 600), (0, 0, 0, 0))
        canvas.paste(camel, (cx, 300), mask=camel)
        canvas.paste(frog, (fx, 120 + 60 * i), mask=frog)
        path = os.path.join(folder, f"grid_{i}.png")
        canvas.save(path)
        paths.append(path)
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(517, 333, 3), dtype=np.uint8)
    noise[100:300, 50:250] = [250, 20, 20]  # a sharp edge inside the crop
    path = os.path.join(folder, "noise.png")
    Image.fromarray(noise).save(path)
    paths.append(path)
    return paths


def build_checkpoint(model_dir):
    """The tiny model, its processor and the transformers 5 files in model_dir."""
    from transformers import (AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, LlamaConfig,
                              LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor)
    torch.manual_seed(1234)
    tokenizer = AutoTokenizer.from_pretrained(oracle_lib.tokenizer_dir("llama2"))
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    assert image_token_id == 32000, image_token_id
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                              num_attention_heads=4, image_size=336, patch_size=14,
                              projection_dim=64, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    text = LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=NUM_TEXT_LAYERS,
                       num_attention_heads=4, num_key_value_heads=4, vocab_size=32064,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                       pad_token_id=32001)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id,
                         projector_hidden_act="gelu", vision_feature_layer=-2,
                         vision_feature_select_strategy="default", image_seq_length=576,
                         pad_token_id=32001)
    model = LlavaForConditionalGeneration(config).eval()
    # Default init leaves attention nearly uniform; larger weights make every
    # hidden state depend on position and image, as in a trained model.
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() >= 2:
                p.mul_(3.0)
    model.save_pretrained(model_dir)
    image_processor = CLIPImageProcessor(**CLIP_SETTINGS)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default",
                               chat_template=CHAT_TEMPLATE, num_additional_image_tokens=1,
                               image_token="<image>")
    processor.save_pretrained(model_dir)
    image_processor.save_pretrained(model_dir)  # preprocessor_config.json, as real downloads have
    return model, processor


def scale_of(t):
    return max(float(t.abs().max()), 1e-12)


class LlavaOracleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.dir = os.path.join(oracle_lib.tmpdir(), "llava_oracle")
        shutil.rmtree(cls.dir, ignore_errors=True)
        os.makedirs(cls.dir)
        cls.model_dir = os.path.join(cls.dir, "tiny-llava")
        cls.model, _ = build_checkpoint(cls.model_dir)
        # What transformers 5 loads from the folder: the torchvision-based
        # image processor, as the reference run under transformers 5 would.
        from transformers import AutoProcessor, CLIPImageProcessorFast
        cls.processor = AutoProcessor.from_pretrained(cls.model_dir)
        assert isinstance(cls.processor.image_processor, CLIPImageProcessorFast)
        cls.images = make_images(cls.dir)
        cls.rgb = [Image.open(p).convert("RGB") for p in cls.images]
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT_TEXT}]}]
        cls.prompt = cls.processor.apply_chat_template(messages, add_generation_prompt=True)
        assert cls.prompt == "USER: <image>\n" + PROMPT_TEXT + " ASSISTANT:", cls.prompt
        # Batch of two grid images with the same prompt (one token layout).
        inputs = cls.processor(images=cls.rgb[:2], text=[cls.prompt, cls.prompt], return_tensors="pt")
        cls.input_ids = inputs["input_ids"]
        cls.pixel_values = inputs["pixel_values"]
        ids = cls.input_ids[0].tolist()
        tok = cls.processor.tokenizer
        cls.targets = {}
        for word in ("frog", "left", "right"):
            last = tok.convert_ids_to_tokens(tok(" " + word, add_special_tokens=False)["input_ids"])[-1]
            cls.targets[word] = tok.convert_ids_to_tokens(ids).index(last)
        image_positions = [i for i, t in enumerate(ids) if t == 32000]
        assert len(image_positions) == 576, len(image_positions)
        cls.positions = sorted({0, image_positions[0], image_positions[100], image_positions[-1],
                                *cls.targets.values(), len(ids) - 1})
        cls.px_file = os.path.join(cls.dir, "pixels.safetensors")
        save_file({"pixel_values": cls.pixel_values.contiguous()}, cls.px_file)
        cls.px1_file = os.path.join(cls.dir, "pixels1.safetensors")
        save_file({"pixel_values": cls.pixel_values[:1].contiguous()}, cls.px1_file)
        cls.hf_cache = {}
        print(f"\nprompt tokens: {len(ids)}; targets {cls.targets}; positions {cls.positions}")

    # -- helpers -----------------------------------------------------------

    def cli(self, name, **flags):
        out = os.path.join(self.dir, name + ".safetensors")
        # Same thread count as torch here, so both split work alike.
        args = [CLI, f"--out={out}", "--threads=2"]
        for k, v in flags.items():
            if v is True:
                args.append(f"--{k}")
            else:
                args.append(f"--{k}={v}")
        proc = oracle_lib.run(args)
        return load_file(out), proc.stdout

    def request(self, name, input_ids, positions, layers):
        path = os.path.join(self.dir, name + ".json")
        with open(path, "w") as f:
            json.dump({"input_ids": input_ids.tolist(), "positions": list(positions),
                       "layers": list(layers)}, f)
        return path

    def hf_hidden(self, dtype_name, text_only=False):
        """transformers' hidden states, batch 1 per image as the reference runs."""
        key = (dtype_name, text_only)
        if key not in self.hf_cache:
            # Loaded in the dtype, as the reference does: Module.to(dtype) would
            # also round the RoPE inverse frequencies that from_pretrained keeps in fp32.
            from transformers import LlavaForConditionalGeneration
            model = LlavaForConditionalGeneration.from_pretrained(
                self.model_dir, dtype=DTYPES[dtype_name]).eval()
            per_row = []
            with torch.no_grad():
                if text_only:
                    out = model(input_ids=self.text_ids, output_hidden_states=True)
                    per_row.append(torch.stack(out.hidden_states)[:, 0])
                else:
                    for b in range(self.input_ids.shape[0]):
                        out = model(input_ids=self.input_ids[b:b + 1],
                                    pixel_values=self.pixel_values[b:b + 1].to(DTYPES[dtype_name]),
                                    output_hidden_states=True)
                        per_row.append(torch.stack(out.hidden_states)[:, 0])
            self.hf_cache[key] = torch.stack(per_row, 1)  # [layers, batch, seq, hidden]
        return self.hf_cache[key]

    def compare(self, ours, ref, label, rel_bound):
        """Per hidden state: max |diff| against 1e-4 x max |activation|."""
        worst_abs, worst_rel = 0.0, 0.0
        for layer in range(ref.shape[0]):
            diff = float((ours[layer].float() - ref[layer].float()).abs().max())
            rel = diff / scale_of(ref[layer].float())
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
            self.assertLessEqual(rel, rel_bound, f"{label}: hidden state {layer}: max abs diff {diff:.3e}"
                                 f" is {rel:.2e} of the scale {scale_of(ref[layer].float()):.3e}")
        print(f"{label}: worst max-abs diff {worst_abs:.3e}, worst relative {worst_rel:.3e} "
              f"(bound {rel_bound:.0e})")
        return worst_abs, worst_rel

    def run_forward(self, dtype_name, positions, layers, name, **extra):
        req = self.request(name, self.input_ids, positions, layers)
        flags = dict(model_dir=self.model_dir, request=req, dtype=dtype_name)
        if not extra.pop("text_only", False):
            flags["pixels"] = self.px_file
        flags.update(extra)
        return self.cli(name, **flags)

    # -- pixels ------------------------------------------------------------

    def test_pixels_match_transformers5_default_processor(self):
        from transformers import AutoImageProcessor, CLIPImageProcessorFast
        auto = AutoImageProcessor.from_pretrained(self.model_dir)
        self.assertIsInstance(auto, CLIPImageProcessorFast, "transformers 5 should load the fast one")
        ref = auto(self.rgb, return_tensors="pt")["pixel_values"]
        got, _ = self.cli("px_fast", mode="preprocess", model_dir=self.model_dir,
                          images=",".join(self.images))
        diff = float((got["pixel_values"] - ref).abs().max())
        print(f"pixels vs CLIPImageProcessorFast: max abs diff {diff:.3e} over {ref.numel()} values")
        self.assertEqual(got["pixel_values"].shape, ref.shape)
        self.assertEqual(diff, 0.0)
        # processor_config.json alone (transformers 5's layout) gives the same settings.
        alt = os.path.join(self.dir, "processor_only")
        shutil.rmtree(alt, ignore_errors=True)
        os.makedirs(alt)
        shutil.copy(os.path.join(self.model_dir, "processor_config.json"), alt)
        got2, _ = self.cli("px_fast2", mode="preprocess", model_dir=alt, images=",".join(self.images))
        self.assertTrue(torch.equal(got2["pixel_values"], got["pixel_values"]))

    def test_pixels_match_slow_pillow_processor(self):
        from transformers import CLIPImageProcessor, CLIPImageProcessorFast
        ref = CLIPImageProcessor(**CLIP_SETTINGS)(self.rgb, return_tensors="pt")["pixel_values"]
        fast = CLIPImageProcessorFast(**CLIP_SETTINGS)(self.rgb, return_tensors="pt")["pixel_values"]
        got, _ = self.cli("px_slow", mode="preprocess", model_dir=self.model_dir,
                          images=",".join(self.images), resize="pillow")
        diff = float((got["pixel_values"] - ref).abs().max())
        gap = float((fast - ref).abs().max())
        print(f"pixels vs CLIPImageProcessor (Pillow): max abs diff {diff:.3e}; "
              f"fast vs slow processors differ by up to {gap:.3e}")
        self.assertLessEqual(diff, 1e-6)
        self.assertGreater(gap, 1e-3, "the two processors should differ; the test would not tell them apart")

    # -- hidden states -----------------------------------------------------

    def check_dtype(self, dtype_name):
        layers = list(range(NUM_TEXT_LAYERS + 1))
        ref = self.hf_hidden(dtype_name)[:, :, self.positions]
        # Batch 2 in one forward: GEMM blocking differs from transformers'
        # batch-1 runs, so rows agree to rounding, within the stated bound.
        got, _ = self.run_forward(dtype_name, self.positions, layers, f"fwd_{dtype_name}")
        ours = got["hidden_states"]
        self.assertEqual(ours.dtype, DTYPES[dtype_name])
        self.assertEqual(tuple(ours.shape), (len(layers), 2, len(self.positions), 64))
        self.compare(ours, ref, f"hidden states {dtype_name}, batch 2", REL_BOUND[dtype_name])
        # Batch 1, as the reference runs: the same ATen kernels in the same
        # order, so every value is bit-identical.
        req = self.request(f"b1_{dtype_name}", self.input_ids[:1], self.positions, layers)
        one, _ = self.cli(f"b1_{dtype_name}", model_dir=self.model_dir, request=req, dtype=dtype_name,
                          pixels=self.px1_file)
        mismatches = int((one["hidden_states"] != ref[:, :1]).sum())
        print(f"hidden states {dtype_name}, batch 1: {mismatches} of {ref[:, :1].numel()} values "
              f"differ from transformers")
        self.assertEqual(mismatches, 0)

    def test_hidden_states_fp32(self):
        self.check_dtype("float32")

    def test_hidden_states_bf16(self):
        self.check_dtype("bfloat16")

    def test_hidden_states_fp16(self):
        self.check_dtype("float16")

    def test_image_features_fp32(self):
        got, _ = self.run_forward("float32", [self.targets["frog"]], [NUM_TEXT_LAYERS], "feat",
                                  image_features=True)
        with torch.no_grad():
            ref = self.model.model.get_image_features(pixel_values=self.pixel_values).pooler_output
        ref = torch.stack(list(ref))
        self.assertEqual(tuple(got["image_features"].shape), (2, 576, 64))
        self.compare(got["image_features"].unsqueeze(0), ref.unsqueeze(0), "image features fp32",
                     REL_BOUND["float32"])

    def test_stopping_early_changes_nothing(self):
        full, _ = self.run_forward("float32", self.positions, list(range(NUM_TEXT_LAYERS + 1)), "full")
        frog = self.targets["frog"]
        cases = [([frog], [0, 2]), ([frog, self.positions[1]], [1]), ([self.positions[1]], [NUM_TEXT_LAYERS])]
        worst = 0.0
        for positions, layers in cases:
            part, _ = self.run_forward("float32", positions, layers, "part")
            cols = [self.positions.index(p) for p in positions]
            expect = full["hidden_states"][layers][:, :, cols]
            diff = float((part["hidden_states"] - expect).abs().max())
            worst = max(worst, diff / scale_of(expect))
        print(f"early stop (positions <= {frog}, layers <= 2) vs full forward: worst relative diff {worst:.3e}")
        self.assertLessEqual(worst, 1e-5)

    def test_text_only_forward(self):
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT_TEXT}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
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
        ref = self.hf_hidden("float32")[[0, NUM_TEXT_LAYERS]][:, :, self.positions]
        self.compare(got["hidden_states"], ref, "end to end fp32", REL_BOUND["float32"])

    # -- checkpoints -------------------------------------------------------

    def test_checkpoint_naming_schemes(self):
        """Legacy (llava-hf, save_pretrained), module (>= 4.52) and bare LlavaModel names load alike."""
        weights = load_file(os.path.join(self.model_dir, "model.safetensors"))
        self.assertIn("language_model.model.embed_tokens.weight", weights, "save_pretrained naming changed")
        renames = {
            "module": [("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
                       ("vision_tower.", "model.vision_tower."), ("multi_modal_projector.", "model.multi_modal_projector.")],
            "bare": [("language_model.model.", "language_model."), ("language_model.lm_head.", None)],
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
                        k = None if new is None else new + k[len(old):]
                        break
                if k is not None:
                    renamed[k] = v
            save_file(renamed, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
            got, _ = self.cli(f"names_{scheme}", model_dir=folder, request=req, pixels=self.px_file)
            self.assertTrue(torch.equal(got["hidden_states"], base["hidden_states"]), scheme)
        # Sharded like the real downloads (model-0000N-of-0000M + index).
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
        del broken["language_model.model.layers.2.mlp.up_proj.weight"]
        save_file(broken, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        with self.assertRaises(AssertionError) as ctx:
            self.cli("missing", model_dir=folder, request=req, pixels=self.px_file)
        self.assertIn("missing (language_model.model.layers.2.mlp.up_proj.weight)", str(ctx.exception))

    def test_real_llava_configs_resolve_like_transformers(self):
        """config.json as the llava-hf 7b/13b downloads spell it (most text keys omitted)."""
        from transformers import LlavaConfig
        text_7b = {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                   "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                   "torch_dtype": "float16", "vocab_size": 32064}
        text_13b = dict(text_7b, hidden_size=5120, intermediate_size=13824, num_attention_heads=40,
                        num_hidden_layers=40, num_key_value_heads=40)
        for name, text in (("7b", text_7b), ("13b", text_13b)):
            cfg = {"architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100,
                   "image_token_index": 32000, "model_type": "llava", "pad_token_id": 32001,
                   "projector_hidden_act": "gelu", "text_config": text, "tie_word_embeddings": False,
                   "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
                   "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                                     "model_type": "clip_vision_model", "num_attention_heads": 16,
                                     "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768,
                                     "vocab_size": 32000},
                   "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
                   "vocab_size": 32064}
            folder = os.path.join(self.dir, f"real_config_{name}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(cfg, f)
            proc = oracle_lib.run([CLI, "--mode=config", f"--model_dir={folder}"])
            ours = json.loads(proc.stdout.strip().splitlines()[-1])
            hf = LlavaConfig.from_pretrained(folder)
            t, v = hf.text_config, hf.vision_config
            expect = {"num_layers": t.num_hidden_layers, "hidden_size": t.hidden_size,
                      "intermediate_size": t.intermediate_size, "num_heads": t.num_attention_heads,
                      "num_kv_heads": t.num_key_value_heads, "head_dim": t.head_dim,
                      "vocab_size": t.vocab_size, "rms_norm_eps": t.rms_norm_eps,
                      "rope_theta": t.rope_parameters["rope_theta"], "vision_layers": v.num_hidden_layers,
                      "vision_hidden_size": v.hidden_size, "image_size": v.image_size,
                      "patch_size": v.patch_size, "image_token_index": hf.image_token_index,
                      "vision_feature_layer": [hf.vision_feature_layer],
                      # LlavaProcessor: (336 // 14)**2 + 1 additional token - 1 for "default".
                      "image_tokens": (336 // 14) ** 2, "dtype": "Half"}
            self.assertEqual(ours, expect, name)
            print(f"llava-{name} config: {t.num_hidden_layers} layers x {t.hidden_size}, "
                  f"{ours['image_tokens']} image tokens, {ours['dtype']}")

    def test_bad_inputs_are_errors(self):
        # Image-token count that does not match the images.
        ids = self.input_ids[:, :-1].clone()
        ids[:, self.positions[1]] = 1
        req = self.request("bad", ids, [0], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn("1150 image tokens", str(ctx.exception))
        # A position past the end.
        req = self.request("bad2", self.input_ids, [self.input_ids.shape[1]], [0])
        with self.assertRaises(AssertionError) as ctx:
            self.cli("bad2", model_dir=self.model_dir, request=req, pixels=self.px_file)
        self.assertIn("outside the sequence", str(ctx.exception))
        # A checkpoint of another family.
        other = os.path.join(self.dir, "not_llava")
        shutil.rmtree(other, ignore_errors=True)
        shutil.copytree(self.model_dir, other)
        with open(os.path.join(other, "config.json")) as f:
            cfg = json.load(f)
        cfg["model_type"] = "qwen2_vl"
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(cfg, f)
        with self.assertRaises(AssertionError) as ctx:
            self.cli("other", model_dir=other, request=req, pixels=self.px_file)
        self.assertIn('model_type: expected "llava", got "qwen2_vl"', str(ctx.exception))

    # -- shared blocks -----------------------------------------------------

    def test_rope_variants_match_transformers(self):
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
        cases = {
            "default": ({"rope_type": "default", "rope_theta": 10000.0}, 512),
            "linear": ({"rope_type": "linear", "rope_theta": 1e6, "factor": 8.0}, 512),
            "llama3": ({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 64}, 512),
            "dynamic_short": ({"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}, 512),
            "dynamic_long": ({"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}, 1500),
        }
        max_pos, head_dim = 1024, 64
        for name, (params, seq_len) in cases.items():
            cfg = LlamaConfig(hidden_size=256, num_attention_heads=4, max_position_embeddings=max_pos,
                              rope_parameters=dict(params))
            rope = LlamaRotaryEmbedding(cfg)
            pos = torch.arange(seq_len)[None]
            cos, sin = rope(torch.zeros(1, dtype=torch.float32), pos)
            path = os.path.join(self.dir, f"rope_{name}.json")
            with open(path, "w") as f:
                json.dump({**params, "head_dim": head_dim, "max_position_embeddings": max_pos,
                           "context_length": seq_len, "seq_len": seq_len}, f)
            got, _ = self.cli(f"rope_{name}", mode="rope", rope=path)
            d = max(float((got["inv_freq"] - rope.inv_freq).abs().max()),
                    float((got["cos"] - cos).abs().max()), float((got["sin"] - sin).abs().max()))
            print(f"rope {name}: max abs diff {d:.3e}")
            self.assertEqual(d, 0.0, name)

    # -- speed (reported, not asserted) -------------------------------------

    def test_zz_throughput_report(self):
        """Rough CPU throughput, batch 1, reference recipe vs spatialid's forward."""
        ids, px = self.input_ids[:1], self.pixel_values[:1]
        with torch.no_grad():
            self.model(input_ids=ids, pixel_values=px, output_hidden_states=True)
            t0 = time.perf_counter()
            reps = 5
            for _ in range(reps):
                self.model(input_ids=ids, pixel_values=px, output_hidden_states=True)
            hf = (time.perf_counter() - t0) / reps
        req = self.request("speed", ids, [self.targets["frog"]], list(range(NUM_TEXT_LAYERS + 1)))
        _, stdout = self.cli("speed", model_dir=self.model_dir, request=req, dtype="float32",
                             pixels=self.px1_file, repeat=reps)
        ours = float(stdout.split("forward_seconds=")[1].split()[0])
        print(f"throughput (tiny model, CPU, 2 threads): transformers {1 / hf:.1f} images/s, "
              f"spatialid {1 / ours:.1f} images/s, ratio {hf / ours:.2f}x")
        self.assertGreater(ours, 0.0)


if __name__ == "__main__":
    unittest.main()
