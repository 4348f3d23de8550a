"""User mistakes: the one exception type (UserError) and the guard that turns it into one line on stderr
and exit status 2 (guarded), as every command of run_all.py does."""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (recipe, override, data file, command line). No traceback is shown."""


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_variable() -> str | None:
    """The environment variable that puts the Hugging Face libraries offline, as it is set (huggingface_hub
    reads 1/true/yes/on, any case, as set), or None when neither is."""
    import os

    for name in OFFLINE_VARIABLES:
        value = os.environ.get(name, "")
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return f"{name}={value}"
    return None


def hub_error(key: str, name: str, err: Exception, *, dataset: bool = False, licence_url: str | None = None,
              otherwise: str = "") -> UserError:
    """The one line for anything the Hub could not give (a model, a dataset, a guard model): why (offline,
    unreachable, gated), the `hf download` command that fetches it once, and the local alternative."""
    offline = offline_variable()
    if offline:
        why = f"{offline} is set"
    else:
        why = "the Hub could not be reached or the " + ("dataset" if dataset else "model") + " is gated"
    licence = f"accept the licence on {licence_url}, " if licence_url else ""
    download = (f"`hf download --repo-type dataset {name} --local-dir DIR`" if dataset else f"`hf download {name}`")
    return UserError(f"{key}: cannot load '{name}' from the Hub ({why}): {licence}download it once with {download} "
                     f"(after `hf auth login` for gated ones; `huggingface-cli download` on older hub clients)"
                     f"{'; or ' + otherwise if otherwise else ''}. [{err.__class__.__name__}]")


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def guarded(fn, args, debug: bool, resume: str | None = None) -> int:
    """Run fn; user mistakes -> one line on stderr and exit status 2; Ctrl-C -> how to resume
    (`resume`: the exact command, see resume_command)."""
    console = _console()
    try:
        return fn(args, console)
    except UserError as e:
        if debug:
            raise
        _console(stderr=True).print(f"[bold red]error:[/] {e}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        from rich.markup import escape

        if resume is None:
            hint = "run the same command again to resume"
        elif getattr(args, "fresh", False):
            hint = f"to resume, run it again without --fresh (--fresh would start over): {escape(resume)}"
        else:
            hint = f"run the same command again to resume: {escape(resume)}"
        _console(stderr=True).print(f"\n[yellow]interrupted.[/] Finished stages are kept; {hint}  (a training "
                                    "stage resumes from its last checkpoint, eval keeps the arms and sets it "
                                    "finished)", soft_wrap=True)
        return 130
