import pytest

from backbonekit.detection.evaluate_kitti import evaluate_kitti, score_thresholds
from backbonekit.detection.kitti import KittiObject


def obj(kind, box, score=None, truncated=0.0, occluded=0):
    return KittiObject(kind, truncated, occluded, -10.0, tuple(float(v) for v in box), score=score)


CAR_BOX = (100, 100, 200, 160)  # 60 px tall: Easy


def images(n, **kw):
    return [[obj("Car", CAR_BOX, **kw)] for _ in range(n)]


def car_ap(gt, dets, placement="devkit", recall_points=40):
    return evaluate_kitti(gt, dets, classes=("Car",), placement=placement, recall_points=recall_points)["ap"]["Car"]


def test_perfect_detections_score_100():
    gt = images(45)
    dets = [[obj("Car", CAR_BOX, score=0.5 + i / 100)] for i in range(45)]
    assert car_ap(gt, dets) == {"easy": 100.0, "moderate": 100.0, "hard": 100.0}
    assert car_ap(gt, dets, recall_points=11)["easy"] == 100.0


def test_devkit_needs_41_objects_for_100_and_recall_placement_does_not():
    # The devkit puts its k-th precision sample at recall k/40: with n objects it has only n samples.
    for n, expected in [(10, 9 / 40 * 100), (40, 39 / 40 * 100), (41, 100.0)]:
        dets = [[obj("Car", CAR_BOX, score=0.9)] for _ in range(n)]
        assert car_ap(images(n), dets)["easy"] == pytest.approx(expected)
        assert car_ap(images(n), dets, placement="recall")["easy"] == pytest.approx(100.0)


def test_half_missed_scores_50():
    gt = images(80)
    dets = [[obj("Car", CAR_BOX, score=1 - i / 100)] if i < 40 else [] for i in range(80)]
    assert car_ap(gt, dets)["easy"] == pytest.approx(50.0)
    assert car_ap(gt, dets, placement="recall")["easy"] == pytest.approx(50.0)


def test_one_top_scoring_false_positive():
    # 41 found plus one false positive scoring above all: precision m/(m+1) at m found, best 41/42 everywhere.
    gt = images(41)
    dets = [[obj("Car", CAR_BOX, score=0.5)] for _ in range(41)]
    dets[0].append(obj("Car", (400, 100, 500, 160), score=0.99))
    assert car_ap(gt, dets)["easy"] == pytest.approx(41 / 42 * 100)


def test_detection_in_dontcare_is_not_a_false_positive():
    gt = images(41)
    gt[0].append(obj("DontCare", (390, 90, 520, 170), truncated=-1, occluded=-1))
    dets = [[obj("Car", CAR_BOX, score=0.5)] for _ in range(41)]
    dets[0].append(obj("Car", (400, 100, 500, 160), score=0.99))
    assert car_ap(gt, dets)["easy"] == 100.0


def test_van_is_ignored_for_car():
    gt = images(41)
    gt[0].append(obj("Van", (400, 100, 500, 160)))  # a Van nobody detected is not a miss…
    gt[1].append(obj("Van", (400, 100, 500, 160)))
    dets = [[obj("Car", CAR_BOX, score=0.5)] for _ in range(41)]
    dets[1].append(obj("Car", (400, 100, 500, 160), score=0.99))  # …and a Car box on a Van is no false positive
    result = evaluate_kitti(gt, dets, classes=("Car",))
    assert result["ap"]["Car"]["easy"] == 100.0 and result["num_gt"]["Car"]["easy"] == 41


def test_person_sitting_is_ignored_for_pedestrian_but_not_cyclist():
    gt = [[obj("Pedestrian", CAR_BOX)] for _ in range(41)]
    gt[0].append(obj("Person_sitting", (400, 100, 450, 160)))
    dets = [[obj("Pedestrian", CAR_BOX, score=0.5)] for _ in range(41)]
    dets[0].append(obj("Pedestrian", (400, 100, 450, 160), score=0.99))
    assert evaluate_kitti(gt, dets, classes=("Pedestrian",))["ap"]["Pedestrian"]["easy"] == 100.0


def test_low_detections_are_ignored_by_difficulty():
    gt = images(41)
    dets = [[obj("Car", CAR_BOX, score=0.5)] for _ in range(41)]
    dets[0].append(obj("Car", (400, 100, 500, 130), score=0.99))  # 30 px: below Easy's 40, above Moderate's 25
    ap = car_ap(gt, dets)
    assert ap["easy"] == 100.0 and ap["moderate"] == pytest.approx(41 / 42 * 100)


def test_difficulty_filters_ground_truth():
    gt = images(41)
    hard = [[obj("Car", (300, 100, 400, 130), occluded=2, truncated=0.4)] for _ in range(41)]  # Hard only
    gt = [a + b for a, b in zip(gt, hard)]
    dets = [[obj("Car", CAR_BOX, score=0.5)] for _ in range(41)]  # the hard ones are all missed
    result = evaluate_kitti(gt, dets, classes=("Car",))
    assert result["num_gt"]["Car"] == {"easy": 41, "moderate": 41, "hard": 82}
    assert result["ap"]["Car"]["easy"] == 100.0 and result["ap"]["Car"]["moderate"] == 100.0
    assert result["ap"]["Car"]["hard"] == pytest.approx(50.0, abs=2.5)


def test_iou_threshold_is_strict_and_class_specific():
    gt = images(41)
    # IoU exactly 0.7 is not enough for Car (the devkit asks for more than the threshold).
    shifted = (100, 100, 200, 160 - 60 * 0.3)  # height 42 → IoU 0.7
    dets = [[obj("Car", shifted, score=0.5)] for _ in range(41)]
    assert car_ap(gt, dets)["easy"] == 0.0
    ped_gt = [[obj("Pedestrian", CAR_BOX)] for _ in range(41)]
    ped_dets = [[obj("Pedestrian", shifted, score=0.5)] for _ in range(41)]
    assert evaluate_kitti(ped_gt, ped_dets, classes=("Pedestrian",))["ap"]["Pedestrian"]["easy"] == 100.0


def test_class_without_ground_truth_has_no_ap():
    result = evaluate_kitti(images(3), [[] for _ in range(3)])
    assert result["ap"]["Cyclist"]["easy"] is None and result["ap"]["Car"]["easy"] == 0.0
    assert result["mean"]["easy"] == 0.0


def test_thresholds_follow_the_devkit():
    assert score_thresholds([0.9, 0.8], n_gt=2) == [0.9, 0.8]
    # 80 objects, 40 found: recall steps of 1/80 → roughly every other score is a sample.
    scores = [1 - i / 100 for i in range(40)]
    assert len(score_thresholds(scores, 80)) == 21
