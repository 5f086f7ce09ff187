"""The Go text/template engine behind --format and inspect -f: Go's grammar, evaluation,
printing of values and error wording, and the docker CLI's table/json handling around it.
Expected outputs are what Go's text/template and the docker CLI print for the same input."""

from __future__ import annotations

from typing import Any

import pytest

from barque.cli.formatter import check_template, inspect_lines, render_listing, tabwrite
from barque.cli.gotemplate import GoMap, GoStruct, go_sprintf, parse
from barque.errors import TemplateError


def run(text: str, data: Any = None, **options: Any) -> str:
    return parse(text).execute(data, **options)


def error(text: str, data: Any = None, **options: Any) -> str:
    with pytest.raises(TemplateError) as caught:
        run(text, data, **options)
    return str(caught.value)


def container(**fields: Any) -> GoStruct:
    labels = fields.pop("labels", {})
    methods: dict[str, Any] = {k: _const(v) for k, v in fields.items()}
    methods["Label"] = lambda name: labels.get(name, "")
    return GoStruct("*formatter.ContainerContext", methods,
                    json=lambda: {k: v for k, v in sorted(fields.items())})


def _const(value: Any) -> Any:
    return lambda: value


DATA = {"Name": "web", "State": {"Status": "running", "Pid": 42, "Running": True},
        "Config": {"Env": ["A=1", "B=2"], "Labels": {"k": "v", "a": "b"}, "Cmd": None},
        "Ports": [], "Num": 3, "Ratio": 0.5, "Empty": ""}


@pytest.mark.parametrize("text, expected", [
    ("{{.Name}}", "web"),
    ("{{.State.Status}}/{{.State.Pid}}/{{.State.Running}}", "running/42/true"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[a:b k:v]"),  # Go prints maps with sorted keys
    ("{{.Config.Cmd}}", "<nil>"),
    ("{{.Ratio}} {{1.5}} {{1e6}} {{0x10}} {{'a'}}", "0.5 1.5 1e+06 16 97"),
    ("{{json .State}}", '{"Status":"running","Pid":42,"Running":true}'),
    ("{{json .Config.Env}}", '["A=1","B=2"]'),
    ('{{json "a<b>&"}}', '"a<b>&"'),  # no HTML escaping, as the docker CLI's json
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=b;k=v;"),
    ("{{range .Ports}}x{{else}}none{{end}}", "none"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range .Config.Env}}{{if eq . \"B=2\"}}{{break}}{{end}}{{.}}{{end}}", "A=1"),
    ("{{range .Config.Env}}{{if eq . \"A=1\"}}{{continue}}{{end}}{{.}}{{end}}", "B=2"),
    ("{{if .Empty}}yes{{else if .Num}}num{{else}}no{{end}}", "num"),
    ("{{if and .Num .Empty}}a{{else}}b{{end}}", "b"),
    ("{{or .Empty \"fallback\"}} {{and 1 2}} {{not .Empty}}", "fallback 2 true"),
    ("{{with .State}}{{.Status}}{{end}}{{with .Empty}}x{{else}}empty{{end}}", "runningempty"),
    ("{{$n := .Name}}{{$n}}{{$n = \"db\"}} {{$n}}", "web db"),
    ("{{range .Config.Env}}{{$.Name}}{{end}}", "webweb"),
    ('{{$n := .Name}}{{ $n | printf "%s!" }} {{ $.Num }}', "web! 3"),
    ("{{with $s := .State}}{{$s.Status}}{{end}}", "running"),
    ('{{index .Config.Labels "k"}} {{index .Config.Env 1}}', "v B=2"),
    ("{{len .Config.Env}} {{len .Name}} {{.Config.Env | len}}", "2 3 2"),
    ("{{slice .Name 1}} {{slice .Config.Env 0 1}}", "eb [A=1]"),
    ('{{join .Config.Env ","}}', "A=1,B=2"),
    ('{{split "a:b:c" ":"}} {{index (split "a:b" ":") 1}}', "[a b c] b"),
    ('{{upper .Name}} {{lower "AbC"}} {{title "hello big world"}}', "WEB abc Hello Big World"),
    ('[{{pad .Name 2 1}}] [{{pad "" 2 1}}] {{truncate .Name 2}} {{truncate .Name 9}}',
     "[  web ] [] we web"),
    ("{{.Name | upper | printf \"%s!\"}}", "WEB!"),
    ('{{printf "%s=%d %v %q %5.1f|%-4s|%04d %x %t" "a" 7 .Config.Env "q" 3.14159 "ab" 42 255 '
     'true}}',
     'a=7 [A=1 B=2] "q"   3.1|ab  |0042 ff true'),
    ('{{print "a" 1 2 "b"}}|{{println .Name 3}}', "a1 2b|web 3\n"),
    ("{{eq .Num 3}} {{ne .Name \"web\"}} {{lt 1 2}} {{le 2 2}} {{gt 1.5 2.5}} {{ge \"b\" \"a\"}}",
     "true false true true false true"),
    ('{{eq .Name "db" "web"}}', "true"),  # eq is true if any argument matches
    ("a \n {{- .Name -}} \n b", "awebb"),
    ("{{/* a comment */}}x{{- /* trimmed */ -}} y", "xy"),
    ('{{"tab\\there"}}|{{`raw\\t`}}', "tab\there|raw\\t"),
    ("{{(index .Config.Env 0)}} {{(.State).Status}}", "A=1 running"),
    ("{{.Missing}}", "<no value>"),  # a map's missing key, without missingkey=error
    ("{{html \"<a&b>\"}} {{urlquery \"a b&c\"}}", "&lt;a&amp;b&gt; a+b%26c"),
])
def test_templates(text: str, expected: str) -> None:
    assert run(text, DATA) == expected


@pytest.mark.parametrize("text, message", [
    ("{{.ID}", 'template: :1: unexpected "}" in operand'),
    ("{{.ID", "template: :1: unclosed action"),
    ("x\n{{foo .}}", 'template: :2: function "foo" not defined'),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{if .A}}x", "template: :1: unexpected EOF"),
    ("{{range .A}}", "template: :1: unexpected EOF"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{if}}{{end}}", "template: :1: missing value for if"),
    ("{{$x}}", 'template: :1: undefined variable "$x"'),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{$x, $y := 1}}", "template: :1: too many declarations in command"),
    ("{{$z = 1}}", 'template: :1: undefined variable "$z"'),
    ("{{if .A}}{{$v := 1}}{{end}}{{$v}}", 'template: :1: undefined variable "$v"'),
    ('{{"abc}}', "template: :1: unterminated quoted string"),
    ("{{3x}}", 'template: :1: bad number syntax: "3x"'),
    ("{{/* x }}", "template: :1: unclosed comment"),
    ("{{(.A}}", "template: :1: unclosed left paren"),
    ("{{.A)}}", "template: :1: unexpected right paren"),
    ("{{.A | 3}}", "template: :1: non executable command in pipeline stage 2"),
    ("{{# x}}", 'template: :1: unexpected "#" in command'),
    ("{{.A #}}", 'template: :1: unexpected "#" in operand'),
])
def test_parse_errors_have_gos_wording(text: str, message: str) -> None:
    assert error(text, DATA) == message


