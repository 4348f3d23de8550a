"""`python run_all.py export`: the trained adapter with a model card, or a standalone merged model.

    python run_all.py export --run runs/tiny-cpu --output exported/saro-adapter
    python run_all.py export --run runs/tiny-cpu --output exported/saro-merged --merge
    python run_all.py export --run runs/smollm2-135m-instruct --output exported/saro-gguf --gguf [--gguf-type q8_0]

A full fine-tune (`model.finetune: full`) is exported whole, with or without --merge (nothing to merge).
For LoRA, --merge reloads the base in bf16 (fp32 on CPU), never in 4-bit: merging LoRA into a 4-bit base
re-quantizes and changes the model. The merged folder holds the weights, the tokenizer and its chat
template, and loads with `AutoModelForCausalLM.from_pretrained`.

--gguf merges the same way, converts the merged model with llama.cpp's own converter into one GGUF file
(f16, q8_0 or bf16) that carries the chat template and the end-of-turn token, checks the file by loading
it back (modeling/gguf_export.py says how and why), and writes an Ollama Modelfile beside it and a "Run it
in llama.cpp / Ollama" section into the model card. With --merge as well, the merged transformers files
stay in the folder too.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import UserError

CAVEATS = """## Caveats
- SaRO's hyperparameters, data sizes and teacher prompts are not public; this model was trained with
  saro-lite's own defaults (see the recipe) and its starter data or the data named below.
- Safety numbers come from an automatic judge on a limited eval set; they are not a safety guarantee.
  Evaluate on your own data (and with a guard model) before any deployment.
- The model writes its reasoning inside the reasoning tags before the answer; strip it before showing
  answers to users if you do not want it shown."""


def base_model(ctx) -> str:
    """The base model as the user knows it: its hub id, the folder they gave, or the kit's tiny toy
    base, never the kit's resolved cache path."""
    from ..modeling.loading import is_local
    from ..recipe import resolved_origin

    r = ctx.recipe
    given = None
    if ctx.path("recipe.resolved.yaml").exists():
        given = resolved_origin(ctx.path("recipe.resolved.yaml"))["model"]
    if given is None and ctx.path("report.json").exists():  # runs made before the header recorded it
        given = json.loads(ctx.path("report.json").read_text()).get("model")
    given = given or r.model.name_or_path
    if given == "tiny" or Path(given).name.startswith("tiny-") and Path(given).parent.name == "models":
        steps = r.model.tiny.pretrain_steps
        made = f"builds and pretrains ({steps} steps) offline" if steps else "builds offline with random weights"
        return (f"the kit's tiny toy base (`model.name_or_path: tiny`: a small Llama that saro-lite {made}; "
                "not on the Hugging Face Hub)")
    if is_local(given) or given.startswith((".", "/", "~")):
        return f"`{given}` (a local folder)"
    return f"`{given}` (Hugging Face Hub" + (f", revision `{r.model.revision}`)" if r.model.revision else ")")


def recipe_name(ctx) -> str:
    from ..recipe import resolved_origin

    resolved = ctx.path("recipe.resolved.yaml")
    name = resolved_origin(resolved)["recipe"] if resolved.exists() else None
    return name or ctx.run_dir.name


def what_was_exported(ctx, merged_dtype: str | None, gguf: dict | None = None) -> str:
    """What the folder holds, by what was trained: a full fine-tune is a whole model (nothing to
    merge); LoRA is an adapter, or merged into the base reloaded in `merged_dtype`."""
    as_gguf = ""
    if gguf:
        as_gguf = f"; as GGUF ({gguf['type']}) for llama.cpp and Ollama" + \
            ("" if gguf.get("transformers_files") else ", the GGUF only (export --merge also keeps the transformers files)")
    if ctx.recipe.model.finetune == "full":
        return "full fine-tune: every weight was trained; a standalone model, no adapter, nothing to merge" + as_gguf
    if merged_dtype:
        return (f"LoRA adapter merged into the base, reloaded in {merged_dtype} (never in 4-bit); a standalone "
                f"model{as_gguf}")
    return "PEFT LoRA adapter: load it on the base model above"


