"""Rules that catch emergencies the classifier might miss, and cues that rule one out.

The rules read the normalised text (lower case, slang resolved), never the raw text.
"""

from __future__ import annotations

import re


def _w(words: str) -> str:
    """A word-bounded alternation of space-separated words (underscores stand for spaces)."""
    return r"\b(?:" + "|".join(w.replace("_", " ") for w in words.split()) + r")\b"


# Two cues of one event lie close together: in a long letter, words far apart are not one event.
_NEAR = r".{0,80}"
_BUILDING = _w(
    "rumah ruko toko gedung kios pasar gudang mobil motor kendaraan bangunan kantor sekolah "
    "kos kost dapur warung pabrik bengkel asrama masjid"
)
_VICTIM = _w(
    "korban luka berdarah darah pingsan tidak_sadar tak_sadar meninggal tewas tergeletak "
    "terkapar parah ambulans ambulan patah kritis sekarat terjepit tolong injured unconscious "
    "ambulance hurt bleeding dead tidak_bergerak tidak_sadarkan_diri"
)
_CRASH = _w(
    "kecelakaan tabrakan ditabrak tertabrak ketabrak terlindas dilindas terserempet keserempet "
    "jatuh_dari_motor terjatuh terbalik terguling accident crash"
)
_CRIME = _w(
    "maling rampok perampok perampokan jambret penjambret begal pembegalan dibegal pencuri "
    "pencurian penodongan ditodong penjarahan penculikan diculik menculik penjambretan "
    "dijambret copet pencopet pencopetan dicopet"
)
_NOW = _w(
    "sekarang lagi sedang masih tolong kejar dikejar kabur bawa_senjata pisau parang senjata "
    "barusan baru_saja"
)
_FIGHT = _w("tawuran perkelahian berkelahi bentrok keributan baku_hantam")
_SPARK = _w(
    "percikan memercik percik berpijar berapi keluar_api terbakar meledak ledakan konslet "
    "korslet korsleting konsleting nyetrum menyetrum setrum api apinya"
)

_DISASTER = _w(
    "gempa+ gempa_bumi tsunami banjir_bandang puting_beliung angin_puting_beliung likuifaksi "
    "earthquake flash_flood landslide"
)
# Dangers that a message may name as a risk or a condition rather than as happening now.
_RISKS = _w(
    "kebakaran terbakar kecelakaan tabrakan korslet korsleting konslet ledakan meledak tertimpa "
    "tumbang roboh ambruk tenggelam"
)
# What a disaster left behind, a warning or a plan: damage, aid, drills, "if there is one".
_AFTER_DISASTER = [
    _w("akibat karena sejak gara_gara dampak pasca korban bantuan kalau kalo jika bila apabila")
    + r"\s+(?:\w+\s+){0,2}"
    + _DISASTER,
    _w("jalur_evakuasi titik_kumpul mitigasi siaga_bencana tanggap_bencana"),
]

