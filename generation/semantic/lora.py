"""DreamBooth-style LoRA per disease with prior preservation on healthy class images of the same tone."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from builder.core.config import SemanticConfig
from builder.core.errors import BuildError
from builder.core.schema import SKIN_TONES, TOOLKIT_VERSION, sample_seed
from builder.core.store import decode_rgb, encode_png
from generation.semantic import trainer as T
from generation.semantic.sampling import generate_batch
from generation.semantic.textual_inversion import encode_prompts
from generation.semantic.training_set import (TrainingImage, class_prompt, decide_malignant, prompt_for,
                                              read_manifest, sha256_file, write_manifest)

log = logging.getLogger(__name__)
LORA_FILE = "pytorch_lora_weights.safetensors"
TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]


def choose_class_images(candidates: list[TrainingImage], n: int) -> list[TrainingImage]:
    """Up to ceil(n/3) per tone, in a seeded order (not the store's), so the choice is stable and balanced."""
    per_tone = math.ceil(n / len(SKIN_TONES))
    out = []
    for tone in SKIN_TONES:
        pool = sorted((c for c in candidates if c.skin_tone == tone), key=lambda c: sample_seed(c.sample_id))
        out.extend(pool[:per_tone])
    return sorted(out, key=lambda c: c.sample_id)


def generate_prior_images(cfg: SemanticConfig, tones: list[str], n: int, folder: Path,
                          device: str | None) -> list[TrainingImage]:
    """DreamBooth's fallback when no healthy synthetics exist for a tone: the base model's own class images.

    They derive from no real image (source_ids empty); cached in `folder` and reused by every disease.
    """
    import hashlib

    per_tone = math.ceil(n / len(SKIN_TONES))
    want = [(t, k) for t in tones for k in range(per_tone)]
    paths = {tk: folder / f"{tk[0]}-{tk[1]:04d}.png" for tk in want}
    missing = [tk for tk in want if not paths[tk].is_file()]
    if missing:
        dev = device or ("cuda" if T._resolve_device(None) == "cuda" else "cpu")
        pipe = T.load_pipeline(cfg).to(dev)
        gcfg = _prior_sampling_cfg(cfg)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(0, len(missing), cfg.sample_batch):
            batch = missing[k:k + cfg.sample_batch]
            images = generate_batch(pipe, [class_prompt(t) for t, _ in batch],
                                    [sample_seed(f"prior:{t}:{i}", cfg.seed) for t, i in batch], gcfg)
            for tk, rgb in zip(batch, images):
                if rgb is None:
                    raise BuildError(f"prior class image {tk} came out non-finite; set "
                                     "semantic.mixed_precision to bf16 or no, or pass --healthy")
                tmp = paths[tk].with_name(f".{paths[tk].name}.{os.getpid()}.tmp")
                tmp.write_bytes(encode_png(rgb))  # every process may make it: same seed, same bytes
                os.replace(tmp, paths[tk])
    out = []
    for t, k in want:
        data = paths[(t, k)].read_bytes()
        out.append(TrainingImage(f"prior-{t}-{k:04d}", (), t, "healthy", False, hashlib.sha256(data).hexdigest()))
    return out


def _prior_sampling_cfg(cfg: SemanticConfig) -> SemanticConfig:
    import dataclasses

    return dataclasses.replace(cfg, sample_resolution=cfg.lora_resolution, negative_prompt="")


def train_lora(instances: list[TrainingImage], read_instance, classes: list[TrainingImage], read_class,
               disease: str, ti_path: Path, cfg: SemanticConfig, out_dir: Path, *, device: str | None = None):
    """Train (resume, or skip when finished with the same inputs) one disease's LoRA on the UNet.

    The TI embedding is loaded first and stays frozen. Each step draws instance images tone-balanced
    and, with prior_weight > 0, class images of the same tones. Returns (manifest, pipeline or None).
    """
    import torch

    out_dir = Path(out_dir)
    settings = T.settings_for(cfg, "lora")
    extra = {"ti_sha256": sha256_file(ti_path), "classes": [(c.sample_id, c.sha256) for c in classes]}
    fp = T.fingerprint(settings, instances, extra)
    done = T.finished_model(out_dir, fp, LORA_FILE, f"LoRA for {disease!r}")
    if done:
        return done, None
    T.check_config(cfg, device)
    acc = T.make_accelerator(cfg, device, cfg.lora_grad_accum)
    pipe = T.load_pipeline(cfg)
    pipe.load_textual_inversion(str(ti_path))
    tok, te, unet, vae = pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae
    for m in (te, unet, vae):
        m.requires_grad_(False)
    dtype = T.weight_dtype(cfg.mixed_precision)
    for m in (unet, vae, te):
        T.place(m, acc.device, dtype)
    params = _add_lora(unet, cfg.lora_rank, cfg.seed)
    if cfg.lora_gradient_checkpointing:  # less memory; weights equal up to float rounding (in the fingerprint)
        unet.enable_gradient_checkpointing()
    inst = T.encode_images(vae, instances, read_instance, cfg.lora_resolution, acc.device, dtype)
    cls = T.encode_images(vae, classes, read_class, cfg.lora_resolution, acc.device, dtype) if classes else None
    opt = torch.optim.AdamW(params, lr=cfg.lora_lr)
    unet_p, opt = acc.prepare(unet, opt)
    start = _resume(out_dir, fp, unet, opt)
    sched, scaling = T.training_scheduler(pipe), vae.config.scaling_factor
    inst_tones, cls_tones = inst.by_tone(), cls.by_tone() if cls else {}

    def micro_step(rng, gen):
        idx = T.pick_balanced(rng, inst_tones, cfg.lora_batch)
        tones = [inst.images[i].skin_tone for i in idx]
        with torch.no_grad():
            hidden = encode_prompts(tok, te, [prompt_for(disease, t) for t in tones], acc.device)
        loss = T.diffusion_loss(unet_p, sched, scaling, inst, idx, hidden, gen, dtype).mean()
        if cls is not None and cfg.prior_weight > 0:
            cidx = T.pick_balanced(rng, cls_tones, cfg.lora_batch, tones=tones)
            with torch.no_grad():
                chidden = encode_prompts(tok, te, [class_prompt(cls.images[i].skin_tone) for i in cidx],
                                         acc.device)
            loss = loss + cfg.prior_weight * T.diffusion_loss(unet_p, sched, scaling, cls, cidx, chidden,
                                                              gen, dtype).mean()
        return loss

    def checkpoint(step):
        T.save_checkpoint(out_dir, step, {"fingerprint": fp, "lora": _lora_state(unet),
                                          "optimizer": opt.state_dict()})

    losses = T.run_loop(acc, unet_p, opt, cfg.lora_steps, start, cfg.seed, micro_step, lambda s: None,
                        checkpoint, cfg.checkpoint_every, f"lora {disease}")
    manifest = None
    if acc.is_main_process:
        manifest = _save(out_dir, unet, instances, classes, disease, settings, fp, losses, cfg, ti_path)
    acc.wait_for_everyone()
    return manifest or read_manifest(out_dir), pipe


def _add_lora(unet, rank: int, seed: int) -> list:
    """peft LoRA on the UNet attention projections; its weights train in fp32 even on an fp16 UNet.

    The Gaussian init draws from torch's global generator: seeded here, so the initial weights depend on
    the config's seed, not on what the process drew before (another model trained in the same process)."""
    import torch
    from peft import LoraConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGETS))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    return params


