"""sid_ft.io (raw, cfa, pack, render, sid_names): SID packing for any Bayer layout, loading, ground truth, exposure, bad input."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile

from sid_ft.io.dng import write_dng
from sid_ft.errors import SidFtError
from sid_ft.data.sid import exposure_ratio
from sid_ft.io.cfa import cfa_pattern
from sid_ft.io.pack import pack_mosaic, pack_raw
from sid_ft.io.raw import RAW_EXTENSIONS, exposure_time, load_raw, open_raw
from sid_ft.io.render import orient, render_reference
from sid_ft.io.sid_names import exposure_from_name, sid_name_parts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from samples import raw_sample, raw_sample_names  # noqa: E402

SONY_BLACK, SONY_WHITE = 512, 16383  # Sony A7S II, the camera of SID's Sony set

# per-colour planes of a scene, written into each Bayer layout: (row, col) of R, G, B, G2 in the 2x2 tile
POSITIONS = {
    "RGGB": {0: (0, 0), 1: (0, 1), 2: (1, 1), 3: (1, 0)},
    "BGGR": {0: (1, 1), 1: (1, 0), 2: (0, 0), 3: (0, 1)},
    "GRBG": {0: (0, 1), 1: (0, 0), 2: (1, 0), 3: (1, 1)},
    "GBRG": {0: (1, 0), 1: (1, 1), 2: (0, 1), 3: (0, 0)},
}


def sid_pack_raw_reference(visible: np.ndarray) -> np.ndarray:
    """SID's pack_raw for the Sony A7S II, from the paper's published description (RGGB, 512/16383)."""
    im = visible.astype(np.float32)
    im = np.maximum(im - 512, 0) / (16383 - 512)
    im = np.expand_dims(im, axis=2)
    h, w = im.shape[:2]
    return np.concatenate((im[0:h:2, 0:w:2, :], im[0:h:2, 1:w:2, :],
                           im[1:h:2, 1:w:2, :], im[1:h:2, 0:w:2, :]), axis=2)


def scene_mosaic(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Sony-like RGGB mosaic: values below black (noise floor), mid-tones and saturated ones."""
    rng = np.random.default_rng(seed)
    mosaic = rng.integers(400, 16384, size=(h, w)).astype(np.uint16)
    mosaic[0, :6] = [0, 511, 512, 513, 16383, 16383]
    return mosaic


# --------------------------------------------------------------------------- SID formula

def test_pack_raw_equals_sid_bit_for_bit(tmp_path):
    mosaic = scene_mosaic(32, 48)
    path = tmp_path / "00001_00_0.1s.dng"
    write_dng(path, mosaic, cfa="RGGB", black_level=SONY_BLACK, white_level=SONY_WHITE, exposure_time=0.1)
    with open_raw(path) as raw:
        packed = pack_raw(raw)
        expected = sid_pack_raw_reference(raw.raw_image_visible)
    assert packed.dtype == np.float32 and packed.shape == (16, 24, 4)
    assert np.array_equal(packed.view(np.uint32), expected.view(np.uint32))  # identical bits
    assert packed[0, 0, 0] == 0.0  # below black clipped to 0
    assert packed[0, 2, 0] == 1.0  # white -> 1, not clipped above (SID does not clip above)


def test_bayer_layouts_of_one_scene_pack_to_the_same_channels(tmp_path):
    rng = np.random.default_rng(1)
    planes = rng.integers(0, 16384, size=(4, 12, 17)).astype(np.uint16)  # R, G, B, G2 per tile
    black = (500, 510, 520, 530)
    packs = {}
    for layout, where in POSITIONS.items():
        mosaic = np.zeros((24, 34), np.uint16)
        for colour, (r, c) in where.items():
            mosaic[r::2, c::2] = planes[colour]
        write_dng(tmp_path / f"{layout}.dng", mosaic, cfa=layout, black_level=black, white_level=16383)
        with open_raw(tmp_path / f"{layout}.dng") as raw:
            assert cfa_pattern(raw) == layout
            packs[layout] = pack_raw(raw)
    expected = np.stack([np.maximum(planes[k].astype(np.float64) - black[k], 0) / (16383 - black[k])
                         for k in range(4)], axis=-1)
    for layout, packed in packs.items():
        assert np.allclose(packed, expected, rtol=1e-6, atol=0), layout
        assert np.array_equal(packed, packs["RGGB"]), layout


