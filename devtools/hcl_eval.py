"""A small, lazy evaluator of our Terraform configuration, enough to read who is granted what.

``terraform plan`` cannot run here (no provider download), so the permission check evaluates the
HCL itself: python-hcl2's parse tree, the root module and module instances (``for_each``), locals,
variables (defaults, or values given), ``each``, for-expressions, conditionals, ``try`` and the
functions our files use. Values only known after apply (ids, emails) are computed for the resource
types the IAM bindings reference, the way the provider forms them; anything else is ``Unknown``,
which ``try``/``coalesce`` skip and everything else propagates. Evaluation is lazy: only what an
IAM binding refers to is evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import yaml
from lark import Token, Tree


class EvalError(Exception):
    """An expression failed (a missing key, a type error): ``try`` catches it, as Terraform's does."""


@dataclass(frozen=True)
class Unknown:
    """A value only known after apply, or one this evaluator does not model."""

    what: str

    def __str__(self) -> str:
        return f"(known after apply: {self.what})"


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


@dataclass
class Block:
    kind: str
    labels: list[str]
    attributes: dict[str, Tree | Token]
    blocks: list[Block]
    source: Path

    def nested(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind]


def _name(node: Any) -> str:
    if isinstance(node, Token):
        return str(node)
    if node.data in {"identifier", "keyword", "literal_value"}:
        return str(node.children[0])
    if node.data == "string":
        return "".join(str(p.children[0]) for p in node.children if isinstance(p, Tree))
    if node.data in ("expr_term", "object_elem_key"):
        return _name(node.children[0])
    raise EvalError(f"not a name: {node.data}")


def _body(body: Tree, source: Path) -> tuple[dict[str, Any], list[Block]]:
    attributes: dict[str, Any] = {}
    blocks: list[Block] = []
    for child in body.children:
        if not isinstance(child, Tree):
            continue
        if child.data == "attribute":
            parts = [c for c in child.children if isinstance(c, Tree)]
            attributes[_name(parts[0])] = parts[1]
        elif child.data == "block":
            parts = [c for c in child.children if isinstance(c, Tree)]
            inner = parts[-1]
            names = [_name(p) for p in parts[:-1] if p.data != "new_line_or_comment"]
            attrs, nested = _body(inner, source)
            blocks.append(Block(names[0], names[1:], attrs, nested, source))
    return attributes, blocks


def parse_directory(directory: Path) -> list[Block]:
    blocks: list[Block] = []
    for path in sorted(directory.glob("*.tf")):
        _, found = _body(hcl2.parses_to_tree(path.read_text()).children[0], path)
        blocks += found
    return blocks


# --- resources: computed attributes -----------------------------------------------------------


def _project(attrs: Callable[[str], Any], module: Module) -> Any:
    project = attrs("project")
    return project if project is not None else module.root_var("project_id")


COMPUTED: dict[str, Callable[[Callable[[str], Any], Module], dict[str, Any]]] = {
    "google_pubsub_topic": lambda a, m: {"id": f"projects/{_project(a, m)}/topics/{a('name')}"},
    "google_service_account": lambda a, m: {
        "email": (email := f"{a('account_id')}@{_project(a, m)}.iam.gserviceaccount.com"),
        "name": f"projects/{_project(a, m)}/serviceAccounts/{email}",
        "id": f"projects/{_project(a, m)}/serviceAccounts/{email}",
        "member": f"serviceAccount:{email}",
    },
    "google_cloud_tasks_queue": lambda a, m: {
        "id": f"projects/{_project(a, m)}/locations/{a('location')}/queues/{a('name')}"
    },
    "google_firestore_database": lambda a, m: {"id": f"projects/{_project(a, m)}/databases/{a('name')}"},
    "google_project_iam_custom_role": lambda a, m: {
        "id": f"projects/{_project(a, m)}/roles/{a('role_id')}",
        "name": f"projects/{_project(a, m)}/roles/{a('role_id')}",
    },
    "google_secret_manager_secret": lambda a, m: {
        "id": f"projects/{_project(a, m)}/secrets/{a('secret_id')}",
        "name": f"projects/{_project(a, m)}/secrets/{a('secret_id')}",
    },
    "google_bigquery_dataset": lambda a, m: {
        "id": f"projects/{_project(a, m)}/datasets/{a('dataset_id')}",
        "project": _project(a, m),
    },
    "google_cloud_run_v2_service": lambda a, m: {
        "id": f"projects/{_project(a, m)}/locations/{a('location')}/services/{a('name')}"
    },
}


