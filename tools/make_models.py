"""Random-weight checkpoints of the six families, tiny or at full size.

For benchmarks/side_by_side.py and tools/gpu_check.sh. Nothing here is a
second copy of a model maker:
  tiny  (--size=test)  the family oracles' own makers
        (tests/families/<family>_oracle_test.py build_checkpoint, with the
        real tokenizer files and processor settings at tiny widths), or
        tools/make_tiny_llava.py for LLaVA's test/default/bench sizes;
  full  (--size=full)  the real config.json of --alias from
        tools/real_models/<alias>/ (docs/model_facts.md's facts, as the Hub spells them);
        the tokenizer, chat template and processor files come from the tiny
        maker of the same family, with the processor's image geometry set to
        the real one (Mllama's 560 px tiles, Gemma 3's 896 px and 256 tokens);
        transformers builds the model from the config directly in bfloat16 on
        --device (a GPU: seconds) and saves it in ~5 GB shards with an index,
        as the Hub stores them. Weights are transformers' own random init.
After making a folder it checks that transformers' processor reads it and
counts the image tokens of an 896 x 896 image (llava 576, Qwen 1024, InternVL3
1280, Gemma 3 256, Mllama 1 with 4 tiles).

Usage:
  make_models.py --family=qwen2_vl --size=test --out=DIR
  make_models.py --family=llava --size=full --alias=llava-7b --device=cuda --out=DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REAL = os.path.join(HERE, "real_models")

# family -> (--model alias of spatialid for tiny models, full-size aliases with real configs here)
FAMILIES = {
    "llava": ("llava-7b", ["llava-7b"]),
    "qwen2_vl": ("qwen2-2b", []),
    "qwen2_5_vl": ("qwen-7b", ["qwen-7b"]),
    "mllama": ("llama-11b", ["llama-11b"]),
    "internvl": ("internvl-1b", ["internvl-8b"]),
    "gemma3": ("gemma-4b", ["gemma-12b"]),
}
FULL_ALIASES = {a: f for f, (_, aliases) in FAMILIES.items() for a in aliases}
# InternVL3-1B's proportions scaled down as make_tiny_llava.py's sizes are
# (head size 64, ViT MLP 4x, Qwen2 MLP 5.4x with 4:1 grouped-query attention).
INTERNVL_SIZES = {
    "default": (dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=2, intermediate_size=512),
                dict(hidden_size=256, intermediate_size=1376, num_hidden_layers=6, num_attention_heads=4,
                     num_key_value_heads=1)),
    "bench": (dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024),
              dict(hidden_size=512, intermediate_size=2752, num_hidden_layers=8, num_attention_heads=8,
                   num_key_value_heads=2)),
}


def log(msg):
    print(f"[make_models] {msg}", file=sys.stderr, flush=True)


def oracle_module(family):
    """The family's oracle test module (its makers and constants)."""
    for p in (os.path.join(ROOT, "tests", "families"), os.path.join(ROOT, "tests", "python")):
        if p not in sys.path:
            sys.path.insert(0, p)
    name = {"qwen2_5_vl": "qwen2_vl"}.get(family, family) + "_oracle_test"
    # Their data paths (chat templates) resolve against the working folder
    # when imported outside Bazel.
    previous = os.getcwd()
    os.chdir(ROOT)
    try:
        return __import__(name)
    finally:
        os.chdir(previous)


def make_tiny(family, out, size="test"):
    """The tiny checkpoint of `family` in `out` (replaced if present)."""
    if family == "llava":
        subprocess.run([sys.executable, os.path.join(HERE, "make_tiny_llava.py"), out, "--size", size,
                        "--dtype", "float32"], check=True, capture_output=True)
        return
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    m = oracle_module(family)
    if family in ("qwen2_vl", "qwen2_5_vl"):
        with open(m.TEMPLATE_FILE) as f:
            m.build_checkpoint(family, out, f.read())
    elif family == "internvl":
        if size == "test":
            m.build_checkpoint(out, m.make_tokenizer(), vision_overrides=dict(vision_feature_layer=-1))
        else:
            vision, text = INTERNVL_SIZES[size]
            m.build_checkpoint(out, m.make_tokenizer(), vision_overrides=dict(vision, vision_feature_layer=-1),
                               text_overrides=text)
    else:
        m.build_checkpoint(out)


def patch_json(path, **fields):
    with open(path) as f:
        data = json.load(f)
    data.update(fields)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