_POSITIVE = [
    # fire
    # (the fire brigade's name is no fire: "pos pemadam kebakaran", "dinas kebakaran")
    r"(?<!pemadam )(?<!dinas )(?<!pos )(?<!mobil )\bkebakaran\b",
    _BUILDING + r"\w*\s+(?:\w+\s+){0,3}" + _w("terbakar dilalap hangus berasap_tebal"),
    r"\bterbakar\b" + _NEAR + _BUILDING,
    _w("api apinya")
    + _NEAR
    + _w("besar membesar merembet menjalar menyebar merambat berkobar gede"),
    _w("tolong cepat ada") + r"\s+(?:\w+\s+)?" + _w("api apinya"),
    r"^\W*(?:api|kebakaran|fire|begal|maling|rampok|tolong)\W*(?:!|$)",
    _w("asap") + _NEAR + _w("rumah atap gedung ruko") + _NEAR + _w("tolong dalam dalamnya"),
    _w("begal dibegal pembegalan"),
    _w("golok parang celurit sajam senjata_tajam pisau")
    + _NEAR
    + _w("menyerang mengamuk mengejar menusuk membacok mengancam"),
    _w("menyerang mengamuk mengejar menusuk membacok mengancam")
    + _NEAR
    + _w("golok parang celurit sajam senjata_tajam pisau"),
    _w("merembet menjalar merambat") + _NEAR + _w("rumah permukiman pemukiman"),
    r"\bdamkar\b" + _NEAR + _w("cepat segera tolong sekarang"),
    _w("tolong cepat segera") + _NEAR + r"\bdamkar\b",
    # accident with victims
    _CRASH + _NEAR + _VICTIM.replace("|tolong|", "|"),
    # a crash and a cry for help in one sentence
    _CRASH + r"[^.!?]{0,40}\btolong\b",
    _w("korban berdarah tergeletak terkapar pingsan tidak_sadarkan_diri tidak_sadar")
    + _NEAR
    + _CRASH,
    _w("orang korban pengendara warga")
    + r"\s+(?:\w+\s+){0,2}"
    + _w("tergeletak terkapar")
    + _NEAR
    + r"\b(?:darah\w*|berdarah|luka|pingsan)\b",
    _w("motor mobil kendaraan pengendara")
    + r"\s+(?:\w+\s+)?"
    + _w("masuk_ke terjun terperosok tercebur nyemplung")
    + _NEAR
    + _VICTIM,
    _w("nyetrum menyetrum kesetrum tersetrum") + _NEAR + _w("anak orang warga kena"),
    r"\b(?:butuh|panggil|kirim|minta)\s+(?:\w+\s+)?(?:ambulans|ambulan)\b",
    _w("ambulans ambulan polisi pemadam") + r"\s+(?:\w+\s+)?" + _w("cepat segera sekarang"),
    # crime in progress
    _CRIME + _NEAR + _NOW,
    _w("sekarang lagi sedang masih tolong")
    + _NEAR
    + _w("maling rampok perampokan jambret begal dibegal menodong ditodong penculikan diculik"),
    _w("ditusuk dibacok ditikam disandera penusukan pembacokan ditembak penembakan"),
    _FIGHT
    + _NEAR
    + _w(
        "sekarang lagi sedang masih_berlangsung senjata_tajam sajam parang celurit tolong berdarah"
    ),
    r"\b(?:sekarang|lagi|sedang)\s+(?:ada\s+)?(?:tawuran|perkelahian|berkelahi|bentrok)\b",
    _w("memukuli dipukuli digebuki dikeroyok mengeroyok dianiaya penganiayaan kdrt")
    + _NEAR
    + _w("sekarang lagi sedang masih tolong"),
    _w("tolong sekarang lagi sedang") + _NEAR + _w("dipukuli dikeroyok dianiaya"),
    # drowning
    _w("tenggelam hanyut terseret_arus kelelep terbawa_arus"),
    # trapped
    _w("terjebak terjepit terperangkap terkurung tertimbun tertimpa terkunci_di_dalam tertindih")
    + r"(?!\s+(?:macet|kemacetan|antrean|antrian|banjir\s+(?:di\s+)?jalan))",
    r"\b(?:masuk\s+ke|jatuh|terjatuh|terperosok|tercebur|kecebur)\s+(?:ke\s+)?(?:dalam\s+)?"
    + _w("sumur sungai parit selokan lubang got kanal kolam danau waduk embung rawa laut"),
    _w("tercebur kecebur terjun terseret")
    + r"\s+(?:di|ke)\s+(?:dalam\s+)?"
    + _w("sumur sungai kolam danau waduk embung rawa laut"),
    # sparking cable / electrocution
    _w("kabel tiang trafo gardu travo") + _NEAR + _SPARK,
    _w("percikan_api memercikkan_api keluar_api") + _NEAR + _w("kabel tiang trafo gardu listrik"),
    _w("kesetrum tersetrum tersengat_listrik kesetrom disetrum"),
    # gas
    _w("gas elpiji lpg tabung") + _NEAR + _w("bocor kebocoran meledak ledakan menyala"),
    r"\b(?:bocor|kebocoran|bau)\s+(?:gas|elpiji|lpg)\b",
    _w("ledakan meledak"),
    # collapse / medical now
    _w("korslet korsleting konsleting konslet") + _NEAR + _w("asap api terbakar percikan"),
    _w("tumbang") + _NEAR + _w("orang warga anak korban pengendara tertimpa di_dalam"),
    _w("ambruk roboh runtuh")
    + _NEAR
    + _w("orang warga anak korban menimpa tertimpa di_dalam dalamnya keluarga murid siswa"),
    _w("pingsan kejang tidak_sadarkan_diri henti_napas serangan_jantung sekarat overdosis"),
    _w("bunuh_diri mau_lompat melompat_dari"),
    _w("sos darurat emergency urgent") + _NEAR + _w("tolong cepat segera help"),
    _w("fire drowning robbery trapped gas_leak")
    + r"(?!\s+(?:brigade|department|station|truck|fighters?|alarm|extinguisher|exit|hydrant))",
    # natural disasters striking now (the danger is the event itself, not what it left behind)
    _DISASTER,
    # water that rises fast, reaches the roof, or carries people and houses away
    _w("air banjir sungai arus")
    + _NEAR
    + _w(
        "naik_cepat naiknya_cepat cepat_naik makin_naik makin_tinggi semakin_naik semakin_tinggi "
        "terus_naik naik_terus"
    ),
    _w("sampai sampe sebatas setinggi hingga") + r"\s+(?:ke\s+)?" + _w("atap plafon loteng leher"),
    _w("seleher seatap sedagu"),
    r"\b(?:tidak|belum)\s+bisa\s+(?:keluar|menyelamatkan\s+diri)\b"
    + _NEAR
    + _w("air banjir api asap")
    + "|"
    + _w("air banjir api asap")
    + _NEAR
    + r"\b(?:tidak|belum)\s+bisa\s+keluar\b",
    _w("terseret diseret menyeret nyeret") + _NEAR + _w("arus orang anak warga mobil motor"),
    _w("arus air banjir") + r"\s+(?:\w+\s+){0,2}" + _w("menyeret nyeret menyapu menghanyutkan"),
    # help to get out of the water
    _w("tolong butuh minta perlu segera cepat mohon")
    + r"\s+(?:\w+\s+){0,2}"
    + _w("evakuasi dievakuasi perahu perahu_karet"),
    _w("perahu_karet"),
    # ground or buildings coming down on people or homes
    _w("longsor longsoran")
    + r"\s+(?:\w+\s+){0,2}"
    + _w(
        "menimpa nimpa menimbun nimbun menutup nutupin menerjang nerjang mengubur menghantam "
        "menyapu"
    ),
    _w("longsor longsoran") + _NEAR + _w("korban penghuni terkubur"),
]

