"""Runtime compatibility of the upstream Cambrian-1 and Mini-Gemini packages with today's torch and transformers.

Both research packages are installed by the user from their own repositories (``pip install --no-deps -e
<clone>``) and are used unmodified. They were written for transformers 4.36-4.37; what stands in their
way here is patched at run time, on the loaded objects, never in their files:

- optional packages imported at module level but never used for inference (``diffusers`` by
  Cambrian's diffusion encoders, ``deepspeed`` by Mini-Gemini's ZeRO-3 loading, ``ezcolorlog`` for
  coloured logs, ``requests``, ``einops``) get stand-ins while the model package is imported, when
  they are not installed; ``transformers.deepspeed`` is now ``transformers.integrations.deepspeed``;
- towers kept in a plain Python list are registered as submodules, so ``.to()``, ``.eval()`` and
  ``parameters()`` reach them;
- towers that run under ``no_grad`` unless a training flag is set get the flag: gradients must
  reach the pixels;
- hidden sizes that delayed towers hard-code (Cambrian's SigLIP and ConvNeXt) are read from the
  checkpoint's own projector weights, and Mini-Gemini's ConvNeXt stage widths from the network;
- Cambrian's decoder loop (a copy of the transformers 4.37 Llama loop with the Spatial Vision
  Aggregator inside) is replaced by :func:`cambrian_decoder`, written for today's decoder layers.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lvlm_heat.errors import LvlmHeatError

log = logging.getLogger(__name__)

INSTALL = {
    "cambrian": "git clone https://github.com/cambrian-mllm/cambrian && pip install --no-deps -e cambrian",
    "mgm": "git clone https://github.com/dvlab-research/MGM && pip install --no-deps -e MGM",
}
# Imported at module level by the upstream packages, never called on the inference path (a dotted name:
# a module a newer transformers removed; Cambrian's mask helpers serve a decoder loop we replace).
OPTIONAL = {
    "cambrian": ("diffusers", "ezcolorlog", "requests", "einops", "transformers.modeling_attn_mask_utils"),
    "mgm": ("deepspeed", "requests", "einops"),
}


class _Missing:
    """What a stand-in module hands out: anything, which fails when it is actually used."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ImportError(f"{self._name} needs a package that is not installed")

    def __getattr__(self, attribute: str) -> _Missing:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Missing(f"{self._name}.{attribute}")

    def __mro_entries__(self, bases: tuple) -> tuple:  # ``class X(missing.Base)`` at import time
        return (object,)


def _under(module: str, names: set[str]) -> bool:
    """``module`` is one of ``names`` or inside one of them."""
    return any(module == name or module.startswith(name + ".") for name in names)


def _absent(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:  # a dotted name whose parent is missing
        return True


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a stand-in module for each missing package in ``names`` and any of its submodules."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if _under(fullname, self.names):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        if spec.name == "ezcolorlog":
            module.root_logger = logging.getLogger(spec.name)
        module.__getattr__ = lambda attribute: _Missing(f"{spec.name}.{attribute}")
        return module

    def exec_module(self, module):
        pass


@contextlib.contextmanager
def stand_ins(names: tuple[str, ...], aliases: dict[str, str] | None = None) -> Iterator[None]:
    """While importing an upstream package: stand-ins for the missing ``names``, and module ``aliases``.

    Installed packages are used as they are. Stand-ins and aliases are removed from ``sys.modules``
    afterwards (the upstream modules keep their references), so nothing else sees them.
    """
    missing = {name for name in names if name not in sys.modules and _absent(name)}
    finder = _StandInFinder(missing)
    sys.meta_path.insert(0, finder)
    added = []
    for alias, target in (aliases or {}).items():
        if alias not in sys.modules:
            sys.modules[alias] = importlib.import_module(target)
            added.append(alias)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in added:
            sys.modules.pop(name, None)
        for name in [m for m in list(sys.modules) if _under(m, missing)]:
            sys.modules.pop(name, None)
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and not _under(parent, missing):  # a stand-in inside a real package
                with contextlib.suppress(AttributeError):
                    delattr(sys.modules[parent], child)


def import_upstream(package: str, modules: tuple[str, ...], aliases: dict[str, str] | None = None) -> list[Any]:
    """Import ``modules`` of an upstream ``package`` (``cambrian`` or ``mgm``), or say how to install it."""
    if importlib.util.find_spec(package) is None:
        raise LvlmHeatError(f"the {package!r} model package is not installed: {INSTALL[package]} "
                            "(then pip install -e '.[third_party]' for timm and open_clip)")
    try:
        with stand_ins(OPTIONAL[package], aliases):
            return [importlib.import_module(name) for name in modules]
    except ImportError as err:
        raise LvlmHeatError(f"cannot import the {package!r} model package: {err} "
                            "(pip install -e '.[third_party]' installs timm and open_clip)") from err


# -- weights and towers ---------------------------------------------------------------------------

def local_folder(model: str) -> str:
    """A checkpoint folder: ``model`` itself, or the hub snapshot of its weights, configs and tokenizer."""
    if Path(model).is_dir():
        return model
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])
    except Exception as err:
        raise LvlmHeatError(f"cannot load model {model!r}: not a local folder, and not a hub id that could be "
                            f"fetched ({type(err).__name__})") from err