def gguf_section(gguf: dict) -> list[str]:
    """The model card's "Run it in llama.cpp / Ollama": the exact commands and the round trip's figures."""
    name, system = gguf["gguf_file"], gguf.get("system")
    # llama.cpp renders the GGUF's template, which writes its own default system turn; a recipe's
    # system prompt has to be given
    sys_flag = ' -sys "$(cat system.txt)"' if system and gguf.get("system_from_recipe") else ""
    lines = ["## Run it in llama.cpp / Ollama", "",
             f"`{name}` ({gguf['type']}, {gguf['size_bytes'] / 1e6:.1f} MB) was written by llama.cpp's "
             f"`convert_hf_to_gguf.py` ({gguf['converter']}) from the merged model. It carries the chat template "
             f"and the end-of-turn token `{gguf['end_of_turn']}`; `Modelfile` beside it is for Ollama.", "",
             "```bash",
             f"llama-cli -m {name} --jinja --temp 0{sys_flag}      # chat in the terminal (greedy, as evaluated)",
             f"llama-server -m {name} --jinja                # OpenAI-compatible server on http://127.0.0.1:8080",
             "ollama create saro -f Modelfile && ollama run saro",
             "```", ""]
    if system:
        lines += [f"System turn ({gguf['system_origin']}); `system.txt` holds it and the Modelfile sets it (SYSTEM), "
                  "since Ollama renders its own form of the template:", "", "> " + system.replace("\n", "\n> "), ""]
    if gguf.get("template_kwargs"):
        kw = ", ".join(f"{k}={v!r}" for k, v in gguf["template_kwargs"].items())
        lines += [f"The kit rendered the chat template with {kw} (`model.chat_template_kwargs`); llama.cpp and "
                  "Ollama render it with their own values (e.g. today's date).", ""]
    lines += [f"Round trip, checked by the export (transformers reloads the file with `gguf_file=`): {gguf['summary']}.",
              f"Stop tokens: {', '.join(f'`{s}`' for s in gguf['stops'])}. The reply starts with the reasoning "
              "inside the reasoning tags; the answer follows the closing tag.", ""]
    return lines


def model_card(ctx, arm: str, merged_dtype: str | None = None, gguf: dict | None = None) -> str:
    r = ctx.recipe
    lines = [f"# saro-lite {arm} — {recipe_name(ctx)}", "",
             f"Trained with saro-lite (a SaRO reproduction kit): reasoning-style warmup "
             f"then SRPO (DPO on reasoning pairs).", "",
             f"- base model: {base_model(ctx)}",
             f"- arm: `{arm}` ({what_was_exported(ctx, merged_dtype, gguf)})",
             f"- recipe: `{recipe_name(ctx)}`; every setting used in `recipe.resolved.yaml`",
             f"- data: `data.source: {r.data.source}`, `pairs.source: {r.pairs.source}`",
             f"- reasoning tags: `{r.model.reasoning_open}` … `{r.model.reasoning_close}`", ""]
    report = ctx.path("report.json")
    if report.exists():
        from ..report import MAIN_METRICS, fmt

        rep = json.loads(report.read_text())
        lines += ["## Evaluation (from the run's report.json)", "",
                  "| arm | " + " | ".join(label for _, label in MAIN_METRICS) + " |",
                  "|---|" + "---|" * len(MAIN_METRICS)]
        for a, m in rep["arms"].items():
            lines.append(f"| {a} | " + " | ".join(fmt(m.get(k)) for k, _ in MAIN_METRICS) + " |")
        judge = rep.get("judge", {})
        lines += ["", f"Judge: {judge.get('refusal', 'refusal judge')}, scope {judge.get('scope', 'full')}. "
                      + judge.get("verdict", ""), ""]
    if gguf:
        lines += gguf_section(gguf)
    return "\n".join(lines + [CAVEATS, ""])