# Positive cues strong enough to stand against a soft negative cue (fire reaching houses
# from a land fire, a call for the fire brigade in a question).
_STRONG = [
    _w("api kebakaran")
    + _NEAR
    + _w("sampai merembet menjalar mendekati merambat")
    + r"\s+(?:ke\s+)?"
    + _w("rumah permukiman pemukiman"),
    _w("kirim panggil") + r"\s+(?:\w+\s+)?" + _w("damkar pemadam ambulans ambulan polisi"),
    _w("api apinya") + r"\s+(?:sudah\s+)?" + _w("besar gede membesar"),
    _w("masih ada") + r"\s+" + _w("orang anak keluarga") + r"\s+(?:\w+\s+)?di\s+dalam",
    # a two- or three-word alarm: the whole message names the danger
    r"^\W*(?:ada\s+|tolong\s+)?"
    + _w("api kebakaran begal maling rampok perampok jambret copet tawuran tabrakan kecelakaan")
    + r"(?:\s+\w+)?\W*$",
]

# Cues that the danger is over: they block every positive cue.
_HARD_NEGATIVE = [
    _w(
        "semalam kemarin kemaren kmrn tadi_malam minggu_lalu bulan_lalu tahun_lalu "
        "beberapa_hari hari_lalu waktu_itu pernah sering setiap kerap langganan"
    ),
    _w(
        "sudah_padam sudah_dipadamkan telah_padam berhasil_dipadamkan sudah_aman "
        "sudah_ditangani sudah_dievakuasi"
    ),
    r"\b(?:tidak|belum|tanpa)\s+(?:ada\s+)?(?:\w+\s+)?"
    + _w(
        "nyetrum menyetrum percikan api korban luka terluka terbakar tertimpa kena celaka cedera"
    ),
    # the danger was averted: "untung tidak ada yang tertimpa", "alhamdulillah semua selamat"
    _w("untung untungnya syukur alhamdulillah beruntung")
    + r"\s+(?:\w+\s+){0,3}"
    + _w("tidak selamat aman"),
    _w("bulan_lalu tahun_lalu minggu_lalu pekan_lalu"),
    r"\b(?:tidak|belum)\s+ada\s+(?:orang|penumpang|penghuni)\s+(?:di\s+)?(?:dalam|dalamnya)\b",
    _w("mobilnya_kosong rumahnya_kosong sedang_kosong lagi_kosong dalam_keadaan_kosong"),
]

