"""Side by side: the reference recipe, the best transformers setup and spatialid.

On one model, one set of images and one machine, in one run, this times
  (a) reference    the reference recipe exactly as
                   tests/reference/spatial_id_reference.py runs it: transformers,
                   batch 1, `output_hidden_states=True` (LM head included), PIL
                   images opened from disk, compute_id / average_id / axes;
  (b) transformers the best setup a capable user would write with
                   transformers: batched processor and forward, SDPA attention,
                   fp32 on the CPU / bf16 on a GPU, the inner model (no LM head),
                   `output_hidden_states=True` then only the needed rows, the next
                   batch's PNGs opened and preprocessed on a second thread;
  (c) spatialid    //examples:batch_extraction on the same PNGs (and, as extra
                   rows, the same layouts drawn in memory with --objects_dir, and
                   bf16 where the device has fast bf16 matmuls);
each in its own process, and reports images per second (extraction only: model
loading excluded; end-to-end wall time is shown too), the ratios, each
process's peak RSS (its own high-water mark, from wait4), the largest
difference of (b) and (c)'s universal IDs from (a)'s relative to their scale,
and the achieved FLOP rate.

FLOPs per image are counted from config.json as the work of a plain forward
truncated at the last needed position n (the target word) and the deepest
kept layer, without the LM head (a multiply-add is 2 FLOPs):
  vision   2*P*(3*p*p)*Dv                              patch embedding (P patches)
           + Lv * (2*T*(4*Dv^2 + 2*Dv*Iv) + 4*T^2*Dv)  T = P + 1 tokens, Lv layers up to
                                                       vision_feature_layer
  project  2*P*(Dv*Dt + Dt*Dt)         (InternVL: 2*(P/4)*(4*Dv*Dt + Dt*Dt), after the pixel shuffle)
  decoder  Lt * (2*n*(2*Dt*Dq + 2*Dt*Dkv + 3*Dt*It) + 2*Dq*n*(n+1))
           Dq = heads*head_dim, Dkv = kv_heads*head_dim; causal attention counted
           over the keys each query sees (QK^T and AV).
spatialid executes a little less than this (the text prefix once per prompt,
the deepest layer only at the target row), so its rate is a model-FLOP rate.

One command (builds the binaries, makes the model and the images, runs all):
  bazel run //benchmarks:side_by_side -- --size=default
  bazel run //benchmarks:side_by_side -- --size=bench
  bazel run //benchmarks:side_by_side -- --size=bench --family=internvl
On a GPU machine (no Bazel there), with a batch_extraction built for CUDA:
  $SPATIALID_PYTHON benchmarks/side_by_side.py --device=cuda --size=bench \\
      --batch_extraction=PATH --grid_data=PATH
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The source tree: `bazel run` says where it is; a direct run is inside it.
ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.path.dirname(HERE)
SIZE_PAIRS = {"test": 2, "default": 2, "bench": 1}  # pairs (144 images each) per method, by model size
PAIRS = ["camel_frog", "dog_cake", "frog_camel"]


# --- helpers ------------------------------------------------------------------------


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def runfile(path):
    """A data file of the Bazel target, or the same path in the source tree."""
    for base in (os.environ.get("RUNFILES_DIR"), os.path.join(os.getcwd()), ROOT):
        if base:
            for cand in (os.path.join(base, "spatialid", path), os.path.join(base, path)):
                if os.path.exists(cand):
                    return cand
    return os.path.join(ROOT, path)


def measured(cmd, env=None):
    """Runs cmd; returns (returncode, stdout, stderr, wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out_chunks, err_chunks = [], []

    def pump(stream, sink):
        for line in stream:
            sink.append(line)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks)),
               threading.Thread(target=pump, args=(proc.stderr, err_chunks))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, "".join(out_chunks), "".join(err_chunks),
            time.perf_counter() - start, usage.ru_maxrss / 1024.0)


def check(rc, out, err, what):
    if rc != 0:
        sys.exit(f"{what} failed (exit {rc}):\n{out[-3000:]}\n{err[-3000:]}")


# --- setup: model and images -----------------------------------------------------------


