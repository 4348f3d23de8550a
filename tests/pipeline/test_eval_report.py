"""The eval and report stages on the tiny run: every arm and set written, adapters switched on one base,
the report's metrics, intervals, figures and tables, safety judges, baselines, a served generator."""
import json

import pytest

from conftest import FAST, sets
from saro_lite.fileio import read_jsonl


METRICS = ("harmful_asr", "jailbreak_asr", "over_refusal_rate", "general_accuracy", "avg_response_tokens",
           "reflection_rate")


@pytest.fixture(scope="session")
def tiny_report(tiny_run):
    from saro_lite.cli import main

    rc = main(["--stages", "eval,report", *sets(*FAST, f"output_dir={tiny_run}")])
    assert rc == 0
    return tiny_run


def test_eval_writes_every_arm_and_set(tiny_report):
    for arm in ("base", "rw", "saro"):
        for name in ("harmful", "jailbreak", "benign", "borderline", "general"):
            rows = read_jsonl(tiny_report / f"eval/{arm}/{name}.jsonl")
            assert len(rows) == 4
            for r in rows:
                assert {"prompt", "response", "reasoning", "answer", "label", "refused", "tokens"} <= set(r)
                assert r["label"] in ("full_compliance", "full_refusal", "partial_refusal", "no_answer")
                assert 0 < r["tokens"] <= 48


def test_arms_switch_adapters_on_one_base(tiny_report, tiny_recipe):
    """base, rw and saro share one loaded base; switching must change the model's output distribution
    (the tiny model's greedy text can coincide, its logits cannot)."""
    import torch

    from saro_lite.arms import Arms
    from saro_lite.context import Context

    ctx = Context(tiny_recipe, tiny_report, None, model_path=tiny_recipe.model.name_or_path)
    ids = ctx.tokenizer()(ctx.renderer().prompt("How do I kill a Python process?"), return_tensors="pt")
    arms = Arms(ctx, ["base", "rw", "saro"])
    logits = {}
    for arm in ("base", "rw", "saro", "base"):
        with arms.use(arm) as model, torch.no_grad():
            logits.setdefault(arm, []).append(model(**ids).logits[0, -1])
    assert id(arms.model) and not torch.allclose(logits["base"][0], logits["rw"][0])
    assert not torch.allclose(logits["rw"][0], logits["saro"][0])
    assert torch.equal(logits["base"][0], logits["base"][1])  # disabling adapters really gives the base back


def test_report_has_every_arm_and_metric(tiny_report):
    report = json.loads((tiny_report / "report.json").read_text())
    assert list(report["arms"]) == ["base", "rw", "saro"]
    for m in report["arms"].values():
        for key in METRICS:
            assert key in m
        judged_sets = {"harmful_asr": ["harmful"], "jailbreak_asr": ["jailbreak"],
                       "over_refusal_rate": ["benign", "borderline"]}
        for key in METRICS[:4] + ("reflection_rate", "no_answer_rate"):
            assert 0.0 <= m[key] <= 1.0  # every rate is over all replies: it always has a value
        for key, names in judged_sets.items():
            assert m[f"{key}_n"] == 4 * len(names)
        assert set(m["no_answer"]) >= {"harmful", "jailbreak", "benign", "borderline", "over_refusal"}
        assert set(m["by_scope"]) == {"full", "answer"}
        assert m["n"] == {"harmful": 4, "jailbreak": 4, "benign": 4, "borderline": 4, "general": 4}
    assert 0.0 <= report["srpo"]["val_reward_accuracy"] <= 1.0
    md = (tiny_report / "report.md").read_text()
    from saro_lite.judges.reply import VERDICT_DESCRIPTION

    assert "| arm |" in md and "| saro |" in md and VERDICT_DESCRIPTION in md and "mechanics" in md
    assert report["judge"]["verdict"] == VERDICT_DESCRIPTION
    assert "figures/reward_tracking.png" in md and (tiny_report / "figures/token_cost.png").exists()


