"""Oracle for spatialid's Jinja interpreter, chat templates and prompts.

References, all from the project venv:
- transformers 5.3.0's own `render_jinja_template` (jinja2 3.1 in the exact
  environment transformers builds for chat templates) renders every template
  of docs/model_facts.md section 1 and the npm tokenizers' templates over a corpus of
  message lists; spatialid must print byte-identical text, and fail exactly
  where transformers fails (with the same raise_exception message).
- jinja2 itself renders a corpus of small templates covering the language
  (whitespace control, operators, filters, tests, loops, scoping, unicode,
  errors) under several lexer settings.
- transformers' processors for the five families, built offline from the npm
  tokenizer files and saved to a folder, show that spatialid finds the same
  template, renders the same prompt, applies the same BOS rule and that the
  documented placeholder expansions give the processors' token ids.
strftime_now is pinned to 2024-07-26 on both sides (spatialid's default
clock), except in the test of the real clock.
"""
import copy
import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import sys
import unittest
import warnings

# run_py_test.py puts only this file's folder on sys.path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))
import oracle_lib  # noqa: E402

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import jinja2  # noqa: E402
import jinja2.ext  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402
from transformers.utils.chat_template_utils import _compile_jinja_template, render_jinja_template  # noqa: E402

DRIVER = oracle_lib.runfile("spatialid/text/chat_template_render")
TEMPLATE_DIR = oracle_lib.runfile("spatialid/text/testdata/templates")
FIXED_DATE = datetime.datetime(2024, 7, 26)
QUESTION = "Is the frog to the left or right of the camel?"


def fixed_strftime_now(fmt):
    return FIXED_DATE.strftime(fmt)


def run_driver(requests):
    """Sends JSON requests to chat_template_render --requests; one answer each."""
    payload = "".join(json.dumps(r) + "\n" for r in requests)
    proc = subprocess.run([DRIVER, "--requests"], input=payload, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"driver exited {proc.returncode}: {proc.stderr}")
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    if len(answers) != len(requests):
        raise AssertionError(f"driver answered {len(answers)} of {len(requests)} requests: {proc.stderr}")
    return answers


def python_outcome(fn):
    try:
        return {"ok": True, "text": fn()}
    except Exception as e:  # noqa: BLE001 - any failure must be a failure on the C++ side too
        return {"ok": False, "type": type(e).__name__, "error": str(e)}


def compare(testcase, cases, expected, answers):
    """Byte equality where Python succeeds, an error where it fails."""
    mismatches = []
    for case, want, got in zip(cases, expected, answers):
        if want["ok"]:
            if not got.get("ok") or got.get("text") != want["text"]:
                mismatches.append((case, want, got))
        else:
            if got.get("ok"):
                mismatches.append((case, want, got))
            elif want["type"] == "TemplateError" and want["error"] not in got.get("error", ""):
                mismatches.append((case, want, got))
    if mismatches:
        lines = [f"{len(mismatches)} of {len(cases)} cases differ; first ones:"]
        for case, want, got in mismatches[:5]:
            lines.append(f"  case: {json.dumps(case, ensure_ascii=False)[:600]}")
            lines.append(f"  python: {json.dumps(want, ensure_ascii=False)[:600]}")
            lines.append(f"  spatialid: {json.dumps(got, ensure_ascii=False)[:600]}")
        testcase.fail("\n".join(lines))
    return len(cases)


def npm_dir(name):
    return oracle_lib.tokenizer_dir(name)


_TOKENIZERS = {}


def tokenizer(name):
    from transformers import AutoTokenizer

    if name not in _TOKENIZERS:
        _TOKENIZERS[name] = AutoTokenizer.from_pretrained(npm_dir(name))
    return _TOKENIZERS[name]


def special_tokens(name):
    return dict(tokenizer(name).special_tokens_map)


def text(t):
    return {"type": "text", "text": t}


IMAGE = {"type": "image"}

# Message lists: the reference's turns plus what chat templates branch on.
MESSAGE_LISTS = [
    ("image_then_text", [{"role": "user", "content": [IMAGE, text(QUESTION)]}]),
    ("text_only_list", [{"role": "user", "content": [text(QUESTION)]}]),
    ("text_only_string", [{"role": "user", "content": QUESTION}]),
    ("system_string_and_image", [
        {"role": "system", "content": "You are a careful spatial reasoner."},
        {"role": "user", "content": [IMAGE, text(QUESTION)]}]),
    ("system_list_text_only", [
        {"role": "system", "content": [text("Answer with one word.  ")]},
        {"role": "user", "content": [text(QUESTION)]}]),
    ("system_string_text_only", [
        {"role": "system", "content": "  Be brief.\n"},
        {"role": "user", "content": QUESTION}]),
    ("multi_turn_lists", [
        {"role": "user", "content": [IMAGE, text(QUESTION)]},
        {"role": "assistant", "content": [text("Left.")]},
        {"role": "user", "content": [text("Are you sure?")]}]),
    ("multi_turn_strings", [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Describe the image."}]),
    ("assistant_last", [
        {"role": "user", "content": [text("Say yes.")]},
        {"role": "assistant", "content": [text("Yes")]}]),
    ("two_images", [{"role": "user", "content": [IMAGE, IMAGE, text("Which image has the frog?")]}]),
    ("text_then_image", [{"role": "user", "content": [text("Look at this:"), IMAGE]}]),
    ("quotes", [{"role": "user", "content": [text("It's \"the\" frog's 'left', isn't it?")]}]),
    ("newlines_tabs", [{"role": "user", "content": [IMAGE, text("  line one\n\tline two\r\nline three  \n")]}]),
    ("unicode", [{"role": "user", "content": [text("Où est la grenouille ? 🐸 日本語 Ελληνικά ΟΔΟΣ Straße ﬁ İ")]}]),
    ("empty_text", [{"role": "user", "content": [IMAGE, text("")]}]),
    ("image_only", [{"role": "user", "content": [IMAGE]}]),
    ("braces_in_text", [{"role": "user", "content": [text("{{ x }} {% if y %} {# z #} }} %}")]}]),
    ("special_tokens_in_text", [{"role": "user", "content": [text("<image> <|im_start|> <bos> <|image|> <s>")]}]),
    ("backslashes", [{"role": "user", "content": [text("C:\\path\\new \\n \\\\ \\u00e9")]}]),
    ("two_user_turns", [
        {"role": "user", "content": [text("first")]},
        {"role": "user", "content": [text("second")]}]),
    ("system_only", [{"role": "system", "content": "Only a system prompt."}]),
    ("empty_conversation", []),
    ("tool_message", [
        {"role": "user", "content": "What is the weather?"},
        {"role": "tool", "content": "sunny"}]),
    ("ipython_mapping", [
        {"role": "user", "content": "Call it."},
        {"role": "ipython", "content": {"temperature": 21.5, "unit": "C", "ok": True}}]),
    ("assistant_tool_call", [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}],
         "content": ""}]),
    ("video_item", [{"role": "user", "content": [{"type": "video"}, text("What happens?")]}]),
    ("image_with_url", [{"role": "user", "content": [{"type": "image", "url": "x.png"}, text(QUESTION)]}]),
    ("image_url_key", [{"role": "user", "content": [{"type": "image_url", "image_url": "x.png"}, text(QUESTION)]}]),
    ("two_text_items", [{"role": "user", "content": [text("Part one."), text(" Part two.")]}]),
    ("whitespace_text", [{"role": "user", "content": [text("   \n  ")]}]),
    ("numbers_text", [{"role": "user", "content": [text("3 + 4 = 7; 1e3 != 1000? 0.1")]}]),
    ("long_conversation", [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "u3"}]),
    ("think_tags", [
        {"role": "user", "content": "Solve it."},
        {"role": "assistant", "content": "<think>\nreasoning\n</think>\n\nThe answer."},
        {"role": "user", "content": "Thanks"}]),
    ("uppercase_role", [{"role": "USER", "content": [text("shout")]}]),
]

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city. Quotes \"ok\" and unicode é.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                       "required": ["city"]},
    },
}]

