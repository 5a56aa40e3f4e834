"""The reference spatial-ID recipe, written with transformers, as an oracle.

This follows docs/reference_pipeline.md step by step (it is what the paper's
Python scripts compute): one image per forward, batch size 1, eager,
`output_hidden_states=True`, the target token found by the "last sub-token
of ' ' + word, first occurrence" rule, then compute_id (per-A-folder
mean-centring, averaged over A folders), average_id (universal) and
compute_axes (y2 starting at y1 by default). spatialid's end-to-end tests
compare its files against this, the family oracles
(tests/python/family_oracle.py) compare each family's extractor against its
prompt and target rows, and the benchmark harness times it as the reference
recipe.

Two options spatialid offers beyond the paper, so they can be checked here
too: `bos="chat_template"` tokenizes as apply_chat_template(tokenize=True)
does (no second BOS when the template writes one; the paper's processor call
always adds one), and `pooling="mean_of_subtokens"` averages the rows of the
word's sub-tokens (their first run in the prompt, fp32 mean) instead of
taking the last sub-token's.

Usage:
  spatial_id_reference.py grid  --model_dir D --images D --out D --model NAME [--dtype float32]
                                [--pooling last_subtoken|mean_of_subtokens]
  spatial_id_reference.py batch --model_dir D --images D --out D --model NAME [--pairs a_b,...]
"""
import argparse
import os
import re
import sys
import time
from collections import defaultdict

import torch

GRID_PROMPT = "Is the frog to the left or right of the camel?"
GRID_TARGETS = ["frog", "left", "right"]


def batch_prompt(a, b):
    return f"Is {b} to the left or right of {a}?", [b]


# --- images -------------------------------------------------------------------

_NESTED = re.compile(r"^(\d+)_(\d+)_(\d+)\.png$")
_FLAT = re.compile(r"^.+_(\d+)_(\d+)_(\d+)\.png$")


def list_pair_images(pair_dir):
    """[(a_pos, (x, y, s), path)] for a nested {ax}_{ay}/{bx}_{by}_{s}.png
    folder, or a flat folder of {a}_{b}_{i}_{j}_{s}.png (one A position)."""
    out = []
    for entry in sorted(os.listdir(pair_dir)):
        full = os.path.join(pair_dir, entry)
        if os.path.isdir(full) and re.match(r"^\d+_\d+$", entry):
            a_pos = tuple(int(v) for v in entry.split("_"))
            for f in sorted(os.listdir(full)):
                m = _NESTED.match(f)
                if m:
                    out.append((a_pos, tuple(int(v) for v in m.groups()), os.path.join(full, f)))
        else:
            m = _FLAT.match(entry)
            if m:
                out.append(((-1, -1), tuple(int(v) for v in m.groups()), full))
    return out


# --- model ----------------------------------------------------------------------

def load(model_dir, dtype, device="cpu"):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    return processor, model.to(device).eval()


POOLINGS = ("last_subtoken", "mean_of_subtokens")


def target_token(tokenizer, word):
    return tokenizer.tokenize(" " + word)[-1]


def word_positions(tokenizer, input_ids, word, pooling="last_subtoken"):
    """The prompt positions standing for `word`, or None when it is absent:
    the first occurrence of the last sub-token of " " + word (the paper's
    rule), or the first run of all its sub-tokens (mean_of_subtokens)."""
    if pooling == "last_subtoken":
        tokens = tokenizer.convert_ids_to_tokens(input_ids)
        t = target_token(tokenizer, word)
        return [tokens.index(t)] if t in tokens else None
    if pooling != "mean_of_subtokens":
        raise ValueError(f"pooling {pooling!r}: expected one of {POOLINGS}")
    sub = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    for i in range(len(input_ids) - len(sub) + 1):
        if list(input_ids[i:i + len(sub)]) == sub:
            return list(range(i, i + len(sub)))
    return None


def pool(states, positions):
    """states [..., seq, hidden] at `positions`: the row itself, or the mean
    of several in fp32, back in the states' dtype."""
    rows = states[..., positions, :]
    if len(positions) == 1:
        return rows[..., 0, :]
    return rows.float().mean(-2).to(states.dtype)


def target_positions(tokenizer, input_ids, words, pooling="last_subtoken"):
    return {w: word_positions(tokenizer, input_ids, w, pooling) for w in words}


