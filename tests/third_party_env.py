"""The test environment for the upstream Cambrian-1 and Mini-Gemini packages, and their tiny random checkpoints.

Where things come from:

- the upstream packages: ``$LVLM_HEAT_THIRD_PARTY`` (default ``<repo>/../shared/third_party``), folders
  ``cambrian/`` and ``mgm/``, put on ``sys.path`` as ``pip install -e`` would;
- timm, open_clip and torchvision: installed, or in ``$LVLM_HEAT_THIRD_PARTY_SITE`` (default
  ``<venv>/third_party_site``, where ``.ci/run`` installs them with ``pip install --target``, so that the
  rest of the suite keeps running without torchvision). On these machines the only torchvision wheel is a
  CUDA build; with the CPU torch its native library does not load and its import fails on the missing
  ``torchvision::nms`` schema. Registering the schemas of the two operators it looks up lets the pure-Python
  parts load (a test-only workaround: neither model calls them);
- the vision towers, which the upstream code loads by hard-coded hub names: tiny random ones saved into an
  offline Hugging Face cache under those names (``HF_HUB_OFFLINE``), open_clip configs included, and a tiny
  ViT without prefix tokens registered with timm (SigLIP's trunk shape); Mini-Gemini's ConvNeXt, which open_clip
  builds from its registered config name, gets a tiny config registered under that name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).parents[1]
THIRD_PARTY = Path(os.environ.get("LVLM_HEAT_THIRD_PARTY", ROOT.parent / "shared" / "third_party"))
SITE = Path(os.environ.get("LVLM_HEAT_THIRD_PARTY_SITE", Path(sys.prefix) / "third_party_site"))
COMMIT = "0" * 40


def _register_torchvision_schemas() -> None:
    """Declare ``torchvision::nms`` / ``qnms`` when torchvision's native library cannot load (CUDA wheel, CPU torch)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or "torchvision" in sys.modules:
        return
    libraries = sorted(Path(spec.submodule_search_locations[0]).glob("_C*.so"))
    try:
        if libraries:
            torch.ops.load_library(str(libraries[0]))
            return
    except OSError:
        pass
    library = torch.library.Library("torchvision", "FRAGMENT")
    for name in ("nms", "qnms"):
        library.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _register_torchvision_schemas.library = library  # keep the registration alive


def activate() -> str | None:
    """Make the upstream packages, timm, open_clip and torchvision importable; the reason why not, if not."""
    for package in ("cambrian", "mgm"):
        if not (THIRD_PARTY / package / package / "__init__.py").exists():
            return f"no upstream {package!r} package in {THIRD_PARTY} (set LVLM_HEAT_THIRD_PARTY)"
    from transformers.utils import import_utils

    import_utils.is_torchvision_available()  # pinned as this process found it: the rest of the suite is unchanged
    for path in (SITE, THIRD_PARTY / "cambrian", THIRD_PARTY / "mgm"):
        if path.is_dir() and str(path) not in sys.path:
            sys.path.append(str(path))
    try:
        _register_torchvision_schemas()
        import open_clip  # noqa: F401
        import timm  # noqa: F401
        import torchvision  # noqa: F401
    except Exception as err:  # noqa: BLE001 (any failure means: no usable torchvision / timm / open_clip here)
        return f"no usable torchvision, timm and open_clip ({type(err).__name__}: {str(err).splitlines()[0]})"
    _register_tiny_vit()
    return None