EXTRA_VARIANTS = [
    {},
    {"add_vision_id": True, "date_string": "01 Jan 2025", "enable_thinking": False},
    {"tools": TOOLS},
]


def committed_template(name):
    with open(os.path.join(TEMPLATE_DIR, name), encoding="utf-8") as f:
        return f.read()


def npm_template(name):
    with open(os.path.join(npm_dir(name), "tokenizer_config.json"), encoding="utf-8") as f:
        return json.load(f)["chat_template"]


class ChatTemplateCorpusTest(unittest.TestCase):
    """Every template x every message list x add_generation_prompt x extras."""

    def check_template(self, source, tokens):
        cases, expected = [], []
        for name, messages in MESSAGE_LISTS:
            for add_generation_prompt in (True, False):
                for extra in EXTRA_VARIANTS:
                    tools = extra.get("tools")
                    kwargs = {k: v for k, v in extra.items() if k != "tools"}

                    def render(messages=messages, add_generation_prompt=add_generation_prompt,
                               tools=tools, kwargs=kwargs):
                        variables = {**tokens, **kwargs}
                        out, _ = render_jinja_template(
                            conversations=[copy.deepcopy(messages)], tools=tools, chat_template=source,
                            add_generation_prompt=add_generation_prompt, strftime_now=fixed_strftime_now,
                            **variables)
                        return out[0]

                    expected.append(python_outcome(render))
                    cases.append({"kind": "chat", "template": source, "special_tokens": tokens,
                                  "messages": messages, "add_generation_prompt": add_generation_prompt,
                                  "extra": extra, "name": name})
        n = compare(self, cases, expected, run_driver(cases))
        ok = sum(1 for e in expected if e["ok"])
        print(f"{n} renders compared ({ok} rendered, {n - ok} raised in both)")
        self.assertGreaterEqual(len(MESSAGE_LISTS), 30)
        self.assertGreater(ok, 0)

    def test_llava_1_5(self):
        self.check_template(committed_template("llava_1_5.jinja"), special_tokens("llama2"))

    def test_llava_1_5_13b_old(self):
        self.check_template(committed_template("llava_1_5_13b_old.jinja"), special_tokens("llama2"))

    def test_qwen2_vl(self):
        self.check_template(committed_template("qwen2_vl.jinja"), special_tokens("qwen3"))

    def test_llama_3_2_vision(self):
        self.check_template(committed_template("llama_3_2_vision.jinja"), special_tokens("llama3"))

    def test_internvl3(self):
        self.check_template(committed_template("internvl3.jinja"), special_tokens("qwen3"))

    def test_gemma3(self):
        self.check_template(committed_template("gemma3.jinja"), special_tokens("gemma3"))

    def test_npm_llama3(self):
        self.check_template(npm_template("llama3"), special_tokens("llama3"))

    def test_npm_qwen3(self):
        self.check_template(npm_template("qwen3"), special_tokens("qwen3"))

    def test_npm_gemma3(self):
        self.check_template(npm_template("gemma3"), special_tokens("gemma3"))

    def test_npm_llama2_has_no_template(self):
        with open(os.path.join(npm_dir("llama2"), "tokenizer_config.json"), encoding="utf-8") as f:
            self.assertIsNone(json.load(f).get("chat_template"))
        [answer] = run_driver([{"kind": "model_dir", "model_dir": npm_dir("llama2"), "messages": [],
                                "add_generation_prompt": True}])
        self.assertFalse(answer["ok"])
        self.assertIn("no chat template", answer["error"])


class ReferencePromptTest(unittest.TestCase):
    """The rendered strings docs/model_facts.md section 1 documents for the reference prompt."""

    GOLDEN = {
        "llava_1_5.jinja": ("llama2", "USER: <image>\nIs the frog to the left or right of the camel? ASSISTANT:"),
        "llava_1_5_13b_old.jinja": ("llama2",
                                    "USER: <image>\nIs the frog to the left or right of the camel? ASSISTANT:"),
        "qwen2_vl.jinja": ("qwen3", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                                    "<|vision_start|><|image_pad|><|vision_end|>Is the frog to the left or right of "
                                    "the camel?<|im_end|>\n<|im_start|>assistant\n"),
        "llama_3_2_vision.jinja": ("llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>"
                                             "Is the frog to the left or right of the camel?<|eot_id|>"
                                             "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        "internvl3.jinja": ("qwen3", "<|im_start|>user\n<IMG_CONTEXT>\nIs the frog to the left or right of the "
                                     "camel?<|im_end|>\n<|im_start|>assistant\n"),
        "gemma3.jinja": ("gemma3", "<bos><start_of_turn>user\n<start_of_image>Is the frog to the left or right of "
                                   "the camel?<end_of_turn>\n<start_of_turn>model\n"),
    }

    def test_golden_prompts(self):
        names = sorted(self.GOLDEN)
        requests = [{"kind": "chat", "template": committed_template(n), "special_tokens": special_tokens(self.GOLDEN[n][0]),
                     "messages": MESSAGE_LISTS[0][1], "add_generation_prompt": True} for n in names]
        for name, answer in zip(names, run_driver(requests)):
            self.assertTrue(answer["ok"], answer)
            self.assertEqual(answer["text"], self.GOLDEN[name][1], name)

    def test_llama_text_only_date(self):
        source = committed_template("llama_3_2_vision.jinja")
        messages = [{"role": "user", "content": [text(QUESTION)]}]
        requests = [{"kind": "chat", "template": source, "special_tokens": special_tokens("llama3"),
                     "messages": messages, "add_generation_prompt": True}]
        requests.append(dict(requests[0], clock="2025-02-03"))
        default, other = run_driver(requests)
        self.assertIn("Today Date: 26 Jul 2024\n\n", default["text"])
        self.assertIn("Today Date: 03 Feb 2025\n\n", other["text"])

    def test_system_clock(self):
        source = committed_template("llama_3_2_vision.jinja")
        messages = [{"role": "user", "content": [text(QUESTION)]}]
        tokens = special_tokens("llama3")
        before, _ = render_jinja_template(conversations=[messages], chat_template=source,
                                          add_generation_prompt=True, **tokens)
        [answer] = run_driver([{"kind": "chat", "template": source, "special_tokens": tokens,
                                "messages": messages, "add_generation_prompt": True, "clock": "system"}])
        after, _ = render_jinja_template(conversations=[messages], chat_template=source,
                                         add_generation_prompt=True, **tokens)
        self.assertIn(answer["text"], (before[0], after[0]))