def _processor_kwargs(processor, text, bos):
    """processor(text=...) adds special tokens; apply_chat_template(tokenize=True)
    does not when the rendered text already starts with the BOS token."""
    if bos == "processor":
        return {}
    if bos != "chat_template":
        raise ValueError(f"bos {bos!r}: expected processor or chat_template")
    bos_token = processor.tokenizer.bos_token
    return {"add_special_tokens": False} if bos_token is not None and text.startswith(bos_token) else {}


def image_inputs(processor, prompt, image, bos="processor", **template_kwargs):
    """`template_kwargs` go to the chat template (a fixed strftime_now for a test)."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, **template_kwargs)
    return processor(images=image, text=text, return_tensors="pt", **_processor_kwargs(processor, text, bos))


def text_inputs(processor, prompt, bos="processor", **template_kwargs):
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, **template_kwargs)
    return processor(text=text, return_tensors="pt", **_processor_kwargs(processor, text, bos))


def model_inputs(model, inputs, device="cpu"):
    """The processor's outputs on the device, floating ones in the model dtype."""
    inputs = inputs.to(device)
    for k, v in inputs.items():
        if torch.is_floating_point(v):
            inputs[k] = v.to(model.dtype)
    return inputs


@torch.no_grad()
def hidden_rows(model, processor, inputs, words, layers, device="cpu", poolings=("last_subtoken",)):
    """{layer: {word: vector}} at each word's target position; with several
    poolings, {pooling: that} from the one forward."""
    inputs = model_inputs(model, inputs, device)
    out = model(**inputs, output_hidden_states=True)
    ids = inputs["input_ids"][0].tolist()
    hs = out.hidden_states
    per_pooling = {}
    for pooling in poolings:
        pos = target_positions(processor.tokenizer, ids, words, pooling)
        res = {}
        for layer in (layers if layers is not None else range(len(hs))):
            res[layer] = {w: (pool(hs[layer][0], p).cpu() if p is not None else None) for w, p in pos.items()}
        per_pooling[pooling] = res
    return per_pooling if len(poolings) > 1 else per_pooling[poolings[0]]


def extract_pair(model, processor, pair_dir, prompt, words, layers=None, progress=None, poolings=None):
    """e[layer][token][a_pos][(x, y, s)] = vector, token = the tokenizer's string
    (the last sub-token's, whatever the pooling); with `poolings` (several),
    {pooling: e} from one forward per image."""
    from PIL import Image
    tok = processor.tokenizer
    names = {w: target_token(tok, w) for w in words}
    wanted = tuple(poolings or ("last_subtoken",))
    es = {p: defaultdict(lambda: defaultdict(lambda: defaultdict(dict))) for p in wanted}
    for i, (a_pos, key, path) in enumerate(list_pair_images(pair_dir)):
        image = Image.open(path).convert("RGB")
        rows = hidden_rows(model, processor, image_inputs(processor, prompt, image), words, layers,
                           model.device, poolings=wanted)
        if len(wanted) == 1:
            rows = {wanted[0]: rows}
        for pooling, per_layer in rows.items():
            for layer, per_word in per_layer.items():
                for w, vec in per_word.items():
                    if vec is None:
                        print(f"warning: {names[w]!r} not in the prompt", file=sys.stderr)
                        continue
                    es[pooling][layer][names[w]][a_pos][key] = vec
        if progress:
            progress(i)
    return es if poolings else es["last_subtoken"]


# --- the recipe -------------------------------------------------------------------

def compute_id(e):
    """docs/reference_pipeline.md section 4: centre within each A folder, then average over A folders."""
    out = {}
    for layer, per_token in e.items():
        out[layer] = {}
        for token, per_a in per_token.items():
            sums, counts = {}, {}
            for a_pos, vecs in per_a.items():
                keys = sorted(vecs)
                stack = torch.stack([vecs[k].float() for k in keys])
                centred = stack - stack.mean(0, keepdim=True)
                for k, v in zip(keys, centred):
                    sums[k] = sums.get(k, 0) + v
                    counts[k] = counts.get(k, 0) + 1
            dtype = next(iter(next(iter(per_a.values())).values())).dtype
            out[layer][token] = {k: (sums[k] / counts[k]).to(dtype) for k in sorted(sums)}
    return out


