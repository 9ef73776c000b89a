"""PatchAlign24's and FairDisCo's DDI conventions, reproduced over both CSVs of a real export.

Written from their code read in place (aayushmanace/PatchAlign24 `train_PatchAlign_DDI_InDomain.py`,
`Models/got_losses.py`; siyi-wind/FairDisCo `train_DisCo.py`, `Models/models_losses.py`), not
vendored: the `SkinDataset` of `dataset_name == 'ddi'` (pandas CSV, `os.path.join(root, hasher)`,
cv2 BGR->RGB), their eval transform (resize 256, centre 224, ImageNet normalisation), the
`WeightedRandomSampler` built from `train[label].value_counts().sort_index()`, the targets
`label_c = batch['high']`, `label_t = batch['fitzpatrick'] - 1`, heads shaped as their networks
(`[len(label_codes), 6]`), and the losses on them: cross-entropy (condition, type), the confusion
loss, and FairDisCo's supervised contrastive loss on a 128-d projection.
"""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from builder.cli import main

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")
cv2 = pytest.importorskip("cv2")

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
# PatchAlign24's README ("Data", step 4): change ddi_metadata_code.csv's fitzpatrick 1,2,3 to 1,3,5;
# FairDisCo keeps data_play_ddi.ipynb's 1,2,3.
THEIR_TONES = {"patchalign": {12: 1, 34: 3, 56: 5}, "fairdisco": {12: 1, 34: 2, 56: 3}}


def _export(ddi_build, target, out, *extra):
    _, _, root = ddi_build
    assert main(["export", target, "--version", "1.1", "--build-out", str(root / "out"), "--out", str(out),
                 "--real", str(root / "ddi"), *extra]) == 0
    return out


@pytest.fixture(scope="module", params=["patchalign", "fairdisco"])
def exported(request, ddi_build, tmp_path_factory):
    return request.param, _export(ddi_build, request.param, tmp_path_factory.mktemp(request.param))


def eval_transform(rgb: np.ndarray) -> "torch.Tensor":
    """ToPILImage, Resize(256), CenterCrop(224), ToTensor, Normalize: their test-time transform."""
    from PIL import Image

    im = Image.fromarray(rgb)
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((max(256, round(w * s)), max(256, round(h * s))), Image.Resampling.BILINEAR)
    left, top = (im.size[0] - 224) // 2, (im.size[1] - 224) // 2
    x = np.asarray(im.crop((left, top, left + 224, top + 224)), np.float64) / 255
    return torch.from_numpy(((x - MEAN) / STD).transpose(2, 0, 1).copy())


class SkinDataset(torch.utils.data.Dataset):
    """Their `SkinDataset` for `dataset_name == 'ddi'`."""

    def __init__(self, csv_file, root_dir, transform):
        self.df, self.root_dir, self.transform = pd.read_csv(csv_file), root_dir, transform

    def __len__(self):
        return len(self.df)

    def __getitem__(self, idx):
        row = self.df.loc[self.df.index[idx]]
        image = cv2.imread(os.path.join(self.root_dir, str(row["hasher"])))
        assert image is not None, f"{row['hasher']} is not readable under {self.root_dir}"
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return {"image": self.transform(image), "high": row["high"], "mid": 0, "low": row["low"],
                "hasher": row["hasher"], "fitzpatrick": row["fitzpatrick"], "partition": row["disease"],
                "weight": row["REWT_weights"]}


class TinyNet(torch.nn.Module):
    """Outputs shaped as their networks: [condition (bs, n), type (bs, 6), type on detached features
    (bs, 6), projection (bs, 128)] (FairDisCo 'disentangle'; PatchAlign24 'sparse' has the same first three)."""

    def __init__(self, n_conditions):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 8, stride=8), torch.nn.ReLU(),
                                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 16))
        self.branch_1, self.branch_2 = torch.nn.Linear(16, n_conditions), torch.nn.Linear(16, 6)
        self.project_head = torch.nn.Linear(16, 128)

    def forward(self, x):
        f = self.features(x)
        return [self.branch_1(f), self.branch_2(f), self.branch_2(f.detach()), self.project_head(f)]


def confusion_loss(output):
    return -torch.mean(torch.mean(torch.log(torch.softmax(output, dim=1)), dim=1), dim=0)


