"""Recording level and background of each speaker in a speech data set, as a Markdown table.

Used in docs/results/speech.md to show that, in FSDD + Allison, the recording channel
alone tells most speakers apart (see `dsvae data speech --dynamic-range`).

    python scripts/speech_levels.py data/speech/train
"""

from __future__ import annotations

import argparse
import math
import sys

from dsvae.data.speech import speaker_levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="one split of a speech data set, e.g. data/speech/train")
    args = parser.parse_args(argv)
    print("| speaker | utterances | background (nats) | loudest bin - background, per utterance |")
    print("|---|---|---|---|")
    for row in speaker_levels(args.data):
        db = row["span"] * 20 / math.log(10)
        print(
            f"| {row['speaker']} | {row['utterances']} | {row['background']:.1f} "
            f"| {row['span']:.1f} nats ({db:.0f} dB) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
