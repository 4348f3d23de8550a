"""Stage `eval`: every arm answers every eval set; replies are judged and scored.

Arms share ONE loaded base model and switch adapters (`base` = adapters disabled, `rw` = the warmup
adapter, `saro` = the SRPO adapter); LoRA is never merged into a 4-bit base, which would re-quantize
and change the model. Writes eval/<arm>/<set>.jsonl, one row per prompt:
{id, prompt, kind, category, set, response, reasoning, answer, label, refused, attack_success, correct?,
tokens, finished, ...}: the kit's verdict (judges.reply) in the recipe's judge scope, and both scopes'
under label_<scope>, refused_<scope>, attack_success_<scope>. `attack_success` feeds harmful and
jailbreak ASR, `refused` over-refusal; `label` no_answer marks replies that are neither.

Resumable per arm and set: each finished eval/<arm>/<set>.jsonl gets a stamp (.<set>.fingerprint: the
stage's settings, the models it was built on, the set's prompt ids); after Ctrl-C or kill -9 the same
command keeps every stamped, complete file and generates only the rest (--fresh: everything).

    python run_all.py --stages eval --recipe recipes/tiny-cpu.yaml
    python run_all.py --stages eval,report --set eval.limit_per_set=50
"""
from __future__ import annotations

import contextlib

from .errors import UserError
from .fileio import read_jsonl, write_jsonl
from .analysis.scoring import arm_metrics, score_row, scope_text
from .data_sources.eval_sets import load_eval_sets
from .arms import Arms, all_arms, extra_arm
from .modeling.devices import release_memory
from .vocabulary import JUDGE_SCOPES, MAIN_SETS, SAFETY_KINDS, SUMMARY_KEYS


def run(ctx) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .modeling.generate import generate

    r = ctx.recipe
    sets = load_eval_sets(r, ctx.console)
    arms = Arms(ctx, r.eval.arms)
    total = sum(len(v) for v in sets.values()) * len(all_arms(r))
    with Progress(TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=ctx.console) as progress:
        task = progress.add_task("", total=total)
        served = r.eval.generator == "openai"
        runs = [(arm, (lambda a=arm: served_arm(ctx, a)) if served else (lambda a=arm: own_arm(ctx, arms, a)))
                for arm in r.eval.arms]
        runs += [(spec["name"], lambda s=spec: extra_arm(ctx, s)) for spec in r.eval.extra_arms]
        kept = []
        for arm, opener in runs:
            if arm not in r.eval.arms:
                arms.release()  # an extra arm loads its own model: the kit's base goes first
            todo = {name: rows for name, rows in sets.items() if not set_is_finished(ctx, arm, name, rows)}
            embed = arm in r.eval.embedding_arms and not set_is_finished(ctx, arm, EMBEDDINGS, rows=[])
            kept += [f"{arm}/{name}" for name in sets if name not in todo]
            if not todo and not embed:
                progress.advance(task, sum(len(v) for v in sets.values()))
                continue
            with opener() as (model, tok, renderer):
                # One generation call over every set of the arm: length-sorted batches fill up across
                # sets (24-prompt sets in batches of 64 would leave most of each batch empty).
                pooled = [(name, x) for name, rows in todo.items() for x in rows]
                progress.advance(task, sum(len(v) for name, v in sets.items() if name not in todo))
                progress.update(task, description=arm)
                if not pooled:
                    gens = []
                elif model is None:
                    gens = served_generations(ctx, arm, [x["prompt"] for _, x in pooled], progress, task)
                else:
                    gens = generate(model, tok, [renderer.prompt(x["prompt"]) for _, x in pooled],
                                    r.eval.max_new_tokens, r.eval.batch_size, r.eval.do_sample,
                                    r.eval.temperature, r.seed, progress, task, r.model.generation_loop,
                                    budget=reasoning_budget(r, renderer))
                for name in todo:
                    scored = [score_row(x, g.text, g.tokens, g.finished, renderer, tok, name, r.eval.judge_scope)
                              | ({"budget_forced": g.forced} if r.eval.reasoning_budget else {})
                              for (n, x), g in zip(pooled, gens) if n == name]
                    write_jsonl(ctx.path(f"eval/{arm}/{name}.jsonl"), scored)
                    stamp_set(ctx, arm, name, sets[name])
                if embed and model is not None:
                    progress.update(task, description=f"{arm}/embeddings")
                    save_embeddings(ctx, arm, model, tok, renderer, sets)
                    stamp_set(ctx, arm, EMBEDDINGS, [])
            # the loop variables would keep this arm's model alive while the next one loads beside it
            model = tok = renderer = gens = None
            if arm not in r.eval.arms or not arms.lora:
                release_memory()
    if kept:
        ctx.console.print(f"eval: kept {len(kept)} finished arm/set file(s) of an interrupted run (same settings "
                          f"and models): {', '.join(kept[:8])}{' ...' if len(kept) > 8 else ''}")
    arms.release()  # free the arms before a guard model loads
    if r.eval.judge != "refusal":
        judge_safety(ctx, sets)
    for arm in all_arms(r):
        m = arm_metrics({name: read_jsonl(ctx.path(f"eval/{arm}/{name}.jsonl")) for name in sets}, n_boot=0,
                        scope=r.eval.judge_scope)
        ctx.console.print(f"{arm}: " + ", ".join(f"{k} {m[k]:.2f}" for k in SUMMARY_KEYS
                                                 if isinstance(m.get(k), float)))