# ---------------------------------------------------------------------------
# The Jinja language itself, against jinja2 with HF's filters and globals.

def python_env(trim_blocks, lstrip_blocks, keep_trailing_newline):
    env = ImmutableSandboxedEnvironment(trim_blocks=trim_blocks, lstrip_blocks=lstrip_blocks,
                                        keep_trailing_newline=keep_trailing_newline,
                                        extensions=[jinja2.ext.loopcontrols])

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = fixed_strftime_now
    return env


LEXER_SETTINGS = [(True, True, False), (False, False, False), (True, False, False), (False, True, False),
                  (True, True, True)]

WHITESPACE = [
    "a\n{% if true %}\nb\n{% endif %}\nc\n",
    "  {% if true %}x{% endif %}  \n  {%- if true -%}  y  {%- endif -%}  \nz",
    "{% for i in [1,2] %}\n    {{ i }}\n{% endfor %}\n",
    "line\n    {% set x = 1 %}\n    {{ x }}\n\t{# comment #}\n  after",
    "{{- '  a  ' -}}  \n  {{ 'b' }}  {{- 'c' }}  {{ 'd' -}}  \n",
    "x {%+ if true %} y {% endif +%}\n z",
    "{% raw %}  {{ not rendered }} {% if %}{% endraw %}\n{%- raw -%}  kept  {%- endraw %}\nend",
    "  {% raw %}\n{{ x }}\n  {% endraw %}\ntail",
    "{# multi\nline #}\nafter comment\n{#- strip -#}\n  next",
    "a\r\nb\rc\n{% if true %}\r\nd\r\n{% endif %}\r\n",
    "{{ 'x' }}\n{{ 'y' }}\n\n",
    "\u3000{% if true %}ideographic space{% endif %}\n",
    "{% if true %}   \n{% endif %}x",
    "{%- for x in 'ab' -%}\n  [{{ x }}]\n{%- endfor %}",
    "{% macro m() %}\n  body\n{% endmacro %}\n{{ m() }}|{{ m() }}",
    "{% set s %}\n  captured\n{% endset %}\n[{{ s }}]",
]

EXPRESSIONS = [
    "{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
    "{{ 1/3 }} {{ 2/2 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1.5e-7 }} {{ 0.0001 }} {{ -0.0 }} {{ 3.14159 }}",
    "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_0.5 }}",
    "{{ 'a' ~ 1 ~ none ~ true ~ 1.0 ~ [1, 'b'] ~ x }}",
    "{{ [1, 2] + [3] }} {{ (1,) }} {{ (1, 'a') }} {{ () }} {{ {'a': 1, 'b': [true, none]} }} {{ {1: 2} }}",
    "{{ 'ab' * 3 }} {{ 3 * 'c' }} {{ [0] * 3 }} {{ true + 1 }} {{ true * 2.5 }}",
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ (1,) == [1] }}",
    "{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 'x' in y }}",
    "{{ 1 and 'yes' }}|{{ 0 and 'no' }}|{{ '' or 'fallback' }}|{{ none or 0 }}|{{ not [] }}|{{ not 'a' }}",
    "{{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }} [{{ 'x' if false }}] {{ 1 if 0 else 2 if 0 else 3 }}",
    "{{ -1 | abs }} {{ - x.a }} {{ + 3 }} {{ not x.b }}",
    "{{ 'abcdef'[1:4] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-2:] }} {{ [1,2,3,4][::2] }} {{ [1,2,3][5:] }} "
    "{{ 'héllo'[1] }} {{ [1,2,3][-1] }} {{ [1,2][5] }}|{{ 'abc'[10:1:-2] }} {{ [1,2,3][-10:10] }}",
    "{{ x.a }} {{ x['a'] }} {{ x.missing }}|{{ x['missing'] }}|{{ l.0 }} {{ l[1] }} {{ x.__class__ }}|",
    "{{ \"it's\" }} {{ 'say \"hi\"' }} {{ ['it\\'s', \"a\\\"b\", 'x\\ny'] }} {{ '\\t|\\x41|\\u00e9|\\101' }}",
    "{{ 'adjacent' 'strings' }} {{ \"\\d\\q\" }} {{ 'line\\\ncontinued' }}",
    "{{ 12345678901234567 }} {{ 9007199254740993.0 }} {{ 1e300 * 10 }} {{ 2 ** 62 }}",
    "{{ x }} {{ l }} {{ u }} {{ f }} {{ n }} {{ b }} {{ e }}",
]

STRING_METHODS = [
    "{{ s.upper() }}|{{ s.lower() }}|{{ s.title() }}|{{ s.capitalize() }}|{{ s.swapcase() }}",
    "[{{ s.strip() }}]|[{{ s.lstrip() }}]|[{{ s.rstrip() }}]|[{{ 'xxhixx'.strip('x') }}]|[{{ s.strip(' H') }}]",
    "{{ s.split() }} {{ s.split(' ') }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} "
    "{{ 'a b c'.rsplit(None, 1) }} {{ '  a  b  '.split(None, 1) }} {{ 'a\\nb\\r\\nc'.splitlines() }}",
    "{{ s.startswith('  He') }} {{ s.endswith(('x', 'd  ')) }} {{ s.find('l') }} {{ s.rfind('l') }} "
    "{{ s.count('l') }} {{ s.replace('l', 'L') }} {{ s.replace('l', '', 2) }} {{ 'ab'.replace('', '-') }}",
    "{{ '-'.join(['a', 'b']) }} {{ 'x'.center(7, '*') }} {{ 'x'.ljust(3) }}| {{ 'x'.rjust(3, '0') }} "
    "{{ '42'.zfill(5) }} {{ '-7'.zfill(4) }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }}",
    "{{ 'abc'.isalpha() }} {{ 'a1'.isalnum() }} {{ '12'.isdigit() }} {{ ' '.isspace() }} {{ 'AB'.isupper() }} "
    "{{ 'ab'.islower() }} {{ ''.isalpha() }} {{ 'Hello World'.istitle() }}",
    "{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.jinja'.removesuffix('.jinja') }} "
    "{{ '{} and {}'.format('a', 1) }} {{ '{0}{name}'.format('x', name='y') }}",
    "{{ \"they're bill's friends\".title() }} {{ 'ß'.upper() }} {{ 'ΟΔΟΣ ΣΑΣ'.lower() }} {{ 'İ'.lower()|length }} "
    "{{ 'ﬁne'.upper() }} {{ 'ǆ'.title() }} {{ 'éclair'.capitalize() }}",
    "{{ '%s and %d' % ('x', 3) }} {{ '%5.2f|%-4d|%x' % (3.14159, 7, 255) }} {{ '%(a)s' % {'a': 1} }} "
    "{{ '%r' % 'q' }} {{ '100%%' % () }}",
    "{{ u.upper() }} {{ u|length }} {{ u[0] }} {{ u[-1] }} {{ u.split() }} {{ u|reverse }}",
]

