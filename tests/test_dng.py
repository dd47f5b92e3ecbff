"""sid_ft.io.dng: synthetic DNGs must read back through rawpy/LibRaw exactly."""
from __future__ import annotations

import numpy as np
import pytest
import rawpy
import tifffile

from sid_ft.io.dng import XYZ_TO_LINEAR_SRGB, cfa_indices, write_dng

# colour index (0 R, 1 G, 2 B, 3 G2) of positions TL, TR, BL, BR as LibRaw numbers them
EXPECTED_PATTERN = {
    "RGGB": [[0, 1], [3, 2]],
    "BGGR": [[2, 3], [1, 0]],
    "GRBG": [[1, 0], [2, 3]],
    "GBRG": [[3, 2], [0, 1]],
}


@pytest.mark.parametrize("cfa", sorted(EXPECTED_PATTERN))
def test_round_trip_all_bayer_layouts(tmp_path, cfa):
    rng = np.random.default_rng(len(cfa) + ord(cfa[0]))
    mosaic = rng.integers(0, 16384, size=(32, 48), dtype=np.uint16)
    black = (512, 513, 514, 515)  # distinct per colour index: a position/colour mix-up shows
    path = tmp_path / f"{cfa}.dng"
    write_dng(path, mosaic, cfa=cfa, black_level=black, white_level=16383, exposure_time=0.04,
              make="Acme", model="Nightcam")

    with tifffile.TiffFile(path) as tif:  # uncompressed: LibRaw 0.22 cannot read deflate DNG
        assert tif.pages[0].compression == tifffile.COMPRESSION.NONE
        assert tif.pages[0].photometric == 32803
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_type == rawpy.RawType.Flat
        assert np.array_equal(raw.raw_image_visible, mosaic)
        assert raw.raw_pattern.tolist() == EXPECTED_PATTERN[cfa]
        assert raw.raw_colors_visible[:2, :2].tolist() == EXPECTED_PATTERN[cfa]
        assert raw.color_desc == b"RGBG"
        assert list(raw.black_level_per_channel) == list(black)
        assert raw.white_level == 16383
        assert raw.other.shutter_speed == pytest.approx(0.04, rel=1e-6)
        assert raw.sizes.flip == 0


def test_cfa_string_read_back_by_sid_ft(tmp_path):
    from sid_ft.io.cfa import cfa_pattern

    mosaic = np.zeros((24, 36), np.uint16)
    for cfa in EXPECTED_PATTERN:
        write_dng(tmp_path / "x.dng", mosaic, cfa=cfa, white_level=1023)
        with rawpy.imread(str(tmp_path / "x.dng")) as raw:
            assert cfa_pattern(raw) == cfa


def test_scalar_black_odd_size_and_no_exposure(tmp_path):
    mosaic = np.arange(33 * 49, dtype=np.uint16).reshape(33, 49) % 4096
    write_dng(tmp_path / "odd.dng", mosaic, cfa="BGGR", black_level=64, white_level=4095)
    with rawpy.imread(str(tmp_path / "odd.dng")) as raw:
        assert raw.raw_image_visible.shape == (33, 49)
        assert np.array_equal(raw.raw_image_visible, mosaic)
        assert list(raw.black_level_per_channel) == [64] * 4
        assert raw.other.shutter_speed == 0  # no ExposureTime tag: unknown


def test_colour_matrix_and_as_shot_neutral(tmp_path):
    mosaic = np.full((24, 24), 1000, np.uint16)
    cm = np.array([[0.8, -0.2, -0.1], [-0.4, 1.2, 0.2], [-0.05, 0.1, 0.6]])
    write_dng(tmp_path / "c.dng", mosaic, cfa="GBRG", white_level=4095, color_matrix=cm,
              as_shot_neutral=(0.5, 1.0, 0.8))
    write_dng(tmp_path / "d.dng", mosaic, white_level=4095)
    # LibRaw: rgb_cam = inverse of the row-normalised (ColorMatrix1 @ sRGB->XYZ); WB = 1 / neutral
    cam_rgb = cm @ np.linalg.inv(XYZ_TO_LINEAR_SRGB)
    cam_rgb /= cam_rgb.sum(axis=1, keepdims=True)
    with rawpy.imread(str(tmp_path / "c.dng")) as raw:
        assert np.allclose(raw.color_matrix[:, :3], np.linalg.inv(cam_rgb), atol=1e-3)
        assert raw.camera_whitebalance[:3] == pytest.approx([2.0, 1.0, 1.25], rel=1e-5)
    with rawpy.imread(str(tmp_path / "d.dng")) as raw:  # default: camera space = linear sRGB
        assert np.allclose(raw.color_matrix[:, :3], np.eye(3), atol=1e-3)
        assert raw.camera_whitebalance[:3] == pytest.approx([1.0, 1.0, 1.0])


def test_orientation_tag_is_reported_as_flip(tmp_path):
    write_dng(tmp_path / "r.dng", np.zeros((24, 36), np.uint16), white_level=255, orientation=6)
    with rawpy.imread(str(tmp_path / "r.dng")) as raw:
        assert raw.sizes.flip == 6
        assert raw.raw_image_visible.shape == (24, 36)


def test_six_by_six_pattern_is_written(tmp_path):
    """Generality for a later X-Trans feature: a 6x6 CFA reads back as such."""
    xtrans = np.array([[1, 1, 0, 1, 1, 2], [1, 1, 2, 1, 1, 0], [2, 0, 1, 0, 2, 1],
                       [1, 1, 2, 1, 1, 0], [1, 1, 0, 1, 1, 2], [0, 2, 1, 2, 0, 1]])
    write_dng(tmp_path / "x.dng", np.zeros((24, 36), np.uint16), cfa=xtrans, white_level=4095)
    with rawpy.imread(str(tmp_path / "x.dng")) as raw:
        assert raw.raw_pattern.tolist() == xtrans.tolist()


def test_cfa_indices():
    assert cfa_indices("rggb").tolist() == [[0, 1], [3, 2]]
    assert cfa_indices([[1, 0], [2, 3]]).tolist() == [[1, 0], [2, 3]]
    for bad in ("RGBG", "RGGX", "RGB", [[0, 1], [1, 1]], np.zeros((3, 3), int)):
        with pytest.raises(ValueError):
            cfa_indices(bad)


def test_bad_arguments(tmp_path):
    ok = np.zeros((24, 24), np.uint16)
    with pytest.raises(ValueError, match="2-D"):
        write_dng(tmp_path / "a.dng", np.zeros((24, 24, 3), np.uint16))
    with pytest.raises(ValueError, match="0..65535"):
        write_dng(tmp_path / "a.dng", np.full((24, 24), 70000, np.int32))
    with pytest.raises(ValueError, match="black"):
        write_dng(tmp_path / "a.dng", ok, black_level=(1, 2, 3), white_level=255)
    with pytest.raises(ValueError, match="black < white"):
        write_dng(tmp_path / "a.dng", ok, black_level=300, white_level=255)
    with pytest.raises(ValueError, match="too small"):
        write_dng(tmp_path / "a.dng", np.zeros((20, 48), np.uint16))
    with pytest.raises(ValueError, match="exposure_time"):
        write_dng(tmp_path / "a.dng", ok, white_level=255, exposure_time=0)


def test_unwritable_path_is_a_user_error(tmp_path):
    from sid_ft.errors import SidFtError

    target = tmp_path / "no_such_folder" / "a.dng"
    with pytest.raises(SidFtError) as info:
        write_dng(target, np.zeros((24, 24), np.uint16), white_level=255)
    assert str(target) in str(info.value)
