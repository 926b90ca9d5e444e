"""How blockwise workers start: in this process, as local processes, or through a command template.

daisy 2 starts every worker as a local subprocess and hands it the process function through a
pipe; it has no hook for starting workers elsewhere. A cluster needs exactly that: ``srun``,
``bsub``, ``sbatch --wait``, a container, each a shell command around the worker's own command.
So a *worker command template* (a string containing ``{command}``, e.g. ``"srun --mem=8G
{command}"``) turns daisy's local worker into a launcher: the local worker runs the template with
the real worker's command substituted and waits for it (`run_through_template`). The real worker
connects back to daisy's scheduler through the ``DAISY_CONTEXT`` environment variable, which the
template's child inherits like ``PYTHONPATH`` (so it imports this incasem).

Paths are data, never code, whatever the template (`template_words`): the template is split into
words by POSIX shell rules once, when it is checked, and run without a shell; ``{command}`` must
be a word of its own and becomes the words ``python -m MODULE`` only. The worker's arguments (the
paths of its files, which contain the user's container path) travel in the environment as JSON
(``INCASEM_WORKER_ARGS``, read by `worker_arguments`), so no program in the template ever sees
them on its command line. A template that hands ``{command}`` to a shell as its script
(``bash -c '{command}'``) is refused; ``bash -c '...; exec "$@"' bash {command}`` runs a shell
prologue with the worker as arguments.

Every worker is a module run as ``python -m MODULE ARGS`` (`ModuleWorker`): in daisy's own
worker process, or through the template; that small launcher is all daisy serialises. Prediction's
workers are ``python -m incasem.predict.worker SPEC.json``; every other blockwise command's are
``python -m incasem.blockwise.worker JOB_JSON``, where the JSON names the block function by its
import path (``module:QualName``) and holds its fields (`incasem.blockwise.worker.WorkerTask`). No
pickle crosses a process boundary, and a worker imports by name only from `worker_packages`
(``incasem``, plus any listed in ``INCASEM_WORKER_PACKAGES``): `import_named` refuses every other
module in one line before importing it.

The command line sets the template for a whole command with `worker_command_scope` (every
blockwise command takes ``--worker-command``); a library caller passes it to `run_in_blocks`.
This module imports nothing heavy, so ``incasem --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incasem.errors import IncasemError

logger = logging.getLogger(__name__)

#: The placeholder a template must contain.
PLACEHOLDER = "{command}"
#: Environment variable that carries a worker's arguments (a JSON list) through a template.
ARGS_VARIABLE = "INCASEM_WORKER_ARGS"
#: Top-level packages whose block functions a worker may import by name (`import_named`).
WORKER_PACKAGES = ("incasem",)
#: Environment variable naming further such packages, comma-separated.
PACKAGES_VARIABLE = "INCASEM_WORKER_PACKAGES"
#: Programs that run their ``-c`` argument as shell code.
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh"})
#: A safe template that runs a shell prologue before the worker.
SAFE_SHELL_EXAMPLE = "bash -c 'module load cuda; exec \"$@\"' bash {command}"

_TEMPLATE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "incasem_worker_command", default=None
)


def check_template(template: str | None, option: str = "--worker-command") -> None:
    """Raise `IncasemError` when ``template`` is given but is not a safe template
    (`template_words`)."""
    if template is not None:
        template_words(template, option)


def template_words(template: str, option: str = "--worker-command") -> list[str]:
    """The words of ``template`` (POSIX shell rules), run later without a shell.

    Raises `IncasemError` (one line, naming ``option`` and the template) when the template
    cannot be split, lacks ``{command}`` as a word of its own, holds it more than once or inside
    another word (``'echo; {command}'``, which only a shell would run), or hands it to a shell as
    its script (``bash -c {command}``).
    """
    try:
        words = shlex.split(template)
    except ValueError as error:
        raise IncasemError(f"{option} {template!r} cannot be split into words: {error}") from None
    if PLACEHOLDER not in template:
        raise IncasemError(
            f"{option} {template!r} must contain '{PLACEHOLDER}', e.g. "
            f"'srun --mem=8G {PLACEHOLDER}'"
        )
    if words.count(PLACEHOLDER) != 1 or sum(PLACEHOLDER in w for w in words) != 1:
        raise IncasemError(
            f"{option} {template!r} must contain '{PLACEHOLDER}' once, as a word of its own (it "
            f"becomes the worker's command words, never shell code), e.g. "
            f"{SAFE_SHELL_EXAMPLE!r}"
        )
    index = words.index(PLACEHOLDER)
    before = words[index - 1] if index else ""
    runs_shell = any(Path(word).name in _SHELLS for word in words[: index - 1])
    if runs_shell and before.startswith("-") and not before.startswith("--") and "c" in before:
        raise IncasemError(
            f"{option} {template!r} hands the worker to a shell as its script "
            f"({before} {PLACEHOLDER}); pass it as arguments instead, e.g. "
            f"{SAFE_SHELL_EXAMPLE!r}"
        )
    return words


@contextlib.contextmanager
def worker_command_scope(template: str | None) -> Iterator[None]:
    """Within the block, blockwise jobs that are not given a template use ``template``."""
    check_template(template)
    token = _TEMPLATE.set(template)
    try:
        yield
    finally:
        _TEMPLATE.reset(token)


def current_template() -> str | None:
    """The template set by the innermost `worker_command_scope`, or None."""
    return _TEMPLATE.get()


def run_through_template(module: str, args: Sequence[str], template: str) -> None:
    """Run ``python -m module`` through ``template`` and wait; ``args`` travel in the environment.

    The template's words (`template_words`) are run without a shell, ``{command}`` replaced by
    the words ``python -m module``; ``args`` go to the worker as JSON in ``INCASEM_WORKER_ARGS``
    (`worker_arguments`), so no path reaches a command line. Runs in a daisy worker process,
    whose standard output is the worker's log file: the command line is logged there. The child
    gets this process's environment plus this incasem on ``PYTHONPATH``. A non-zero exit becomes
    ``SystemExit`` with that code: daisy then counts the worker as failed and restarts it.
    """
    if not logging.getLogger().handlers:  # a fresh worker process: log to its .out file
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env[ARGS_VARIABLE] = json.dumps(list(args))
    words = template_words(template)
    index = words.index(PLACEHOLDER)
    argv = [*words[:index], sys.executable, "-m", module, *words[index + 1 :]]
    logger.info("launching worker: %s (arguments in %s)", shlex.join(argv), ARGS_VARIABLE)
    try:
        returncode = subprocess.run(argv, env=env).returncode
    except OSError as error:
        logger.error("cannot start worker %r: %s", argv[0], error)
        returncode = 127
    if returncode != 0:
        raise SystemExit(returncode)


def worker_arguments(argv: Sequence[str] | None) -> list[str]:
    """A worker module's arguments: ``argv`` (default ``sys.argv[1:]``), or when that is empty
    the JSON list `run_through_template` put in ``INCASEM_WORKER_ARGS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv or ARGS_VARIABLE not in os.environ:
        return argv
    return [str(arg) for arg in json.loads(os.environ[ARGS_VARIABLE])]


