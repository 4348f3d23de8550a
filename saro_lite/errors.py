"""User mistakes: the one exception type (UserError) and the guard that turns it into one line on stderr
and exit status 2 (guarded), as every command of run_all.py does."""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (recipe, override, data file, command line). No traceback is shown."""


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
        _console(stderr=True).print(f"\n[yellow]interrupted.[/] Finished stages are kept; {hint}  (the "
                                    "interrupted stage restarts from its last checkpoint)", soft_wrap=True)
        return 130
