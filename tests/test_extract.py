"""Answer extraction from real model output, and gold answers in real dataset forms."""

from __future__ import annotations

import pytest

from tf_tools.answers.extract import (
    ExtractOptions,
    extract_answer,
    extract_letter,
    find_boxed,
    gold_answers,
)


@pytest.mark.parametrize(
    ("text", "expected", "method"),
    [
        ("so the total is \\boxed{42}.", "42", "boxed"),
        ("\\boxed{\\frac{1}{2}} then later \\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}", "boxed"),
        ("nested \\boxed{\\{1, \\{2\\}\\}} done", "\\{1, \\{2\\}\\}", "boxed"),
        ("\\fbox{7}", "7", "boxed"),
        ("thus $\\boxed 5$.", "5", "boxed"),
        ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "1, 2, 3", "boxed"),
        ("\\boxed{1} no no no no no \\boxed{2}", "2", "boxed"),
        ("The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}", "phrase"),
        ("So the answer is 18.", "18", "phrase"),
        ("The answer is 3.5.", "3.5", "phrase"),
        ("Final Answer: The volume of $ABCD$ is 120.", "120", "phrase"),
        ("work...\n#### 1,234", "1,234", "gsm8k"),
        ('{"reasoning": "...", "answer": "\\\\frac{1}{3}"}', "\\frac{1}{3}", "json"),
        ('```json\n{\n "reasoning": "x",\n "answer": 12\n}\n```', "12", "json"),
        ("The final answer is: \n```json\n{\"answer\": \"-13\"}\n```", "-13", "json"),
        # a closing statement after intermediate boxes states the answer
        ("$0.04 = \\boxed{200}$ ... $10,455. Final Answer: The final answer is $10,455$.", "10,455", "phrase"),
        # a teacher that runs past its end of turn
        ("The answer is 7.<|im_end|>\n<|im_start|>user\nThe answer is 9.", "7", "phrase"),
        ("42", "42", "whole"),
        ("\\frac{10}{9}", "\\frac{10}{9}", "whole"),
        ("I have no idea what this is about", None, "none"),
        ("unbalanced \\boxed{1+{2", None, "none"),
    ],
)
def test_extract_answer(text, expected, method):
    assert extract_answer(text) == (expected, method)


def test_last_number_is_opt_in():
    text = "She had 3 apples and bought 4 more, so she has 7 apples"
    assert extract_answer(text) == (None, "none")
    assert extract_answer(text, ExtractOptions(last_number=True)) == ("7", "last_number")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("it costs 1,000.99 dollars", "1000.99"),
        ("roughly 1 000 people", "1000"),
        ("Soucis : 2,74 $ a..", "2.74"),
        ("AZYUK2A", None),
        ("value -3.5 then", "-3.5"),
    ],
)
def test_last_number_forms(text, expected):
    found, _ = extract_answer(text, ExtractOptions(last_number=True))
    assert found == expected


def test_last_math_fallback_and_later_wins():
    text = "We get $d = \\frac{90}{n}$. So there are 12 sequences"
    assert extract_answer(text, ExtractOptions(last_math=True)) == ("d = \\frac{90}{n}", "last_math")
    assert extract_answer(text, ExtractOptions(last_math=True, last_number=True)) == ("12", "last_number")
    # the same past the 4000-character tail the finders search: the later one still wins
    long = "x " * 3000 + text
    assert extract_answer(long, ExtractOptions(last_math=True, last_number=True)) == ("12", "last_number")
    # inline math does not span lines
    assert extract_answer("Answer $ \n 9 \n $", ExtractOptions(last_math=True)) == (None, "none")


def test_find_boxed_linear_on_huge_output():
    text = "x " * 100_000 + "\\boxed{" + "1+" * 1000 + "1}"
    assert find_boxed(text) == ["1+" * 1000 + "1"]


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is for sure D, it can't be A or B", "D"),
        ("D. it can't be A or B", "D"),
        ("It's not A because it doesn't make sense, therefore I think it's B", "B"),
        ("\\boxed{C}", "C"),
        ("(B) because ...", "B"),
    ],
)
def test_extract_letter(text, letter):
    assert extract_letter(text, "ABCD") == letter


@pytest.mark.parametrize(
    ("gold", "expected"),
    [
        ("42", ["42"]),
        (42, ["42"]),
        (0.5, ["0.5"]),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", ["72"]),
        ("We find ... so the answer is $\\boxed{\\frac{1}{2}}$.", ["\\frac{1}{2}"]),
        (["3", "\\frac{6}{2}"], ["3", "\\frac{6}{2}"]),
        ("$x = 3$", ["x = 3"]),
        ("", []),
        (None, []),
    ],
)
def test_gold_answers(gold, expected):
    assert gold_answers(gold) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # prose after the box that mentions "the answer" does not replace it
        ("\\boxed{\\$975}\n\nThe initial verification step was incorrect, but the final answer is accurate.", "\\$975"),
        ("\\boxed{5}.\n\nEverything matches, so the answer is verified to be correct.", "5"),
        ("So $225$ is written as $\\boxed{220}$. Note that under another definition the answer will be "
         "different for any number. Under it, $225$ is written as $22$.", "220"),
        ('{\n "answer": "5"\n}\n```\n\nThe answer is that Shannon needs to make 5 dozens to have enough for 30 days.', "5"),
        # a run of more than four '#' is not GSM8K's marker
        ("The area of the triangle is \\(\\boxed{25}\\). foo######\nbar", "25"),
        # a restatement after a sentence end is not a second element of a list
        ("is $\\boxed{2/3 < x < 1 \\text{ or } x > 7}$.\n\nThus,\n\\[ x \\in \\boxed{(\\frac{2}{3}, 1) \\cup (7, \\infty)} \\]",
         "(\\frac{2}{3}, 1) \\cup (7, \\infty)"),
    ],
)
def test_closing_prose_and_restatements(text, expected):
    assert extract_answer(text)[0] == expected


def test_zeroeval_gsm_gold_form():
    assert gold_answers("# 20") == ["20"]
    assert gold_answers("#### 3,140") == ["3,140"]