FILTERS = [
    "{{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ s|upper }}|{{ s|lower }}|{{ s|title }}|{{ s|capitalize }}",
    "{{ \"they're-a(b) [c]{d}<e>f\"|title }} {{ 'hELLO wORLD'|title }}",
    "{{ l|length }} {{ 'héllo'|length }} {{ x|length }} {{ u|count }} {{ none_var|length }}",
    "{{ m|selectattr('type', 'equalto', 'image')|list }} {{ m|rejectattr('type', 'equalto', 'image')|list }} "
    "{{ m|selectattr('text')|list }} {{ m|rejectattr('text')|list|length }}",
    "{{ m|map(attribute='type')|list }} {{ m|map(attribute='text', default='-')|join(',') }} "
    "{{ ['a', 'b']|map('upper')|join }} {{ [1, 2, 3]|select('odd')|list }} {{ [1, 2, 3]|reject('odd')|list }}",
    "{{ m|selectattr('type', '==', 'text')|map(attribute='text')|join(' / ') }} {{ [1, 2, 3]|select('gt', 1)|list }}",
    "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'a']|sort }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} "
    "{{ [3, 1, 2]|sort(reverse=true) }} {{ m|sort(attribute='type')|map(attribute='type')|list }}",
    "{{ ['a', 'A', 'b', 'a']|unique|list }} {{ ['a', 'A']|unique(case_sensitive=true)|list }} "
    "{{ [1, 2]|reverse|list }} {{ 'abc'|reverse }} {{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} [{{ []|first }}]",
    "{{ x|items|list }} {{ {'b': 2, 'a': 3, 'C': 1}|dictsort }} {{ {'b': 2, 'a': 3}|dictsort(by='value', "
    "reverse=true) }} {{ {'b': 1, 'A': 2}|dictsort(true) }} {{ x|list }}",
    "{{ none|default('d') }} {{ undefined_name|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} "
    "{{ undefined_name|d('short') }} {{ 0|default(5, boolean=true) }}",
    "{{ x|tojson }} {{ m|tojson }} {{ 'é\"\\n'|tojson }} {{ [1.0, 2.5, none, true]|tojson }} {{ {}|tojson }}",
    "{{ x|tojson(indent=2) }}|{{ m|tojson(indent=4) }}|{{ [[], {}, [1]]|tojson(indent=1) }}",
    "{{ {'b': 1, 'a': [1, 2]}|tojson(sort_keys=true, separators=(',', ':')) }} {{ 'é'|tojson(ensure_ascii=true) }} "
    "{{ '😀'|tojson(ensure_ascii=true) }} {{ '\\x01\\x7f'|tojson }}",
    "{{ 42|string }}{{ [1]|string }} {{ '12'|int + 1 }} {{ '3.7'|int }} {{ 'x'|int(-1) }} {{ 3.9|int }} "
    "{{ '0x1A'|int(0, 16) }} {{ ' 12 '|int }} {{ '1_000'|int }} {{ true|int }} {{ '2.5'|float }} {{ 'x'|float }}",
    "{{ 'aXbX'|replace('X', 'y') }} {{ 'aXbX'|replace('X', 'y', 1) }} {{ [1, 2, 3]|sum }} "
    "{{ m|sum(attribute='n', start=10) }} {{ [3, 1, 2]|max }} {{ [3, 1, 2]|min }} {{ ['b', 'A']|max }}",
    "{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 3|round }} {{ 1.25|round(1, 'floor') }} "
    "{{ 1.21|round(1, 'ceil') }} {{ -3|abs }} {{ -2.5|abs }}",
    "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent('> ', blank=true) }}",
    "{{ 'one two  three'|wordcount }} {{ '<a&b>'|e }} {{ '<x>'|escape }} {{ '%s-%s'|format(1, 2) }} "
    "{{ 'x'|center(5) }}| {{ [1, 2]|join('-') }} {{ m|join(', ', attribute='type') }}",
    "{{ m|map(attribute='type')|first }} {{ (m|selectattr('type', 'equalto', 'none'))|list|length }} "
    "{{ [m|selectattr('type', 'equalto', 'none')]|length }} {{ 'safe'|safe }} {{ x|attr('items') is callable }}",
]

TESTS = [
    "{{ x is defined }} {{ nope is defined }} {{ nope is undefined }} {{ none is none }} {{ 0 is none }}",
    "{{ 's' is string }} {{ 1 is string }} {{ x is mapping }} {{ l is mapping }} {{ l is iterable }} "
    "{{ 's' is iterable }} {{ 1 is iterable }} {{ nope is iterable }} {{ x is iterable }}",
    "{{ l is sequence }} {{ 's' is sequence }} {{ x is sequence }} {{ 1 is sequence }} {{ nope is sequence }}",
    "{{ 1 is number }} {{ 1.5 is number }} {{ true is number }} {{ 's' is number }} {{ 1 is integer }} "
    "{{ true is integer }} {{ 1.0 is float }} {{ true is boolean }}",
    "{{ 'a' is equalto 'a' }} {{ 1 is eq 1.0 }} {{ 2 is ne 3 }} {{ 3 is gt 2 }} {{ 3 is ge 3 }} {{ 1 is lt 2 }} "
    "{{ 1 is le 0 }} {{ [1, 2, 1]|select('==', 1)|list }} {{ 2 is greaterthan 1 }} {{ 1 is lessthan 2 }}",
    "{{ false is false }} {{ 0 is false }} {{ true is true }} {{ 1 is true }} {{ 3 is odd }} {{ 4 is even }} "
    "{{ 9 is divisibleby 3 }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 2 is in [1, 2] }}",
    "{{ x is not defined }} {{ not x is defined }} {{ l is not string }} {{ none is sameas none }} "
    "{{ 'upper' is filter }} {{ 'odd' is test }} {{ range is callable }} {{ x.get is callable }}",
]

