"""KITTI 2D AP against the official devkit's decisions.

The expected APs in ``DEVKIT`` are the numbers the official object devkit printed for these very cases: its
``cpp/evaluate_object.cpp`` of the 2019 devkit (the one whose readme defines R40; mirrored at
github.com/sunnyln/kitti-devkit, commit 83cde86), its 2D code — file loading, ``cleanData``, ``computeStatistics``,
``getThresholds``, ``eval_class`` — compiled unchanged, with the Boost bird's-eye/3D parts, the plots and the fixed
7518-image loop replaced by a main that reads every label file of a folder and prints AP from the 41 precision
samples as the readme says: samples 1…40 / 40 (R40) and 0, 4, …, 40 / 11 (R11), × 100. Each case was written out
as label_2 / result files and run through it. CI has no network, so the devkit is not run here: its numbers are.
"""
import math

import pytest

from backbonekit.detection.evaluate_kitti import evaluate_kitti, evaluate_kitti_folders, score_thresholds
from backbonekit.detection.kitti import KittiObject, write_kitti_file
from backbonekit.errors import DataError


def obj(kind, box, score=None, truncated=0.0, occluded=0):
    return KittiObject(kind, truncated, occluded, -10.0, tuple(float(v) for v in box), score=score)


CAR_BOX = (100, 100, 200, 160)  # 60 px tall: Easy
PED_BOX = (100, 100, 150, 200)  # 100 px tall: Easy
OTHER = (300, 100, 400)  # left, top, right of the boundary objects; their bottom sets the height


def dontcare(box):
    return obj("DontCare", box, truncated=-1, occluded=-1)


def scene(extra_gt=(), extra_dets=(), kind="Car", box=CAR_BOX, n=41):
    """n images with one perfectly found ``kind`` each (score 0.5), plus ``extra_gt``/``extra_dets`` in image 0."""
    gt = [[obj(kind, box)] for _ in range(n)]
    dets = [[obj(kind, box, score=0.5)] for _ in range(n)]
    gt[0] += list(extra_gt)
    dets[0] += list(extra_dets)
    return gt, dets


def tall(height, kind="Car", score=None, **kw):
    """A box at OTHER, ``height`` px tall."""
    left, top, right = OTHER
    return obj(kind, (left, top, right, top + height), score=score, **kw)


