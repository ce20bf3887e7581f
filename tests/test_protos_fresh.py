"""The committed protobuf and gRPC modules match what protos/ generates today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATOR = REPO_ROOT / "protos" / "generate.py"
COMMITTED = REPO_ROOT / "apps"


def load_generator():
    spec = importlib.util.spec_from_file_location("protos_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path):
    generator = load_generator()

    fresh_files = generator.generate(tmp_path)

    stale = []
    for fresh in fresh_files:
        relative = fresh.relative_to(tmp_path)
        committed = COMMITTED / relative
        if not committed.exists() or committed.read_bytes() != fresh.read_bytes():
            stale.append(str(relative))
    assert not stale, f"stale generated files {stale}; run `make protos` and commit"


def test_generated_stub_imports():
    from covid.v1 import ingest_pb2, ingest_pb2_grpc

    request = ingest_pb2.StoreCaseRequest(record=ingest_pb2.CaseRecord(record_id="a"))
    assert request.record.record_id == "a"
    assert hasattr(ingest_pb2_grpc, "CaseIngestStub")
