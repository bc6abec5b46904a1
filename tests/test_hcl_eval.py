"""devtools/hcl_eval.py: the HCL the permission check reads evaluates as Terraform would."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.hcl_eval import EvalError, Unknown, load_root, load_tfvars


def _root(tmp_path: Path, text: str, **variables: object) -> object:
    (tmp_path / "main.tf").write_text(text)
    return load_root(tmp_path, variables)


def test_locals_functions_for_expressions_and_grouping(tmp_path: Path) -> None:
    root = _root(
        tmp_path,
        """
variable "targets" {
  type = list(object({ project = string, name = string, region = optional(string, "us-central1") }))
}
locals {
  names    = [for t in var.targets : upper(t.name) if t.project != "skip"]
  by_proj  = { for t in var.targets : t.project => t.name... }
  first    = try(var.targets[5].name, coalesce("", null, "fallback"))
  joined   = join(",", distinct([for t in var.targets : t.region]))
  template = "projects/${var.targets[0].project}/x/$${literal}"
}
""",
        targets=[
            {"project": "a", "name": "one"},
            {"project": "a", "name": "two"},
            {"project": "skip", "name": "x"},
        ],
    )
    assert root.local("names") == ["ONE", "TWO"]  # type: ignore[attr-defined]
    assert root.local("by_proj") == {"a": ["one", "two"], "skip": ["x"]}  # type: ignore[attr-defined]
    assert root.local("first") == "fallback"  # type: ignore[attr-defined]
    assert root.local("joined") == "us-central1"  # type: ignore[attr-defined]  # optional()'s default
    assert root.local("template") == "projects/a/x/${literal}"  # type: ignore[attr-defined]


def test_resources_for_each_computed_attributes_and_unknowns(tmp_path: Path) -> None:
    root = _root(
        tmp_path,
        """
variable "project_id" { type = string }
resource "google_service_account" "fn" {
  for_each   = toset(["a", "b"])
  account_id = "fn-${each.key}"
}
resource "google_pubsub_topic_iam_member" "pub" {
  for_each = google_service_account.fn
  topic    = "t"
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${each.value.email}"
}
locals {
  unknown = google_pubsub_topic_iam_member.pub["a"].etag
}
""",
        project_id="p-1",
    )
    members = sorted(r.attribute("member") for r in root.resources(lambda kind: kind.endswith("_iam_member")))  # type: ignore[attr-defined]
    assert members == [
        "serviceAccount:fn-a@p-1.iam.gserviceaccount.com",
        "serviceAccount:fn-b@p-1.iam.gserviceaccount.com",
    ]
    assert isinstance(root.local("unknown"), Unknown)  # type: ignore[attr-defined]


def test_a_variable_without_value_or_default_is_an_error(tmp_path: Path) -> None:
    root = _root(tmp_path, 'variable "x" { type = string }\nlocals { y = var.x }\n')
    with pytest.raises(EvalError, match="no default"):
        root.local("y")  # type: ignore[attr-defined]


def test_tfvars_are_read_as_values(tmp_path: Path) -> None:
    path = tmp_path / "x.tfvars"
    path.write_text('a = "b"\nn = 3\nl = [{ k = "v" }]\n')
    assert load_tfvars(path) == {"a": "b", "n": 3, "l": [{"k": "v"}]}
