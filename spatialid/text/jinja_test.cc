// Unit tests of the Jinja interpreter: language constructs with the output
// jinja2 3.1 gives (checked by hand against Python; the oracle test compares
// many more against jinja2 itself), and every error path.
#include "spatialid/text/jinja_template.h"

#include <gtest/gtest.h>

#include <string>

namespace spatialid::text {
namespace {

using jinja::Value;
using Json = nlohmann::ordered_json;

JinjaOptions Hf() { return JinjaOptions::HuggingFace(); }

std::string Render(std::string_view source, const Json& vars = Json::object(), JinjaOptions options = Hf()) {
  auto t = JinjaTemplate::Parse(source, options, "t.jinja");
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "<parse error>";
  auto r = t->Render(vars);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "<render error>";
}

absl::Status RenderError(std::string_view source, const Json& vars = Json::object(),
                         JinjaOptions options = Hf(), const JinjaGlobals& globals = {}) {
  auto t = JinjaTemplate::Parse(source, options, "t.jinja");
  if (!t.ok()) return t.status();
  auto r = t->Render(vars, globals);
  if (r.ok()) return absl::OkStatus();
  return r.status();
}

TEST(JinjaWhitespace, TrimBlocksDropsOneNewlineAfterBlockTags) {
  EXPECT_EQ(Render("{% if true %}\nA\n{% endif %}\nB"), "A\nB");
  JinjaOptions plain;
  EXPECT_EQ(Render("{% if true %}\nA\n{% endif %}\nB", Json::object(), plain), "\nA\n\nB");
  // Not after {{ }}.
  EXPECT_EQ(Render("{{ 'x' }}\ny"), "x\ny");
}

TEST(JinjaWhitespace, LstripBlocksRemovesIndentBeforeBlockTagsOnly) {
  // trim_blocks also eats the newline after endif.
  EXPECT_EQ(Render("    {% if true %}x{% endif %}\n  {{ 'y' }}"), "x  y");
  EXPECT_EQ(Render("    {% if true %}x{% endif %}\n\n  {{ 'y' }}"), "x\n  y");
  EXPECT_EQ(Render("a\n\t  {# c #}\nb"), "a\nb");
  EXPECT_EQ(Render("  {%+ if true %}x{% endif %}"), "  x");
  // Text before the tag on the same line keeps its spaces.
  EXPECT_EQ(Render("a  {% if true %}x{% endif %}"), "a  x");
}

TEST(JinjaWhitespace, MinusStripsAllWhitespaceIncludingUnicode) {
  EXPECT_EQ(Render("a \n\t{{- 'b' -}} \n c"), "abc");
  EXPECT_EQ(Render("a\u3000{%- if true %}b{% endif %}"), "ab");
  EXPECT_EQ(Render("x {#- comment -#}   y"), "xy");
}

TEST(JinjaWhitespace, NewlinesAreNormalizedAndOneTrailingNewlineDropped) {
  EXPECT_EQ(Render("a\r\nb\rc\n"), "a\nb\nc");
  EXPECT_EQ(Render("a\n\n"), "a\n");
  JinjaOptions keep = Hf();
  keep.keep_trailing_newline = true;
  EXPECT_EQ(Render("a\n", Json::object(), keep), "a\n");
}

TEST(JinjaWhitespace, RawBlocksAreData) {
  EXPECT_EQ(Render("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
  EXPECT_EQ(Render("{%- raw -%}  kept  {%- endraw %}"), "kept");
}

TEST(JinjaExpressions, LiteralsPrintLikePython) {
  EXPECT_EQ(Render("{{ 1 }} {{ 1.0 }} {{ 1/2 }} {{ 4/2 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.1 + 0.2 }}"),
            "1 1.0 0.5 2.0 1e+16 1e-05 0.30000000000000004");
  EXPECT_EQ(Render("{{ none }} {{ true }} {{ [1, 'a', none] }} {{ {'k': [true]} }} {{ (1,) }}"),
            "None True [1, 'a', None] {'k': [True]} (1,)");
  EXPECT_EQ(Render("{{ [\"it's\", 'a\"b', 'x\\ny'] }}"), "[\"it's\", 'a\"b', 'x\\ny']");
  EXPECT_EQ(Render("{{ '\\u00e9\\x41\\101\\t|' }}"), "\xC3\xA9"
                                                   "AA\t|");
  EXPECT_EQ(Render("{{ 0x1F }} {{ 0b11 }} {{ 1_000 }}"), "31 3 1000");
}

TEST(JinjaExpressions, OperatorsFollowPythonAndJinjaPrecedence) {
  EXPECT_EQ(Render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 'ab' * 2 }}"),
            "7 3 -4 2 1024 abab");
  // A filter binds tighter than +, and applies to the whole negation.
  EXPECT_EQ(Render("{{ 'a' + x | upper }}", Json{{"x", "b"}}), "aB");
  EXPECT_EQ(Render("{{ -1 | abs }}"), "1");
  EXPECT_EQ(Render("{{ not 1 == 2 }} {{ 1 and 'y' }} {{ 0 or '' or 'z' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}"),
            "True y z True False");
  EXPECT_EQ(Render("{{ 'a' ~ 1 ~ none ~ undefined_name }}"), "a1None");
  EXPECT_EQ(Render("{{ 'y' if false }}|{{ 'y' if 0 else 'n' }}"), "|n");
  EXPECT_EQ(Render("{{ 'in' in 'inside' }} {{ 2 not in [1] }} {{ 'k' in {'k': 1} }}"), "True True True");
}

TEST(JinjaExpressions, AttributesItemsAndSlices) {
  Json vars = {{"m", {{"role", "user"}, {"items", "shadowed"}}}, {"l", {1, 2, 3, 4}}, {"s", "h\xC3\xA9llo"}};
  EXPECT_EQ(Render("{{ m.role }} {{ m['role'] }} [{{ m.missing }}] {{ l[-1] }} {{ l.0 }} [{{ l[9] }}]", vars),
            "user user [] 4 1 []");
  // Attribute access finds dict.items before the "items" key, like Jinja.
  EXPECT_EQ(Render("{{ m.items() | list | length }} {{ m['items'] }}", vars), "2 shadowed");
  EXPECT_EQ(Render("{{ l[1:] }} {{ l[::-1] }} {{ l[-2:] }} {{ s[1] }} {{ s[::-1] }} {{ s | length }}", vars),
            "[2, 3, 4] [4, 3, 2, 1] [3, 4] \xC3\xA9 oll\xC3\xA9h 5");
}

TEST(JinjaExpressions, StringMethods) {
  Json vars = {{"s", "  Hello World  "}};
  EXPECT_EQ(Render("[{{ s.strip() }}] {{ s.upper() }} {{ s.lower() }} {{ s.split() }} {{ 'a,b'.split(',') }}", vars),
            "[Hello World]   HELLO WORLD     hello world   ['Hello', 'World'] ['a', 'b']");
  EXPECT_EQ(Render("{{ 'abc'.startswith('a') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'aXa'.replace('a', 'b') }}"),
            "True True bXb");
  EXPECT_EQ(Render("{{ \"they're\".title() }} {{ 'ß'.upper() }} {{ 'ΟΔΟΣ'.lower() }}"),
            "They'Re SS \xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82");
  EXPECT_EQ(Render("{{ '%s=%d' % ('x', 3) }} {{ '{}-{}'.format(1, 'a') }}"), "x=3 1-a");
}

TEST(JinjaFilters, CommonChatTemplateFilters) {
  Json vars = {{"content", {{{"type", "image"}}, {{"type", "text"}, {"text", "hi"}}}}};
  EXPECT_EQ(Render("{% for c in content | selectattr('type', 'equalto', 'image') %}<image>{% endfor %}", vars),
            "<image>");
  EXPECT_EQ(Render("{{ content | map(attribute='type') | join(',') }}", vars), "image,text");
  EXPECT_EQ(Render("{{ content | rejectattr('text') | list | length }}", vars), "1");
  EXPECT_EQ(Render("{{ '  x ' | trim }}|{{ 'hello world' | title }}|{{ 'aB' | capitalize }}"), "x|Hello World|Ab");
  EXPECT_EQ(Render("{{ ['b', 'A', 'a'] | sort }} {{ ['a', 'A', 'b'] | unique | list }} {{ [1, 2] | reverse | list }}"),
            "['A', 'a', 'b'] ['a', 'b'] [2, 1]");
  EXPECT_EQ(Render("{{ x | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }}"), "d  d");
  EXPECT_EQ(Render("{{ '12' | int + 1 }} {{ 'x' | int }} {{ 3.9 | int }} {{ 2.5 | string }} {{ 42 | string | length }}"),
            "13 0 3 2.5 2");
  EXPECT_EQ(Render("{{ {'a': 1} | items | list }} {{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }}"),
            "[('a', 1)] 1 3");
}

TEST(JinjaFilters, ToJsonIsTransformersJsonDumps) {
  Json vars = {{"t", {{"name", "f"}, {"args", {1, 2.5, nullptr, true, "\xC3\xA9\"\n"}}}}};
  EXPECT_EQ(Render("{{ t | tojson }}", vars), "{\"name\": \"f\", \"args\": [1, 2.5, null, true, \"\xC3\xA9\\\"\\n\"]}");
  EXPECT_EQ(Render("{{ {'a': [1, {}]} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1,\n    {}\n  ]\n}");
  EXPECT_EQ(Render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true, separators=(',', ':')) }}"), "{\"a\":2,\"b\":1}");
}

TEST(JinjaFilters, GeneratorsAreTruthyAndHaveNoLength) {
  EXPECT_EQ(Render("{{ 'yes' if ([] | select) else 'no' }}"), "yes");
  auto status = RenderError("{{ [1] | select | length }}");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("has no len()"), std::string::npos) << status;
}

