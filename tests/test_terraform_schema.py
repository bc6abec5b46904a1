"""Every resource, data source and provider block in terraform/ (root and modules) checked against
the schemas of the exact provider versions terraform/versions.tf pins, offline: the type exists;
each argument and nested block (a `dynamic` block's content too) exists at its level and can be
set; every required argument and block is there. The schemas come from the providers' CDK Terrain
bindings (devtools/terraform_schema.py); values are not checked, nothing is planned."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

from devtools.terraform_schema import PROVIDERS, load_schemas
from tests.test_topology_and_terraform import TERRAFORM, _unquote, load_hcl

Schema = dict[str, Any]

META_ARGUMENTS = {
    "resource": frozenset(
        {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
    ),
    "data": frozenset({"count", "for_each", "depends_on", "provider", "lifecycle"}),
}
# Terraform's own resource and data source (provider terraform.io/builtin/terraform).
BUILTIN: Schema = {
    "provider": "terraform.io/builtin/terraform",
    "version": "builtin",
    "provider_config": {"attributes": {}, "blocks": {}},
    "resource": {
        "terraform_data": {
            "attributes": {
                "input": "optional",
                "triggers_replace": "optional",
                "id": "computed",
                "output": "computed",
            },
            "blocks": {},
        }
    },
    "data": {
        "terraform_remote_state": {
            "attributes": {
                "backend": "required",
                "config": "optional",
                "defaults": "optional",
                "workspace": "optional",
                "outputs": "computed",
            },
            "blocks": {},
        }
    },
}


@pytest.fixture(scope="module")
def schemas() -> dict[str, Schema]:
    """The pinned providers' schemas by local name; built on first use (`make setup` builds them)."""
    return {**load_schemas(), "terraform": BUILTIN}


