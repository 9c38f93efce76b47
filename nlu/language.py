"""Tell Indonesian (with Malay and regional languages) from English and other languages.

Short chat messages defeat n-gram detectors ("halo" comes out Tagalog), so known words decide
first; lingua (restricted to Indonesian, Malay, English, Tagalog) decides only messages of three
or more words where the word lists are unsure. When unsure the answer is Indonesian.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

_LATIN_WORD = re.compile(r"[a-z']+")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_NON_LATIN = re.compile(r"[^\W\d_A-Za-z\u00c0-\u024f]")

ENGLISH = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours out over own
    same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your yours yourself hi hello hey good morning afternoon evening night
    thanks thank please help want need would like report complaint problem issue broken damaged
    road street streets pothole potholes holes hole garbage trash rubbish waste bin light lights
    lamp lamps dark flood flooded flooding water drain drainage clogged power outage electricity
    blackout fire burning accident injured help police ambulance hospital clinic school
    teacher fee fees id card family certificate birth death permit license business tax market
    price prices noise noisy vendors parking traffic jam bus stop tree fallen park dog dogs stray
    smoke haze pollution smell smells bad status ticket check my our number what's where's how's
    i'm it's don't doesn't can't won't isn't aren't there's cancel stop unsubscribe subscribe
    follow news announcements bye goodbye okay yes yeah sorry great awesome terrible slow rude
    service office officer staff open closed today tomorrow yesterday since still again already
    never always days weeks months year neighbourhood neighborhood area near next front behind
    corner house home building people someone kid child children man woman someone is are was
    gas leak leaking trapped drowning drowned robbery thief stolen fight fighting happening right
    now urgent emergency quickly hurry send come anyone update updates fixed fix repair repaired
    nobody answered answer reply replied waiting wait long time much cost costs get apply make
    register registration where when which who do does did done bot chatbot use using guide
    suggest suggestion propose proposal idea should could build add more better city government
    mayor officials public toilet sidewalk sidewalks footpath bridge broken cracked signal wifi
    internet cable cables pole poles hanging down tangled mosquito dengue fogging medicine
    doctor nurse queue sick weather football movie love song joke funny lol haha bro dude
    weekend holiday rain raining hot hello u thx pls plz appreciate cheers boring noted
    several kids got week this that during open holidays safe drink without boiling regulates
    suggestion lights top across near fell drivers around every evening only few seconds huge
    lasts turning green registered any its workers years smell strong leaves white our company
    system work works school zoning tap panels solar sharing stations bike footbridges shelters
    poor alright fine nice excellent cool bad worst best team came same day collection
    """.split()
)

# Words that also look English but are everyday Indonesian chat.
_INDONESIAN_TOO = frozenset(
    "a o oke ok bus taxi online offline update cancel status admin min no nomor pas dan di ke "
    "dari ya sip mantap hp wa kk ktp ada apa lagi mall park".split()
)


class LanguageDetector:
    """Decide `id`, `en` or `other` for a message."""

    def __init__(self, indonesian_words: set[str], *, use_lingua: bool = True) -> None:
        # Words that are Indonesian too never count as English evidence.
        self.id_words = (set(indonesian_words) - ENGLISH) | _INDONESIAN_TOO
        self.use_lingua = use_lingua
        self._lingua: Any = None
        self._lock = threading.Lock()

    def _detector(self) -> Any:
        if self._lingua is None:
            with self._lock:
                if self._lingua is None:
                    from lingua import Language, LanguageDetectorBuilder

                    self._lingua = LanguageDetectorBuilder.from_languages(
                        Language.INDONESIAN, Language.MALAY, Language.ENGLISH, Language.TAGALOG
                    ).build()
        return self._lingua

    @staticmethod
    def _script(text: str) -> tuple[int, int]:
        return len(_LATIN.findall(text)), len(_NON_LATIN.findall(text))

    def detect(self, text: str) -> str:
        """Return the language code for a message."""
        latin, other = self._script(text)
        if latin == 0 and other == 0:
            return "id"
        if other > latin:
            return "other"
        words = _LATIN_WORD.findall(unicodedata.normalize("NFKC", text).lower())
        if not words:
            return "id"
        english = [w in ENGLISH and w not in self.id_words for w in words]
        n_en = sum(english)
        share = n_en / len(words)
        if len(words) <= 2:
            # "halo" is Tagalog to n-gram models: on one or two words known words decide, and
            # the model is asked only about words neither list knows, and must be sure.
            if n_en and n_en == len(words) - (words[0] in _INDONESIAN_TOO):
                return "en"
            if any(w in self.id_words for w in words):
                return "id"
            if not self.use_lingua:
                return "en" if n_en else "id"
            from lingua import Language

            conf = self._detector().compute_language_confidence(text, Language.ENGLISH)
            return "en" if conf >= 0.6 or (n_en and conf >= 0.4) else "id"
        if share >= 0.5:
            return "en"
        if share < 0.2 or not self.use_lingua:
            return "id"
        from lingua import Language

        lang = self._detector().detect_language_of(text)
        return "en" if lang == Language.ENGLISH else "id"
