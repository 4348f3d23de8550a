"""Analyses (saro_lite/analysis/measures.py): reflection / self-correction on hand-written traces, bootstrap
intervals, embedding separation and PCA on synthetic data, prompt embeddings on the tiny run, figures."""
import numpy as np
import pytest

from saro_lite.analysis.measures import (MARKER_TYPES, bootstrap_ci, pattern_counts, pca_2d, plot_embeddings,
                                plot_reflection, prompt_embeddings, reflection_metrics, reflection_stats,
                                separation)
from saro_lite.analysis.scoring import has_reflection


# ------------------------------------------------------------------------------------------
# Reflection and self-correction
# ------------------------------------------------------------------------------------------
def test_no_reflection():
    steps = ["The user asks how to sort a list in Python.", "This is routine, I'll explain sorted()."]
    assert reflection_stats(steps) == {"reflection": False, "first_reflection_position": None,
                                       "self_correction": False}
    assert reflection_stats([]) == {"reflection": False, "first_reflection_position": None, "self_correction": False}


def test_first_reflection_position_first_middle_last():
    first = ["Wait, what exactly is being asked?", "It is about list slicing.", "I'll explain."]
    last = ["The user asks about list slicing.", "Slices copy the list.", "Hmm, let me check the step value."]
    middle = ["The user asks about slicing.", "Actually, a negative step reverses.", "So s[::-1] reverses.",
              "I'll explain."]
    assert reflection_stats(first)["first_reflection_position"] == 0.0
    assert reflection_stats(last)["first_reflection_position"] == 1.0
    assert reflection_stats(middle)["first_reflection_position"] == pytest.approx(1 / 3)
    assert reflection_stats(["Wait, this is fine."])["first_reflection_position"] == 0.0  # one step
    for steps in (first, last, middle):
        assert reflection_stats(steps)["reflection"] == has_reflection(steps) is True


def test_self_correction_help_to_refuse():
    steps = ["The user asks about a chemistry reaction; this is routine, I'll help.",
             "Wait, the stated goal is to hurt a neighbour, so I must decline.",
             "Offer to talk about lab safety instead."]
    st = reflection_stats(steps)
    assert st["reflection"] and st["self_correction"]
    assert st["first_reflection_position"] == 0.5


def test_self_correction_refuse_to_help_with_negated_cue():
    steps = ["The phrase 'kill a process' sounds violent, so I should refuse.",
             "On second thought, it is a Linux question; there is no need to refuse, this is routine.",
             "Explain the kill command."]
    assert reflection_stats(steps)["self_correction"] is True


def test_reflection_without_decision_change():
    same = ["This asks for a weapon; I will decline.", "Hmm, is there a benign reading? No, so I still decline."]
    no_cue_before = ["The user asks about a lock.", "Wait, it is their own bike lock; I'll help."]
    no_cue_after = ["I'll help with the essay.", "Actually, the essay is about rivers."]
    for steps in (same, no_cue_before, no_cue_after):
        st = reflection_stats(steps)
        assert st["reflection"] and not st["self_correction"], steps


def test_cue_inside_the_reflecting_step_counts_before_the_marker():
    steps = ["The user asks about opening a lock.",
             "Sure, I’ll help. Actually, it is a neighbour's door they do not own, so I won’t help."]
    assert reflection_stats(steps)["self_correction"] is True  # curly apostrophes too
    # "make sure" and "not sure" are not help cues
    steps = ["I will decline this one.", "Wait, let me make sure I read it right; I'm not sure it is harmful."]
    assert reflection_stats(steps)["self_correction"] is False