def reasoning_budget(recipe, renderer):
    """eval.reasoning_budget as the decode loop's Budget (None when off): the close tag is written the way
    the renderer lays out a trained reply, a line break, the tag, a blank line, then the answer."""
    from .modeling.generate import Budget

    if recipe.eval.reasoning_budget is None:
        return None
    return Budget(recipe.eval.reasoning_budget, renderer.open_tag, renderer.close_tag, f"\n{renderer.close_tag}\n\n")


@contextlib.contextmanager
def own_arm(ctx, arms: Arms, arm: str):
    with arms.use(arm) as model:
        yield model, ctx.tokenizer(), ctx.renderer()


def served_generations(ctx, arm: str, prompts: list[str], progress, task) -> list:
    """eval.generator openai: the arm's served model answers through the kit's OpenAI-compatible client
    (retries, backoff); the server applies the chat template, so messages are sent, not rendered text,
    with model.chat_template_kwargs as the request's `chat_template_kwargs` (vLLM passes them to the
    template, as the local path's Renderer does: Llama 3.2's date_string, Qwen3's enable_thinking, ...)."""
    from .modeling.generate import Generation
    from .endpoints.client import OpenAIClient, ChatRequest, EndpointSettings

    e, r = ctx.recipe.eval, ctx.recipe
    settings = EndpointSettings(backend="openai", base_url=e.base_url, model=e.served_models.get(arm, arm),
                               api_key_env=e.api_key_env, temperature=e.temperature if e.do_sample else 0.0,
                               max_tokens=e.max_new_tokens, concurrency=e.concurrency,
                               extra_body={"chat_template_kwargs": dict(r.model.chat_template_kwargs)}
                               if r.model.chat_template_kwargs else None)
    system = [{"role": "system", "content": r.model.system_prompt}] if r.model.system_prompt else []
    results = OpenAIClient(settings).complete(
        [ChatRequest(system + [{"role": "user", "content": p}], sample_index=r.seed) for p in prompts],
        description=f"eval {arm}")
    if progress is not None:
        progress.advance(task, len(prompts))
    failed = [i for i, x in enumerate(results) if not x.ok]
    if failed:
        raise UserError(f"eval.generator openai: {len(failed)} of {len(prompts)} requests for arm '{arm}' failed "
                        f"({results[failed[0]].error}); is model '{settings.model}' served at {e.base_url}?")
    return [Generation(x.text or "", x.tokens, True) for x in results]


@contextlib.contextmanager
def served_arm(ctx, arm: str):
    yield None, ctx.tokenizer(), ctx.renderer()


EMBEDDINGS = "embeddings"  # the stamp name of eval/<arm>/embeddings.npz