# InternVL3-1B's proportions scaled down as make_tiny_llava.py's "bench" is:
# head size 64, ViT MLP 4x, Qwen2 MLP 5.4x with 4:1 grouped-query attention.
INTERNVL_SIZES = {
    "test": (dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
             dict(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2)),
    "default": (dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=2, intermediate_size=512),
                dict(hidden_size=256, intermediate_size=1376, num_hidden_layers=6, num_attention_heads=4,
                     num_key_value_heads=1)),
    "bench": (dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024),
              dict(hidden_size=512, intermediate_size=2752, num_hidden_layers=8, num_attention_heads=8,
                   num_key_value_heads=2)),
}


def make_internvl(out, size):
    """A random-weight InternVL3-architecture checkpoint (Qwen3 tokenizer,
    GOT-OCR2 processor without tiling: one 448 px tile, 256 image tokens)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "families"))
    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    import internvl_oracle_test as iv
    vision, text = INTERNVL_SIZES[size]
    iv.build_checkpoint(out, iv.make_tokenizer(), vision_overrides=dict(vision, vision_feature_layer=-1),
                        text_overrides=text)


def ensure_model(args):
    if args.model_dir:
        return args.model_dir
    if args.family == "llava" and args.size == "default" and os.environ.get("SPATIALID_DEFAULT_MODEL") and \
            os.path.isfile(os.path.join(os.environ["SPATIALID_DEFAULT_MODEL"], "config.json")):
        return os.environ["SPATIALID_DEFAULT_MODEL"]
    out = os.path.join(args.work_dir, "models", f"{args.family}-{args.size}")
    if not os.path.isfile(os.path.join(out, "config.json")):
        log(f"making the {args.size} {args.family} model in {out}")
        if args.family == "internvl":
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--_worker=make_internvl",
                                   f"--out={out}", f"--size={args.size}"], capture_output=True, text=True)
        else:
            proc = subprocess.run([sys.executable, args.make_model, out, "--size", args.size,
                                   "--dtype", "float32"], capture_output=True, text=True)
        check(proc.returncode, proc.stdout, proc.stderr, f"making the {args.family} model")
    return out


def ensure_images(args):
    """PNGs of the first --pairs pairs (grid_data, 144 layouts each: batch
    extraction checks that a pair folder holds every layout)."""
    pairs = PAIRS[:args.pairs]
    full = os.path.join(args.work_dir, "images_" + "_".join(pairs))
    if not all(os.path.isdir(os.path.join(full, pair)) for pair in pairs):
        log(f"drawing {', '.join(pairs)} with grid_data into {full}")
        rc, out, err, _, _ = measured([args.grid_data, f"--objects_dir={args.objects_dir}",
                                       f"--out={full}", f"--pairs={','.join(pairs)}",
                                       "--sizes=224", "--no_same_row_or_col"])
        check(rc, out, err, "grid_data")
    sys.path.insert(0, os.path.dirname(args.reference))
    import spatial_id_reference as ref
    count = sum(len(ref.list_pair_images(os.path.join(full, pair))) for pair in pairs)
    return full, count


# --- workers (each runs in its own process) ---------------------------------------------------


def torch_setup(args):
    import torch
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    return torch, dtype


def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def worker_reference(args):
    """(a) the reference recipe, step for step (spatial_id_reference.main with a device)."""
    torch, _ = torch_setup(args)
    sys.path.insert(0, os.path.dirname(args.reference))
    import spatial_id_reference as ref
    processor, model = ref.load(args.model_dir, args.dtype, args.device)
    start = time.perf_counter()
    n = 0
    pair_ids = []
    for pair in sorted(os.listdir(args.image_dir)):
        a, b = pair.split("_", 1)
        prompt, words = ref.batch_prompt(a, b)
        e = ref.extract_pair(model, processor, os.path.join(args.image_dir, pair), prompt, words)
        n += len(ref.list_pair_images(os.path.join(args.image_dir, pair)))
        ids = ref.compute_id(e)
        pair_ids.append(ids)
        os.makedirs(os.path.join(args.out, pair), exist_ok=True)
        torch.save(ids, os.path.join(args.out, pair, "model.pt"))
    universal = ref.average_id(pair_ids)
    torch.save(universal, os.path.join(args.out, "model.pt"))
    ax, ay = ref.compute_axes(universal)
    torch.save(ax, os.path.join(args.out, "model_x.pt"))
    torch.save(ay, os.path.join(args.out, "model_y.pt"))
    sync(torch, args.device)
    print(json.dumps({"images": n, "seconds": time.perf_counter() - start}))


def worker_transformers(args):
    """(b) batched transformers: processor and inner model on whole batches."""
    from collections import defaultdict
    from concurrent.futures import ThreadPoolExecutor

    torch, dtype = torch_setup(args)
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    sys.path.insert(0, os.path.dirname(args.reference))
    import spatial_id_reference as ref

    processor = AutoProcessor.from_pretrained(args.model_dir)
    model = AutoModelForImageTextToText.from_pretrained(
        args.model_dir, dtype=dtype, attn_implementation="sdpa").to(args.device).eval()
    inner = model.model  # the LlavaModel under the LM head
    tok = processor.tokenizer

    def load_batch(paths, text):
        images = [Image.open(p).convert("RGB") for p in paths]
        return processor(images=images, text=[text] * len(images), return_tensors="pt")

    start = time.perf_counter()
    n = 0
    pair_ids = []
    pool = ThreadPoolExecutor(max_workers=1)
    with torch.inference_mode():
        for pair in sorted(os.listdir(args.image_dir)):
            a, b = pair.split("_", 1)
            prompt, words = ref.batch_prompt(a, b)
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            text = processor.apply_chat_template(messages, add_generation_prompt=True)
            items = ref.list_pair_images(os.path.join(args.image_dir, pair))
            batches = [items[i:i + args.batch_size] for i in range(0, len(items), args.batch_size)]
            names = {w: ref.target_token(tok, w) for w in words}
            e = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
            pending = pool.submit(load_batch, [p for _, _, p in batches[0]], text)
            for k, batch in enumerate(batches):
                inputs = pending.result()
                if k + 1 < len(batches):
                    pending = pool.submit(load_batch, [p for _, _, p in batches[k + 1]], text)
                positions = ref.target_positions(tok, inputs["input_ids"][0].tolist(), words)
                inputs = inputs.to(args.device)
                inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                hidden = inner(**inputs, output_hidden_states=True).hidden_states
                cols = [positions[w] for w in words]
                rows = torch.stack([h[:, cols] for h in hidden]).cpu()  # [layers, batch, words, hidden]
                for i, (a_pos, key, _) in enumerate(batch):
                    for layer in range(rows.shape[0]):
                        for j, w in enumerate(words):
                            e[layer][names[w]][a_pos][key] = rows[layer, i, j]
                n += len(batch)
            ids = ref.compute_id(e)
            pair_ids.append(ids)
            os.makedirs(os.path.join(args.out, pair), exist_ok=True)
            torch.save(ids, os.path.join(args.out, pair, "model.pt"))
    universal = ref.average_id(pair_ids)
    torch.save(universal, os.path.join(args.out, "model.pt"))
    ax, ay = ref.compute_axes(universal)
    torch.save(ax, os.path.join(args.out, "model_x.pt"))
    torch.save(ay, os.path.join(args.out, "model_y.pt"))
    sync(torch, args.device)
    print(json.dumps({"images": n, "seconds": time.perf_counter() - start}))


# --- FLOPs -------------------------------------------------------------------------------------


def needed_length(model_dir, image_png):
    """The expanded prompt's length up to and including the target word of the
    first pair's question (positions after it are never computed)."""
    from PIL import Image
    from transformers import AutoProcessor
    sys.path.insert(0, os.path.dirname(ARGS.reference))
    import spatial_id_reference as ref
    processor = AutoProcessor.from_pretrained(model_dir)
    a, b = PAIRS[0].split("_")
    prompt, words = ref.batch_prompt(a, b)
    inputs = ref.image_inputs(processor, prompt, Image.open(image_png).convert("RGB"))
    ids = inputs["input_ids"][0].tolist()
    return ref.target_positions(processor.tokenizer, ids, words)[words[0]] + 1, len(ids)