def worker_packages() -> tuple[str, ...]:
    """The top-level packages whose classes and functions a worker may import by name:
    ``incasem``, and those listed (comma-separated) in ``INCASEM_WORKER_PACKAGES`` of the
    environment the driver and its workers share (the test suite adds its own)."""
    extra = os.environ.get(PACKAGES_VARIABLE, "")
    return (*WORKER_PACKAGES, *(name.strip() for name in extra.split(",") if name.strip()))


def import_path(obj: Any) -> str:
    """``module:QualName`` of a module-level class or function, or of an instance's class,
    by which a worker imports it again (`import_named`).

    Raises `IncasemError` (one line) when it cannot be imported by that name (defined in
    ``__main__`` or inside a function) or lies outside `worker_packages`.
    """
    target = obj if isinstance(obj, type) or inspect.isroutine(obj) else type(obj)
    path = f"{target.__module__}:{target.__qualname__}"
    if target.__module__ == "__main__" or "<" in target.__qualname__:
        raise IncasemError(
            f"block function {path}: a worker imports it by name, so it must be defined at "
            "the top level of an importable module (or run it with num_workers=0)"
        )
    _check_allowed(path)
    return path


def import_named(path: str) -> Any:
    """The class or function named ``module:QualName``, imported only from `worker_packages`.

    Raises `IncasemError` (one line, naming ``path``) for any other module, before importing
    anything: a worker never imports an arbitrary module from its environment.
    """
    module, _, qualname = path.partition(":")
    if not module or not qualname:
        raise IncasemError(f"block function {path!r}: not of the form 'module:QualName'")
    _check_allowed(path)
    target: Any = importlib.import_module(module)
    for name in qualname.split("."):
        target = getattr(target, name)
    return target


def _check_allowed(path: str) -> None:
    packages = worker_packages()
    if path.split(":")[0].split(".")[0] not in packages:
        raise IncasemError(
            f"block function {path}: workers import block functions only from the packages "
            f"{', '.join(packages)} (more through {PACKAGES_VARIABLE}); refusing to import it"
        )


@dataclass(frozen=True)
class ModuleWorker:
    """daisy's 0-argument worker function: ``python -m MODULE ARGS``, run here or elsewhere.

    The only thing daisy serialises to start a worker: a module name and JSON or path
    arguments, never the job's code. Without a template the module's ``main(args)`` runs in
    daisy's worker process (one process per worker, as daisy starts them); with one, the command
    is started through it and waited for (`run_through_template`). Either way the worker finds
    the scheduler through ``DAISY_CONTEXT`` and processes blocks until none are left.

    Args:
        module (str): a module with ``main(argv: list[str]) -> int``.
        args (tuple[str, ...]): its arguments.
        template (str | None): the worker command template, or None to run here. Default None.
    """

    module: str
    args: tuple[str, ...]
    template: str | None = None

    def __call__(self) -> None:
        if self.template is not None:
            run_through_template(self.module, self.args, self.template)
            return
        code = importlib.import_module(self.module).main(list(self.args))
        if code:
            raise SystemExit(code)
