"""Offline language identifiers for WET records without a language header: speed and accuracy.

Runs each identifier the filter supports (pycld2, langid) on the same texts, side by side:
synthetic English / German / French paragraphs and short mixed lines, cut to the prefix the
filter actually classifies. Prints documents/s, MB/s and accuracy of the English/not-English
decision for each, and the speed ratio. Accuracy on these texts is an easy case; speed is the
point of the comparison.

    python benchmarks/wet_pipeline_langid.py [--documents=3000]
"""
from __future__ import annotations

import random
import time

from absl import app, flags

from data_pipelines import synthetic_wet
from data_pipelines.filters import LANGUAGE_ID_PREFIX_CHARS, language_identifier

_DOCUMENTS = flags.DEFINE_integer("documents", 3000, "Texts per identifier.")

_SHORT_ENGLISH = ["Read more about our opening hours and prices.",
                  "The weather will stay dry and warm until Friday."]
_SHORT_OTHER = ["Weitere Informationen finden Sie auf unserer Seite.",
                "Le musée est fermé le lundi et les jours fériés."]


def _texts(count: int) -> list[tuple[str, bool]]:
    rng = random.Random(0)
    out = []
    for i in range(count):
        kind = i % 6
        if kind < 3:
            out.append((synthetic_wet.english_paragraph(rng, rng.randint(2, 8)), True))
        elif kind == 3:
            out.append((synthetic_wet.foreign_paragraph(rng, "deu", rng.randint(2, 5)), False))
        elif kind == 4:
            out.append((synthetic_wet.foreign_paragraph(rng, "fra", rng.randint(2, 5)), False))
        else:
            english = rng.random() < 0.5
            out.append((rng.choice(_SHORT_ENGLISH if english else _SHORT_OTHER), english))
    return [(t[:LANGUAGE_ID_PREFIX_CHARS], e) for t, e in out]


def main(argv):
    del argv
    texts = _texts(_DOCUMENTS.value)
    megabytes = sum(len(t.encode()) for t, _ in texts) / 2**20
    results = {}
    for name in ("cld2", "langid"):
        identify = language_identifier(name)
        identify(texts[0][0])  # Loads the model outside the timing.
        start = time.perf_counter()
        predictions = [identify(t) == "en" for t, _ in texts]
        seconds = time.perf_counter() - start
        accuracy = sum(p == e for p, (_, e) in zip(predictions, texts)) / len(texts)
        results[name] = seconds
        print(f"{name:7s} {len(texts) / seconds:10,.0f} docs/s  {megabytes / seconds:7.2f} MB/s  "
              f"English-or-not accuracy {accuracy:.3f}")
    print(f"cld2 is {results['langid'] / results['cld2']:.0f}x faster than langid on the same "
          f"{len(texts)} texts ({megabytes:.1f} MB)")


if __name__ == "__main__":
    app.run(main)
