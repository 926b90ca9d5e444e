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

A worker that outlives a block is a module run as ``python -m MODULE ARGS`` (`ModuleWorker`): in
daisy's own worker process, or through the template. Prediction's workers load a model once and
are ``python -m incasem.predict.worker SPEC.json``; every other blockwise command
(`incasem.blockwise.run_blockwise`) ships its block function in a file written by the driver
into the job's log folder and, through a template, runs ``python -m incasem.launch FILE``
(`block_function_worker`, `serve_blocks`). That file is a pickle, so it is signed: the driver
draws a random key for the job, passes it to its workers in the environment
(``INCASEM_WORKER_KEY``) and a worker unpickles nothing whose HMAC does not match: never a file
that someone else wrote.

The command line sets the template for a whole command with `worker_command_scope` (every
blockwise command takes ``--worker-command``); a library caller passes it to `run_blockwise`.
This module imports nothing heavy, so ``incasem --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import importlib
import json
import logging
import os
import secrets
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incasem.errors import IncasemError

logger = logging.getLogger(__name__)

#: The placeholder a template must contain.
PLACEHOLDER = "{command}"
#: Environment variable that carries a job's signing key to its workers.
KEY_VARIABLE = "INCASEM_WORKER_KEY"
#: Environment variable that carries a worker's arguments (a JSON list) through a template.
ARGS_VARIABLE = "INCASEM_WORKER_ARGS"
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


def _signature(payload: bytes, key: str) -> str:
    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()


def write_block_function(function: Callable[[Any], None], folder: Path) -> tuple[Path, str]:
    """Write ``function`` (cloudpickled, signed with a new random key) into ``folder``; returns
    the file and the key its workers need in ``INCASEM_WORKER_KEY``."""
    import cloudpickle

    key = secrets.token_hex(32)
    payload = cloudpickle.dumps(function)
    path = folder / "block_function.pickle"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(_signature(payload, key).encode() + b"\n" + payload)
    return path, key


def read_block_function(path: str | os.PathLike, key: str | None) -> Callable[[Any], None]:
    """The block function in ``path``, only if its signature matches ``key``."""
    import pickle

    data = Path(path).read_bytes()
    signature, _, payload = data.partition(b"\n")
    expected = _signature(payload, key) if key else ""
    if not key or not hmac.compare_digest(signature.decode(errors="replace"), expected):
        raise IncasemError(
            f"{path}: not signed by this job's driver ({KEY_VARIABLE} missing or different); "
            "refusing to load it"
        )
    return pickle.loads(payload)  # noqa: S301 -- signed by our own driver, see above


def serve_blocks(function: Callable[[Any], None]) -> None:
    """Process blocks from daisy's scheduler (``DAISY_CONTEXT``) until there are none left.

    An exception marks the block failed (daisy retries it) and ends this worker with it, as
    daisy's own workers do.
    """
    import daisy.v2 as daisy

    client = daisy.Client()
    while True:
        with client.acquire_block() as block:
            if block is None:
                return
            function(block)


@dataclass(frozen=True)
class ModuleWorker:
    """daisy's 0-argument worker function: ``python -m MODULE ARGS``, run here or elsewhere.

    Without a template the module's ``main(args)`` runs in daisy's worker process (one process
    per worker, as daisy starts them); with one, the command is started through it and waited
    for (`run_through_template`). Either way the worker finds the scheduler through
    ``DAISY_CONTEXT`` and processes blocks until none are left.

    Args:
        module (str): a module with ``main(argv: list[str]) -> int``.
        args (tuple[str, ...]): its arguments.
        template (str | None): the worker command template, or None to run here. Default None.
        environment (tuple[tuple[str, str], ...]): variables set for the worker (e.g. a job's
            signing key). Default none.
    """

    module: str
    args: tuple[str, ...]
    template: str | None = None
    environment: tuple[tuple[str, str], ...] = ()

    def __call__(self) -> None:
        os.environ.update(dict(self.environment))
        if self.template is not None:
            run_through_template(self.module, self.args, self.template)
            return
        code = importlib.import_module(self.module).main(list(self.args))
        if code:
            raise SystemExit(code)


def block_function_worker(function_file: Path, key: str, template: str) -> ModuleWorker:
    """The worker that serves a signed block function file (`write_block_function`) through
    ``template``: ``python -m incasem.launch FILE`` with the job's key in the environment."""
    return ModuleWorker("incasem.launch", (str(function_file),), template, ((KEY_VARIABLE, key),))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m incasem.launch FILE``: a blockwise worker started through a template."""
    argv = worker_arguments(argv)
    if len(argv) != 1:
        print("usage: python -m incasem.launch BLOCK_FUNCTION_FILE", file=sys.stderr)
        return 2
    serve_blocks(read_block_function(argv[0], os.environ.get(KEY_VARIABLE)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
