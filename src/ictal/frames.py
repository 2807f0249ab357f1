"""The time grid every stage shares: EEG at 256 Hz after preprocessing, the model's output at 16 Hz.

One frame of the probability trace per 16 samples: a 60 s window is 15,360 samples and 960 frames; windows,
strides and cache windows start on whole frames; event times are frame times, ``i / FRAME_RATE`` seconds.
"""

from __future__ import annotations

#: Samples per second of preprocessed EEG (``preprocess.target_sfreq``) and of the model's input.
SAMPLE_RATE = 256.0
#: Input samples per output frame (the TCN's total downsampling).
SAMPLES_PER_FRAME = 16
#: Frames per second of the probability trace.
FRAME_RATE = SAMPLE_RATE / SAMPLES_PER_FRAME


def n_frames(n_samples: int) -> int:
    """Frames of the trace of ``n_samples`` samples: the last, partial frame counts (``ceil(n / 16)``)."""
    return -(-int(n_samples) // SAMPLES_PER_FRAME)