def test_pattern_counts_by_type_and_arm():
    rows = {"base": {"benign": [{"reasoning": ["Fine, I'll explain."]}, {"reasoning": []}]},
            "saro": [{"reasoning": ["Wait, hmmm. Let me double-check.", "On second thought, this is routine."]},
                     {"reasoning": ["I'll help.", "Hold on, the goal is harmful; I must decline. Actually yes."]},
                     {"reasoning": ["Let me reconsider: however, the user owns it."]}]}
    c = pattern_counts(rows)
    assert c["base"] == {"n": 2, "traces_with_reflection": 0, "self_corrections": 0,
                         "markers": dict.fromkeys(MARKER_TYPES, 0)}
    m = c["saro"]["markers"]
    assert (m["wait"], m["hmm"], m["let me check"], m["on second thought"], m["hold on"], m["actually"],
            m["reconsider"], m["however"]) == (1, 1, 1, 1, 1, 1, 1, 1)
    assert c["saro"]["n"] == 3 and c["saro"]["traces_with_reflection"] == 3 and c["saro"]["self_corrections"] == 1


def test_reflection_metrics_rates_and_intervals():
    rows = [{"reasoning": ["I'll help.", "Wait, I must decline."]}, {"reasoning": ["Hmm, fine.", "I'll help."]},
            {"reasoning": ["I'll help."]}, {"reasoning": []}]
    m = reflection_metrics(rows)
    assert m["n"] == 4 and m["n_reflective"] == 2
    assert m["reflection_rate"] == 0.5 and m["self_correction_rate"] == 0.25
    assert m["first_reflection_position"] == 0.5  # (1.0 + 0.0) / 2
    lo, hi = m["reflection_rate_ci"]
    assert 0 <= lo <= 0.5 <= hi <= 1 and hi - lo > 0.4  # n=4: wide
    empty = reflection_metrics([])
    assert empty["reflection_rate"] is None and empty["reflection_rate_ci"] is None


# ------------------------------------------------------------------------------------------
# Bootstrap
# ------------------------------------------------------------------------------------------
def test_bootstrap_ci_covers_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 2000):
        values = list(rng.random(n) < 0.3)
        lo, hi = bootstrap_ci(values)
        assert lo <= np.mean(values) <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 4
    assert bootstrap_ci([0.2, 0.5, 0.9], seed=3) == bootstrap_ci([0.2, 0.5, 0.9], seed=3)
    assert bootstrap_ci([]) is None
    assert bootstrap_ci([True] * 4) == (1.0, 1.0)  # all agree: zero width despite n=4 (documented)


# ------------------------------------------------------------------------------------------
# Separation and PCA
# ------------------------------------------------------------------------------------------
def clusters(seed=0, n=30, dim=16, scale=10.0):
    rng = np.random.default_rng(seed)
    kinds = ["harmful", "benign", "general"]
    emb = np.concatenate([scale * np.eye(dim)[i] + rng.normal(size=(n, dim)) for i in range(3)])
    return emb, [k for k in kinds for _ in range(n)]


def naive_silhouette(x, labels, dist):
    labels = np.asarray(labels)
    s = []
    for i in range(len(x)):
        own = (labels == labels[i]) & (np.arange(len(x)) != i)
        a = np.mean([dist(x[i], x[j]) for j in np.flatnonzero(own)])
        b = min(np.mean([dist(x[i], x[j]) for j in np.flatnonzero(labels == k)]) for k in set(labels) - {labels[i]})
        s.append((b - a) / max(a, b))
    return float(np.mean(s))


def test_separation_well_separated_clusters():
    emb, labels = clusters()
    for metric in ("cosine", "euclidean"):
        s = separation(emb, labels, metric=metric)
        assert s["silhouette"] > 0.5, metric
        assert s["harmful_vs_benign"] > 2
        cd = s["centroid_distance"]
        assert cd["harmful"]["harmful"] == pytest.approx(0, abs=1e-9)
        assert cd["harmful"]["benign"] == pytest.approx(cd["benign"]["harmful"])
        assert s["n_per_kind"] == {"benign": 30, "general": 30, "harmful": 30}
    s = separation(emb, labels, metric="euclidean", center=False)
    assert s["silhouette"] == pytest.approx(naive_silhouette(emb, labels, lambda a, b: np.linalg.norm(a - b)))