@pytest.mark.parametrize("dy,dx,layout", [(0, 1, "GRBG"), (1, 0, "GBRG"), (1, 1, "BGGR")])
def test_shifted_crops_of_a_scene_pack_like_its_rggb_mosaic(tmp_path, dy, dx, layout):
    """Cropping an RGGB scene by one pixel gives the other layouts; channels must stay R, G, B, G2."""
    scene = scene_mosaic(34, 50, seed=2)
    black = (500, 510, 520, 530)
    write_dng(tmp_path / "scene.dng", scene, cfa="RGGB", black_level=black, white_level=16383)
    write_dng(tmp_path / "crop.dng", scene[dy:dy + 32, dx:dx + 48], cfa=layout, black_level=black,
              white_level=16383)
    with open_raw(tmp_path / "scene.dng") as raw:
        full = pack_raw(raw)  # (17, 25, 4)
    with open_raw(tmp_path / "crop.dng") as raw:
        assert cfa_pattern(raw) == layout
        crop = pack_raw(raw)  # (16, 24, 4)
    # tile (i, j) of the crop holds: R of scene tile (i+dy, j+dx), G of (i+dy, j), B of (i, j), G2 of (i, j+dx)
    assert np.array_equal(crop[..., 0], full[dy:dy + 16, dx:dx + 24, 0])
    assert np.array_equal(crop[..., 1], full[dy:dy + 16, 0:24, 1])
    assert np.array_equal(crop[..., 2], full[0:16, 0:24, 2])
    assert np.array_equal(crop[..., 3], full[0:16, dx:dx + 24, 3])


def test_odd_sizes_are_cropped_to_even(tmp_path):
    mosaic = scene_mosaic(33, 49, seed=3)
    write_dng(tmp_path / "odd.dng", mosaic, cfa="RGGB", black_level=SONY_BLACK, white_level=SONY_WHITE)
    with open_raw(tmp_path / "odd.dng") as raw:
        packed = pack_raw(raw)
    assert packed.shape == (16, 24, 4)
    assert np.array_equal(packed, sid_pack_raw_reference(mosaic[:32, :48]))


def test_pack_mosaic_accepts_full_colour_map_and_checks_arguments():
    mosaic = scene_mosaic(24, 24, seed=4)
    colours = np.tile(np.array([[1, 0], [2, 3]], np.uint8), (12, 12))  # GRBG
    packed = pack_mosaic(mosaic, colours, [10, 20, 30, 40], 16383)
    assert packed.shape == (12, 12, 4)
    assert packed[1, 1, 1] == np.float32(np.float32(mosaic[2, 2]) - 20) / np.float32(16363)  # G top-left
    assert packed[1, 1, 0] == np.float32(np.float32(mosaic[2, 3]) - 10) / np.float32(16373)  # R top-right
    assert packed[1, 1, 2] == np.float32(np.float32(mosaic[3, 2]) - 30) / np.float32(16353)  # B bottom-left
    assert packed[1, 1, 3] == np.float32(np.float32(mosaic[3, 3]) - 40) / np.float32(16343)  # G2
    with pytest.raises(ValueError):
        pack_mosaic(mosaic, [[0, 1], [1, 2]], [0] * 4, 255)
    with pytest.raises(ValueError):
        pack_mosaic(mosaic, [[0, 1], [3, 2]], [0] * 3, 255)
    with pytest.raises(ValueError):
        pack_mosaic(mosaic, [[0, 1], [3, 2]], [300] * 4, 255)


