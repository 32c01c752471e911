"""The stage with a target's latency table on the extended space (issue 15): the table made by
`autonn-nas latency-table`, placed as latency_tables/<target_info>.json, costs the search; the project's
lightweight_level gives a lighter model than the base, and the report says which table was used."""
from __future__ import annotations

import json

import pytest
import yaml

from autonn_nas.cli import main
from test_service_support import PM_INFO_TEMPLATE, TINY_SETTINGS, Stack, copy_demo_dataset, needs_runner, write_project

EXT = "yolov4-p5-search-ext.yaml"


@needs_runner
@pytest.mark.slow
def test_the_stage_searches_the_extended_space_with_its_target_s_table(tmp_path):
    stack = Stack(tmp_path)
    try:
        copy_demo_dataset(stack.shared)
        info = PM_INFO_TEMPLATE.read_text().replace("target_info : PC", "target_info : Jetson_Nano").replace("acc : cuda", "acc : cpu")
        assert "lightweight_level : 5" in info
        project_dir = write_project(stack.shared, info=info, settings={**TINY_SETTINGS, "cfg": EXT})
        table = stack.shared / "latency_tables" / "Jetson_Nano.json"  # what the target's owner measured and placed
        assert main(["latency-table", "-o", str(table), "--cfg", EXT, "--img", str(TINY_SETTINGS["img_size"]), "--width",
                     str(TINY_SETTINGS["width"]), "--depth", str(TINY_SETTINGS["depth"]), "--device", "cpu", "--runtime", "torch",
                     "--warmup", "1", "--repeats", "3"]) == 0
        assert stack.call("start") == (200, "started")
        seen = stack.wait_for(("completed", "failed"), 300)
        assert seen[-1] == "completed", stack.job_log()
        report = json.loads((project_dir / "neck_nas" / "report.json").read_text())
        assert report["cost_model"]["source"].startswith(f"latency table {table.resolve()}")
        assert any(f"target_info Jetson_Nano: latency table {table.resolve()}" in note for note in report["stage_inputs"])
        assert report["budget"]["lightweight_level"] == 5 and report["derived"]["cost_ratio"] < 1.0
        assert f"latency table {table.resolve()}" in (project_dir / "neck_nas" / "report.md").read_text()
        derived = yaml.safe_load((project_dir / "neck_nas_model.yaml").read_text())
        assert "search_space" not in derived and (project_dir / "bestmodel.pt").is_file()
        assert (project_dir / "neck_nas" / "pareto.png").is_file()
    finally:
        stack.close()
