"""A CodeT5-shaped student, as the paper's released one is shipped, evaluated as it was trained.

The test makes the pieces the way the real ones are made: a RoBERTa-style byte-level BPE tokenizer trained
with the `tokenizers` library (CodeT5's special tokens and `<s> ... </s>` template) saved as a Hugging Face
directory, and a tiny T5 v1.0 written by `transformers` in the legacy `pytorch_model.bin` format (older
Salesforce checkpoints ship only that). Then: the encoder sees exactly what `tokenizer(texts)` gives,
our decoding equals `transformers`' generate on the same text, and import -> train -> export -> eval
round-trips the input template and selectors, which eval flags can override.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import python_module, train

from data_gen.teachers.gold import gold_rationales
from eotd_jax.benchmarks.synthetic import synthetic_problems
from eotd_jax.evaluation import DecodeSettings, generate
from eotd_jax.input.pipeline import tokenize
from eotd_jax.input.student_input import FILE_NAME, StudentInput
from eotd_jax.student import load_student
from eotd_jax.tokenizer import HFTokenizer

torch = pytest.importorskip("torch", reason="pytorch_model.bin needs torch: pip install -e .[dev] (or .[hf])")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

PAD, BOS, EOS = 0, 1, 2  # CodeT5's ids: <pad> <s> </s> <unk> <mask>
FLAG_SELECTORS = StudentInput().replace("Q: {question}\n{selector}\n", eot="Write the equations.",
                                        pot="Write a program.")


def _make_codet5_like(directory: Path) -> None:
    problems = synthetic_problems(30, seed=1)
    corpus = [StudentInput().text(p.question, t) for p in problems for t in ("cot", "pot", "eot")]
    corpus += [text for p in problems for text in gold_rationales(p).values()]
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=700, special_tokens=["<pad>", "<s>", "</s>", "<unk>", "<mask>"])
    bpe._tokenizer.post_processor = tokenizers.processors.RobertaProcessing(("</s>", EOS), ("<s>", BOS))
    wrapped = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>",
                                                   eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                                   mask_token="<mask>")
    wrapped.save_pretrained(directory)
    config = transformers.T5Config(
        vocab_size=len(wrapped), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        feed_forward_proj="relu", tie_word_embeddings=True, pad_token_id=PAD, bos_token_id=BOS,
        eos_token_id=EOS, decoder_start_token_id=PAD, initializer_factor=3.0)
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(config)
    # transformers 5 writes only safetensors; this is the file its 4.x `save_pretrained(safe_serialization=False)`
    # wrote, and what older hub checkpoints hold.
    config.save_pretrained(directory)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")


@pytest.fixture(scope="module")
def codet5_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("codet5_like")
    _make_codet5_like(directory)
    assert not (directory / "model.safetensors").exists()
    return directory


def test_inputs_and_targets_are_wrapped_in_the_tokenizers_own_template(codet5_dir):
    student = load_student(str(codet5_dir))
    assert isinstance(student.tokenizer, HFTokenizer) and student.student_input == StudentInput()
    reference = transformers.AutoTokenizer.from_pretrained(str(codet5_dir))
    problems = synthetic_problems(3, seed=2)
    texts = [student.student_input.text(p.question, "eot") for p in problems]
    encoded = student.tokenizer.encode_batch(texts, 256)
    assert encoded == reference(texts)["input_ids"]
    assert all(ids[0] == BOS and ids[-1] == EOS and BOS not in ids[1:-1] for ids in encoded)
    assert reference.decode(encoded[0], skip_special_tokens=False).startswith("<s>Question: ")
    short = student.tokenizer.encode_batch(texts, 12)
    assert all(len(ids) == 12 and ids[0] == BOS and ids[-1] == EOS for ids in short)  # cut inside the template
    record = {"question": problems[0].question, "thought": "pot", "rationale": gold_rationales(problems[0])["pot"]}
    (example,) = tokenize([record], student.tokenizer, 256, 256, student.student_input)
    assert list(example.source) == reference(texts[0].replace(StudentInput().selectors["eot"],
                                                              StudentInput().selectors["pot"]))["input_ids"]
    assert list(example.target) == reference(record["rationale"])["input_ids"]


def test_our_decoding_equals_transformers_generate_on_the_same_text(codet5_dir):
    student = load_student(str(codet5_dir))
    reference = transformers.AutoTokenizer.from_pretrained(str(codet5_dir))
    hf_model = transformers.T5ForConditionalGeneration.from_pretrained(str(codet5_dir)).eval()
    questions = [p.question for p in synthetic_problems(3, seed=3)]
    settings = DecodeSettings(max_source_length=64, max_new_tokens=12, batch_size=4)
    ours = generate(student.model, student.tokenizer, questions, "eot", settings, FLAG_SELECTORS)
    batch = reference([FLAG_SELECTORS.text(q, "eot") for q in questions], padding=True, truncation=True,
                      max_length=64, return_tensors="pt")
    with torch.no_grad():
        out = hf_model.generate(**batch, max_new_tokens=12, do_sample=False, num_beams=1)
    expected = [reference.decode(_until_eos(row[1:].tolist()), skip_special_tokens=True) for row in out]
    assert [texts[0] for texts in ours] == expected
    assert len(set(expected)) > 1  # the inputs matter, so a wrong encoding would show


def _until_eos(ids: list[int]) -> list[int]:
    return ids[: ids.index(EOS)] if EOS in ids else ids


def _eval(workdir: Path, eval_dir: Path, *flags: str) -> list[dict]:
    result = python_module("eotd_jax.eval", f"--workdir={workdir}", f"--eval_dir={eval_dir}",
                           "--datasets=synthetic", "--limit=3", "--strategies=eot,etd", "--max_new_tokens=10",
                           "--batch_size=4", "--workers=1", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]


def _texts(predictions: list[dict]) -> list[list[str]]:
    return [[r["thoughts"][t][0]["text"] for t in ("cot", "pot", "eot")] for r in predictions]


def test_import_train_export_eval_round_trip_keeps_the_selectors_and_flags_override_them(
        codet5_dir, training_data, tmp_path):
    # The released student as downloaded, with selectors and the paper's 256-token inputs from flags.
    flags = ["--input_template=Q: {question}\n{selector}\n", "--selector_eot=Write the equations.",
             "--selector_pot=Write a program.", "--max_source_length=256"]
    from_flags = _eval(codet5_dir, tmp_path / "flags", *flags)
    settings = json.loads((tmp_path / "flags" / "eval_settings.json").read_text())
    assert settings["input"] == FLAG_SELECTORS.to_dict() and settings["max_source_length"] == 256
    student = load_student(str(codet5_dir))
    questions = [r["question"] for r in from_flags]
    decode = DecodeSettings(max_source_length=256, max_new_tokens=10, batch_size=4)
    eot_texts = [r["thoughts"]["eot"][0]["text"] for r in from_flags]
    assert eot_texts == [texts[0] for texts in generate(student.model, student.tokenizer, questions, "eot", decode,
                                                        FLAG_SELECTORS)]
    assert eot_texts != [texts[0] for texts in generate(student.model, student.tokenizer, questions, "eot", decode,
                                                        StudentInput())]

    # Fine-tuned from it with another EoT selector: the checkpoint, the export and eval all keep it.
    workdir = tmp_path / "train"
    trained = train(workdir, training_data, f"--config.init_from_hf={codet5_dir}", "--config.tokenizer=",
                    "--config.input.selectors.eot=Equations, please.", "--config.train.steps=2",
                    "--config.checkpoint.every_steps=2")
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported = python_module("eotd_jax.export", f"--workdir={workdir}", f"--out={tmp_path / 'hf'}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    saved = json.loads((tmp_path / "hf" / FILE_NAME).read_text())
    assert saved == StudentInput().replace(eot="Equations, please.").to_dict()
    assert transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))("x")["input_ids"][0] == BOS
    from_checkpoint = _eval(workdir, tmp_path / "from_checkpoint")
    from_export = _eval(tmp_path / "hf", tmp_path / "from_export")
    assert _texts(from_checkpoint) == _texts(from_export)
    for eval_dir in ("from_checkpoint", "from_export"):
        assert json.loads((tmp_path / eval_dir / "eval_settings.json").read_text())["input"] == saved


def test_bad_input_settings_fail_with_one_line(codet5_dir, tmp_path):
    result = python_module("eotd_jax.eval", f"--workdir={codet5_dir}", f"--eval_dir={tmp_path}",
                           "--input_template=Question: {question}", "--datasets=synthetic", "--limit=1")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: input template 'Question: {question}' must contain {question} and {selector}")
    with pytest.raises(ValueError, match="must contain"):
        StudentInput("{question} {selector.__class__}")
    assert StudentInput("{selector}|{question}").text("{selector} {x}", "cot") == \
        "Let's think step by step.|{selector} {x}"
