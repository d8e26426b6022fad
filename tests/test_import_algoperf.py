"""``laptime import algoperf``: AlgoPerf's experiment trees -> stored trials -> score and report.

Each test builds a small tree shaped like AlgoPerf's logs in tmp_path, one convention at a time; the
last ones import the real sample in ``../shared/data/algoperf-logs`` when it is there. Targets are
the built-in v0.5 table: ogbg (mean_average_precision >= 0.28098), criteo1tb (loss <= 0.123735),
ogbg_model_size (held out in v0.5, >= 0.269446), ogbg_gelu (a variant, not held out).
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from pathlib import Path

import pytest

from laptime.cli.main import main
from laptime.importers.algoperf import (
    HARDWARE_FINGERPRINT,
    AlgoPerfImportError,
    first_eval_meeting,
    import_into_store,
    load_targets,
    read_tree,
)
from laptime.records import Outcome
from laptime.results import ResultsStore

OGBG = 0.28098
CRITEO = 0.123735
METRIC = {"ogbg": "mean_average_precision", "ogbg_model_size": "mean_average_precision",
          "ogbg_gelu": "mean_average_precision", "criteo1tb": "loss", "wmt": "bleu"}
RUNTIME = {"ogbg": 18477, "ogbg_model_size": 18477, "ogbg_gelu": 18477, "criteo1tb": 7703, "wmt": 48151}


def write_trial(root: Path, workload: str, evals, *, ruleset="self_tuning", submission="sub", study=0, trial=1,
                framework="jax", meta=True, hparams=None, header=None, lines=None, flags=None) -> Path:
    """One trial folder. ``evals``: (global_step, accumulated_submission_time, metric value) rows."""
    base = root / ruleset if ruleset else root
    d = base / submission / f"study_{study}" / f"{workload}_{framework}" / f"trial_{trial}"
    d.mkdir(parents=True)
    metric = f"validation/{METRIC[workload]}"
    if lines is None:
        cols = header or ["accumulated_eval_time", "accumulated_submission_time", "global_step", "score",
                          "total_duration", metric, "train/loss"]
        lines = [",".join(cols)]
        for i, (step, t, value) in enumerate(evals):
            row = {"accumulated_eval_time": 10.0 * (i + 1), "accumulated_submission_time": t, "global_step": step,
                   "score": t, "total_duration": t + 10.0 * (i + 1), metric: value, "train/loss": 0.5}
            lines.append(",".join("" if row[c] is None else repr(row[c]) for c in cols))
    (d / "eval_measurements.csv").write_text("\n".join(lines) + "\n")
    if meta:
        m = {"workload.max_allowed_runtime_sec": RUNTIME[workload], "workload.target_metric_name": METRIC[workload],
             "rng_seed": 1234, "python_version": "3.8.10", "gpu_model_name": "Tesla V100-SXM2-16GB", "gpu_count": 8}
        if isinstance(meta, dict):
            m.update(meta)
        (d / "meta_data_0.json").write_text(json.dumps(m))
    if hparams is not None:
        (d / "hparams.json").write_text(hparams if isinstance(hparams, str) else json.dumps(hparams))
    if flags is not None:
        (d / "flags_0.json").write_text(json.dumps(flags))
    return d


def reach_at(t: float, metric="ogbg"):
    """Three evals 100 s apart; the target is first met at submission time ``t`` (the 2nd eval)."""
    good = OGBG + 0.01 if metric == "ogbg" else CRITEO - 0.001
    bad = OGBG - 0.05 if metric == "ogbg" else CRITEO + 0.05
    return [(100, t - 100.0, bad), (200, t, good), (300, t + 100.0, good)]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def n_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


V05 = load_targets("v0.5")


def test_importer_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, laptime.importers; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------------------------------------------
# Target tables
# ------------------------------------------------------------------------------------------


def test_builtin_tables_hold_algoperf_numbers_and_directions():
    t5, t6 = load_targets("v0.5"), load_targets("0.6")
    assert t5.version == "0.5" and t6.version == "0.6" and load_targets().version == "0.6"  # default: latest
    assert (t5.workloads["criteo1tb"].metric, t5.workloads["criteo1tb"].value, t5.workloads["criteo1tb"].direction) \
        == ("loss", 0.123735, "min")
    assert (t5.workloads["ogbg"].value, t5.workloads["ogbg"].direction) == (0.28098, "max")
    assert t5.workloads["librispeech_conformer"].direction == "min"  # wer
    assert t5.workloads["fastmri"].direction == "max"  # ssim
    assert t6.workloads["finewebedu_lm"].direction == "min"  # ppl
    assert set(t5.held_out_workloads) == {"criteo1tb_embed_init", "fastmri_tanh", "imagenet_resnet_large_bn_init",
                                          "librispeech_conformer_layernorm", "ogbg_model_size", "wmt_glu_tanh"}
    assert t6.held_out_workloads == () and "finewebedu_lm" in t6.base_workloads
    assert (t5.self_tuning_budget_factor, t6.self_tuning_budget_factor) == (3.0, 1.5)
    assert t5.classify("imagenet_resnet_large_bn_init") == ("imagenet_resnet", "large_bn_init")
    assert t5.classify("imagenet_vit") == ("imagenet_vit", "base")
    assert t5.classify("imagenet_vit_glu", "all") == ("imagenet_vit", "glu")


def test_targets_file_of_algoperf_shape_with_direction_override(tmp_path):
    path = tmp_path / "targets.json"
    table = {"benchmark_version": "9", "base_workloads": ["ogbg"], "held_out_workloads": [],
             "workloads": {"ogbg": {"target_metric_name": "mean_average_precision", "validation_target_value": 0.5,
                                    "step_hint": 1}}}
    path.write_text(json.dumps(table))
    assert load_targets(path).workloads["ogbg"].value == 0.5
    table["workloads"]["ogbg"]["target_metric_name"] = "f1"
    path.write_text(json.dumps(table))
    with pytest.raises(AlgoPerfImportError, match="'f1': not known whether to minimise or maximise"):
        load_targets(path)
    table["workloads"]["ogbg"]["direction"] = "max"
    path.write_text(json.dumps(table))
    assert load_targets(path).workloads["ogbg"].direction == "max"
    table["held_out_workloads"] = ["ogbg_silu"]
    path.write_text(json.dumps(table))
    with pytest.raises(AlgoPerfImportError, match="without a target: ogbg_silu"):
        load_targets(path)
    path.write_text("{not json")
    with pytest.raises(AlgoPerfImportError, match="cannot read targets file"):
        load_targets(path)
    with pytest.raises(AlgoPerfImportError, match="targets file not found"):
        load_targets(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------------
# Layouts
# ------------------------------------------------------------------------------------------


def test_tree_root_ruleset_folder_and_submission_folder_read_the_same_trials(tmp_path):
    write_trial(tmp_path, "ogbg", reach_at(500.0), submission="a")
    write_trial(tmp_path, "ogbg", reach_at(700.0), submission="b", study=1)
    write_trial(tmp_path, "ogbg", reach_at(900.0), submission="a", ruleset="external_tuning", hparams={"lr": 0.1})
    tree = read_tree(tmp_path, targets=V05)
    assert tree.layout == "tree"
    assert {r.ruleset: sorted(r.submissions) for r in tree.runs} == {"external": ["a"], "self": ["a", "b"]}
    ruleset = read_tree(tmp_path / "self_tuning", targets=V05)
    assert ruleset.layout == "ruleset" and [r.ruleset for r in ruleset.runs] == ["self"]
    sub = read_tree(tmp_path / "self_tuning" / "b", targets=V05)
    assert sub.layout == "submission"
    [rec] = sub.runs[0].records
    assert (rec.algorithm, rec.ruleset, rec.study, rec.trial_index, rec.time_to_target) == ("b", "self", 1, 1, 700.0)
    self_records = {(r.algorithm, r.study): r.time_to_target for r in next(x for x in tree.runs if x.ruleset == "self").records}
    assert self_records == {("a", 0): 500.0, ("b", 1): 700.0}
    assert [r.algorithm for r in read_tree(tmp_path, targets=V05, ruleset="external").runs[0].records] == ["a"]
    assert read_tree(tmp_path, targets=V05, name_from="path").runs[0].submissions == ["external_tuning/a"]


def test_folder_without_ruleset_name_takes_flags_or_ruleset_option(tmp_path):
    write_trial(tmp_path, "ogbg", reach_at(500.0), ruleset="logs", submission="mine")
    with pytest.raises(AlgoPerfImportError, match="cannot tell the ruleset .* pass --ruleset"):
        read_tree(tmp_path / "logs", targets=V05)
    assert read_tree(tmp_path / "logs", targets=V05, ruleset="external").runs[0].ruleset == "external"
    write_trial(tmp_path, "ogbg", reach_at(500.0), ruleset="logs", submission="mine", study=1,
                flags={"tuning_ruleset": "self"})
    assert read_tree(tmp_path / "logs", targets=V05).runs[0].ruleset == "self"
    with pytest.raises(AlgoPerfImportError, match="self-tuning folder but --ruleset external"):
        write_trial(tmp_path, "ogbg", reach_at(500.0), submission="x")
        read_tree(tmp_path / "self_tuning", targets=V05, ruleset="external")


def test_not_a_tree_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "v05" / "self_tuning").mkdir(parents=True)
    code, _, err = run_cli(capsys, "import", "algoperf", tmp_path, "--db", tmp_path / "r.db")
    assert_user_error(code, err, "is not an AlgoPerf experiment tree", "under v05")
    code, _, err = run_cli(capsys, "import", "algoperf", tmp_path / "missing", "--db", tmp_path / "r.db")
    assert_user_error(code, err, "no such folder")
    assert not (tmp_path / "r.db").exists()


# ------------------------------------------------------------------------------------------
# The target rule
# ------------------------------------------------------------------------------------------


def test_first_eval_meeting_the_target_inclusively_counts_not_the_best(tmp_path):
    # max metric: exactly the target meets it (>=); a later, better eval does not replace the first
    write_trial(tmp_path, "ogbg", [(50, 40.0, OGBG - 1e-9), (100, 80.0, OGBG), (150, 120.0, OGBG + 0.1)], study=0)
    # min metric: exactly the target meets it (<=)
    write_trial(tmp_path, "criteo1tb", [(10, 5.0, 0.2), (20, 9.0, CRITEO), (30, 13.0, 0.1)], study=0)
    # a hair on the wrong side is a miss
    write_trial(tmp_path, "criteo1tb", [(10, 5.0, 0.2), (20, 9.0, CRITEO + 1e-9)], study=1)
    recs = {(r.workload, r.study): r for r in read_tree(tmp_path, targets=V05).runs[0].records}
    ogbg, criteo, miss = recs["ogbg", 0], recs["criteo1tb", 0], recs["criteo1tb", 1]
    assert (ogbg.outcome, ogbg.time_to_target, ogbg.steps_to_target) == (Outcome.REACHED, 80.0, 100)
    assert ogbg.measurement["eval_index_to_target"] == 1
    assert (ogbg.target_metric, ogbg.target_direction, ogbg.target_value) == ("mean_average_precision", "max", OGBG)
    assert (criteo.outcome, criteo.time_to_target, criteo.steps_to_target) == (Outcome.REACHED, 9.0, 20)
    assert criteo.target_direction == "min"
    assert (miss.outcome, miss.time_to_target, miss.steps_to_target) == (Outcome.BUDGET, None, None)
    # the whole eval history is kept: every column, at every eval
    assert [e.step for e in ogbg.evals] == [50, 100, 150] and [e.submission_time for e in ogbg.evals] == [40, 80, 120]
    assert ogbg.evals[2].metrics["validation/mean_average_precision"] == OGBG + 0.1
    assert ogbg.evals[1].metrics["train/loss"] == 0.5 and ogbg.evals[1].wall_time == 100.0
    assert (ogbg.submission_time, ogbg.steps) == (120.0, 150)


def test_budget_rule_per_ruleset_and_version(tmp_path):
    runtime = RUNTIME["ogbg"]
    # met first at 2x max_allowed_runtime_sec: inside v0.5's self-tuning budget (3x), outside v0.6's (1.5x)
    write_trial(tmp_path, "ogbg", [(100, 100.0, 0.1), (200, 2.0 * runtime, OGBG + 0.01)])
    write_trial(tmp_path, "ogbg", [(100, 100.0, 0.1), (200, 2.0 * runtime, OGBG + 0.01)], ruleset="external_tuning")
    v05 = {r.ruleset: r.records[0] for r in read_tree(tmp_path, targets="v0.5").runs}
    assert v05["self"].outcome is Outcome.REACHED and v05["self"].budget_sec == 3 * runtime
    assert v05["external"].outcome is Outcome.BUDGET and v05["external"].budget_sec == runtime
    result = read_tree(tmp_path, targets="v0.6", ruleset="self")
    assert result.runs[0].records[0].outcome is Outcome.BUDGET and result.runs[0].records[0].budget_sec == 1.5 * runtime
    assert result.notes["target met only after the budget (not counted)"] == 1
    forced = read_tree(tmp_path, targets="v0.6", ruleset="self", budget_factor=2.0)
    assert forced.runs[0].records[0].outcome is Outcome.REACHED  # exactly at the budget still counts


def test_missing_meta_data_means_an_unknown_budget_and_is_noted(tmp_path):
    write_trial(tmp_path, "ogbg", [(100, 1e9, OGBG)], meta=False)
    result = read_tree(tmp_path, targets=V05)
    [rec] = result.runs[0].records
    assert rec.outcome is Outcome.REACHED and math.isnan(rec.budget_sec)
    assert (rec.seed, rec.device, rec.hardware_fingerprint) == (0, "unknown", HARDWARE_FINGERPRINT)
    assert result.notes["no meta_data_0.json: budget unknown, every logged eval counts"] == 1


def test_hyperparameters_from_hparams_json_and_missing_ones_noted(tmp_path):
    write_trial(tmp_path, "ogbg", reach_at(300.0), ruleset="external_tuning", trial=1,
                hparams={"learning_rate": 0.001, "beta2": 0.999})
    write_trial(tmp_path, "ogbg", reach_at(300.0), ruleset="external_tuning", trial=2)  # no hparams.json
    write_trial(tmp_path, "ogbg", reach_at(300.0), ruleset="external_tuning", trial=3, hparams="[1, 2")
    result = read_tree(tmp_path, targets=V05)
    recs = {r.trial_index: r for r in result.runs[0].records}
    assert recs[1].hyperparameters == {"learning_rate": 0.001, "beta2": 0.999}
    assert recs[2].hyperparameters == {}
    assert result.notes["no hparams.json (external tuning): hyperparameters unknown"] == 1
    assert [(s.path, s.reason) for s in result.skips] == [("external_tuning/sub/study_0/ogbg_jax/trial_3",
                                                           "unreadable hparams.json")]
    # and from meta_data: seed, machine, versions; the fixed fingerprint lets scoring compare them
    assert (recs[1].seed, recs[1].device, recs[1].config) == (1234, "cuda", "jax")
    assert recs[1].hardware["gpu"] == "8 × Tesla V100-SXM2-16GB"
    assert recs[1].versions == {"framework": "jax", "python": "3.8.10"}
    assert recs[1].hardware_fingerprint == HARDWARE_FINGERPRINT


# ------------------------------------------------------------------------------------------
# Variants
# ------------------------------------------------------------------------------------------


def test_held_out_workload_is_a_variant_of_its_base_and_gates_it(tmp_path, capsys):
    for sub, (base_t, var_t) in {"fast": (100.0, None), "slow": (300.0, 500.0)}.items():
        write_trial(tmp_path, "ogbg", reach_at(base_t), submission=sub)
        var = reach_at(var_t) if var_t else [(100, 50.0, 0.1), (200, 90.0, 0.2)]  # "fast" misses the variant
        write_trial(tmp_path, "ogbg_model_size", var, submission=sub)
        write_trial(tmp_path, "ogbg_gelu", reach_at(100.0), submission=sub)  # a variant v0.5 does not score
    result = read_tree(tmp_path, targets=V05)
    keys = sorted({(r.workload, r.variant) for r in result.runs[0].records})
    assert keys == [("ogbg", "base"), ("ogbg", "model_size")]
    assert sorted({(s.reason, s.path.split("/")[-2]) for s in result.skips}) == [("not scored in v0.5", "ogbg_gelu_jax")]
    db = tmp_path / "r.db"
    code, out, err = run_cli(capsys, "import", "algoperf", tmp_path, "--targets", "v0.5", "--db", db)
    assert code == 0, err
    assert "2  not scored in v0.5" in out
    code, out, err = run_cli(capsys, "score", "--db", db, "--json")
    assert code == 0, err
    score = json.loads(out)
    # "fast" missed the held-out variant, so its ogbg time is gated to a miss: "slow" wins
    assert score["workloads"] == ["ogbg"] and score["variant_gate"]["variants"] == {"ogbg": ["ogbg/model_size"]}
    assert score["algorithms"]["fast"]["times"]["ogbg"] == "inf"
    assert score["algorithms"]["slow"]["times"]["ogbg"] == 300.0 and score["algorithms"]["slow"]["score"] == 1.0
    # --workloads all imports the other variant too
    assert {r.variant for r in read_tree(tmp_path, targets=V05, scope="all").runs[0].records} == \
        {"base", "model_size", "gelu"}
    # v0.6 holds no held-out workloads: the v0.5 ones are skipped, and the summary says which table scores them
    code, out, err = run_cli(capsys, "import", "algoperf", tmp_path, "--db", tmp_path / "r6.db")
    assert code == 0, err
    assert "not scored in v0.6" in out and "hint: ogbg_model_size is a held-out workload of AlgoPerf v0.5" in out


# ------------------------------------------------------------------------------------------
# Bad input: skipped with a reason, or one error line
# ------------------------------------------------------------------------------------------


def test_eval_file_with_byte_order_mark_and_crlf_reads_like_any_other(tmp_path):
    lines = ["\ufeffglobal_step,accumulated_submission_time,validation/mean_average_precision", "100,10.0,0.1",
             "200,20.0,0.3"]
    d = write_trial(tmp_path, "ogbg", None, lines=lines)
    (d / "eval_measurements.csv").write_bytes("\r\n".join(lines).encode("utf-8"))
    [rec] = read_tree(tmp_path, targets=V05).runs[0].records
    assert (rec.time_to_target, rec.steps_to_target) == (20.0, 200)


def test_nan_and_empty_metric_values_never_meet_the_target(tmp_path):
    # NaN in the middle, then the target: reached, at the later eval
    write_trial(tmp_path, "ogbg", [(100, 10.0, float("nan")), (200, 20.0, OGBG)], study=0)
    # an empty cell is a missing value; ending on NaN is a divergence
    write_trial(tmp_path, "ogbg", [(100, 10.0, 0.2), (200, 20.0, None), (300, 30.0, float("nan"))], study=1)
    result = read_tree(tmp_path, targets=V05)
    recs = {r.study: r for r in result.runs[0].records}
    assert (recs[0].outcome, recs[0].time_to_target) == (Outcome.REACHED, 20.0)
    assert recs[1].outcome is Outcome.DIVERGED and "nan at the last eval (step 300)" in recs[1].error
    assert math.isnan(recs[1].evals[1].metrics["validation/mean_average_precision"])
    assert result.notes["diverged: validation/mean_average_precision not finite at the last eval"] == 1
    assert result.notes["some evals without a validation/mean_average_precision value (NaN or empty)"] == 1
    assert first_eval_meeting([float("nan"), float("inf"), OGBG], [1, 2, 3], V05.workloads["ogbg"]) == 2
    assert first_eval_meeting([float("-inf"), 0.2], [1, 2], V05.workloads["criteo1tb"]) is None


@pytest.mark.parametrize("lines, reason, detail", [
    (["global_step,accumulated_submission_time,validation/mean_average_precision", "100,10.0,0.3,7"],
     "malformed eval_measurements.csv", "line 2 has 4 fields, the header 3"),
    (["global_step,accumulated_submission_time,validation/mean_average_precision", "100,10.0,0.1", "200,20.0,high"],
     "malformed eval_measurements.csv", "line 3, column validation/mean_average_precision: 'high' is not a number"),
    (["global_step,accumulated_submission_time,validation/mean_average_precision", "nan,10.0,0.3"],
     "malformed eval_measurements.csv", "line 2: global_step is not a whole number ('nan')"),
    (["global_step,accumulated_submission_time,validation/mean_average_precision", "100,,0.3"],
     "malformed eval_measurements.csv", "line 2: accumulated_submission_time is not a time ('')"),
    (["global_step,accumulated_submission_time,validation/loss", "100,10.0,0.3"],
     "missing column", "no validation/mean_average_precision in eval_measurements.csv"),
    (["global_step,validation/mean_average_precision", "100,0.3"],
     "missing column", "no accumulated_submission_time"),
    (["global_step,accumulated_submission_time,validation/mean_average_precision"],
     "empty eval_measurements.csv", "a header but no evals"),
    ([], "empty eval_measurements.csv", "no header"),
])
def test_malformed_eval_files_are_skipped_with_their_reason(tmp_path, lines, reason, detail):
    write_trial(tmp_path, "ogbg", None, lines=lines, study=0)
    write_trial(tmp_path, "ogbg", reach_at(300.0), study=1)  # a good one beside it is imported
    result = read_tree(tmp_path, targets=V05)
    assert [r.study for r in result.runs[0].records] == [1]
    [skip] = result.skips
    assert (skip.path, skip.reason) == ("self_tuning/sub/study_0/ogbg_jax/trial_1", reason)
    assert detail in skip.detail


def test_unknown_workloads_and_stray_folders_are_counted_skips(tmp_path, capsys):
    write_trial(tmp_path, "ogbg", reach_at(300.0))
    sub = tmp_path / "self_tuning" / "sub"
    (sub / "study_0" / "imagenet_foo_jax" / "trial_1").mkdir(parents=True)  # not in the target table
    (sub / "study_0" / "trial_5").mkdir(parents=True)  # a trial folder where a workload folder belongs
    (sub / "study_0" / "ogbg_jax" / "trial_2").mkdir()  # a trial without eval_measurements.csv
    bad_meta = write_trial(tmp_path, "ogbg", reach_at(300.0), study=1)
    (bad_meta / "meta_data_0.json").write_text("{")
    (sub / "notes").mkdir()  # neither a study folder
    db = tmp_path / "r.db"
    code, out, err = run_cli(capsys, "import", "algoperf", tmp_path, "--targets", "v0.5", "--db", db)
    assert code == 0, err
    assert "imported 1 trials (1 reached) of self tuning" in out
    assert "skipped 5 folder(s):" in out
    for line in ("1  unknown workload  (e.g. self_tuning/sub/study_0/imagenet_foo_jax/trial_1 ('imagenet_foo' has no "
                 "target in AlgoPerf v0.5 targets (built-in v0.5)))",
                 "1  not a <workload>_<framework> folder  (e.g. self_tuning/sub/study_0/trial_5)",
                 "1  no eval_measurements.csv  (e.g. self_tuning/sub/study_0/ogbg_jax/trial_2)",
                 "1  unreadable meta_data_0.json  (e.g. self_tuning/sub/study_1/ogbg_jax/trial_1 (not JSON:",
                 "1  not a study_K folder  (e.g. self_tuning/sub/notes)"):
        assert line in out, out
    assert n_rows(db, "trials") == 1
    # --strict: any skip is an error, and nothing is stored
    code, _, err = run_cli(capsys, "import", "algoperf", tmp_path, "--targets", "v0.5", "--db", db, "--strict")
    assert_user_error(code, err, "--strict: 5 folder(s) could not be imported", "nothing was stored")
    assert n_rows(db, "trials") == 1 and n_rows(db, "runs") == 1


def test_nothing_importable_is_an_error_that_says_why(tmp_path, capsys):
    (tmp_path / "self_tuning" / "sub" / "study_0" / "ogbg_jax" / "trial_1").mkdir(parents=True)
    code, _, err = run_cli(capsys, "import", "algoperf", tmp_path, "--db", tmp_path / "r.db")
    assert_user_error(code, err, "no trial to import", "1 no eval_measurements.csv (e.g. self_tuning/sub/study_0/"
                                                       "ogbg_jax/trial_1)")
    assert not (tmp_path / "r.db").exists()


def test_a_failing_write_stores_nothing_of_the_run(tmp_path, monkeypatch):
    for study in range(3):
        write_trial(tmp_path, "ogbg", reach_at(300.0), study=study)
    result = read_tree(tmp_path, targets=V05)
    db = tmp_path / "r.db"
    calls = []

    def flaky(self, run_id, trial, _orig=ResultsStore.add_trial):
        calls.append(trial.study)
        if len(calls) == 3:
            raise OSError("disk full")
        return _orig(self, run_id, trial)

    monkeypatch.setattr(ResultsStore, "add_trial", flaky)
    with ResultsStore(db) as store, pytest.raises(OSError, match="disk full"):
        import_into_store(store, result, "laptime import algoperf")
    assert calls == [0, 1, 2]
    assert n_rows(db, "runs") == 0 and n_rows(db, "trials") == 0 and n_rows(db, "evals") == 0


# ------------------------------------------------------------------------------------------
# Score and report the import
# ------------------------------------------------------------------------------------------


def test_trial_choice_fastest_vs_algoperf_on_imported_trials(tmp_path, capsys):
    # one study, two trials: trial 1 evaluates every 100 s and meets the target at its 2nd eval (200 s);
    # trial 2 evaluates every 30 s and meets it at its 4th eval (120 s): faster, but at a later eval index
    write_trial(tmp_path, "ogbg", [(100, 100.0, 0.1), (200, 200.0, OGBG), (300, 300.0, OGBG)], trial=1,
                ruleset="external_tuning", submission="A", hparams={})
    write_trial(tmp_path, "ogbg", [(30, 30.0, 0.1), (60, 60.0, 0.1), (90, 90.0, 0.2), (120, 120.0, OGBG)], trial=2,
                ruleset="external_tuning", submission="A", hparams={})
    # B is steady at 150 s, so the choice decides the ranking
    write_trial(tmp_path, "ogbg", [(100, 150.0, OGBG)], ruleset="external_tuning", submission="B", hparams={})
    db = tmp_path / "r.db"
    assert run_cli(capsys, "import", "algoperf", tmp_path, "--targets", "v0.5", "--db", db)[0] == 0
    fastest = json.loads(run_cli(capsys, "score", "--db", db, "--json")[1])
    algoperf = json.loads(run_cli(capsys, "score", "--db", db, "--json", "--trial-choice", "algoperf")[1])
    assert fastest["algorithms"]["A"]["times"]["ogbg"] == 120.0 and fastest["algorithms"]["A"]["rank"] == 1
    assert algoperf["algorithms"]["A"]["times"]["ogbg"] == 200.0 and algoperf["algorithms"]["B"]["rank"] == 1
    assert (fastest["trial_choice"], algoperf["trial_choice"]) == ("fastest", "algoperf")
    # the report takes the same choice
    out_dir = tmp_path / "rep"
    code, out, err = run_cli(capsys, "report", "--db", db, "--out", out_dir, "--bootstrap", "0",
                             "--trial-choice", "algoperf")
    assert code == 0, err
    md = (out_dir / "report.md").read_text()
    assert "| 1 | B |" in md and "earliest eval (AlgoPerf's choice" in md


def test_cli_import_score_report_end_to_end(tmp_path, capsys):
    write_trial(tmp_path, "ogbg", reach_at(300.0), submission="a")
    write_trial(tmp_path, "ogbg", reach_at(600.0), submission="b")
    write_trial(tmp_path, "criteo1tb", reach_at(250.0, "criteo1tb"), submission="a")
    write_trial(tmp_path, "criteo1tb", reach_at(125.0, "criteo1tb"), submission="b")
    db = tmp_path / "r.db"
    code, out, err = run_cli(capsys, "import", "algoperf", tmp_path, "--targets", "v0.5", "--db", db, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["imported"] == 4 and summary["skipped"] == 0
    [run] = summary["runs"]
    assert (run["run_id"], run["ruleset"], run["trials"], run["budget_factor"]) == (1, "self", 4, 3.0)
    with ResultsStore(db) as store:
        [stored] = store.runs()
        meta = stored["meta"]
        assert (meta["kind"], meta["ruleset"], meta["targets"]["version"]) == ("import", "self", "0.5")
        assert meta["path"] == str(tmp_path.resolve()) and len(meta["trial_ids"]) == 4
        assert len(store.get_trial(meta["trial_ids"][0]).evals) == 3
    # score: latest run by default, or --run; a = (1 + area(2)) / 2 = (1 + 2/3) / 2 = 5/6, same for b
    code, out, err = run_cli(capsys, "score", "--db", db, "--run", "1", "--json")
    assert code == 0, err
    score = json.loads(out)
    assert score["algorithms"]["a"]["times"] == {"criteo1tb": 250.0, "ogbg": 300.0}
    assert score["algorithms"]["a"]["score"] == pytest.approx(5 / 6)
    code, out, err = run_cli(capsys, "report", "--db", db, "--out", tmp_path / "rep", "--bootstrap", "20")
    assert code == 0, err
    assert "import 1" in (tmp_path / "rep" / "report.html").read_text()
    # usage errors: one line each
    assert_user_error(*run_cli(capsys, "score", "--db", db, "--times", tmp_path / "t.csv")[::2], "exactly one of")
    assert_user_error(*run_cli(capsys, "score")[::2], "exactly one of")
    assert_user_error(*run_cli(capsys, "score", "--db", db, "--run", "7")[::2], "run 7 is not a finished")
    assert_user_error(*run_cli(capsys, "score", "--db", tmp_path / "none.db")[::2], "no results database")
    assert_user_error(*run_cli(capsys, "import", "algoperf", tmp_path, "--db", db, "--targets",
                               tmp_path / "t.json")[::2], "targets file not found")


# ------------------------------------------------------------------------------------------
# The real sample (two v0.5 self-tuning submissions), when it is there
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def algoperf_sample(shared_data_dir):
    path = shared_data_dir / "algoperf-logs"
    if not (path / "v05" / "self_tuning").is_dir():
        pytest.skip(f"no AlgoPerf log sample at {path}")
    return path


def test_import_real_v05_self_tuning_sample(algoperf_sample, tmp_path, capsys):
    db = tmp_path / "r.db"
    code, out, err = run_cli(capsys, "import", "algoperf", algoperf_sample / "v05", "--targets",
                             algoperf_sample / "workload_targets_v05.json", "--db", db, "--json")
    assert code == 0, err
    summary = json.loads(out)
    # 2 submissions x 5 studies x (8 base + 6 held-out workloads), every one readable
    assert summary["imported"] == 140 and summary["skipped"] == 0
    assert summary["runs"][0]["submissions"] == ["baseline", "schedule_free_adamw"]
    assert summary["runs"][0]["budget_factor"] == 3.0
    with ResultsStore(db) as store:
        records = store.trials(with_evals=True)
    assert {(r.workload, r.variant) for r in records} >= {("imagenet_resnet", "large_bn_init"), ("wmt", "glu_tanh")}
    assert len({(r.workload, r.variant) for r in records}) == 14
    # one trial checked against its file by hand: baseline, study 0, fastmri (ssim >= 0.723653, maximised)
    [fastmri] = [r for r in records if (r.algorithm, r.workload, r.variant, r.study) == ("baseline", "fastmri", "base", 0)]
    with open(algoperf_sample / "v05/self_tuning/baseline/study_0/fastmri_jax/trial_1/eval_measurements.csv") as f:
        rows = list(csv.DictReader(f))
    first = next(i for i, row in enumerate(rows) if float(row["validation/ssim"]) >= 0.723653)
    assert fastmri.time_to_target == float(rows[first]["accumulated_submission_time"])
    assert fastmri.steps_to_target == int(float(rows[first]["global_step"]))
    assert len(fastmri.evals) == len(rows) and fastmri.measurement["eval_index_to_target"] == first
    # scored together, as on the leaderboard, Schedule Free AdamW ranks above the baseline
    code, out, err = run_cli(capsys, "score", "--db", db, "--json", "--trial-choice", "algoperf",
                             "--tau-points", "100")
    assert code == 0, err
    score = json.loads(out)
    assert list(score["algorithms"]) == ["schedule_free_adamw", "baseline"]
    assert score["algorithms"]["baseline"]["times"]["imagenet_resnet"] == "inf"  # gated: missed a variant or base