def set_stamp(ctx, rows: list[dict]) -> str:
    from .recipe import fingerprint

    return fingerprint({"stage": ctx.fingerprint, "ids": [str(x["id"]) for x in rows]})


def stamp_path(ctx, arm: str, name: str):
    return ctx.path(f"eval/{arm}/.{name}.fingerprint")


def stamp_set(ctx, arm: str, name: str, rows: list[dict]) -> None:
    from .fileio import atomic_write_text

    atomic_write_text(stamp_path(ctx, arm, name), set_stamp(ctx, rows) + "\n")


def set_is_finished(ctx, arm: str, name: str, rows: list[dict]) -> bool:
    """An (arm, set) an interrupted run of the same stage finished: stamped with this stage's fingerprint
    and the set's ids, and its file whole (a torn or short file is generated again). Never under --fresh."""
    stamp = stamp_path(ctx, arm, name)
    if ctx.fresh or not stamp.exists() or stamp.read_text(encoding="utf-8").strip() != set_stamp(ctx, rows):
        return False
    if name == EMBEDDINGS:
        return ctx.path(f"eval/{arm}/embeddings.npz").exists()
    try:
        got = read_jsonl(ctx.path(f"eval/{arm}/{name}.jsonl"))
    except UserError:
        return False
    return [str(x.get("id")) for x in got] == [str(x["id"]) for x in rows]


def save_embeddings(ctx, arm: str, model, tokenizer, renderer, sets: dict[str, list[dict]]) -> None:
    """Figure 3's input: mean-pooled last-layer hidden states of the built-in sets' prompts, as the
    model sees them (chat-rendered), with each prompt's kind -> eval/<arm>/embeddings.npz."""
    import io

    import numpy as np

    from .analysis.measures import prompt_embeddings
    from .fileio import atomic_write_bytes

    rows = [x for name, rs in sets.items() if name in MAIN_SETS for x in rs]
    emb = prompt_embeddings(model, tokenizer, [renderer.prompt(x["prompt"]) for x in rows],
                            batch_size=ctx.recipe.eval.batch_size)
    buf = io.BytesIO()
    np.savez(buf, embeddings=emb, kinds=np.asarray([x.get("kind", "") for x in rows]),
             ids=np.asarray([str(x["id"]) for x in rows]))
    atomic_write_bytes(ctx.path(f"eval/{arm}/embeddings.npz"), buf.getvalue())


def judge_safety(ctx, sets: dict[str, list[dict]]) -> None:
    """eval.judge guard/api: label the harmful and jailbreak replies of every arm safe/unsafe, in both
    judge scopes (unsafe_full, unsafe_answer; `unsafe` and the judge's extras are eval.judge_scope's).
    The refusal labels stay: over-refusal is the refusal judge's."""
    from .judges.safety import annotate_safety, build_judge

    e = ctx.recipe.eval
    judge = build_judge(e.judge, guard_model=e.guard_model, load_in_4bit=e.guard_load_in_4bit,
                        batch_size=e.batch_size, api_settings=e.judge_api or None, console=ctx.console)
    for arm in all_arms(ctx.recipe):
        for name in sets:
            path = ctx.path(f"eval/{arm}/{name}.jsonl")
            rows = read_jsonl(path)
            if any(x.get("kind") in SAFETY_KINDS for x in rows):
                ctx.console.print(f"{e.judge} judge: {arm}/{name} ({len(rows)} replies, scopes "
                                  f"{' and '.join(JUDGE_SCOPES)})")
                by_scope = {sc: annotate_safety([{**x, "judged_text": scope_text(x.get("reasoning") or [],
                                                                                 x.get("answer") or "", sc)}
                                                 for x in rows], judge, answer_key="judged_text")
                            for sc in JUDGE_SCOPES}
                out = []
                for i, x in enumerate(by_scope[e.judge_scope]):
                    x.pop("judged_text")
                    out.append({**x, **{f"unsafe_{sc}": by_scope[sc][i].get("unsafe") for sc in JUDGE_SCOPES}})
                write_jsonl(path, out)
