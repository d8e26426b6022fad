"""`laptime list` marks a provisional workload calibrated once its record is in docs/calibration/."""

from __future__ import annotations

import json


def _record(folder, key, device_type):
    name, rest = key.split("/", 1)
    variant, config = rest.split("@", 1)
    path = folder / f"{name}_{variant}_{config}.json"
    path.write_text(json.dumps({"workload": key, "hardware": {"device_type": device_type, "gpu": "NVIDIA H200",
                                                              "driver": "580.159.04"}}))
    return path


def test_a_record_ends_provisional_for_its_configuration_only(monkeypatch, tmp_path):
    from laptime.cli import catalog

    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("LAPTIME_CALIBRATION_RECORDS", str(records))
    monkeypatch.setenv("LAPTIME_CACHE", str(tmp_path / "cache"))
    before = catalog.fingerprint()
    _record(records, "cifar10/base@gpu_webp", "cuda")
    _record(records, "cifar10/relu@gpu_webp", "cpu")  # a gpu configuration calibrated on a CPU: not a record
    (records / "ptb_base_gpu.json").write_text(json.dumps({"workload": "ptb/glu@gpu",  # names another workload
                                                           "hardware": {"device_type": "cuda"}}))
    (records / "ptb_glu_gpu.json").write_text("{not json")
    assert catalog.fingerprint() != before  # a new record: the cached listing is not reused
    assert catalog.shipped() is None  # nor the shipped one
    listing = {w["key"]: w for w in catalog.load()["workloads"]}
    assert listing["cifar10/base@gpu_webp"]["provisional"] is False
    assert listing["cifar10/base@gpu_webp"]["record"] == "cifar10_base_gpu_webp.json"
    for key in ("cifar10/relu@gpu_webp", "cifar10/base@gpu", "ptb/base@gpu", "ptb/glu@gpu"):
        assert listing[key]["provisional"] is True and listing[key]["record"] is None, key
    assert listing["mnist1d/base@cpu"]["provisional"] is False  # calibrated in its spec, no record needed


def test_the_repository_records_count_for_the_cpu_configurations(monkeypatch):
    from laptime.cli import catalog

    monkeypatch.delenv("LAPTIME_CALIBRATION_RECORDS", raising=False)
    assert catalog.records_dir().name == "calibration" and catalog.records_dir().is_dir()
    assert catalog.calibration_record("ptb", "base", "cpu") == "ptb_base_cpu.json"
    assert catalog.calibration_record("ptb", "base", "gpu") is None