def average_id(pair_ids):
    """docs/reference_pipeline.md section 5: every token of every pair file into one 'universal' bucket."""
    buckets = {}
    for ids in pair_ids:
        for layer, per_token in ids.items():
            for token, per_key in per_token.items():
                for k, v in per_key.items():
                    buckets.setdefault(layer, {}).setdefault(k, []).append(v)
    out = {}
    for layer, per_key in buckets.items():
        out[layer] = {"universal": {k: torch.stack([v.float() for v in vs]).mean(0).to(vs[0].dtype)
                                    for k, vs in sorted(per_key.items())}}
    return out


def compute_axes(ids, size=224, strict=False):
    """docs/reference_pipeline.md section 6: y2 starts at y1 (zero differences counted) unless strict."""
    ax, ay = {}, {}
    for layer, per_token in ids.items():
        ax[layer], ay[layer] = {}, {}
        for token, per_key in per_token.items():
            dy, dx = [], []
            for x in range(4):
                for y1 in range(3):
                    for y2 in range(y1 + (1 if strict else 0), 4):
                        if (x, y1, size) in per_key and (x, y2, size) in per_key:
                            dy.append(per_key[(x, y2, size)].float() - per_key[(x, y1, size)].float())
            for y in range(4):
                for x1 in range(3):
                    for x2 in range(x1 + (1 if strict else 0), 4):
                        if (x1, y, size) in per_key and (x2, y, size) in per_key:
                            dx.append(per_key[(x2, y, size)].float() - per_key[(x1, y, size)].float())
            dtype = next(iter(per_key.values())).dtype
            if dx:
                ax[layer][token] = torch.stack(dx).mean(0).to(dtype)
            if dy:
                ay[layer][token] = torch.stack(dy).mean(0).to(dtype)
    return ax, ay


# --- CLI ------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["grid", "batch"])
    ap.add_argument("--model_dir", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", required=True, help="name used in output file names")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--pairs", default="", help="comma-separated a_b folders (default: all)")
    ap.add_argument("--strict_axes", action="store_true")
    ap.add_argument("--pooling", default="last_subtoken", choices=POOLINGS)
    args = ap.parse_args()

    processor, model = load(args.model_dir, args.dtype)
    os.makedirs(args.out, exist_ok=True)
    pairs = [p for p in args.pairs.split(",") if p] or sorted(
        d for d in os.listdir(args.images) if os.path.isdir(os.path.join(args.images, d)))
    start = time.time()
    n_images = 0
    pair_ids = []
    for pair in pairs:
        a, b = pair.split("_", 1)
        if args.mode == "grid":
            prompt, words = GRID_PROMPT, GRID_TARGETS
        else:
            prompt, words = batch_prompt(a, b)
        e = extract_pair(model, processor, os.path.join(args.images, pair), prompt, words,
                         poolings=[args.pooling])[args.pooling]
        n_images += len(list_pair_images(os.path.join(args.images, pair)))
        ids = compute_id(e)
        pair_ids.append(ids)
        if args.mode == "batch":
            os.makedirs(os.path.join(args.out, pair), exist_ok=True)
            torch.save(ids, os.path.join(args.out, pair, f"{args.model}.pt"))
    if args.mode == "grid":
        ids = pair_ids[0]
        torch.save(ids, os.path.join(args.out, f"{args.model}.pt"))
        ax, ay = compute_axes(ids, strict=args.strict_axes)
        words = GRID_TARGETS
        rows = hidden_rows(model, processor, text_inputs(processor, GRID_PROMPT), ["left", "right"], None,
                           model.device, poolings=[args.pooling])
        tok = processor.tokenizer
        text = {layer: {target_token(tok, w): v for w, v in per.items() if v is not None}
                for layer, per in rows.items()}
        torch.save(text, os.path.join(args.out, f"{args.model}_text.pt"))
        del words
    else:
        universal = average_id(pair_ids)
        torch.save(universal, os.path.join(args.out, f"{args.model}.pt"))
        ax, ay = compute_axes(universal, strict=args.strict_axes)
    torch.save(ax, os.path.join(args.out, f"{args.model}_x.pt"))
    torch.save(ay, os.path.join(args.out, f"{args.model}_y.pt"))
    secs = time.time() - start
    print(f"{n_images} images in {secs:.1f} s ({n_images / max(secs, 1e-9):.2f} images/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