def export(ctx, arm: str, output: Path, merge: bool, console, gguf: str | None = None) -> Path:
    """gguf: None, or the GGUF type (f16, q8_0, bf16) to convert the merged model to."""
    from .chat import check_arm
    from ..vocabulary import ARM_STAGES
    from ..fileio import atomic_write_text, set_open_permissions
    from ..recipe import artifact

    started = time.perf_counter()
    if arm == "base":
        raise UserError("--arm base: the base model needs no export; use it from the hub or its folder")
    check_arm(ctx, arm)
    src = ctx.path(artifact(ctx.recipe, ARM_STAGES[arm]))
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output {output}: folder exists and is not empty")
    converter = None
    if gguf:  # before any merging: offline without the converter, or a model it cannot convert, fails at once
        from ..modeling.gguf_export import GGUF_TYPES, check_supported, converter_dir
        from ..recipe import cache_dir

        if gguf not in GGUF_TYPES:
            raise UserError(f"--gguf-type {gguf}: one of {', '.join(GGUF_TYPES)}")
        converter = converter_dir(cache_dir(ctx.recipe), console)
        check_supported(converter, Path(ctx.model_path) if Path(ctx.model_path).is_dir() else src)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    full = ctx.recipe.model.finetune == "full"
    # the transformers folder the converter reads: the output itself when it keeps the merged model
    keep_hf = merge or full or not gguf
    hf_dir = tmp if keep_hf else Path(tempfile.mkdtemp(prefix=f".{output.name}.merged.", dir=output.parent))
    merged_dtype = None
    facts = None
    try:
        if (merge or gguf) and not full:
            merged_dtype = merge_adapter(ctx, src, hf_dir)
        else:
            shutil.copytree(src, hf_dir, dirs_exist_ok=True)
            ctx.tokenizer().save_pretrained(hf_dir)
        if gguf:
            facts = write_gguf(ctx, arm, converter, hf_dir, tmp, gguf, output, console)
            facts["transformers_files"] = keep_hf
        shutil.copy(ctx.path("recipe.resolved.yaml"), tmp / "recipe.resolved.yaml")
        atomic_write_text(tmp / "README.md", model_card(ctx, arm, merged_dtype, facts))
        set_open_permissions(tmp)  # mkdtemp and safetensors make owner-only folders and files
        if output.exists():
            output.rmdir()
        tmp.replace(output)
    finally:
        for d in {tmp, hf_dir}:
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
    if full:
        what = "full fine-tuned model" + ("; --merge: nothing to merge, every weight was trained" if merge else "")
    else:
        what = f"LoRA merged into the base in {merged_dtype}" if merged_dtype else "LoRA adapter"
    if facts:
        what += ("" if keep_hf else ", the GGUF only") + \
            f"; GGUF {facts['type']}: {output / facts['gguf_file']} ({facts['size_bytes'] / 1e6:.1f} MB) and Modelfile"
    console.print(f"exported {arm} ({what}) to {output} in {time.perf_counter() - started:.1f} s")
    return output