def test_load_raw_returns_what_later_steps_need(tmp_path):
    path = tmp_path / "capture.dng"
    write_dng(path, scene_mosaic(32, 48), cfa="GBRG", black_level=(500, 510, 520, 530), white_level=16000,
              exposure_time=1 / 30, make="Acme", model="Nightcam")
    image = load_raw(path)
    assert image.path == str(path)
    assert image.packed.shape == (16, 24, 4) and image.packed.dtype == np.float32
    assert image.cfa == "GBRG"
    assert image.black_level == (500.0, 510.0, 520.0, 530.0)
    assert image.white_level == 16000.0
    assert image.visible_size == (32, 48)
    assert image.exposure_s == pytest.approx(1 / 30, rel=1e-6)
    assert image.camera == "Acme Nightcam"


# --------------------------------------------------------------------------- real camera files

SAMPLES = {
    # file: (layout, visible (H, W), black, white, shutter seconds)
    "Canon_PowerShot_S40_CRW_0101.CRW": ("RGGB", (1720, 2312), 32, 1023, 1 / 100),
    "Canon_PowerShot_S40_CRW_0119.CRW": ("RGGB", (1720, 2312), 32, 1023, 1 / 60),
    "Kodak_DC120_DC120IMG_P003908.KDC": ("GRBG", (976, 848), 0, 255, 1 / 275),
    "Kodak_DC120_DC120IMG_P003913.KDC": ("GRBG", (976, 848), 0, 510, 1 / 266),
}


@pytest.mark.parametrize("name", raw_sample_names(SAMPLES))
def test_real_samples_pack_like_a_per_photosite_computation(name):
    layout, size, black_expected, white_expected, shutter = SAMPLES[name]
    path = raw_sample(name)
    with open_raw(path) as raw:
        # the README's facts
        assert raw.color_desc == b"RGBG"
        assert raw.raw_image_visible.shape == size
        assert list(raw.black_level_per_channel) == [black_expected] * 4
        assert raw.white_level == white_expected
        assert raw.other.shutter_speed == pytest.approx(shutter, rel=0.02)
        assert cfa_pattern(raw, path) == layout
        packed = pack_raw(raw, path)

        # independent computation: each 2x2 position, its colour from raw_pattern, black of that colour
        visible = raw.raw_image_visible.astype(np.float64)
        pattern = raw.raw_pattern
        assert raw.sizes.top_margin % 2 == 0 and raw.sizes.left_margin % 2 == 0  # so raw_pattern fits visible
        black, white = raw.black_level_per_channel, raw.white_level
    h, w = size[0] // 2, size[1] // 2
    expected = np.full((h, w, 4), np.nan)
    for r in range(2):
        for c in range(2):
            k = int(pattern[r, c])
            expected[..., k] = np.maximum(visible[r:2 * h:2, c:2 * w:2] - black[k], 0) / (white - black[k])
    assert packed.shape == (h, w, 4) and packed.dtype == np.float32
    assert not np.isnan(expected).any()  # every channel filled once
    assert np.allclose(packed, expected, rtol=1e-6, atol=1e-7)
    assert packed.max() > 0.05  # real content, not an all-zero accident


def test_real_sample_non_square_pixels_facts():
    with open_raw(raw_sample("Kodak_DC120_DC120IMG_P003908.KDC")) as raw:
        assert raw.sizes.pixel_aspect == pytest.approx(1.53, abs=0.01)
    with open_raw(raw_sample("Canon_PowerShot_S40_CRW_0101.CRW")) as raw:
        assert raw.sizes.pixel_aspect == 1.0


def test_render_reference_square_pixels_is_sids_postprocess():
    path = raw_sample("Canon_PowerShot_S40_CRW_0101.CRW")
    gt = render_reference(path)
    with open_raw(path) as raw:
        rgb = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16)
    assert gt.shape == (1720, 2312, 3) and gt.dtype == np.float32
    assert np.array_equal(gt, rgb.astype(np.float32) / 65535)