def forward_flops(config, n):
    """FLOPs of one image's forward (see the module docstring)."""
    v, t = config["vision_config"], config["text_config"]
    dv, iv, lv_all = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"]
    patch, size = v["patch_size"], v["image_size"]
    size = size[0] if isinstance(size, list) else size
    patch = patch[0] if isinstance(patch, list) else patch
    p = (size // patch) ** 2
    tv = p + 1
    internvl = config.get("model_type") == "internvl"
    layer = config.get("vision_feature_layer", -1 if internvl else -2)
    layer = layer if isinstance(layer, int) else max(x % (lv_all + 1) for x in layer)
    lv = layer if layer >= 0 else lv_all + 1 + layer
    vision = 2 * p * 3 * patch * patch * dv + lv * (2 * tv * (4 * dv * dv + 2 * dv * iv) + 4 * tv * tv * dv)
    dt, it, lt = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]
    heads = t["num_attention_heads"]
    head_dim = t.get("head_dim") or dt // heads
    dq, dkv = heads * head_dim, t.get("num_key_value_heads", heads) * head_dim
    if internvl:  # pixel shuffle 0.5: p/4 tokens of width 4*dv, then 4*dv -> dt -> dt
        project = 2 * (p // 4) * (4 * dv * dt + dt * dt)
    else:
        project = 2 * p * (dv * dt + dt * dt)
    decoder = lt * (2 * n * (2 * dt * dq + 2 * dt * dkv + 3 * dt * it) + 2 * dq * n * (n + 1))
    return vision + project + decoder, {"vision": vision, "projector": project, "decoder": decoder}


# --- parity ------------------------------------------------------------------------------------


def relative_difference(ours, ref_obj):
    import torch
    worst = scale = 0.0

    def walk(a, b):
        nonlocal worst, scale
        if isinstance(b, dict):
            if set(a) != set(b):
                raise ValueError(f"keys differ: {sorted(set(a) ^ set(b))[:5]}")
            for k in b:
                walk(a[k], b[k])
            return
        worst = max(worst, (a.float() - b.float()).abs().max().item())
        scale = max(scale, b.float().abs().max().item())

    walk(ours, ref_obj)
    return worst / max(scale, 1e-30)


def parity(path, ref_path):
    import torch
    try:
        return relative_difference(torch.load(path, weights_only=True), torch.load(ref_path, weights_only=True))
    except Exception as e:  # a missing or different file is reported, not fatal
        return f"({e})"


# --- the run -----------------------------------------------------------------------------------


def run_python_worker(args, kind, out):
    cmd = [sys.executable, os.path.abspath(__file__), f"--_worker={kind}", f"--model_dir={args.model_dir}",
           f"--image_dir={args.images_dir}", f"--out={out}", f"--device={args.device}",
           f"--dtype={args.dtype}", f"--batch_size={args.batch_size}", f"--threads={args.threads}",
           f"--reference={args.reference}"]
    rc, stdout, stderr, wall, rss = measured(cmd)
    check(rc, stdout, stderr, kind)
    res = json.loads(stdout.strip().splitlines()[-1])
    return {"images": res["images"], "seconds": res["seconds"], "wall": wall, "rss": rss}


STATS = re.compile(r"batch_extraction: (\d+) images in ([\d.]+) s .*?batch (\d+)\): forward ([\d.]+) s, "
                   r"accumulate ([\d.]+) s, model waiting for images ([\d.]+) s; loaders: load ([\d.]+) s, "
                   r"preprocess ([\d.]+) s")


def run_spatialid(args, out, dtype, extra):
    alias = {"llava": "llava-7b", "internvl": "internvl-1b"}[args.family]
    cmd = [args.batch_extraction, f"--model={alias}", f"--model_dir={args.model_dir}", f"--out={out}",
           "--name=model", f"--dtype={dtype}", f"--device={args.device}", "--overwrite",
           f"--batch_size={args.spatialid_batch_size}", *extra]
    if args.threads > 0:
        cmd.append(f"--threads={args.threads}")
    rc, stdout, stderr, wall, rss = measured(cmd)
    check(rc, stdout, stderr, "batch_extraction")
    m = STATS.search(stderr)
    if not m:
        sys.exit(f"batch_extraction printed no statistics line:\n{stderr[-2000:]}")
    images, seconds = int(m.group(1)), float(m.group(2))
    detail = dict(zip(["batch", "forward", "accumulate", "wait", "load", "preprocess"],
                      [int(m.group(3))] + [float(m.group(i)) for i in range(4, 9)]))
    return {"images": images, "seconds": seconds, "wall": wall, "rss": rss, "detail": detail}


def fast_bf16(device):
    """CUDA, or a CPU with bf16 dot products (AVX512-BF16 or AMX)."""
    if device.startswith("cuda"):
        return True
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main_run(args):
    args.work_dir = os.path.abspath(os.path.expanduser(args.work_dir))
    os.makedirs(args.work_dir, exist_ok=True)
    if args.pairs == 0:
        args.pairs = SIZE_PAIRS.get(args.size, 1)
    if not 1 <= args.pairs <= len(PAIRS):
        sys.exit(f"--pairs={args.pairs}: expected 1 to {len(PAIRS)}")
    if args.dtype == "auto":
        args.dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    args.model_dir = ensure_model(args)
    args.images_dir, n_images = ensure_images(args)
    if args.spatialid_batch_size < 0:
        args.spatialid_batch_size = 0  # auto
    with open(os.path.join(args.model_dir, "config.json")) as f:
        config = json.load(f)
    first_png = os.path.join(args.images_dir, PAIRS[0], sorted(os.listdir(os.path.join(args.images_dir, PAIRS[0])))[0])
    first_png = os.path.join(first_png, sorted(os.listdir(first_png))[0])
    n_needed, seq_len = needed_length(args.model_dir, first_png)
    flops, parts = forward_flops(config, n_needed)

    load_before = os.getloadavg()
    results = {}
    outs = {k: os.path.join(args.work_dir, "out", k) for k in ["a", "b", "c", "c_mem", "c_bf16"]}
    for d in outs.values():
        shutil.rmtree(d, ignore_errors=True)
    log(f"(a) reference recipe on {n_images} images ...")
    results["a"] = run_python_worker(args, "reference", outs["a"])
    log(f"(b) batched transformers ...")
    results["b"] = run_python_worker(args, "transformers", outs["b"])
    log(f"(c) spatialid batch_extraction ...")
    results["c"] = run_spatialid(args, outs["c"], args.dtype, [f"--images={args.images_dir}"])
    log(f"(c) spatialid, layouts drawn in memory ...")
    results["c_mem"] = run_spatialid(args, outs["c_mem"], args.dtype, [
        f"--objects_dir={args.objects_dir}", f"--pairs={','.join(PAIRS[:args.pairs])}", "--sizes=224",
        "--no_same_row_or_col"])
    if args.dtype == "float32" and fast_bf16(args.device):
        log(f"(c) spatialid in bfloat16 ...")
        results["c_bf16"] = run_spatialid(args, outs["c_bf16"], "bfloat16", [f"--images={args.images_dir}"])
    load_after = os.getloadavg()

    ref_file = os.path.join(outs["a"], "model.pt")
    rows = [
        ("a", "(a) reference recipe (transformers, batch 1, all hidden states + LM head)", args.dtype),
        ("b", f"(b) best transformers (batch {args.batch_size}, SDPA, inner model, prefetch thread)", args.dtype),
        ("c", "(c) spatialid batch_extraction, PNGs from disk", args.dtype),
        ("c_mem", "(c) spatialid batch_extraction, layouts drawn in memory", args.dtype),
        ("c_bf16", "(c) spatialid batch_extraction, PNGs from disk", "bfloat16"),
    ]
    a_rate = results["a"]["images"] / results["a"]["seconds"]
    b_rate = results["b"]["images"] / results["b"]["seconds"]
    lines = [
        f"model: {args.model_dir} ({args.family}; vision {config['vision_config']['hidden_size']}x"
        f"{config['vision_config']['num_hidden_layers']}, text {config['text_config']['hidden_size']}x"
        f"{config['text_config']['num_hidden_layers']}); {n_images} images ({', '.join(PAIRS[:args.pairs])}); "
        f"device {args.device}; threads {args.threads or 'all'}; sequence {seq_len} tokens, target at "
        f"{n_needed - 1}",
        f"forward FLOPs per image (model count): {flops / 1e9:.2f} GFLOP (vision {parts['vision'] / 1e9:.2f}, "
        f"projector {parts['projector'] / 1e9:.2f}, decoder {parts['decoder'] / 1e9:.2f})",
        f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}",
        "",
        "| method | dtype | images/s | vs (a) | vs (b) | GFLOP/s | end-to-end s | peak RSS MiB | universal IDs vs (a) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, name, dtype in rows:
        if key not in results:
            continue
        r = results[key]
        rate = r["images"] / r["seconds"]
        par = "(itself)" if key == "a" else parity(os.path.join(outs[key], "model.pt"), ref_file)
        par = par if isinstance(par, str) else f"{par:.1e}"
        lines.append(f"| {name} | {dtype} | {rate:.2f} | {rate / a_rate:.2f}x | {rate / b_rate:.2f}x | "
                     f"{rate * flops / 1e9:.1f} | {r['wall']:.1f} | {r['rss']:.0f} | {par} |")
    d = results["c"]["detail"]
    lines += ["", f"spatialid (c) breakdown: batch {d['batch']}, forward {d['forward']:.2f} s, accumulate "
              f"{d['accumulate']:.2f} s, model waiting for images {d['wait']:.2f} s, loader load "
              f"{d['load']:.2f} s, preprocess {d['preprocess']:.2f} s (loader time overlaps the forward)"]
    report = "\n".join(lines)
    print(report)
    with open(os.path.join(args.work_dir, f"side_by_side_{args.family}_{args.size}.json"), "w") as f:
        json.dump({"results": results, "flops_per_image": flops, "flops_parts": parts, "report": report,
                   "images": n_images, "device": args.device, "dtype": args.dtype}, f, indent=1)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="default", choices=["test", "default", "bench"],
                    help="model size made by tools/make_tiny_llava.py (default: the built-in default model)")
    ap.add_argument("--family", default="llava", choices=["llava", "internvl"],
                    help="architecture of the random-weight model: llava (tools/make_tiny_llava.py) or "
                         "internvl (InternVL3: InternViT, pixel shuffle, Qwen2 decoder)")
    ap.add_argument("--model_dir", default="", help="use this checkpoint (of --family) instead of --size")
    ap.add_argument("--pairs", type=int, default=0,
                    help=f"object pairs per method, 144 layouts each (default: by size), at most {len(PAIRS)}")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--dtype", default="auto", help="auto (float32 on cpu, bfloat16 on cuda), float32, bfloat16")
    ap.add_argument("--batch_size", type=int, default=8, help="(b)'s batch size")
    ap.add_argument("--spatialid_batch_size", type=int, default=0, help="(c)'s --batch_size (0: auto)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads of every method (0: all cores)")
    ap.add_argument("--work_dir", default="~/.cache/spatialid/side_by_side")
    ap.add_argument("--objects_dir", default=os.path.join(ROOT, "data", "objects"))
    ap.add_argument("--batch_extraction", default=os.path.join(ROOT, "bazel-bin", "examples", "batch_extraction"))
    ap.add_argument("--grid_data", default=os.path.join(ROOT, "bazel-bin", "examples", "grid_data"))
    ap.add_argument("--make_model", default=runfile("tools/make_tiny_llava.py"))
    ap.add_argument("--reference", default=runfile("tests/reference/spatial_id_reference.py"))
    ap.add_argument("--_worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--image_dir", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    ARGS = args
    for name in ["batch_extraction", "grid_data", "make_model", "reference", "objects_dir"]:
        setattr(args, name, os.path.abspath(getattr(args, name)))
    if args._worker == "reference":
        return worker_reference(args)
    if args._worker == "transformers":
        return worker_transformers(args)
    if args._worker == "make_internvl":
        return make_internvl(args.out, args.size)
    args.images_dir = ""
    return main_run(args)


if __name__ == "__main__":
    main()