@pytest.mark.parametrize("text, data, options, message", [
    ("{{.Foo}}", container(ID="x"), {},
     'template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo in type '
     '*formatter.ContainerContext'),
    ("id {{.ID.Short}}", container(ID="x"), {},
     'template: :1:5: executing "" at <.ID.Short>: can\'t evaluate field Short in type string'),
    ("{{.State.Nope}}", DATA, {"missing_key": "error"},
     'template: :1:2: executing "" at <.State.Nope>: map has no entry for key "Nope"'),
    ("{{upper .Num}}", DATA, {},
     'template: :1:8: executing "" at <.Num>: wrong type for value; expected string; got int'),
    ('{{join .Name ","}}', DATA, {},
     'template: :1:7: executing "" at <.Name>: wrong type for value; expected []string; '
     'got string'),
    ("{{index .Config.Env 5}}", DATA, {},
     'template: :1:2: executing "" at <index>: error calling index: index out of range: 5'),
    ("{{len .Num}}", DATA, {},
     'template: :1:2: executing "" at <len>: error calling len: len of type int'),
    ('{{eq .Num "3"}}', DATA, {},
     'template: :1:2: executing "" at <eq>: error calling eq: incompatible types for '
     'comparison'),
    ("{{upper}}", DATA, {},
     'template: :1:2: executing "" at <upper>: wrong number of args for upper: want 1 got 0'),
    ('{{.Label}}', container(), {},
     'template: :1:2: executing "" at <.Label>: wrong number of args for Label: want 1 got 0'),
    ('{{.Name "x"}}', DATA, {},
     'template: :1:2: executing "" at <.Name>: Name is not a method but has arguments'),
    ("{{range .Name}}{{end}}", DATA, {},
     'template: :1:8: executing "" at <.Name>: range can\'t iterate over web'),
    ("{{.Config.Env.VeryLongFieldNameHere}}", DATA, {},
     'template: :1:2: executing "" at <.Config.Env.VeryLong...>: can\'t evaluate field '
     'VeryLongFieldNameHere in type []string'),
])
def test_execution_errors_have_gos_wording(text: str, data: Any, options: dict[str, Any],
                                           message: str) -> None:
    assert error(text, data, **options) == message


def test_struct_context_methods_and_labels() -> None:
    row = container(ID="abc", Names="web", labels={"com.x": "1"})
    assert run('{{.ID}} {{.Names}} {{.Label "com.x"}}|{{.Label "none"}}|', row) == "abc web 1||"
    assert run('{{"com.x" | .Label}}', row) == "1"
    assert run("{{json .}}", row) == '{"ID":"abc","Names":"web"}'