def shallow_config(family, cfg):
    """The real config with one or two layers per tower (real widths and
    vocabularies): the full-size path, cheap enough to test on a CPU."""
    text = cfg.get("text_config", cfg)  # Qwen keeps text keys at the top level
    vision = cfg["vision_config"]
    text["num_hidden_layers"] = 1
    if family == "mllama":
        text["num_hidden_layers"], text["cross_attention_layers"] = 2, [1]
        vision.update(num_hidden_layers=1, num_global_layers=1, intermediate_layers_indices=[0],
                      vision_output_dim=2 * vision["hidden_size"])
    elif family == "qwen2_5_vl":
        vision.update(depth=2, fullatt_block_indexes=[1])
    else:
        vision["num_hidden_layers"] = 1
    return cfg


def make_full(alias, out, device="cuda", shallow=False):
    """`alias` at full size with random bf16 weights made on `device`
    (`shallow`: one or two layers per tower, for tests)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText
    family = FULL_ALIASES[alias]
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    with tempfile.TemporaryDirectory() as small:
        make_tiny(family, small)  # tokenizer, chat template, processor files
        os.makedirs(tmp)
        for f in os.listdir(small):
            if not f.endswith(".safetensors") and f not in ("config.json", "model.safetensors.index.json"):
                shutil.copy(os.path.join(small, f), os.path.join(tmp, f))
    with open(os.path.join(REAL, alias, "config.json")) as f:
        cfg = json.load(f)
    if shallow:
        cfg = shallow_config(family, cfg)
    if family == "internvl":
        # The project's stand-in for Qwen2.5's tokenizer is Qwen3's file, which
        # puts <IMG_CONTEXT> at 151671 (151667 in the real one) and has 151679
        # tokens: the config follows the tokenizer (5 more embedding rows).
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(tmp)
        cfg["image_token_id"] = tok.convert_tokens_to_ids("<IMG_CONTEXT>")
        cfg["text_config"]["vocab_size"] = max(cfg["text_config"]["vocab_size"], len(tok))
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    # The real image geometry (the oracles' processors are sized for tiny
    # models): transformers 5 reads the image processor's settings from
    # processor_config.json's "image_processor" when present, older ones
    # from preprocessor_config.json; both are set.
    size = {"mllama": 560, "gemma3": 896}.get(family)
    if size:
        side = {"height": size, "width": size}
        patch_json(os.path.join(tmp, "preprocessor_config.json"), size=side)
        path = os.path.join(tmp, "processor_config.json")
        if os.path.isfile(path):
            with open(path) as f:
                nested = json.load(f).get("image_processor")
            extra = {"image_seq_length": 256} if family == "gemma3" else {}
            if nested is not None:
                extra["image_processor"] = dict(nested, size=side)
            patch_json(path, **extra)
    config = AutoConfig.from_pretrained(tmp)
    log(f"{alias}: building in bfloat16 on {device}")
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(tmp, max_shard_size="5GB")
    del model
    # save_pretrained rewrites config.json in transformers' current spelling;
    # keep the Hub's (what a real download has).
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    log(f"{alias}: {params / 1e9:.2f} B parameters in {out}")
    return params


def image_token_count(model_dir):
    """Image tokens (and tiles, if any) transformers' processor gives an 896 x 896 image."""
    from PIL import Image
    from transformers import AutoProcessor
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import spatial_id_reference as ref
    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = ref.image_inputs(processor, "Is the frog to the left or right of the camel?",
                              Image.new("RGB", (896, 896), (120, 130, 140)))
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    token = cfg.get("image_token_index", cfg.get("image_token_id"))
    ids = inputs["input_ids"][0].tolist()
    out = {"sequence": len(ids), "image_tokens": ids.count(token)}
    if "pixel_values" in inputs and inputs["pixel_values"].dim() >= 4:
        out["pixels"] = list(inputs["pixel_values"].shape[-2:])
    if "aspect_ratio_mask" in inputs:
        out["tiles"] = int(inputs["aspect_ratio_mask"].sum())
    elif cfg.get("model_type") == "internvl":
        out["tiles"] = int(inputs["pixel_values"].shape[0])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=sorted(FAMILIES), default="")
    ap.add_argument("--size", choices=["test", "default", "bench", "full"], default="test")
    ap.add_argument("--alias", default="", help="with --size=full: " + ", ".join(sorted(FULL_ALIASES)))
    ap.add_argument("--device", default="cuda", help="with --size=full: where the weights are made")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shallow", action="store_true",
                    help="with --size=full: one or two layers per tower (real widths), to test on a CPU")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if args.size == "full":
        if args.alias not in FULL_ALIASES:
            sys.exit(f"--alias={args.alias}: expected one of {', '.join(sorted(FULL_ALIASES))}")
        make_full(args.alias, out, args.device, args.shallow)
    else:
        if not args.family:
            sys.exit("--family is required")
        if args.size in ("default", "bench") and args.family not in ("llava", "internvl"):
            sys.exit(f"--size={args.size}: only llava and internvl have it; use test or full")
        make_tiny(args.family, out, args.size)
    print(json.dumps(image_token_count(out)))


if __name__ == "__main__":
    main()
