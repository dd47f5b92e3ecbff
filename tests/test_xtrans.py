"""sid_ft.io.xtrans and the X-Trans path of sid_ft.io (raw, cfa, pack, render): SID's Fuji 9-channel packing, any phase, DNG round trip."""
from __future__ import annotations

import numpy as np
import pytest
import rawpy

from sid_ft.io.dng import write_dng
from sid_ft.errors import SidFtError
from sid_ft.io.cfa import camera_kind, cfa_pattern
from sid_ft.io.pack import pack_raw, packed_origin
from sid_ft.io.raw import load_raw, open_raw
from sid_ft.io.render import render_reference
from sid_ft.io.xtrans import (CHANNEL_COLOURS, SID_FUJI_LAYOUT, XT2_PATTERN, pack_xtrans_mosaic,
                           xtrans_footprint, xtrans_offset)

FUJI_BLACK, FUJI_WHITE = 1024, 16383  # Fujifilm X-T2, the camera of SID's Fuji set

# The X-T2 tile as SID's Fuji pack_raw reads it (its comments name the colour of each channel), R/G/B letters.
X_T2_ROWS = ("RBGBRG", "GGRGGB", "GGBGGR", "BRGRBG", "GGBGGR", "GGRGGB")


def sid_fuji_reference(visible: np.ndarray) -> np.ndarray:
    """SID's Fuji ``pack_raw`` (X-T2: black 1024, white 16383), from the published formula.

    Float64 output like SID's ``np.zeros``; the values are float32 arithmetic.
    """
    im = visible.astype(np.float32)
    im = np.maximum(im - 1024, 0) / (16383 - 1024)
    H, W = im.shape[0] // 6 * 6, im.shape[1] // 6 * 6
    out = np.zeros((H // 3, W // 3, 9))
    # (channel, row start, col start) for the four sub-positions (0,0), (0,1), (1,0), (1,1), stride 6
    six = {
        0: ((0, 0), (0, 4), (3, 1), (3, 3)),
        1: ((0, 2), (0, 5), (3, 2), (3, 5)),
        2: ((0, 1), (0, 3), (3, 0), (3, 4)),
        3: ((1, 2), (2, 5), (5, 2), (4, 5)),
        4: ((2, 2), (1, 5), (4, 2), (5, 5)),
    }
    for ch, starts in six.items():
        for (p, q), (r, c) in zip(((0, 0), (0, 1), (1, 0), (1, 1)), starts):
            out[p::2, q::2, ch] = im[r:H:6, c:W:6]
    # the greens of the 2x2 blocks, stride 3
    out[:, :, 5] = im[1:H:3, 0:W:3]
    out[:, :, 6] = im[1:H:3, 1:W:3]
    out[:, :, 7] = im[2:H:3, 0:W:3]
    out[:, :, 8] = im[2:H:3, 1:W:3]
    return out


def x_t2_colours() -> np.ndarray:
    return np.array([["RGB".index(ch) for ch in row] for row in X_T2_ROWS])


def fuji_scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """X-T2-like mosaic: values below black (noise floor), mid-tones and saturated ones."""
    rng = np.random.default_rng(seed)
    mosaic = rng.integers(900, 16384, size=(h, w)).astype(np.uint16)
    mosaic[0, :6] = [0, 1023, 1024, 1025, 16383, 16383]
    return mosaic


def phase(dy: int, dx: int) -> np.ndarray:
    """Colour tile at the origin of an X-T2 mosaic cropped by (dy, dx)."""
    return np.roll(x_t2_colours(), (-dy, -dx), axis=(0, 1))


# --------------------------------------------------------------------------- layout facts

def test_reference_pattern_and_layout_are_sids():
    assert XT2_PATTERN.tolist() == x_t2_colours().tolist()
    used = sorted((r, c) for ch in SID_FUJI_LAYOUT for row in ch for (r, c) in row)
    assert used == [(r, c) for r in range(6) for c in range(6)]  # every photosite exactly once
    for k, rows in enumerate(SID_FUJI_LAYOUT):
        for p, cols in enumerate(rows):
            for q, (r, c) in enumerate(cols):
                assert XT2_PATTERN[r, c] == CHANNEL_COLOURS[k]
                assert (r // 3, c // 3) == (p, q)  # sub-position (p, q) holds the tile's 3x3 block (p, q)


# --------------------------------------------------------------------------- SID formula, pure numpy

@pytest.mark.parametrize("h,w", [(36, 48), (41, 53)])
def test_pack_equals_sid_fuji_bit_for_bit(h, w):
    mosaic = fuji_scene(h, w)
    packed = pack_xtrans_mosaic(mosaic, x_t2_colours(), FUJI_BLACK, FUJI_WHITE)
    expected = sid_fuji_reference(mosaic)
    assert packed.dtype == np.float32 and packed.shape == (h // 6 * 2, w // 6 * 2, 9) == expected.shape
    assert np.array_equal(packed.astype(np.float64), expected)  # float32 values, identical
    assert packed[0, 0, 0] == 0.0  # (0,0) R below black -> 0
    assert packed[0, 1, 0] == 1.0  # (0,4) R at white -> 1 (not clipped above: SID does not)


def test_channels_hold_their_colours():
    # a mosaic whose values encode the colour: 2000 R, 5000 G, 9000 B
    colours = np.tile(x_t2_colours(), (4, 5))
    mosaic = np.array([2000, 5000, 9000])[colours]
    packed = pack_xtrans_mosaic(mosaic, colours, 0, 10000)
    for k in range(9):
        assert np.all(packed[:, :, k] == [0.2, 0.5, 0.9][CHANNEL_COLOURS[k]]), k


def test_black_level_per_colour_index():
    colours = np.tile(x_t2_colours(), (2, 2))
    mosaic = np.full(colours.shape, 3000)
    black = [1000, 1500, 2000, 1500]  # R, G, B, G2
    packed = pack_xtrans_mosaic(mosaic, colours, black, 4000)
    for k in range(9):
        b = black[CHANNEL_COLOURS[k]]
        assert np.allclose(packed[:, :, k], (3000 - b) / (4000 - b)), k


@pytest.mark.parametrize("sy,sx", [(0, 1), (1, 0), (1, 2), (2, 5), (3, 3), (4, 1), (5, 5)])
def test_shifted_phase_of_the_same_scene_packs_to_the_same_channels(sy, sx):
    scene = fuji_scene(60, 72, seed=3)
    full = pack_xtrans_mosaic(scene, x_t2_colours(), FUJI_BLACK, FUJI_WHITE)
    shifted = scene[sy:, sx:]
    dy, dx = xtrans_offset(phase(sy, sx))
    assert 0 <= dy < 3 and 0 <= dx < 6
    top, left = sy + dy, sx + dx  # where the shifted file's packing starts in the scene
    assert top % 3 == 0 and left % 3 == 0 and (top // 3 - left // 3) % 2 == 0  # an X-T2-like origin
    packed = pack_xtrans_mosaic(shifted, phase(sy, sx), FUJI_BLACK, FUJI_WHITE)
    h, w = packed.shape[:2]
    assert (h, w) == ((60 - sy - dy) // 6 * 2, (72 - sx - dx) // 6 * 2)
    assert np.array_equal(packed, full[top // 3: top // 3 + h, left // 3: left // 3 + w])


def test_offset_and_footprint():
    assert xtrans_offset(x_t2_colours()) == (0, 0)
    assert xtrans_offset(phase(3, 3)) == (0, 0)  # the X-Trans pattern repeats under a (3, 3) shift
    assert xtrans_offset(phase(1, 2)) == (2, 1)  # (5, 4) matches too; the first in row-major order wins
    assert xtrans_offset(np.tile(phase(4, 0), (3, 3))) == (2, 0)  # a whole colour map works as well
    assert xtrans_footprint((40, 53), (2, 1)) == (2, 1, 36, 48)


def test_not_xtrans_colours_are_a_user_error_naming_the_file():
    bayer6 = np.tile(np.array([[0, 1], [3, 2]]), (3, 3))
    with pytest.raises(SidFtError, match="not an X-Trans pattern") as info:
        pack_xtrans_mosaic(np.zeros((24, 24)), bayer6, 0, 100, path="cam/IMG_1.RAF")
    assert info.value.path == "cam/IMG_1.RAF" and "cam/IMG_1.RAF" in str(info.value)
    with pytest.raises(SidFtError, match="no whole 6x6"):
        pack_xtrans_mosaic(np.zeros((7, 24)), phase(1, 0), 0, 100)  # offset (2, 0)
    with pytest.raises(SidFtError, match="white level"):
        pack_xtrans_mosaic(np.zeros((12, 12)), x_t2_colours(), 100, 100)


# --------------------------------------------------------------------------- through LibRaw (synthetic DNGs)

def test_libraw_reads_a_6x6_dng_as_xtrans(tmp_path):
    """The facts the file path relies on: raw_pattern 6x6, colours right, pixels exact, levels."""
    mosaic = fuji_scene(40, 53)
    write_dng(tmp_path / "x.dng", mosaic, cfa=phase(1, 2), black_level=FUJI_BLACK, white_level=FUJI_WHITE)
    with open_raw(tmp_path / "x.dng") as raw:
        assert raw.raw_pattern.tolist() == phase(1, 2).tolist()
        assert np.array_equal(raw.raw_colors_visible, np.tile(phase(1, 2), (7, 9))[:40, :53])
        assert np.array_equal(raw.raw_image_visible, mosaic)
        assert list(raw.black_level_per_channel) == [FUJI_BLACK] * 4 and raw.white_level == FUJI_WHITE
        assert camera_kind(raw) == "fuji"


@pytest.mark.parametrize("sy,sx", [(0, 0), (1, 2), (3, 4)])
def test_load_raw_of_xtrans_dng_is_sids_fuji_packing(tmp_path, sy, sx):
    scene = fuji_scene(48, 60, seed=5)
    path = tmp_path / f"00001_00_0.1s_{sy}{sx}.dng"
    write_dng(path, scene[sy:, sx:], cfa=phase(sy, sx), black_level=FUJI_BLACK, white_level=FUJI_WHITE,
              exposure_time=0.1, make="FUJIFILM", model="X-T2")
    image = load_raw(path)
    dy, dx = xtrans_offset(phase(sy, sx))
    top, left = sy + dy, sx + dx
    expected = sid_fuji_reference(scene)[top // 3:, left // 3:][:image.packed.shape[0], :image.packed.shape[1]]
    assert image.packed.dtype == np.float32 and image.packed.shape[2] == 9
    assert image.packed.shape[:2] == ((48 - top) // 6 * 2, (60 - left) // 6 * 2)
    assert np.array_equal(image.packed.astype(np.float64), expected)
    assert image.cfa == "X-Trans" and image.camera_kind == "fuji" and image.scale == 3
    assert image.origin == (dy, dx)
    assert image.black_level == (FUJI_BLACK,) * 4 and image.white_level == FUJI_WHITE
    assert image.visible_size == (48 - sy, 60 - sx) and image.camera == "FUJIFILM X-T2"
    assert image.exposure_s == pytest.approx(0.1)
    with open_raw(path) as raw:
        assert np.array_equal(pack_raw(raw, path), image.packed)
        assert packed_origin(raw, path) == (dy, dx)


def test_bayer_files_keep_the_sony_packing(tmp_path):
    write_dng(tmp_path / "b.dng", fuji_scene(24, 36), cfa="GRBG", black_level=512, white_level=16383)
    image = load_raw(tmp_path / "b.dng")
    assert image.packed.shape == (12, 18, 4) and image.cfa == "GRBG"
    assert image.camera_kind == "sony" and image.origin == (0, 0) and image.scale == 2
    with open_raw(tmp_path / "b.dng") as raw:
        assert camera_kind(raw) == "sony" and cfa_pattern(raw) == "GRBG"


def test_render_reference_of_xtrans_lies_on_the_packed_footprint(tmp_path):
    # LibRaw's X-Trans demosaic needs >= 512x512; a smooth scene so that rendering is well defined
    yy, xx = np.mgrid[0:520, 0:530]
    scene = (3000 + 2000 * np.sin(yy / 40.0) * np.cos(xx / 55.0)).astype(np.uint16)
    sy, sx = 1, 2
    path = tmp_path / "big.dng"
    write_dng(path, scene[:519, sx:], cfa=phase(0, sx), black_level=FUJI_BLACK, white_level=FUJI_WHITE)
    write_dng(tmp_path / "big_shift.dng", scene[sy:, sx:], cfa=phase(sy, sx), black_level=FUJI_BLACK,
              white_level=FUJI_WHITE)
    for p in (path, tmp_path / "big_shift.dng"):
        image = load_raw(p)
        gt = render_reference(p)
        h, w = image.packed.shape[:2]
        assert gt.shape == (3 * h, 3 * w, 3) and gt.dtype == np.float32
        with rawpy.imread(str(p)) as raw:
            full = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16,
                                   user_flip=0)
        top, left = image.origin
        full = full.astype(np.float32) / 65535
        # LibRaw's X-Trans demosaic is not bit-reproducible run to run with OpenMP (pixels near its
        # 512-photosite tile seams differ by up to ~14/65535 here), so compare within 1e-3 (~66/65535)
        assert np.allclose(gt, full[top:top + 3 * h, left:left + 3 * w], rtol=0, atol=1e-3)
        # ... which still tells a crop one photosite off
        assert np.abs(gt - full[top + 1:top + 1 + 3 * h, left:left + 3 * w]).max() > 2e-3
        assert np.abs(gt - full[top:top + 3 * h, left + 1:left + 1 + 3 * w]).max() > 2e-3


def test_write_dng_refuses_per_colour_xtrans_blacks(tmp_path):
    with pytest.raises(ValueError, match="one black level"):
        write_dng(tmp_path / "x.dng", fuji_scene(24, 24), cfa=x_t2_colours(), black_level=[1000, 1024, 1010, 1024],
                  white_level=FUJI_WHITE)