LOOPS = [
    "{% for i in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
    "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
    "{% for i in l if i > 1 %}{{ i }}/{{ loop.index }}/{{ loop.length }} {% else %}none{% endfor %}",
    "{% for i in [] %}x{% else %}empty{% endfor %}{% for i in nope %}x{% else %}undef{% endfor %}",
    "{% for i in l %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}"
    "{% endfor %}",
    "{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}{% for k in x %}{{ k }}{% endfor %}",
    "{% for a, b in [[1, 2], (3, 4), 'xy'] %}{{ a }}{{ b }}{% endfor %}",
    "{% for c in 'héllo' %}{{ c }}.{% endfor %}{% for i in range(3) %}{{ i }}{% endfor %}"
    "{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}",
    "{% for i in l %}{{ loop.cycle('a', 'b') }}{{ loop.previtem }}/{{ loop.nextitem }} {% endfor %}",
    "{% for i in [1, 1, 2] %}{{ loop.changed(i) }}{% endfor %}",
    "{% for i in l %}{% for j in l %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}",
    "{% set x = 0 %}{% for i in l %}{{ x }}{% set x = x + i %}{{ x }} {% endfor %}{{ x }}",
    "{% for i in l %}{% if i == 1 %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}[{{ y }}]",
    "{% set ns = namespace(total=0, seen=[]) %}{% for i in l %}{% set ns.total = ns.total + i %}"
    "{% set ns.seen = ns.seen + [i] %}{% endfor %}{{ ns.total }} {{ ns.seen }} {{ ns }}",
    "{% if true %}{% set z = 3 %}{% endif %}{{ z }} {% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t = 1, %}{{ t }}",
    "{% set messages = l[1:] %}{{ messages }} {% for m in messages[::-1] %}{{ m }}{% endfor %}",
    "{% for m in m %}{{ m.type }}{% endfor %}{{ m|length }}",
    "{% macro f(a, b='B', c=none) %}[{{ a }}{{ b }}{{ c }}]{% endmacro %}{{ f(1) }}{{ f(1, 2) }}{{ f(c=3, a=4) }}"
    "{{ f() }}",
    "{% macro outer(n) %}{% if n > 0 %}{{ n }}{{ outer(n - 1) }}{% endif %}{% endmacro %}{{ outer(3) }}",
    "{% macro v(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ v(1, 2, 3, k=4) }}{{ v() }}{{ v }}"
    "{% macro w(a, b=a) %}{{ b }}{% endmacro %}{{ w(3) }}",
    "{% set v = 'top' %}{% macro show() %}{{ v }}{% endmacro %}{{ show() }}{% set v = 'changed' %}{{ show() }}",
    "{% set block %}a{{ 1 + 1 }}b{% endset %}{{ block }}{{ block|length }}"
    "{% set up | upper %}shout{% endset %}{{ up }}{% filter upper %}filtered {{ 'x' }}{% endfilter %}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}] {% print 'printed', 1 %}",
    "{% for i in l %}{% set ns = namespace(v=i) %}{% for j in l if j != ns.v %}{{ ns.v }}{{ j }},"
    "{% endfor %}{% endfor %}",
    "{% set c = cycler('x', 'y') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}"
    "{% set j = joiner('+') %}{% for i in l %}{{ j() }}{{ i }}{% endfor %} {{ dict(a=1, b=2) }}",
    "{{ namespace(a=1).a }} {{ namespace({'k': 'v'}).k }} {{ strftime_now('%d %b %Y %A %j') }}",
]

ERRORS = [
    "{{ nope.attr }}",
    "{{ x.missing.deeper }}",
    "{{ nope + 1 }}",
    "{{ 'a' + 1 }}",
    "{{ 1 / 0 }}",
    "{{ 1 // 0 }}",
    "{{ 1 < 'a' }}",
    "{{ nope() }}",
    "{{ none() }}",
    "{{ raise_exception('Conversation roles must alternate') }}",
    "{{ x | nosuchfilter }}",
    "{{ x is nosuchtest }}",
    "{% for %}",
    "{% if true %}unclosed",
    "{% for i in l %}unclosed",
    "{% endfor %}",
    "{% unknowntag %}",
    "{{ unclosed",
    "{# unclosed comment",
    "{{ 'unterminated }}",
    "{{ (1, 2 }}",
    "{{ l.append(1) }}",
    "{{ x.pop('a') }}",
    "{{ x.__class__() }}",
    "{% set ns = 1 %}{% set ns.a = 2 %}",
    "{% for a, b in [1] %}{% endfor %}",
    "{{ [1, 2]|tojson(indent=2) }}{{ nope|tojson }}",
    "{{ range(1000000) }}",
    "{{ 'abc'[::0] }}",
    "{{ 1 if }}",
    "{% break %}",
    "{{ x['missing']['b'] }}",
    "{{ m|selectattr('type', 'equalto', 'image')|length }}",
    "{{ 'x'|int(base=99) }}{{ 'é' | tojson | nosuch }}",
]

CONSTRUCT_VARIABLES = {
    "x": {"a": 1, "b": "two", "c": [1, 2]},
    "l": [1, 2, 3],
    "s": "  Hello World  ",
    "u": "Grüße, 世界 🐸 ΟΔΟΣ",
    "f": 2.5,
    "n": None,
    "b": True,
    "e": "",
    "m": [{"type": "image", "n": 1}, {"type": "text", "text": "hi", "n": 2}, {"type": "text", "text": "", "n": 3}],
}