def _is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def _items(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    return ((key, value) for key, value in body.items() if not key.startswith("__"))


def _where(schema: Schema, name: str, path: str = "") -> list[str]:
    """The nested blocks of a resource where `name` can be set, for a hint."""
    found = []
    for block_name, block in schema["blocks"].items():
        inner = f"{path}{block_name}"
        if name in block["blocks"] or block["attributes"].get(name, "computed") != "computed":
            found.append(inner)
        found += _where(block, name, inner + ".")
    return found


def _squashed(name: str) -> str:
    # Computed-only names come from the bindings' camelCase; compare without the word breaks.
    return name.replace("_", "").lower()


class Checker:
    """Collects every problem rather than stopping at the first."""

    def __init__(self, schemas: dict[str, Schema]) -> None:
        self.schemas = schemas
        self.problems: list[str] = []
        self.root: Schema | None = None  # the resource being checked, for "it belongs in" hints

    def file(self, path: Path, shown: str) -> None:
        with path.open() as handle:
            parsed = hcl2.load(handle)  # not load_hcl: the check needs hcl2's __is_block__ marks
        for kind in ("resource", "data"):
            for entry in parsed.get(kind, []):
                for type_label, named in _items(entry):
                    for name_label, body in _items(named):
                        self.resource(kind, _unquote(type_label), _unquote(name_label), body, shown)
        for entry in parsed.get("provider", []):
            for name_label, body in _items(entry):
                self.provider(_unquote(name_label), body, shown)

    def provider(self, name: str, body: dict[str, Any], shown: str) -> None:
        where = f'{shown}: provider "{name}"'
        if name not in self.schemas:
            self.problems.append(f"{where}: no schema for this provider (devtools/terraform_schema.py)")
            return
        self.root = None
        self.body(body, self.schemas[name]["provider_config"], where)

    def resource(self, kind: str, type_: str, name: str, body: dict[str, Any], shown: str) -> None:
        address = f"{shown}: {'data.' if kind == 'data' else ''}{type_}.{name}"
        local = _provider_of(type_, body)
        if local not in self.schemas:
            self.problems.append(
                f"{address}: no schema for provider {local!r} (devtools/terraform_schema.py)"
            )
            return
        schema = self.schemas[local]
        types = schema[kind]
        if type_ not in types:
            close = difflib.get_close_matches(type_, types, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            what = "data source" if kind == "data" else "resource type"
            self.problems.append(
                f"{address}: {type_} is not a {what} of {schema['provider']} {schema['version']}{hint}"
            )
            return
        self.root = types[type_]
        self.body(body, types[type_], address, meta=META_ARGUMENTS[kind])

    def body(
        self, body: dict[str, Any], schema: Schema, where: str, meta: frozenset[str] = frozenset()
    ) -> None:
        present: set[str] = set()
        for key, value in _items(body):
            if key in meta:
                continue
            if key == "dynamic" and isinstance(value, list):
                for labelled in value:
                    for label, dynamic in _items(labelled):
                        present.add(_unquote(label))  # may produce none: only a plan would say
                        self.dynamic(_unquote(label), dynamic, schema, where)
                continue
            present.add(key)
            if key in schema["blocks"]:
                self.block(key, value, schema["blocks"][key], where)
            elif schema["attributes"].get(key, "computed") != "computed":
                if _is_block(value):
                    self.problems.append(f"{where}: {key} is an argument, not a block: write `{key} = ...`")
            else:
                self.problems.append(f"{where}: {self.unknown(key, schema)}")
        for name, need in schema["attributes"].items():
            if need == "required" and name not in present:
                self.problems.append(f"{where}: required argument {name} is missing")
        for name, block in schema["blocks"].items():
            if block["min_items"] >= 1 and name not in present:
                self.problems.append(f"{where}: required block {name} is missing")

    def block(self, key: str, value: Any, block: Schema, where: str) -> None:
        if isinstance(value, dict):
            self.problems.append(f"{where}: {key} is a block: write `{key} {{ ... }}`")
            return
        if not isinstance(value, list):
            return  # an expression (attributes-as-blocks, below): nothing to check without a plan
        # `x = [{...}]` is Terraform's attributes-as-blocks, which some SDK fields allow (the
        # schema does not say which); its objects are checked as the block's bodies.
        items = [item for item in value if isinstance(item, dict)]
        if block["max_items"] is not None and len(items) > block["max_items"]:
            self.problems.append(
                f"{where}: block {key} is given {len(items)} times, at most {block['max_items']}"
            )
        for item in items:
            self.body(item, block, f"{where} {key}")

    def dynamic(self, label: str, dynamic: dict[str, Any], schema: Schema, where: str) -> None:
        if label not in schema["blocks"]:
            self.problems.append(f'{where}: dynamic "{label}": {self.unknown(label, schema, block=True)}')
            return
        for content in dynamic.get("content", []):
            self.body(content, schema["blocks"][label], f"{where} {label}")

    def unknown(self, key: str, schema: Schema, *, block: bool = False) -> str:
        """What is wrong with setting `key` here: computed-only, or not there at all (and a hint)."""
        attributes = schema["attributes"]
        computed = [
            n for n, need in attributes.items() if need == "computed" and _squashed(n) == _squashed(key)
        ]
        if computed:
            return f"{computed[0]} is computed-only (set by the provider, read-only)"
        if block and key in attributes:
            return f"{key} is an argument, not a block"
        elsewhere = _where(self.root, key) if self.root is not None else []
        settable = [n for n, need in attributes.items() if need != "computed"] + list(schema["blocks"])
        close = difflib.get_close_matches(key, settable, n=1)
        hint = ""
        if elsewhere:
            hint = f"; it belongs in block {' or '.join(elsewhere)}"
        elif close:
            hint = f"; did you mean {close[0]}?"
        return f"{key} is not an argument or block here{hint}"


def _provider_of(type_: str, body: dict[str, Any]) -> str:
    """The provider's local name: the `provider` meta-argument's, else the type's prefix."""
    chosen = body.get("provider")
    if isinstance(chosen, str):
        return chosen.removeprefix("${").removesuffix("}").split(".")[0]
    return type_.split("_", 1)[0]


def check_terraform(root: Path, schemas: dict[str, Schema]) -> list[str]:
    """Every problem in root's .tf files (and its subdirectories'), each with file and address."""
    checker = Checker(schemas)
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" not in path.parts:
            checker.file(path, str(path.relative_to(root)))
    return checker.problems


def test_terraform_matches_the_pinned_provider_schemas(schemas: dict[str, Schema]) -> None:
    problems = check_terraform(TERRAFORM, schemas)
    assert not problems, "\n".join(["terraform/ does not match the provider schemas:", *problems])


def test_versions_tf_pins_exactly_the_versions_the_schemas_describe(schemas: dict[str, Schema]) -> None:
    [terraform_block] = load_hcl(TERRAFORM / "versions.tf")["terraform"]
    required = {name: spec for block in terraform_block["required_providers"] for name, spec in block.items()}
    pinned = {provider.name: provider for provider in PROVIDERS}
    assert set(required) <= set(pinned), (
        "a provider in versions.tf has no schema (devtools/terraform_schema.py)"
    )
    assert {"google", "archive"} <= set(required)
    for name, spec in required.items():
        assert spec["source"] == pinned[name].source, name
        assert spec["version"] == pinned[name].version, (
            f"versions.tf must pin {name} to exactly {pinned[name].version}"
        )
        assert schemas[name]["version"] == pinned[name].version
        assert schemas[name]["bindings"] == pinned[name].requirement


def test_the_schema_holds_what_the_check_relies_on(schemas: dict[str, Schema]) -> None:
    function = schemas["google"]["resource"]["google_cloudfunctions2_function"]
    assert function["attributes"]["location"] == "required"
    assert function["attributes"]["description"] == "optional"
    assert function["attributes"]["url"] == "computed"
    service = function["blocks"]["service_config"]
    assert (service["min_items"], service["max_items"]) == (0, 1)
    assert service["attributes"]["uri"] == "computed"
    assert service["blocks"]["secret_environment_variables"]["max_items"] is None
    assert service["blocks"]["secret_environment_variables"]["attributes"]["key"] == "required"
    assert function["blocks"]["build_config"]["attributes"]["build"] == "computed"  # `buildAttribute`
    assert (
        schemas["google"]["resource"]["google_secret_manager_secret"]["blocks"]["replication"]["min_items"]
        == 1
    )
    assert schemas["google"]["data"]["google_project"]["attributes"]["number"] == "computed"
    assert schemas["google"]["provider_config"]["attributes"]["project"] == "optional"
    assert schemas["archive"]["data"]["archive_file"]["attributes"]["output_path"] == "required"


FUNCTION = """
resource "google_cloudfunctions2_function" "f" {
  name     = "f"
  location = "europe-west1"
  %s
  service_config {
    available_memory = "256Mi"
    %s
  }
}
"""


def _problems(tmp_path: Path, schemas: dict[str, Schema], text: str, name: str = "main.tf") -> list[str]:
    (tmp_path / name).write_text(text)
    return check_terraform(tmp_path, schemas)


def test_a_well_formed_file_has_no_problems(tmp_path: Path, schemas: dict[str, Schema]) -> None:
    text = """
resource "google_secret_manager_secret" "s" {
  for_each  = toset(["a"])
  secret_id = each.value
  dynamic "replication" {
    for_each = [1]
    content {
      auto {}
    }
  }
  lifecycle { prevent_destroy = true }
  depends_on = [google_project_service.x]
}
data "google_project" "p" {}
provider "google" {
  project = "p"
  alias   = "other"
}
"""
    assert _problems(tmp_path, schemas, text + FUNCTION % ("", "")) == []


@pytest.mark.parametrize(
    ("top", "service", "expected"),
    [
        pytest.param(
            'descripton = "x"',
            "",
            "main.tf: google_cloudfunctions2_function.f: descripton is not an argument or block here; did you mean description?",
            id="misspelt argument",
        ),
        pytest.param(
            "timeout_seconds = 60",
            "",
            "main.tf: google_cloudfunctions2_function.f: timeout_seconds is not an argument or block here; it belongs in block service_config",
            id="argument in the wrong block",
        ),
        pytest.param(
            'url = "https://x"',
            "",
            "main.tf: google_cloudfunctions2_function.f: url is computed-only (set by the provider, read-only)",
            id="computed-only attribute",
        ),
        pytest.param(
            "",
            'uri = "https://x"',
            "main.tf: google_cloudfunctions2_function.f service_config: uri is computed-only (set by the provider, read-only)",
            id="computed-only attribute of a nested block",
        ),
        pytest.param(
            "",
            'secret_environment_variables {\n  key = "K"\n  secret = "s"\n  version = "latest"\n}',
            "main.tf: google_cloudfunctions2_function.f service_config secret_environment_variables: required argument project_id is missing",
            id="missing required argument of a nested block",
        ),
        pytest.param(
            "",
            'dynamic "secret_environment_variables" {\n  for_each = {}\n  content { keyy = "K" }\n}',
            "main.tf: google_cloudfunctions2_function.f service_config secret_environment_variables: keyy is not an argument or block here; did you mean key?",
            id="misspelt argument in a dynamic block's content",
        ),
        pytest.param(
            "build_config = {}",
            "",
            "main.tf: google_cloudfunctions2_function.f: build_config is a block: write `build_config { ... }`",
            id="block written as an argument",
        ),
        pytest.param(
            'build_config = [{ entry_pointt = "main" }]',
            "",
            "main.tf: google_cloudfunctions2_function.f build_config: entry_pointt is not an argument or block here; did you mean entry_point?",
            id="misspelt argument in attributes-as-blocks",
        ),
    ],
)
def test_a_problem_in_a_resource_is_reported(
    tmp_path: Path, schemas: dict[str, Schema], top: str, service: str, expected: str
) -> None:
    assert expected in _problems(tmp_path, schemas, FUNCTION % (top, service))


def test_unknown_resource_types_and_data_sources_are_reported(
    tmp_path: Path, schemas: dict[str, Schema]
) -> None:
    text = """
resource "google_cloudfunction2_function" "f" { name = "f" }
data "google_projects_x" "p" {}
resource "random_id" "r" {}
resource "google_project_service_identity" "ga" { service = "iap.googleapis.com" }
resource "google_project_service_identity" "beta" {
  provider = google-beta
  service  = "iap.googleapis.com"
}
"""
    assert _problems(tmp_path, schemas, text) == [
        "main.tf: google_cloudfunction2_function.f: google_cloudfunction2_function is not a resource type "
        "of hashicorp/google 7.46.1; did you mean google_cloudfunctions2_function?",
        "main.tf: random_id.r: no schema for provider 'random' (devtools/terraform_schema.py)",
        "main.tf: google_project_service_identity.ga: google_project_service_identity is not a resource type "
        "of hashicorp/google 7.46.1; did you mean google_project_service?",
        "main.tf: data.google_projects_x.p: google_projects_x is not a data source of hashicorp/google 7.46.1; "
        "did you mean google_projects?",
    ]


def test_missing_required_arguments_and_blocks_are_reported(
    tmp_path: Path, schemas: dict[str, Schema]
) -> None:
    text = """
resource "google_secret_manager_secret" "s" {}
resource "google_storage_bucket" "b" {
  name     = "b"
  location = "EU"
  lifecycle_rule {
    action { type = "Delete" }
  }
}
"""
    assert _problems(tmp_path, schemas, text) == [
        "main.tf: google_secret_manager_secret.s: required argument secret_id is missing",
        "main.tf: google_secret_manager_secret.s: required block replication is missing",
        "main.tf: google_storage_bucket.b lifecycle_rule: required block condition is missing",
    ]


def test_every_problem_is_reported_at_once_with_its_file_and_address(
    tmp_path: Path, schemas: dict[str, Schema]
) -> None:
    (tmp_path / "modules" / "m").mkdir(parents=True)
    (tmp_path / "modules" / "m" / "main.tf").write_text(FUNCTION % ("url = 1", "timeoutt_seconds = 1"))
    (tmp_path / "versions.tf").write_text('provider "google" {\n  projct = "p"\n}\n')
    problems = check_terraform(tmp_path, schemas)
    assert problems == [
        "modules/m/main.tf: google_cloudfunctions2_function.f: url is computed-only (set by the provider, read-only)",
        "modules/m/main.tf: google_cloudfunctions2_function.f service_config: timeoutt_seconds is not an argument "
        "or block here; did you mean timeout_seconds?",
        'versions.tf: provider "google": projct is not an argument or block here; did you mean project?',
    ]
