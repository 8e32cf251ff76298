"""Re-verify the labels of the hidden-signal ground truth with an independent plain-PyTorch run.

For each form of :mod:`nasdepth.diagnosis.hidden` (textures, motifs, band) and seed, with no
nasdepth training code (scikit-learn for the shallow models, a hand-written PyTorch loop):

1. shallow models see nothing: logistic regression and extra trees stay at chance (z < 3 on
   2-fold stratified CV);
2. a network that could see the signal learns it (a residual+BatchNorm CNN with global pooling,
   its 1-D twin, a residual+BatchNorm MLP with dropout 0.5 trained with AdamW's weight decay
   0.1: z > 3), and on shuffled labels stays at chance;
3. each stalled model is measurably worse than its counterfactual: the under-trained run (2
   epochs at lr 1e-4) and the deep plain sigmoid network (vanishing) each score at least 0.1
   less accuracy than the same-size network trained soundly;
4. the sound run is not merely better than chance but calibrated enough to be healthy: its
   pooled validation loss ends below 0.98 label entropies (the rules' "skill" threshold).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/verify_hidden.py [--seeds 1]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from nasdepth.diagnosis.hidden import HIDDEN


class Res(nn.Module):
    def __init__(self, conv: type[nn.Module], norm: type[nn.Module], width: int) -> None:
        super().__init__()
        self.f = nn.Sequential(conv(width, width, 3, padding=1), norm(width), nn.ReLU(),
                               conv(width, width, 3, padding=1), norm(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.f(x))


class ResMLP(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
                               nn.Dropout(dropout), nn.Linear(width, width),
                               nn.BatchNorm1d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.f(x))


def capable(shape: tuple[int, ...], classes: int, dropout: float = 0.5) -> nn.Module:
    if len(shape) == 1:
        return nn.Sequential(nn.Linear(shape[0], 64), nn.BatchNorm1d(64), nn.ReLU(),
                             ResMLP(64, dropout), ResMLP(64, dropout), nn.Linear(64, classes))
    conv, norm, pool = ((nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d) if len(shape) == 3
                        else (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d))
    return nn.Sequential(conv(shape[0], 16, 3, padding=1), norm(16), nn.ReLU(),
                         *[Res(conv, norm, 16) for _ in range(4)], pool(1), nn.Flatten(),
                         nn.Linear(16, classes))


def sigmoid_plain(shape: tuple[int, ...], classes: int) -> nn.Module:
    if len(shape) == 1:
        layers: list[nn.Module] = [nn.Linear(shape[0], 32), nn.Sigmoid()]
        for _ in range(11):
            layers += [nn.Linear(32, 32), nn.Sigmoid()]
        return nn.Sequential(*layers, nn.Linear(32, classes))
    conv, pool = ((nn.Conv2d, nn.AdaptiveAvgPool2d) if len(shape) == 3
                  else (nn.Conv1d, nn.AdaptiveAvgPool1d))
    layers = [conv(shape[0], 8, 3, padding=1), nn.Sigmoid()]
    for _ in range(9):
        layers += [conv(8, 8, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers, pool(1), nn.Flatten(), nn.Linear(8, classes))


def train_score(make, x, y, folds, *, lr: float, epochs: int, seed: int,  # type: ignore[no-untyped-def]
                weight_decay: float = 0.0, decay: bool = False) -> tuple[float, float]:
    """Pooled validation accuracy and cross-entropy (nats) of a plain Adam loop over the folds
    (AdamW where ``weight_decay`` is set; ``decay``: the learning rate follows a cosine to 0,
    so the last epoch's model is not one noisy step at the peak rate)."""
    hits = total = 0
    nats = 0.0
    for k, (tr, va) in enumerate(folds):
        torch.manual_seed(seed * 1000 + k)
        mu, sd = x[tr].mean(0, keepdim=True), x[tr].std(0, keepdim=True) + 1e-6
        xt, xv = (x[tr] - mu) / sd, (x[va] - mu) / sd
        model = make()
        opt = (torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
               if weight_decay else torch.optim.Adam(model.parameters(), lr=lr))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs) if decay else None
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(tr), generator=g).split(32):
                if len(idx) < 2:
                    continue
                loss = nn.functional.cross_entropy(model(xt[idx]), y[tr][idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if sched is not None:
                sched.step()
        model.eval()
        with torch.no_grad():
            out = model(xv)
            hits += int((out.argmax(1) == y[va]).sum())
            nats += float(nn.functional.cross_entropy(out, y[va], reduction="sum"))
        total += len(va)
    return hits / total, nats / total


def z_score(acc: float, chance: float, n: int) -> float:
    return (acc - chance) / math.sqrt(chance * (1 - chance) / n)


def verify(form: str, seed: int) -> list[tuple[str, bool, str]]:
    data = HIDDEN[form](seed)
    shuffled = HIDDEN[form](seed, shuffle_labels=True)
    x, y = data.x.float(), data.y
    xn, yn = x.reshape(len(x), -1).numpy(), y.numpy()
    folds = [(torch.as_tensor(a), torch.as_tensor(b)) for a, b in
             StratifiedKFold(2, shuffle=True, random_state=seed + 7).split(xn, yn)]
    n = len(yn)
    chance = float(np.bincount(yn).max() / n)
    shallow = []
    for model in (make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
                  ExtraTreesClassifier(n_estimators=60, min_samples_leaf=2, random_state=seed)):
        hits = 0
        for tr, va in folds:
            model.fit(xn[tr.numpy()], yn[tr.numpy()])
            hits += int((model.predict(xn[va.numpy()]) == yn[va.numpy()]).sum())
        shallow.append(z_score(hits / n, chance, n))
    shape, classes = tuple(x.shape[1:]), int(y.max()) + 1
    # the band's 600 training rows per fold: without dropout and weight decay the MLP fits
    # their noise before it finds the band (its validation loss stays above the entropy)
    ep_ok, wd_ok = (40, 0.1) if form == "band" else (10, 0.0)
    good, good_nats = train_score(lambda: capable(shape, classes), x, y, folds, lr=3e-3,
                                  epochs=ep_ok, seed=seed, weight_decay=wd_ok, decay=True)
    shuf, _ = train_score(lambda: capable(shape, classes), shuffled.x.float(), shuffled.y,
                          folds, lr=3e-3, epochs=ep_ok, seed=seed, weight_decay=wd_ok,
                          decay=True)
    under, _ = train_score(lambda: capable(shape, classes), x, y, folds, lr=1e-4, epochs=2,
                           seed=seed)
    sig, _ = train_score(lambda: sigmoid_plain(shape, classes), x, y, folds, lr=3e-3,
                         epochs=3, seed=seed)
    zg, zs = z_score(good, chance, n), z_score(shuf, chance, n)
    freq = np.bincount(yn) / n
    entropy = float(-(freq[freq > 0] * np.log(freq[freq > 0])).sum())
    plain = ""
    if form == "band":  # the same network and epochs without dropout and weight decay
        acc, nats = train_score(lambda: capable(shape, classes, dropout=0.0), x, y, folds,
                                lr=3e-3, epochs=ep_ok, seed=seed, decay=True)
        plain = (f"; without dropout and weight decay: accuracy {acc:.3f}, "
                 f"{nats / entropy:.3f} label entropies")
    return [
        ("shallow models at chance", max(shallow) < 3,
         f"logistic z {shallow[0]:.1f}, extra trees z {shallow[1]:.1f}"),
        ("a capable network learns, not on shuffled labels", zg > 3 and zs < 3,
         f"accuracy {good:.3f} (z {zg:.1f}) vs {shuf:.3f} on shuffled labels (z {zs:.1f}); "
         f"chance {chance:.3f}"),
        ("stalled runs worse than their counterfactual", good - under > 0.1 and
         good - sig > 0.1, f"under-trained {under:.3f}, deep plain sigmoid {sig:.3f}, "
         f"sound {good:.3f}"),
        ("the sound run's validation loss below the label entropy", good_nats / entropy < 0.98,
         f"{good_nats / entropy:.3f} label entropies ({good_nats:.3f} nats vs "
         f"{entropy:.3f}; accuracy {good:.3f}{plain})"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    ok = total = 0
    for form in HIDDEN:
        for seed in range(args.seeds):
            for what, passed, figure in verify(form, seed):
                total += 1
                ok += passed
                print(f"{form:9s} seed {seed}  {'ok  ' if passed else 'FAIL'} {what}: {figure}",
                      flush=True)
    print(f"\n{ok}/{total} label checks passed")


if __name__ == "__main__":
    main()