def test_render_reference_non_square_pixels_is_aligned_with_the_mosaic():
    """DC120: LibRaw stretches 848 -> 1301 columns; we resample back onto the mosaic grid.

    Stretching our result again the way LibRaw does (linear, output column j from source
    position j / aspect) must reproduce LibRaw's image best with no shift at all.
    """
    path = raw_sample("Kodak_DC120_DC120IMG_P003908.KDC")
    gt = render_reference(path).astype(np.float64)
    with open_raw(path) as raw:
        stretched = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
                                    output_bps=16, user_flip=0).astype(np.float64) / 65535
        aspect = raw.sizes.pixel_aspect
    assert stretched.shape == (976, 1301, 3)
    assert gt.shape == (976, 848, 3)

    def restretch_error(shift: float) -> float:
        pos = np.clip(np.arange(stretched.shape[1]) / aspect + shift, 0, gt.shape[1] - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, gt.shape[1] - 1)
        frac = (pos - lo)[None, :, None]
        again = gt[:, lo] * (1 - frac) + gt[:, hi] * frac
        return float(np.abs(again - stretched)[:, 20:-20].mean())

    aligned = restretch_error(0.0)
    assert aligned < 0.01
    assert aligned < restretch_error(0.25) and aligned < restretch_error(-0.25)


def test_render_reference_ignores_orientation_and_crops_to_packed_footprint(tmp_path):
    write_dng(tmp_path / "r.dng", scene_mosaic(33, 49), cfa="BGGR", black_level=SONY_BLACK,
              white_level=SONY_WHITE, orientation=6)
    with open_raw(tmp_path / "r.dng") as raw:
        assert raw.sizes.flip == 6
        assert raw.postprocess().shape[:2] == (49, 33)  # LibRaw would rotate by default
        h, w = pack_raw(raw).shape[:2]
    gt = render_reference(tmp_path / "r.dng")
    assert gt.shape == (2 * h, 2 * w, 3) == (32, 48, 3)
    assert gt.dtype == np.float32 and 0 <= gt.min() and gt.max() <= 1


@pytest.mark.parametrize("tiff_orientation,flip", [(1, 0), (2, 1), (3, 3), (4, 2), (5, 4), (6, 6), (7, 7), (8, 5)])
def test_orient_turns_the_rendering_as_libraw_does(tmp_path, tiff_orientation, flip):
    # independent reference: LibRaw's own rotation (postprocess without user_flip=0) of the same file
    path = tmp_path / "o.dng"
    write_dng(path, scene_mosaic(32, 48), cfa="RGGB", black_level=SONY_BLACK, white_level=SONY_WHITE,
              orientation=tiff_orientation)
    image = load_raw(path)
    assert image.flip == flip
    with open_raw(path) as raw:
        libraw = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16)
    turned = orient(render_reference(path), image.flip)
    assert turned.shape == libraw.shape == ((48, 32, 3) if flip & 4 else (32, 48, 3))
    np.testing.assert_array_equal(np.rint(turned * 65535).astype(np.uint16), libraw)
    if tiff_orientation == 6:  # 90 degrees clockwise: the sensor's top-left ends top-right
        np.testing.assert_array_equal(turned, np.rot90(render_reference(path), k=-1))
    with pytest.raises(ValueError):
        orient(turned, 8)


# --------------------------------------------------------------------------- exposure

@pytest.mark.parametrize("name,seconds", [
    ("00001_00_0.1s.ARW", 0.1), ("10003_00_0.04s.ARW", 0.04), ("/data/Sony/long/00001_00_10s.ARW", 10.0),
    ("20005_01_0.033s.RAF", 0.033), ("00001_00_30s.arw", 30.0), ("10003_00_0.04s", 0.04),
])
def test_exposure_from_sid_names(name, seconds):
    assert exposure_from_name(name) == seconds


@pytest.mark.parametrize("name", ["IMG_0001.CR2", "00001_00_0s.ARW", "00001_00_abc.ARW", "00001_0.1s.ARW",
                                  "00001_00_0.1.ARW", "00001_00_0.1s.ARW.bak"])
def test_exposure_from_other_names_is_none(name):
    assert exposure_from_name(name) is None


def test_sid_name_parts():
    assert sid_name_parts("10003_01_0.04s.ARW") == ("10003", "01", 0.04)