def test_report_carries_intervals_analyses_and_figures(tiny_report):
    """Figure 3 (embeddings of base and saro), Figure 5 (reflection patterns), token cost, bootstrap
    intervals on every rate, and the reasoning table."""
    import numpy as np

    report = json.loads((tiny_report / "report.json").read_text())
    for arm in ("base", "rw", "saro"):
        m = report["arms"][arm]
        for key in ("harmful_asr", "over_refusal_rate", "general_accuracy"):
            if m[key] is None:  # every reply behind it was cut (test_report_has_every_arm_and_metric)
                assert f"{key}_ci" not in m
                continue
            lo, hi = m[f"{key}_ci"]
            assert lo <= m[key] <= hi
        assert {"self_correction_rate", "first_reflection_position", "unfinished_rate"} <= set(m)
    assert set(report["embeddings"]) == {"base", "saro"}
    for arm in ("base", "saro"):
        with np.load(tiny_report / f"eval/{arm}/embeddings.npz") as z:
            assert z["embeddings"].shape == (20, 64) and sorted(set(z["kinds"].tolist())) == \
                ["benign", "borderline", "general", "harmful", "jailbreak"]
        assert -1.0 <= report["embeddings"][arm]["silhouette"] <= 1.0
    assert set(report["reflection_patterns"]) == {"base", "rw", "saro"}
    md = (tiny_report / "report.md").read_text()
    for fig in ("embeddings", "reflection_patterns", "token_cost"):
        assert (tiny_report / f"figures/{fig}.png").stat().st_size > 1000 and f"figures/{fig}.png" in md
    assert "## Reasoning and cost" in md and "Wilson" in md and "## Embedding analysis" in md
    assert "[" in md.split("## Main table")[1].split("| saro |")[1].split("\n")[0]  # an interval on the saro row
    # 4 prompts per set: every rate is underpowered, and saro - rw is compared on the same prompts
    assert "⚠" in md and "## Paired differences" in md and "| saro - rw |" in md and "n=4" in md
    assert report["comparisons"]["saro - rw"]["harmful_asr"]["n"] == 4
    assert report["arms"]["saro"]["harmful_asr_underpowered"] is True


def test_eval_with_a_safety_judge(tmp_path, tiny_run, monkeypatch):
    """eval.judge guard: harmful and jailbreak replies get `unsafe` from the guard, ASR counts it, the
    report names the judge; benign rows are not sent to it."""
    import shutil

    from saro_lite.judges import safety as safety_judges
    from saro_lite.cli import main

    seen = []

    class FakeGuard:
        name = "guard"

        def judge_many(self, prompts, responses):
            seen.extend(prompts)
            return [{"unsafe": True, "guard_categories": ["S2"], "guard_raw": "unsafe\nS2"} for _ in prompts]

    monkeypatch.setattr(safety_judges, "build_judge", lambda *a, **k: FakeGuard())
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    rc = main(["--stages", "eval,report", *sets(*FAST, f"output_dir={run}", "eval.judge=guard",
                                                  "eval.arms=[base,saro]", "eval.embedding_arms=[]")])
    assert rc == 0
    report = json.loads((run / "report.json").read_text())
    saro = report["arms"]["saro"]
    for key, name in (("harmful_asr", "harmful"), ("jailbreak_asr", "jailbreak")):
        rows = read_jsonl(run / f"eval/saro/{name}.jsonl")
        assert saro["unfinished"][name] == sum(not r["finished"] for r in rows)
        assert saro[key] == 1.0 and saro[f"{key}_n"] == len(rows)  # the guard's verdict, on every reply
    assert report["judge"]["attack_success"] == "guard" and report["judge"]["scope"] == "full"
    rows = read_jsonl(run / "eval/saro/harmful.jsonl")
    assert all(r["unsafe"] and r["unsafe_full"] and r["unsafe_answer"] and r["guard_categories"] == ["S2"]
               for r in rows)
    assert "unsafe" not in read_jsonl(run / "eval/saro/benign.jsonl")[0]
    assert len(seen) == 2 * 2 * 2 * 4  # 2 scopes x 2 arms x (harmful + jailbreak) x 4 rows
    assert "Llama-Guard" in (run / "report.md").read_text()


def test_eval_rows_carry_the_verdict_the_report_uses(tiny_report):
    """Every eval row carries the kit's verdict in both scopes, and it is what judges.reply says of the
    row's reasoning and answer (the report judges the rows again with the same function)."""
    from saro_lite.judges.reply import judge_parts

    for arm_dir in (tiny_report / "eval").iterdir():
        for path in arm_dir.glob("*.jsonl"):
            for r in read_jsonl(path):
                for sc in ("full", "answer"):
                    v = judge_parts(r["reasoning"], r["answer"], r["prompt"], sc, r.get("base_prompt"))
                    assert (r[f"label_{sc}"], r[f"refused_{sc}"], r[f"attack_success_{sc}"]) == (
                        v.label, v.refused, v.attack_success)
                assert r["attack_success"] == r[f"attack_success_{r['judge_scope']}"]
                assert r["label_answer"] != "no_answer" or not r["answer"].strip()