def _register_tiny_vit() -> None:
    """``lvlm_heat_tiny_siglip``: 2 blocks, 32 px, 8 px patches, no class or register token (as SigLIP's trunk)."""
    from timm.models import is_model, register_model
    from timm.models.vision_transformer import VisionTransformer

    if is_model("lvlm_heat_tiny_siglip"):
        return

    def lvlm_heat_tiny_siglip(pretrained: bool = False, **kwargs) -> VisionTransformer:
        args = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2,
                "class_token": False, "global_pool": "avg"}
        kwargs = {k: v for k, v in kwargs.items() if k not in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")}
        return VisionTransformer(**{**args, **kwargs})

    register_model(lvlm_heat_tiny_siglip)


# -- offline hub ----------------------------------------------------------------------------------

def put_in_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """Lay ``folder`` out as the cached snapshot of ``repo_id`` (what ``hf_hub_download`` finds offline)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(folder, repo / "snapshots" / COMMIT, dirs_exist_ok=True)


def go_offline(monkeypatch, cache: Path) -> None:
    """Point the Hugging Face hub at ``cache`` and forbid the network, for this test."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def _text_cfg() -> dict:
    return {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}


def save_open_clip(folder: Path, vision_cfg: dict, preprocess: dict | None = None) -> dict:
    """A tiny open_clip CLIP with ``vision_cfg``: its config file and weights, as the hub holds them."""
    import open_clip

    config = {"embed_dim": 32, "vision_cfg": vision_cfg, "text_cfg": _text_cfg()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(open_clip.CLIP(**json.loads(json.dumps(config))).state_dict(), folder / "open_clip_pytorch_model.bin")
    preprocess = preprocess or {"mean": [0.48145466, 0.4578275, 0.40821073],
                                "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic"}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": preprocess}))
    return config


def save_hf_clip(folder: Path, size: int, patch: int) -> None:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=size, patch_size=patch)
    CLIPVisionModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(folder)


def save_hf_dinov2(folder: Path, size: int, patch: int) -> None:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=size,
                          patch_size=patch)
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(folder)


# -- tiny checkpoints -----------------------------------------------------------------------------

def tokenizer():
    from conftest import word_tokenizer

    return word_tokenizer([])


def _llama_fields(tok) -> dict:
    return {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512, "pad_token_id": 0,
            "bos_token_id": 2, "eos_token_id": 3, "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
            "image_aspect_ratio": "pad", "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch"}


CAMBRIAN_TOWERS = ["siglip/CLIP-ViT-SO400M-14-384", "openai/clip-vit-large-patch14-336", "facebook/dinov2-giant-res32",
                   "clip-convnext-XXL-multi-stage-res64"]


def build_cambrian_hub(cache: Path, work: Path) -> None:
    """The four towers of cambrian-8b, tiny, under the hub names the upstream code loads them by."""
    save_open_clip(work / "siglip", {"timm_model_name": "lvlm_heat_tiny_siglip", "timm_model_pretrained": False,
                                     "timm_pool": "", "timm_proj": "none", "image_size": 32},
                   {"mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic", "resize_mode": "squash"})
    put_in_cache(cache, "timm/ViT-SO400M-14-SigLIP-384", work / "siglip")
    save_hf_clip(work / "clip", 32, 8)
    put_in_cache(cache, "openai/clip-vit-large-patch14-336", work / "clip")
    save_hf_dinov2(work / "dino", 32, 8)
    put_in_cache(cache, "facebook/dinov2-giant", work / "dino")
    save_open_clip(work / "convnext", {"timm_model_name": "test_convnext2", "timm_model_pretrained": False,
                                       "timm_pool": "", "timm_proj": "linear", "image_size": 64})
    put_in_cache(cache, "laion/CLIP-convnext_xxlarge-laion2B-s34B-b82K-augreg-soup", work / "convnext")