class Instance:
    """One resource (or data source) instance: its block evaluated with ``each`` bound."""

    def __init__(self, module: Module, block: Block, each: tuple[Any, Any] | None) -> None:
        self.module = module
        self.block = block
        self.each = each
        self.type = block.labels[0]
        self.name = block.labels[1]
        self._cache: dict[str, Any] = {}

    @property
    def address(self) -> str:
        base = f"{self.module.address_prefix}{self.type}.{self.name}"
        return base if self.each is None else f"{base}[{json.dumps(self.each[0])}]"

    def attribute(self, name: str) -> Any:
        """The attribute as written (None when absent)."""
        if name not in self._cache:
            node = self.block.attributes.get(name)
            self._cache[name] = None if node is None else self.module.eval(node, Scope(each=self.each))
        return self._cache[name]

    def nested(self, kind: str) -> list[dict[str, Any]]:
        scope = Scope(each=self.each)
        return [
            {k: self.module.eval(v, scope) for k, v in b.attributes.items()} for b in self.block.nested(kind)
        ]

    def get(self, name: str) -> Any:
        value = self.attribute(name)
        if value is not None:
            return value
        computed = COMPUTED.get(self.type)
        if computed is not None:
            values = computed(self.attribute, self.module)
            if name in values:
                return values[name]
        return Unknown(f"{self.address}.{name}")


@dataclass
class Scope:
    each: tuple[Any, Any] | None = None
    names: dict[str, Any] = field(default_factory=dict)

    def with_names(self, **names: Any) -> Scope:
        return Scope(self.each, {**self.names, **names})


class _Namespace:
    def __init__(self, lookup: Callable[[str], Any]) -> None:
        self.lookup = lookup


