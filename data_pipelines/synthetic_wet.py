"""Synthetic WET files with real framing, for tests and benchmarks.

Framing follows Common Crawl: WARC/1.0, CRLF header lines, Content-Length in UTF-8 bytes,
a `warcinfo` record first, then `conversion` records, one gzip member per record in
`.wet.gz`. Text is composed from small word lists so filters see English-looking prose and a
few German and French documents. `frame_record` is public so tests can build broken records.
"""
from __future__ import annotations

import gzip
import random
import uuid
from typing import BinaryIO, Iterator, Sequence

_EN_SUBJECTS = ["The committee", "Our small team", "A local farmer", "The new library",
                "Most visitors", "The city council", "My grandmother", "Every student",
                "The old bridge", "This research group", "The weather service", "Our neighbours"]
_EN_VERBS = ["announced", "discussed", "carefully reviewed", "finally opened", "described",
             "quietly changed", "often visited", "strongly supported", "rebuilt", "studied"]
_EN_OBJECTS = ["the annual budget", "a plan for the harbour", "the history of the valley",
               "several new bicycle paths", "the results of the survey", "an evening market",
               "the water supply", "a set of practical guidelines", "the summer festival",
               "the long report on local schools"]
_EN_TAILS = ["after a long meeting", "during the spring", "with great care",
             "for the first time in years", "before the end of the month", "without any delay",
             "in front of a large crowd", "because the old one had failed", "last week",
             "as many people had hoped"]
_DE_SENTENCES = ["Der Gemeinderat hat gestern den neuen Haushaltsplan für das kommende Jahr "
                 "beschlossen.", "Viele Menschen fahren im Sommer mit dem Fahrrad zur Arbeit, "
                 "weil die Straßen voll sind.", "Die alte Brücke über den Fluss wird im "
                 "nächsten Frühjahr vollständig erneuert.", "Unsere Bibliothek öffnet am "
                 "Wochenende länger, damit mehr Schüler dort lernen können."]
_FR_SENTENCES = ["Le conseil municipal a présenté hier un nouveau projet pour le port de la "
                 "ville.", "Beaucoup de familles passent leurs vacances d'été à la campagne "
                 "chez leurs grands-parents.", "La bibliothèque du quartier ouvrira ses portes "
                 "plus tard le dimanche matin.", "Les étudiants ont longuement discuté des "
                 "résultats de l'enquête sur les transports."]


def english_sentence(rng: random.Random) -> str:
    return " ".join([rng.choice(_EN_SUBJECTS), rng.choice(_EN_VERBS),
                     rng.choice(_EN_OBJECTS), rng.choice(_EN_TAILS)]) + "."


def english_paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(english_sentence(rng) for _ in range(sentences))


def foreign_paragraph(rng: random.Random, language: str, sentences: int) -> str:
    pool = {"deu": _DE_SENTENCES, "fra": _FR_SENTENCES}[language]
    return " ".join(rng.choice(pool) for _ in range(sentences))


def english_document(rng: random.Random, paragraphs: int = 3, with_boilerplate: bool = True
                     ) -> str:
    """Long prose paragraphs, plus short menu-like lines that paragraph filters drop."""
    lines = ["Home | About | Contact"] if with_boilerplate else []
    lines += [english_paragraph(rng, rng.randint(3, 6)) for _ in range(paragraphs)]
    if with_boilerplate:
        lines.append("Copyright 2019. All rights reserved")
    return "\n".join(lines)


def frame_record(block: bytes | str, warc_type: str = "conversion",
                 record_id: str | None = None, target_uri: str | None = None,
                 language: str | None = None, content_length: int | None = None,
                 omit: Sequence[str] = ()) -> bytes:
    """One WARC/1.0 record; `content_length` and `omit` exist to make broken ones."""
    body = block.encode("utf-8") if isinstance(block, str) else block
    headers = [("WARC-Type", warc_type),
               ("WARC-Target-URI", target_uri),
               ("WARC-Date", "2019-03-18T10:00:00Z"),
               ("WARC-Record-ID", record_id or f"<urn:uuid:{uuid.uuid4()}>"),
               ("WARC-Identified-Content-Language", language),
               ("Content-Type", "text/plain"),
               ("Content-Length", str(len(body) if content_length is None else content_length))]
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers if v is not None and k not in omit)
    return b"WARC/1.0\r\n" + lines.encode("utf-8") + b"\r\n" + body + b"\r\n\r\n"


def warcinfo_record(filename: str) -> bytes:
    return frame_record(f"software: synthetic_wet\r\nfilename: {filename}\r\n",
                        warc_type="warcinfo")


def write_members(out: BinaryIO, records: Sequence[bytes], gzipped: bool) -> None:
    """Each record as its own gzip member (as Common Crawl does), or plain."""
    for record in records:
        out.write(gzip.compress(record, compresslevel=1) if gzipped else record)


def synthetic_documents(seed: int, count: int, foreign_every: int = 7,
                        language_header_every: int = 2) -> Iterator[dict]:
    """Keyword arguments for `frame_record`: mostly English, every `foreign_every`-th German
    or French; every `language_header_every`-th carries the language header (as 2018+
    crawls do), the rest leave identification to the filter."""
    rng = random.Random(seed)
    for i in range(count):
        if foreign_every and i % foreign_every == foreign_every - 1:
            language = rng.choice(["deu", "fra"])
            text = "\n".join(foreign_paragraph(rng, language, rng.randint(3, 5))
                             for _ in range(2))
        else:
            language = "eng"
            text = english_document(rng, paragraphs=rng.randint(1, 4))
        header = language if language_header_every and i % language_header_every == 0 else None
        yield dict(block=text, record_id=f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}>",
                   target_uri=f"http://example-{seed}.org/page/{i}", language=header)


def write_wet_file(path: str, seed: int, count: int, gzipped: bool | None = None,
                   **kwargs) -> None:
    """A WET file of `count` synthetic conversion records after one warcinfo record."""
    gzipped = path.endswith(".gz") if gzipped is None else gzipped
    with open(path, "wb") as out:
        write_members(out, [warcinfo_record(path)], gzipped)
        for doc in synthetic_documents(seed, count, **kwargs):
            write_members(out, [frame_record(**doc)], gzipped)
