"""Find ticket numbers in every written form and normalise them to PREFIX-YYYY-NNNNNN."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from .entities import Entity, _ticket_patterns

WIB = timezone(timedelta(hours=7))

# Words (after normalisation) that may stand around a ticket number in a message that only asks
# about that ticket: "cek PKU-2026-000004", "tiket 4 gmn?", "laporan sy #12 sdh sampai mana min".
# Words that ask for something else ("batal", "ikuti", a rating, a new problem) are absent, so
# such messages still go to the classifier.
STATUS_WORDS = frozenset(
    """
    cek check cekin status gimana bagaimana gmn sudah sampai mana ya admin min tiket ticket
    laporan lapor aduan pengaduan no nomor number saya aku ku kami punya dong kak kakak pak bu
    ibu bapak mas mbak bang gan tolong mohon update progres progress perkembangan apa kabar nya
    info kenapa belum masih sih kok nih ini itu yang yg untuk soal tentang ada lihat coba dicek
    tanya menanyakan diproses proses tindak lanjut lanjutnya halo hai permisi maaf the my of on
    what about how is please pls
    """.split()
)

# "no 4", "nomor 12": a number named only as "number N". Inside a sentence it is a house or a
# street number; it counts as a ticket only when the message holds nothing else.
_NUMBER_ONLY = re.compile(
    r"(?<![\w#])(?:no|nomor|nmr|number)\.?\s*[:#]?\s*(?P<n>\d{1,6})(?!\d)", re.I
)


def _this_year() -> int:
    return datetime.now(UTC).astimezone(WIB).year


class TicketFinder:
    """Recognise `PKU-2026-000123`, `pku2026000123`, `tiket 123`, `#123`, `no laporan 000123`."""

    def __init__(self, prefix: str = "PKU", year: Callable[[], int] = _this_year) -> None:
        self.prefix = prefix.upper()
        self.patterns = _ticket_patterns(prefix)
        self.year = year

    def find(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        for pat in self.patterns:
            for m in pat.finditer(text):
                s, e = m.start(), m.end()
                if any(f.start < e and s < f.end for f in found):
                    continue
                n = int(m.group("n"))
                if n == 0:
                    continue
                y = m.groupdict().get("y")
                yy = m.groupdict().get("yy")
                year = int(y) if y else 2000 + int(yy) if yy else self.year()
                # Keep the span on the number itself when words lead up to it.
                if not m.group(0)[:1].isalpha() or pat is not self.patterns[0]:
                    if pat is not self.patterns[1]:
                        s = m.start("y") if y else m.start("yy") if yy else m.start("n")
                        while s > 0 and text[s - 1] in "# ":
                            if text[s - 1] == "#":
                                s -= 1
                                break
                            s -= 1
                        s = len(text[:s]) + (len(text[s:e]) - len(text[s:e].lstrip()))
                surface = text[s:e]
                found.append(
                    Entity("nomor_tiket", surface, s, e, f"{self.prefix}-{year:04d}-{n:06d}")
                )
        return sorted(found, key=lambda x: x.start)

    def find_number_only(self, text: str) -> list[Entity]:
        """Find "no 4" / "nomor 12" references, which name a ticket only in a bare message."""
        found = []
        for m in _NUMBER_ONLY.finditer(text):
            n = int(m.group("n"))
            if n:
                value = f"{self.prefix}-{self.year():04d}-{n:06d}"
                found.append(Entity("nomor_tiket", m.group(0), m.start(), m.end(), value))
        return found
