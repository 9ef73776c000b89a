"""Tiny random-weight diffusion pipelines (Stable Diffusion, Kandinsky 2.2) built from configs: offline tests
and benchmarks."""
from __future__ import annotations

from pathlib import Path


def tiny_tokenizer(vocab_size: int | None = None):
    """A byte-level CLIP tokenizer that needs no files (no merges: every byte is a token).

    With `vocab_size` (a real model's, e.g. CLIP's 49408) the vocabulary is padded with tokens no text
    tokenizes to, so that the start and end tokens sit at the real ids (`vocab_size - 2`, `- 1`) and adding a
    token (textual inversion) grows a real-size embedding by one row, as with the real tokenizer."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab = {}
    for c in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(c, len(vocab))
    if vocab_size is not None:
        if vocab_size < len(vocab) + 2:
            raise ValueError(f"vocab_size={vocab_size}: a byte-level vocabulary needs at least {len(vocab) + 2}")
        for k in range(vocab_size - 2 - len(vocab)):
            vocab[f"<|unused-{k}|>"] = len(vocab)
    for c in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(c, len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    if len(tok) <= 2:
        raise RuntimeError("tiny tokenizer came out empty; transformers' CLIPTokenizer API changed")
    return tok


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-in character for each of the 256 bytes (CLIP's byte-level alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def tiny_components(in_channels: int = 4, seed: int = 0) -> dict:
    """UNet, VAE, CLIP text encoder, tokenizer and DDIM scheduler at the diffusers test sizes."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=in_channels,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(tokenizer)))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler": scheduler}


def tiny_text2img_pipeline(seed: int = 0):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(**tiny_components(4, seed), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def tiny_inpaint_pipeline(seed: int = 0):
    from diffusers import StableDiffusionInpaintPipeline

    return StableDiffusionInpaintPipeline(**tiny_components(9, seed), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)


def save_tiny(kind: str, folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny `inpaint`, `text2img` or `kandinsky_inpaint` pipeline as a local model folder (loads with
    from_pretrained)."""
    pipe = {"inpaint": tiny_inpaint_pipeline, "text2img": tiny_text2img_pipeline,
            "kandinsky_inpaint": tiny_kandinsky_inpaint_pipeline}[kind](seed)
    folder = Path(folder)
    pipe.save_pretrained(folder)
    return folder


def save_tiny_vision_backbone(folder: Path, seed: int = 0) -> Path:
    """A 2-layer DINOv2-architecture vision model + image processor at 32 px, saved as a model folder
    (what `builder evaluate --model` and `curation.embedding_model` load offline in tests)."""
    import torch
    import transformers
    from transformers import Dinov2Config, Dinov2Model

    # the PIL image processor: the default one wants torchvision, which cannot be installed beside CPU torch
    processor_cls = getattr(transformers, "BitImageProcessorPil", transformers.BitImageProcessor)

    torch.manual_seed(seed)
    net = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, image_size=32, patch_size=8))
    folder = Path(folder)
    net.save_pretrained(folder)
    processor_cls(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                      do_convert_rgb=True).save_pretrained(folder)
    return folder


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A tiny random-weight CLIP (text + vision towers) with processor, saved as a model folder."""
    import torch
    import transformers
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    cfg = CLIPConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                     "pad_token_id": tok.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16)
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    images = processor_cls(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    folder = Path(folder)
    CLIPModel(cfg).save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


def tiny_kandinsky_inpaint_pipeline(seed: int = 0):
    """Kandinsky 2.2's combined inpainting pipeline (prior + decoder) at the sizes of diffusers' fast tests:
    a 1-layer PriorTransformer over 32-d CLIP text/image embeddings, a UNet conditioned on image
    embeddings (`addition_embed_type="image"`), a spatial-norm VQ (movq) and the byte-level tokenizer."""
    import torch
    import transformers
    from diffusers import (DDIMScheduler, KandinskyV22InpaintCombinedPipeline, PriorTransformer,
                           UNet2DConditionModel, UnCLIPScheduler, VQModel)
    from transformers import (CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    dim = 32
    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        hidden_size=dim, projection_dim=dim, intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4,
        num_hidden_layers=2, vocab_size=len(tok)))
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=dim, image_size=32, projection_dim=dim, intermediate_size=37, num_attention_heads=4,
        num_channels=3, num_hidden_layers=2, patch_size=8))
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=dim, num_layers=1)
    prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))  # as diffusers' tests: unit std
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    image_processor = processor_cls(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                    do_center_crop=True, do_normalize=True, do_resize=True, resample=3)
    unet = UNet2DConditionModel(
        in_channels=9, out_channels=8, addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
        encoder_hid_dim=dim, encoder_hid_dim_type="image_proj", cross_attention_dim=dim, attention_head_dim=4,
        resnet_time_scale_shift="scale_shift", class_embed_type=None)
    movq = VQModel(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
                   in_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8, norm_type="spatial",
                   num_vq_embeddings=12, out_channels=3,
                   up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], vq_embed_dim=4)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type="epsilon", thresholding=False)
    prior_scheduler = UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                      num_train_timesteps=1000, clip_sample=True, clip_sample_range=10.0)
    return KandinskyV22InpaintCombinedPipeline(
        unet=unet, scheduler=scheduler, movq=movq, prior_prior=prior, prior_image_encoder=image_encoder,
        prior_text_encoder=text_encoder, prior_tokenizer=tok, prior_scheduler=prior_scheduler,
        prior_image_processor=image_processor)