# name → (ground truth, detections per image). A boundary object sits in image 0 next to 41 perfectly found ones,
# so that a counted miss or false positive shows in the AP and an ignored one does not.
CASES = {
    # ground truth height: ignored at a difficulty when height <= its minimum (40 Easy, 25 Moderate/Hard)
    "gt_height_40_missed": scene([tall(40)]),
    "gt_height_40.01_missed": scene([tall(40.01)]),
    "gt_height_39.99_missed": scene([tall(39.99)]),
    "gt_height_25_missed": scene([tall(25)]),
    "gt_height_25.01_missed": scene([tall(25.01)]),
    "gt_height_24.99_missed": scene([tall(24.99)]),
    # detection height: ignored when height < the minimum (a false positive exactly 40 px tall counts at Easy)
    "det_height_40_fp": scene(extra_dets=[tall(40, score=0.9)]),
    "det_height_39.99_fp": scene(extra_dets=[tall(39.99, score=0.9)]),
    "det_height_25_fp": scene(extra_dets=[tall(25, score=0.9)]),
    "det_height_24.99_fp": scene(extra_dets=[tall(24.99, score=0.9)]),
    # a low detection on a valid object: at Easy the object is neither found nor missed, yet it still counts among
    # the objects the recall levels are sampled against, so the AP drops as for a miss; at Moderate it is found
    "det_height_39_on_gt_42": scene([tall(42)], [tall(39, score=0.9)]),
    # a low detection of another class scoring higher takes each object in the first pass (a devkit quirk): at Easy
    # no threshold is found at all; at Moderate the Pedestrian is not low, so it plays no part for Car
    "low_pedestrian_over_car": ([[obj("Car", (100, 100, 200, 142))] for _ in range(41)],
                                [[obj("Car", (100, 100, 200, 142), 0.5), obj("Pedestrian", (100, 100, 200, 139), 0.9)]
                                 for _ in range(41)]),
    # occlusion limits: 0 Easy, 1 Moderate, 2 Hard, 3 never
    "occluded_1_missed": scene([tall(60, occluded=1)]),
    "occluded_2_missed": scene([tall(60, occluded=2)]),
    "occluded_3_missed": scene([tall(60, occluded=3)]),
    # truncation limits, inclusive: 0.15 Easy, 0.30 Moderate, 0.50 Hard
    "truncated_0.15_missed": scene([tall(60, truncated=0.15)]),
    "truncated_0.16_missed": scene([tall(60, truncated=0.16)]),
    "truncated_0.30_missed": scene([tall(60, truncated=0.30)]),
    "truncated_0.31_missed": scene([tall(60, truncated=0.31)]),
    "truncated_0.50_missed": scene([tall(60, truncated=0.50)]),
    "truncated_0.51_missed": scene([tall(60, truncated=0.51)]),
    # DontCare: a false positive is forgiven when intersection / its own area > the class's IoU threshold
    "dontcare_car_0.70": scene([dontcare((300, 100, 370, 160))], [tall(60, score=0.9)]),
    "dontcare_car_0.71": scene([dontcare((300, 100, 371, 160))], [tall(60, score=0.9)]),
    "dontcare_pedestrian_0.50": scene([dontcare((300, 100, 350, 160))], [tall(60, "Pedestrian", score=0.9)],
                                      kind="Pedestrian", box=PED_BOX),
    "dontcare_pedestrian_0.51": scene([dontcare((300, 100, 351, 160))], [tall(60, "Pedestrian", score=0.9)],
                                      kind="Pedestrian", box=PED_BOX),
    # neighbour classes: ignored ground truth (Van for Car, Person_sitting for Pedestrian), others play no part
    "van_missed": scene([tall(60, "Van")]),
    "car_on_van": scene([tall(60, "Van")], [tall(60, score=0.9)]),
    "car_on_truck": scene([tall(60, "Truck")], [tall(60, score=0.9)]),
    "pedestrian_on_person_sitting": scene([tall(60, "Person_sitting")], [tall(60, "Pedestrian", score=0.9)],
                                          kind="Pedestrian", box=PED_BOX),
    "cyclist_on_person_sitting": scene([tall(60, "Person_sitting")], [tall(60, "Cyclist", score=0.9)],
                                       kind="Cyclist", box=PED_BOX),
    "pedestrian_on_van": scene([tall(60, "Van")], [tall(60, "Pedestrian", score=0.9)],
                               kind="Pedestrian", box=PED_BOX),
    # minimum overlap, strict: IoU exactly 0.7 (Car) / 0.5 (Pedestrian, Cyclist) is no match
    "car_iou_0.70": ([[obj("Car", CAR_BOX)] for _ in range(41)], [[obj("Car", (100, 100, 200, 142), 0.5)]] * 41),
    "car_iou_0.71": ([[obj("Car", CAR_BOX)] for _ in range(41)], [[obj("Car", (100, 100, 200, 142.6), 0.5)]] * 41),
    "pedestrian_iou_0.50": ([[obj("Pedestrian", PED_BOX)]] * 41,
                            [[obj("Pedestrian", (100, 100, 150, 150), 0.5)]] * 41),
    "pedestrian_iou_0.51": ([[obj("Pedestrian", PED_BOX)]] * 41,
                            [[obj("Pedestrian", (100, 100, 150, 151), 0.5)]] * 41),
    "cyclist_iou_0.50": ([[obj("Cyclist", PED_BOX)]] * 41, [[obj("Cyclist", (100, 100, 150, 150), 0.5)]] * 41),
    "cyclist_iou_0.51": ([[obj("Cyclist", PED_BOX)]] * 41, [[obj("Cyclist", (100, 100, 150, 151), 0.5)]] * 41),
    # sampling: R40 and R11 part ways on small sets and on partial recall
    "perfect_20": scene(n=20),
    "perfect_41": scene(),
    "half_found_80": ([[obj("Car", CAR_BOX)] for _ in range(80)],
                      [[obj("Car", CAR_BOX, 1 - i / 100)] if i < 40 else [] for i in range(80)]),
    # ties: a false positive scoring the same as every true positive is counted at every threshold
    "fp_tied_with_all": scene(extra_dets=[tall(60, score=0.5)]),
    "fp_just_below_all": scene(extra_dets=[tall(60, score=0.4999)]),
    "fp_above_all": scene(extra_dets=[tall(60, score=0.9)]),
    # empty cases
    "no_detections": ([[obj("Car", CAR_BOX)] for _ in range(41)], [[] for _ in range(41)]),
    "no_ground_truth": ([[] for _ in range(41)], [[obj("Car", CAR_BOX, 0.5)] for _ in range(41)]),
    # the devkit's first pass never takes a detection scoring -10^7 or less (its "no detection yet" value)
    "score_-1e7": ([[obj("Car", CAR_BOX)] for _ in range(41)], [[obj("Car", CAR_BOX, -1e7)]] * 41),
    "score_-9999999": ([[obj("Car", CAR_BOX)] for _ in range(41)], [[obj("Car", CAR_BOX, -9999999.0)]] * 41),
    # a low detection and a Van swap the only match: no TP and no FP at the threshold (the devkit's 0/0)
    "zero_over_zero": ([[tall(42, "Van"), tall(42)]], [[tall(39.5, score=0.9), tall(42, score=0.5)]]),
}