def test_go_maps_stay_lenient_where_structs_are_strict() -> None:
    data = {"Labels": GoMap({"a": "1"})}
    assert run('{{.Labels.b}}|{{index .Labels "b"}}|', data, missing_key="error") == \
        "<no value>||"


def test_printf_reports_bad_verbs_and_argument_counts_as_go() -> None:
    assert go_sprintf("%d", "x") == "%!d(string=x)"
    assert go_sprintf("%s %s", "a") == "a %!s(MISSING)"
    assert go_sprintf("a", 1) == "a%!(EXTRA int=1)"
    assert go_sprintf("100%%") == "100%"
    assert go_sprintf("%v %v %v", None, True, {"b": 1, "a": [1, 2]}) == \
        "<nil> true map[a:[1 2] b:1]"
    assert go_sprintf("%q %c", 65, 66) == "'A' B"


def test_tabwriter_aligns_as_docker() -> None:
    # cells padded to the column's widest + 3, at least 10; the last cell is never padded
    assert tabwrite("CONTAINER ID\tNAMES\nabc\tweb\n") == \
        "CONTAINER ID   NAMES\nabc            web\n"
    # a line without the column ends its block (Go's elastic tabstops)
    assert tabwrite("a\tb\nno tabs\nlonger cell\tc\n") == \
        "a         b\nno tabs\nlonger cell   c\n"
    # an empty trailing cell after a tab keeps the padding, as Go's does
    assert tabwrite("x\t\n") == "x         \n"
    # wide characters take two columns (the docker CLI measures with go-runewidth)
    assert tabwrite("日本\tx\nab\ty\n") == "日本      x\nab        y\n"


def rows() -> list[GoStruct]:
    return [container(ID="1a2b", Names="web", Status="Up 2 minutes"),
            container(ID="3c4d", Names="a-much-longer-name", Status="Exited (0) 1 second ago")]


HEADER = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"}


def test_table_prefix_prints_docker_headers_and_columns() -> None:
    out = render_listing(r"table {{.ID}}\t{{.Names}}\t{{.Status}}", rows(), HEADER)
    assert out == ("CONTAINER ID   NAMES                STATUS\n"
                   "1a2b           web                  Up 2 minutes\n"
                   "3c4d           a-much-longer-name   Exited (0) 1 second ago\n")
    # header functions leave the column names alone
    assert render_listing(r"table {{lower .Names}}", rows(), HEADER).splitlines() == \
        ["NAMES", "web", "a-much-longer-name"]
    # no rows: the header alone
    assert render_listing(r"table {{.Names}}", [], HEADER) == "NAMES\n"


def test_json_and_plain_formats() -> None:
    assert render_listing("json", rows()[:1], HEADER) == \
        '{"ID":"1a2b","Names":"web","Status":"Up 2 minutes"}\n'
    assert render_listing(r"{{.Names}}\t{{.ID}}", rows(), HEADER) == \
        "web\t1a2b\na-much-longer-name\t3c4d\n"
    assert render_listing("{{.Names}}", [], HEADER) == ""


def test_listing_errors_are_the_docker_clis() -> None:
    with pytest.raises(TemplateError) as caught:
        render_listing("{{.Nope}}", rows(), HEADER)
    assert str(caught.value) == ('template parsing error: template: :1:2: executing "" at '
                                 '<.Nope>: can\'t evaluate field Nope in type '
                                 '*formatter.ContainerContext')
    with pytest.raises(TemplateError) as caught:
        render_listing("{{.Names", rows(), HEADER)
    assert str(caught.value) == "template parsing error: template: :1: unclosed action"
    with pytest.raises(TemplateError) as caught:
        check_template("{{.Nope}}", container(ID=""))
    assert str(caught.value).startswith("failed to execute template: template: :1:2: ")


def test_inspect_lines_treat_json_as_docker_structs() -> None:
    attrs = {"State": {"Status": "exited"}, "Config": {"Labels": None, "Env": None},
             "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {}}}}
    assert inspect_lines("{{.State.Status}}", [attrs, attrs]) == "exited\nexited\n"
    # nil slices and maps print as Go's empty ones; a missing label is no error
    assert inspect_lines('{{.Config.Env}} {{.Config.Labels}} {{index .Config.Labels "x"}}|',
                         [attrs]) == "[] map[] |\n"
    assert inspect_lines("{{.HostConfig.LogConfig.Config.max}}", [attrs]) == "<no value>\n"
    # a list field the JSON leaves out is still a field
    assert inspect_lines("{{len .Config.Cmd}}", [attrs]) == "0\n"
    with pytest.raises(TemplateError) as caught:
        inspect_lines("{{.State.Nope}}", [attrs])
    assert "map has no entry for key \"Nope\"" in str(caught.value)