TEST(JinjaTests, TypeAndValueTests) {
  EXPECT_EQ(Render("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 's' is string }} {{ {} is mapping }}"),
            "False True True True True");
  EXPECT_EQ(Render("{{ [] is iterable }} {{ 1 is iterable }} {{ x is iterable }} {{ 's' is sequence }} {{ 1 is number }}"),
            "True False True True True");
  EXPECT_EQ(Render("{{ 'a' is equalto 'a' }} {{ 1 is eq 1.0 }} {{ false is false }} {{ 0 is false }} {{ 3 is odd }}"),
            "True True True False True");
  EXPECT_EQ(Render("{{ x is not defined }} {{ not x is defined }}"), "True True");
  // Operator-named tests are for select(); `is ==` is a syntax error in Jinja.
  EXPECT_EQ(Render("{{ [1, 2, 1] | select('==', 1) | list }}"), "[1, 1]");
  EXPECT_FALSE(JinjaTemplate::Parse("{{ 1 is == 1 }}").ok());
}

TEST(JinjaStatements, ForLoopVariablesElseAndFilters) {
  Json vars = {{"l", {1, 2, 3}}};
  EXPECT_EQ(Render("{% for i in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}"
                   "{{ loop.last }}{{ loop.length }};{% endfor %}",
                   vars),
            "103TrueFalse3;212FalseFalse3;321FalseTrue3;");
  EXPECT_EQ(Render("{% for i in l if i > 1 %}{{ i }}/{{ loop.length }} {% endfor %}", vars), "2/2 3/2 ");
  EXPECT_EQ(Render("{% for i in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(Render("{% for i in l %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}"
                   "{{ i }}{% endfor %}",
                   vars),
            "1");
  EXPECT_EQ(Render("{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}"), "a=1");
  EXPECT_EQ(Render("{% for i in l %}{{ loop.cycle('a', 'b') }}{% endfor %}", vars), "aba");
}