class JinjaConstructTest(unittest.TestCase):
    """Small templates rendered by jinja2 and by spatialid under several lexer settings."""

    def check(self, sources, settings=LEXER_SETTINGS):
        cases, expected = [], []
        for source in sources:
            for trim, lstrip, keep in settings:
                env = python_env(trim, lstrip, keep)

                def render(source=source, env=env):
                    return env.from_string(source).render(copy.deepcopy(CONSTRUCT_VARIABLES))

                expected.append(python_outcome(render))
                cases.append({"kind": "render", "template": source, "variables": CONSTRUCT_VARIABLES,
                              "options": {"trim_blocks": trim, "lstrip_blocks": lstrip,
                                          "keep_trailing_newline": keep, "loop_controls": True},
                              "hf_globals": True})
        n = compare(self, cases, expected, run_driver(cases))
        ok = sum(1 for e in expected if e["ok"])
        print(f"{n} renders compared ({ok} rendered, {n - ok} raised in both)")
        return expected

    def test_whitespace_control(self):
        self.check(WHITESPACE)

    def test_expressions(self):
        self.check(EXPRESSIONS, LEXER_SETTINGS[:1])

    def test_string_methods(self):
        self.check(STRING_METHODS, LEXER_SETTINGS[:1])

    def test_filters(self):
        self.check(FILTERS, LEXER_SETTINGS[:1])

    def test_tests(self):
        self.check(TESTS, LEXER_SETTINGS[:1])

    def test_loops_scoping_macros(self):
        self.check(LOOPS, LEXER_SETTINGS[:2])

    def test_errors(self):
        expected = self.check(ERRORS, LEXER_SETTINGS[:1])
        failing = sum(1 for e in expected if not e["ok"])
        # Every entry fails in jinja2 (and therefore in spatialid, checked above).
        self.assertEqual(failing, len(ERRORS), [s for s, e in zip(ERRORS, expected) if e["ok"]])

    def test_random_whitespace_templates(self):
        # Seeded random nestings of text, whitespace and tags with every
        # whitespace-control modifier.
        import random

        rng = random.Random(1234)
        texts = ["a", " ", "  ", "\n", "\t", " \n ", "\n\n", "b\n  ", "\u3000", "x y"]
        opens = ["{%s if true %s}", "{%s for i in [1, 2] %s}", "{%s set s %s}"]
        closes = {"if": "{%s endif %s}", "for": "{%s endfor %s}", "set": "{%s endset %s}{{ s }}"}
        leaves = ["{{%s 'v' %s}}", "{#%s c %s#}", "{%s raw %s} {{ raw }} {%s endraw %s}"]

        def mod():
            return rng.choice(["", "", "-", "+"])

        def seq(depth):
            out = []
            for _ in range(rng.randint(1, 4)):
                r = rng.random()
                if r < 0.45:
                    out.append(rng.choice(texts))
                elif r < 0.7 or depth > 2:
                    leaf = rng.choice(leaves)
                    out.append(leaf % tuple(mod().replace("+", "") if "{{" in leaf else mod()
                                            for _ in range(leaf.count("%s"))))
                else:
                    tag = rng.choice(opens)
                    kind = tag.split()[1]
                    out.append(tag % (mod(), mod()) + seq(depth + 1) + closes[kind] % (mod(), mod()))
            return "".join(out)

        sources = [seq(0) for _ in range(250)]
        self.check(sources)

    def test_random_expressions(self):
        # Seeded random expressions over literals, variables, operators,
        # filters, tests and methods; errors must match errors.
        import random

        rng = random.Random(4321)
        atoms = ["0", "1", "2", "3", "-4", "12", "0.5", "-1.25", "2.0", "1e20", "'a'", "'Ab c'", "''", "' x '",
                 "'é'", "'1'", "none", "true", "false", "[1, 2]", "['b', 'a']", "[]", "{'a': 1}", "(1, 'a')",
                 "x", "l", "s", "u", "m", "nope", "x.a", "x.b", "m[0]", "l[-1]"]
        binary = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "and", "or"]
        filters = ["trim", "upper", "lower", "length", "first", "last", "list", "string", "int", "float", "abs",
                   "capitalize", "title", "reverse|list", "unique|list", "sort", "tojson", "default('d')",
                   "join(',')", "replace('a', 'b')", "round(1)", "items|list", "map('string')|list",
                   "select|list", "reject|list", "selectattr('type')|list", "map(attribute='type')|list",
                   "sum", "max", "min", "count", "wordcount", "safe", "e", "d(1, true)", "indent(2)", "center(5)"]
        tests = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable",
                 "sequence", "true", "false", "odd", "even", "boolean", "lower", "upper", "eq 1", "ne 'a'",
                 "in [1, 'a']", "divisibleby 2", "gt 0", "callable"]
        methods = [".upper()", ".lower()", ".strip()", ".split()", ".title()", ".startswith('a')",
                   ".replace('a', 'z')", ".get('a')", ".count(1)", ".index(1)", ".keys()|list", ".split(' ')",
                   ".endswith(('c', 'x'))", ".find('b')", ".capitalize()", ".isdigit()", ".join(['p', 'q'])"]

        def expr(depth):
            r = rng.random()
            if depth >= 3 or r < 0.25:
                return rng.choice(atoms)
            if r < 0.5:
                return f"({expr(depth + 1)} {rng.choice(binary)} {expr(depth + 1)})"
            if r < 0.62:
                return f"({expr(depth + 1)})|{rng.choice(filters)}"
            if r < 0.72:
                return f"({expr(depth + 1)} is {rng.choice(['', 'not '])}{rng.choice(tests)})"
            if r < 0.8:
                return f"({expr(depth + 1)}){rng.choice(methods)}"
            if r < 0.86:
                return f"({expr(depth + 1)} if {expr(depth + 1)} else {expr(depth + 1)})"
            if r < 0.92:
                return f"({rng.choice(['-', 'not '])}{expr(depth + 1)})"
            if r < 0.96:
                index = rng.choice(["0", "-1", "1:", "::-1", "'a'", ":1"])
                return f"({expr(depth + 1)})[{index}]"
            return f"({expr(depth + 1)}) ** {rng.choice(['0', '1', '2', '3'])}"

        env = python_env(True, True, False)
        cases, expected, skipped = [], [], 0
        # Python internals spatialid prints differently (addresses, views, ranges).
        unmatchable = (" at 0x", "dict_keys(", "dict_values(", "dict_items(", "range(", "<generator",
                       "<built-in", "<bound", "<function", "<jinja2", "Markup(")
        # Python ints beyond 64 bits (spatialid raises OverflowError instead).
        big_int = re.compile(r"(?<![\d.])-?\d{19,}(?![\d.e])")
        for _ in range(5000):
            source = "{{ " + expr(0) + " }}"
            want = python_outcome(lambda source=source: env.from_string(source).render(
                copy.deepcopy(CONSTRUCT_VARIABLES)))
            if want["ok"] and (any(u in want["text"] for u in unmatchable) or big_int.search(want["text"])):
                skipped += 1
                continue
            expected.append(want)
            cases.append({"kind": "render", "template": source, "variables": CONSTRUCT_VARIABLES,
                          "options": {"trim_blocks": True, "lstrip_blocks": True, "loop_controls": True},
                          "hf_globals": True})
        answers = run_driver(cases)
        # An int beyond 64 bits that Python computed but never printed.
        kept = [(c, e, a) for c, e, a in zip(cases, expected, answers)
                if not (e["ok"] and "does not fit in 64 bits" in a.get("error", ""))]
        skipped += len(cases) - len(kept)
        compare(self, [k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept])
        ok = sum(1 for k in kept if k[1]["ok"])
        print(f"{len(kept)} random expressions compared ({ok} rendered, {len(kept) - ok} raised in both, "
              f"{skipped} skipped: Python object reprs or ints beyond 64 bits)")
        self.assertGreater(ok, 1000)

    def test_random_statements(self):
        # Seeded random nestings of for/if/set/with/macro/namespace, printing
        # variables at every level: Jinja's scoping rules.
        import random

        rng = random.Random(int(os.environ.get("SEED", "777")))
        names = ["a", "b", "c"]
        values = ["1", "a", "b ~ 'x'", "(a or 0) + 1", "[a, b]", "loop.index", "i", "'s'", "c|length"]

        def stmt(depth, in_loop, in_macro):
            r = rng.random()
            v = rng.choice(names)
            if depth > 3 or r < 0.2:
                return "{{ " + rng.choice(names + ["ns.v", "i", "loop.index0", "x"]) + " }}|"
            if r < 0.4:
                return "{% set " + v + " = " + rng.choice(values) + " %}"
            if r < 0.48:
                return "{% set ns.v = ns.v ~ " + v + " %}"
            if r < 0.62:
                flt = rng.choice(["", " if i != 2"])
                els = rng.choice(["", "{% else %}" + body(depth + 1, in_loop, in_macro)])
                return ("{% for i in [1, 2, 3]" + flt + " %}" + body(depth + 1, True, in_macro) + els
                        + "{% endfor %}")
            if r < 0.74:
                return ("{% if " + v + " is defined %}" + body(depth + 1, in_loop, in_macro) + "{% else %}"
                        + body(depth + 1, in_loop, in_macro) + "{% endif %}")
            if r < 0.8:
                return "{% with " + v + " = 7 %}" + body(depth + 1, in_loop, in_macro) + "{% endwith %}"
            if r < 0.86 and in_loop:
                return rng.choice(["{% if i == 2 %}{% break %}{% endif %}", "{% if i == 1 %}{% continue %}{% endif %}"])
            if r < 0.93 and not in_macro:
                name = "m" + str(rng.randint(0, 999))
                return ("{% macro " + name + "(p) %}{{ p }}" + body(depth + 1, False, True) + "{% endmacro %}"
                        + "{{ " + name + "(" + v + ") }}|")
            return "{% set blk %}" + body(depth + 1, in_loop, in_macro) + "{% endset %}[{{ blk }}]"

        def body(depth, in_loop, in_macro):
            return "".join(stmt(depth, in_loop, in_macro) for _ in range(rng.randint(1, 3)))

        sources = ["{% set ns = namespace(v='') %}{% set b = 'B' %}" + body(0, False, False) + "{{ ns.v }}|{{ a }}"
                   for _ in range(int(os.environ.get("N_STATEMENTS", "800")))]
        expected = self.check(sources, LEXER_SETTINGS[:1])
        self.assertGreater(sum(1 for e in expected if e["ok"]), len(sources) // 2)

    def test_float_formatting(self):
        import random

        rng = random.Random(99)
        floats = [0.0, -0.0, 1.0, 0.1, 1e16, 1e15, 1e-4, 1e-5, 123456789.125, 2.0 ** 60, 5e-324, 1.7976931348623157e308]
        for _ in range(300):
            floats.append(rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30))
            floats.append(float(rng.randint(-10 ** 6, 10 ** 6)) / rng.choice([1, 2, 3, 7, 10, 1000]))
        source = "{{ values }}|{% for v in values %}{{ v }} {{ v * 3 }} {{ v // 7 }} {{ v % 7 }} {{ v|round(3) }};{% endfor %}"
        env = python_env(True, True, False)
        want = python_outcome(lambda: env.from_string(source).render(values=floats))
        case = {"kind": "render", "template": source, "variables": {"values": floats},
                "options": {"trim_blocks": True, "lstrip_blocks": True}}
        compare(self, [case], [want], run_driver([case]))
        self.assertTrue(want["ok"])

    def test_hf_environment_generation_tag(self):
        # transformers' compiled environment (AssistantTracker) against the driver's chat path.
        source = "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}|{% endfor %}"
        compiled = _compile_jinja_template(source)
        messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        want = compiled.render(messages=messages, add_generation_prompt=False)
        [got] = run_driver([{"kind": "chat", "template": source, "messages": messages,
                             "add_generation_prompt": False}])
        self.assertEqual(got.get("text"), want)