# What the devkit printed for each case, per class: (easy, moderate, hard), each (R40, R11).
ALL = (100.0, 100.0)  # everything found, nothing wrong
MISS1 = (97.5, 90.909090909091)  # 42 objects, 41 found: the recall levels sampled are 40 of 41 (R40 39/40, R11 10/11)
FP1 = (97.619047619048, 97.619047619048)  # 41 of 41 found, one false positive counted at every threshold: 41/42
ZERO = (0.0, 0.0)
NAN = math.nan
DEVKIT = {
    "gt_height_40_missed": {"Car": (ALL, MISS1, MISS1)},
    "gt_height_40.01_missed": {"Car": (MISS1, MISS1, MISS1)},
    "gt_height_39.99_missed": {"Car": (ALL, MISS1, MISS1)},
    "gt_height_25_missed": {"Car": (ALL, ALL, ALL)},
    "gt_height_25.01_missed": {"Car": (ALL, MISS1, MISS1)},
    "gt_height_24.99_missed": {"Car": (ALL, ALL, ALL)},
    "det_height_40_fp": {"Car": (FP1, FP1, FP1)},
    "det_height_39.99_fp": {"Car": (ALL, FP1, FP1)},
    "det_height_25_fp": {"Car": (ALL, FP1, FP1)},
    "det_height_24.99_fp": {"Car": (ALL, ALL, ALL)},
    "det_height_39_on_gt_42": {"Car": (MISS1, ALL, ALL)},
    "low_pedestrian_over_car": {"Car": (ZERO, ALL, ALL), "Pedestrian": (ZERO, ZERO, ZERO)},
    "occluded_1_missed": {"Car": (ALL, MISS1, MISS1)},
    "occluded_2_missed": {"Car": (ALL, ALL, MISS1)},
    "occluded_3_missed": {"Car": (ALL, ALL, ALL)},
    "truncated_0.15_missed": {"Car": (MISS1, MISS1, MISS1)},
    "truncated_0.16_missed": {"Car": (ALL, MISS1, MISS1)},
    "truncated_0.30_missed": {"Car": (ALL, MISS1, MISS1)},
    "truncated_0.31_missed": {"Car": (ALL, ALL, MISS1)},
    "truncated_0.50_missed": {"Car": (ALL, ALL, MISS1)},
    "truncated_0.51_missed": {"Car": (ALL, ALL, ALL)},
    "dontcare_car_0.70": {"Car": (FP1, FP1, FP1)},
    "dontcare_car_0.71": {"Car": (ALL, ALL, ALL)},
    "dontcare_pedestrian_0.50": {"Pedestrian": (FP1, FP1, FP1)},
    "dontcare_pedestrian_0.51": {"Pedestrian": (ALL, ALL, ALL)},
    "van_missed": {"Car": (ALL, ALL, ALL)},
    "car_on_van": {"Car": (ALL, ALL, ALL)},
    "car_on_truck": {"Car": (FP1, FP1, FP1)},
    "pedestrian_on_person_sitting": {"Pedestrian": (ALL, ALL, ALL)},
    "cyclist_on_person_sitting": {"Cyclist": (FP1, FP1, FP1)},
    "pedestrian_on_van": {"Pedestrian": (FP1, FP1, FP1)},
    "car_iou_0.70": {"Car": (ZERO, ZERO, ZERO)},
    "car_iou_0.71": {"Car": (ALL, ALL, ALL)},
    "pedestrian_iou_0.50": {"Pedestrian": (ZERO, ZERO, ZERO)},
    "pedestrian_iou_0.51": {"Pedestrian": (ALL, ALL, ALL)},
    "cyclist_iou_0.50": {"Cyclist": (ZERO, ZERO, ZERO)},
    "cyclist_iou_0.51": {"Cyclist": (ALL, ALL, ALL)},
    "perfect_20": {"Car": ((47.5, 45.454545454545), (47.5, 45.454545454545), (47.5, 45.454545454545))},
    "perfect_41": {"Car": (ALL, ALL, ALL)},
    "half_found_80": {"Car": ((50.0, 54.545454545455), (50.0, 54.545454545455), (50.0, 54.545454545455))},
    "fp_tied_with_all": {"Car": (FP1, FP1, FP1)},
    "fp_just_below_all": {"Car": (ALL, ALL, ALL)},
    "fp_above_all": {"Car": (FP1, FP1, FP1)},
    "no_detections": {},
    "no_ground_truth": {"Car": (ZERO, ZERO, ZERO)},
    "score_-1e7": {"Car": (ZERO, ZERO, ZERO)},
    "score_-9999999": {"Car": (ALL, ALL, ALL)},
    "zero_over_zero": {"Car": ((0.0, NAN), (0.0, 9.090909090909), (0.0, 9.090909090909))},
}


