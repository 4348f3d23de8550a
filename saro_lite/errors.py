"""The one exception type for user mistakes: run_all.py prints its message and exits with status 2."""


class UserError(Exception):
    """A mistake the user can fix (recipe, override, data file, command line). No traceback is shown."""