TEST(JinjaStatements, ScopingFollowsJinja) {
  Json vars = {{"l", {1, 2}}};
  // A set inside a loop neither leaks out nor survives into the next iteration.
  EXPECT_EQ(Render("{% set x = 0 %}{% for i in l %}{{ x }}{% set x = x + i %}{{ x }} {% endfor %}{{ x }}", vars),
            "01 02 0");
  // if shares its scope.
  EXPECT_EQ(Render("{% if true %}{% set y = 3 %}{% endif %}{{ y }}"), "3");
  // namespace() carries state across loop scopes.
  EXPECT_EQ(Render("{% set ns = namespace(n=0) %}{% for i in l %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
                   vars),
            "3");
  EXPECT_EQ(Render("{% set messages = l[1:] %}{{ messages }}", vars), "[2]");
}

TEST(JinjaStatements, MacrosSetBlocksFilterBlocksAndGeneration) {
  EXPECT_EQ(Render("{% macro f(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(1, b=2) }}"), "[1B][12]");
  EXPECT_EQ(Render("{% set s | upper %}x{{ 1 }}{% endset %}{{ s }}"), "X1");
  EXPECT_EQ(Render("{% filter upper %}ab{% endfilter %}"), "AB");
  EXPECT_EQ(Render("{% generation %}kept{% endgeneration %}"), "kept");
  EXPECT_EQ(Render("{% with a = 2 %}{{ a * 2 }}{% endwith %}[{{ a }}]"), "4[]");
}

// Behaviours that come from how Jinja compiles templates rather than from
// the language reference (each checked against jinja2 3.1).
TEST(JinjaCompilerQuirks, ForElseRunsUnlessAnIterationCompleted) {
  EXPECT_EQ(Render("{% for i in [1, 2] %}{% continue %}{% else %}E{% endfor %}"), "E");
  EXPECT_EQ(Render("{% for i in [1, 2] %}{% if i == 2 %}{% continue %}{% endif %}{% else %}E{% endfor %}"), "");
  EXPECT_EQ(Render("{% for i in [1] %}{% break %}{% else %}E{% endfor %}"), "E");
}

