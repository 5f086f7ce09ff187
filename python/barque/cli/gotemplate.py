"""Go's ``text/template``, as far as the docker CLI's ``--format`` and ``inspect -f`` use it.

Users copy their Docker templates (``{{.ID}}``, ``{{json .Config}}``, ``{{range}}``...) into
barque's commands, so this follows Go's grammar, evaluation rules, printing of values and error
wording rather than inventing a template language: a lexer and parser producing a small node
tree, and an evaluator over Python values that stand for Go's:

- ``dict``: a Go map (``.Key`` looks it up; a missing key is ``<no value>``, or an error with
  ``missing_key="error"``, as Docker's inspect fallback on raw JSON does);
- :class:`GoMap`: a map that stays lenient whatever the option (a ``map[string]string`` field
  of an inspect object, such as ``Labels``);
- :class:`GoStruct`: a Go struct pointer with methods (the docker CLI's listing contexts such as
  ``*formatter.ContainerContext``); an unknown field is Go's "can't evaluate field" error;
- ``list``, ``str``, ``int``, ``float``, ``bool``, ``None`` (Go's nil) and :data:`NO_VALUE`
  (Go's invalid value, printed ``<no value>``).

Errors are :class:`barque.errors.TemplateError` with Go's message (``template: :1: ...`` for
parse errors, ``template: :1:2: executing "" at <.Foo>: ...`` for execution errors).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..errors import TemplateError


class _NoValue:
    """Go's invalid ``reflect.Value``: what a missing map key evaluates to."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE: Any = _NoValue()


class GoMap(dict[str, Any]):
    """A Go map whose missing keys are ``<no value>`` (and ``""`` for ``index``) even when
    missing keys are errors elsewhere: Docker's typed inspect structs have such maps."""


class GoObject(dict[str, Any]):
    """A Go struct decoded from JSON: ``zeros`` holds the zero values of fields the JSON may
    leave out (a nil slice, an empty map), which a template still reads without error."""

    zeros: Mapping[str, Any] = {}


class GoStruct:
    """A Go struct pointer: ``methods`` are called for ``.Name`` (with the template's
    arguments); ``json`` gives what its MarshalJSON would."""

    __slots__ = ("type_name", "methods", "json")

    def __init__(self, type_name: str, methods: Mapping[str, Callable[..., Any]],
                 json: Callable[[], Any] | None = None) -> None:
        self.type_name = type_name
        self.methods = methods
        self.json = json



# -- lexer ------------------------------------------------------------------------------------

_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue"}
_SPACE = " \t\r\n"