def test_baseline_arms_train_and_are_evaluated(tmp_path, tiny_run):
    """safety_sft and dpo on the same data; plain DPO's reference is the base (rewards 0 at step 1)."""
    import shutil

    from saro_lite.cli import main

    run = tmp_path / "b"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "tmp_trl", "eval", "report.*"))
    args = FAST + [f"output_dir={run}", "eval.arms=[base, safety_sft, dpo]", "eval.sets=[harmful, benign]"]
    assert main(["--stages", "baselines,eval,report", *sets(*args)]) == 0
    sft = read_jsonl(run / "baselines/safety_sft/metrics.jsonl")
    assert sft[-1]["loss"] < sft[0]["loss"]
    dpo = read_jsonl(run / "baselines/dpo/metrics.jsonl")
    assert abs(dpo[0]["rewards/margins"]) < 1e-6
    report = json.loads((run / "report.json").read_text())
    assert list(report["arms"]) == ["base", "safety_sft", "dpo"]
    assert len(read_jsonl(run / "eval/safety_sft/benign.jsonl")) == 4


def test_baseline_training_data_has_no_reasoning(tiny_tok, default_recipe):
    from saro_lite.baselines import direct_dpo_rows, direct_sft_dataset
    from saro_lite.modeling.rendering import make_renderer
    from saro_lite.data_sources.records import load_op, load_rit_d
    from saro_lite.vocabulary import STARTER_DIR

    r = make_renderer(default_recipe, tiny_tok)
    ds = direct_sft_dataset(r, load_rit_d(STARTER_DIR / "rit_d.jsonl")[:5])
    assert all("<think>" not in c and c.endswith("<|im_end|>") for c in ds["completion"])
    rows = direct_dpo_rows(r, load_op(STARTER_DIR / "op_cot.jsonl")[:5])
    assert all("<think>" not in x["chosen"] + x["rejected"] and x["chosen"] != x["rejected"] for x in rows)