def test_exposure_time_name_then_file_then_none(tmp_path):
    mosaic = scene_mosaic(24, 24)
    write_dng(tmp_path / "00001_00_0.1s.dng", mosaic, white_level=16383, exposure_time=0.5)
    write_dng(tmp_path / "plain.dng", mosaic, white_level=16383, exposure_time=0.1)
    write_dng(tmp_path / "unknown.dng", mosaic, white_level=16383)
    assert exposure_time(tmp_path / "00001_00_0.1s.dng") == 0.1  # the name wins
    assert exposure_time(tmp_path / "plain.dng") == 0.1  # float32 tag value given as its shortest decimal
    with open_raw(tmp_path / "plain.dng") as raw:
        assert exposure_time(tmp_path / "plain.dng", raw) == 0.1
    assert exposure_time(tmp_path / "unknown.dng") is None


def test_exposure_ratio():
    assert exposure_ratio(0.1, 10) == pytest.approx(100)
    assert exposure_ratio(0.033, 10) == 300  # SID's cap
    assert exposure_ratio(0.033, 10, cap=1000) == pytest.approx(303.03, rel=1e-4)
    for short, long, cap in ((0, 10, 300), (-1, 10, 300), (None, 10, 300), (0.1, None, 300),
                             (0.1, float("nan"), 300), (0.1, 10, 0)):
        with pytest.raises(SidFtError):
            exposure_ratio(short, long, cap)


def test_raw_extensions():
    assert {".arw", ".raf", ".dng", ".crw", ".kdc", ".nef", ".cr2"} <= RAW_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in RAW_EXTENSIONS)
    assert ".jpg" not in RAW_EXTENSIONS and ".png" not in RAW_EXTENSIONS


# --------------------------------------------------------------------------- bad input

def _assert_user_error(path, *words, call=load_raw):
    with pytest.raises(SidFtError) as info:
        call(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    assert not isinstance(info.value, rawpy.LibRawError)
    return message


def test_missing_folder_empty_random(tmp_path):
    _assert_user_error(tmp_path / "missing.ARW", "no such file")
    (tmp_path / "folder.ARW").mkdir()
    _assert_user_error(tmp_path / "folder.ARW", "folder")
    (tmp_path / "empty.ARW").write_bytes(b"")
    _assert_user_error(tmp_path / "empty.ARW", "empty")
    (tmp_path / "random.ARW").write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, np.uint8).tobytes())
    _assert_user_error(tmp_path / "random.ARW", "not a camera RAW file")


@pytest.mark.parametrize("call", [open_raw, load_raw, render_reference, exposure_time])
def test_every_entry_point_reports_user_errors(tmp_path, call):
    (tmp_path / "x.ARW").write_bytes(b"not a raw file at all" * 100)
    _assert_user_error(tmp_path / "x.ARW", "not a camera RAW file", call=call)


def test_images_renamed_to_raw(tmp_path):
    import imageio.v3 as iio

    image = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "photo.ARW", image, extension=".jpg")
    _assert_user_error(tmp_path / "photo.ARW", "JPEG")
    iio.imwrite(tmp_path / "photo2.ARW", image, extension=".png")
    _assert_user_error(tmp_path / "photo2.ARW", "PNG")


def test_truncated_dng_fails_at_open_not_later(tmp_path):
    write_dng(tmp_path / "full.dng", scene_mosaic(64, 64), white_level=16383)
    data = (tmp_path / "full.dng").read_bytes()
    (tmp_path / "cut.dng").write_bytes(data[: len(data) // 2])
    _assert_user_error(tmp_path / "cut.dng", "truncated", call=open_raw)
    _assert_user_error(tmp_path / "cut.dng", "truncated")


@pytest.mark.parametrize("name,cut", [("Canon_PowerShot_S40_CRW_0101.CRW", 0.5),
                                      ("Kodak_DC120_DC120IMG_P003908.KDC", 0.5),
                                      ("Kodak_DC120_DC120IMG_P003913.KDC", 0.1)])
def test_truncated_real_files(tmp_path, name, cut):
    data = raw_sample(name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * cut)])
    # CRW keeps its directory at the end: LibRaw no longer recognises the format;
    # KDC fails while decoding (LibRawIOError / LibRawDataError)
    _assert_user_error(path, "truncated")