def supervised_contrastive_loss(projections, targets, temperature=0.1):
    sim = torch.nn.functional.cosine_similarity(projections.unsqueeze(1), projections.unsqueeze(0), dim=2) / temperature
    exp = torch.exp(sim - torch.max(sim, dim=1, keepdim=True)[0]) + 1e-5
    same = targets.unsqueeze(1).repeat(1, targets.shape[0]) == targets
    pos = same * (1 - torch.eye(exp.shape[0]))
    log_prob = -torch.log(exp / (torch.sum(exp * ~same, dim=1, keepdim=True) + exp + 1e-5))
    return torch.sum(log_prob * pos) / (torch.sum(pos) + 1e-5)


def _loaders(out, label="high", batch_size=16):
    train = pd.read_csv(out / "train.csv")
    class_sample_count = np.array(train[label].value_counts().sort_index())
    weight = 1.0 / class_sample_count
    samples_weight = torch.from_numpy(np.array([weight[t] for t in train[label]]))
    sampler = torch.utils.data.WeightedRandomSampler(samples_weight.double(), len(samples_weight), replacement=True)
    root = str(out / "images")
    return train, {
        "train": torch.utils.data.DataLoader(SkinDataset(out / "train.csv", root, eval_transform),
                                             batch_size=batch_size, sampler=sampler),
        "val": torch.utils.data.DataLoader(SkinDataset(out / "test.csv", root, eval_transform),
                                           batch_size=batch_size, shuffle=False)}


def test_columns_and_encodings_are_theirs(exported, ddi_build):
    target, out = exported
    src, _, _ = ddi_build
    for name in ("train.csv", "test.csv"):
        df = pd.read_csv(out / name)
        assert {"hasher", "high", "low", "fitzpatrick", "disease", "DDI_file", "skin_tone", "malignant",
                "REWT_weights", "RESM_weights"} <= set(df.columns)
        assert set(df["high"]) <= {0, 1}
        assert (df["fitzpatrick"] == df["skin_tone"].map(THEIR_TONES[target])).all()
        assert (df["high"] == df["malignant"].astype(int)).all()
    table = pd.read_csv(src["table"])
    codes = dict(zip(pd.read_csv(out / "low_codes.csv")["disease"], pd.read_csv(out / "low_codes.csv")["low"]))
    # data_play_ddi.ipynb: df['disease'].astype('category').cat.codes over DDI's full table (78 names)
    assert codes["melanoma-in-situ"] == 47 and codes["basal-cell-carcinoma"] == 11 and codes["healthy"] == 78
    assert set(table["disease"]) <= set(codes)


def test_test_csv_is_the_holdout_and_train_never_derives_from_it(exported, ddi_build):
    _, out = exported
    src, _, _ = ddi_build
    test, train = pd.read_csv(out / "test.csv"), pd.read_csv(out / "train.csv")
    assert set(test["kind"]) == {"real"} and {h[:-4] for h in test["hasher"]} == src["test"]
    assert {h[:-4] for h in train.loc[train["kind"] == "real", "hasher"]} == src["train"]  # photos we have
    assert "lesion_mapped" in set(train["kind"]) and "healthy" not in set(train["kind"])  # lesions only
    assert "healthy" not in set(pd.concat([train, test])["disease"])
    for sources in train["source_ids"]:
        assert not {s.split(":", 1)[1] for s in sources.split(";")} & src["holdout"], sources
    for h in pd.concat([train, test])["hasher"]:
        p = out / "images" / h
        assert p.is_file()
        assert p.is_symlink() == (not h.startswith(("healthy-", "lesion_mapped-")))  # reals linked, not copied