def checkpoint_shapes(folder: str) -> dict[str, list[int]]:
    """Every tensor's shape in a checkpoint's safetensors files, read from their headers only."""
    shapes = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with path.open("rb") as file:
            size = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(size))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def checkpoint_tensors(folder: str, keep: tuple[str, ...]) -> dict[str, Tensor]:
    """The checkpoint's tensors whose names contain one of ``keep``, from any number of safetensors shards."""
    from safetensors import safe_open

    tensors = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="pt", device="cpu") as file:
            names = [k for k in file.keys() if any(part in k for part in keep)]  # noqa: SIM118 (not a dict)
            tensors.update({k: file.get_tensor(k) for k in names})
    return tensors


def register_towers(owner: nn.Module, attribute: str) -> None:
    """A tower (or list of towers) kept outside ``_modules`` becomes a registered submodule."""
    towers = owner.__dict__.pop(attribute, None)
    if isinstance(towers, list):
        setattr(owner, attribute, nn.ModuleList(towers))
    elif towers is not None:
        setattr(owner, attribute, towers)


# -- Cambrian's decoder with the Spatial Vision Aggregator ----------------------------------------

def cambrian_decoder(
    language_model: nn.Module,
    inputs_embeds: Tensor,
    image_start: int | None = None,
    sva: tuple | None = None,
    past_key_values: Any = None,
) -> Tensor:
    """Cambrian-1's language model pass: Llama decoder layers with SVA layers interleaved.

    Every ``stride_of_vision_sampler_layers`` layers from ``start_of_vision_sampler_layers``, the image's
    hidden states (``h`` rows of ``w`` tokens and a newline token, from ``image_start``) are replaced by
    the output of the next ``vision_sampler_layers`` module, which cross-attends from each image token to
    its cells of every tower's feature map; the newline tokens are kept.

    Args:
        language_model: ``CambrianLlamaModel`` (the ``model`` of ``CambrianLlamaForCausalLM``).
        inputs_embeds: ``(N, L, D)`` embeddings with the image features spliced in.
        image_start: Index of the first image token in the sequence.
        sva: ``(features, masks, sizes, global_context)`` as ``prepare_inputs_labels_for_multimodal``
            returns them; ``None`` for text-only steps (decoding with a cache).
        past_key_values: A ``DynamicCache`` to fill (generation), or ``None``.

    Returns:
        ``(N, L, D)`` final hidden states (after the last norm).
    """
    from transformers.masking_utils import create_causal_mask

    config = language_model.config
    seen = past_key_values.get_seq_length() if past_key_values is not None else 0
    positions = torch.arange(seen, seen + inputs_embeds.shape[1], device=inputs_embeds.device)[None]
    mask = create_causal_mask(config=config, inputs_embeds=inputs_embeds, attention_mask=None,
                              past_key_values=past_key_values, position_ids=positions)
    rotary = language_model.rotary_emb(inputs_embeds, position_ids=positions)
    samplers = getattr(language_model, "vision_sampler_layers", None)
    first = getattr(config, "start_of_vision_sampler_layers", 0)
    stride = getattr(config, "stride_of_vision_sampler_layers", 1)
    use_sva = sva is not None and samplers is not None and not getattr(config, "connector_only", True)
    hidden = inputs_embeds
    for index, layer in enumerate(language_model.layers[: config.num_hidden_layers]):
        hidden = layer(hidden, attention_mask=mask, position_ids=positions, past_key_values=past_key_values,
                       use_cache=past_key_values is not None, position_embeddings=rotary)
        step, offset = divmod(index - first, stride)
        if use_sva and index >= first and offset == 0 and step < len(samplers):
            hidden = _aggregate(samplers[step], hidden, image_start, *sva)
    return language_model.norm(hidden)


def _aggregate(sampler: nn.Module, hidden: Tensor, start: int, features, masks, sizes, global_context) -> Tensor:
    """One SVA layer: image tokens (without their newline tokens) re-read from the towers' features."""
    rows, cols = sizes[0]
    if any(tuple(size) != (rows, cols) for size in sizes):
        raise ValueError("Cambrian's image grids differ within one batch")
    count = rows * (cols + 1)
    grid = hidden[:, start : start + count].reshape(hidden.shape[0], rows, cols + 1, hidden.shape[-1])
    queries = grid[:, :, :cols].reshape(-1, 1, hidden.shape[-1])  # (N * rows * cols, 1, D), batch-major
    refined = sampler(queries, global_context, *features, *masks).reshape(hidden.shape[0], rows, cols, -1)
    grid = torch.cat([refined.to(hidden.dtype), grid[:, :, cols:]], dim=2).flatten(1, 2)
    return torch.cat([hidden[:, :start], grid, hidden[:, start + count :]], dim=1)
