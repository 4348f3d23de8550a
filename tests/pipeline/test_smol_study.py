"""tools/smol_study.py on the toy: an experiment and an ablation that starts from a copy of it (data and RW
reused by the pipeline's records, pairs and SRPO re-run), the table with separation and paired differences
recomputable from report.json, the figure, and a re-run that keeps finished runs."""
import json
import shutil

from conftest import FAST


def _args(tmp_path, only):
    items = [*FAST, "srpo.max_steps=4", "eval.arms=[base, rw, saro]", "eval.limit_per_set=4"]
    out = ["--recipe", "recipes/tiny-cpu.yaml", "--only", only, "--out", str(tmp_path / "study")]
    for it in items:
        out += ["--set", it]
    return out


def test_an_experiment_and_its_ablation_share_rw(tmp_path, cache_dir):
    from tools.smol_study import main, separation

    assert main(_args(tmp_path, "faithful,rw_op")) == 0
    study = tmp_path / "study"
    parent, child = study / "faithful-s0", study / "rw_op-s0"
    # the ablation reused the parent's RW (same record, same weights) and trained its own SRPO on OP pairs
    assert (child / ".stages/warmup.json").read_text() == (parent / ".stages/warmup.json").read_text()
    assert (child / ".stages/srpo.json").read_text() != (parent / ".stages/srpo.json").read_text()
    # same held-out prompts as the full run, minus the PP-COT pairs the ablation leaves out
    from saro_lite.fileio import read_jsonl

    val_child, val_parent = read_jsonl(child / "data/srpo_val.jsonl"), read_jsonl(parent / "data/srpo_val.jsonl")
    assert val_child and {x["type"] for x in val_child} == {"op"}
    assert [x["id"] for x in val_child] == [x["id"] for x in val_parent if x["type"] == "op"]
    assert {x["type"] for x in read_jsonl(child / "data/srpo_train.jsonl")} == {"op"}
    resolved = (child / "recipe.resolved.yaml").read_text()
    assert "use_pp: false" in resolved
    rows = json.loads((study / "study.json").read_text())
    assert [r["experiment"] for r in rows] == ["faithful", "rw_op"]
    report = json.loads((child / "report.json").read_text())
    sep = rows[1]["arms"]["saro"]["separation"]
    saro = report["arms"]["saro"]
    assert abs(sep["value"] - (1 - saro["harmful_asr"] - saro["over_refusal_rate"])) < 1e-9
    assert sep["ci"][0] < sep["value"] < sep["ci"][1] and sep == separation(saro)
    d = rows[1]["separation_differences"]["saro - rw"]
    c = report["comparisons"]["saro - rw"]
    assert abs(d["value"] + c["harmful_asr"]["diff"] + c["over_refusal_rate"]["diff"]) < 1e-9
    assert "| rw_op | 0 | saro |" in (study / "study.md").read_text()
    # the ablation against its parent, arm by arm on the same prompts: the shared RW and base reply the same,
    # saro's difference is the change of its separation
    versus = rows[1]["versus"]
    assert versus["experiment"] == "faithful" and set(versus["arms"]) == {"base", "rw", "saro"}
    assert versus["arms"]["rw"]["value"] == 0 and versus["arms"]["base"]["value"] == 0
    assert abs(versus["arms"]["saro"]["value"] - (sep["value"] - rows[0]["arms"]["saro"]["separation"]["value"])) < 1e-9
    assert rows[0]["versus"] == {}  # faithful is compared with shipped, which did not run here
    assert "- rw_op − faithful, seed 0: base +0.00" in (study / "study.md").read_text()
    # an experiment that evaluated saro alone is set against the reference run's other arms, same prompts
    from tools.smol_study import cross_differences

    cross = cross_differences(child, parent, ["saro"], "full")
    assert set(cross) == {"saro - faithful rw", "saro - faithful base"}
    assert abs(cross["saro - faithful rw"]["value"]
               - (sep["value"] - rows[0]["arms"]["rw"]["separation"]["value"])) < 1e-9
    assert cross_differences(child, parent, ["base", "rw", "saro"], "full") == {}  # all arms ran: the report has them
    # the plain-DPO experiment evaluates dpo alone: set against every arm of the reference run
    alone = tmp_path / "dpo-alone"
    shutil.copytree(child / "eval" / "saro", alone / "eval" / "dpo")
    cross = cross_differences(alone, parent, ["dpo"], "full")
    assert set(cross) == {"dpo - faithful saro", "dpo - faithful rw", "dpo - faithful base"}
    assert cross["dpo - faithful saro"]["value"] == versus["arms"]["saro"]["value"]
    assert (study / "separation.png").stat().st_size > 0
    # the same command again keeps both runs; --train-prompts adds the arms on their own training prompts
    before = (child / "report.json").read_text()
    assert main(_args(tmp_path, "faithful,rw_op") + ["--train-prompts"]) == 0
    assert (child / "report.json").read_text() == before
    rows = json.loads((study / "study.json").read_text())
    trained = read_jsonl(parent / "data/rit_d.jsonl")
    harmful = sum(r["kind"] == "harmful" for r in trained)
    safe = sum(r["kind"] in ("benign", "borderline") for r in trained)
    t = rows[0]["train_prompts"]
    assert set(t) == {"base", "rw", "saro"} and t["rw"]["n"] == [harmful, safe]
    assert abs(t["saro"]["separation"] - (1 - t["saro"]["harmful_asr"] - t["saro"]["over_refusal_rate"])) < 1e-9
    assert t["saro"]["heldout_separation"] == rows[0]["arms"]["saro"]["separation"]["value"]
    assert (parent / "report.json").exists() and not (study / "faithful-s0-train" / "study_run.json").exists()
    assert "Training prompts vs held-out" in (study / "study.md").read_text()


def test_unknown_experiment_and_orphan_ablation_are_one_line(tmp_path, capsys):
    import pytest

    from tools.smol_study import main

    assert main(_args(tmp_path, "faithfull")) == 2
    assert "unknown experiment(s) faithfull" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="run its parent first"):
        main(_args(tmp_path, "rw_pp"))