def test_their_training_loop_runs_on_train_and_test(exported):
    target, out = exported
    train, loaders = _loaders(out)
    label_codes = sorted(train["high"].unique())
    weights = np.array(max(train["high"].value_counts()) / train["high"].value_counts().sort_index())
    assert label_codes == [0, 1] and weights.shape == (2,)
    torch.manual_seed(0)
    model = TinyNet(len(label_codes))
    ce = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for n, batch in enumerate(loaders["train"]):
        assert batch["image"].shape[1:] == (3, 224, 224)
        label_c = torch.from_numpy(np.asarray(batch["high"]))
        label_t = torch.from_numpy(np.asarray(batch["fitzpatrick"] - 1))
        # their 6-way skin-type head: 0/2/4 (PatchAlign24's 1/3/5), 0/1/2 (FairDisCo)
        assert label_c.dtype == torch.int64 and set(label_t.tolist()) <= {t - 1 for t in THEIR_TONES[target].values()}
        output = model(batch["image"].float())
        loss = ce(output[0], label_c) + confusion_loss(output[1]) * 0.5 + ce(output[2], label_t)
        if target == "fairdisco":
            loss = loss + supervised_contrastive_loss(output[3], label_c) * 0.8
        rewt = torch.mean(torch.nn.functional.cross_entropy(output[0], label_c, reduction="none")
                          * batch["weight"].float())  # train_REWT.py
        assert torch.isfinite(loss) and torch.isfinite(rewt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if n == 2:
            break
    from sklearn.metrics import balanced_accuracy_score

    seen = 0
    with torch.no_grad():
        for batch in loaders["val"]:
            probability = torch.softmax(model(batch["image"].float())[0], dim=1)
            _, preds = torch.topk(probability, 1)
            balanced_accuracy_score(batch["high"].cpu(), preds.reshape(-1).cpu())
            seen += len(batch["hasher"])
    assert seen == len(pd.read_csv(out / "test.csv"))


def test_image_size_and_training_notes(ddi_build, tmp_path):
    out = _export(ddi_build, "patchalign", tmp_path / "pa", "--image-size", "64")
    from PIL import Image

    rows = list(csv.DictReader(open(out / "train.csv")))
    synthetic = [r for r in rows if r["kind"] != "real"]
    assert synthetic and all(Image.open(out / "images" / r["hasher"]).size == (64, 64) for r in synthetic)
    notes = (out / "TRAINING.md").read_text()
    assert "train_PatchAlign_DDI_InDomain.py" in notes and str(out / "images") in notes


def their_tone_group(target: str, fitzpatrick: int) -> int:
    """Their evaluation's `cal_metrics` in multi_evaluate.ipynb, for the random holdout: PatchAlign24
    `type = (fitzpatrick-1)//num` with `num=[1,2][holdout_set=='random_holdout']` (= 2); FairDisCo
    `type = fitzpatrick-1` with `type_indices = [0, 1, 2]`."""
    return (fitzpatrick - 1) // 2 if target == "patchalign" else fitzpatrick - 1


def cal_metrics(df, target):
    """Their accuracy per tone group and PQD over a results table (`fitzpatrick`, `label`, `prediction`)."""
    labels, correct = np.zeros((3, 2)), np.zeros((3, 2))
    for _, r in df.iterrows():
        t = their_tone_group(target, r["fitzpatrick"])
        labels[t, r["label"]] += 1
        correct[t, r["label"]] += r["prediction"] == r["label"]
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = correct.sum(1) / labels.sum(1)
    return acc, acc.min() / acc.max()


def _edits(notes: str) -> list[tuple[str, str]]:
    """(original, replacement) of every edit TRAINING.md lists, in its order."""
    import re

    return re.findall(r"replace\n   `([^`]+)`\n   by\n   `([^`]+)`", notes)


def test_their_reading_order_and_tone_groups(exported, tmp_path, monkeypatch):
    """Their script's main block with TRAINING.md's edits applied, run from a clone-like folder that
    holds none of our files: read ddi_metadata_code.csv, split, write temp CSVs, custom_load, evaluate."""
    target, out = exported
    edits = _edits((out / "TRAINING.md").read_text())
    assert [o.split(" = ")[0] for o, _ in edits] == ["df", "train, test, y_train, y_test", "image_dir"]
    assert all(str(out) in new for _, new in edits)  # the user's paths, not placeholders
    monkeypatch.chdir(tmp_path)  # their working directory: no ddi_metadata_code.csv, no images/ here
    scope = {"pd": pd}
    exec(edits[0][1], scope)  # df = pd.read_csv(...ddi_metadata_code.csv): what they read first
    exec(edits[1][1], scope)  # train, test = our split
    exec(edits[2][1], scope)  # image_dir
    df, train, test = scope["df"], scope["train"], scope["test"]
    assert len(df) == len(train) + len(test) and set(df["hasher"]) == set(train["hasher"]) | set(test["hasher"])
    train.to_csv("temp_train_M.csv", index=False)
    test.to_csv("temp_test_M.csv", index=False)
    data = SkinDataset("temp_test_M.csv", scope["image_dir"], eval_transform)
    rows = [data[i] for i in range(len(data))]  # every test image readable under their image_dir
    for frame in (df, train):  # a three-tone source gives three non-empty groups
        assert sorted({their_tone_group(target, f) for f in frame["fitzpatrick"]}) == [0, 1, 2]
    tested = {their_tone_group(target, r["fitzpatrick"]) for r in rows}
    assert len(tested) == len(set(test["skin_tone"]))  # one group per DDI tone in test: none merged
    predictions = [int(i % 2) for i in range(len(df))]  # any classifier: every group must get a score
    acc, pqd = cal_metrics(pd.DataFrame({"fitzpatrick": df["fitzpatrick"], "label": df["high"],
                                         "prediction": predictions}), target)
    assert np.isfinite(acc).all() and np.isfinite(pqd)
