#!/usr/bin/env python3
"""Language cases for the chat-template interpreter: template, context, and the output Jinja2
gives (written by hand from Jinja2's semantics). `expected` is the rendered text; `error` a
substring of the error message, with `line` the template line the error must name.

  python3 jinja_cases.py --write   regenerates jinja_cases.json from this file
  python3 jinja_cases.py --check   renders every case with Jinja2 (pip jinja2 3.1), configured as
                                   transformers configures it, and fails on any disagreement

The C++ test (chat_language_test.cpp) reads jinja_cases.json.
"""
import json
import os
import sys

CASES = [
    # ---- text, comments and whitespace control ----
    ("plain text", "Hello", {}, "Hello"),
    ("one trailing newline dropped", "a\n\n", {}, "a\n"),
    ("crlf normalized", "a\r\nb\rc", {}, "a\nb\nc"),
    ("comment vanishes", "a{# note #}b", {}, "ab"),
    ("trim_blocks drops newline after block", "{% if true %}\nx\n{% endif %}\ny", {}, "x\ny"),
    ("trim_blocks keeps newline after expression", "{{ 1 }}\n{{ 2 }}", {}, "1\n2"),
    ("lstrip_blocks strips indent before block", "a\n    {% if true %}\n    b\n    {% endif %}\nc", {}, "a\n    b\nc"),
    ("lstrip_blocks not for expressions", "  {{ 1 }}", {}, "  1"),
    ("lstrip_blocks only at line start", "x  {% if true %}y{% endif %}", {}, "x  y"),
    ("minus strips left", "a  \n  {{- 'b' }}", {}, "ab"),
    ("minus strips right", "{{ 'a' -}}  \n  b", {}, "ab"),
    ("block minus both sides", "x\n  {%- if true -%}  \n y \n {%- endif -%}\n z", {}, "xyz"),
    ("plus keeps indent and newline", "  {%+ if true +%}\nx{% endif %}", {}, "  \nx"),
    ("comment trimmed like block", "a\n  {# c #}\nb", {}, "a\nb"),
    ("comment minus", "a  {#- c -#}  b", {}, "ab"),
    ("raw block", "{% raw %}{{ x }}{% if %}{% endraw %}", {}, "{{ x }}{% if %}"),
    # ---- literals and printing ----
    ("print none true false", "{{ none }} {{ None }} {{ true }} {{ False }}", {}, "None None True False"),
    ("undefined prints empty", "[{{ missing }}]", {}, "[]"),
    ("ints and floats", "{{ 42 }} {{ -7 }} {{ 1.5 }} {{ 2.0 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1f }}", {}, "42 -7 1.5 2.0 1000.0 1000 31"),
    ("float repr", "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-05 }} {{ 1/3 }}", {}, "0.30000000000000004 1e+16 1e-05 0.3333333333333333"),
    ("string escapes", "{{ 'a\\tb\\\\c\\'d\\x41\\u00e9\\n' }}", {}, "a\tb\\c'dAé\n"),
    ("unknown escape kept", "{{ '\\d' }}", {}, "\\d"),
    ("adjacent strings join", "{{ 'a' \"b\" }}", {}, "ab"),
    ("list dict tuple repr", "{{ [1, 'a', none, true] }} {{ {'k': [1.5]} }} {{ (1,) }} {{ (1, 2) }} {{ () }}", {},
     "[1, 'a', None, True] {'k': [1.5]} (1,) (1, 2) ()"),
    ("repr quotes", "{{ [\"it's\", 'say \"hi\"', 'a\\nb'] }}", {}, "[\"it's\", 'say \"hi\"', 'a\\nb']"),
    ("print tuple", "{{ 1, 'a' }}", {}, "(1, 'a')"),
    # ---- operators ----
    ("arithmetic", "{{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }}", {},
     "9 5 14 3.5 3 1 1024"),
    ("python floor division and modulo", "{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}, "-4 2 -2 3.0 0.5"),
    ("power is left associative and binds over unary minus", "{{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 2 ** -1 }}", {}, "64 4 0.5"),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 10 - 2 - 3 }} {{ 2 * 3 ~ 4 }}", {}, "7 9 5 64"),
    ("string plus and times", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ 'x' * 0 }}|", {}, "abcd ababab xx |"),
    ("list plus and times", "{{ [1] + [2] }} {{ [0] * 3 }}", {}, "[1, 2] [0, 0, 0]"),
    ("tilde concatenates str()", "{{ 'a' ~ 1 ~ none ~ true ~ missing ~ [1] }}", {}, "a1NoneTrue[1]"),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 1 != 2 }}", {},
     "True False True True True True"),
    ("chained comparison", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }}", {}, "True False"),
    ("equality across types", "{{ 1 == '1' }} {{ true == 1 }} {{ (1, 2) == [1, 2] }} {{ none == none }} {{ {'a': 1} == {'a': 1} }}", {},
     "False True False True True"),
    ("in and not in", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1, 2] }} {{ 'x' in missing }}", {},
     "True True True True False"),
    ("and or return operands", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }}|{{ none or [] }}", {}, "x b |[]"),
    ("not", "{{ not 0 }} {{ not 'a' }} {{ not missing }} {{ not [] }}", {}, "True False True True"),
    ("unary minus and plus", "{{ -(3) }} {{ +3 }} {{ -1.5 }} {{ - x }}", {"x": 4}, "-3 3 -1.5 -4"),
    ("ternary", "{{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}]", {}, "y n []"),
    ("nested ternary", "{{ 'a' if x == 1 else 'b' if x == 2 else 'c' }}", {"x": 2}, "b"),
    # ---- variables, attributes, subscripts ----
    ("attribute and item", "{{ m.role }} {{ m['role'] }} {{ m.parts[1] }} {{ m.parts.0 }}", {"m": {"role": "user", "parts": ["a", "b"]}}, "user user b a"),
    ("missing key is undefined", "[{{ m.nope }}] {{ m.nope is defined }} {{ m['nope'] is undefined }}", {"m": {}}, "[] False True"),
    ("negative index and out of range", "{{ xs[-1] }} [{{ xs[9] }}]", {"xs": [1, 2, 3]}, "3 []"),
    ("string index", "{{ 'héllo'[1] }} {{ 'abc'[-1] }}", {}, "é c"),
    ("dict method wins over key", "{{ d.items is defined }} {{ d['items'] }}", {"d": {"items": 5}}, "True 5"),
    ("slicing", "{{ xs[1:] }} {{ xs[:2] }} {{ xs[::2] }} {{ xs[::-1] }} {{ xs[-2:] }} {{ xs[5:] }}", {"xs": [1, 2, 3, 4]},
     "[2, 3, 4] [1, 2] [1, 3] [4, 3, 2, 1] [3, 4] []"),
    ("string slicing counts code points", "{{ 'héllo'[1:3] }} {{ 'abc'[::-1] }} {{ 'naïve'[::-1] }}", {}, "él cba evïan"),
    ("slice of messages", "{% for m in messages[1:] %}{{ m }}{% endfor %}", {"messages": ["a", "b", "c"]}, "bc"),
    # ---- tests ----
    ("defined undefined none", "{{ x is defined }} {{ y is undefined }} {{ n is none }} {{ x is not none }}", {"x": 1, "n": None},
     "True True True True"),
    ("type tests", "{{ 'a' is string }} {{ 1 is number }} {{ 1.5 is number }} {{ 1 is integer }} {{ 1.0 is integer }} {{ 1.0 is float }}", {},
     "True True True True False True"),
    ("container tests", "{{ {} is mapping }} {{ [] is mapping }} {{ [] is iterable }} {{ 'a' is sequence }} {{ 3 is iterable }}", {},
     "True False True True False"),
    ("boolean tests", "{{ true is boolean }} {{ 1 is boolean }} {{ true is true }} {{ 1 is true }} {{ false is false }}", {},
     "True False True False True"),
    ("number tests", "{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }}", {}, "True True True False"),
    ("comparison tests", "{{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is gt 1 }} {{ 2 is lt 1 }} {{ 2 is ne 3 }} {{ 1 is in [1, 2] }}", {},
     "True False True False True True"),
    ("enable_thinking is false", "{{ enable_thinking is defined and enable_thinking is false }}", {"enable_thinking": False}, "True"),
    ("is binds tighter than and", "{{ x is defined and x > 1 }}", {"x": 2}, "True"),
    ("not is", "{{ not x is none }}", {"x": 1}, "True"),
    # ---- filters ----
    ("trim", "[{{ '  a b \\n'|trim }}] [{{ 'xxaxx'|trim('x') }}]", {}, "[a b] [a]"),
    ("case filters", "{{ 'hELLo wORLD'|upper }} {{ 'HeLLo'|lower }} {{ 'hello-world foo'|title }} {{ 'hELLO'|capitalize }}", {},
     "HELLO WORLD hello Hello-World Foo Hello"),
    ("length and count", "{{ [1, 2]|length }} {{ 'héllo'|length }} {{ {'a': 1}|count }} {{ missing|length }}", {}, "2 5 1 0"),
    ("join", "{{ [1, 'a', none]|join(', ') }} {{ ['x', 'y']|join }} {{ [{'n': 'a'}, {'n': 'b'}]|join('-', attribute='n') }}", {},
     "1, a, None xy a-b"),
    ("replace", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'ab'|replace('', '-') }}", {}, "bbb bba -a-b-"),
    ("default", "{{ missing|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }} {{ 0|d(5) }}", {}, "d None d 0"),
    ("first last", "{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|first }} [{{ []|first }}]", {}, "1 3 a []"),
    ("list and string", "{{ 'ab'|list }} {{ {'a': 1, 'b': 2}|list }} {{ 12|string ~ 'x' }}", {}, "['a', 'b'] ['a', 'b'] 12x"),
    ("items", "{% for k, v in {'b': 1, 'a': 2}|items %}{{ k }}={{ v }};{% endfor %}", {}, "b=1;a=2;"),
    ("int float abs round", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '2.5'|float }} {{ (-3)|abs }} {{ 2.567|round(1) }} {{ 2.5|round }} {{ 2.4|round(0, 'ceil') }}", {},
     "42 4 0 7 2.5 3 2.6 2.0 3.0"),
    ("unary minus binds before a filter", "{{ -3|abs }} {{ -2.5|round }}", {}, "3 -2.0"),
    ("map select reject", "{{ [{'a': 1}, {'a': 2}]|map(attribute='a')|list }} {{ [1, 2, 3, 4]|select('even')|list }} {{ [1, 2, 3]|reject('odd')|list }} {{ ['a', 'b']|map('upper')|join }}", {},
     "[1, 2] [2, 4] [2] AB"),
    ("selectattr rejectattr", "{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='c')|join }} {{ ms|rejectattr('role', 'eq', 'user')|map(attribute='c')|join }} {{ ms|selectattr('x')|list|length }}",
     {"ms": [{"role": "user", "c": "u1"}, {"role": "tool", "c": "t", "x": 1}, {"role": "user", "c": "u2"}]}, "u1u2 t 1"),
    ("sort unique reverse sum min max", "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'a']|sort }} {{ [3, 1]|sort(reverse=true) }} {{ [1, 2, 1]|unique|list }} {{ [1, 2]|reverse|list }} {{ 'abc'|reverse }} {{ [1, 2, 3]|sum }} {{ [3, 1]|min }} {{ ['b', 'C']|max }}", {},
     "[1, 2, 3] ['A', 'a', 'b'] [3, 1] [1, 2] [2, 1] cba 6 1 C"),
    ("dictsort", "{{ {'b': 1, 'a': 2}|dictsort }}", {}, "[('a', 2), ('b', 1)]"),
    ("indent", "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", {}, "a\n  b\n\n  c|  a\n  b"),
    ("format filter and percent", "{{ '%s is %d'|format('x', 3) }} {{ '%05.2f|%-3s|%r' % (3.14159, 'a', 'q') }}", {}, "x is 3 03.14|a  |'q'"),
    ("safe and escape", "{{ '<b>'|safe }} {{ '<a href=\"x\">&'|escape }}", {}, "<b> &lt;a href=&#34;x&#34;&gt;&amp;"),
    ("filter chain with arguments", "{{ '  A,B '|trim|lower|replace(',', ';') }}", {}, "a;b"),
    ("filter binds tighter than minus", "{{ xs|length - 1 }}", {"xs": [1, 2, 3]}, "2"),
    ("attr filter reads attributes, not keys", "[{{ {'a': 5}|attr('a') }}] {{ ({'a': 5}|attr('keys'))()|list }}", {}, "[] ['a']"),
    ("wordcount center", "{{ 'one two, three'|wordcount }} [{{ 'ab'|center(6) }}]", {}, "3 [  ab  ]"),
    # ---- tojson (transformers' version: no HTML escaping, key order kept) ----
    ("tojson basic", "{{ {'b': 1, 'a': [true, none, 1.5, 'x']}|tojson }}", {}, '{"b": 1, "a": [true, null, 1.5, "x"]}'),
    ("tojson no html escaping, no ascii escaping", "{{ '<a>&\\'é\\n'|tojson }}", {}, '"<a>&\'é\\n"'),
    ("tojson indent", "{{ {'a': [1, {}], 'b': []}|tojson(indent=2) }}", {}, '{\n  "a": [\n    1,\n    {}\n  ],\n  "b": []\n}'),
    ("tojson ensure_ascii sort_keys separators", "{{ {'b': 'é', 'a': 1}|tojson(ensure_ascii=true, sort_keys=true, separators=(',', ':')) }}", {},
     '{"a":1,"b":"\\u00e9"}'),
    ("tojson keeps context key order", "{{ t|tojson }}", {"t": {"z": 1, "a": {"y": 2, "b": 3}}}, '{"z": 1, "a": {"y": 2, "b": 3}}'),
    ("tojson control characters", "{{ '\\x01\\t'|tojson }}", {}, '"\\u0001\\t"'),
    # ---- string methods ----
    ("startswith endswith", "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'hello'.startswith('l', 2) }}", {}, "True True True"),
    ("split rsplit", "{{ 'a,b,,c'.split(',') }} {{ '  a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ 'x</think>y'.split('</think>')[-1] }}", {},
     "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a b', 'c'] y"),
    ("strip family", "[{{ '\\n x \\n'.strip() }}] [{{ 'xxay'.lstrip('x') }}] [{{ '\\n\\na\\n'.rstrip('\\n') }}] [{{ ' a '.lstrip() }}]", {}, "[x] [ay] [\n\na] [a ]"),
    ("case methods", "{{ 'ab'.upper() }} {{ 'AB'.lower() }} {{ \"they're 1st\".title() }} {{ 'aBC'.capitalize() }}", {}, "AB ab They'Re 1St Abc"),
    ("replace find count join", "{{ 'aXbX'.replace('X', '-') }} {{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} {{ 'banana'.count('an') }} {{ '-'.join(['a', 'b']) }}", {},
     "a-b- 2 3 -1 2 a-b"),
    ("str format", "{{ '{} and {}'.format('a', 1) }} {{ '{0}{0}'.format('x') }} {{ '{name}!'.format(name='n') }} {{ '{{}}'.format() }}", {}, "a and 1 xx n! {}"),
    ("is methods", "{{ '123'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'ab'.islower() }} {{ 'AB'.isupper() }} {{ ''.isdigit() }}", {},
     "True True True True True False"),
    ("splitlines partition", "{{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'k=v=w'.partition('=') }}", {}, "['a', 'b', 'c'] ('k', '=', 'v=w')"),
    # ---- dict methods ----
    ("dict get keys values items", "{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}", {"d": {"a": 1, "b": 2}},
     "1 None 0 ['a', 'b'] [1, 2] [('a', 1), ('b', 2)]"),
    # ---- for loops ----
    ("loop variables", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %}", {},
     "1032TrueFalse3 2121FalseFalse3 3210FalseTrue3 "),
    ("loop previtem nextitem cycle", "{% for x in [1, 2, 3] %}{{ loop.previtem }}>{{ x }}>{{ loop.nextitem }}:{{ loop.cycle('a', 'b') }} {% endfor %}", {},
     ">1>2:a 1>2>3:b 2>3>:a "),
    ("loop changed", "{% for x in [1, 1, 2] %}{{ loop.changed(x) }} {% endfor %}", {}, "True False True "),
    ("for else", "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", {}, "empty1"),
    ("for over dict and items", "{% for k in d %}{{ k }}{% endfor %} {% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}", {"d": {"b": 1, "a": 2}}, "ba b1a2"),
    ("for with filter", "{% for x in range(6) if x is even %}{{ x }}/{{ loop.length }} {% endfor %}", {}, "0/3 2/3 4/3 "),
    ("for over undefined is empty", "{% for x in missing %}x{% endfor %}ok", {}, "ok"),
    ("nested loops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", {},
     "1x1 1y2 1|2x1 2y2 2|"),
    ("break continue", "{% for x in range(10) %}{% if x == 1 %}{% continue %}{% endif %}{% if x > 3 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}, "023"),
    ("range forms", "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}", {}, "[0, 1, 2] [1, 2, 3] [5, 3, 1] []"),
    ("reverse loop over messages", "{% for m in ms[::-1] %}{{ loop.index0 }}{{ m }}{% endfor %}", {"ms": ["a", "b"]}, "0b1a"),
    # ---- scoping, set, namespace ----
    ("set and reassign", "{% set x = 1 %}{% set x = x + 1 %}{{ x }}", {}, "2"),
    ("set tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}, "12"),
    ("loop body has its own scope", "{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}", {}, "01020"),
    ("if does not scope", "{% if true %}{% set x = 5 %}{% endif %}{{ x }}", {}, "5"),
    ("namespace crosses loop scope", "{% set ns = namespace(n=0, found=false) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.found }}", {},
     "6 True"),
    ("namespace from dict and print", "{% set ns = namespace({'a': 1}) %}{{ ns.a }} {{ ns.b is defined }}", {}, "1 False"),
    ("set block", "{% set x %}a{{ 1 + 1 }}b{% endset %}[{{ x }}]", {}, "[a2b]"),
    ("set block with filter", "{% set x | upper %}ab{% endset %}{{ x }}", {}, "AB"),
    ("context variable shadowed by set", "{{ v }}{% set v = 'new' %}{{ v }}", {"v": "old"}, "oldnew"),
    ("with block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}, "3[]"),
    ("dict global", "{{ dict(a=1, b='x') }}", {}, "{'a': 1, 'b': 'x'}"),
    # ---- macros ----
    ("macro with defaults", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}", {},
     "Hi A! Hi B? Hi C."),
    ("macro sees template variables at call time", "{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}", {}, "2"),
    ("macro result is a string", "{% macro m() %} pad {% endmacro %}[{{ m()|trim }}] {{ m()|length }}", {}, "[pad] 5"),
    ("macro recursion", "{% macro f(n) %}{{ n }}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", {}, "3210"),
    ("macro missing argument is undefined", "{% macro m(a, b) %}[{{ b }}]{% endmacro %}{{ m(1) }}", {}, "[]"),
    ("macro varargs", "{% macro m(a) %}{{ a }}{{ varargs }}{% endmacro %}{{ m(1, 2, 3) }}", {}, "1(2, 3)"),
    ("macro kwargs", "{% macro m() %}{{ kwargs }}{% endmacro %}{{ m(x=1) }}", {}, "{'x': 1}"),
    # ---- filter block, generation ----
    ("filter block", "{% filter upper %}ab{{ 'c' }}{% endfilter %}", {}, "ABC"),
    ("generation block renders its body", "{% generation %}gen{{ 1 }}{% endgeneration %}", {}, "gen1"),
    # ---- globals ----
    ("strftime_now with literal format", "{{ strftime_now('%%') }}", {}, "%"),
    # ---- errors: message substring, line ----
    ("undefined attribute of undefined fails", "line1\n{{ missing.attr }}", {}, {"error": "'missing' is undefined", "line": 2}),
    ("call of undefined fails", "{{ nothere() }}", {}, {"error": "'nothere' is undefined", "line": 1}),
    ("method of None fails", "{% set c = none %}\n\n{{ c.startswith('x') }}", {}, {"error": "has no attribute 'startswith'", "line": 3}),
    ("raise_exception carries its message", "a\n{% if true %}\n{{ raise_exception('Conversation roles must alternate') }}\n{% endif %}", {},
     {"error": "Conversation roles must alternate", "line": 3}),
    ("unknown filter is a syntax error", "ok\n\n{{ x|nosuchfilter }}", {}, {"error": "nosuchfilter", "line": 3}),
    ("unknown test", "{{ x is nosuchtest }}", {}, {"error": "nosuchtest", "line": 1}),
    ("unclosed for", "{% for x in xs %}\nbody\n", {}, {"error": "endfor", "line": 1}),
    ("unclosed if", "a\n{% if x %}\nb", {}, {"error": "endif", "line": 2}),
    ("unexpected end tag", "a\n{% endif %}", {}, {"error": "endif", "line": 2}),
    ("unknown tag", "{% frobnicate %}", {}, {"error": "frobnicate", "line": 1}),
    ("unterminated expression", "{{ 1 + }}", {}, {"error": "", "line": 1}),
    ("unterminated comment", "a {# never closed", {}, {"error": "comment", "line": 1}),
    ("string plus int", "{{ 'a' + 1 }}", {}, {"error": "can only concatenate str", "line": 1}),
    ("division by zero", "\n{{ 1 / 0 }}", {}, {"error": "division by zero", "line": 2}),
    ("too many macro arguments", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", {}, {"error": "takes not more than 1 argument", "line": 1}),
    ("set attribute on non-namespace", "{% set d = {} %}{% set d.x = 1 %}", {}, {"error": "namespace", "line": 1}),
    ("list append is refused by the sandbox", "{% set xs = [] %}{{ xs.append(1) }}", {}, {"error": "unsafe", "line": 1}),
    ("tojson of undefined", "{{ missing|tojson }}", {}, {"error": "not JSON serializable", "line": 1}),
    ("comparing str and int", "{{ 'a' < 1 }}", {}, {"error": "not supported between instances of 'str' and 'int'", "line": 1}),
    ("iterating an int", "{% for x in 3 %}{% endfor %}", {}, {"error": "not iterable", "line": 1}),
    ("unpacking mismatch", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}, {"error": "too many values to unpack", "line": 1}),
    ("break outside loop", "{% break %}", {}, {"error": "loop", "line": 1}),
]


def to_json_cases():
    out = []
    for name, template, context, expected in CASES:
        case = {"name": name, "template": template, "context": context}
        if isinstance(expected, dict):
            case.update(expected)
        else:
            case["expected"] = expected
        out.append(case)
    return out


def jinja2_environment():
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from datetime import datetime

    # transformers' chat-template environment (utils/chat_template_utils.py).
    class AssistantTracker(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: datetime.now().strftime(f)
    return env


def check():
    env = jinja2_environment()
    bad = 0
    for case in to_json_cases():
        try:
            got = env.from_string(case["template"]).render(**case["context"])
            outcome = ("ok", got)
        except Exception as e:  # noqa: BLE001 - any Jinja2 error counts as an error
            outcome = ("error", str(e))
        if "expected" in case:
            good = outcome == ("ok", case["expected"])
        else:
            good = outcome[0] == "error" and case["error"] in outcome[1]
        if not good:
            bad += 1
            print(f"MISMATCH {case['name']!r}: Jinja2 gives {outcome!r}, case says "
                  f"{case.get('expected', case.get('error'))!r}")
    print(f"{len(CASES) - bad}/{len(CASES)} cases agree with Jinja2")
    return bad == 0


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    if "--write" in sys.argv:
        with open(os.path.join(here, "jinja_cases.json"), "w", encoding="utf-8") as f:
            json.dump(to_json_cases(), f, ensure_ascii=False, indent=1)
            f.write("\n")
    if "--check" in sys.argv:
        sys.exit(0 if check() else 1)
