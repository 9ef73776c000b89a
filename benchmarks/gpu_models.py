"""The models the paper runs, at their published sizes, built from their configurations with random weights.

Each family is a diffusers pipeline (or SAM 3) written as its components' published `config.json` values
(the Hub repositories named in `FAMILIES`), a byte-level CLIP tokenizer padded to CLIP's 49,408 tokens
(`generation.tiny.tiny_tokenizer`: no tokenizer files are needed) and the published scheduler settings.
`save_family` builds one component at a time, saves it in diffusers' folder layout and frees it, so a folder
of several billion parameters is written with one component's memory; the toolkit's own loaders then read
the folder as they would read a downloaded model. `TINY` holds the same families at test sizes (the
benchmark's fast test). Nothing here downloads anything.

Published parameter counts (`PUBLISHED`, asserted by `check_sizes`): Stable Diffusion 2.1-base's UNet
865.9M, its OpenCLIP ViT-H text encoder 340.4M, the SD VAE 83.7M; SD 1.5 inpainting's 9-channel UNet
859.5M with CLIP ViT-L text 123.1M; Kandinsky 2.2's decoder UNet 1.25B (the inpainting decoder; its model
card rounds the family to 1.22B), MoVQ 67.8M, prior 1.03B, CLIP ViT-bigG/14 image tower 1.84B and text tower
0.69B; SAM 3 (transformers' `Sam3Config` defaults) 840.4M.
"""
from __future__ import annotations

import gc
import json
from pathlib import Path

CLIP_VOCAB = 49408
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]

SD_VAE = {"block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
          "up_block_types": ["UpDecoderBlock2D"] * 4, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
          "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 512, "act_fn": "silu",
          "scaling_factor": 0.18215}
SD_SCHEDULER = ("PNDMScheduler", {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                                  "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
                                  "steps_offset": 1, "clip_sample": False, "prediction_type": "epsilon"})
SD_UNET_BLOCKS = {"block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
                  "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                  "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, "sample_size": 64,
                  "out_channels": 4, "norm_num_groups": 32, "act_fn": "silu", "flip_sin_to_cos": True,
                  "freq_shift": 0, "downsample_padding": 1}

