"""The Lambda package holds only the runtime dependencies: the handlers must import without dev-only stubs."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_STUBS = """
import sys
class BlockStubs:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top.startswith(("types_aiobotocore", "mypy_boto3", "moto", "samtranslator", "rich")):
            raise ImportError(f"{name} is not in the Lambda package")
sys.meta_path.insert(0, BlockStubs())
import vanta_vuln_sync.handlers.scheduler
import vanta_vuln_sync.handlers.worker
import vanta_vuln_sync.handlers.finalize
print("ok")
"""


@pytest.mark.integration  # a subprocess
def test_handlers_import_with_only_the_lambda_dependencies() -> None:
    # A fresh interpreter, so nothing imported by other tests hides a missing runtime dependency.
    result = subprocess.run([sys.executable, "-c", BLOCK_STUBS], capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