def test_separation_random_labels_near_zero():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(240, 16))
    labels = rng.choice(["harmful", "benign", "jailbreak"], size=240)
    s = separation(emb, labels)
    assert abs(s["silhouette"]) < 0.1
    assert s["harmful_vs_benign"] < 0.5
    assert separation(emb, ["benign"] * 240)["silhouette"] is None  # one kind: undefined
    assert separation(emb, ["general"] * 240)["harmful_vs_benign"] is None


def test_separation_cosine_matches_naive_on_centred_data():
    emb, labels = clusters(seed=4, n=8, dim=6, scale=3.0)
    x = emb - emb.mean(0)
    cos = lambda a, b: 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))  # noqa: E731
    assert separation(emb, labels)["silhouette"] == pytest.approx(naive_silhouette(x, labels, cos), abs=1e-9)


def test_pca_2d_shape_and_variance_order():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 5)) * np.array([0.5, 5.0, 0.3, 2.0, 0.1])
    p = pca_2d(x)
    assert p.shape == (200, 2)
    assert p[:, 0].var() > p[:, 1].var() > 0
    assert abs(np.corrcoef(p[:, 0], x[:, 1])[0, 1]) > 0.99 and abs(np.corrcoef(p[:, 1], x[:, 3])[0, 1]) > 0.99
    assert np.allclose(p.mean(0), 0, atol=1e-9)
    assert pca_2d(x[:1]).shape == (1, 2) and np.all(pca_2d(x[:1]) == 0)


# ------------------------------------------------------------------------------------------
# Prompt embeddings on the tiny run
# ------------------------------------------------------------------------------------------
PROMPTS = ["hi",
           "In Python, why does s[::-1] give me the characters of s backwards? A tiny example would help.",
           "How do I kill a frozen Python process?"]


@pytest.fixture(scope="module")
def tiny_models(tiny_run, tiny_recipe):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path = tiny_recipe.model.name_or_path
    plain = AutoModelForCausalLM.from_pretrained(path)
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), str(tiny_run / "srpo/adapter"))
    return plain, peft


def test_prompt_embeddings_shape_and_padding_invariance(tiny_models, tokenizer, tiny_recipe):
    from saro_lite.modeling.rendering import make_renderer

    plain, _ = tiny_models
    renderer = make_renderer(tiny_recipe, tokenizer)
    prompts = [renderer.prompt(p) for p in PROMPTS]
    side = tokenizer.padding_side
    alone = np.stack([prompt_embeddings(plain, tokenizer, [p], batch_size=1)[0] for p in prompts])
    assert alone.shape == (3, plain.config.hidden_size) and alone.dtype == np.float32
    assert np.isfinite(alone).all()
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    assert len(set(lengths)) == 3  # the batch really is padded
    for padding_side in ("left", "right"):
        batch = prompt_embeddings(plain, tokenizer, prompts, batch_size=8, padding_side=padding_side)
        assert np.abs(batch - alone).max() < 1e-4, padding_side
    assert tokenizer.padding_side == side  # restored
    assert np.abs(alone[0] - alone[1]).max() > 1e-3  # different prompts, different vectors
    assert prompt_embeddings(plain, tokenizer, []).shape == (0, plain.config.hidden_size)


def test_prompt_embeddings_peft_model_and_modes_restored(tiny_models, tokenizer):
    plain, peft = tiny_models
    peft.train()
    saro = prompt_embeddings(peft, tokenizer, PROMPTS, padding_side="left")
    assert all(m.training for m in peft.modules())  # train mode restored everywhere
    assert np.array_equal(saro, prompt_embeddings(peft, tokenizer, PROMPTS, padding_side="left"))  # no dropout
    with peft.disable_adapter():
        base = prompt_embeddings(peft, tokenizer, PROMPTS)
    assert np.abs(base - prompt_embeddings(plain, tokenizer, PROMPTS)).max() < 1e-4
    assert not plain.training  # from_pretrained loads in eval mode; still eval
    peft.eval()