def write_gguf(ctx, arm: str, converter: Path, hf_dir: Path, out_dir: Path, outtype: str, output: Path,
               console) -> dict:
    """Convert the merged folder into `out_dir/<name>.gguf`, check it by loading it back, and write the
    Modelfile (and system.txt when the model was trained with a system turn). Returns the facts the model
    card states."""
    from ..fileio import atomic_write_text
    from ..modeling.gguf_export import (convert, model_eos_ids, modelfile, round_trip, stop_tokens, summary,
                                        template_default_system)
    from ..wheels import LLAMA_CPP_SDIST

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{recipe_name(ctx)}-{arm}-{outtype}") + ".gguf"
    console.print(f"converting to GGUF ({outtype}) with llama.cpp's convert_hf_to_gguf.py ({LLAMA_CPP_SDIST[0]})")
    conv = convert(converter, hf_dir, out_dir / name, outtype, f"saro-lite {arm} {recipe_name(ctx)}",
                   log_path=output.parent / f"{output.name}.convert.log")
    console.print(f"wrote {name}: {conv.size_bytes / 1e6:.1f} MB in {conv.seconds:.1f} s; loading it back to check it")
    tok, renderer = ctx.tokenizer(), ctx.renderer()
    kwargs = dict(ctx.recipe.model.chat_template_kwargs)
    started = time.perf_counter()
    check = round_trip(out_dir / name, hf_dir, tok, renderer, outtype, kwargs)
    check_seconds = time.perf_counter() - started
    console.print(f"round trip ({check_seconds:.1f} s): {summary(check)}")
    system = ctx.recipe.model.system_prompt
    from_recipe = bool(system)
    origin = "the recipe's model.system_prompt; the model was trained with it"
    if not system:
        system = template_default_system(tok, **kwargs)
        origin = "the one the chat template writes when a conversation has none; the model was trained with it"
    stops = stop_tokens(tok, renderer.end_of_turn, model_eos_ids(ctx.model_path))
    atomic_write_text(out_dir / "Modelfile", modelfile(name, stops, system, origin, f"saro-lite {arm} — {recipe_name(ctx)}"))
    if system:
        atomic_write_text(out_dir / "system.txt", system + "\n")
    facts = {**check, "size_bytes": conv.size_bytes, "convert_seconds": round(conv.seconds, 2),
             "check_seconds": round(check_seconds, 2),
             "converter": LLAMA_CPP_SDIST[0], "stops": stops, "system": system, "system_origin": origin if system else None, "system_from_recipe": from_recipe,
             "template_kwargs": kwargs, "summary": summary(check)}
    atomic_write_text(out_dir / "gguf_roundtrip.json", json.dumps(facts, indent=1, ensure_ascii=False) + "\n")
    return facts


def merge_adapter(ctx, adapter_dir: Path, out: Path) -> str:
    """Merge the LoRA adapter into the base reloaded in bf16 (fp16 on GPUs without bf16, fp32 on
    CPU); returns the dtype's name."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ..modeling.devices import auto_dtype

    dtype = auto_dtype()
    base = AutoModelForCausalLM.from_pretrained(ctx.model_path, dtype=dtype,
                                                trust_remote_code=ctx.recipe.model.trust_remote_code)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tok = ctx.tokenizer()
    merged.generation_config.eos_token_id = tok.eos_token_id  # stop at the end of the turn
    merged.save_pretrained(out)
    tok.save_pretrained(out)
    return str(dtype).replace("torch.", "")


def cli(argv: list[str]) -> int:
    from ..errors import guarded

    p = argparse.ArgumentParser(prog="run_all.py export", description="export a trained arm")
    p.add_argument("--run", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--arm", default="saro")
    p.add_argument("--merge", action="store_true", help="LoRA runs: merge into the base reloaded in bf16 (standalone "
                                                        "model); a full fine-tune is exported whole either way")
    p.add_argument("--gguf", action="store_true", help="also (LoRA: merge, then) convert to one GGUF file for "
                                                       "llama.cpp / Ollama with llama.cpp's converter, checked by "
                                                       "loading it back; writes an Ollama Modelfile beside it")
    p.add_argument("--gguf-type", default=None, help="f16 (default), q8_0 or bf16")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)

    def run(a, console):
        from .chat import open_run
        from ..pipeline import quiet_libraries

        if a.gguf_type and not a.gguf:
            raise UserError("--gguf-type: add --gguf (the type of the GGUF file it writes)")
        quiet_libraries()
        export(open_run(a.run), a.arm, Path(a.output), a.merge, console, gguf=(a.gguf_type or "f16") if a.gguf else None)
        return 0

    return guarded(run, args, args.debug)