def _lora_state(unet) -> dict:
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().cpu() for k, v in get_peft_model_state_dict(unet).items()}


def _resume(out_dir: Path, fp: str, unet, opt) -> int:
    from peft.utils import set_peft_model_state_dict

    state, ckpt = T.matching_checkpoint(out_dir, fp)
    if state is None:
        return 0
    set_peft_model_state_dict(unet, state["lora"])
    opt.load_state_dict(state["optimizer"])
    log.info("resuming LoRA from %s", ckpt)
    return int(state["step"])


def _save(out_dir, unet, instances, classes, disease, settings, fp, losses, cfg, ti_path) -> dict:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers

    out_dir.mkdir(parents=True, exist_ok=True)
    layers = convert_state_dict_to_diffusers(_lora_state(unet))
    StableDiffusionPipeline.save_lora_weights(out_dir, unet_lora_layers=layers, weight_name=LORA_FILE,
                                              safe_serialization=True)
    path = out_dir / LORA_FILE
    manifest = {
        "kind": "lora", "disease": disease, "model_id": cfg.model_id, "revision": cfg.revision,
        "settings": settings, "fingerprint": fp,
        "images": [im.to_json() for im in instances], "class_images": [c.to_json() for c in classes],
        "malignant": decide_malignant(instances),
        "textual_inversion": {"file": Path(ti_path).name, "sha256": sha256_file(ti_path)},
        "adapter": {"file": LORA_FILE, "sha256": sha256_file(path)},
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "toolkit_version": TOOLKIT_VERSION,
    }
    write_manifest(out_dir, manifest)
    return manifest


def class_reader(healthy, prior_dir: Path):
    """Pixels of a class image: a healthy store's image, or a cached base-model prior image."""
    def read(im: TrainingImage):
        if im.sample_id.startswith("prior-"):
            return decode_rgb((Path(prior_dir) / f"{im.sample_id[len('prior-'):]}.png").read_bytes())
        return decode_rgb(healthy.image_path(im.sample_id).read_bytes())
    return read