# Cues that the danger is not physical or not now: shallow water, proposals, land fires.
_NEGATIVE = _HARD_NEGATIVE + [
    _w("dulu tiap"),
    _w("selutut semata_kaki sebetis sepaha setinggi_lutut se_lutut mata_kaki"),
    _w(
        "rawan marak merajalela pencegahan simulasi sosialisasi pelatihan usul usulkan saran "
        "sebaiknya "
        "mohon_dibuat perlu_dibuat tolong_dibuat dibangun diadakan"
    ),
    r"\b(?:nomor|no|nmr|kontak|telepon)\s+(?:telepon\s+)?"
    + _w("damkar pemadam ambulans polisi darurat"),
    r"^(?:\w+\s+){0,3}" + _w("bagaimana gimana apakah cara") + r"(?!.*" + _w("tolong cepat") + ")",
    _w("asap kabut_asap karhutla lahan hutan semak ilalang sampah")
    + ".*"
    + _w("terbakar dibakar bakar kebakaran"),
    _w("kebakaran terbakar dibakar bakar") + ".*" + _w("lahan hutan semak ilalang sampah gambut"),
    _w("bekas sisa puing korban_kebakaran pasca"),
    _w("film game sinetron berita mimpi cerita lagu novel"),
    r"^(?!.*" + _VICTIM + r").*" + _w("kecelakaan tabrakan"),
    # the danger is a risk, a fear or a condition: "kalau ada kebakaran", "bisa menyebabkan…"
    _w(
        "kalau kalo jika bila apabila seandainya andaikan takut khawatir cemas antisipasi "
        "mencegah cegah potensi berpotensi bahaya berbahaya membahayakan menyebabkan memicu "
        "mengakibatkan sebabkan bisa_terjadi dapat_terjadi risiko resiko terancam rawan"
    )
    + r"\s+(?:\w+\s+){0,3}"
    + _RISKS,
    _RISKS + r"\s+(?:\w+\s+){0,4}" + _w("jika kalau kalo bila apabila seandainya"),
    _w("mengancam_keselamatan membahayakan_keselamatan"),
    _w("terjebak") + _NEAR + _w("macet kemacetan antrean antrian"),
    # paperwork and services about an emergency, not an emergency
    _w(
        "surat keterangan klaim asuransi syarat persyaratan prosedur santunan visum biaya tarif "
        "bayar gratis jasa_raharja pelakunya ditangkap pelaku dievaluasi evaluasi lambat_datang"
    ),
    # news and questions about a disaster, not a call for help
    # (a tsunami warning stays an alarm: people must run)
    _w("info informasi kabar berita") + r"\s+(?:\w+\s+){0,2}" + _w("gempa+ gempa_bumi"),
    _w("gempa+ gempa_bumi") + r"\s+(?:\w+\s+){0,2}" + _w("terasa kerasa dirasakan"),
    *_AFTER_DISASTER,
]

_ANY_POS = re.compile("|".join(f"(?:{p})" for p in _POSITIVE + _STRONG))
_ANY_STRONG = re.compile("|".join(f"(?:{p})" for p in _STRONG))
_ANY_HARD = re.compile("|".join(f"(?:{p})" for p in _HARD_NEGATIVE))
_ANY_NEG = re.compile("|".join(f"(?:{p})" for p in _NEGATIVE))


# Words of danger: without one, the model alone does not call a message an emergency ("tolong
# dijawab!!!", "kak cek dm pliss" are urgent, not dangerous).
_DANGER = re.compile(
    "|".join(
        (
            _BUILDING,
            _VICTIM.replace("|tolong|", "|"),
            _CRASH,
            _CRIME,
            _FIGHT,
            _SPARK,
            _DISASTER,
            _RISKS,
        )
    )
    + "|"
    + _w(
        "api asap banjir air arus longsor gas bocor senjata pisau parang golok celurit "
        "damkar pemadam ambulans ambulan polisi evakuasi perahu terjebak terjepit tertimbun "
        "hanyut terseret kesetrum tersetrum nyetrum sesak kejang serangan_jantung bunuh_diri "
        "darurat emergency sos fire"
    )
)


def danger_word(normalised: str) -> bool:
    """Whether the text names any danger at all."""
    return _DANGER.search(normalised) is not None


def emergency_cue(normalised: str) -> str | None:
    """Return the text of the first positive cue, or None."""
    m = _ANY_POS.search(normalised)
    return m.group(0) if m else None


def negative_cue(normalised: str) -> str | None:
    """Return the text of the first cue that the event is not an emergency now, or None."""
    m = _ANY_NEG.search(normalised)
    return m.group(0) if m else None


def judge(normalised: str) -> tuple[bool, bool, bool]:
    """Return (raise, lower, veto).

    raise: a positive cue and no negative one (or a strong one against a soft negative), so
    darurat must be answered even if the model missed it. lower: a negative cue, so a darurat
    from the model is doubtful. veto: a cue that the danger is over (past, put out, nobody
    hurt), so no darurat at all.
    """
    pos = emergency_cue(normalised)
    neg = negative_cue(normalised)
    hard = bool(neg) and bool(_ANY_HARD.search(normalised))
    if pos and neg and not hard and _ANY_STRONG.search(normalised):
        return True, False, False
    if pos and not neg:
        return True, False, False
    return False, bool(neg), hard