# ---------------------------------------------------------------------------
# transformers' processors and checkpoint folders.

def _tokenizer_with(name, extra_tokens=None, named=None):
    from transformers import AutoTokenizer

    kwargs = {"extra_special_tokens": named} if named else {}
    tok = AutoTokenizer.from_pretrained(npm_dir(name), **kwargs)
    tokens = list(extra_tokens or []) + list((named or {}).values())
    if tokens:
        tok.add_tokens(tokens, special_tokens=True)
    return tok


def build_processor(family):
    import transformers as tf

    if family == "llava":
        ip = tf.CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
        return tf.LlavaProcessor(image_processor=ip, tokenizer=_tokenizer_with("llama2", ["<image>"]),
                                 chat_template=committed_template("llava_1_5.jinja"), patch_size=14,
                                 vision_feature_select_strategy="default", num_additional_image_tokens=1)
    if family == "qwen2_vl":
        return tf.Qwen2VLProcessor(image_processor=tf.Qwen2VLImageProcessor(), tokenizer=_tokenizer_with("qwen3"),
                                   video_processor=tf.Qwen2VLVideoProcessor(),
                                   chat_template=committed_template("qwen2_vl.jinja"))
    if family == "mllama":
        from tokenizers.processors import TemplateProcessing

        tok = _tokenizer_with("llama3", ["<|image|>"])
        # The npm Llama 3 tokenizer.json adds no BOS; Llama 3.2's adds
        # <|begin_of_text|> through a TemplateProcessing post-processor, which
        # is what makes the processor's BOS rule matter.
        tok.backend_tokenizer.post_processor = TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", tok.convert_tokens_to_ids("<|begin_of_text|>"))])
        return tf.MllamaProcessor(image_processor=tf.MllamaImageProcessor(), tokenizer=tok,
                                  chat_template=committed_template("llama_3_2_vision.jinja"))
    if family == "internvl":
        named = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
                 "video_token": "<video>"}
        return tf.InternVLProcessor(image_processor=tf.GotOcr2ImageProcessorFast(size={"height": 448, "width": 448}),
                                    tokenizer=_tokenizer_with("qwen3", named=named),
                                    video_processor=tf.InternVLVideoProcessor(),
                                    chat_template=committed_template("internvl3.jinja"), image_seq_length=256)
    if family == "gemma3":
        return tf.Gemma3Processor(image_processor=tf.Gemma3ImageProcessor(), tokenizer=_tokenizer_with("gemma3"),
                                  chat_template=committed_template("gemma3.jinja"))
    raise ValueError(family)


# docs/model_facts.md section 1: the placeholder in the rendered prompt and its
# expansion for one 896x896 image.
EXPANSIONS = {
    "llava": ("<image>", "<image>" * 576),
    "qwen2_vl": ("<|image_pad|>", "<|image_pad|>" * 1024),
    "mllama": ("<|image|>", "<|image|>"),
    "internvl": ("<IMG_CONTEXT>", "<img>" + "<IMG_CONTEXT>" * 1280 + "</img>"),
    "gemma3": ("<start_of_image>", "\n\n<start_of_image>" + "<image_soft_token>" * 256 + "<end_of_image>\n\n"),
}


