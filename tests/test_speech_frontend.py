"""The speech front end: settings, spectra of known tones, segments, statistics, Griffin-Lim, bad files."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("soundfile", reason="speech needs the audio extra: pip install 'dsvae[audio]'")

from dsvae import audio
from dsvae.errors import DataError
from speech_audio import tone, write


def test_settings_keep_200_bins_and_a_10ms_hop():
    at8 = audio.SpectrogramConfig.for_rate(8000)
    at16 = audio.SpectrogramConfig.for_rate(16000)
    assert (at8.win_length, at8.hop_length, at8.n_fft, at8.n_bins) == (200, 80, 400, 200)
    assert (at16.win_length, at16.hop_length, at16.n_fft, at16.n_bins) == (400, 160, 400, 200)
    with pytest.raises(DataError, match="44100 Hz"):
        audio.SpectrogramConfig.for_rate(44100)


@pytest.mark.parametrize(("rate", "spacing"), [(8000, 20.0), (16000, 40.0)])
def test_a_sine_peaks_in_its_bin(rate, spacing):
    cfg = audio.SpectrogramConfig.for_rate(rate)
    x = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(rate // 2) / rate)
    spec = audio.log_spectrogram(x, cfg)
    assert spec.shape == (1 + len(x) // cfg.hop_length, 200)
    # bin k (1..200) is k * spacing Hz; DC is dropped, so 1000 Hz is column 1000/spacing - 1
    assert np.bincount(spec[2:-2].argmax(axis=1)).argmax() == round(1000 / spacing) - 1


def test_silence_sits_on_the_log_floor():
    cfg = audio.SpectrogramConfig.for_rate(8000)
    spec = audio.log_spectrogram(np.zeros(800), cfg)
    np.testing.assert_allclose(spec, np.log(cfg.log_floor))


def test_dynamic_range_measures_from_the_loudest_bin():
    cfg = audio.SpectrogramConfig.for_rate(8000, dynamic_range_db=40.0)
    assert cfg.silence == pytest.approx(-40 * np.log(10) / 20)  # 40 dB of magnitude
    x = tone(150.0, 0.5)
    quiet, loud = audio.log_spectrogram(0.1 * x, cfg), audio.log_spectrogram(x, cfg)
    assert quiet.max() == pytest.approx(0.0) and quiet.min() == pytest.approx(cfg.silence)
    np.testing.assert_allclose(quiet, loud, atol=1e-4)  # the recording level is gone
    # noise 50 dB below the tone sits under the floor: the background is gone too
    noise = 0.5 * 10 ** (-50 / 20) * np.random.default_rng(0).standard_normal(len(x))
    noisy = audio.log_spectrogram(x + noise, cfg)
    absolute = audio.SpectrogramConfig.for_rate(8000)
    shown = lambda s: (s > s.max() - 40 * np.log(10) / 20).mean()  # noqa: E731
    floored = lambda s: np.isclose(s, cfg.silence).mean()  # noqa: E731
    assert floored(noisy) > 0.8
    np.testing.assert_allclose(floored(noisy), floored(loud), atol=0.01)
    np.testing.assert_allclose(shown(noisy), shown(loud), atol=0.01)
    assert np.median(audio.log_spectrogram(x + noise, absolute)) > np.log(absolute.log_floor) + 2
    # short utterances are padded with the relative floor; the setting is stored and read back
    short = audio.segment(loud[:14], cfg, "pad")
    np.testing.assert_allclose(short.frames[0, 14:], cfg.silence)
    assert audio.SpectrogramConfig.from_dict(cfg.to_dict()) == cfg
    assert (
        audio.SpectrogramConfig.from_dict({**cfg.to_dict(), "dynamic_range_db": None}) == absolute
    )
    with pytest.raises(DataError, match="dynamic range"):
        audio.SpectrogramConfig.for_rate(8000, dynamic_range_db=-3.0)


def test_match_level_takes_the_rms_of_the_reference():
    x = tone(150.0, 0.2)
    y = audio.match_level(0.01 * x, 3.0 * x)
    np.testing.assert_allclose(y, 3.0 * x, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(audio.match_level(np.zeros(10), x), np.zeros(10))


def test_segments_cover_the_utterance_and_pad_short_ones():
    cfg = audio.SpectrogramConfig.for_rate(8000)
    spec = np.arange(45 * 3, dtype=np.float32).reshape(45, 3)
    seg = audio.segment(spec, cfg)
    assert seg.starts.tolist() == [0, 20, 25]  # the last one ends at frame 45
    np.testing.assert_array_equal(seg.frames[2], spec[25:45])
    short = audio.segment(spec[:14], cfg, "pad")
    assert short.frames.shape == (1, 20, 3) and short.padded.tolist() == [6]
    np.testing.assert_allclose(short.frames[0, 14:], np.log(cfg.log_floor))
    assert len(audio.segment(spec[:14], cfg, "drop").frames) == 0
    tiles, n = audio.tile(spec, cfg)
    assert tiles.shape == (3, 20, 3)
    np.testing.assert_array_equal(tiles.reshape(-1, 3)[:n], spec)


def test_running_stats_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(2, 3, (50, 4)), rng.normal(-1, 1, (30, 4))
    run = audio.RunningStats(4)
    run.add(a)
    run.add(b)
    stats = run.finish()
    both = np.concatenate([a, b])
    np.testing.assert_allclose(stats.mean, both.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.std, both.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats.denormalise(stats.normalise(a)), a, rtol=1e-5)


def test_griffin_lim_rebuilds_a_tone():
    cfg = audio.SpectrogramConfig.for_rate(8000)
    x = tone(150.0, 0.5)
    spec = audio.log_spectrogram(x, cfg)
    y = audio.griffin_lim(spec, cfg, n_iter=60)
    again = audio.log_spectrogram(y, cfg)
    error = np.linalg.norm(np.exp(again) - np.exp(spec)) / np.linalg.norm(np.exp(spec))
    assert error < 0.15
    assert abs(len(y) - len(x)) <= cfg.hop_length


def test_read_audio_refuses_bad_files_and_resamples(tmp_path):
    good = write(tmp_path / "a.wav", tone(200.0, 0.3, rate=16000), rate=16000)
    with pytest.raises(DataError, match="16000 Hz.*8000 Hz.*--resample"):
        audio.read_audio(good, 8000)
    x, rate = audio.read_audio(good, 8000, resample=True)
    assert rate == 8000 and abs(len(x) - 2400) <= 2
    stereo = write(tmp_path / "s.wav", np.zeros((800, 2), np.float32) + 0.1)
    with pytest.raises(DataError, match="2 channels"):
        audio.read_audio(stereo)
    silent = write(tmp_path / "q.wav", np.zeros(800, np.float32))
    with pytest.raises(DataError, match="silent"):
        audio.read_audio(silent)
    broken = tone(200.0, 0.1)
    broken[10], broken[20] = np.nan, np.inf
    import soundfile

    soundfile.write(tmp_path / "nan.wav", broken, 8000, subtype="FLOAT")  # float WAV keeps NaN
    with pytest.raises(DataError, match="2 NaN or infinite samples"):
        audio.read_audio(tmp_path / "nan.wav")
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    with pytest.raises(DataError, match="not a readable audio file"):
        audio.read_audio(junk)


def test_nist_sphere_files_read_like_wav(tmp_path):
    """TIMIT ships NIST SPHERE files named .WAV; soundfile reads them."""
    x = tone(120.0, 0.2)
    path = write(tmp_path / "SX1.WAV", x, fmt="NIST")
    y, rate = audio.read_audio(path, 8000)
    assert rate == 8000
    np.testing.assert_allclose(y, x, atol=1e-4)