def save_tiny_cambrian(folder: Path) -> str:
    """A 2-layer Cambrian-1 with SVA (4 x 4 image tokens; an aggregator after each decoder layer) over the four
    tiny towers (SigLIP 32 px, CLIP 32 px, DINOv2 32 px: 4 x 4 features; ConvNeXt 64 px: 8 x 8 features)."""
    from lvlm_heat.adapters import cambrian
    from lvlm_heat.adapters.third_party.compat import import_upstream

    import_upstream("cambrian", cambrian.MODULES)  # with the compatibility layer's stand-ins
    from cambrian.conversation import conv_templates
    from cambrian.mm_utils import tokenizer_image_token
    from cambrian.model.language_model.cambrian_llama import CambrianConfig, CambrianLlamaForCausalLM

    torch.manual_seed(0)
    tok = tokenizer()
    conversation = conv_templates["vicuna_v1"].copy()
    conversation.append_message(conversation.roles[0], "<image>\nwhat color is it ?")
    conversation.append_message(conversation.roles[1], None)
    image_position = tokenizer_image_token(conversation.get_prompt(), tok).index(-200)
    config = CambrianConfig(
        **_llama_fields(tok), mm_vision_tower_aux_list=CAMBRIAN_TOWERS,
        mm_vision_tower_aux_token_len_list=[16, 16, 16, 64],
        image_token_len=16, num_query_group=1, query_num_list=[16], connector_depth=1, connector_only=False,
        num_of_vision_sampler_layers=2, start_of_vision_sampler_layers=0, stride_of_vision_sampler_layers=1,
        vision_hidden_size=32, mm_projector_type="sva", image_position=image_position,
        unfreeze_mm_vision_tower=True,  # the towers load while the model is built: the projectors get their widths
    )
    model = CambrianLlamaForCausalLM(config)
    with torch.no_grad():
        model.get_model().image_newline.normal_(std=0.5)  # created with torch.empty upstream
    model.config.unfreeze_mm_vision_tower = False  # as the released checkpoints say
    model.generation_config.eos_token_id = 3
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def register_tiny_convnext(work: Path) -> None:
    """Mini-Gemini builds its ConvNeXt from open_clip's config ``convnext_large_d_320``: a tiny one under that name."""
    import open_clip

    config = {"embed_dim": 32, "vision_cfg": {"timm_model_name": "test_convnext2", "timm_model_pretrained": False,
                                              "timm_pool": "", "timm_proj": "linear", "image_size": 64},
              "text_cfg": _text_cfg()}
    (work / "configs").mkdir(parents=True, exist_ok=True)
    (work / "configs" / "convnext_large_d_320.json").write_text(json.dumps(config))
    open_clip.add_model_config(work / "configs")


def save_tiny_mgm(folder: Path, work: Path, hd: bool = True) -> str:
    """A 2-layer Mini-Gemini: CLIP at 16 px (4 x 4 tokens) and a ConvNeXt on the 64 px (HD) or 32 px ``images_aux``;
    HD: 2 x 2 crops and a global view. The towers live in folders named as MGM's model zoo names them."""
    from lvlm_heat.adapters import mgm
    from lvlm_heat.adapters.third_party.compat import import_upstream

    import_upstream("mgm", mgm.MODULES, mgm.ALIASES)
    from mgm.model.language_model.mgm_llama import MGMConfig, MGMLlamaForCausalLM

    torch.manual_seed(1)
    zoo = work / "model_zoo"
    clip, convnext = zoo / "OpenAI" / "clip-vit-tiny", zoo / "openclip-convnext-large-d-320-tiny"
    if not clip.exists():
        save_hf_clip(clip, 16, 4)
        register_tiny_convnext(work)
        save_open_clip(convnext, json.loads((work / "configs" / "convnext_large_d_320.json").read_text())["vision_cfg"])
    tok = tokenizer()
    grid = {"image_size_aux": 64, "image_grid": 2, "image_global": True} if hd else {"image_size_aux": 32}
    config = MGMConfig(**_llama_fields(tok), mm_vision_tower=str(clip), mm_vision_tower_aux=str(convnext),
                       mm_hidden_size=32, mm_hidden_size_aux=320, mm_projector_type="mlp2x_gelu",
                       optimize_vision_tower=False, optimize_vision_tower_aux=False, **grid)
    model = MGMLlamaForCausalLM(config)
    inner = model.get_model()
    inner.get_vision_tower().load_model()
    inner.get_vision_tower_aux().load_model()
    import io
    import types

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    inner.initialize_uni_modules(types.SimpleNamespace(**config.to_dict(), pretrain_mm_mlp_adapter=empty))
    model.generation_config.eos_token_id = 3
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())  # the model zoo's relative names, as released configs have
    saved.update(mm_vision_tower=str(clip.relative_to(work)), mm_vision_tower_aux=str(convnext.relative_to(work)))
    (folder / "config.json").write_text(json.dumps(saved))
    return str(folder)