class ProcessorOracleTest(unittest.TestCase):
    """transformers' own apply_chat_template per family, on a saved processor folder."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(dir=oracle_lib.tmpdir())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def check_family(self, family):
        import numpy as np
        from PIL import Image
        from transformers import AutoProcessor

        folder = os.path.join(self.root, family)
        build_processor(family).save_pretrained(folder)
        processor = AutoProcessor.from_pretrained(folder)
        image = Image.fromarray(np.zeros((896, 896, 3), dtype=np.uint8))
        placeholder, expansion = EXPANSIONS[family]
        requests = [{"kind": "prompt", "model_dir": folder, "text": QUESTION, "with_image": w} for w in (True, False)]
        answers = run_driver(requests)
        for with_image, answer in zip((True, False), answers):
            self.assertTrue(answer["ok"], answer)
            content = ([{"type": "image"}] if with_image else []) + [text(QUESTION)]
            messages = [{"role": "user", "content": content}]
            want_text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                      strftime_now=fixed_strftime_now)
            self.assertEqual(answer["text"], want_text)
            # Token ids: the processor's own tokenization against the C++
            # BOS decision and the documented expansion.
            content_with_pixels = ([{"type": "image", "image": image}] if with_image else []) + [text(QUESTION)]
            out = processor.apply_chat_template([{"role": "user", "content": content_with_pixels}],
                                                add_generation_prompt=True, tokenize=True, return_dict=True,
                                                strftime_now=fixed_strftime_now)
            want_ids = [int(i) for i in np.asarray(out["input_ids"]).reshape(-1)]
            expanded = answer["text"].replace(placeholder, expansion) if with_image else answer["text"]
            got_ids = processor.tokenizer(expanded, add_special_tokens=answer["add_special_tokens"])["input_ids"]
            self.assertEqual(got_ids, want_ids, f"{family} with_image={with_image}")
            flipped = processor.tokenizer(expanded, add_special_tokens=not answer["add_special_tokens"])["input_ids"]
            if family != "qwen2_vl" and family != "internvl":  # these tokenizers add nothing either way
                self.assertNotEqual(flipped, want_ids, "the BOS decision must matter for this tokenizer")
            print(f"{family} with_image={with_image}: {len(want_ids)} ids identical, "
                  f"add_special_tokens={answer['add_special_tokens']}")

    def test_llava(self):
        self.check_family("llava")

    def test_qwen2_vl(self):
        self.check_family("qwen2_vl")

    def test_mllama(self):
        self.check_family("mllama")

    def test_internvl(self):
        self.check_family("internvl")

    def test_gemma3(self):
        self.check_family("gemma3")


class CheckpointLookupTest(unittest.TestCase):
    """Which file wins, against AutoProcessor and AutoTokenizer on the same folder."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(dir=oracle_lib.tmpdir())
        cls.base = os.path.join(cls.root, "base")
        build_processor("llava").save_pretrained(cls.base)
        cls.messages = [{"role": "user", "content": [IMAGE, text(QUESTION)]}]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def folder(self, name):
        path = os.path.join(self.root, name)
        shutil.copytree(self.base, path)
        return path

    @staticmethod
    def edit_json(path, fn):
        data = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        fn(data)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)

    def hf(self, folder, loader):
        from transformers import AutoProcessor, AutoTokenizer

        def render():
            obj = (AutoProcessor if loader == "processor" else AutoTokenizer).from_pretrained(folder)
            return obj.apply_chat_template(self.messages, add_generation_prompt=True, tokenize=False)

        return python_outcome(render)

    def check(self, folder, expect_processor=None, expect_tokenizer=None):
        cases = [{"kind": "model_dir", "model_dir": folder, "lookup": lookup, "messages": self.messages,
                  "add_generation_prompt": True} for lookup in ("processor", "tokenizer")]
        expected = [self.hf(folder, "processor"), self.hf(folder, "tokenizer")]
        answers = run_driver(cases)
        compare(self, cases, expected, answers)
        for want, answer in zip((expect_processor, expect_tokenizer), answers):
            if want is not None:
                self.assertEqual(answer.get("text"), want, answer)
        return answers

    def test_saved_processor_uses_chat_template_jinja(self):
        folder = self.folder("jinja")
        answers = self.check(folder)
        self.assertTrue(answers[0]["origin"].endswith("chat_template.jinja"), answers[0])

    def test_processor_config_key_wins(self):
        folder = self.folder("processor_config")
        self.edit_json(os.path.join(folder, "processor_config.json"),
                       lambda d: d.__setitem__("chat_template", "PC {{ messages|length }}"))
        self.check(folder, expect_processor="PC 1")

    def test_legacy_chat_template_json_wins_over_jinja(self):
        folder = self.folder("legacy")
        self.edit_json(os.path.join(folder, "chat_template.json"),
                       lambda d: d.__setitem__("chat_template", "LEGACY {{ bos_token }}"))
        answers = self.check(folder, expect_processor="LEGACY <s>")
        self.assertTrue(answers[0]["origin"].endswith("chat_template.json"))

    def test_tokenizer_config_only(self):
        folder = self.folder("tokenizer_config_only")
        os.remove(os.path.join(folder, "chat_template.jinja"))
        self.edit_json(os.path.join(folder, "tokenizer_config.json"),
                       lambda d: d.__setitem__("chat_template", "TOK {{ messages[0].role }}"))
        answers = self.check(folder, expect_tokenizer="TOK user")
        self.assertFalse(answers[0]["ok"])  # transformers' processor has no template either
        [auto] = run_driver([{"kind": "model_dir", "model_dir": folder, "lookup": "auto", "messages": self.messages,
                              "add_generation_prompt": True}])
        self.assertEqual(auto.get("text"), "TOK user")

    def test_tokenizer_config_named_list(self):
        folder = self.folder("named_list")
        os.remove(os.path.join(folder, "chat_template.jinja"))
        self.edit_json(os.path.join(folder, "tokenizer_config.json"), lambda d: d.__setitem__("chat_template", [
            {"name": "tool_use", "template": "TOOLS"}, {"name": "default", "template": "DEFAULT {{ eos_token }}"}]))
        self.check(folder, expect_tokenizer="DEFAULT </s>")
        [named] = run_driver([{"kind": "model_dir", "model_dir": folder, "lookup": "tokenizer",
                               "template_name": "tool_use", "messages": self.messages,
                               "add_generation_prompt": True}])
        self.assertEqual(named.get("text"), "TOOLS")

    def test_jinja_file_overrides_tokenizer_config(self):
        folder = self.folder("jinja_over_config")
        self.edit_json(os.path.join(folder, "tokenizer_config.json"),
                       lambda d: d.__setitem__("chat_template", "IGNORED"))
        answers = self.check(folder)
        self.assertNotEqual(answers[1]["text"], "IGNORED")

    def test_additional_chat_templates(self):
        folder = self.folder("additional")
        os.makedirs(os.path.join(folder, "additional_chat_templates"))
        with open(os.path.join(folder, "additional_chat_templates", "rag.jinja"), "w", encoding="utf-8") as f:
            f.write("RAG")
        self.check(folder)
        [named] = run_driver([{"kind": "model_dir", "model_dir": folder, "lookup": "processor",
                               "template_name": "rag", "messages": self.messages, "add_generation_prompt": True}])
        self.assertEqual(named.get("text"), "RAG")

    def test_special_tokens_match_transformers(self):
        # tokenizer.special_tokens_map against the variables spatialid passes,
        # for the four npm tokenizers and the InternVL tokenizer with named tokens.
        from transformers import AutoTokenizer

        folders = {name: npm_dir(name) for name in ("llama2", "llama3", "qwen3", "gemma3")}
        internvl = os.path.join(self.root, "internvl_tokenizer")
        build_processor("internvl").tokenizer.save_pretrained(internvl)
        folders["internvl"] = internvl
        # Tokens a tokenizer class sets by default without tokenizer_config.json naming them.
        class_defaults = {"gemma3": {"mask_token"}}
        names = sorted(folders)
        answers = run_driver([{"kind": "special_tokens", "model_dir": folders[n]} for n in names])
        for name, answer in zip(names, answers):
            self.assertTrue(answer["ok"], answer)
            want = {k: str(v) for k, v in AutoTokenizer.from_pretrained(folders[name]).special_tokens_map.items()
                    if k not in class_defaults.get(name, set())}
            self.assertEqual(answer["special_tokens"], want, name)
        self.assertIn("start_image_token", answers[names.index("internvl")]["special_tokens"])


if __name__ == "__main__":
    unittest.main()