TEST(JinjaCompilerQuirks, LoopControlsLeaveSetBlocksBeforeTheAssignment) {
  EXPECT_EQ(Render("{% for i in [1, 2] %}{% set s %}{{ i }}{% continue %}{% endset %}[{{ s }}]{% endfor %}"), "");
}

TEST(JinjaCompilerQuirks, ConstantSlicesAreFoldedThroughGetitem) {
  // Literal-only expressions are evaluated at compile time, where a slice of
  // a number is undefined; at run time the same slice is a TypeError.
  EXPECT_EQ(Render("{{ (2)[:1] }}|{{ ((2)[:1] is undefined) }}|"), "|True|");
  EXPECT_NE(RenderError("{{ x[:1] }}", Json{{"x", 2}}).message().find("'int' object is not subscriptable"),
            std::string::npos);
}

TEST(JinjaCompilerQuirks, NamesAssignedLaterInTheEnclosingScopeReadAsUndefined) {
  Json vars = {{"b", "ctx"}};
  EXPECT_EQ(Render("{% with a = 1 %}[{{ b }}]{% endwith %}{% set b = 2 %}[{{ b }}]", vars), "[][2]");
  EXPECT_EQ(Render("[{{ b }}]{% set b = 2 %}[{{ b }}]", vars), "[ctx][2]");
  EXPECT_EQ(Render("{% for i in [1] %}{% with a = 7 %}[{{ b }}]{% endwith %}{% set b = 2 %}{% endfor %}", vars),
            "[]");
  EXPECT_EQ(Render("{% for i in [1] %}{% if true %}[{{ b }}]{% endif %}{% set b = 2 %}{% endfor %}", vars), "[ctx]");
}

TEST(JinjaCompilerQuirks, GenerationBlocksHaveTheirOwnScope) {
  EXPECT_EQ(Render("{% generation %}{% set g = 1 %}{{ g }}{% endgeneration %}[{{ g }}]"), "1[]");
}

TEST(JinjaUndefined, PrintsEmptyIsFalsyAndFailsOnUse) {
  EXPECT_EQ(Render("[{{ x }}]{% if x %}t{% else %}f{% endif %}{% for i in x %}i{% endfor %}{{ x | length }}"), "[]f0");
  auto status = RenderError("line one\n{{ x.attr }}");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()), "t.jinja:2: UndefinedError: 'x' is undefined");
  status = RenderError("{{ m.a.b }}", Json{{"m", Json::object()}});
  EXPECT_EQ(std::string(status.message()), "t.jinja:1: UndefinedError: 'dict object' has no attribute 'a'");
  EXPECT_FALSE(RenderError("{{ x + 1 }}").ok());
  EXPECT_FALSE(RenderError("{{ x() }}").ok());
}

TEST(JinjaErrors, SyntaxErrorsNameTheLine) {
  auto status = RenderError("a\nb\n{% if true %}\nnever closed");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()),
            "t.jinja:4: TemplateSyntaxError: Unexpected end of template. Jinja was looking for the following tags: "
            "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.");
  status = RenderError("{% for i in l %}\n{% endif %}");
  EXPECT_NE(status.message().find("t.jinja:2: TemplateSyntaxError: Encountered unknown tag 'endif'."),
            std::string::npos)
      << status;
  EXPECT_NE(RenderError("{{ 'abc").message().find("TemplateSyntaxError"), std::string::npos);
  EXPECT_NE(RenderError("{# never closed").message().find("Missing end of comment tag"), std::string::npos);
  EXPECT_NE(RenderError("{{ (1, 2 }}").message().find("unexpected '}', expected ')'"), std::string::npos);
  EXPECT_NE(RenderError("{{ x }").message().find("unexpected '}'"), std::string::npos);
  EXPECT_NE(RenderError("{% unknowntag %}").message().find("Encountered unknown tag 'unknowntag'."),
            std::string::npos);
}

TEST(JinjaErrors, UnknownFilterAndTestAreNamedAtParseTime) {
  auto t = JinjaTemplate::Parse("ok\n{% if false %}{{ x | frobnicate }}{% endif %}", Hf(), "t.jinja");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(std::string(t.status().message()), "t.jinja:2: TemplateAssertionError: No filter named 'frobnicate'.");
  t = JinjaTemplate::Parse("{{ x is frobnicated }}", Hf(), "t.jinja");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(std::string(t.status().message()), "t.jinja:1: TemplateAssertionError: No test named 'frobnicated'.");
}