class _Item:
    __slots__ = ("kind", "value", "pos", "line")

    def __init__(self, kind: str, value: str, pos: int, line: int) -> None:
        # kind: text, left, right, space, field, ident, var, dot, string, raw, char, number,
        # bool, nil, pipe, lparen, rparen, declare, assign, comma, other, keyword, eof, error
        self.kind = kind
        self.value = value
        self.pos = pos
        self.line = line

    def describe(self) -> str:
        """Go's ``item.String()``, as its parse errors quote the token."""
        if self.kind == "eof":
            return "EOF"
        if self.kind == "error":
            return self.value
        if self.kind == "keyword":
            return f"<{self.value}>"
        if len(self.value) > 10:
            return go_quote(self.value[:10]) + "..."
        return go_quote(self.value)


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.items: list[_Item] = []
        self.paren_depth = 0

    def run(self) -> list[_Item]:
        while True:
            if not self._lex_text():
                break
            if not self._lex_action():
                break
        return self.items

    def _emit(self, kind: str, start: int, value: str | None = None) -> None:
        text = self.text[start:self.pos] if value is None else value
        self.items.append(_Item(kind, text, start, self.line))
        self.line += self.text.count("\n", start, self.pos) if value is None else 0

    def _error(self, message: str) -> bool:
        self.items.append(_Item("error", message, self.pos, self.line))
        return False

    def _lex_text(self) -> bool:
        start = self.pos
        at = self.text.find("{{", self.pos)
        if at < 0:
            self.pos = len(self.text)
            if self.pos > start:
                self._emit("text", start)
            self.items.append(_Item("eof", "", self.pos, self.line))
            return False
        end = at
        trim = self.text.startswith("-", at + 2) and self.text[at + 3:at + 4] in tuple(_SPACE)
        if trim:
            while end > start and self.text[end - 1] in _SPACE:
                end -= 1
        if end > start:
            self.items.append(_Item("text", self.text[start:end], start, self.line))
        self.line += self.text.count("\n", start, at)
        self.pos = at
        return True

    def _at_right(self) -> tuple[bool, bool]:
        """(at the right delimiter, with a trim marker)."""
        if self.text.startswith(" -}}", self.pos) or (
                self.text[self.pos:self.pos + 1] in tuple(_SPACE)
                and self.text.startswith("-}}", self.pos + 1)):
            return True, True
        return self.text.startswith("}}", self.pos), False

    def _close(self, trim: bool) -> None:
        start = self.pos
        self.pos += 4 if trim else 2
        self._emit("right", start, "}}")
        if trim:
            while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
                if self.text[self.pos] == "\n":
                    self.line += 1
                self.pos += 1

    def _lex_action(self) -> bool:
        start = self.pos
        self.pos += 2
        if self.text.startswith("-", self.pos) and self.text[self.pos + 1:self.pos + 2] in tuple(
                _SPACE):
            self.pos += 2  # the trim marker; text before it was trimmed already
        self._emit("left", start, "{{")
        rest = self.pos
        while rest < len(self.text) and self.text[rest] in _SPACE:
            rest += 1
        if self.text.startswith("/*", rest):
            return self._lex_comment(rest)
        self.paren_depth = 0
        while True:
            at_right, trim = self._at_right()
            if at_right:
                if self.paren_depth:
                    return self._error("unclosed left paren")
                self._close(trim)
                return True
            if self.pos >= len(self.text):
                return self._error("unclosed action")
            if not self._lex_token():
                return False

    def _lex_comment(self, start: int) -> bool:
        self.items.pop()  # a comment is no action
        end = self.text.find("*/", start + 2)
        if end < 0:
            return self._error("unclosed comment")
        self.line += self.text.count("\n", start, end)
        self.pos = end + 2
        at_right, trim = self._at_right()
        if not at_right:
            return self._error("comment ends before closing delimiter")
        self.pos += 4 if trim else 2
        if trim:
            while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
                self.pos += 1
        return True

    def _lex_token(self) -> bool:
        text, start = self.text, self.pos
        c = text[start]
        if c in _SPACE:
            while self.pos < len(text) and text[self.pos] in _SPACE and not self._at_right()[0]:
                self.pos += 1
            if self.pos == start:  # " -}}": the space belongs to the delimiter
                return True
            self._emit("space", start)
        elif c == "=":
            self.pos += 1
            self._emit("assign", start)
        elif c == ":":
            if not text.startswith(":=", start):
                return self._error("expected :=")
            self.pos += 2
            self._emit("declare", start)
        elif c == "|":
            self.pos += 1
            self._emit("pipe", start)
        elif c == ",":
            self.pos += 1
            self._emit("comma", start)
        elif c == '"':
            return self._lex_quote(start, '"', "unterminated quoted string", "string")
        elif c == "'":
            return self._lex_quote(start, "'", "unterminated character constant", "char")
        elif c == "`":
            end = text.find("`", start + 1)
            if end < 0:
                return self._error("unterminated raw quoted string")
            self.pos = end + 1
            self._emit("raw", start)
        elif c == "$":
            self.pos += 1
            self._scan_word()
            self._emit("var", start)
        elif c == "." and text[start + 1:start + 2].isdigit():
            return self._lex_number(start)
        elif c == ".":
            self.pos += 1
            if self._scan_word():
                return self._emit_field(start)
            self._emit("dot", start)
        elif c in "+-" or c.isdigit():
            return self._lex_number(start)
        elif c.isalpha() or c == "_":
            self._scan_word()
            word = text[start:self.pos]
            if not self._at_terminator():
                return self._error(f"bad character {_go_rune(text[self.pos])}")
            kind = ("keyword" if word in _KEYWORDS else "bool" if word in ("true", "false")
                    else "nil" if word == "nil" else "ident")
            self._emit(kind, start)
        elif c == "(":
            self.pos += 1
            self.paren_depth += 1
            self._emit("lparen", start)
        elif c == ")":
            self.pos += 1
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self._error("unexpected right paren")
            self._emit("rparen", start)
        elif c.isascii() and c.isprintable():
            self.pos += 1
            self._emit("other", start)
        else:
            return self._error(f"unrecognized character in action: {_go_rune(c)}")
        return True

    def _scan_word(self) -> bool:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum()
                                             or self.text[self.pos] == "_"):
            self.pos += 1
        return self.pos > start

    def _at_terminator(self) -> bool:
        if self.pos >= len(self.text):
            return True
        c = self.text[self.pos]
        return c in _SPACE or c in ".,|:()" or self.text.startswith("}", self.pos)

    def _emit_field(self, start: int) -> bool:
        if not self._at_terminator():
            return self._error(f"bad character {_go_rune(self.text[self.pos])}")
        self._emit("field", start)
        return True

    def _lex_quote(self, start: int, quote: str, unterminated: str, kind: str) -> bool:
        self.pos += 1
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] == "\n":
                return self._error(unterminated)
            c = self.text[self.pos]
            self.pos += 1
            if c == "\\":
                self.pos += 1
            elif c == quote:
                break
        self._emit(kind, start)
        return True

    def _lex_number(self, start: int) -> bool:
        text = self.text
        if text[self.pos] in "+-":
            self.pos += 1
        while self.pos < len(text) and (text[self.pos].isalnum() or text[self.pos] in "._"
                                        or (text[self.pos] in "+-"
                                            and text[self.pos - 1] in "eEpP")):
            self.pos += 1
        if self.pos < len(text) and text[self.pos].isalpha():
            self.pos += 1
            return self._error(f"bad number syntax: {go_quote(text[start:self.pos])}")
        self._emit("number", start)
        return True


# -- nodes ------------------------------------------------------------------------------------

class _Node:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        raise NotImplementedError


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text

    def __str__(self) -> str:
        return go_quote(self.text)


class _Field(_Node):
    __slots__ = ("names",)

    def __init__(self, pos: int, names: list[str]) -> None:
        super().__init__(pos)
        self.names = names

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


class _Variable(_Node):
    __slots__ = ("names",)

    def __init__(self, pos: int, names: list[str]) -> None:
        super().__init__(pos)
        self.names = names  # "$x", then fields

    def __str__(self) -> str:
        return self.names[0] + "".join("." + n for n in self.names[1:])


