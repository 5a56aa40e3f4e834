"""Side by side: the reference recipe, the best transformers setup and spatialid.

On one model, one set of images and one machine, in one run, this times
  (a) reference    the reference recipe exactly as
                   tests/reference/spatial_id_reference.py runs it: transformers,
                   batch 1, `output_hidden_states=True` (LM head included), PIL
                   images opened from disk, compute_id / average_id / axes;
  (b) transformers the best setup a capable user would write with
                   transformers: batched processor and forward, SDPA attention,
                   the inner model (no LM head), `output_hidden_states=True` then
                   only the needed rows, the next batch's PNGs opened and
                   preprocessed on a second thread;
  (c) spatialid    //examples:batch_extraction on the same PNGs, once per
                   --engines entry (planned, plain), and with --in_memory also
                   on the same layouts drawn in memory (--objects_dir);
each in its own process, for each of --dtypes, and reports images per second
(extraction only: model loading excluded; end-to-end wall time is shown too),
the ratios to (a) and (b) of the same dtype, each process's peak RSS (its own
high-water mark, from wait4) and on CUDA its peak GPU memory (the device's
used memory above what it was before the process, polled with nvidia-smi,
CUDA context included), the largest difference of each method's universal IDs
from (a)'s relative to their scale, the achieved model-FLOP rate (on CUDA as
a fraction of --peak_tflops, the dense bf16 peak: 989 TFLOP/s on H100 SXM and
H200), and the projected wall time of the paper's full extraction (86,400
images) at that rate on one device.

Families (--family): llava, qwen2_vl, qwen2_5_vl, mllama, internvl, gemma3.
Models (--size): test = the family oracle's tiny random-weight model
(tools/make_models.py); default and bench = larger tiny models (llava,
internvl); full = a real config at full size (--alias, tools/real_models/),
random bf16 weights made by transformers on the device, for GPU machines.

FLOPs per image are counted from the config as the work of a plain forward
truncated at the last needed position n (the target word), without the LM
head (a multiply-add is 2 FLOPs; attention counts QK^T and AV over the keys
each query sees, causal in the decoder):
  vision    patch embedding + per layer 2*T*(4*Dv^2 + m*Dv*Iv) + 4*T*K*Dv
            (m = 2, or 3 for gated MLPs; K = keys per query: T for full
            attention, the window for Qwen2.5-VL's windowed layers)
            LLaVA: CLIP, T = P+1, layers up to vision_feature_layer
            InternVL3: per tile (5 for 896 px) T = P+1; Qwen2(.5)-VL: T = the
            image's patches; Mllama: all tiles attend jointly, T = tiles*1608,
            32 local + 8 global layers; Gemma 3: SigLIP, T = 4096
  project   LLaVA 2*P*(Dv*Dt + Dt^2); InternVL 2*(P/4)*(4*Dv*Dt + Dt^2) per tile;
            Qwen 2*(P/4)*(16*Dv^2 + 4*Dv*Dt); Mllama 2*tiles*1601*(7680*Dt);
            Gemma 3 2*256*Dv*Dt
  decoder   per layer 2*n*(2*Dt*Dq + 2*Dt*Dkv + 3*Dt*It) + 2*Dq*n*(n+1);
            Mllama's cross-attention layers: q/o and MLP over n, k/v over the
            V = tiles*1601 vision positions, attention 4*n*V*Dq.
spatialid executes a little less than this (the text prefix once per prompt,
the deepest layer only at the target row), so its rate is a model-FLOP rate.

--budget_s bounds the whole run: each method gets an equal share for its
extraction and stops when it is spent (reporting the rate over the images it
did; parity needs complete runs). Results are printed as each method ends;
the summary (markdown and JSON) goes to --summary_dir (default: $OUT when
set, else --work_dir).

Commands:
  bazel run //benchmarks:side_by_side -- --size=default                     # the default LLaVA
  bazel run //benchmarks:side_by_side -- --size=bench                       # LLaVA with real proportions
  bazel run //benchmarks:side_by_side -- --size=test --family=gemma3        # any family's tiny model
On a GPU machine (no Bazel; binaries from tools/build_without_bazel.sh), as
tools/gpu_check.sh runs it:
  python3 benchmarks/side_by_side.py --device=cuda --size=full --alias=llava-7b \\
      --batch_extraction=build/nobazel/bin/batch_extraction --grid_data=build/nobazel/bin/grid_data
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
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_models  # noqa: E402

SIZE_PAIRS = {"test": 2, "default": 2, "bench": 1, "full": 1}  # pairs (144 images each) per method
PAIRS = ["camel_frog", "dog_cake", "frog_camel"]
FULL_RUN_IMAGES = 86400  # the paper's extraction: 90 pairs x 960 layouts
DEFAULT_PEAK_TFLOPS = 989.0  # dense bf16, H100 SXM and H200


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


class GpuMemory:
    """Peak used memory of one CUDA device above its level at start, polled
    with nvidia-smi while a process runs (None where nvidia-smi is missing)."""

    def __init__(self, device):
        self.index = device.split(":")[1] if ":" in device else "0"
        self.enabled = device.startswith("cuda") and shutil.which("nvidia-smi") is not None
        self.peak = self.base = None

    def used(self):
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                              "-i", self.index], capture_output=True, text=True)
        return float(out.stdout.strip().splitlines()[0]) if out.returncode == 0 else None

    def __enter__(self):
        if self.enabled:
            self.base = self.used()
            self.peak = self.base
            self.stop = threading.Event()
            self.thread = threading.Thread(target=self.poll, daemon=True)
            self.thread.start()
        return self

    def poll(self):
        while not self.stop.wait(0.25):
            u = self.used()
            if u is not None and (self.peak is None or u > self.peak):
                self.peak = u

    def __exit__(self, *exc):
        if self.enabled:
            self.stop.set()
            self.thread.join()

    def peak_mib(self):
        return None if self.peak is None or self.base is None else self.peak - self.base


def measured(cmd, device="cpu", timeout=None, env=None):
    """Runs cmd; returns dict(rc, out, err, wall, rss MiB, gpu MiB, timed_out)."""
    start = time.perf_counter()
    with GpuMemory(device) as gpu:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        out_chunks, err_chunks = [], []

        def pump(stream, sink):
            for line in stream:
                sink.append(line)

        threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks)),
                   threading.Thread(target=pump, args=(proc.stderr, err_chunks))]
        for t in threads:
            t.start()
        timer = None
        timed_out = threading.Event()
        if timeout:
            def kill():
                timed_out.set()
                proc.kill()
            timer = threading.Timer(timeout, kill)
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        if timer:
            timer.cancel()
        for t in threads:
            t.join()
    return {"rc": os.waitstatus_to_exitcode(status), "out": "".join(out_chunks), "err": "".join(err_chunks),
            "wall": time.perf_counter() - start, "rss": usage.ru_maxrss / 1024.0, "gpu": gpu.peak_mib(),
            "timed_out": timed_out.is_set()}


def check(r, what):
    if r["rc"] != 0:
        sys.exit(f"{what} failed (exit {r['rc']}):\n{r['out'][-3000:]}\n{r['err'][-3000:]}")


# --- setup: model and images -----------------------------------------------------------


def ensure_model(args):
    if args.model_dir:
        return args.model_dir
    if args.family == "llava" and args.size == "default" and os.environ.get("SPATIALID_DEFAULT_MODEL") and \
            os.path.isfile(os.path.join(os.environ["SPATIALID_DEFAULT_MODEL"], "config.json")):
        return os.environ["SPATIALID_DEFAULT_MODEL"]
    name = args.alias if args.size == "full" else f"{args.family}-{args.size}"
    out = os.path.join(args.work_dir, "models", name)
    if not os.path.isfile(os.path.join(out, "config.json")):
        log(f"making the {name} model in {out}")
        cmd = [sys.executable, os.path.join(ROOT, "tools", "make_models.py"), f"--family={args.family}",
               f"--size={args.size}", f"--out={out}"]
        if args.size == "full":
            cmd += [f"--alias={args.alias}", f"--device={args.device if args.device.startswith('cuda') else 'cpu'}"]
        r = measured(cmd, args.device)
        check(r, f"making the {name} model")
        RESULTS["make_seconds"] = r["wall"]
        log(f"made {name} in {r['wall']:.0f} s: {r['out'].strip()}")
    return out


def ensure_images(args):
    """PNGs of the first --pairs pairs (grid_data, 144 layouts each: batch
    extraction checks that a pair folder holds every layout)."""
    pairs = PAIRS[:args.pairs]
    full = os.path.join(args.work_dir, "images_" + "_".join(pairs))
    if not all(os.path.isdir(os.path.join(full, pair)) for pair in pairs):
        log(f"drawing {', '.join(pairs)} with grid_data into {full}")
        r = measured([args.grid_data, f"--objects_dir={args.objects_dir}", f"--out={full}",
                      f"--pairs={','.join(pairs)}", "--sizes=224", "--no_same_row_or_col"])
        check(r, "grid_data")
    sys.path.insert(0, os.path.dirname(args.reference))
    import spatial_id_reference as ref
    count = sum(len(ref.list_pair_images(os.path.join(full, pair))) for pair in pairs)
    return full, count


# --- workers (each runs in its own process) ---------------------------------------------------


class Deadline(Exception):
    pass


def torch_setup(args):
    import torch
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    return torch, dtype


def load_model(args, dtype, **kwargs):
    """from_pretrained straight onto the device where it can (a GPU's worth of
    weights is not first copied through host memory), else .to(device)."""
    from transformers import AutoModelForImageTextToText
    if args.device.startswith("cuda"):
        try:
            return AutoModelForImageTextToText.from_pretrained(args.model_dir, dtype=dtype, device_map=args.device,
                                                               **kwargs).eval()
        except (ImportError, ValueError) as e:  # device_map may need accelerate
            log(f"loading onto {args.device} directly failed ({e}); loading on the CPU first")
    return AutoModelForImageTextToText.from_pretrained(args.model_dir, dtype=dtype, **kwargs).to(args.device).eval()


def finish_worker(torch, args, n, start, complete):
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    res = {"images": n, "seconds": time.perf_counter() - start, "complete": complete}
    if args.device.startswith("cuda"):
        res["torch_peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    print(json.dumps(res))


def save_pair(torch, ref, args, pair, e, pair_ids):
    ids = ref.compute_id(e)
    pair_ids.append(ids)
    os.makedirs(os.path.join(args.out, pair), exist_ok=True)
    torch.save(ids, os.path.join(args.out, pair, "model.pt"))


def save_outputs(torch, ref, args, pair_ids):
    universal = ref.average_id(pair_ids)
    torch.save(universal, os.path.join(args.out, "model.pt"))
    ax, ay = ref.compute_axes(universal)
    torch.save(ax, os.path.join(args.out, "model_x.pt"))
    torch.save(ay, os.path.join(args.out, "model_y.pt"))


def worker_reference(args):
    """(a) the reference recipe, step for step (spatial_id_reference's extract_pair)."""
    torch, dtype = torch_setup(args)
    sys.path.insert(0, os.path.dirname(args.reference))
    import spatial_id_reference as ref
    from transformers import AutoProcessor
    processor = AutoProcessor.from_pretrained(args.model_dir)
    model = load_model(args, dtype)
    start = time.perf_counter()
    n = 0
    pair_ids = []
    complete = True

    total = sum(len(ref.list_pair_images(os.path.join(args.image_dir, p))) for p in os.listdir(args.image_dir))

    def tick(_):
        nonlocal n
        n += 1
        if n < total and args.deadline_s > 0 and time.perf_counter() - start > args.deadline_s:
            raise Deadline()

    try:
        for pair in sorted(os.listdir(args.image_dir)):
            a, b = pair.split("_", 1)
            prompt, words = ref.batch_prompt(a, b)
            e = ref.extract_pair(model, processor, os.path.join(args.image_dir, pair), prompt, words,
                                 progress=tick)
            save_pair(torch, ref, args, pair, e, pair_ids)
        save_outputs(torch, ref, args, pair_ids)
    except Deadline:
        complete = False
    finish_worker(torch, args, n, start, complete)


def worker_transformers(args):
    """(b) batched transformers: processor and inner model on whole batches."""
    from collections import defaultdict
    from concurrent.futures import ThreadPoolExecutor

    torch, dtype = torch_setup(args)
    from PIL import Image
    from transformers import AutoProcessor
    sys.path.insert(0, os.path.dirname(args.reference))
    import spatial_id_reference as ref

    processor = AutoProcessor.from_pretrained(args.model_dir)
    model = load_model(args, dtype, attn_implementation="sdpa")
    inner = model.model  # the multimodal model under the LM head
    tok = processor.tokenizer

    def load_batch(paths, text):
        # One image list per text: what every family's processor accepts
        # (Gemma 3's and Mllama's require it). The prompts are identical, so
        # no padding is needed (Mllama's tokenizer has no pad token).
        images = [[Image.open(p).convert("RGB")] for p in paths]
        return processor(images=images, text=[text] * len(images), return_tensors="pt")

    start = time.perf_counter()
    n = 0
    pair_ids = []
    complete = True
    pool = ThreadPoolExecutor(max_workers=1)
    try:
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
                    if args.deadline_s > 0 and time.perf_counter() - start > args.deadline_s:
                        raise Deadline()
                    inputs = pending.result()
                    if k + 1 < len(batches):
                        pending = pool.submit(load_batch, [p for _, _, p in batches[k + 1]], text)
                    positions = ref.target_positions(tok, inputs["input_ids"][0].tolist(), words)
                    inputs = inputs.to(args.device)
                    for key, v in inputs.items():
                        if torch.is_floating_point(v):
                            inputs[key] = v.to(dtype)
                    hidden = inner(**inputs, output_hidden_states=True).hidden_states
                    cols = [positions[w][0] for w in words]  # last_subtoken: one position each
                    rows = torch.stack([h[:, cols] for h in hidden]).cpu()  # [layers, batch, words, hidden]
                    for i, (a_pos, key, _) in enumerate(batch):
                        for layer in range(rows.shape[0]):
                            for j, w in enumerate(words):
                                e[layer][names[w]][a_pos][key] = rows[layer, i, j]
                    n += len(batch)
                save_pair(torch, ref, args, pair, e, pair_ids)
        save_outputs(torch, ref, args, pair_ids)
    except Deadline:
        complete = False
    finish_worker(torch, args, n, start, complete)


# --- FLOPs -------------------------------------------------------------------------------------


def prompt_geometry(model_dir, image_png):
    """The expanded prompt's length up to and including the first pair's
    target word (positions after it are never computed), its full length, and
    the image's geometry as transformers' processor makes it."""
    from PIL import Image
    from transformers import AutoProcessor
    sys.path.insert(0, os.path.dirname(ARGS.reference))
    import spatial_id_reference as ref
    processor = AutoProcessor.from_pretrained(model_dir)
    a, b = PAIRS[0].split("_")
    prompt, words = ref.batch_prompt(a, b)
    inputs = ref.image_inputs(processor, prompt, Image.open(image_png).convert("RGB"))
    ids = inputs["input_ids"][0].tolist()
    geom = {}
    if "image_grid_thw" in inputs:
        geom["patches"] = int(inputs["image_grid_thw"].prod())
    if "aspect_ratio_mask" in inputs:
        geom["tiles"] = int(inputs["aspect_ratio_mask"].sum())
    elif inputs["pixel_values"].dim() == 4:
        geom["tiles"] = int(inputs["pixel_values"].shape[0])
    return ref.target_positions(processor.tokenizer, ids, words)[words[0]][0] + 1, len(ids), geom


def dense(tokens, d, inter, gated=False):
    return 2 * tokens * (4 * d * d + (3 if gated else 2) * d * inter)


def decoder_flops(t, n, layers=None):
    dt, it = t.hidden_size, t.intermediate_size
    heads = t.num_attention_heads
    head_dim = getattr(t, "head_dim", None) or dt // heads
    dq, dkv = heads * head_dim, (getattr(t, "num_key_value_heads", None) or heads) * head_dim
    count = t.num_hidden_layers if layers is None else layers
    return count * (2 * n * (2 * dt * dq + 2 * dt * dkv + 3 * dt * it) + 2 * dq * n * (n + 1)), (dt, it, dq, dkv)


def _int(x):
    return x[0] if isinstance(x, (list, tuple)) else x


def forward_flops(config, n, geom):
    """FLOPs of one image's forward (see the module docstring): (total, parts)."""
    kind = config.model_type
    v, t = config.vision_config, config.text_config
    if kind in ("llava", "internvl"):
        dv, iv, lv_all = v.hidden_size, v.intermediate_size, v.num_hidden_layers
        patch, size = _int(v.patch_size), _int(v.image_size)
        p = (size // patch) ** 2
        tv = p + 1
        tiles = geom.get("tiles", 1) if kind == "internvl" else 1
        layer = config.vision_feature_layer
        layer = layer if isinstance(layer, int) else max(x % (lv_all + 1) for x in layer)
        lv = layer if layer >= 0 else lv_all + 1 + layer
        vision = tiles * (2 * p * 3 * patch * patch * dv + lv * (dense(tv, dv, iv) + 4 * tv * tv * dv))
        decoder, (dt, _, _, _) = decoder_flops(t, n)
        project = (tiles * 2 * (p // 4) * (4 * dv * dt + dt * dt) if kind == "internvl"
                   else 2 * p * (dv * dt + dt * dt))
    elif kind in ("qwen2_vl", "qwen2_5_vl"):
        p = geom["patches"]
        qwen25 = kind == "qwen2_5_vl"
        dv = v.hidden_size if qwen25 else v.embed_dim
        iv = v.intermediate_size if qwen25 else int(v.embed_dim * v.mlp_ratio)
        full = set(v.fullatt_block_indexes) if qwen25 else set(range(v.depth))
        window = (v.window_size // v.patch_size) ** 2 if qwen25 else p
        vision = 2 * p * 3 * v.temporal_patch_size * v.patch_size ** 2 * dv
        for layer in range(v.depth):
            keys = p if layer in full else min(window, p)
            vision += dense(p, dv, iv, gated=qwen25) + 4 * p * keys * dv
        decoder, (dt, _, _, _) = decoder_flops(t, n)
        out = v.out_hidden_size if qwen25 else v.hidden_size
        project = 2 * (p // 4) * (16 * dv * dv + 4 * dv * out)
    elif kind == "mllama":
        tiles = geom.get("tiles", 1)
        dv, iv = v.hidden_size, v.intermediate_size
        per_tile = (v.image_size // v.patch_size) ** 2 + 1
        padded = (per_tile + 7) // 8 * 8
        tv = tiles * padded
        layers = v.num_hidden_layers + v.num_global_layers
        vision = 2 * tiles * (per_tile - 1) * 3 * v.patch_size ** 2 * dv + layers * (dense(tv, dv, iv) + 4 * tv * tv * dv)
        cross = len(t.cross_attention_layers)
        decoder, (dt, it, dq, dkv) = decoder_flops(t, n, t.num_hidden_layers - cross)
        vis = tiles * per_tile
        decoder += cross * (2 * n * (2 * dt * dq + 3 * dt * it) + 2 * vis * 2 * dt * dkv + 4 * n * vis * dq)
        project = 2 * vis * v.vision_output_dim * dt
    elif kind == "gemma3":
        dv, iv = v.hidden_size, v.intermediate_size
        p = (v.image_size // v.patch_size) ** 2
        vision = 2 * p * 3 * v.patch_size ** 2 * dv + v.num_hidden_layers * (dense(p, dv, iv) + 4 * p * p * dv)
        decoder, (dt, _, _, _) = decoder_flops(t, n)
        project = 2 * config.mm_tokens_per_image * dv * dt
    else:
        raise ValueError(f"no FLOP count for model_type {kind}")
    return vision + project + decoder, {"vision": vision, "projector": project, "decoder": decoder}


# --- parity ------------------------------------------------------------------------------------


def relative_difference(ours, ref_obj):
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
        return f"({type(e).__name__})"


# --- the run -----------------------------------------------------------------------------------

RESULTS = {}


def run_python_worker(args, kind, out, dtype, deadline):
    cmd = [sys.executable, os.path.abspath(__file__), f"--_worker={kind}", f"--model_dir={args.model_dir}",
           f"--image_dir={args.images_dir}", f"--out={out}", f"--device={args.device}",
           f"--dtype={dtype}", f"--batch_size={args.batch_size}", f"--threads={args.threads}",
           f"--reference={args.reference}", f"--deadline_s={deadline}", f"--family={args.family}"]
    r = measured(cmd, args.device)
    check(r, kind)
    res = json.loads(r["out"].strip().splitlines()[-1])
    return {**res, "wall": r["wall"], "rss": r["rss"], "gpu": r["gpu"]}


STATS = re.compile(r"batch_extraction: (\d+) images in ([\d.]+) s .*?batch (\d+)\): forward ([\d.]+) s, "
                   r"accumulate ([\d.]+) s, model waiting for images ([\d.]+) s; loaders: load ([\d.]+) s, "
                   r"preprocess ([\d.]+) s")
PROGRESS = re.compile(r": (\d+)(?:/\d+ \([\d.]+%\))?, ([\d.]+)/s")


def run_spatialid(args, out, dtype, engine, extra, deadline):
    alias = args.alias if args.size == "full" else make_models.FAMILIES[args.family][0]
    cmd = [args.batch_extraction, f"--model={alias}", f"--model_dir={args.model_dir}", f"--out={out}",
           "--name=model", f"--dtype={dtype}", f"--device={args.device}", "--overwrite", f"--engine={engine}",
           f"--batch_size={args.spatialid_batch_size}", *extra]
    if args.threads > 0:
        cmd.append(f"--threads={args.threads}")
    # Loading is not bounded by the deadline; the extraction is (it is the
    # fastest method: this only stops a run that went wrong).
    r = measured(cmd, args.device, timeout=(3 * deadline + 300) if deadline > 0 else None)
    m = STATS.search(r["err"])
    if r["timed_out"] or not m:
        progress = PROGRESS.findall(r["err"])
        if r["timed_out"] and progress:
            images, rate = int(progress[-1][0]), float(progress[-1][1])
            return {"images": images, "seconds": images / max(rate, 1e-9), "complete": False, "wall": r["wall"],
                    "rss": r["rss"], "gpu": r["gpu"]}
        check(dict(r, rc=r["rc"] or 1), f"batch_extraction --engine={engine}")
    images, seconds = int(m.group(1)), float(m.group(2))
    detail = dict(zip(["batch", "forward", "accumulate", "wait", "load", "preprocess"],
                      [int(m.group(3))] + [float(m.group(i)) for i in range(4, 9)]))
    return {"images": images, "seconds": seconds, "complete": True, "wall": r["wall"], "rss": r["rss"],
            "gpu": r["gpu"], "detail": detail}


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


def fmt_hours(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def main_run(args):
    args.work_dir = os.path.abspath(os.path.expanduser(args.work_dir))
    os.makedirs(args.work_dir, exist_ok=True)
    cuda = args.device.startswith("cuda")
    if args.size == "full":
        if args.alias not in make_models.FULL_ALIASES:
            sys.exit(f"--alias={args.alias}: expected one of {', '.join(sorted(make_models.FULL_ALIASES))}")
        args.family = make_models.FULL_ALIASES[args.alias]
    if args.size in ("default", "bench") and args.family not in ("llava", "internvl"):
        sys.exit(f"--size={args.size}: only llava and internvl have it; use --size=test (or full on a GPU)")
    if args.pairs == 0:
        args.pairs = SIZE_PAIRS.get(args.size, 1)
    if not 1 <= args.pairs <= len(PAIRS):
        sys.exit(f"--pairs={args.pairs}: expected 1 to {len(PAIRS)}")
    if args.dtypes == "auto":
        args.dtypes = "bfloat16" if cuda else ("float32,bfloat16" if fast_bf16(args.device) else "float32")
    dtypes = args.dtypes.split(",")
    engines = [e for e in args.engines.split(",") if e]
    methods = [m for m in args.methods.split(",") if m]
    summary_dir = args.summary_dir or os.environ.get("OUT") or args.work_dir
    os.makedirs(summary_dir, exist_ok=True)
    tag = f"{args.family}_{args.alias if args.size == 'full' else args.size}_{args.device.replace(':', '')}"
    started = time.perf_counter()

    args.model_dir = ensure_model(args)
    args.images_dir, n_images = ensure_images(args)
    if args.spatialid_batch_size < 0:
        args.spatialid_batch_size = 0  # auto
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(args.model_dir)
    first_png = os.path.join(args.images_dir, PAIRS[0], sorted(os.listdir(os.path.join(args.images_dir, PAIRS[0])))[0])
    first_png = os.path.join(first_png, sorted(os.listdir(first_png))[0])
    n_needed, seq_len, geom = prompt_geometry(args.model_dir, first_png)
    flops, parts = forward_flops(config, n_needed, geom)
    runs = [(m, d, e) for d in dtypes for m in methods for e in (engines if m == "spatialid" else [""])]
    if args.in_memory and "spatialid" in methods:
        runs += [("spatialid_mem", d, engines[0]) for d in dtypes[:1]]
    deadline = 0.0
    if args.budget_s > 0:
        left = args.budget_s - (time.perf_counter() - started)
        # Each run also loads its model: keep a third of its share for that.
        deadline = max(5.0, left / max(len(runs), 1) * 2 / 3)

    text_cfg = config.text_config
    header = (f"model: {args.model_dir} ({args.family}, {args.size}{' ' + args.alias if args.size == 'full' else ''}; "
              f"text {text_cfg.hidden_size}x{text_cfg.num_hidden_layers}); {n_images} images "
              f"({', '.join(PAIRS[:args.pairs])}); device {args.device}; threads {args.threads or 'all'}; sequence "
              f"{seq_len} tokens, target at {n_needed - 1}; image geometry {geom or '(one image)'}")
    flop_line = (f"forward FLOPs per image (model count): {flops / 1e9:.1f} GFLOP (vision {parts['vision'] / 1e9:.1f}, "
                 f"projector {parts['projector'] / 1e9:.1f}, decoder {parts['decoder'] / 1e9:.1f})")
    log(header)
    log(flop_line)
    if deadline:
        log(f"budget {args.budget_s:.0f} s: each of {len(runs)} runs extracts for at most {deadline:.0f} s")

    load_before = os.getloadavg()
    outs = {}
    rows = []
    for method, dtype, engine in runs:
        key = f"{method}_{dtype}" + (f"_{engine}" if engine else "")
        out = outs[key] = os.path.join(args.work_dir, "out", tag, key)
        shutil.rmtree(out, ignore_errors=True)
        if method == "reference":
            name = "(a) reference recipe (transformers, batch 1, all hidden states + LM head)"
            r = run_python_worker(args, "reference", out, dtype, deadline)
        elif method == "transformers":
            name = f"(b) best transformers (batch {args.batch_size}, SDPA, inner model, prefetch thread)"
            r = run_python_worker(args, "transformers", out, dtype, deadline)
        elif method == "spatialid":
            name = f"(c) spatialid batch_extraction --engine={engine}, PNGs from disk"
            extra = [f"--images={args.images_dir}"]
            # Under a budget, a run the faster of (a) and (b) says cannot end in
            # time does one shard of the images (a rate, no parity).
            faster = max([x["rate"] for x in rows if x["dtype"] == dtype and x["method"] != "spatialid"] or [0])
            if deadline and faster and faster * deadline < n_images:
                shards = min(n_images, -(-n_images // int(max(1, 2 * faster * deadline))))
                if shards > 1:
                    extra += ["--shard=0", f"--num_shards={shards}"]
            r = run_spatialid(args, out, dtype, engine, extra, deadline)
            r["complete"] = r["complete"] and "--shard=0" not in extra
        else:
            name = f"(c) spatialid batch_extraction --engine={engine}, layouts drawn in memory"
            r = run_spatialid(args, out, dtype, engine, [
                f"--objects_dir={args.objects_dir}", f"--pairs={','.join(PAIRS[:args.pairs])}", "--sizes=224",
                "--no_same_row_or_col"], deadline)
        r.update(key=key, method=method, dtype=dtype, engine=engine, name=name)
        r["rate"] = r["images"] / max(r["seconds"], 1e-9)
        RESULTS[key] = r
        rows.append(r)
        tflops = r["rate"] * flops / 1e12
        gpu = f", peak GPU {r['gpu']:.0f} MiB" if r.get("gpu") is not None else ""
        peak = f" ({100 * tflops / args.peak_tflops:.1f}% of {args.peak_tflops:.0f} TFLOP/s)" if cuda else ""
        log(f"  {name} [{dtype}]: {r['rate']:.2f} images/s over {r['images']} images"
            f"{'' if r['complete'] else ' (stopped at the budget)'}, {tflops * 1e3:.1f} GFLOP/s{peak}, "
            f"wall {r['wall']:.1f} s, peak RSS {r['rss']:.0f} MiB{gpu}; 86,400 images: "
            f"{fmt_hours(FULL_RUN_IMAGES / max(r['rate'], 1e-9))}")
    load_after = os.getloadavg()

    lines = [header, flop_line, f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}", "",
             "| method | dtype | images/s | vs (a) | vs (b) | " + ("TFLOP/s | % of peak" if cuda else "GFLOP/s")
             + " | end-to-end s | peak RSS MiB | " + ("peak GPU MiB | " if cuda else "")
             + "86,400 images | universal IDs vs (a) |",
             "|---|---|---|---|---|---|" + ("---|" if cuda else "") + "---|---|" + ("---|" if cuda else "") + "---|---|"]
    for r in rows:
        a = RESULTS.get(f"reference_{r['dtype']}")
        b = RESULTS.get(f"transformers_{r['dtype']}")
        vs_a = f"{r['rate'] / a['rate']:.2f}x" if a else "-"
        vs_b = f"{r['rate'] / b['rate']:.2f}x" if b else "-"
        if r["method"] == "reference":
            par = "(itself)"
        elif a and a["complete"] and r["complete"]:
            par = parity(os.path.join(outs[r["key"]], "model.pt"), os.path.join(outs[a["key"]], "model.pt"))
            par = par if isinstance(par, str) else f"{par:.1e}"
        else:
            par = "(partial run)"
        rate_cols = (f"{r['rate'] * flops / 1e12:.1f} | {100 * r['rate'] * flops / 1e12 / args.peak_tflops:.1f}%"
                     if cuda else f"{r['rate'] * flops / 1e9:.1f}")
        gpu_col = (f"{r['gpu']:.0f} | " if r.get("gpu") is not None else "n/a | ") if cuda else ""
        partial = "" if r["complete"] else f" ({r['images']} images)"
        lines.append(f"| {r['name']}{partial} | {r['dtype']} | {r['rate']:.2f} | {vs_a} | {vs_b} | {rate_cols} | "
                     f"{r['wall']:.1f} | {r['rss']:.0f} | {gpu_col}{fmt_hours(FULL_RUN_IMAGES / max(r['rate'], 1e-9))} | "
                     f"{par} |")
    for r in rows:
        if r.get("detail"):
            d = r["detail"]
            lines.append(f"spatialid {r['key']} breakdown: batch {d['batch']}, forward {d['forward']:.2f} s, "
                         f"accumulate {d['accumulate']:.2f} s, model waiting for images {d['wait']:.2f} s, "
                         f"loader load {d['load']:.2f} s, preprocess {d['preprocess']:.2f} s")
    report = "\n".join(lines)
    print(report, flush=True)
    summary = {"results": RESULTS, "flops_per_image": flops, "flops_parts": parts, "report": report,
               "images": n_images, "device": args.device, "dtypes": dtypes, "family": args.family,
               "size": args.size, "alias": args.alias, "geometry": geom, "sequence": seq_len,
               "target_position": n_needed - 1, "peak_tflops": args.peak_tflops if cuda else None,
               "seconds": time.perf_counter() - started}
    with open(os.path.join(summary_dir, f"side_by_side_{tag}.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    with open(os.path.join(summary_dir, f"side_by_side_{tag}.md"), "w") as f:
        f.write(report + "\n")
    log(f"summary: {summary_dir}/side_by_side_{tag}.md and .json")


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="llava", choices=sorted(make_models.FAMILIES),
                    help="architecture of the random-weight model")
    ap.add_argument("--size", default="default", choices=["test", "default", "bench", "full"],
                    help="test: the family oracle's tiny model; default/bench: larger tiny LLaVA/InternVL; "
                         "full: --alias at full size (GPU)")
    ap.add_argument("--alias", default="", help="with --size=full: " + ", ".join(sorted(make_models.FULL_ALIASES)))
    ap.add_argument("--model_dir", default="", help="use this checkpoint (of --family) instead of making one")
    ap.add_argument("--pairs", type=int, default=0,
                    help=f"object pairs per method, 144 layouts each (default: by size), at most {len(PAIRS)}")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--dtypes", default="auto",
                    help="comma list of float32, bfloat16, float16; auto: bfloat16 on CUDA, float32 and (on a CPU "
                         "with fast bf16) bfloat16 on the CPU")
    ap.add_argument("--methods", default="reference,transformers,spatialid")
    ap.add_argument("--engines", default="planned,plain", help="spatialid engines to run")
    ap.add_argument("--in_memory", action="store_true", help="also spatialid on layouts drawn in memory")
    ap.add_argument("--batch_size", type=int, default=8, help="(b)'s batch size")
    ap.add_argument("--spatialid_batch_size", type=int, default=0, help="(c)'s --batch_size (0: auto)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads of every method (0: all cores)")
    ap.add_argument("--budget_s", type=float, default=0, help="time for the whole run (0: none)")
    ap.add_argument("--peak_tflops", type=float, default=DEFAULT_PEAK_TFLOPS, help="the device's dense bf16 peak")
    ap.add_argument("--work_dir", default="~/.cache/spatialid/side_by_side")
    ap.add_argument("--summary_dir", default="", help="where the .md/.json summary goes (default: $OUT or --work_dir)")
    objects = os.path.join(ROOT, "data", "objects")  # tools/setup.sh renders them
    if not os.path.isfile(os.path.join(objects, "camel.png")):
        objects = os.path.join(ROOT, "tools", "gpu_check", "assets", "objects")  # the copies in the tree
    ap.add_argument("--objects_dir", default=objects)
    ap.add_argument("--batch_extraction", default=os.path.join(ROOT, "bazel-bin", "examples", "batch_extraction"))
    ap.add_argument("--grid_data", default=os.path.join(ROOT, "bazel-bin", "examples", "grid_data"))
    ap.add_argument("--reference", default=runfile("tests/reference/spatial_id_reference.py"))
    ap.add_argument("--_worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--image_dir", default="", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    ap.add_argument("--deadline_s", type=float, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    ARGS = args
    for name in ["batch_extraction", "grid_data", "reference", "objects_dir"]:
        setattr(args, name, os.path.abspath(getattr(args, name)))
    if args._worker == "reference":
        return worker_reference(args)
    if args._worker == "transformers":
        return worker_transformers(args)
    args.images_dir = ""
    return main_run(args)


if __name__ == "__main__":
    main()
