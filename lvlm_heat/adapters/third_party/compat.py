"""Runtime compatibility of the upstream Cambrian-1 and Mini-Gemini packages with today's torch and transformers.

Both research packages are installed by the user from their own repositories (``pip install --no-deps -e
<clone>``) and are used unmodified: nothing here edits their files. Two kinds of changes make them run.

Temporary patches of objects this package does not own, each made through :class:`Patches` (or
:func:`patched`) and undone when its ``with`` block exits, also when the block raises:

- while an upstream package is imported (:func:`stand_ins`): a finder at the front of ``sys.meta_path``
  serves stand-in modules for optional packages imported at module level but never used for inference
  (``diffusers`` by Cambrian's diffusion encoders, ``deepspeed`` by Mini-Gemini's ZeRO-3 loading,
  ``ezcolorlog`` for coloured logs, ``requests``, ``einops``, the removed
  ``transformers.modeling_attn_mask_utils``) when they are not installed, and ``sys.modules`` holds module
  aliases (``transformers.deepspeed`` for ``transformers.integrations.deepspeed``). On exit the finder,
  the aliases, every stand-in module and any attribute the import system set on a real parent package for
  one are gone; the upstream modules keep their own references to them;
- while a checkpoint is built, an upstream module function or class attribute (Cambrian's tower builder,
  Mini-Gemini's list of checkpoint keys not to report): see :mod:`lvlm_heat.adapters.cambrian` and
  :mod:`lvlm_heat.adapters.mgm`.

Changes to the loaded network, which is ours, stay (its own state, not a global):

- towers kept in a plain Python list are registered as submodules, so ``.to()``, ``.eval()`` and
  ``parameters()`` reach them;
- towers that run under ``no_grad`` unless a training flag is set get the flag on the instance: gradients
  must reach the pixels;
- hidden sizes that delayed towers hard-code (Cambrian's SigLIP and ConvNeXt) are read from the
  checkpoint's own projector weights, and Mini-Gemini's ConvNeXt stage widths from the network;
- Cambrian's decoder loop (a copy of the transformers 4.37 Llama loop with the Spatial Vision
  Aggregator inside) is not called: :func:`cambrian_decoder`, written for today's decoder layers, runs
  the network's layers instead.
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
from collections.abc import Iterator, MutableMapping
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


# -- temporary patches ---------------------------------------------------------------------------

_ABSENT = object()  # an attribute or key that did not exist


def _own_attribute(target: Any, name: str) -> Any:
    """``target``'s own attribute ``name``, or ``_ABSENT``: for a class or module, what its ``__dict__``
    holds (an inherited class attribute belongs to the base class and must not be copied onto ``target``;
    a ``staticmethod`` / ``classmethod`` must be put back as it is stored, not as it reads)."""
    try:
        return vars(target).get(name, _ABSENT)
    except TypeError:  # no __dict__ (slots): what the attribute reads as
        return getattr(target, name, _ABSENT)


def _put_back_attribute(target: Any, name: str, value: Any) -> None:
    if value is not _ABSENT:
        setattr(target, name, value)
    elif _own_attribute(target, name) is not _ABSENT:  # added meanwhile: deleted (an inherited one shows again)
        delattr(target, name)


def _put_back_item(mapping: MutableMapping, key: Any, value: Any) -> None:
    if value is _ABSENT:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _remove(sequence: list, value: Any) -> None:
    """Remove ``value`` itself (by identity, not equality) from ``sequence``, if it is still there."""
    for index, item in enumerate(sequence):
        if item is value:
            del sequence[index]
            return


class Patches(contextlib.ExitStack):
    """Changes to objects this package does not own, each undone when the ``with`` block exits.

    Upstream modules and classes, ``sys.modules`` and ``sys.meta_path`` are shared by the whole process:
    whatever is changed in them while a model is imported or built is recorded here first, and put back
    on exit (newest first, also when the block raises). An attribute or key that did not exist is
    deleted again. Changes may be added at any time inside the block, as the stand-in finder does while
    the import system runs.

    Example:
        >>> import types
        >>> box = types.SimpleNamespace(size=1)
        >>> with Patches() as patches:
        ...     patches.setattr(box, "size", 2)
        ...     patches.setattr(box, "colour", "red")
        ...     (box.size, box.colour)
        (2, 'red')
        >>> box
        namespace(size=1)
    """

    def keep(self, target: Any, name: str) -> None:
        """Put ``target``'s attribute ``name`` back as it is now on exit (delete it if it does not exist),
        whoever changes it in between."""
        self.callback(_put_back_attribute, target, name, _own_attribute(target, name))

    def setattr(self, target: Any, name: str, value: Any) -> None:
        """``setattr(target, name, value)`` until exit."""
        self.keep(target, name)
        setattr(target, name, value)

    def keep_item(self, mapping: MutableMapping, key: Any) -> None:
        """Put ``mapping[key]`` back as it is now on exit (remove it if it is not there)."""
        self.callback(_put_back_item, mapping, key, mapping.get(key, _ABSENT))

    def setitem(self, mapping: MutableMapping, key: Any, value: Any) -> None:
        """``mapping[key] = value`` until exit."""
        self.keep_item(mapping, key)
        mapping[key] = value

    def insert(self, sequence: list, index: int, value: Any) -> None:
        """``sequence.insert(index, value)`` until exit."""
        sequence.insert(index, value)
        self.callback(_remove, sequence, value)


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[Any]:
    """``target.name`` is ``value`` inside the ``with`` block; afterwards it is what it was, or absent again.

    Args:
        target: A module, class or other object this package does not own.
        name: The attribute.
        value: Its value inside the block (also what ``with ... as`` gives).
    """
    with Patches() as patches:
        patches.setattr(target, name, value)
        yield value


# -- stand-ins for missing optional packages ------------------------------------------------------

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
    """Serves a stand-in module for each missing package in ``names`` and any of its submodules.

    Every stand-in it creates is recorded in ``patches`` before the import system stores it: its
    ``sys.modules`` entry, and the attribute the import system sets for it on a real parent package
    (``transformers.modeling_attn_mask_utils``), are undone when ``patches`` exits. A stand-in module's
    loader is this finder (how tests recognise one).
    """

    def __init__(self, names: set[str], patches: Patches) -> None:
        self.names = names
        self.patches = patches

    def find_spec(self, fullname, path=None, target=None):
        if _under(fullname, self.names):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        self.patches.keep_item(sys.modules, spec.name)
        parent, _, child = spec.name.rpartition(".")
        if parent in sys.modules and not _under(parent, self.names):  # a stand-in inside a real package
            self.patches.keep(sys.modules[parent], child)
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

    Installed packages are used as they are; an alias name already in ``sys.modules`` is left alone. On
    exit (also on an error) ``sys.meta_path`` and the ``sys.modules`` entries of the stand-ins and aliases
    are as they were, and real packages hold no attribute for a stand-in: nothing else sees them. The
    upstream modules keep their references. The alias targets are imported for real, and stay imported.

    Args:
        names: Top-level packages or dotted modules to stand in for, where they cannot be imported.
        aliases: ``{name: real module}``: ``import name`` gives the real module while importing.
    """
    missing = {name for name in names if name not in sys.modules and _absent(name)}
    with Patches() as patches:
        for alias, target in (aliases or {}).items():  # imported before the finder is in: they see no stand-in
            if alias not in sys.modules:
                patches.setitem(sys.modules, alias, importlib.import_module(target))
        patches.insert(sys.meta_path, 0, _StandInFinder(missing, patches))
        yield


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