def _check_against_devkit(result_by_points, name):
    for k, recall_points in enumerate((40, 11)):
        result = result_by_points[recall_points]
        for cls, values in DEVKIT[name].items():
            for difficulty, pair in zip(("easy", "moderate", "hard"), values):
                expected, ours = pair[k], result["ap"][cls][difficulty]
                where = f"{name} {cls} {difficulty} R{recall_points}"
                if result["num_gt"][cls][difficulty] == 0:
                    # Deliberate: no ground truth gives None ("—"); the devkit prints 0 (0/0 finds no thresholds).
                    assert expected == 0.0 and ours is None, where
                elif math.isnan(expected):
                    # Deliberate: a sample with neither true nor false positives is precision 0, not the devkit's nan.
                    assert ours == 0.0, where
                else:
                    assert ours == pytest.approx(expected, abs=1e-9), where


@pytest.mark.parametrize("name", list(CASES))
def test_matches_the_devkit(name):
    gt, dets = CASES[name]
    classes = tuple(DEVKIT[name]) or ("Car",)
    _check_against_devkit({rp: evaluate_kitti(gt, dets, classes, recall_points=rp) for rp in (40, 11)}, name)


def test_ground_truth_exactly_40_px_is_not_easy():
    # The devkit ignores ground truth with height <= 40 at Easy (and <= 25 at Moderate and Hard): a 40 px Car that
    # nobody found is no miss at Easy (devkit: 100.0 / 100.0) but is one at Moderate (97.5 R40, 90.909091 R11).
    gt, dets = CASES["gt_height_40_missed"]
    result = evaluate_kitti(gt, dets, classes=("Car",))
    assert result["num_gt"]["Car"] == {"easy": 41, "moderate": 42, "hard": 42}
    assert result["ap"]["Car"]["easy"] == 100.0
    assert result["ap"]["Car"]["moderate"] == pytest.approx(97.5)
    gt, dets = CASES["gt_height_25_missed"]
    assert evaluate_kitti(gt, dets, classes=("Car",))["num_gt"]["Car"] == {"easy": 41, "moderate": 41, "hard": 41}


def test_detection_exactly_40_px_counts_at_easy():
    # Detections are ignored when strictly lower than the minimum: a 40 px false positive counts at Easy (devkit:
    # 97.619048 = 41/42), a 39.99 px one only from Moderate on.
    for name in ("det_height_40_fp", "det_height_39.99_fp", "det_height_25_fp", "det_height_24.99_fp"):
        gt, dets = CASES[name]
        assert evaluate_kitti(gt, dets, classes=("Car",))["ap"]["Car"]["easy"] == pytest.approx(
            DEVKIT[name]["Car"][0][0], abs=1e-9), name