# stabilityai/stable-diffusion-2-1-base (the paper's semantic base model: TI, LoRA, image-to-image)
SD21_BASE = {
    "pipeline": "StableDiffusionPipeline",
    "unet": {**SD_UNET_BLOCKS, "in_channels": 4, "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024,
             "use_linear_projection": True},
    "vae": SD_VAE,
    "text_encoder": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 23,
                     "projection_dim": 512, "hidden_act": "gelu", "max_position_embeddings": 77,
                     "vocab_size": CLIP_VOCAB},
    "scheduler": SD_SCHEDULER,
}
# runwayml/stable-diffusion-inpainting (the `diffusers` healthy backend's example model)
SD_INPAINT = {
    "pipeline": "StableDiffusionInpaintPipeline",
    "unet": {**SD_UNET_BLOCKS, "in_channels": 9, "attention_head_dim": 8, "cross_attention_dim": 768},
    "vae": SD_VAE,
    "text_encoder": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
                     "projection_dim": 768, "hidden_act": "quick_gelu", "max_position_embeddings": 77,
                     "vocab_size": CLIP_VOCAB},
    "scheduler": SD_SCHEDULER,
}
# kandinsky-community/kandinsky-2-2-decoder-inpaint + kandinsky-community/kandinsky-2-2-prior (the paper's
# healthy generator), as diffusers' KandinskyV22InpaintCombinedPipeline
KANDINSKY22_INPAINT = {
    "pipeline": "KandinskyV22InpaintCombinedPipeline",
    "unet": {"in_channels": 9, "out_channels": 8, "addition_embed_type": "image", "addition_embed_type_num_heads": 64,
             "attention_head_dim": 64, "block_out_channels": [384, 768, 1152, 1536], "cross_attention_dim": 768,
             "down_block_types": ["ResnetDownsampleBlock2D"] + ["SimpleCrossAttnDownBlock2D"] * 3,
             "up_block_types": ["SimpleCrossAttnUpBlock2D"] * 3 + ["ResnetUpsampleBlock2D"],
             "mid_block_type": "UNetMidBlock2DSimpleCrossAttn", "encoder_hid_dim": 1280,
             "encoder_hid_dim_type": "image_proj", "layers_per_block": 3, "resnet_time_scale_shift": "scale_shift",
             "sample_size": 64, "norm_num_groups": 32, "act_fn": "silu", "class_embed_type": None},
    "movq": {"block_out_channels": [128, 256, 256, 512],
             "down_block_types": ["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
             "up_block_types": ["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3, "in_channels": 3,
             "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
             "norm_type": "spatial", "num_vq_embeddings": 16384, "vq_embed_dim": 4, "sample_size": 32,
             "scaling_factor": 0.18215},
    "scheduler": ("DDPMScheduler", {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear",
                                    "num_train_timesteps": 1000, "clip_sample": False, "steps_offset": 1,
                                    "prediction_type": "epsilon", "variance_type": "fixed_small"}),
    "prior_prior": {"num_attention_heads": 32, "attention_head_dim": 64, "num_layers": 20, "embedding_dim": 1280,
                    "num_embeddings": 77, "additional_embeddings": 4, "dropout": 0.0,
                    "encoder_hid_proj_type": "linear", "added_emb_type": "prd", "time_embed_act_fn": "silu"},
    "prior_image_encoder": {"hidden_size": 1664, "intermediate_size": 8192, "num_attention_heads": 16,
                            "num_hidden_layers": 48, "projection_dim": 1280, "patch_size": 14, "image_size": 224,
                            "hidden_act": "gelu", "layer_norm_eps": 1e-05},
    "prior_text_encoder": {"hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 20,
                           "num_hidden_layers": 32, "projection_dim": 1280, "hidden_act": "gelu",
                           "max_position_embeddings": 77, "vocab_size": CLIP_VOCAB},
    "prior_scheduler": ("UnCLIPScheduler", {"variance_type": "fixed_small_log", "prediction_type": "sample",
                                            "num_train_timesteps": 1000, "clip_sample": True,
                                            "clip_sample_range": 10.0}),
    "prior_image_processor": {"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224},
                              "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "resample": 3},
}
SAM3 = {"pipeline": "Sam3Model", "model": {}}  # transformers' Sam3Config defaults: facebook/sam3's image model

FAMILIES = {"sd21": SD21_BASE, "sd_inpaint": SD_INPAINT, "kandinsky22": KANDINSKY22_INPAINT, "sam3": SAM3}
HUB_IDS = {"sd21": "stabilityai/stable-diffusion-2-1-base", "sd_inpaint": "runwayml/stable-diffusion-inpainting",
           "kandinsky22": "kandinsky-community/kandinsky-2-2-decoder-inpaint + kandinsky-2-2-prior",
           "sam3": "facebook/sam3"}
PUBLISHED = {  # parameters per component, as the published checkpoints hold them
    "sd21": {"unet": 865_910_724, "text_encoder": 340_387_840, "vae": 83_653_863},
    "sd_inpaint": {"unet": 859_535_364, "text_encoder": 123_060_480, "vae": 83_653_863},
    "kandinsky22": {"unet": 1_253_074_568, "movq": 67_832_495, "prior_prior": 1_026_225_920,
                    "prior_image_encoder": 1_844_907_264, "prior_text_encoder": 694_659_840},
    "sam3": {"model": 840_376_374},
}

_TINY_TEXT = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
              "projection_dim": 32, "vocab_size": CLIP_VOCAB, "max_position_embeddings": 77}
_TINY_SD_UNET = {"block_out_channels": [32, 64], "layers_per_block": 2, "sample_size": 32, "out_channels": 4,
                 "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
                 "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "cross_attention_dim": 32}
_TINY_VAE = {"block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D"] * 2,
             "up_block_types": ["UpDecoderBlock2D"] * 2, "latent_channels": 4}
TINY = {  # the same families at diffusers' fast-test sizes (the tokenizer keeps CLIP's vocabulary)
    "sd21": {**SD21_BASE, "unet": {**_TINY_SD_UNET, "in_channels": 4}, "vae": _TINY_VAE, "text_encoder": _TINY_TEXT},
    "sd_inpaint": {**SD_INPAINT, "unet": {**_TINY_SD_UNET, "in_channels": 9}, "vae": _TINY_VAE,
                   "text_encoder": _TINY_TEXT},
    "kandinsky22": {
        **KANDINSKY22_INPAINT,
        "unet": {**KANDINSKY22_INPAINT["unet"], "block_out_channels": [32, 64], "layers_per_block": 1,
                 "attention_head_dim": 4, "encoder_hid_dim": 32, "cross_attention_dim": 32,
                 "down_block_types": ["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
                 "up_block_types": ["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"], "norm_num_groups": 8,
                 "addition_embed_type_num_heads": 4},
        "movq": {**KANDINSKY22_INPAINT["movq"], "block_out_channels": [32, 64], "layers_per_block": 1,
                 "down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
                 "up_block_types": ["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], "norm_num_groups": 8,
                 "num_vq_embeddings": 12},
        "prior_prior": {"num_attention_heads": 2, "attention_head_dim": 12, "embedding_dim": 32, "num_layers": 1},
        "prior_image_encoder": {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                                "num_hidden_layers": 2, "projection_dim": 32, "patch_size": 8, "image_size": 32},
        "prior_text_encoder": _TINY_TEXT,
        "prior_image_processor": {**KANDINSKY22_INPAINT["prior_image_processor"], "size": {"shortest_edge": 32},
                                  "crop_size": {"height": 32, "width": 32}},
    },
    "sam3": {"pipeline": "Sam3Model", "tiny": True},
}


def _text(cfg: dict, tok, with_projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    conf = CLIPTextConfig(**cfg, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(conf)


def _scheduler(spec: tuple):
    import diffusers

    name, kwargs = spec
    return getattr(diffusers, name).from_config(kwargs)  # as a published scheduler_config.json loads


def components(family: dict) -> dict:
    """name -> a zero-argument factory of that component (built only when called)."""
    import transformers
    from diffusers import AutoencoderKL, PriorTransformer, UNet2DConditionModel, VQModel

    from generation.tiny import tiny_tokenizer

    tok = tiny_tokenizer(CLIP_VOCAB)
    if family["pipeline"] != "KandinskyV22InpaintCombinedPipeline":
        return {"unet": lambda: UNet2DConditionModel(**family["unet"]), "vae": lambda: AutoencoderKL(**family["vae"]),
                "text_encoder": lambda: _text(family["text_encoder"], tok, False), "tokenizer": lambda: tok,
                "scheduler": lambda: _scheduler(family["scheduler"])}

    def prior():
        net = PriorTransformer(**family["prior_prior"])
        net.clip_std.data.fill_(1.0)  # a trained prior's embedding statistics; zeros would divide by zero
        return net

    def image_encoder():
        return transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**family["prior_image_encoder"]))

    processor_cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    return {"unet": lambda: UNet2DConditionModel(**family["unet"]), "scheduler": lambda: _scheduler(family["scheduler"]),
            "movq": lambda: VQModel(**family["movq"]), "prior_prior": prior, "prior_image_encoder": image_encoder,
            "prior_text_encoder": lambda: _text(family["prior_text_encoder"], tok, True), "prior_tokenizer": lambda: tok,
            "prior_scheduler": lambda: _scheduler(family["prior_scheduler"]),
            "prior_image_processor": lambda: processor_cls(**family["prior_image_processor"], do_center_crop=True,
                                                           do_normalize=True, do_resize=True)}


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def save_family(family: dict, folder: Path, dtype_name: str = "float32") -> dict[str, int]:
    """Write `family` to `folder` as a diffusers model folder (SAM 3: a transformers one), one component in
    memory at a time, weights drawn at random in `dtype_name`; returns each network's parameter count."""
    import torch

    folder = Path(folder)
    if family["pipeline"] == "Sam3Model":
        return _save_sam3(family, folder, dtype_name)
    index = {"_class_name": family["pipeline"], "_diffusers_version": _version("diffusers")}
    counts = {}
    torch.manual_seed(0)
    for name, factory in components(family).items():
        obj = _built_in(factory, getattr(torch, dtype_name))
        lib = "diffusers" if type(obj).__module__.startswith("diffusers") else "transformers"
        index[name] = [lib, type(obj).__name__]
        if isinstance(obj, torch.nn.Module):
            counts[name] = n_params(obj)
        if hasattr(obj, "save_pretrained"):
            obj.save_pretrained(folder / name)
        else:
            obj.save_config(folder / name)
        del obj
        gc.collect()
    if family["pipeline"] != "KandinskyV22InpaintCombinedPipeline":
        index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return counts


def _built_in(factory, dtype):
    """Build with `dtype` as torch's default, so a large network never exists in float32 first."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype.is_floating_point and dtype != torch.float16 else torch.float32)
    try:
        obj = factory()
    finally:
        torch.set_default_dtype(before)
    if isinstance(obj, torch.nn.Module) and dtype == torch.float16:
        obj = obj.to(dtype)
    return obj


def _save_sam3(family: dict, folder: Path, dtype_name: str) -> dict[str, int]:
    import torch
    from transformers import Sam3Config, Sam3Model

    from generation.tiny import save_tiny_sam3, tiny_tokenizer

    if family.get("tiny"):
        save_tiny_sam3(folder)
        return {"model": n_params(Sam3Model.from_pretrained(folder))}
    tok = tiny_tokenizer(CLIP_VOCAB)
    cfg = Sam3Config()
    cfg.text_config.bos_token_id, cfg.text_config.eos_token_id = tok.bos_token_id, tok.eos_token_id
    cfg.text_config.pad_token_id = tok.pad_token_id
    torch.manual_seed(0)
    model = _built_in(lambda: Sam3Model(cfg), getattr(torch, dtype_name))
    count = n_params(model)
    model.save_pretrained(folder)
    del model
    gc.collect()
    tok.save_pretrained(folder)  # no preprocessor_config.json: the backend uses Sam3ImageProcessor's defaults
    return {"model": count}


def meta_sizes(name: str) -> dict[str, int]:
    """Each network's parameter count at the published size, built on torch's meta device (no memory)."""
    import torch

    family = FAMILIES[name]
    with torch.device("meta"):
        if family["pipeline"] == "Sam3Model":
            from transformers import Sam3Config, Sam3Model

            return {"model": n_params(Sam3Model(Sam3Config()))}
        out = {}
        for comp, factory in components(family).items():
            obj = factory()
            if isinstance(obj, torch.nn.Module):
                out[comp] = n_params(obj)
        return out


def check_sizes(name: str, counts: dict[str, int]) -> None:
    """Refuse a real-size build whose networks do not hold the published parameter counts."""
    want = PUBLISHED[name]
    if counts != want:
        raise AssertionError(f"{name}: parameter counts {counts} differ from the published {want}")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
