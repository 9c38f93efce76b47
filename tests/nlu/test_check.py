from nlu.check import check_data
from nlu.rasa_yaml import read_nlu_text

TAXONOMY = {
    "intents": {"lapor": "", "tanya": "", "aspirasi": "", "salam": "", "darurat": ""},
    "categories": {"jalan": "", "sampah": ""},
    "entities": {"lokasi": "", "kelurahan": "", "kecamatan": "", "nomor_tiket": ""},
}


def _examples(label: str, n: int, stem: str) -> str:
    lines = "\n".join(f"    - {stem} {i}" for i in range(n))
    return f"- intent: {label}\n  examples: |\n{lines}\n"


def clean_doc() -> str:
    return (
        'version: "3.1"\nnlu:\n'
        + _examples("salam", 40, "halo")
        + _examples("darurat", 40, "kebakaran")
        + _examples("lapor/jalan", 25, "jalan rusak")
        + _examples("lapor/sampah", 25, "sampah numpuk")
        + _examples("tanya/jalan", 15, "kapan jalan diaspal")
    )


def test_clean_data_has_no_problems():
    assert check_data(read_nlu_text(clean_doc()), TAXONOMY) == []


def test_check_finds_every_planted_problem():
    bad = (
        clean_doc()
        + "- intent: pesan\n  examples: |\n    - pesan makanan\n"
        + "- intent: lapor/jalanan\n  examples: |\n    - jalanan rusak\n"
        + "- intent: salam/pagi\n  examples: |\n    - pagi\n"
        + "- intent: tanya/sampah\n  examples: |\n    - jalan rusak 3\n"
        + "- intent: lapor\n  examples: |\n    - ada masalah\n"
        + '- intent: lapor/jalan\n  examples: |\n    - rusak di [Jl. Paus]{"entity": lokasi}\n'
        + "    - rusak di [Jl. Paus](jalanan)\n"
    )
    problems = "\n".join(check_data(read_nlu_text(bad), TAXONOMY))
    assert "unknown intent 'pesan'" in problems
    assert "unknown category 'lapor/jalanan'" in problems
    assert "intent salam takes no category" in problems
    assert "lapor without a category" in problems
    assert "same text under lapor/jalan and tanya/sampah: 'jalan rusak 3'" in problems
    assert "unreadable entity annotation" in problems
    assert "unknown entity type 'jalanan'" in problems
    assert "tanya/sampah: 1 examples, needs at least 15" in problems


def test_check_finds_thin_classes():
    thin = clean_doc().replace("    - halo 39\n", "").replace("    - jalan rusak 24\n", "")
    problems = check_data(read_nlu_text(thin), TAXONOMY)
    assert "salam: 39 examples, needs at least 40" in problems
    assert "lapor/jalan: 24 examples, needs at least 25" in problems
    assert "aspirasi: 0 examples, needs at least 40" not in problems  # categorised intent