# --------------------------------------------------------------------------- non-Bayer sensors

def _dng_tags(model: str = "Linear") -> list:
    return [(254, "I", 1, 0, True), (271, "s", 0, "sid_ft", True), (272, "s", 0, model, True),
            (50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, f"sid_ft {model}", True),
            (50717, "I", 1, 16383, True), (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True)]


def test_linear_dng_is_refused(tmp_path):
    data = np.random.default_rng(0).integers(0, 16383, (24, 36, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "linear.dng", data, photometric=34892, extratags=_dng_tags(), metadata=None)
    with rawpy.imread(str(tmp_path / "linear.dng")) as raw:
        assert raw.raw_type == rawpy.RawType.Stack  # the fact the check relies on
    message = _assert_user_error(tmp_path / "linear.dng", "linear DNG", "not a Bayer mosaic")
    assert "Foveon" in message


def test_monochrome_dng_is_refused(tmp_path):
    data = np.random.default_rng(0).integers(0, 16383, (24, 36)).astype(np.uint16)
    path = tmp_path / "mono.dng"
    tifffile.imwrite(path, data, photometric="minisblack", extratags=_dng_tags("Mono"), metadata=None)
    # DNG monochrome is LinearRaw with one sample, which tifffile will not write: patch the tag
    raw_bytes = bytearray(path.read_bytes())
    entry = b"\x06\x01\x03\x00\x01\x00\x00\x00\x01\x00"  # tag 262, SHORT, count 1, value 1
    assert raw_bytes.count(entry) == 1
    at = raw_bytes.find(entry) + 8
    raw_bytes[at:at + 2] = (34892).to_bytes(2, "little")
    path.write_bytes(bytes(raw_bytes))
    with rawpy.imread(str(path)) as raw:
        assert raw.num_colors == 1
    _assert_user_error(path, "monochrome")


def test_xtrans_is_accepted_but_is_not_bayer(tmp_path):
    """X-Trans files pack to 9 channels (tests/test_xtrans.py); Bayer-only entry points still refuse them."""
    xtrans = np.array([[1, 1, 0, 1, 1, 2], [1, 1, 2, 1, 1, 0], [2, 0, 1, 0, 2, 1],
                       [1, 1, 2, 1, 1, 0], [1, 1, 0, 1, 1, 2], [0, 2, 1, 2, 0, 1]])
    path = tmp_path / "xtrans.dng"
    write_dng(path, scene_mosaic(24, 36), cfa=xtrans, black_level=1024, white_level=16383)
    image = load_raw(path)
    assert image.packed.shape[2] == 9 and image.cfa == "X-Trans" and image.camera_kind == "fuji"
    with open_raw(path) as raw:
        assert pack_raw(raw, path).shape[2] == 9
        with pytest.raises(SidFtError, match="X-Trans") as info:
            cfa_pattern(raw, path)
        assert "not a 2x2 Bayer sensor" in str(info.value)
    # LibRaw's X-Trans demosaic refuses images under 512x512: a clear error, not LibRawIOError
    _assert_user_error(path, "X-Trans", "too small", call=render_reference)


def test_six_by_six_cfa_that_is_not_xtrans_is_refused(tmp_path):
    bayer6 = np.tile(np.array([[0, 1], [1, 2]]), (3, 3))  # a Bayer layout written as a 6x6 repeat
    bayer6[5, 5] = 0  # and broken, so that no 2x2 reading applies either
    path = tmp_path / "odd6.dng"
    write_dng(path, scene_mosaic(24, 36), cfa=bayer6, black_level=1024, white_level=16383)
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_pattern.shape == (6, 6)  # the fact the check relies on
    _assert_user_error(path, "not an X-Trans pattern")
    _assert_user_error(path, "not an X-Trans pattern", call=render_reference)
