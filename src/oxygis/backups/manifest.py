"""The signed manifest stored beside each backup on every site.

It says what the backup is (tenant, time, engine, schema state, rows per table, sizes,
SHA-256, recipients, app version) and is signed with the platform's Ed25519 key: a site
that alters a manifest or swaps in another backup is caught on verification and restore.
"""

from __future__ import annotations

import json

from .errors import BackupError

FORMAT = "oxygis-backup/1"
# A backup on a site: ``<target>/<backup id>/`` holding these two objects.
DUMP_OBJECT = "dump.age"
MANIFEST_OBJECT = "manifest.json"


def canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def seal_manifest(manifest: dict, keys) -> bytes:
    """The bytes stored on the sites: the manifest and its signature."""
    return canonical(
        {
            "manifest": manifest,
            "signature": keys.sign(canonical(manifest)),
            "key": keys.signing_key_id,
        }
    )


class ManifestError(BackupError):
    pass


def open_manifest(data: bytes, keys, *, expect_id: str, expect_sha256: str | None) -> dict:
    """Check a stored manifest's signature and that it describes the expected backup
    (``expect_sha256`` None: any content, for a catalog that never learnt it)."""
    try:
        document = json.loads(data)
        manifest, signature = document["manifest"], document["signature"]
    except (ValueError, KeyError, TypeError):
        raise ManifestError("the manifest is not readable") from None
    if not isinstance(manifest, dict) or not keys.check(canonical(manifest), str(signature)):
        raise ManifestError("the manifest's signature is invalid")
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"unknown manifest format {manifest.get('format')!r}")
    if manifest.get("backup_id") != expect_id or (
        expect_sha256 is not None and manifest.get("sha256") != expect_sha256
    ):
        raise ManifestError("the manifest describes another backup")
    return manifest