def test_folders_match_the_devkit(tmp_path):
    # The same cases through the files and the reader, as `backbonekit eval detect --predictions` runs them.
    for name in ("gt_height_40_missed", "truncated_0.15_missed", "dontcare_car_0.70", "half_found_80"):
        gt, dets = CASES[name]
        root = tmp_path / name
        (root / "training" / "image_2").mkdir(parents=True)
        (root / "training" / "label_2").mkdir()
        (root / "results").mkdir()
        for k, (g, d) in enumerate(zip(gt, dets)):
            write_kitti_file(root / "training" / "label_2" / f"{k:06d}.txt", g)
            write_kitti_file(root / "results" / f"{k:06d}.txt", d)
        _check_against_devkit({rp: evaluate_kitti_folders(root / "results", root, recall_points=rp)
                               for rp in (40, 11)}, name)


def test_no_detections_scores_zero():
    # The devkit skips a class nobody detected (it writes no numbers for it); we score it: 0 with ground truth.
    gt, dets = CASES["no_detections"]
    result = evaluate_kitti(gt, dets, classes=("Car",))
    assert result["ap"]["Car"] == {"easy": 0.0, "moderate": 0.0, "hard": 0.0}
    assert result["mean"]["easy"] == 0.0


def test_types_are_compared_case_insensitively():
    # The devkit compares types with strcasecmp: "car", "VAN", "dontcare" are Car, Van, DontCare (devkit: same APs).
    for name in ("car_on_van", "dontcare_car_0.71", "car_on_truck", "gt_height_40_missed"):
        gt, dets = CASES[name]
        lower = [[obj(o.type.lower(), o.box, truncated=o.truncated, occluded=o.occluded) for o in g] for g in gt]
        upper = [[obj(o.type.upper(), o.box, score=o.score) for o in d] for d in dets]
        _check_against_devkit({rp: evaluate_kitti(lower, upper, recall_points=rp) for rp in (40, 11)}, name)


def _kitti_folder(tmp_path, labels, results):
    root = tmp_path / "kitti"
    (root / "training" / "image_2").mkdir(parents=True)
    (root / "training" / "label_2").mkdir()
    (root / "results").mkdir()
    for name, text in labels.items():
        (root / "training" / "label_2" / name).write_text(text)
    for name, text in results.items():
        (root / "results" / name).write_text(text)
    return root


GT_LINE = "Car 0.00 0 -1.57 100.00 100.00 200.00 160.00 1.50 1.60 3.90 1.00 1.70 20.00 -1.50\n"
RESULT_LINE = "Car -1 -1 -10 100.00 100.00 200.00 160.00 -1 -1 -1 -1000 -1000 -1000 -10 0.5000\n"


def test_reader_refuses_another_case_naming_file_and_line(tmp_path):
    # Deliberate: rather than read "car" as Car silently, the reader asks for the official spelling.
    root = _kitti_folder(tmp_path, {"000000.txt": GT_LINE}, {"000000.txt": RESULT_LINE + RESULT_LINE.lower()})
    with pytest.raises(DataError, match=r"results/000000.txt:2: unknown object type 'car'.*write 'Car'"):
        evaluate_kitti_folders(root / "results", root)


def test_label_file_without_result_file(tmp_path):
    # Default: only images with a result file are scored (a validation subset). The devkit requires one for every
    # label file: every_label=True, a DataError naming the missing file.
    root = _kitti_folder(tmp_path, {"000000.txt": GT_LINE, "000001.txt": GT_LINE}, {"000000.txt": RESULT_LINE})
    assert evaluate_kitti_folders(root / "results", root)["num_images"] == 1
    with pytest.raises(DataError, match=r"label_2/000001.txt: no result file .*results/000001.txt"):
        evaluate_kitti_folders(root / "results", root, every_label=True)


def test_result_file_without_label_file(tmp_path):
    root = _kitti_folder(tmp_path, {"000000.txt": GT_LINE}, {"000000.txt": RESULT_LINE, "000007.txt": RESULT_LINE})
    with pytest.raises(DataError, match=r"results/000007.txt: no label file"):
        evaluate_kitti_folders(root / "results", root)


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