class Module:
    """A module instance: its directory's blocks, its variables' values and its address."""

    def __init__(
        self,
        directory: Path,
        inputs: Callable[[str], Any],
        root: Module | None = None,
        address_prefix: str = "",
    ) -> None:
        self.directory = directory
        self.blocks = parse_directory(directory)
        self.inputs = inputs
        self.root = root or self
        self.address_prefix = address_prefix
        self._locals: dict[str, Tree] = {}
        self._variables: dict[str, Block] = {}
        self._resources: dict[tuple[str, str], Block] = {}
        self._data: dict[tuple[str, str], Block] = {}
        self._modules: dict[str, Block] = {}
        self._outputs: dict[str, Tree] = {}
        for block in self.blocks:
            if block.kind == "locals":
                self._locals.update(block.attributes)
            elif block.kind == "variable":
                self._variables[block.labels[0]] = block
            elif block.kind == "resource":
                self._resources[(block.labels[0], block.labels[1])] = block
            elif block.kind == "data":
                self._data[(block.labels[0], block.labels[1])] = block
            elif block.kind == "module":
                self._modules[block.labels[0]] = block
            elif block.kind == "output":
                self._outputs[block.labels[0]] = block.attributes["value"]
        self._memo: dict[Any, Any] = {}

    # --- names

    def var(self, name: str) -> Any:
        key = ("var", name)
        if key not in self._memo:
            value = self.inputs(name)
            if value is _ABSENT:
                block = self._variables.get(name)
                if block is None:
                    raise EvalError(f"no variable {name} in {self.directory}")
                default = block.attributes.get("default")
                if default is None:
                    raise EvalError(f"variable {name} has no default and no value was given")
                value = self.eval(default, Scope())
            type_node = self._variables[name].attributes.get("type") if name in self._variables else None
            self._memo[key] = value if type_node is None else self._typed(value, type_node)
        return self._memo[key]

    def _typed(self, value: Any, node: Any) -> Any:
        """``value`` with the defaults of ``optional(type, default)`` attributes filled in, as
        Terraform converts a variable's value to its type constraint."""
        while isinstance(node, Tree) and node.data == "expr_term":
            node = next(c for c in node.children if isinstance(c, Tree))
        if value is None or is_unknown(value) or not isinstance(node, Tree) or node.data != "function_call":
            return value
        kind = str(node.children[0].children[0])
        arguments = next((c for c in node.children if isinstance(c, Tree) and c.data == "arguments"), None)
        args = [] if arguments is None else [c for c in arguments.children if isinstance(c, Tree)]
        args = [a for a in args if a.data != "new_line_or_comment"]
        if kind in ("list", "set") and isinstance(value, list):
            return [self._typed(v, args[0]) for v in value]
        if kind == "map" and isinstance(value, dict):
            return {k: self._typed(v, args[0]) for k, v in value.items()}
        if kind == "object" and isinstance(value, dict):
            fields = _object_type_fields(args[0])
            out = dict(value)
            for field_name, field_type in fields.items():
                inner = field_type
                while isinstance(inner, Tree) and inner.data == "expr_term":
                    inner = next(c for c in inner.children if isinstance(c, Tree))
                is_optional = (
                    isinstance(inner, Tree)
                    and inner.data == "function_call"
                    and str(inner.children[0].children[0]) == "optional"
                )
                if field_name not in out and is_optional:
                    optional_args = [
                        c
                        for c in next(
                            c for c in inner.children if isinstance(c, Tree) and c.data == "arguments"
                        ).children
                        if isinstance(c, Tree) and c.data != "new_line_or_comment"
                    ]
                    out[field_name] = self.eval(optional_args[1], Scope()) if len(optional_args) > 1 else None
                elif field_name in out:
                    out[field_name] = self._typed(
                        out[field_name], optional_args_type(inner) if is_optional else inner
                    )
            return out
        return value

    def root_var(self, name: str) -> Any:
        return self.root.var(name) if self.root is not self else self.var(name)

    def local(self, name: str) -> Any:
        key = ("local", name)
        if key not in self._memo:
            if name not in self._locals:
                raise EvalError(f"no local {name}")
            self._memo[key] = self.eval(self._locals[name], Scope())
        return self._memo[key]

    def instances(self, block: Block) -> Iterator[Instance]:
        for_each = block.attributes.get("for_each")
        count = block.attributes.get("count")
        if for_each is not None:
            collection = self.eval(for_each, Scope())
            if isinstance(collection, dict):
                for key, value in collection.items():
                    yield Instance(self, block, (key, value))
            else:
                for key in collection:
                    yield Instance(self, block, (key, key))
        elif count is not None:
            for index in range(int(self.eval(count, Scope()))):
                yield Instance(self, block, (index, index))
        else:
            yield Instance(self, block, None)

    def _collection(self, block: Block) -> Any:
        key = ("instances", block.kind, *block.labels)
        if key not in self._memo:
            instances = list(self.instances(block))
            if "for_each" in block.attributes:
                self._memo[key] = {i.each[0]: i for i in instances if i.each is not None}
            elif "count" in block.attributes:
                self._memo[key] = instances
            else:
                self._memo[key] = instances[0]
        return self._memo[key]

    def resource(self, kind: str, name: str) -> Any:
        block = self._resources.get((kind, name))
        if block is None:
            raise EvalError(f"no resource {kind}.{name}")
        return self._collection(block)

    def resources(self, kinds: Callable[[str], bool] = lambda kind: True) -> Iterator[Instance]:
        for (kind, _), block in self._resources.items():
            if kinds(kind):
                yield from self.instances(block)

    def data(self, kind: str, name: str) -> Any:
        block = self._data.get((kind, name))
        if block is None:
            raise EvalError(f"no data source {kind}.{name}")
        return _DataSource(self, block)

    def module_call(self, name: str) -> Any:
        key = ("module", name)
        if key not in self._memo:
            block = self._modules[name]
            source = self.eval(block.attributes["source"], Scope())
            directory = (self.directory / source).resolve()

            def instance(each: tuple[Any, Any] | None) -> Module:
                def inputs(variable: str) -> Any:
                    node = block.attributes.get(variable)
                    return _ABSENT if node is None else self.eval(node, Scope(each=each))

                suffix = "" if each is None else f"[{json.dumps(each[0])}]"
                return Module(directory, inputs, self.root, f"{self.address_prefix}module.{name}{suffix}.")

            if "for_each" in block.attributes:
                collection = self.eval(block.attributes["for_each"], Scope())
                items = collection.items() if isinstance(collection, dict) else ((k, k) for k in collection)
                self._memo[key] = {k: instance((k, v)) for k, v in items}
            else:
                self._memo[key] = instance(None)
        return self._memo[key]

    def modules(self) -> Iterator[Module]:
        for name in self._modules:
            called = self.module_call(name)
            yield from called.values() if isinstance(called, dict) else [called]

    def output(self, name: str) -> Any:
        return self.eval(self._outputs[name], Scope())

    # --- expressions

    def eval(self, node: Any, scope: Scope) -> Any:
        try:
            return self._eval(node, scope)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise EvalError(f"{type(exc).__name__}: {exc}") from exc

    def _eval(self, node: Any, scope: Scope) -> Any:
        if isinstance(node, Token):
            return str(node)
        kind = node.data
        children = [c for c in node.children if not (isinstance(c, Tree) and c.data == "new_line_or_comment")]
        if kind == "expr_term":
            inner = [c for c in children if isinstance(c, Tree)]
            return self._eval(inner[0], scope)
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[str(children[0])]
        if kind == "int_lit":
            return int(str(children[0]))
        if kind == "float_lit":
            return float(str(children[0]))
        if kind == "string":
            return self._string(children, scope)
        if kind == "identifier":
            return self._identifier(str(children[0]), scope)
        if kind == "get_attr_expr_term":
            target = self._eval(children[0], scope)
            return _get(target, _name(children[1].children[-1]))
        if kind == "index_expr_term":
            target = self._eval(children[0], scope)
            index = children[1]
            if index.data == "short_index":
                return _index(target, int(str(index.children[-1])))
            expr = next(c for c in index.children if isinstance(c, Tree))
            return _index(target, self._eval(expr, scope))
        if kind == "tuple":
            return [self._eval(c, scope) for c in children if isinstance(c, Tree)]
        if kind == "object":
            out: dict[str, Any] = {}
            for elem in children:
                if isinstance(elem, Tree) and elem.data == "object_elem":
                    parts = [c for c in elem.children if isinstance(c, Tree)]
                    key_node = parts[0].children[0]
                    key = (
                        _name(key_node)
                        if isinstance(key_node, Tree) and _is_bare_identifier(key_node)
                        else self._eval(key_node, scope)
                    )
                    out[str(key)] = self._eval(parts[1], scope)
            return out
        if kind == "function_call":
            return self._call(children, scope)
        if kind == "conditional":
            parts = [c for c in children if isinstance(c, Tree)]
            condition = self._eval(parts[0], scope)
            if is_unknown(condition):
                return condition
            return self._eval(parts[1] if condition else parts[2], scope)
        if kind == "binary_op":
            return self._binary(children, scope)
        if kind == "unary_op":
            operator, operand = str(children[0]), self._eval(children[1], scope)
            if is_unknown(operand):
                return operand
            return (not operand) if operator == "!" else -operand
        if kind in ("for_tuple_expr", "for_object_expr"):
            return self._for(kind, children, scope)
        if kind in ("heredoc_template", "heredoc_template_trim"):
            text = str(children[0])
            return text.split("\n", 1)[1].rsplit("\n", 2)[0] + "\n"
        raise EvalError(f"expression {kind} is not supported by devtools/hcl_eval.py")

    def _string(self, parts: list[Any], scope: Scope) -> Any:
        out: list[str] = []
        for part in parts:
            if not isinstance(part, Tree):
                continue
            inner = part.children[0]
            if isinstance(inner, Tree) and inner.data == "interpolation":
                expr = next(c for c in inner.children if isinstance(c, Tree))
                value = self._eval(expr, scope)
                if is_unknown(value):
                    return value
                out.append(_text(value))
            elif isinstance(inner, Token) and inner.type == "ESCAPED_INTERPOLATION":
                out.append(str(inner)[1:])
            elif isinstance(inner, Token):
                out.append(_unescape(str(inner)))
            else:
                raise EvalError("template directives are not supported by devtools/hcl_eval.py")
        return "".join(out)

    def _identifier(self, name: str, scope: Scope) -> Any:
        if name in scope.names:
            return scope.names[name]
        if name == "var":
            return _Namespace(self.var)
        if name == "local":
            return _Namespace(self.local)
        if name == "each":
            if scope.each is None:
                raise EvalError("each outside for_each")
            return {"key": scope.each[0], "value": scope.each[1]}
        if name == "count":
            if scope.each is None:
                raise EvalError("count outside count")
            return {"index": scope.each[0]}
        if name == "path":
            return {
                "module": str(self.directory),
                "root": str(self.root.directory),
                "cwd": str(self.root.directory),
            }
        if name == "module":
            return _Namespace(self.module_call)
        if name == "data":
            return _Namespace(lambda kind: _Namespace(lambda n: self.data(kind, n)))
        if any(kind == name for kind, _ in self._resources):
            return _Namespace(lambda n: self.resource(name, n))
        raise EvalError(f"unknown name {name}")

    def _binary(self, children: list[Any], scope: Scope) -> Any:
        left = self._eval(children[0], scope)
        term = children[1]
        parts = [c for c in term.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]
        operator = str(parts[0].children[0])
        if operator == "&&" and not is_unknown(left) and not left:
            return False
        if operator == "||" and not is_unknown(left) and left:
            return True
        right = self._eval(parts[1], scope)
        if is_unknown(left) or is_unknown(right):
            return left if is_unknown(left) else right
        return BINARY[operator](left, right)

    def _for(self, kind: str, children: list[Any], scope: Scope) -> Any:
        trees = [c for c in children if isinstance(c, Tree) and c.data != "new_line_or_comment"]
        intro = trees[0]
        names = [str(c.children[0]) for c in intro.children if isinstance(c, Tree) and c.data == "identifier"]
        collection_node = [
            c
            for c in intro.children
            if isinstance(c, Tree) and c.data not in ("identifier", "new_line_or_comment")
        ][-1]
        collection = self._eval(collection_node, scope)
        condition = trees[-1] if trees[-1].data == "for_cond" else None
        bodies = [t for t in trees[1:] if t is not condition]
        items = list(collection.items()) if isinstance(collection, dict) else list(enumerate(collection))
        grouping = any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in children)
        tuple_out: list[Any] = []
        object_out: dict[str, Any] = {}
        for key, value in items:
            bound = (
                scope.with_names(**{names[0]: key, names[1]: value})
                if len(names) == 2
                else scope.with_names(**{names[0]: value})
            )
            if condition is not None:
                test = self._eval(next(c for c in condition.children if isinstance(c, Tree)), bound)
                if not test:
                    continue
            if kind == "for_tuple_expr":
                tuple_out.append(self._eval(bodies[0], bound))
            elif grouping:  # `key => value...` gathers the values of equal keys in a list
                object_out.setdefault(str(self._eval(bodies[0], bound)), []).append(
                    self._eval(bodies[1], bound)
                )
            else:
                object_out[str(self._eval(bodies[0], bound))] = self._eval(bodies[1], bound)
        return tuple_out if kind == "for_tuple_expr" else object_out

    def _call(self, children: list[Any], scope: Scope) -> Any:
        name = str(children[0].children[0])
        arguments = next((c for c in children[1:] if isinstance(c, Tree) and c.data == "arguments"), None)
        nodes = [] if arguments is None else [c for c in arguments.children if isinstance(c, Tree)]
        nodes = [n for n in nodes if n.data != "new_line_or_comment"]
        if name in ("try", "coalesce"):
            for node in nodes:
                try:
                    value = self.eval(node, scope)
                except EvalError:
                    continue
                if is_unknown(value) or (name == "coalesce" and value in (None, "")):
                    continue
                return value
            if name == "try":
                raise EvalError("no argument of try() could be evaluated")
            return None
        if name == "can":
            try:
                self.eval(nodes[0], scope)
            except EvalError:
                return False
            return True
        args = [self._eval(n, scope) for n in nodes]
        if name == "file":
            return Path(args[0]).read_text()
        if any(is_unknown(a) for a in args):
            return next(a for a in args if is_unknown(a))
        function = FUNCTIONS.get(name)
        if function is None:
            raise EvalError(f"function {name}() is not supported by devtools/hcl_eval.py")
        return function(*args)