class _Dot(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        super().__init__(pos)

    def __str__(self) -> str:
        return "."


class _Nil(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        super().__init__(pos)

    def __str__(self) -> str:
        return "nil"


class _Identifier(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        super().__init__(pos)
        self.name = name

    def __str__(self) -> str:
        return self.name


class _Literal(_Node):
    __slots__ = ("value", "source")

    def __init__(self, pos: int, value: Any, source: str) -> None:
        super().__init__(pos)
        self.value = value
        self.source = source

    def __str__(self) -> str:
        return self.source


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[_Node]) -> None:
        super().__init__(pos)
        self.args = args

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


class _Pipe(_Node):
    __slots__ = ("decl", "commands", "is_assign")

    def __init__(self, pos: int, decl: list[_Variable], commands: list[_Command],
                 is_assign: bool = False) -> None:
        super().__init__(pos)
        self.decl = decl
        self.commands = commands
        self.is_assign = is_assign

    def __str__(self) -> str:
        text = " | ".join(str(c) for c in self.commands)
        if self.decl:
            names = ", ".join(str(v) for v in self.decl)
            text = f"{names} {'=' if self.is_assign else ':='} {text}"
        return text


class _Chain(_Node):
    __slots__ = ("node", "names")

    def __init__(self, pos: int, node: _Node, names: list[str]) -> None:
        super().__init__(pos)
        self.node = node
        self.names = names

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return inner + "".join("." + n for n in self.names)


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: _Pipe) -> None:
        super().__init__(pos)
        self.pipe = pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class _Control(_Node):
    __slots__ = ("kind", "pipe", "body", "else_body")

    def __init__(self, pos: int, kind: str, pipe: _Pipe, body: list[_Node],
                 else_body: list[_Node] | None = None) -> None:
        super().__init__(pos)
        self.kind = kind  # if, range, with
        self.pipe = pipe
        self.body = body
        self.else_body = else_body

    def __str__(self) -> str:
        return "{{" + self.kind + " " + str(self.pipe) + "}}"


class _BreakNode(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        super().__init__(pos)

    def __str__(self) -> str:
        return "{{break}}"


class _ContinueNode(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        super().__init__(pos)

    def __str__(self) -> str:
        return "{{continue}}"


# -- parser -----------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str, functions: Mapping[str, Any]) -> None:
        self.items = _Lexer(text).run()
        self.at = 0
        self.functions = functions
        self.vars = ["$"]
        self.range_depth = 0
        self.last = self.items[0]

    def error(self, message: str) -> TemplateError:
        return TemplateError(f"template: :{self.last.line}: {message}")

    def next(self) -> _Item:
        item = self.items[self.at]
        if self.at < len(self.items) - 1:
            self.at += 1
        self.last = item
        if item.kind == "error":
            raise self.error(item.value)
        return item

    def backup(self) -> None:
        self.at -= 1

    def peek(self) -> _Item:
        return self.items[self.at]

    def next_non_space(self) -> _Item:
        item = self.next()
        while item.kind == "space":
            item = self.next()
        return item

    def peek_non_space(self) -> _Item:
        item = self.next_non_space()
        self.backup()
        return item

    def unexpected(self, item: _Item, context: str) -> TemplateError:
        if item.kind == "error":
            return self.error(item.value)
        return self.error(f"unexpected {item.describe()} in {context}")

    def parse(self) -> list[_Node]:
        nodes: list[_Node] = []
        while self.peek().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, str):
                raise self.error(f"unexpected {{{{{node}}}}}")
            nodes.append(node)
        if self.peek().kind == "eof":
            self.next()
        return nodes

    def item_list(self, context: str) -> tuple[list[_Node], str]:
        """Nodes up to ``{{end}}`` or ``{{else}}``: (nodes, which one)."""
        nodes: list[_Node] = []
        while True:
            if self.peek_non_space().kind == "eof":
                self.next()
                raise self.error("unexpected EOF")
            node = self.text_or_action()
            if isinstance(node, str):
                return nodes, node
            nodes.append(node)

    def text_or_action(self) -> _Node | str:
        item = self.next_non_space() if self.peek().kind == "space" else self.next()
        if item.kind == "text":
            return _Text(item.pos, item.value)
        if item.kind == "left":
            return self.action()
        raise self.unexpected(item, "input")

    def action(self) -> _Node | str:
        item = self.next_non_space()
        if item.kind == "keyword":
            word = item.value
            if word == "end":
                self.expect_right("end")
                return "end"
            if word == "else":
                return "else"
            if word in ("if", "range", "with"):
                return self.control(word, item.pos)
            if word in ("break", "continue"):
                if not self.range_depth:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}")
                self.expect_right(word)
                return _BreakNode(item.pos) if word == "break" else _ContinueNode(item.pos)
            raise self.error(f"{{{{{word}}}}} is not supported by barque's templates")
        self.backup()
        return _Action(item.pos, self.pipeline("command", "right"))

    def expect_right(self, context: str) -> None:
        item = self.next_non_space()
        if item.kind != "right":
            raise self.unexpected(item, context)

    def control(self, kind: str, pos: int) -> _Control:
        mark = len(self.vars)
        if kind == "range":
            self.range_depth += 1
        pipe = self.pipeline(kind, "right")
        body, ended = self.item_list(kind)
        else_body: list[_Node] | None = None
        if ended == "else":
            after = self.peek_non_space()
            if kind in ("if", "with") and after.kind == "keyword" and after.value == kind:
                # {{else if ...}}: an else branch holding one more control, sharing {{end}}
                self.next_non_space()
                else_body = [self.control(kind, after.pos)]
            else:
                self.expect_right("else")
                else_body, ended = self.item_list(kind)
                if ended != "end":
                    raise self.error(f"expected end; found {{{{{ended}}}}}")
        if kind == "range":
            self.range_depth -= 1
        del self.vars[mark:]
        return _Control(pos, kind, pipe, body, else_body)

    def pipeline(self, context: str, end: str) -> _Pipe:
        start = self.peek_non_space()
        decl: list[_Variable] = []
        is_assign = False
        while True:
            before = self.at
            item = self.peek_non_space()
            if item.kind != "var":
                break
            self.next_non_space()
            after = self.next_non_space()
            if after.kind == "comma" and (context != "range" or decl):
                raise self.error(f"too many declarations in {context}")
            if after.kind not in ("declare", "assign", "comma"):
                self.at = before  # a variable used, not declared: the command's
                break
            decl.append(_Variable(item.pos, [item.value]))
            if after.kind == "assign":
                is_assign = True
                if item.value not in self.vars:
                    raise self.error(f"undefined variable {go_quote(item.value)}")
            else:
                self.vars.append(item.value)
            if after.kind != "comma":
                break
        commands: list[_Command] = []
        while True:
            item = self.next_non_space()
            if item.kind == end:
                if not commands:
                    raise self.error(f"missing value for {context}")
                for i, command in enumerate(commands[1:], start=2):
                    first = command.args[0]
                    if isinstance(first, (_Literal, _Nil, _Dot)):
                        raise self.error(f"non executable command in pipeline stage {i}")
                return _Pipe(start.pos, decl, commands, is_assign)
            if item.kind in ("bool", "char", "dot", "field", "ident", "number", "nil", "raw",
                             "string", "var", "lparen"):
                self.backup()
                commands.append(self.command())
            else:
                raise self.unexpected(item, context)

    def command(self) -> _Command:
        args: list[_Node] = []
        start = self.peek_non_space().pos
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            item = self.next()
            if item.kind == "space":
                continue
            if item.kind in ("right", "rparen"):
                self.backup()
            elif item.kind != "pipe":
                raise self.unexpected(item, "operand")
            break
        if not args:
            raise self.error("empty command")
        return _Command(start, args)

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            names: list[str] = []
            while self.peek().kind == "field":
                names.extend(self.next().value[1:].split("."))
            if isinstance(node, _Field):
                return _Field(node.pos, node.names + names)
            if isinstance(node, _Variable):
                return _Variable(node.pos, node.names + names)
            if isinstance(node, (_Literal, _Nil, _Dot)):
                raise self.error(f"unexpected . after term {go_quote(str(node))}")
            return _Chain(node.pos, node, names)
        return node

    def term(self) -> _Node | None:
        item = self.next_non_space()
        kind = item.kind
        if kind == "ident":
            if item.value not in self.functions:
                raise self.error(f"function {go_quote(item.value)} not defined")
            return _Identifier(item.pos, item.value)
        if kind == "dot":
            return _Dot(item.pos)
        if kind == "nil":
            return _Nil(item.pos)
        if kind == "var":
            parts = item.value.split(".")
            if parts[0] not in self.vars:
                raise self.error(f"undefined variable {go_quote(parts[0])}")
            return _Variable(item.pos, parts)
        if kind == "field":
            return _Field(item.pos, item.value[1:].split("."))
        if kind == "bool":
            return _Literal(item.pos, item.value == "true", item.value)
        if kind in ("number", "char"):
            return _Literal(item.pos, self.number(item), item.value)
        if kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if kind in ("string", "raw"):
            try:
                value = _go_unquote(item.value)
            except ValueError:
                raise self.error(f"invalid syntax: {item.value}") from None
            return _Literal(item.pos, value, item.value)
        self.backup()
        return None

    def number(self, item: _Item) -> int | float:
        text = item.value
        if item.kind == "char":
            try:
                value = _go_unquote(text)
            except ValueError:
                raise self.error(f"malformed character constant: {text}") from None
            if len(value) != 1:
                raise self.error(f"malformed character constant: {text}")
            return ord(value)
        clean = text.replace("_", "")
        try:
            if clean.lower().lstrip("+-").startswith(("0x", "0o", "0b")):
                return int(clean, 0)
            if any(c in clean for c in ".eE"):
                return float(clean)  # Go: a constant written as a float is a float64
            if len(clean.lstrip("+-")) > 1 and clean.lstrip("+-").startswith("0"):
                return int(clean.lstrip("+-"), 8) * (-1 if clean.startswith("-") else 1)
            return int(clean)
        except ValueError:
            raise self.error(f"bad number syntax: {go_quote(text)}") from None


# -- evaluation -------------------------------------------------------------------------------

class _ExecError(Exception):
    def __init__(self, node: _Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _FunctionError(Exception):
    """A function's own failure: Go reports it as ``error calling NAME: ...``."""


class _ArgumentError(Exception):
    """A value of the wrong type for a function's parameter."""


class Template:
    """A parsed template: :meth:`execute` it on data as many times as needed."""

    __slots__ = ("text", "nodes", "functions")

    def __init__(self, text: str, nodes: list[_Node],
                 functions: Mapping[str, Callable[..., Any]]) -> None:
        self.text = text
        self.nodes = nodes
        self.functions = functions

    def execute(self, data: Any, *, missing_key: str = "default",
                functions: Mapping[str, Callable[..., Any]] | None = None,
                partial: bool = False) -> str:
        """The text the template makes of ``data``. ``functions`` replaces functions of the
        same names (the docker CLI's header functions); ``partial``: on an execution error,
        return what was written before it (Go's writer keeps it) instead of raising."""
        out: list[str] = []
        state = _State(self, data, out, missing_key, {**self.functions, **(functions or {})})
        try:
            state.walk_list(data, self.nodes)
        except _ExecError as e:
            if partial:
                return "".join(out)
            raise TemplateError(state.describe(e)) from None
        return "".join(out)


def parse(text: str, functions: Mapping[str, Callable[..., Any]] | None = None) -> Template:
    """Parse ``text`` with Go's builtins, Docker's template functions and ``functions``."""
    table = {**BUILTINS, **DOCKER_FUNCTIONS, **(functions or {})}
    return Template(text, _Parser(text, table).parse(), table)


class _State:
    def __init__(self, template: Template, data: Any, out: list[str], missing_key: str,
                 functions: Mapping[str, Callable[..., Any]]) -> None:
        self.template = template
        self.out = out
        self.missing_key = missing_key
        self.functions = functions
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.node: _Node = _Dot(0)

    def describe(self, error: _ExecError) -> str:
        text = self.template.text
        pos = error.node.pos
        line = 1 + text.count("\n", 0, pos)
        col = pos - (text.rfind("\n", 0, pos) + 1)
        context = str(error.node)
        if len(context) > 20:
            context = context[:20] + "..."
        return f'template: :{line}:{col}: executing "" at <{context}>: {error.message}'

    def fail(self, message: str, node: _Node | None = None) -> _ExecError:
        return _ExecError(node or self.node, message)

    # -- statements

    def walk_list(self, dot: Any, nodes: Sequence[_Node]) -> None:
        for node in nodes:
            self.walk(dot, node)

    def walk(self, dot: Any, node: _Node) -> None:
        self.node = node
        if isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.out.append(self.printable(value, node))
        elif isinstance(node, _Control):
            mark = len(self.vars)
            try:
                if node.kind == "range":
                    self.walk_range(dot, node)
                else:
                    value = self.eval_pipeline(dot, node.pipe)
                    if _truth(value):
                        self.walk_list(value if node.kind == "with" else dot, node.body)
                    elif node.else_body is not None:
                        self.walk_list(dot, node.else_body)
            finally:
                del self.vars[mark:]
        elif isinstance(node, _BreakNode):
            raise _BreakSignal
        elif isinstance(node, _ContinueNode):
            raise _ContinueSignal

    def walk_range(self, dot: Any, node: _Control) -> None:
        value = self.eval_pipeline(dot, node.pipe, declare=False)
        if isinstance(value, (list, tuple)):
            pairs: Iterator[tuple[Any, Any]] | list[tuple[Any, Any]] = list(enumerate(value))
        elif isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value, key=_sort_key)]
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.decl) > 1:
                raise self.fail("can't use int to iterate over more than one variable")
            pairs = [(i, i) for i in range(value)]
        elif value is None or value is NO_VALUE:
            pairs = []
        else:
            raise self.fail(f"range can't iterate over {_sprint_value(value)}")
        if not pairs:
            if node.else_body is not None:
                self.walk_list(dot, node.else_body)
            return
        mark = len(self.vars)
        for key, element in pairs:
            names = [v.names[0] for v in node.pipe.decl]
            if len(names) == 1:
                self.vars.append((names[0], element))
            elif len(names) == 2:
                self.vars.append((names[0], key))
                self.vars.append((names[1], element))
            try:
                self.walk_list(element, node.body)
            except _ContinueSignal:
                pass
            except _BreakSignal:
                break
            finally:
                del self.vars[mark:]

    # -- pipelines and commands

    def eval_pipeline(self, dot: Any, pipe: _Pipe, declare: bool = True) -> Any:
        self.node = pipe
        value: Any = _MISSING
        for command in pipe.commands:
            value = self.eval_command(dot, command, value)
        if declare:
            for variable in pipe.decl:
                if pipe.is_assign:
                    self.set_var(variable.names[0], value)
                else:
                    self.vars.append((variable.names[0], value))
        return value

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.fail(f"undefined variable: {name}")

    def var(self, name: str) -> Any:
        for known, value in reversed(self.vars):
            if known == name:
                return value
        raise self.fail(f"undefined variable: {name}")

    def eval_command(self, dot: Any, command: _Command, final: Any) -> Any:
        first = command.args[0]
        self.node = first
        if isinstance(first, _Field):
            return self.eval_field_chain(dot, dot, first, first.names, command.args, final)
        if isinstance(first, _Chain):
            return self.eval_chain(dot, first, command.args, final)
        if isinstance(first, _Identifier):
            return self.eval_function(dot, first, command.args, final)
        if isinstance(first, _Variable):
            return self.eval_variable(dot, first, command.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(command.args, final)
            return self.eval_pipeline(dot, first)
        self.not_a_function(command.args, final)
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            raise self.fail("nil is not a command")
        assert isinstance(first, _Literal)
        return first.value

    def not_a_function(self, args: Sequence[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            raise self.fail(f"can't give argument to non-function {args[0]}")

    def eval_chain(self, dot: Any, chain: _Chain, args: Sequence[_Node], final: Any) -> Any:
        if isinstance(chain.node, _Pipe):
            receiver = self.eval_pipeline(dot, chain.node)
        else:
            receiver = self.eval_arg(dot, chain.node)
        return self.eval_field_chain(dot, receiver, chain, chain.names, args, final)

    def eval_variable(self, dot: Any, variable: _Variable, args: Sequence[_Node],
                      final: Any) -> Any:
        self.node = variable
        value = self.var(variable.names[0])
        if len(variable.names) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, variable, variable.names[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: _Node, names: Sequence[str],
                         args: Sequence[_Node], final: Any) -> Any:
        self.node = node
        for name in names[:-1]:
            receiver = self.eval_field(dot, name, node, [], _MISSING, receiver)
        return self.eval_field(dot, names[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: _Node, args: Sequence[_Node], final: Any,
                   receiver: Any) -> Any:
        has_args = len(args) > 1 or final is not _MISSING
        if receiver is NO_VALUE or receiver is None:
            if self.missing_key == "error":
                raise self.fail(f"nil data; no entry for key {go_quote(name)}", node)
            if receiver is None:
                raise self.fail(f"nil pointer evaluating interface {{}}.{name}", node)
            return NO_VALUE
        if isinstance(receiver, GoStruct):
            method = receiver.methods.get(name)
            if method is None:
                raise self.fail(f"can't evaluate field {name} in type {receiver.type_name}", node)
            values = [self.eval_arg(dot, a) for a in args[1:]]
            if final is not _MISSING:
                values.append(final)
            wanted = arity(method)
            if len(values) != wanted:
                raise self.fail(f"wrong number of args for {name}: want {wanted} got "
                                f"{len(values)}", node)
            for value in values:
                if not isinstance(value, str):
                    raise self.fail(f"wrong type for value; expected string; got "
                                    f"{go_type(value)}", node)
            return method(*values)
        if isinstance(receiver, dict):
            if has_args:
                raise self.fail(f"{name} is not a method but has arguments", node)
            if name in receiver:
                return receiver[name]
            if isinstance(receiver, GoObject) and name in receiver.zeros:
                return receiver.zeros[name]
            if self.missing_key == "error" and not isinstance(receiver, GoMap):
                raise self.fail(f"map has no entry for key {go_quote(name)}", node)
            return NO_VALUE
        raise self.fail(f"can't evaluate field {name} in type {go_type(receiver)}", node)

    def eval_function(self, dot: Any, ident: _Identifier, args: Sequence[_Node],
                      final: Any) -> Any:
        self.node = ident
        name = ident.name
        function = self.functions[name]
        if name in ("and", "or"):  # Go evaluates their arguments lazily, left to right
            nodes = list(args[1:])
            if not nodes and final is _MISSING:
                raise self.fail(f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for node in nodes:
                value = self.eval_arg(dot, node)
                if _truth(value) != (name == "and"):
                    return value
            if final is not _MISSING:
                value = final
            return value
        values = [self.eval_arg(dot, a) for a in args[1:]]
        if final is not _MISSING:
            values.append(final)
        self.check_arity(name, function, len(values), ident)
        for i, (value, wanted) in enumerate(zip(values, _PARAMETERS.get(function, ()))):
            if not _is_go_type(value, wanted):
                # Go checks each argument against the function's parameter type, and points
                # at the argument (a piped value: at the command)
                at = args[i + 1] if i + 1 < len(args) else ident
                raise self.fail(f"wrong type for value; expected {wanted}; got "
                                f"{go_type(value)}", at)
        try:
            return function(*values)
        except _ArgumentError as e:
            raise self.fail(str(e), ident) from None
        except _FunctionError as e:
            raise self.fail(f"error calling {name}: {e}", ident) from None

    def check_arity(self, name: str, function: Callable[..., Any], count: int,
                    node: _Node) -> None:
        fixed = arity(function)
        variadic = bool(function.__code__.co_flags & 0x04)
        if variadic and count < fixed:
            raise self.fail(f"wrong number of args for {name}: want at least {fixed} got "
                            f"{count}", node)
        if not variadic and count != fixed:
            raise self.fail(f"wrong number of args for {name}: want {fixed} got {count}", node)

    def eval_arg(self, dot: Any, node: _Node) -> Any:
        self.node = node
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, _Field):
            return self.eval_field_chain(dot, dot, node, node.names, [node], _MISSING)
        if isinstance(node, _Variable):
            return self.eval_variable(dot, node, [node], _MISSING)
        if isinstance(node, _Pipe):
            return self.eval_pipeline(dot, node)
        if isinstance(node, _Identifier):
            return self.eval_function(dot, node, [node], _MISSING)
        if isinstance(node, _Chain):
            return self.eval_chain(dot, node, [node], _MISSING)
        assert isinstance(node, _Literal)
        return node.value

    def printable(self, value: Any, node: _Node) -> str:
        if callable(value) and not isinstance(value, GoStruct):
            raise self.fail(f"can't print {node} of type func", node)
        return _sprint_value(value)


_MISSING: Any = object()  # no value piped into a command (Go's missingVal)


def arity(function: Callable[..., Any]) -> int:
    """The arguments a function or method needs (those with defaults are its own)."""
    code = function.__code__
    bound = 1 if hasattr(function, "__self__") else 0
    return code.co_argcount - len(function.__defaults__ or ()) - bound


class _BreakSignal(Exception):
    pass


class _ContinueSignal(Exception):
    pass


def _truth(value: Any) -> bool:
    """Go's ``isTrue``: zero values, nil and empty collections are false; structs are true."""
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, GoStruct):
        return True
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


# -- Go's printing of values -----------------------------------------------------------------

def go_type(value: Any) -> str:
    """The Go type a value stands for, as Go's error messages name it."""
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]string" if value and all(isinstance(v, str) for v in value) else \
            "[]interface {}"
    if isinstance(value, GoMap):
        return "map[string]string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "<nil>"


def _sort_key(key: Any) -> tuple[int, Any]:
    return (0, key) if isinstance(key, (int, float)) else (1, str(key))


def _sprint_value(value: Any) -> str:
    """Go's ``fmt.Sprint`` of one value (``%v``)."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_sprint_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{_sprint_value(k)}:{_sprint_value(value[k])}"
                                 for k in sorted(value, key=_sort_key)) + "]"
    if isinstance(value, GoStruct):
        return "&{" + " ".join(_sprint_value(m()) for m in value.methods.values()
                               if arity(m) == 0) + "}"
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v of a float64: strconv's 'g' with the shortest digits (%e from exponent 6 on,
    or below -4)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    from decimal import Decimal  # only floats need it: not at import, which ps pays for
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(str(d) for d in digits)
    exp = len(text) + int(exponent) - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{prefix}0.{'0' * (-exp - 1)}{text}"
    if len(text) <= exp + 1:
        return prefix + text + "0" * (exp + 1 - len(text))
    return f"{prefix}{text[:exp + 1]}.{text[exp + 1:]}"


def go_quote(text: str) -> str:
    """strconv.Quote: printable characters stay, others become Go escapes."""
    out = ['"']
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c.isprintable():
            out.append(c)
        elif c in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[c])
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def _go_rune(c: str) -> str:
    """Go's ``%#U``: U+0023 '#'."""
    return f"U+{ord(c):04X}" + (f" '{c}'" if c.isprintable() else "")


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


def _go_unquote(text: str) -> str:
    """strconv.Unquote for "...", '...' and `...` literals."""
    if text.startswith("`"):
        return text[1:-1].replace("\r", "")
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ValueError(text)
        e = body[i]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 1
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 1:i + 1 + width]
            if len(digits) != width:
                raise ValueError(text)
            out.append(chr(int(digits, 16)))
            i += 1 + width
        elif e in "01234567":
            out.append(chr(int(body[i:i + 3], 8)))
            i += 3
        else:
            raise ValueError(text)
    return "".join(out)


# -- Go's fmt verbs (printf) -----------------------------------------------------------------

def _bad_verb(verb: str, value: Any) -> str:
    if value is None or value is NO_VALUE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(value)}={_sprint_value(value)})"