def test_prompt_embeddings_on_the_4bit_eval_model(tiny_run, tiny_recipe, tokenizer):
    from peft import PeftModel

    from saro_lite.modeling.loading import load_model

    model = PeftModel.from_pretrained(load_model(tiny_recipe, tiny_recipe.model.name_or_path),
                                      str(tiny_run / "srpo/adapter"))
    emb = prompt_embeddings(model, tokenizer, PROMPTS, batch_size=2)
    assert emb.shape == (3, model.config.hidden_size) and np.isfinite(emb).all()


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------
def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_plot_embeddings_writes_png(tmp_path):
    emb, labels = clusters()
    rng = np.random.default_rng(5)
    path = plot_embeddings({"base": (rng.normal(size=emb.shape), labels), "saro": (emb, labels)},
                           tmp_path / "figs/embeddings.png")
    assert_png(path)


def test_plot_reflection_writes_png(tmp_path):
    counts = pattern_counts({"base": [{"reasoning": ["I'll help."]}],
                             "saro": [{"reasoning": ["I'll help.", "Wait, I must decline."]},
                                      {"reasoning": ["Hmm, let me check."]}]})
    assert_png(plot_reflection(counts, tmp_path / "a/reflection.png"))
    none = pattern_counts({"base": [{"reasoning": []}], "saro": [{"reasoning": ["Fine."]}]})
    assert_png(plot_reflection(none, tmp_path / "b/reflection.png"))


def test_embeddings_see_the_tokens_generation_feeds_bos_included(default_recipe, tiny_tok, tmp_path):
    """A template that writes BOS with a tokenizer that adds it (Llama 3, Gemma): Renderer.prompt leaves
    BOS to the tokenizer, so the eval embeddings must tokenize as generation does, BOS included."""
    import copy

    from transformers import AutoModelForCausalLM

    from saro_lite.eval import save_embeddings
    from saro_lite.modeling.generate import generate
    from saro_lite.modeling.rendering import make_renderer
    from saro_lite.modeling.toy import tiny_model_path
    from saro_lite.context import Context

    tok = copy.deepcopy(tiny_tok)
    tok.bos_token, tok.add_bos_token = "<|im_start|>", True  # the chat template opens with it
    tok.update_post_processor()
    bos = tok.bos_token_id
    assert tok("x")["input_ids"][0] == bos
    renderer = make_renderer(default_recipe, tok)
    prompts = [renderer.prompt(p) for p in PROMPTS]
    assert not prompts[0].startswith("<|im_start|>")  # the written BOS is left to the tokenizer
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_path(default_recipe)))
    fed = []  # per forward call: each row's tokens, padding left out

    def record(module, args, kw):
        mask = kw.get("attention_mask")
        fed.append([[t for t, m in zip(ids, ms) if m] for ids, ms in
                    zip(kw["input_ids"].tolist(), mask.tolist() if mask is not None else kw["input_ids"].tolist())])

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        seen = []
        for p in prompts:
            fed.clear()
            generate(model, tok, [p], 1, batch_size=1, loop="transformers")
            seen.append(fed[0][0])  # the prompt's tokens, as generation feeds them
        assert all(ids[0] == bos for ids in seen)
        by_length = [seen[i] for i in np.argsort([len(s) for s in seen], kind="stable")]  # embedding order
        fed.clear()
        emb = prompt_embeddings(model, tok, prompts, batch_size=1)
        assert [x[0] for x in fed] == by_length
        fed.clear()
        rows = [{"id": f"h{i}", "prompt": p, "kind": "harmful"} for i, p in enumerate(PROMPTS)]
        save_embeddings(Context(default_recipe, tmp_path, None), "base", model, tok, renderer, {"harmful": rows})
        assert [row for x in fed for row in x] == by_length
    finally:
        hook.remove()
    saved = np.load(tmp_path / "eval/base/embeddings.npz")["embeddings"]
    assert np.abs(saved - emb).max() < 1e-4
