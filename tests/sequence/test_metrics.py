import pytest
import torch

from backbonekit.sequence.metrics import SequenceAccuracy, fixed_adaptive, sequence_scores

# (pred, label, Fixed, Adaptive) — the worked examples of the official metric (SeqDeepFake paper and code)
EXAMPLES = [
    ([1, 2, 0, 0, 0], [1, 2, 4, 0, 0], (4, 5), (2, 3)),
    ([2, 1, 4, 0, 0], [1, 2, 4, 0, 0], (3, 5), (1, 3)),
    ([1, 0, 0, 0, 0], [0, 0, 0, 0, 0], (4, 5), (0, 1)),
    ([1, 2, 4, 3, 5], [1, 2, 4, 0, 0], (3, 5), (3, 5)),
]


@pytest.mark.parametrize("pred,label,fixed,adaptive", EXAMPLES)
def test_worked_examples(pred, label, fixed, adaptive):
    f, a = fixed_adaptive(torch.tensor([pred]), torch.tensor([label]))
    assert f == pytest.approx(fixed[0] / fixed[1])
    assert a == pytest.approx(adaptive[0] / adaptive[1])


def test_original_predicted_original_counts_one_of_one():
    s = sequence_scores(torch.zeros(1, 5), torch.zeros(1, 5))
    assert (s["adaptive_correct"].item(), s["adaptive_total"].item()) == (1, 1)


def test_summed_over_split_not_averaged_per_image():
    preds = torch.tensor([p for p, _, _, _ in EXAMPLES])
    labels = torch.tensor([y for _, y, _, _ in EXAMPLES])
    f, a = fixed_adaptive(preds, labels)
    assert f == pytest.approx((4 + 3 + 4 + 3) / 20)
    assert a == pytest.approx((2 + 1 + 0 + 3) / (3 + 3 + 1 + 5))  # 6/12 = 0.5; a per-image mean would be 0.4


def test_accumulator_matches_one_shot_and_reports_breakdowns():
    preds = torch.tensor([p for p, _, _, _ in EXAMPLES] + [[0] * 5, [3, 0, 0, 0, 0]])
    labels = torch.tensor([y for _, y, _, _ in EXAMPLES] + [[0] * 5, [3, 0, 0, 0, 0]])
    m = SequenceAccuracy()
    for i in range(0, len(preds), 3):  # uneven batches
        m.update(preds[i:i + 3], labels[i:i + 3])
    r = m.compute()
    f, a = fixed_adaptive(preds, labels)
    assert r["fixed_acc"] == pytest.approx(f) and r["adaptive_acc"] == pytest.approx(a)
    assert r["count"] == 6 and r["exact_match"] == pytest.approx(2 / 6)
    assert r["per_length"][0] == {"count": 2, "exact_match": 0.5, "fixed_acc": 0.9, "adaptive_acc": 0.5}
    assert r["per_length"][1]["exact_match"] == 1.0
    assert r["per_length"][3]["count"] == 3
    conf = torch.tensor(r["first_edit_confusion"])
    assert conf.sum() == 6 and conf[1, 1] == 2 and conf[1, 2] == 1 and conf[0, 1] == 1 and conf[0, 0] == 1
    m.reset()
    assert int(m.count.sum()) == 0