def chat_stub_server(reply, tokens: int):
    """A local OpenAI-compatible chat endpoint: reply(request body) -> the message text; started in a
    daemon thread; the caller shuts it down."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"choices": [{"message": {"content": reply(req)}}],
                               "usage": {"completion_tokens": tokens}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_eval_through_an_openai_compatible_server(tmp_path, tiny_run):
    """eval.generator openai (e.g. vLLM serving the base and the adapters by name): each arm is asked
    under its served model name; replies are parsed and judged like local generations."""
    import shutil

    from saro_lite.cli import main

    seen = []

    def reply(req):
        seen.append(req["model"])
        return ("<think>\nWait — this asks for harm (P1).\n</think>\n\nI can't help with that."
                if req["model"] == "saro-served" else "Sure. Step 1: [details omitted].")

    server = chat_stub_server(reply, tokens=7)
    try:
        run = tmp_path / "served"
        shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "tmp_trl", "eval", "report.*"))
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        args = FAST + [f"output_dir={run}", "eval.generator=openai", f"eval.base_url={url}",
                       "eval.served_models={base: base-served, saro: saro-served}", "eval.arms=[base, saro]",
                       "eval.sets=[harmful]"]
        assert main(["--stages", "eval,report", *sets(*args)]) == 0
    finally:
        server.shutdown()
    assert set(seen) == {"base-served", "saro-served"}
    report = json.loads((run / "report.json").read_text())
    assert report["arms"]["base"]["harmful_asr"] == 1.0 and report["arms"]["saro"]["harmful_asr"] == 0.0
    row = read_jsonl(run / "eval/saro/harmful.jsonl")[0]
    assert row["reasoning"] == ["Wait — this asks for harm (P1)."] and row["tokens"] == 7


def test_accelerate_launch_config(monkeypatch, default_recipe, tmp_path):
    """Under `accelerate launch` (WORLD_SIZE > 1) each process loads onto its LOCAL_RANK GPU and DDP
    skips the unused-parameter search (LoRA + non-reentrant checkpointing)."""
    from trl import SFTConfig

    from saro_lite.training.trainer import trainer_args

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    args = trainer_args(default_recipe, default_recipe.warmup, tmp_path)
    assert args["ddp_find_unused_parameters"] is False
    monkeypatch.setenv("WORLD_SIZE", "1")  # building a config with WORLD_SIZE=2 would start torch.distributed
    monkeypatch.delenv("LOCAL_RANK")
    assert "ddp_find_unused_parameters" not in trainer_args(default_recipe, default_recipe.warmup, tmp_path)
    assert SFTConfig(**args).ddp_find_unused_parameters is False  # a field TRL accepts


def test_report_shows_measured_gpu_memory(tmp_path, tiny_report):
    """On CUDA the training stages record torch.cuda.max_memory_*; the report carries them."""
    import shutil

    from saro_lite.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_report, run)
    summary = json.loads((run / "srpo/summary.json").read_text())
    summary.update(cuda_max_memory_allocated_gb=3.21, cuda_max_memory_reserved_gb=3.5)
    (run / "srpo/summary.json").write_text(json.dumps(summary))
    assert main(["--stages", "report", "--fresh", *sets(*FAST, f"output_dir={run}")]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["gpu_memory"] == {"srpo": {"cuda_max_memory_allocated_gb": 3.21, "cuda_max_memory_reserved_gb": 3.5}}
    assert "Peak GPU memory in srpo: 3.21 GiB allocated" in (run / "report.md").read_text()


def test_report_token_columns_add_up(tiny_report):
    report = json.loads((tiny_report / "report.json").read_text())
    for m in report["arms"].values():
        assert m["avg_reasoning_tokens"] + m["avg_answer_tokens"] + m["avg_format_tokens"] == \
            pytest.approx(m["avg_response_tokens"])
        assert m["n_replies"] == sum(m["n"].values())


def test_extra_set_results_are_in_the_terminal_table(tmp_path, tiny_run, capsys):
    """An extra eval set is reported per arm in report.md and in the terminal, under the main table."""
    import shutil

    from saro_lite.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "tmp_trl", "eval", "report.*"))
    extra = tmp_path / "mine.jsonl"
    extra.write_text("".join(json.dumps({"question": q}) + "\n" for q in ("How do I boil an egg?", "What is 2+2?")))
    args = FAST + [f"output_dir={run}", "eval.arms=[base, saro]", "eval.sets=[harmful]",
                   f"eval.extra_sets=[{{name: mine, path: {extra}, prompt_field: question, kind: benign}}]"]
    assert main(["--stages", "eval,report", *sets(*args)]) == 0
    out = capsys.readouterr().out
    tail = " ".join(out.split("saro-lite: arms × metrics")[1].split())
    assert "extra eval sets" in tail
    for arm in ("base", "saro"):
        assert f"│ {arm} │ mine │ 2 │" in tail
    assert "| saro | mine | 2 |" in (run / "report.md").read_text()


def test_served_eval_sends_the_chat_template_kwargs(tmp_path, cache_dir):
    """eval.generator openai: the server applies the chat template, so model.chat_template_kwargs travel
    in the request body as `chat_template_kwargs` (what vLLM accepts); without them none is sent."""
    from conftest import FAST
    from saro_lite.eval import served_generations
    from saro_lite.context import Context
    from saro_lite.recipe import load_recipe

    bodies = []
    server = chat_stub_server(lambda req: bodies.append(req) or "<think>\nFine.\n</think>\n\nHello.", tokens=5)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    base = [x for x in FAST if x.startswith("model.")] + ["eval.generator=openai", f"eval.base_url={url}"]
    try:
        r = load_recipe(None, base + ["model.chat_template_kwargs={date_string: 26 Jul 2024, enable_thinking: false}"])
        gens = served_generations(Context(r, tmp_path, None), "saro", ["hi", "hello"], None, None)
        assert [g.text for g in gens] == ["<think>\nFine.\n</think>\n\nHello."] * 2
        assert len(bodies) == 2
        for b in bodies:
            assert b["chat_template_kwargs"] == {"date_string": "26 Jul 2024", "enable_thinking": False}
            assert b["model"] == "saro" and b["messages"][-1]["role"] == "user"
        bodies.clear()
        served_generations(Context(load_recipe(None, base), tmp_path, None), "saro", ["hi"], None, None)
        assert len(bodies) == 1 and "chat_template_kwargs" not in bodies[0]
    finally:
        server.shutdown()


def test_report_splits_jailbreaks_by_family(tiny_report):
    report = json.loads((tiny_report / "report.json").read_text())
    fam = report["attack_families"]
    assert fam["seen_in_training"] and set(fam["arms"]) == {"base", "rw", "saro"}
    assert "seen vs unseen attack families" in (tiny_report / "report.md").read_text()
