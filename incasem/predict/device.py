"""Where prediction's workers run: the CPU or CUDA, and which GPUs."""

from __future__ import annotations

from incasem.errors import IncasemError


def resolve_device(
    device: str | int, gpus: list[int] | None, template: str | None
) -> tuple[str, list[int] | None]:
    """(``"cpu"`` or ``"cuda"``, GPU indices) from the device setting and ``gpus``.

    ``"auto"`` means CUDA when this machine has it. Asking for CUDA on a machine without it is
    an error, unless workers run elsewhere (a worker command template).
    """
    import torch

    text = str(device).strip().lower()
    if gpus:
        kind = "cuda"
    elif text == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    elif text == "cpu":
        kind = "cpu"
    elif text.isdigit():
        kind, gpus = "cuda", [int(text)]
    elif text.startswith("cuda"):
        kind = "cuda"
        index = text.partition(":")[2]
        if index:
            if not index.isdigit():
                raise IncasemError(f"device {device!r}: expected cuda:N")
            gpus = [int(index)]
    else:
        raise IncasemError(f"device {device!r}: expected auto, cpu, cuda, cuda:N or a GPU index")
    if kind == "cuda" and template is None and not torch.cuda.is_available():
        raise IncasemError(
            f"device {device!r}{' / gpus ' + str(gpus) if gpus else ''} asks for a GPU, but "
            "CUDA is not available here; use device=cpu"
        )
    return kind, gpus