class _DataSource:
    def __init__(self, module: Module, block: Block) -> None:
        self.module = module
        self.block = block

    def get(self, name: str) -> Any:
        kind = self.block.labels[0]
        if kind == "google_project" and name in ("project_id", "name"):
            return self.module.root_var("project_id")
        if kind == "google_project" and name == "number":
            return "000000000000"  # a stand-in project number: only URLs and agents carry it
        node = self.block.attributes.get(name)
        if node is not None:
            return self.module.eval(node, Scope())
        return Unknown(f"data.{kind}.{self.block.labels[1]}.{name}")


_ABSENT = object()


def _object_type_fields(node: Any) -> dict[str, Any]:
    while isinstance(node, Tree) and node.data == "expr_term":
        node = next(c for c in node.children if isinstance(c, Tree))
    fields: dict[str, Any] = {}
    for elem in node.children:
        if isinstance(elem, Tree) and elem.data == "object_elem":
            parts = [c for c in elem.children if isinstance(c, Tree)]
            fields[_name(parts[0].children[0])] = parts[1]
    return fields


def optional_args_type(node: Tree) -> Any:
    """The type inside ``optional(type[, default])``."""
    arguments = next(c for c in node.children if isinstance(c, Tree) and c.data == "arguments")
    return next(c for c in arguments.children if isinstance(c, Tree) and c.data != "new_line_or_comment")


