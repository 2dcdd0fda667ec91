import pytest

from detection.writers import CAR, DONTCARE, MISC, PEDESTRIAN, TRUCK, VAN, write_kitti


@pytest.fixture
def kitti_root(tmp_path):
    return write_kitti(tmp_path / "kitti", {
        "000000": "\n".join([CAR, DONTCARE, VAN, MISC, PEDESTRIAN, TRUCK]) + "\n",
        "000001": "",  # an image with no objects is valid
        "000002": CAR + "\n",
        "000003": PEDESTRIAN + "\n",
    })