TEST(JinjaErrors, RaiseExceptionMessageReachesTheStatus) {
  JinjaGlobals globals;
  globals.emplace_back("raise_exception", Value::Function("raise_exception", [](jinja::CallArgs& a) -> Value {
    throw jinja::TemplateError(jinja::TemplateError::Kind::kRaised, jinja::Str(a.positional.at(0)));
  }));
  auto status = RenderError("x\n{{ raise_exception('Roles must alternate') }}", Json::object(), Hf(), globals);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()), "t.jinja:2: TemplateError: Roles must alternate");
}

TEST(JinjaErrors, RuntimeErrorsAreStatusesNotCrashes) {
  EXPECT_NE(RenderError("{{ 1 / 0 }}").message().find("ZeroDivisionError"), std::string::npos);
  EXPECT_NE(RenderError("{{ 'a' + 1 }}").message().find("TypeError: can only concatenate str"), std::string::npos);
  EXPECT_NE(RenderError("{{ [].append(1) }}").message().find("SecurityError"), std::string::npos);
  EXPECT_NE(RenderError("{{ range(1000000) | length }}").message().find("MAX_RANGE"), std::string::npos);
  EXPECT_NE(RenderError("{% set n = 1 %}{% set n.a = 2 %}").message().find("non-namespace"), std::string::npos);
  EXPECT_NE(RenderError("{% for a, b in [1] %}{% endfor %}").message().find("TypeError"), std::string::npos);
  EXPECT_NE(RenderError("{{ 9223372036854775807 + 1 }}").message().find("64 bits"), std::string::npos);
  // Unbounded recursion and hostile nesting stop with an error.
  EXPECT_NE(RenderError("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").message().find("recursion"),
            std::string::npos);
  EXPECT_NE(RenderError("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").message().find(
                "too deep"),
            std::string::npos);
  EXPECT_NE(RenderError("\xFF\xFE").message().find("not valid UTF-8"), std::string::npos);
  std::string long_sum = "{{ 1";
  for (int i = 0; i < 200000; ++i) long_sum += "+1";
  EXPECT_NE(RenderError(long_sum + " }}").message().find("expression is too long"), std::string::npos);
  std::string long_chain = "{{ x";
  for (int i = 0; i < 200000; ++i) long_chain += "|upper";
  EXPECT_NE(RenderError(long_chain + " }}").message().find("expression is too long"), std::string::npos);
}

TEST(JinjaErrors, UnsupportedFeaturesAreUnimplemented) {
  EXPECT_EQ(RenderError("{% extends 'base.html' %}").code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(RenderError("{% include 'x' %}").code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(RenderError("{{ 'abc' | truncate(2) }}").code(), absl::StatusCode::kUnimplemented);
  // An unimplemented filter that never runs does not stop a template.
  EXPECT_EQ(Render("{% if false %}{{ x | wordwrap }}{% endif %}ok"), "ok");
}

TEST(JinjaErrors, ExtensionsFollowOptions) {
  JinjaOptions plain;
  EXPECT_NE(RenderError("{% for i in [1] %}{% break %}{% endfor %}", Json::object(), plain)
                .message()
                .find("Encountered unknown tag 'break'."),
            std::string::npos);
  EXPECT_NE(RenderError("{% generation %}{% endgeneration %}", Json::object(), plain).message().find("generation"),
            std::string::npos);
  EXPECT_NE(RenderError("{% break %}").message().find("'break' outside loop"), std::string::npos);
}

TEST(JinjaValue, PythonFormatting) {
  EXPECT_EQ(jinja::FloatRepr(1e16), "1e+16");
  EXPECT_EQ(jinja::FloatRepr(1e15), "1000000000000000.0");
  EXPECT_EQ(jinja::FloatRepr(0.0001), "0.0001");
  EXPECT_EQ(jinja::FloatRepr(1.5e-7), "1.5e-07");
  EXPECT_EQ(jinja::FloatRepr(-0.0), "-0.0");
  EXPECT_EQ(jinja::FloatRepr(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(jinja::StringRepr("it's"), "\"it's\"");
  EXPECT_EQ(jinja::StringRepr("a'b\"c\n\x01"), "'a\\'b\"c\\n\\x01'");
  EXPECT_TRUE(jinja::Equals(Value(1), Value(1.0)));
  EXPECT_FALSE(jinja::Equals(Value::List({Value(1)}), Value::Tuple({Value(1)})));
  EXPECT_FALSE(jinja::Truthy(Value::Undefined("x")));
  EXPECT_TRUE(jinja::Truthy(Value::Iterator("gen", {})));
}

}  // namespace
}  // namespace spatialid::text
