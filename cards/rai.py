"""Responsible-AI statements (collection, biases, limitations, sensitive information, use cases), shared by card and Croissant."""
from __future__ import annotations

from cards.sources import Source

METHOD_BIASES = (
    "Generative models carry biases of their pre-training data (lighter-skinned dermatology images "
    "dominate public sets), which can leak into semantic rows.",
)


GENERATION = {
    "healthy": "healthy: the lesion (and surgical-ink marks) of a source photo inpainted, the rest of the photo kept",
    "lesion_mapped": "lesion_mapped: a donor photo's lesion cut out by its mask and pasted onto a healthy image's skin",
    "semantic": "semantic: sampled from a diffusion model fine-tuned (textual inversion, LoRA) on train-split photos",
    "real": "real: source photos as ingested",
}


def generation(kinds: list[str]) -> list[str]:
    """How each published kind was made from the source photos."""
    return [GENERATION[k] for k in kinds]


def data_collection(sources: list[Source], kinds: list[str]) -> str:
    return (" ".join(s.collection for s in sources) + f" From these, cgddi-toolkit made the {', '.join(kinds)} "
            "images with the cgDDI method; each row names the source photos it derives from.")


def biases(sources: list[Source], kinds: list[str]) -> list[str]:
    return [b for s in sources for b in s.biases] + (list(METHOD_BIASES) if "semantic" in kinds else [])


def limitations(sources: list[Source], kinds: list[str]) -> list[str]:
    out = ["Not for clinical use. Synthetic images can look plausible and still be wrong; labels come from "
           "the source lesion (lesion-mapped) or from the prompt (semantic), not from a new diagnosis."]
    if "lesion_mapped" in kinds or "semantic" in kinds:
        out.append("Rare diseases rest on a few source photos: lesion-mapped and semantic rows of such "
                   "classes repeat the same few lesions, which inflates apparent class size.")
    if "healthy" in kinds:
        out.append("Healthy images are the source photos with the lesion inpainted away: apart from that "
                   "region they are the same photo, so they are not independent samples of healthy skin.")
    out.append("Evaluate on held-out source photos only, with the split used to build this version.")
    if all(not s.real_patients for s in sources):
        out.insert(0, "Built from the toolkit's drawn demo photos: for trying the pipeline only; says "
                      "nothing about real skin or disease.")
    return out


def personal_sensitive(sources: list[Source]) -> list[str]:
    return [s.sensitive for s in sources]


def use_cases(sources: list[Source]) -> list[str]:
    if all(not s.real_patients for s in sources):
        return ["Testing and demonstrating the cgDDI build pipeline and the tools that read its output."]
    return ["Research on fair dermatology AI: training and augmenting skin-lesion classifiers (e.g. "
            "PatchAlign24, FairDisCo) with skin-tone-balanced synthetic images, evaluated on held-out real "
            "photos.", "Not for clinical decisions, diagnosis or any medical device."]
