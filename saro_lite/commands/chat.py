"""`python run_all.py chat`: talk to a trained arm in the terminal, or get one reply for scripts.

    python run_all.py chat --run runs/tiny-cpu                       # interactive, the SaRO arm
    python run_all.py chat --run runs/tiny-cpu --arm rw --show-reasoning
    python run_all.py chat --run runs/tiny-cpu --prompt "How do I kill a Python process?"

Each message is answered on its own (single turn), exactly as the model was trained and evaluated.
The reasoning is folded by default; /reasoning toggles it, /reset restores the start, /help lists the
commands, /quit leaves.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError


def open_run(run: str):
    """The recipe a finished run used, and a stage Context on its folder."""
    from rich.console import Console

    from ..context import Context
    from ..recipe import load_recipe

    run_dir = Path(run)
    resolved = run_dir / "recipe.resolved.yaml"
    if not resolved.exists():
        raise UserError(f"--run {run}: no recipe.resolved.yaml there; point --run at a run folder (runs/<recipe>)")
    recipe = load_recipe(resolved)
    return Context(recipe, run_dir, Console(stderr=True), model_path=recipe.model.name_or_path)


def check_arm(ctx, arm: str) -> None:
    from ..vocabulary import ARM_STAGES
    from ..recipe import artifact

    if arm == "base":
        return
    if arm not in ARM_STAGES:
        raise UserError(f"--arm: unknown arm '{arm}' (known: base, {', '.join(ARM_STAGES)})")
    path = ctx.path(artifact(ctx.recipe, ARM_STAGES[arm]))
    if not path.exists():
        raise UserError(f"--arm {arm}: {path} does not exist; train it first (python run_all.py --stages ...)")


def reply(model, ctx, text: str, max_new_tokens: int) -> tuple[list[str], str, bool]:
    from ..modeling.generate import generate

    g = generate(model, ctx.tokenizer(), [ctx.renderer().prompt(text)], max_new_tokens, batch_size=1,
                 seed=ctx.recipe.seed, loop=ctx.recipe.model.generation_loop)[0]
    steps, answer = ctx.renderer().parse(g.text)
    return steps, answer, g.finished


def render(console, steps: list[str], answer: str, show_reasoning: bool) -> None:
    from rich.markdown import Markdown
    from rich.panel import Panel

    if steps:
        if show_reasoning:
            console.print(Panel("\n\n".join(steps), title="reasoning", border_style="dim"))
        else:
            console.print(f"[dim]▸ reasoning folded ({len(steps)} steps) — /reasoning to show[/]")
    console.print(Markdown(answer or "_(no final answer: the reasoning did not finish)_"))


CHAT_HELP = ("/reasoning shows or folds the reasoning; /reset restores the starting settings; /help lists "
             "these; /quit (or Ctrl-D) leaves. Anything else is sent to the model as one prompt.")


def cli(argv: list[str]) -> int:
    from ..errors import guarded

    p = argparse.ArgumentParser(prog="run_all.py chat", description="chat with a trained arm")
    p.add_argument("--run", required=True, help="a run folder, e.g. runs/tiny-cpu")
    p.add_argument("--arm", default="saro", help="saro (default), rw, base, safety_sft or dpo")
    p.add_argument("--prompt", default=None, help="answer this one prompt and exit (stdout)")
    p.add_argument("--show-reasoning", action="store_true", help="show the reasoning (folded by default)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)

    def run(a, console):
        from ..arms import Arms
        from ..pipeline import quiet_libraries

        ctx = open_run(a.run)
        check_arm(ctx, a.arm)
        quiet_libraries()
        budget = a.max_new_tokens or ctx.recipe.eval.max_new_tokens
        with Arms(ctx, [a.arm]).use(a.arm) as model:
            if a.prompt is not None:
                steps, answer, _ = reply(model, ctx, a.prompt, budget)
                if a.show_reasoning and steps:
                    print("\n\n".join(steps) + "\n---")
                print(answer)
                return 0
            show = a.show_reasoning
            console.print(f"[bold]saro-lite chat[/] — arm [cyan]{a.arm}[/] of {a.run}. /help lists the commands.")
            while True:
                try:
                    text = console.input("[bold green]you>[/] ").strip()
                except EOFError:
                    return 0
                if text in ("/quit", "/exit"):
                    return 0
                if text == "/reasoning":
                    show = not show
                    console.print(f"[dim]reasoning {'shown' if show else 'folded'}[/]")
                    continue
                if text == "/reset":
                    show = a.show_reasoning
                    console.print("[dim]reset: reasoning back to how it started; every message is answered on "
                                  "its own, so there is no history to clear[/]")
                    continue
                if text.startswith("/") and " " not in text:  # a command, never a prompt for the model
                    console.print(("" if text == "/help" else f"unknown command {text}. ") + CHAT_HELP)
                    continue
                if text:
                    steps, answer, _ = reply(model, ctx, text, budget)
                    render(console, steps, answer, show)

    return guarded(run, args, args.debug)