def _is_bare_identifier(node: Tree) -> bool:
    return node.data == "identifier" or (
        node.data == "expr_term"
        and isinstance(node.children[0], Tree)
        and node.children[0].data == "identifier"
    )


def _get(target: Any, name: str) -> Any:
    if is_unknown(target):
        return target
    if isinstance(target, _Namespace):
        return target.lookup(name)
    if isinstance(target, Instance | _DataSource):
        return target.get(name)
    if isinstance(target, Module):
        return target.output(name)
    if isinstance(target, dict):
        if name not in target:
            raise EvalError(f"no attribute {name}")
        return target[name]
    raise EvalError(f"cannot read .{name} of {type(target).__name__}")


def _index(target: Any, key: Any) -> Any:
    if is_unknown(target) or is_unknown(key):
        return target if is_unknown(target) else key
    if isinstance(target, dict):
        if key not in target:
            raise EvalError(f"no key {key!r}")
        return target[key]
    if isinstance(target, list | tuple):
        return target[int(key)]
    raise EvalError(f"cannot index {type(target).__name__}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], text[i : i + 2]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _toset(values: Any) -> list[Any]:
    return list(dict.fromkeys(values))


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "&&": lambda a, b: bool(a and b),
    "||": lambda a, b: bool(a or b),
}

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "yamldecode": yaml.safe_load,
    "jsondecode": json.loads,
    "jsonencode": lambda v: json.dumps(v, separators=(",", ":")),
    "toset": _toset,
    "tolist": list,
    "tomap": dict,
    "tostring": _text,
    "tonumber": float,
    "concat": lambda *lists: [x for values in lists for x in values],
    "merge": lambda *maps: {k: v for m in maps if m for k, v in m.items()},
    "lookup": lambda m, k, default=None: m.get(k, default),
    "contains": lambda values, v: v in values,
    "keys": sorted,
    "values": lambda m: [m[k] for k in sorted(m)],
    "length": len,
    "replace": lambda s, old, new: s.replace(old, new),
    "substr": lambda s, offset, length: s[offset : offset + length] if length >= 0 else s[offset:],
    "format": lambda spec, *a: (
        spec.replace("%%", "\0").replace("%s", "{}").replace("%d", "{}").format(*a).replace("\0", "%")
    ),
    "lower": str.lower,
    "upper": str.upper,
    "trimspace": str.strip,
    "trimsuffix": lambda s, suffix: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
    "trimprefix": lambda s, prefix: s[len(prefix) :] if s.startswith(prefix) else s,
    "startswith": lambda s, prefix: s.startswith(prefix),
    "endswith": lambda s, suffix: s.endswith(suffix),
    "split": lambda sep, s: s.split(sep),
    "join": lambda sep, values: sep.join(values),
    "element": lambda values, i: values[int(i) % len(values)],
    "distinct": _toset,
    "flatten": lambda values: [x for v in values for x in (v if isinstance(v, list) else [v])],
    "setproduct": lambda *sets: [list(p) for p in __import__("itertools").product(*sets)],
    "tobool": bool,
    "base64encode": lambda s: __import__("base64").b64encode(s.encode()).decode(),
    "abspath": lambda p: str(Path(p).resolve()),
    "regex": lambda pattern, s: __import__("re").search(pattern, s).group(0),
}


def load_tfvars(path: Path) -> dict[str, Any]:
    """The values of a ``.tfvars`` file (literal expressions)."""
    attributes, _ = _body(hcl2.parses_to_tree(path.read_text()).children[0], path)
    module = Module.__new__(Module)  # no directory: literals need no names
    return {name: Module._eval(module, node, Scope()) for name, node in attributes.items()}


def load_root(directory: Path, variables: dict[str, Any]) -> Module:
    """The root module at ``directory`` with ``variables`` given (others take their defaults)."""
    return Module(directory, lambda name: variables.get(name, _ABSENT))