TINY_SAM3_SIDE = 56  # input side of the tiny SAM 3 (4 x 4 patches of 14 px)


def save_tiny_sam3(folder: Path, seed: int = 0, weight_std: float = 0.15, presence_bias: float = 1.5) -> Path:
    """A random-weight `Sam3Model` small enough for CPU tests (2-layer ViT at 56 px, 8 queries), saved
    with a byte-level CLIP tokenizer and an image-processor config (the real model's layout).

    Matrices are redrawn with `weight_std` (the default initialisation is so small that every photo
    and query scores alike) and the presence head's bias set to `presence_bias`, so that scores vary
    from photo to photo around the default `masks.min_confidence`."""
    import json

    import torch
    from transformers import Sam3Config, Sam3Model

    tok = tiny_tokenizer()
    d, mlp = 32, 64
    heads = {"hidden_size": d, "num_attention_heads": 2, "intermediate_size": mlp}
    grid = TINY_SAM3_SIDE // 14
    cfg = Sam3Config(
        vision_config={"backbone_config": {"model_type": "sam3_vit_model", **heads, "num_hidden_layers": 2,
                                           "image_size": TINY_SAM3_SIDE, "patch_size": 14, "window_size": 2,
                                           "global_attn_indexes": [1], "pretrain_image_size": TINY_SAM3_SIDE},
                       "fpn_hidden_size": d,
                       "backbone_feature_sizes": [[grid * 4] * 2, [grid * 2] * 2, [grid] * 2]},
        text_config={**heads, "vocab_size": len(tok), "projection_dim": d, "num_hidden_layers": 2,
                     "max_position_embeddings": 32, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
        geometry_encoder_config={**heads, "num_layers": 1},
        detr_encoder_config={**heads, "num_layers": 1},
        detr_decoder_config={**heads, "num_layers": 1, "num_queries": 8},
        mask_decoder_config={"hidden_size": d, "num_attention_heads": 2})
    torch.manual_seed(seed)
    model = Sam3Model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, weight_std)
        model.detr_decoder.presence_head.layer3.bias.fill_(presence_bias)
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({  # what Sam3ImageProcessor saves
        "image_processor_type": "Sam3ImageProcessor", "do_resize": True, "do_rescale": True,
        "do_normalize": True, "do_convert_rgb": True, "resample": 2, "rescale_factor": 1 / 255,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "size": {"height": TINY_SAM3_SIDE, "width": TINY_SAM3_SIDE}}, indent=2, sort_keys=True))
    return folder
