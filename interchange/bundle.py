"""Bundles on disk: a folder, or one zip, with `Manifest.ocf.json` at its root.

Writing computes each file's md5 into the manifest. Reading checks every file the manifest lists
against its md5 (a file that differs is refused, naming it), refuses paths that leave the bundle,
and checks each file with `pyocf`'s models of OCF 1.2.0.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .export import FILES, Bundle

MANIFEST = "Manifest.ocf.json"


class BundleError(ValueError):
    """A bundle that cannot be read as it is (the message names the file)."""


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_bundle(bundle: Bundle, path: str | Path) -> list[str]:
    """Write `bundle` to `path` (a zip when it ends in .zip, else a folder); returns the files."""
    contents: dict[str, bytes] = {}
    manifest = dict(bundle.manifest)
    for key, filename, file_type, part in FILES:
        data = _dump({"file_type": file_type, "items": bundle.files.get(part, [])})
        contents[filename] = data
        manifest[key] = [{"filepath": filename, "md5": hashlib.md5(data).hexdigest()}]
    order = ["ocf_version", "file_type", "issuer", "as_of", "generated_at", "comments"]
    manifest = {**{k: manifest[k] for k in order if k in manifest},
                **{k: v for k, v in manifest.items() if k not in order}}
    contents[MANIFEST] = _dump(manifest)
    target = Path(path)
    if str(path).lower().endswith(".zip"):
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in contents.items():
                z.writestr(name, data)
    else:
        target.mkdir(parents=True, exist_ok=True)
        for name, data in contents.items():
            (target / name).write_bytes(data)
    return sorted(contents)


@dataclass
class ReadBundle:
    """A bundle read and checked: the manifest and every file's items, by part."""

    manifest: dict[str, Any]
    parts: dict[str, list[dict[str, Any]]]


_PARTS = {
    "stakeholders_files": "stakeholders", "stock_classes_files": "stock_classes",
    "stock_legend_templates_files": "stock_legend_templates", "stock_plans_files": "stock_plans",
    "vesting_terms_files": "vesting_terms", "transactions_files": "transactions",
    "valuations_files": "valuations", "financings_files": "financings", "documents_files": "documents",
}


def _inside(name: str) -> str:
    clean = posixpath.normpath(name.replace("\\", "/"))
    if clean.startswith("../") or clean == ".." or clean.startswith("/"):
        raise BundleError(f"{name}: the manifest names a file outside the bundle")
    return clean


def read_bundle(path: str | Path) -> ReadBundle:
    """Read a bundle (folder or zip); BundleError names a missing, altered or malformed file."""
    p = Path(path)
    if p.is_dir():
        def read(name: str) -> bytes:
            f = p / _inside(name)
            if not f.is_file():
                raise BundleError(f"{name}: no such file in the bundle")
            return f.read_bytes()
    elif zipfile.is_zipfile(p):
        z = zipfile.ZipFile(p)
        names = set(z.namelist())

        def read(name: str) -> bytes:
            clean = _inside(name)
            if clean not in names:
                raise BundleError(f"{name}: no such file in the bundle")
            return z.read(clean)
    elif p.is_file() and p.name == MANIFEST:
        return read_bundle(p.parent)
    else:
        raise BundleError(f"{path}: not an OCF bundle (a folder or a zip holding {MANIFEST})")
    try:
        manifest = json.loads(read(MANIFEST))
    except ValueError as e:
        raise BundleError(f"{MANIFEST}: not JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{MANIFEST}: not a manifest")
    parts: dict[str, list[dict[str, Any]]] = {}
    # Every listed file against its md5 first: an altered bundle is refused before it is read.
    raw: list[tuple[str, str, bytes]] = []
    for key, part in _PARTS.items():
        for entry in manifest.get(key) or []:
            name = entry.get("filepath", "") if isinstance(entry, dict) else ""
            data = read(name)
            if hashlib.md5(data).hexdigest() != str(entry.get("md5", "")).lower():
                raise BundleError(f"{name}: its md5 is not the one the manifest gives "
                                  "(altered or damaged file)")
            raw.append((part, name, data))
    _check_models(MANIFEST, manifest, "manifest")
    for part, name, data in raw:
        try:
            content = json.loads(data)
        except ValueError as e:
            raise BundleError(f"{name}: not JSON ({e})") from None
        _check_models(name, content, part)
        parts.setdefault(part, []).extend(content.get("items", []))
    return ReadBundle(manifest, parts)


def _check_models(name: str, content: Any, part: str) -> None:
    """Check a file with pyocf's model of its type; BundleError naming the first problem."""
    from pydantic import ValidationError
    from pyocf.captable import FILEMAP
    from pyocf.files.ocfmanifestfile import OCFManifestFile

    models = dict(FILEMAP)
    model = OCFManifestFile if part == "manifest" else models.get(part)
    if model is None:
        return
    if not isinstance(content, dict):
        raise BundleError(f"{name}: not an OCF file")
    try:
        model(**content)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise BundleError(f"{name}: not valid OCF 1.2.0 at {where}: {first.get('msg')}") from None
    except TypeError as e:
        raise BundleError(f"{name}: not valid OCF 1.2.0 ({e})") from None
