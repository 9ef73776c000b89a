"""Textual inversion: one `<disease-class>` token per joined disease, trained on its real images only."""
from __future__ import annotations

import logging
from pathlib import Path

from builder.core.config import SemanticConfig
from builder.core.errors import ConfigError
from builder.core.schema import TOOLKIT_VERSION
from generation.semantic import trainer as T
from generation.semantic.training_set import (TrainingImage, decide_malignant, disease_token, prompt_for,
                                              read_manifest, sha256_file, write_manifest)

log = logging.getLogger(__name__)
EMBEDS = "learned_embeds.safetensors"


def add_token(tokenizer, text_encoder, token: str, init_word: str) -> int:
    """Add `token`, initialised from `init_word`'s embedding (the mean if it splits into pieces)."""
    import torch

    if tokenizer.add_tokens(token) != 1:
        raise ConfigError(f"token {token!r} already exists in the tokenizer; a disease name maps to a "
                          "token twice, or the base model already has it")
    init_ids = tokenizer.encode(init_word, add_special_tokens=False)
    if not init_ids:
        raise ConfigError(f"semantic.init_word={init_word!r} tokenizes to nothing; use a word like 'skin'")
    if len(init_ids) > 1:
        log.warning("init word %r is %d tokens for this tokenizer; starting from their mean",
                    init_word, len(init_ids))
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    token_id = tokenizer.convert_tokens_to_ids(token)
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[token_id] = weight[init_ids].mean(dim=0)
    return token_id


def encode_prompts(tokenizer, text_encoder, prompts: list[str], device):
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids.to(device))[0]


def train_textual_inversion(images: list[TrainingImage], read_rgb, disease: str, cfg: SemanticConfig,
                            out_dir: Path, *, device: str | None = None):
    """Train (or resume, or skip when finished with the same inputs) one disease token.

    Returns (manifest dict, trained text encoder or None when skipped). Only the new embedding
    row changes: other rows get zero gradients, no weight decay, and are restored after each step.
    """
    import torch

    out_dir = Path(out_dir)
    settings = T.settings_for(cfg, "ti")
    fp = T.fingerprint(settings, images)
    done = T.finished_model(out_dir, fp, EMBEDS, f"textual inversion for {disease!r}")
    if done:
        return done, None
    T.check_config(cfg, device)
    acc = T.make_accelerator(cfg, device, cfg.ti_grad_accum)
    pipe = T.load_pipeline(cfg)
    token = disease_token(disease)
    tok, te, unet, vae = pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae
    token_id = add_token(tok, te, token, cfg.init_word)
    for m in (te, unet, vae):
        m.requires_grad_(False)
    emb, keep = _train_only_row(te, token_id)
    dtype = T.weight_dtype(cfg.mixed_precision)
    T.place(unet, acc.device, dtype)
    T.place(vae, acc.device, dtype)
    te.to(acc.device)
    bank = T.encode_images(vae, images, read_rgb, cfg.ti_resolution, acc.device, dtype)
    by_tone = bank.by_tone()
    lr = cfg.ti_lr * (cfg.ti_batch * cfg.ti_grad_accum * acc.num_processes if cfg.ti_scale_lr else 1)
    opt = torch.optim.AdamW([emb], lr=lr, weight_decay=0.0)
    te_p, opt = acc.prepare(te, opt)
    orig = emb.detach().clone()
    start = _resume(out_dir, fp, emb, token_id, opt)
    sched, scaling = T.training_scheduler(pipe), vae.config.scaling_factor

    def micro_step(rng, gen):
        idx = T.pick_balanced(rng, by_tone, cfg.ti_batch)
        hidden = encode_prompts(tok, te_p, [prompt_for(disease, bank.images[i].skin_tone) for i in idx],
                                acc.device)
        return T.diffusion_loss(unet, sched, scaling, bank, idx, hidden, gen, dtype).mean()

    def after_step(step):
        with torch.no_grad():
            emb[keep] = orig[keep].to(emb.dtype)

    def checkpoint(step):
        moments = opt.state.get(emb, {})
        T.save_checkpoint(out_dir, step, {"fingerprint": fp, "row": emb[token_id].detach().cpu(),
                                          "adam": {k: (v[token_id] if v.dim() else v).detach().cpu()
                                                   for k, v in moments.items()}})

    losses = T.run_loop(acc, te_p, opt, cfg.ti_steps, start, cfg.seed, micro_step, after_step,
                        checkpoint, cfg.checkpoint_every, f"ti {disease}")
    manifest = None
    if acc.is_main_process:
        manifest = _save(out_dir, token, emb[token_id], images, disease, settings, fp, losses, cfg)
    acc.wait_for_everyone()
    return manifest or read_manifest(out_dir), acc.unwrap_model(te_p)


def _train_only_row(text_encoder, token_id: int):
    """Make the embedding matrix trainable with every row but `token_id` masked out of the gradient."""
    import torch

    emb = text_encoder.get_input_embeddings().weight
    emb.requires_grad_(True)
    keep = torch.ones(emb.shape[0], dtype=torch.bool)
    keep[token_id] = False
    emb.register_hook(lambda g: g.masked_fill(keep[:, None].to(g.device), 0.0))
    return emb, keep


def _resume(out_dir: Path, fp: str, emb, token_id: int, opt) -> int:
    """Restore the token row and its Adam moments from the newest checkpoint of the same inputs.

    Every other row has had zero gradients and no weight decay, so its moments are exactly zero:
    the token's row of each moment is the whole optimizer state.
    """
    import torch

    state, ckpt = T.matching_checkpoint(out_dir, fp)
    if state is None:
        return 0
    with torch.no_grad():
        emb[token_id] = state["row"].to(emb.device, emb.dtype)
    moments = {}
    for k, v in state["adam"].items():
        if v.dim() == 0:
            moments[k] = v.clone()
        else:
            moments[k] = torch.zeros_like(emb, dtype=v.dtype)
            moments[k][token_id] = v.to(emb.device)
    opt.state[emb] = moments
    log.info("resuming textual inversion from %s", ckpt)
    return int(state["step"])


def _save(out_dir: Path, token: str, row, images, disease, settings, fp, losses, cfg) -> dict:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / EMBEDS
    save_file({token: row.detach().float().cpu().clone()}, str(path))
    manifest = {
        "kind": "textual_inversion", "disease": disease, "token": token,
        "model_id": cfg.model_id, "revision": cfg.revision, "settings": settings, "fingerprint": fp,
        "images": [im.to_json() for im in images], "class_images": [],
        "malignant": decide_malignant(images),
        "adapter": {"file": EMBEDS, "sha256": sha256_file(path)},
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "toolkit_version": TOOLKIT_VERSION,
    }
    write_manifest(out_dir, manifest)
    return manifest