def _format_one(verb: str, value: Any, flags: str, width: int | None,
                precision: int | None) -> str:
    if isinstance(value, (list, tuple)) and verb != "v":  # Go formats each element
        return "[" + " ".join(_format_one(verb, v, flags, width, precision)
                              for v in value) + "]"
    text: str
    numeric = False
    if verb == "v":
        if isinstance(value, float) and precision is not None:
            text = format(value, f".{precision}g")
        else:
            text = _sprint_value(value)
            if precision is not None and isinstance(value, str):
                text = text[:precision]
    elif verb == "s":
        if not isinstance(value, str):
            return _bad_verb(verb, value)
        text = value if precision is None else value[:precision]
    elif verb == "q":
        if isinstance(value, str):
            text = (f"`{value}`" if "#" in flags and "`" not in value else go_quote(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            text = "'" + go_quote(chr(value))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'"
        else:
            return _bad_verb(verb, value)
    elif verb == "t":
        if not isinstance(value, bool):
            return _bad_verb(verb, value)
        text = "true" if value else "false"
    elif verb in "dboxXc":
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (
                isinstance(value, str) and verb not in "xX"):
            return _bad_verb(verb, value)
        if isinstance(value, str):
            text = value.encode().hex()
            text = text.upper() if verb == "X" else text
        elif verb == "c":
            text = chr(value)
        else:
            base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
            text = format(abs(value), base)
            if "#" in flags and verb in "xXob":
                text = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}[verb] + text
            if value < 0:
                text = "-" + text
            elif "+" in flags:
                text = "+" + text
            numeric = True
    elif verb in "eEfFgG":
        if isinstance(value, bool) or not isinstance(value, float):
            return _bad_verb(verb, value)
        if verb in "gG" and precision is None:
            text = _go_float(value)
            text = text.upper() if verb == "G" else text
        else:
            p = 6 if precision is None else precision
            text = format(value, f"{'+' if '+' in flags else ''}.{p}{verb}")
        numeric = True
    else:
        return _bad_verb(verb, value)
    if width is not None and len(text) < width:
        if "-" in flags:
            text = text.ljust(width)
        elif "0" in flags and numeric:
            sign = text[0] if text[0] in "+-" else ""
            text = sign + text[len(sign):].rjust(width - len(sign), "0")
        else:
            text = text.rjust(width)
    return text


def go_sprintf(format_text: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use (%s %d %v %q %x %f %t %c ...)."""
    out: list[str] = []
    used = 0
    i = 0
    n = len(format_text)
    while i < n:
        c = format_text[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        i += 1
        flags = ""
        while i < n and format_text[i] in "+-# 0":
            flags += format_text[i]
            i += 1
        width: int | None = None
        precision: int | None = None
        start = i
        while i < n and format_text[i].isdigit():
            i += 1
        if i > start:
            width = int(format_text[start:i])
        elif i < n and format_text[i] == "*":
            i += 1
            if used < len(args) and isinstance(args[used], int):
                width = args[used]
            used += 1
        if i < n and format_text[i] == ".":
            i += 1
            start = i
            while i < n and format_text[i].isdigit():
                i += 1
            precision = int(format_text[start:i] or 0)
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = format_text[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(verb, args[used], flags, width, precision))
        used += 1
    if used < len(args):
        extra = ", ".join("<nil>" if a is None else f"{go_type(a)}={_sprint_value(a)}"
                          for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# -- functions --------------------------------------------------------------------------------

def _expect(value: Any, kind: type | tuple[type, ...], go_name: str) -> Any:
    if isinstance(value, bool) and kind is int or not isinstance(value, kind):
        raise _ArgumentError(f"wrong type for value; expected {go_name}; got {go_type(value)}")
    return value


def _basic_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return None


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise _FunctionError("missing argument for comparison")
    kind = _basic_kind(first)
    for other in others:
        other_kind = _basic_kind(other)
        if kind is None or other_kind is None:
            if first in (None, NO_VALUE) or other in (None, NO_VALUE):
                if first is other or (first in (None, NO_VALUE) and other in (None, NO_VALUE)):
                    return True
                continue
            if isinstance(first, (list, tuple, dict)) or isinstance(other, (list, tuple, dict)):
                raise _FunctionError("non-comparable type")
            if first is other:
                return True
            continue
        if kind != other_kind:
            raise _FunctionError("incompatible types for comparison")
        if first == other:
            return True
    return False


def _ne(first: Any, second: Any) -> bool:
    return not _eq(first, second)


def _ordered(first: Any, second: Any) -> tuple[Any, Any]:
    kind, other = _basic_kind(first), _basic_kind(second)
    if kind is None or other is None or kind == "bool" or other == "bool":
        raise _FunctionError("invalid type for comparison")
    if kind != other:
        raise _FunctionError("incompatible types for comparison")
    return first, second


def _lt(first: Any, second: Any) -> bool:
    a, b = _ordered(first, second)
    return bool(a < b)


def _le(first: Any, second: Any) -> bool:
    a, b = _ordered(first, second)
    return bool(a <= b)


def _gt(first: Any, second: Any) -> bool:
    a, b = _ordered(first, second)
    return bool(a > b)


def _ge(first: Any, second: Any) -> bool:
    a, b = _ordered(first, second)
    return bool(a >= b)


def _not(value: Any) -> bool:
    return not _truth(value)


def _and(*values: Any) -> Any:  # evaluated lazily by the evaluator; here for the table
    return values[-1] if values else None


def _or(*values: Any) -> Any:
    return values[-1] if values else None


def _len(value: Any) -> int:
    if value is None or value is NO_VALUE:
        raise _FunctionError("len of nil pointer")
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (list, tuple, dict)):
        return len(value)
    raise _FunctionError(f"len of type {go_type(value)}")


def _index(item: Any, *keys: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise _FunctionError("index of untyped nil")
    for key in keys:
        if item is None or item is NO_VALUE:
            raise _FunctionError("index of nil pointer")
        if isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _FunctionError(f"cannot index slice/array with type {go_type(key)}")
            sequence = item.encode() if isinstance(item, str) else item
            if not 0 <= key < len(sequence):
                raise _FunctionError(f"index out of range: {key}")
            item = sequence[key]
        elif isinstance(item, dict):
            if key is None or key is NO_VALUE:
                raise _FunctionError("value is nil; should be of type string")
            if not isinstance(key, str):
                raise _FunctionError(f"value has type {go_type(key)}; should be string")
            if key in item:
                item = item[key]
            elif isinstance(item, GoObject) and key in item.zeros:
                item = item.zeros[key]
            else:
                item = "" if isinstance(item, GoMap) else NO_VALUE
        else:
            raise _FunctionError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise _FunctionError(f"can't slice item of type {go_type(item)}")
    if len(indexes) > 3 or (len(indexes) == 3 and isinstance(item, str)):
        raise _FunctionError("too many slice indexes: " + str(len(indexes)))
    bounds = [int(i) for i in indexes]
    end = len(item.encode()) if isinstance(item, str) else len(item)
    low = bounds[0] if bounds else 0
    high = bounds[1] if len(bounds) > 1 else end
    if not 0 <= low <= high <= end:
        raise _FunctionError(f"index out of range: {high if high > end else low}")
    if isinstance(item, str):
        return item.encode()[low:high].decode(errors="replace")
    return list(item[low:high])


def _sprint(*values: Any) -> str:
    out = []
    for i, value in enumerate(values):
        if i and not isinstance(value, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(_sprint_value(value))
    return "".join(out)


def _sprintln(*values: Any) -> str:
    return " ".join(_sprint_value(v) for v in values) + "\n"


def _printf(format_text: Any, *values: Any) -> str:
    return go_sprintf(_expect(format_text, str, "string"), *values)


def _html(*values: Any) -> str:
    text = _sprint(*values) if len(values) != 1 or not isinstance(values[0], str) else values[0]
    return (text.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&#34;").replace("\0", "\ufffd"))


def _urlquery(*values: Any) -> str:
    from urllib.parse import quote_plus

    text = _sprint(*values) if len(values) != 1 or not isinstance(values[0], str) else values[0]
    return quote_plus(text, safe="-_.~")


#: Go's builtin template functions (``call``, ``js`` and ``template`` are not offered).
BUILTINS: dict[str, Callable[..., Any]] = {
    "and": _and, "or": _or, "not": _not, "len": _len, "index": _index, "slice": _slice,
    "print": _sprint, "println": _sprintln, "printf": _printf, "html": _html,
    "urlquery": _urlquery, "eq": _eq, "ne": _ne, "lt": _lt, "le": _le, "gt": _gt, "ge": _ge,
}


def _json(value: Any) -> str:
    """encoding/json of a value without HTML escaping (the docker CLI's ``json``)."""
    return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"),
                      default=str).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _jsonable(value: Any) -> Any:
    if value is NO_VALUE:
        return None
    if isinstance(value, GoStruct):
        return _jsonable(value.json() if value.json else None)
    if isinstance(value, GoMap):
        return {k: _jsonable(value[k]) for k in sorted(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _split(text: Any, separator: Any) -> list[str]:
    text, separator = _expect(text, str, "string"), _expect(separator, str, "string")
    if separator == "":
        return list(text)
    return list(text.split(separator))


def _join(items: Any, separator: Any) -> str:
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise _ArgumentError(f"wrong type for value; expected []string; got {go_type(items)}")
    return str(_expect(separator, str, "string")).join(items)


def _title(text: Any) -> str:
    """strings.Title: upper-case each letter that starts a word."""
    out, previous = [], " "
    for c in _expect(text, str, "string"):
        separator = not (previous.isalnum() or previous == "_")
        out.append(c.upper() if separator else c)
        previous = c
    return "".join(out)


def _lower(text: Any) -> str:
    return str(_expect(text, str, "string")).lower()


def _upper(text: Any) -> str:
    return str(_expect(text, str, "string")).upper()


def _pad(text: Any, prefix: Any, suffix: Any) -> str:
    source = str(_expect(text, str, "string"))
    before, after = int(_expect(prefix, int, "int")), int(_expect(suffix, int, "int"))
    return source if source == "" else " " * before + source + " " * after


def _truncate(text: Any, length: Any) -> str:
    source, limit = str(_expect(text, str, "string")), int(_expect(length, int, "int"))
    return source if len(source) < limit else source[:limit]


#: The functions the docker CLI adds to every template (cli/templates).
DOCKER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json, "split": _split, "join": _join, "title": _title, "lower": _lower,
    "upper": _upper, "pad": _pad, "truncate": _truncate,
}


def _header_same(text: Any) -> str:
    return str(_expect(text, str, "string"))


def _header_same_2(text: Any, _ignored: Any) -> str:
    return str(_expect(text, str, "string"))


#: What the docker CLI uses instead while it renders a table's header from the column names:
#: the names pass through unchanged (``pad`` stays, to keep columns aligned).
HEADER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _header_same, "split": _header_same_2, "join": _header_same_2,
    "title": _header_same, "lower": _header_same, "upper": _header_same,
    "truncate": _header_same_2,
}


#: Go parameter types of the functions that have them (the others take any value).
_PARAMETERS: dict[Callable[..., Any], tuple[str, ...]] = {
    _split: ("string", "string"), _join: ("[]string", "string"), _title: ("string",),
    _lower: ("string",), _upper: ("string",), _pad: ("string", "int", "int"),
    _truncate: ("string", "int"), _printf: ("string",), _header_same: ("string",),
    _header_same_2: ("string",),
}


def _is_go_type(value: Any, wanted: str) -> bool:
    if wanted == "string":
        return isinstance(value, str)
    if wanted == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if wanted == "[]string":
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    return True


def display_width(text: str) -> int:
    """Columns a string takes on a terminal (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else
               0 if unicodedata.combining(c) else 1 for c in text)
