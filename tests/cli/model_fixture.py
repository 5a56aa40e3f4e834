"""Shared inputs of the model-binary CLI tests: one tiny random-weight LLaVA
(tools/make_tiny_llava.py) and one small grid image set, made once per test
module, plus checkpoint variants that differ from it in one file."""
import os
import shutil
import subprocess
import sys

from PIL import Image, ImageDraw

import oracle_lib

SMALL_ID_GRID = oracle_lib.runfile("examples/small_id_grid")
BATCH_EXTRACTION = oracle_lib.runfile("examples/batch_extraction")
GRID_DATA = oracle_lib.runfile("examples/grid_data")
MAKE_TINY = oracle_lib.runfile("tools/make_tiny_llava.py")
CRASH_SIGNS = ("terminate called", "Segmentation fault", "Aborted", "core dumped",
               "AddressSanitizer", "stack trace", "Check failed", "Exception raised from")

COLOURS = {"camel": (200, 150, 60, 255), "frog": (40, 180, 70, 255), "dog": (120, 90, 60, 255),
           "cake": (230, 200, 220, 255)}


def make_inputs(root, grid_flags=("--pairs=camel_frog,dog_cake", "--sizes=16", "--cell=32")):
    """Writes {root}/tiny (checkpoint) and {root}/images (grid_data's layout,
    drawn with grid_flags); returns (model_dir, images_dir)."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    model_dir = os.path.join(root, "tiny")
    oracle_lib.run([sys.executable, MAKE_TINY, model_dir, "--size", "test", "--dtype", "float32",
                    "--seed", "7"])
    objects = os.path.join(root, "objects")
    os.makedirs(objects)
    for name, colour in COLOURS.items():
        im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
        ImageDraw.Draw(im).ellipse((3, 6, 37, 34), fill=colour)
        im.save(os.path.join(objects, name + ".png"))
    images = os.path.join(root, "images")
    oracle_lib.run([GRID_DATA, f"--objects_dir={objects}", f"--out={images}", "--threads=2",
                    *grid_flags])
    return model_dir, images


def model_variant(model_dir, name, edit):
    """A checkpoint folder beside model_dir whose files link to model_dir's,
    except those `edit(folder)` rewrites (it must remove a link before writing)."""
    out = os.path.join(os.path.dirname(model_dir), name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for f in os.listdir(model_dir):
        os.symlink(os.path.join(model_dir, f), os.path.join(out, f))
    edit(out)
    return out


def rewrite(folder, filename, transform):
    """Replaces folder/filename (a link) by a file holding transform(old bytes)."""
    path = os.path.join(folder, filename)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    with open(path, "wb") as f:
        f.write(transform(data))


def copy_images(images, root, name, pair="camel_frog"):
    """A copy of one pair folder of the image set, to break one file of."""
    out = os.path.join(root, name)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(os.path.join(images, pair), os.path.join(out, pair))
    return out


def run(args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)


def assert_one_line_failure(test, proc, args, *expected, prefixes=()):
    """Asserts a clean refusal: a positive exit (no signal), no sign of a C++
    abort, exactly one stderr line starting with one of `prefixes` and
    holding each expected text. Returns that line."""
    err = proc.stderr.strip()
    test.assertGreater(proc.returncode, 0, f"{args}: exit {proc.returncode}\n{err}")
    for sign in CRASH_SIGNS:
        test.assertNotIn(sign, err)
    lines = err.splitlines()
    test.assertEqual(len(lines), 1, f"{args}: expected one error line, got:\n{err}")
    test.assertTrue(lines[0].startswith(tuple(prefixes)), lines[0])
    for text in expected:
        test.assertIn(str(text), lines[0])
    print(f"{os.path.basename(str(args[0]))} -> exit {proc.returncode}: {lines[0][:300]}")
    return lines[0]
