from nlu.rasa_yaml import parse_annotated, read_nlu_text

DOC = """\
version: "3.1"
nlu:
- intent: lapor/jalan
  examples: |
    - jalan rusak di [Jl. Paus](lokasi)
    - di [simpang baru]{"entity":"kelurahan", "value":"Simpangbaru"} [Tampan](kecamatan:Binawidya)
- intent: salam
  examples:
    - text: halo
      metadata: {}
    - text: pagi
- synonym: Binawidya
  examples: |
    - Tampan
- regex: nomor_tiket
  examples: |
    - PKU-\\d{4}-\\d{6}
- lookup: kecamatan
  examples: |
    - Binawidya
    - Sail
"""


def test_reader_keeps_retrieval_intent_labels_with_intent_and_category():
    data = read_nlu_text(DOC)
    first = data.examples[0]
    assert first.label == "lapor/jalan"
    assert (first.intent, first.category) == ("lapor", "jalan")
    assert data.examples[2].label == "salam" and data.examples[2].category is None


def test_reader_strips_inline_entities_in_both_forms_with_offsets():
    data = read_nlu_text(DOC)
    ex = data.examples[0]
    assert ex.text == "jalan rusak di Jl. Paus"
    (ent,) = ex.entities
    assert (ent.entity, ent.value, ex.text[ent.start : ent.end]) == (
        "lokasi",
        "Jl. Paus",
        "Jl. Paus",
    )
    ex2 = data.examples[1]
    assert ex2.text == "di simpang baru Tampan"
    kel, kec = ex2.entities
    assert (kel.entity, kel.value, kel.text) == ("kelurahan", "Simpangbaru", "simpang baru")
    assert ex2.text[kel.start : kel.end] == "simpang baru"
    assert (kec.entity, kec.value) == ("kecamatan", "Binawidya")


def test_reader_reads_list_examples_synonyms_regex_and_lookup():
    data = read_nlu_text(DOC)
    assert [e.text for e in data.examples if e.label == "salam"] == ["halo", "pagi"]
    assert data.synonyms["tampan"] == "Binawidya"
    assert data.synonyms["simpang baru"] == "Simpangbaru"  # from the {"value": ...} form
    assert data.regexes["nomor_tiket"] == ["PKU-\\d{4}-\\d{6}"]
    assert data.lookups["kecamatan"] == ["Binawidya", "Sail"]
    assert data.problems == []


def test_reader_reports_malformed_annotations_instead_of_failing():
    text, ents, problems = parse_annotated('jalan di [Jl. Paus]{"entity": lokasi} rusak')
    assert problems and not ents
    _, _, problems = parse_annotated("jalan di [Jl. Paus](lokasi rusak")
    assert problems
