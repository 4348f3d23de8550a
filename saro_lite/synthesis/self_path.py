"""The self path: preference pairs and short RIT-D targets from the RW model's own samples (no teacher).

    samples = sample_k(model, tok, renderer, prompts, k=4, max_new_tokens=512, batch_size=8,
                       temperature=0.7, seed=0)
    selected, srs = shortest_rejection_sampling(samples)     # Shortest Rejection Sampling
    rit_d_short = self_rit_d(prompts, selected)              # long-to-short warmup targets
    op = self_op_cot(prompts, samples)                       # OP-COT: shortest pass vs longest fail
    pp = self_pp_cot(model, tok, renderer, prompts, samples) # PP-COT: cut a failing trace, reflect or not
    op, pp, report = run_self_pairs(model, tok, renderer, prompts, k=4, ...)   # all of the above

Definitions (each one is a choice of the kit; the paper's code was not available):

- A sample is *safe for its kind* (`passes`) when the kit's verdict (judges.reply, scope full) finds,
  on a harmful or jailbreak prompt, a refusal (full or partial: ReplyVerdict.refused) and no attack
  success (nothing of the requested help, in the reasoning or the answer: ReplyVerdict.attack_success),
  or no refusal of a benign / borderline / general one
  (neither full nor partial: ReplyVerdict.refused, the over-refusal flag), AND its reasoning is closed
  (there is a non-empty final answer; a reply with no answer is `no_answer`, never a safe refusal).
- A sample *passed* (is eligible as a target or as chosen) when it is safe for its kind, finished with
  the end-of-turn token (a truncated answer would be trained as if complete), has the close tag in its
  text and has at least `min_steps` reasoning steps (default 1: otherwise "shortest" drifts to
  answers with no reasoning at all, which is the opposite of a reasoning-style warmup).
- A sample is a usable *failure* (eligible as rejected) when it finished with a closed answer that the
  verdict finds unsafe for its kind (an attack success on harmful/jailbreak, refused benign/borderline). An
  unfinished or unclosed sample is never a rejected side: rendering it would invent a close tag, an
  answer and an end-of-turn the model never wrote.
- Shortest Rejection Sampling keeps, per prompt, the passing sample with the fewest generated tokens
  (ties: the earliest sample). Its report compares that with the *mean accepted* length, i.e. what plain
  rejection sampling would keep on average: for every prompt with a pass, the mean tokens of its passing
  samples; averaged over those prompts (so prompts with many passes do not weigh more).
  tokens_saved = mean_accepted_tokens - mean_selected_tokens; saved_share = tokens_saved / mean_accepted.
- OP-COT: chosen = the shortest passing sample, rejected = the longest usable failure. A prompt without
  a usable failure is skipped; a much longer *passing* sample is deliberately NOT used as rejected (DPO
  would then teach "safe but long is bad", pushing against the safety signal the pairs exist for).
  With `unanswered_as_rejected`, such a prompt takes instead the longest *unanswered* sample (the close tag
  never written: a loop cut at the token limit, or an end-of-turn inside the reasoning), kept as the raw
  text the model wrote (`rejected.text`; no close tag or answer is invented for it; TRL appends its EOS to
  every side, which is what the model wrote unless the limit cut it).
- PP-COT: a failing trace with >= 2 steps is cut at k (1 <= k < len(steps), seeded per prompt), the
  prefix is steps[:k]; from renderer.pp_prompt(prompt, prefix) the model continues twice: (a) after a
  reflection cue written as the start of step k+1 -> chosen, (b) with no cue -> rejected. The pair is
  kept only when the whole assembled chosen response passes and the rejected one is a usable failure.
  The cue is the only hand-written text; everything else is model output.

Content rule (DEVELOPERS.md): rejected sides are real model outputs and may be unsafe; callers keep
them inside the run folder and never print them untruncated. Nothing in this module prints content.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from ..errors import UserError
from ..judges.reply import judge_reply
from ..data_sources.records import prompt_record

DEFAULT_REFLECTION_CUE = "Wait — let me check this against the safety policy before going on."
REFUSE_KINDS = ("harmful", "jailbreak")
ANSWER_KINDS = ("benign", "borderline", "general")
ORIGIN = "self"


# --------------------------------------------------------------------------------------------
# Samples and the pass rule
# --------------------------------------------------------------------------------------------
@dataclass
class Sample:
    text: str  # generated text (special tokens removed); for PP sides: the whole assembled response
    steps: list  # parsed reasoning steps
    answer: str  # parsed final answer ("" when the reasoning never closed)
    tokens: int  # generated tokens, end-of-turn included
    finished: bool  # ended with the end-of-turn token
    label: str  # judge label
    refused: bool  # judge's refused flag (full or partial refusal: the over-refusal flag)
    passed: bool  # eligible as target / chosen (see module doc)
    safe: bool | None = None  # safe for its kind by the judge, closure included; None -> same as passed
    closed: bool | None = None  # reasoning closed with a non-empty answer; None -> bool(answer)
    index: int = 0  # which of the k samples (seed + index)
    attack_success: bool | None = None  # delivers the requested help (ASR flag); None -> from label
    reasoning_open: bool = False  # the close tag never written

    def __post_init__(self):
        if self.attack_success is None:
            self.attack_success = self.label not in ("full_refusal", "no_answer")
        if self.closed is None:
            self.closed = bool(self.answer.strip())
        if self.safe is None:
            self.safe = self.passed

    @property
    def usable(self) -> bool:
        """Finished with a closed answer: can be rendered as a whole response without inventing text."""
        return bool(self.finished and self.closed)

    @property
    def unanswered(self) -> bool:
        """No answer, the close tag never written: a loop cut at the token limit, or an end-of-turn written
        inside the reasoning (sampled, the shipped SmolLM2 RW ends 168 of 864 replies that way)."""
        return self.reasoning_open and not self.closed

    @property
    def failure(self) -> bool:
        """A usable failure: a whole response the judge finds unsafe (or over-refusing) for its kind."""
        return self.usable and not self.safe

    def to_dict(self) -> dict:
        return asdict(self)


def passes(kind: str, verdict, answer: str | None = None) -> bool:
    """Safe for its kind AND reasoning closed. `verdict` is a judges.reply.ReplyVerdict (label, refused,
    attack_success, reason).

    The kit's metrics and its gold answers: a harmful/jailbreak prompt passes only when the answer
    declines (`refused`, fully or in part) and none of the requested help was delivered (not
    `attack_success`), a benign/borderline/general prompt only when it was not refused (not `refused`: a
    partial refusal still counts as over-refusal).
    A reply with no answer (unclosed reasoning, empty answer) never passes.
    """
    if verdict.label == "no_answer" or (answer is not None and not answer.strip()):
        return False
    if kind in REFUSE_KINDS:
        # declined AND delivered nothing: "not an attack success" alone let a small model's garbled agreement
        # ("A good way to spike someone's drink is to offer a drink that ...", read as delivering nothing on
        # target) become the chosen side; the kit's gold answers to such prompts decline (RIT-D 109/110)
        return bool(verdict.refused) and not verdict.attack_success
    if kind in ANSWER_KINDS:
        return not verdict.refused
    raise UserError(f"selfpath: unknown prompt kind {kind!r} (expected one of "
                    f"{', '.join(REFUSE_KINDS + ANSWER_KINDS)})")


def make_sample(renderer, prompt: dict, text: str, tokens: int, finished: bool, index: int = 0,
                min_steps: int = 1) -> Sample:
    """Parse, judge and classify one generated response (`text` starts after the generation prompt)."""
    steps, answer = renderer.parse(text)
    closed = renderer.close_tag in text and bool(answer.strip())
    verdict = judge_reply(text, prompt["prompt"], "full", renderer.open_tag, renderer.close_tag,
                          prompt.get("base_prompt"))
    safe = closed and passes(prompt["kind"], verdict, answer)
    passed = bool(safe and finished and len(steps) >= min_steps)
    return Sample(text=text, steps=steps, answer=answer, tokens=int(tokens), finished=bool(finished),
                  label=verdict.label, refused=bool(verdict.refused), passed=passed, safe=bool(safe),
                  closed=bool(closed), index=index, attack_success=bool(verdict.attack_success),
                  reasoning_open=renderer.close_tag not in text)


def _check_prompts(prompts: list[dict]) -> None:
    seen = set()
    for p in prompts:
        if p["id"] in seen:
            raise UserError(f"selfpath: duplicate prompt id {p['id']!r}")
        seen.add(p["id"])


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------
def sample_k(model, tokenizer, renderer, prompts: list[dict], k: int, max_new_tokens: int, batch_size: int = 8,
             temperature: float = 0.7, seed: int = 0, progress=None, task=None, min_steps: int = 1,
             loop: str = "kit") -> dict:
    """k sampled responses per prompt: k passes over the prompts, pass i seeded with seed + i (so sample i
    is the same whatever k is). Returns {prompt id: [Sample, ...]} in prompt order, samples in pass order."""
    from ..modeling.generate import generate

    if k < 1:
        raise UserError(f"selfpath: k must be at least 1, got {k}")
    _check_prompts(prompts)
    texts = [renderer.prompt(p["prompt"]) for p in prompts]
    out: dict = {p["id"]: [] for p in prompts}
    for i in range(k):
        gens = generate(model, tokenizer, texts, max_new_tokens, batch_size, do_sample=True,
                        temperature=temperature, seed=seed + i, progress=progress, task=task, loop=loop)
        for p, g in zip(prompts, gens):
            out[p["id"]].append(make_sample(renderer, p, g.text, g.tokens, g.finished, i, min_steps))
    return out


# --------------------------------------------------------------------------------------------
# Shortest Rejection Sampling and the records built from it
# --------------------------------------------------------------------------------------------
def _mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def shortest_passing(samples: list[Sample]) -> Sample | None:
    ok = [s for s in samples if s.passed]
    return min(ok, key=lambda s: s.tokens) if ok else None  # min keeps the earliest on ties


def shortest_rejection_sampling(samples_by_prompt: dict) -> tuple[dict, dict]:
    """Per prompt the shortest passing sample (or None), and the token report (see module doc)."""
    selected = {pid: shortest_passing(ss) for pid, ss in samples_by_prompt.items()}
    per_prompt_mean = [_mean(s.tokens for s in ss if s.passed) for ss in samples_by_prompt.values()]
    per_prompt_mean = [m for m in per_prompt_mean if m is not None]
    chosen = [s.tokens for s in selected.values() if s is not None]
    n_samples = sum(len(ss) for ss in samples_by_prompt.values())
    accepted = sum(s.passed for ss in samples_by_prompt.values() for s in ss)
    mean_acc, mean_sel = _mean(per_prompt_mean), _mean(chosen)
    saved = mean_acc - mean_sel if chosen else None
    report = {"prompts": len(samples_by_prompt), "samples": n_samples, "with_pass": len(chosen),
              "accepted_samples": accepted, "pass_rate": accepted / n_samples if n_samples else None,
              "mean_accepted_tokens": mean_acc, "mean_selected_tokens": mean_sel, "tokens_saved": saved,
              "saved_share": saved / mean_acc if chosen and mean_acc else None}
    return selected, report


def self_rit_d(prompts: list[dict], selected: dict) -> list[dict]:
    """RIT-D records (long-to-short targets) from the selected samples; prompts without one are skipped."""
    rows = []
    for p in prompts:
        s = selected.get(p["id"])
        if s is None:
            continue
        rows.append({**prompt_record(p), "reasoning": list(s.steps), "answer": s.answer, "tokens": s.tokens,
                     "origin": ORIGIN})
    return rows


def self_op_cot(prompts: list[dict], samples_by_prompt: dict, stats: dict | None = None,
                unanswered_as_rejected: bool = False) -> list[dict]:
    """OP-COT: chosen = shortest passing sample, rejected = longest usable failure (ties: earliest).
    Prompts with no pass or no usable failure are skipped (never a longer passing sample as rejected),
    unless `unanswered_as_rejected` and the prompt has an unanswered sample: the longest one is rejected,
    as its raw text (module doc)."""
    rows, no_pass, no_fail, unanswered = [], 0, 0, 0
    for p in prompts:
        ss = samples_by_prompt.get(p["id"], [])
        chosen = shortest_passing(ss)
        fails = [s for s in ss if s.failure]
        if chosen is None:
            no_pass += 1
            continue
        extra = {}
        if fails:
            rejected = max(fails, key=lambda s: s.tokens)  # max keeps the earliest on ties
            side = {"reasoning": list(rejected.steps), "answer": rejected.answer}
        elif unanswered_as_rejected and any(s.unanswered for s in ss):
            rejected = max((s for s in ss if s.unanswered), key=lambda s: s.tokens)
            side = {"reasoning": list(rejected.steps), "answer": "", "text": rejected.text}
            extra = {"rejected_from": "unanswered"}
            unanswered += 1
        else:
            no_fail += 1
            continue
        rows.append({**prompt_record(p),
                     "chosen": {"reasoning": list(chosen.steps), "answer": chosen.answer}, "rejected": side,
                     "chosen_tokens": chosen.tokens, "rejected_tokens": rejected.tokens, "origin": ORIGIN, **extra})
    if stats is not None:
        stats.update({"prompts": len(prompts), "pairs": len(rows), "skipped_no_pass": no_pass,
                      "skipped_no_failure": no_fail, "rejected_unanswered": unanswered})
    return rows


# --------------------------------------------------------------------------------------------
# PP-COT: cut a failing trace at step k, continue with and without a reflection cue
# --------------------------------------------------------------------------------------------
def plan_cuts(prompts: list[dict], samples_by_prompt: dict, seed: int = 0,
              safety_failures_only: bool = True) -> list[dict]:
    """One cut per prompt that has a failing trace with >= 2 steps: {prompt, sample, k, prefix}.

    Trace: a seeded choice among the eligible failing samples; k: seeded in 1 <= k < len(steps), so the
    prefix is never empty and never the whole reasoning. safety_failures_only (default) takes only usable
    failures (closed answers the judge finds unsafe for the kind); False also takes samples that failed
    by running out of tokens or skipping the close tag (their last, possibly cut, step is never in the prefix).
    """
    plans = []
    for p in prompts:
        ss = samples_by_prompt.get(p["id"], [])
        eligible = [s for s in ss if not s.passed and len(s.steps) >= 2
                    and (s.failure if safety_failures_only else True)]
        if not eligible:
            continue
        rng = random.Random(f"{seed}:{p['id']}")  # str seeds hash with sha512: stable across processes
        s = eligible[rng.randrange(len(eligible))]
        k = rng.randint(1, len(s.steps) - 1)
        plans.append({"prompt": p, "sample": s, "k": k, "prefix": list(s.steps[:k])})
    return plans


def assemble(renderer, prefix: list[str], continuation: str) -> str:
    """The whole response text: opening tag, the shared prefix, then the continuation as generated."""
    return f"{renderer.open_tag}\n{renderer.reasoning(prefix)}\n\n{continuation}"


def continuation_parts(renderer, continuation: str) -> tuple[list[str], str]:
    """Steps and answer of a continuation (it has no opening tag; an unclosed one has no answer)."""
    return renderer.parse(f"{renderer.open_tag}\n{continuation}")


def pp_record(plan: dict, chosen: tuple[list[str], str], rejected: tuple[list[str], str], cue: str,
              chosen_tokens: int | None = None, rejected_tokens: int | None = None) -> dict:
    return {**prompt_record(plan["prompt"]), "prefix": list(plan["prefix"]),
            "chosen": {"steps": list(chosen[0]), "answer": chosen[1]},
            "rejected": {"steps": list(rejected[0]), "answer": rejected[1]},
            "k": plan["k"], "origin": ORIGIN, "cue": cue, "trace_index": plan["sample"].index,
            "chosen_tokens": chosen_tokens, "rejected_tokens": rejected_tokens}


def self_pp_cot(model, tokenizer, renderer, prompts: list[dict], samples_by_prompt: dict,
                reflection_cue: str = DEFAULT_REFLECTION_CUE, max_new_tokens: int = 512, batch_size: int = 8,
                temperature: float = 0.7, seed: int = 0, tries: int = 1, safety_failures_only: bool = True,
                fallback_to_original: bool = False, min_steps: int = 1,
                stats: dict | None = None, progress=None, task=None, loop: str = "kit") -> list[dict]:
    """PP-COT records from the model's own failing traces (see module doc).

    tries: rounds of (chosen, rejected) generation for the cuts still without a valid pair (seeds
    seed + 2t and seed + 2t + 1). fallback_to_original: when the cued continuation passes but the uncued
    one does not fail, use the original trace's own tail (steps[k:] and its answer; the model's own
    continuation of that very prefix, a usable failure by construction) as rejected. Off by default.
    """
    from ..modeling.generate import generate

    cue = reflection_cue.strip()
    if not cue or "\n\n" in cue:
        raise UserError("selfpath: the reflection cue must be one non-empty paragraph (no blank lines)")
    _check_prompts(prompts)
    plans = plan_cuts(prompts, samples_by_prompt, seed, safety_failures_only)
    done: dict[int, dict] = {}
    chosen_ok = rejected_ok = attempts = 0
    pending = list(range(len(plans)))
    for t in range(max(1, tries)):
        if not pending:
            break
        base = [renderer.pp_prompt(plans[i]["prompt"]["prompt"], plans[i]["prefix"]) for i in pending]
        if progress is not None and task is not None:
            # the bar counted the k samples per prompt; the two continuations per cut come on top
            current = next(t for t in progress.tasks if t.id == task)
            progress.update(task, total=(current.total or 0) + 2 * len(pending),
                            description="PP-COT continuations")
        gen_c = generate(model, tokenizer, [b + cue for b in base], max_new_tokens, batch_size, do_sample=True,
                         temperature=temperature, seed=seed + 2 * t, progress=progress, task=task, loop=loop)
        gen_r = generate(model, tokenizer, base, max_new_tokens, batch_size, do_sample=True,
                         temperature=temperature, seed=seed + 2 * t + 1, progress=progress, task=task,
                         loop=loop)
        still = []
        for i, gc, gr in zip(pending, gen_c, gen_r):
            plan = plans[i]
            attempts += 1
            c_text, r_text = cue + gc.text, gr.text
            c = make_sample(renderer, plan["prompt"], assemble(renderer, plan["prefix"], c_text), gc.tokens,
                            gc.finished, plan["sample"].index, min_steps)
            r = make_sample(renderer, plan["prompt"], assemble(renderer, plan["prefix"], r_text), gr.tokens,
                            gr.finished, plan["sample"].index, min_steps)
            chosen_ok += c.passed
            rejected_ok += r.failure
            if c.passed and r.failure:
                done[i] = pp_record(plan, continuation_parts(renderer, c_text), continuation_parts(renderer, r_text),
                                    cue, gc.tokens, gr.tokens)
            elif c.passed and fallback_to_original and plan["sample"].failure:
                s = plan["sample"]
                done[i] = {**pp_record(plan, continuation_parts(renderer, c_text),
                                       (list(s.steps[plan["k"]:]), s.answer), cue, gc.tokens, None),
                           "rejected_from": "original"}
            else:
                still.append(i)
        pending = still
    if stats is not None:
        stats.update({"cuts": len(plans), "pairs": len(done), "attempts": attempts,
                      "chosen_passed": chosen_ok, "rejected_failed": rejected_ok})
    return [done[i] for i in sorted(done)]


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------
def run_self_pairs(model, tokenizer, renderer, prompts: list[dict], k: int = 4, max_new_tokens: int = 512,
                   batch_size: int = 8, temperature: float = 0.7, seed: int = 0,
                   reflection_cue: str = DEFAULT_REFLECTION_CUE, use_op: bool = True, use_pp: bool = True,
                   pp_tries: int = 1, samples_by_prompt: dict | None = None, min_steps: int = 1,
                   progress=None, task=None, loop: str = "kit",
                   unanswered_as_rejected: bool = False) -> tuple[list[dict], list[dict], dict]:
    """Sample k per prompt (unless `samples_by_prompt` is given, e.g. read back from a run folder), then
    OP-COT and PP-COT. Returns (op, pp, report); report = {settings, srs, op, pp} (counts only, no text)
    and report["samples"], the samples themselves by prompt id (the caller keeps them in the run folder)."""
    if samples_by_prompt is None:
        samples_by_prompt = sample_k(model, tokenizer, renderer, prompts, k, max_new_tokens, batch_size,
                                     temperature, seed, progress, task, min_steps, loop)
    _, srs = shortest_rejection_sampling(samples_by_prompt)
    every = [s for ss in samples_by_prompt.values() for s in ss]
    srs["unanswered_samples"] = sum(s.unanswered for s in every)  # the close tag never written
    op_stats: dict = {}
    pp_stats: dict = {}
    op = self_op_cot(prompts, samples_by_prompt, op_stats, unanswered_as_rejected) if use_op else []
    pp = (self_pp_cot(model, tokenizer, renderer, prompts, samples_by_prompt, reflection_cue, max_new_tokens,
                      batch_size, temperature, seed, pp_tries, min_steps=min_steps,
                      stats=pp_stats, progress=progress, task=task, loop=loop) if use_pp else [])
    report = {"settings": {"k": k, "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed,
                           "reflection_cue": reflection_cue, "min_steps": min_steps,
                           "unanswered_as_rejected": unanswered_as_rejected},
              "srs": srs, "op": op_stats, "pp": pp_stats, "samples": samples_by_prompt}
    return op, pp, report
